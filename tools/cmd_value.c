/*
 * cmd_value.c -- get, put and watch: reading and writing what a channel
 * holds. The state halves live here; a queue channel is handed to
 * cmd_queue.c after the directory said what kind it is.
 *
 * Every blocking wait is cut into slices (cli_slice) so that Ctrl+C is
 * noticed promptly even if it lands just before a wait begins: `watch`
 * and `get --follow` then stop cleanly with exit code 0, a one-shot
 * command with 130.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Open the bus without joining its peer table and describe the channel. */
static int open_channel(const char *bus_name, const char *chan, shmbus_bus_t **bus,
                        shmbus_channel_info_t *ci)
{
	int r = cli_open_bus(bus_name, SHMBUS_BUS_NO_PEER, bus);

	if (r)
		return r;
	r = shmbus_channel_info(*bus, chan, ci);
	if (r) {
		r = cli_fail(r, "channel '%s' of bus '%s'", chan, bus_name);
		shmbus_bus_close(*bus);
		*bus = NULL;
	}
	return r;
}

static int open_state(shmbus_bus_t *bus, const char *chan, shmbus_state_t **st,
                      shmbus_channel_info_t *ci)
{
	shmbus_state_opts_t so;
	int r;

	shmbus_state_opts_init(&so);
	so.create = 0;          /* with ndim 0: accept the channel's own type */
	so.ndim = 0;
	so.wait_policy = SHMBUS_WAIT_PARK;      /* a tool, not a control loop */
	r = shmbus_state_open(bus, chan, &so, st);
	if (!r)
		r = shmbus_state_info(*st, ci);
	if (r)
		return cli_fail(r, "channel '%s' of bus '%s'", chan, shmbus_bus_name(bus));
	return 0;
}

static void print_state(const shmbus_channel_info_t *ci, const void *buf, uint64_t seq,
                        int json, int hex, int with_seq)
{
	uint32_t nd = ci->ndim <= SHMBUS_MAX_DIMS ? ci->ndim : SHMBUS_MAX_DIMS;

	if (json) {
		printf("{\"channel\": ");
		json_str(stdout, ci->name, strnlen(ci->name, sizeof(ci->name)));
		printf(", \"seq\": %" PRIu64 ", \"dtype\": \"%s\", \"shape\": ", seq,
		       shmbus_dtype_name(ci->dtype));
		json_shape(stdout, nd, ci->shape);
		printf(", \"value\": ");
		print_value(stdout, buf, ci->dtype, nd, ci->shape, 1, hex);
		printf("}\n");
		return;
	}
	if (with_seq)
		printf("%" PRIu64 ": ", seq);
	print_value(stdout, buf, ci->dtype, nd, ci->shape, 0, hex);
	putchar('\n');
}

/* Wait for a value newer than `after` until deadline `end` (< 0: none).
 * 0, SHMBUS_ETIMEDOUT, or SHMBUS_EINTR once Ctrl+C was pressed. */
static int wait_newer(shmbus_state_t *st, uint64_t after, int64_t end)
{
	for (;;) {
		uint64_t seq;
		int r;

		if (cli_stop)
			return SHMBUS_EINTR;
		r = shmbus_state_wait(st, after, cli_slice(end), &seq);
		if (r == 0)
			return 0;
		if (r == SHMBUS_EINTR)
			continue;       /* cli_stop says whether it was ours */
		if (r != SHMBUS_ETIMEDOUT)
			return r;
		if (end >= 0 && cli_now_ns() >= end)
			return SHMBUS_ETIMEDOUT;
	}
}

/* ---- get -------------------------------------------------------------- */

static const char get_help[] =
	"Usage: shmbus get [OPTIONS] BUS CHANNEL\n"
	"\n"
	"State channel: print the latest value, formatted by its dtype and shape\n"
	"(one element prints as a bare number, arrays as nested lists, bytes as\n"
	"escaped text). Exit code 3 if it was never written (see --timeout).\n"
	"\n"
	"Array: its elements as a list. List: one element per line. Dict: one\n"
	"'key: value' per line (elements, keys and values as escaped text).\n"
	"\n"
	"Queue channel: take the next message for a consumer group and print it\n"
	"as escaped text, one line per message. Exit code 3 if none came within\n"
	"the timeout, 6 if the queue is shut and drained.\n"
	"\n"
	"  -j, --json          state: {\"channel\", \"seq\", \"dtype\", \"shape\", \"value\"};\n"
	"                      queue: one object per line {\"seq\", \"len\",\n"
	"                      \"redelivered\", \"data\"} (data: bytes as U+0000..U+00FF)\n"
	"  -x, --hex           print the bytes in hex\n"
	"  -s, --seq           prefix the value (or message) with its sequence number\n"
	"  -t, --timeout T     wait up to T for a value/message (500ms, 2s, forever);\n"
	"                      default: state 0, queue 0 (or forever with --follow)\n"
	"queue only:\n"
	"  -g, --group NAME    consumer group (default 'cli'); a new group starts at\n"
	"                      the oldest message still queued\n"
	"      --latest        a new group starts at the newest message instead\n"
	"  -n, --count N       take up to N messages (default 1; 0 with --follow: all)\n"
	"  -f, --follow        keep taking messages until Ctrl+C (exit 0) or end of\n"
	"                      stream (exit 0); --timeout then bounds the wait for each\n";

enum { O_JSON = 'j', O_HEX = 'x', O_SEQ = 's', O_TIMEOUT = 't', O_GROUP = 'g',
       O_COUNT = 'n', O_FOLLOW = 'f', O_LATEST = 'L' };

static int state_get(shmbus_bus_t *bus, const char *chan, int json, int hex, int with_seq,
                     int64_t timeout_ns)
{
	shmbus_channel_info_t ci;
	shmbus_state_t *st = NULL;
	void *buf = NULL;
	uint64_t seq = 0;
	int r, rc = EX_OK;

	rc = open_state(bus, chan, &st, &ci);
	if (rc)
		return rc;
	buf = malloc(ci.value_size ? ci.value_size : 1);
	if (!buf) {
		rc = cli_msg(EX_ERROR, "out of memory for a %" PRIu64 "-byte value", ci.value_size);
		goto out;
	}
	r = shmbus_state_read(st, buf, ci.value_size, &seq);
	if (r == SHMBUS_ENODATA && timeout_ns != 0) {
		r = wait_newer(st, 0, cli_deadline(timeout_ns));
		if (r == 0)
			r = shmbus_state_read(st, buf, ci.value_size, &seq);
	}
	if (r == SHMBUS_EINTR) {
		rc = cli_msg(EX_INTR, "interrupted");
		goto out;
	}
	if (r == SHMBUS_ETIMEDOUT) {
		rc = cli_msg(EX_TIMEOUT, "channel '%s' of bus '%s' got no value within the timeout",
		             chan, shmbus_bus_name(bus));
		goto out;
	}
	if (r) {
		rc = cli_fail(r, "channel '%s' of bus '%s'", chan, shmbus_bus_name(bus));
		goto out;
	}
	print_state(&ci, buf, seq, json, hex, with_seq);
	cli_flush();
out:
	free(buf);
	shmbus_state_close(st);
	return rc;
}

int cmd_get(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{"json", 'j', 0, O_JSON}, {"hex", 'x', 0, O_HEX}, {"seq", 's', 0, O_SEQ},
		{"timeout", 't', 1, O_TIMEOUT}, {"group", 'g', 1, O_GROUP},
		{"count", 'n', 1, O_COUNT}, {"follow", 'f', 0, O_FOLLOW},
		{"latest", 0, 0, O_LATEST}, {0}};
	struct queue_get_opts qo;
	shmbus_channel_info_t ci;
	int json = 0, hex = 0, with_seq = 0, have_timeout = 0, have_count = 0, o, rc;
	int64_t timeout_ns = 0;
	struct cli_args a;
	shmbus_bus_t *bus;

	memset(&qo, 0, sizeof(qo));
	qo.group = "cli";
	qo.count = 1;
	cli_args_init(&a, argc, argv);
	while ((o = cli_next_opt(&a, opts)) > 0) {
		switch (o) {
		case CLI_OPT_HELP:
			fputs(get_help, stdout);
			return EX_OK;
		case O_JSON: json = 1; break;
		case O_HEX: hex = 1; break;
		case O_SEQ: with_seq = 1; break;
		case O_FOLLOW: qo.follow = 1; break;
		case O_LATEST: qo.latest = 1; break;
		case O_GROUP: qo.group = a.arg; break;
		case O_TIMEOUT:
			if (cli_parse_duration(a.arg, "timeout", &timeout_ns))
				return EX_USAGE;
			have_timeout = 1;
			break;
		case O_COUNT:
			if (cli_parse_u64(a.arg, "count", &qo.count))
				return EX_USAGE;
			have_count = 1;
			break;
		}
	}
	if (o < 0)
		return EX_USAGE;
	if (a.npos != 2)
		return cli_usage_error(a.npos < 2 ? "needs BUS and CHANNEL" : "takes only BUS and CHANNEL");
	rc = open_channel(a.pos[0], a.pos[1], &bus, &ci);
	if (rc)
		return rc;
	if (ci.kind == SHMBUS_KIND_STATE) {
		if (qo.follow || have_count || qo.latest || strcmp(qo.group, "cli"))
			rc = cli_usage_error("--group, --follow, --count and --latest are for queues; '%s' is a state channel (try 'shmbus watch')",
			                     a.pos[1]);
		else
			rc = state_get(bus, a.pos[1], json, hex, with_seq, timeout_ns);
	} else if (ci.kind == SHMBUS_KIND_QUEUE) {
		if (qo.follow && !have_count)
			qo.count = 0;
		if (qo.follow && !have_timeout)
			timeout_ns = SHMBUS_FOREVER;
		qo.json = json;
		qo.hex = hex;
		qo.quiet = !with_seq;
		qo.timeout_ns = timeout_ns;
		rc = queue_get(bus, a.pos[1], &qo);
	} else if (ci.kind == SHMBUS_KIND_ARRAY || ci.kind == SHMBUS_KIND_LIST ||
	           ci.kind == SHMBUS_KIND_DICT) {
		if (qo.follow || have_count || qo.latest || strcmp(qo.group, "cli") || with_seq ||
		    have_timeout)
			rc = cli_usage_error("'%s' is a %s: only --json and --hex apply", a.pos[1],
			                     shmbus_kind_name(ci.kind));
		else
			rc = container_get(bus, a.pos[1], ci.kind, json, hex);
	} else {
		const char *k = shmbus_kind_name(ci.kind);

		rc = cli_msg(EX_USAGE, "channel '%s' is a %s; get reads state, queue, array, list and dict channels",
		             a.pos[1], k ? k : "channel of unknown kind");
	}
	shmbus_bus_close(bus);
	return rc;
}

/* ---- put -------------------------------------------------------------- */

static const char put_help[] =
	"Usage: shmbus put [OPTIONS] BUS CHANNEL VALUES...\n"
	"\n"
	"State channel: write one value. VALUES are the elements, parsed by the\n"
	"channel's dtype, separated by spaces or commas, brackets allowed\n"
	"('1 2 3', '1,2,3', '[[1,2],[3,4]]'); their number must match the shape.\n"
	"A bytes channel takes one string (padded with NULs) or --hex. The write\n"
	"fails with exit code 5 while another live process is the writer.\n"
	"\n"
	"Queue channel: each VALUE is one message (its bytes, as given).\n"
	"Array: all its elements, as for a state value (each element is set\n"
	"atomically, the array as a whole is not). List: each VALUE is appended.\n"
	"Dict: each VALUE is KEY=VALUE.\n"
	"\n"
	"  -c, --create        create the channel if it does not exist\n"
	"  -d, --dtype T       with --create: int8..uint64, float32, float64, bool,\n"
	"                      bytes (default float64; a queue's messages are bytes)\n"
	"  -S, --shape S       with --create: e.g. 3 or 2,3 (default: as many\n"
	"                      elements as VALUES; a bytes value: the string length)\n"
	"  -k, --kind K        with --create: state (default), queue, array (of\n"
	"                      --dtype, --shape LENGTH), list or dict\n"
	"      --slots N       with --create --kind queue: ring slots (default 1024)\n"
	"      --max-msg SIZE  with --create --kind queue: largest message (4K)\n"
	"  -x, --hex           VALUES are hex bytes (bytes channels and queues)\n"
	"      --stdin         read values from standard input, one per line: each\n"
	"                      line a state value (written in turn) or a message\n"
	"  -t, --timeout T     queue: wait up to T for room in a full ring (default 5s)\n"
	"      --shut          queue: mark end of stream after the messages\n";

enum { P_CREATE = 'c', P_DTYPE = 'd', P_SHAPE = 'S', P_KIND = 'k', P_SLOTS = 1,
       P_MAXMSG = 2, P_HEX = 'x', P_STDIN = 3, P_TIMEOUT = 't', P_SHUT = 4 };

struct put_opts {
	int create, hex, from_stdin, shut;
	int dtype;              /* -1: not given */
	uint32_t ndim;          /* 0: not given */
	uint64_t shape[SHMBUS_MAX_DIMS];
	int kind;
	uint64_t slots, max_msg;
	int64_t timeout_ns;
};

/* Bytes for a bytes channel (or --hex) from one argument; malloc'd. */
static int bytes_arg(const char *s, int hex, uint8_t **out, size_t *len)
{
	if (hex)
		return parse_hex(s, out, len);
	*len = strlen(s);
	*out = malloc(*len + 1);
	if (!*out) {
		cli_msg(EX_ERROR, "out of memory");
		return -1;
	}
	memcpy(*out, s, *len + 1);
	return 0;
}

/* Fill buf (the channel's value_size bytes) from VALUES. */
static int state_value(const shmbus_channel_info_t *ci, char **vals, int nvals, int hex,
                       void *buf)
{
	if (ci->dtype == SHMBUS_BYTES || hex) {
		uint8_t *b;
		size_t len;

		if (nvals != 1)
			return cli_usage_error("a %s value is one argument (got %d); quote it",
			                       hex ? "hex" : "bytes", nvals);
		if (bytes_arg(vals[0], hex, &b, &len))
			return EX_USAGE;
		if (len > ci->value_size || (hex && ci->dtype != SHMBUS_BYTES &&
		                             len != ci->value_size)) {
			free(b);
			return cli_usage_error("value is %zu bytes; channel '%s' holds %" PRIu64,
			                       len, ci->name, ci->value_size);
		}
		memset(buf, 0, ci->value_size);
		memcpy(buf, b, len);
		free(b);
		return 0;
	} else {
		char shape[64];
		uint32_t nd = ci->ndim <= SHMBUS_MAX_DIMS ? ci->ndim : SHMBUS_MAX_DIMS;
		size_t esz = shmbus_dtype_size(ci->dtype);

		shape_text(shape, sizeof(shape), nd, ci->shape);
		if (!esz)
			return cli_msg(EX_ERROR, "channel '%s' has an unknown dtype %d", ci->name,
			               ci->dtype);
		if (parse_values(vals, nvals, ci->dtype, ci->value_size / esz, ci->name, shape, buf))
			return EX_USAGE;
		return 0;
	}
}

/* Count the elements in VALUES the way parse_values splits them. */
static uint64_t count_tokens(char **vals, int nvals)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < nvals; i++) {
		const char *p = vals[i];
		int in = 0;

		for (; *p; p++) {
			int sep = strchr(" \t\n,[]()", *p) != NULL;

			if (!sep && !in)
				n++;
			in = !sep;
		}
	}
	return n;
}

static int state_open_for_put(shmbus_bus_t *bus, const char *chan, const struct put_opts *po,
                              int exists, char **vals, int nvals, shmbus_state_t **st,
                              shmbus_channel_info_t *ci)
{
	shmbus_state_opts_t so;
	int r;

	shmbus_state_opts_init(&so);
	so.create = !exists;
	if (po->dtype >= 0)
		so.dtype = po->dtype;
	if (exists) {
		so.ndim = 0;    /* open as it is; --dtype/--shape are checked below */
	} else if (po->ndim) {
		so.ndim = po->ndim;
		memcpy(so.shape, po->shape, sizeof(so.shape));
	} else {
		uint64_t n;

		if (so.dtype == SHMBUS_BYTES || po->hex) {
			uint8_t *b;
			size_t len;

			if (nvals != 1)
				return cli_usage_error("a %s value is one argument (got %d); quote it",
				                       po->hex ? "hex" : "bytes", nvals);
			if (bytes_arg(vals[0], po->hex, &b, &len))
				return EX_USAGE;
			free(b);
			n = len / shmbus_dtype_size(so.dtype);
		} else {
			n = count_tokens(vals, nvals);
		}
		if (n == 0)
			return cli_usage_error("cannot size a new channel from an empty value; give --shape");
		so.ndim = n == 1 ? 0 : 1;
		so.shape[0] = n;
	}
	r = shmbus_state_open(bus, chan, &so, st);
	if (r == SHMBUS_EEXIST) /* someone created it since we looked */
		r = shmbus_state_open(bus, chan, &so, st);
	if (!r)
		r = shmbus_state_info(*st, ci);
	if (r)
		return cli_fail(r, "channel '%s' of bus '%s'", chan, shmbus_bus_name(bus));
	if (exists && po->dtype >= 0 && ci->dtype != po->dtype)
		return cli_msg(cli_exit_code(SHMBUS_ETYPE),
		               "channel '%s' of bus '%s' has dtype %s, not %s", chan,
		               shmbus_bus_name(bus), shmbus_dtype_name(ci->dtype),
		               shmbus_dtype_name(po->dtype));
	if (exists && po->ndim && (ci->ndim != po->ndim ||
	                           memcmp(ci->shape, po->shape, po->ndim * sizeof(uint64_t)))) {
		char have[64], want[64];

		shape_text(have, sizeof(have), ci->ndim <= SHMBUS_MAX_DIMS ? ci->ndim : 0, ci->shape);
		shape_text(want, sizeof(want), po->ndim, po->shape);
		return cli_msg(cli_exit_code(SHMBUS_ETYPE),
		               "channel '%s' of bus '%s' has shape %s, not %s", chan,
		               shmbus_bus_name(bus), have, want);
	}
	return 0;
}

static int write_one(shmbus_state_t *st, const shmbus_channel_info_t *ci, char **vals,
                     int nvals, int hex, void *buf)
{
	int r = state_value(ci, vals, nvals, hex, buf);

	if (r)
		return r;
	r = shmbus_state_write(st, buf, ci->value_size);
	if (r)
		return cli_fail(r, "cannot write channel '%s'", ci->name);
	return 0;
}

static int state_put(shmbus_bus_t *bus, const char *chan, const struct put_opts *po,
                     int exists, char **vals, int nvals)
{
	shmbus_channel_info_t ci;
	shmbus_state_t *st = NULL;
	char *line = NULL;
	size_t cap = 0;
	void *buf = NULL;
	int rc;

	if (po->from_stdin && nvals)
		return cli_usage_error("give VALUES or --stdin, not both");
	if (!po->from_stdin && !nvals)
		return cli_usage_error("missing the VALUES to write");
	if (po->from_stdin && !exists && !po->ndim)
		return cli_usage_error("--create with --stdin needs --shape");
	rc = state_open_for_put(bus, chan, po, exists, vals, nvals, &st, &ci);
	if (rc)
		goto out;
	buf = malloc(ci.value_size ? ci.value_size : 1);
	if (!buf) {
		rc = cli_msg(EX_ERROR, "out of memory for a %" PRIu64 "-byte value", ci.value_size);
		goto out;
	}
	if (!po->from_stdin) {
		rc = write_one(st, &ci, vals, nvals, po->hex, buf);
		goto out;
	}
	for (;;) {
		ssize_t n = getline(&line, &cap, stdin);

		if (n < 0)
			break;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		rc = write_one(st, &ci, &line, 1, po->hex, buf);
		if (rc || cli_stop)
			break;
	}
	if (!rc && cli_stop)
		rc = cli_msg(EX_INTR, "interrupted");
out:
	free(line);
	free(buf);
	shmbus_state_close(st);
	return rc;
}

static int create_queue(shmbus_bus_t *bus, const char *chan, const struct put_opts *po)
{
	shmbus_queue_opts_t qo;
	shmbus_queue_t *q;
	int r;

	if (po->slots > UINT32_MAX)
		return cli_usage_error("--slots %" PRIu64 " is too many", po->slots);
	shmbus_queue_opts_init(&qo);
	qo.slots = (uint32_t)po->slots;
	qo.max_msg = po->max_msg;
	r = shmbus_queue_open(bus, chan, &qo, &q);
	if (r)
		return cli_fail(r, "cannot create queue '%s' on bus '%s'", chan, shmbus_bus_name(bus));
	shmbus_queue_close(q);
	return 0;
}

static int parse_put_opt(int o, const char *arg, struct put_opts *po)
{
	switch (o) {
	case P_CREATE: po->create = 1; break;
	case P_HEX: po->hex = 1; break;
	case P_STDIN: po->from_stdin = 1; break;
	case P_SHUT: po->shut = 1; break;
	case P_DTYPE:
		po->dtype = shmbus_dtype_parse(arg);
		if (po->dtype < 0)
			return cli_usage_error("dtype '%s' is not one of int8, uint8, int16, uint16, int32, uint32, int64, uint64, float32, float64, bool, bytes",
			                       arg);
		break;
	case P_SHAPE:
		if (cli_parse_shape(arg, &po->ndim, po->shape))
			return EX_USAGE;
		break;
	case P_KIND:
		if (!strcmp(arg, "state"))
			po->kind = SHMBUS_KIND_STATE;
		else if (!strcmp(arg, "queue"))
			po->kind = SHMBUS_KIND_QUEUE;
		else if (!strcmp(arg, "array"))
			po->kind = SHMBUS_KIND_ARRAY;
		else if (!strcmp(arg, "list"))
			po->kind = SHMBUS_KIND_LIST;
		else if (!strcmp(arg, "dict"))
			po->kind = SHMBUS_KIND_DICT;
		else
			return cli_usage_error("kind '%s': the CLI creates state, queue, array, list and dict channels",
			                       arg);
		break;
	case P_SLOTS:
		if (cli_parse_u64(arg, "slots", &po->slots))
			return EX_USAGE;
		break;
	case P_MAXMSG:
		if (cli_parse_size(arg, "max-msg", &po->max_msg))
			return EX_USAGE;
		break;
	case P_TIMEOUT:
		if (cli_parse_duration(arg, "timeout", &po->timeout_ns))
			return EX_USAGE;
		break;
	}
	return 0;
}

int cmd_put(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{"create", 'c', 0, P_CREATE}, {"dtype", 'd', 1, P_DTYPE},
		{"shape", 'S', 1, P_SHAPE}, {"kind", 'k', 1, P_KIND},
		{"slots", 0, 1, P_SLOTS}, {"max-msg", 0, 1, P_MAXMSG},
		{"hex", 'x', 0, P_HEX}, {"stdin", 0, 0, P_STDIN},
		{"timeout", 't', 1, P_TIMEOUT}, {"shut", 0, 0, P_SHUT}, {0}};
	struct put_opts po;
	shmbus_channel_info_t ci;
	struct cli_args a;
	shmbus_bus_t *bus;
	const char *chan;
	int o, r, rc, exists, kind;

	memset(&po, 0, sizeof(po));
	po.dtype = -1;
	po.timeout_ns = 5000000000ll;
	cli_args_init(&a, argc, argv);
	while ((o = cli_next_opt(&a, opts)) > 0) {
		if (o == CLI_OPT_HELP) {
			fputs(put_help, stdout);
			return EX_OK;
		}
		if (parse_put_opt(o, a.arg, &po))
			return EX_USAGE;
	}
	if (o < 0)
		return EX_USAGE;
	if (a.npos < 2)
		return cli_usage_error("needs BUS, CHANNEL and VALUES");
	chan = a.pos[1];
	rc = cli_open_bus(a.pos[0], SHMBUS_BUS_NO_PEER, &bus);
	if (rc)
		return rc;
	r = shmbus_channel_info(bus, chan, &ci);
	exists = r == 0;
	if (r && !(r == SHMBUS_ENOENT && po.create)) {
		rc = cli_fail(r, "cannot write '%s'", chan);
		if (r == SHMBUS_ENOENT)
			fprintf(stderr, "(--create makes a new channel)\n");
		goto out;
	}
	kind = exists ? ci.kind : (po.kind ? po.kind : (po.slots || po.max_msg)
	                                   ? SHMBUS_KIND_QUEUE : SHMBUS_KIND_STATE);
	if (exists && po.kind && po.kind != kind) {
		rc = cli_msg(cli_exit_code(SHMBUS_ETYPE), "channel '%s' of bus '%s' is a %s, not a %s",
		             chan, a.pos[0], shmbus_kind_name(kind), shmbus_kind_name(po.kind));
		goto out;
	}
	if (kind == SHMBUS_KIND_STATE) {
		if (po.shut || po.slots || po.max_msg)
			rc = cli_usage_error("--shut, --slots and --max-msg are for queues; '%s' is a state channel",
			                     chan);
		else
			rc = state_put(bus, chan, &po, exists, a.pos + 2, a.npos - 2);
	} else if (kind == SHMBUS_KIND_QUEUE) {
		if (po.ndim || (po.dtype >= 0 && po.dtype != SHMBUS_BYTES))
			rc = cli_usage_error("queue messages are bytes: --dtype and --shape do not apply");
		else if (a.npos == 2 && !po.from_stdin && !po.shut)
			rc = cli_usage_error("missing the messages to put (or --stdin, --shut)");
		else if (po.from_stdin && a.npos > 2)
			rc = cli_usage_error("give messages or --stdin, not both");
		else if (!exists && (rc = create_queue(bus, chan, &po)) != 0)
			;
		else
			rc = queue_put(bus, chan, a.pos + 2, a.npos - 2, po.hex, po.from_stdin,
			               po.shut, po.timeout_ns);
	} else if (kind == SHMBUS_KIND_ARRAY || kind == SHMBUS_KIND_LIST ||
	           kind == SHMBUS_KIND_DICT) {
		uint64_t length = po.ndim ? po.shape[0] : count_tokens(a.pos + 2, a.npos - 2);

		if (po.shut || po.slots || po.max_msg || po.from_stdin ||
		    ((exists || kind != SHMBUS_KIND_ARRAY) && (po.ndim || po.dtype >= 0)))
			rc = cli_usage_error("'%s' is a %s: only --hex applies%s", chan,
			                     shmbus_kind_name(kind),
			                     kind == SHMBUS_KIND_ARRAY ? " (and --dtype, --shape to create it)" : "");
		else if (po.ndim > 1)
			rc = cli_usage_error("an array has one dimension; --shape is its length");
		else if (a.npos == 2)
			rc = cli_usage_error("missing the VALUES to write");
		else if (!exists && (rc = container_create(bus, chan, kind,
		                                           po.dtype >= 0 ? po.dtype : SHMBUS_FLOAT64,
		                                           length)) != 0)
			;
		else
			rc = container_put(bus, chan, kind, a.pos + 2, a.npos - 2, po.hex);
	} else {
		rc = cli_msg(EX_USAGE, "channel '%s' is a %s; put writes state, queue, array, list and dict channels",
		             chan, shmbus_kind_name(kind) ? shmbus_kind_name(kind) : "channel of unknown kind");
	}
out:
	shmbus_bus_close(bus);
	return rc;
}

/* ---- watch ------------------------------------------------------------ */

static const char watch_help[] =
	"Usage: shmbus watch [OPTIONS] BUS CHANNEL\n"
	"\n"
	"Print the channel's current value, then each new one as it is published,\n"
	"as 'SEQ: VALUE' (a jump in SEQ means values came faster than they were\n"
	"printed; a state channel keeps only the latest). On a queue, take every\n"
	"message for a consumer group and print it as 'SEQ: MESSAGE'. Ctrl+C stops\n"
	"cleanly with exit code 0.\n"
	"\n"
	"  -j, --json          one JSON object per line (as 'shmbus get --json')\n"
	"  -x, --hex           print the bytes in hex\n"
	"  -n, --count N       stop after N values or messages\n"
	"  -t, --timeout T     stop with exit code 3 if nothing new comes within T\n"
	"  -g, --group NAME    queue: consumer group (default 'cli')\n"
	"      --latest        queue: a new group starts at the newest message\n";

static int state_watch(shmbus_bus_t *bus, const char *chan, int json, int hex,
                       uint64_t count, int64_t timeout_ns)
{
	shmbus_channel_info_t ci;
	shmbus_state_t *st = NULL;
	uint64_t last = 0, printed = 0, seq;
	void *buf = NULL;
	int rc, r;

	rc = open_state(bus, chan, &st, &ci);
	if (rc)
		return rc;
	buf = malloc(ci.value_size ? ci.value_size : 1);
	if (!buf) {
		rc = cli_msg(EX_ERROR, "out of memory for a %" PRIu64 "-byte value", ci.value_size);
		goto out;
	}
	for (;;) {
		r = shmbus_state_read(st, buf, ci.value_size, &seq);
		if (r == 0 && seq > last) {
			print_state(&ci, buf, seq, json, hex, 1);
			if (cli_flush())
				break;  /* the reader of our output went away */
			last = seq;
			if (count && ++printed >= count)
				break;
		} else if (r && r != SHMBUS_ENODATA) {
			rc = cli_fail(r, "channel '%s' of bus '%s'", chan, shmbus_bus_name(bus));
			break;
		}
		r = wait_newer(st, last, cli_deadline(timeout_ns));
		if (r == SHMBUS_EINTR)
			break;          /* Ctrl+C: a clean stop */
		if (r == SHMBUS_ETIMEDOUT) {
			rc = cli_msg(EX_TIMEOUT, "no new value on channel '%s' within the timeout", chan);
			break;
		}
		if (r) {
			rc = cli_fail(r, "channel '%s' of bus '%s'", chan, shmbus_bus_name(bus));
			break;
		}
	}
out:
	free(buf);
	shmbus_state_close(st);
	return rc;
}

int cmd_watch(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{"json", 'j', 0, O_JSON}, {"hex", 'x', 0, O_HEX},
		{"timeout", 't', 1, O_TIMEOUT}, {"group", 'g', 1, O_GROUP},
		{"count", 'n', 1, O_COUNT}, {"latest", 0, 0, O_LATEST}, {0}};
	struct queue_get_opts qo;
	shmbus_channel_info_t ci;
	int json = 0, hex = 0, o, rc;
	int64_t timeout_ns = SHMBUS_FOREVER;
	struct cli_args a;
	shmbus_bus_t *bus;

	memset(&qo, 0, sizeof(qo));
	qo.group = "cli";
	cli_args_init(&a, argc, argv);
	while ((o = cli_next_opt(&a, opts)) > 0) {
		switch (o) {
		case CLI_OPT_HELP:
			fputs(watch_help, stdout);
			return EX_OK;
		case O_JSON: json = 1; break;
		case O_HEX: hex = 1; break;
		case O_LATEST: qo.latest = 1; break;
		case O_GROUP: qo.group = a.arg; break;
		case O_TIMEOUT:
			if (cli_parse_duration(a.arg, "timeout", &timeout_ns))
				return EX_USAGE;
			break;
		case O_COUNT:
			if (cli_parse_u64(a.arg, "count", &qo.count))
				return EX_USAGE;
			break;
		}
	}
	if (o < 0)
		return EX_USAGE;
	if (a.npos != 2)
		return cli_usage_error(a.npos < 2 ? "needs BUS and CHANNEL" : "takes only BUS and CHANNEL");
	rc = open_channel(a.pos[0], a.pos[1], &bus, &ci);
	if (rc)
		return rc;
	if (ci.kind == SHMBUS_KIND_STATE) {
		rc = state_watch(bus, a.pos[1], json, hex, qo.count, timeout_ns);
	} else if (ci.kind == SHMBUS_KIND_QUEUE) {
		qo.follow = 1;
		qo.json = json;
		qo.hex = hex;
		qo.timeout_ns = timeout_ns;
		rc = queue_get(bus, a.pos[1], &qo);
	} else {
		const char *k = shmbus_kind_name(ci.kind);

		rc = cli_msg(EX_USAGE, "channel '%s' is a %s; watch follows state and queue channels",
		             a.pos[1], k ? k : "channel of unknown kind");
	}
	shmbus_bus_close(bus);
	return rc;
}

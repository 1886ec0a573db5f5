/*
 * cmd_put.c -- `shmbus put`: write a state value, add messages to a queue,
 * or set container elements; with --create, make the bus and the channel
 * first if they are missing. A new state channel takes its shape from the
 * values given unless --shape says otherwise; an existing one is opened as
 * it is and --dtype/--shape are checked against it, naming both.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char put_help[] =
	"Usage: shmbus put [OPTIONS] BUS CHANNEL VALUES...\n"
	"\n"
	"State channel: write one value. VALUES are the elements, parsed by the\n"
	"channel's dtype, separated by spaces or commas, brackets allowed\n"
	"('1 2 3', '1,2,3', '[[1,2],[3,4]]'); their number must match the shape.\n"
	"A bytes channel takes one string (padded with NULs) or --hex. On a\n"
	"single-writer channel (the default) the write fails with exit code 5\n"
	"while another live process is the writer; a channel made with\n"
	"--writers many takes writes from any process in turn.\n"
	"\n"
	"Queue channel: each VALUE is one message (its bytes, as given).\n"
	"Array: all its elements, as for a state value (each element is set\n"
	"atomically, the array as a whole is not). List: each VALUE is appended.\n"
	"Dict: each VALUE is KEY=VALUE.\n"
	"\n"
	"  -c, --create        create the channel if it does not exist, and the bus\n"
	"                      too (with the defaults of 'shmbus create')\n"
	"  -d, --dtype T       with --create: int8..uint64, float32, float64, bool,\n"
	"                      bytes (default float64; a queue's messages are bytes)\n"
	"  -S, --shape S       with --create: e.g. 3 or 2,3 (default: as many\n"
	"                      elements as VALUES; a bytes value: the string length)\n"
	"  -k, --kind K        with --create: state (default), queue, array (of\n"
	"                      --dtype, --shape LENGTH), list or dict\n"
	"      --writers W     with --create, state: one (default) or many (any\n"
	"                      process may write, in turn; recorded in the channel)\n"
	"      --slots N       with --create --kind queue: ring slots (default 1024, fewer\n"
	"                      on a bus with less room; see shmbus.h)\n"
	"      --max-msg SIZE  with --create --kind queue: largest message (4K; with\n"
	"                      --cell-bytes: the whole ring)\n"
	"      --cell-bytes SIZE\n"
	"                      with --create --kind queue: a queue of cells of SIZE\n"
	"                      bytes (a multiple of 8; --slots then counts cells),\n"
	"                      a message taking the cells it needs (default 0: a\n"
	"                      message per slot of --max-msg bytes)\n"
	"                      On an existing queue, --slots, --max-msg and\n"
	"                      --cell-bytes are checked: an error if they differ\n"
	"  -x, --hex           VALUES are hex bytes (bytes channels and queues)\n"
	"      --stdin         read values from standard input, one per line: each\n"
	"                      line a state value (written in turn) or a message\n"
	"  -t, --timeout T     queue: wait up to T for room in a full ring (default 5s)\n"
	"      --wait-groups N queue: first wait up to T for N consumer groups (with\n"
	"                      no group, a queue overwrites its oldest message once\n"
	"                      the ring turns over); no VALUES: only wait\n"
	"      --shut          queue: mark end of stream after the messages\n";

enum { P_CREATE = 'c', P_DTYPE = 'd', P_SHAPE = 'S', P_KIND = 'k', P_SLOTS = 1,
       P_MAXMSG = 2, P_HEX = 'x', P_STDIN = 3, P_TIMEOUT = 't', P_SHUT = 4,
       P_WAIT_GROUPS = 5, P_WRITERS = 6, P_CELL = 7 };

struct put_opts {
	int create, hex, from_stdin, shut;
	int dtype;              /* -1: not given */
	uint32_t ndim;          /* 0: not given */
	uint64_t shape[SHMBUS_MAX_DIMS];
	int kind;
	int writers;            /* shmbus_writers_t; 0: not given */
	uint64_t slots, max_msg, cell_bytes;
	int64_t timeout_ns;
	uint64_t wait_groups;   /* 0: do not wait */
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
	so.writers = po->writers;
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
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)};
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

/* Create the queue, or check that the existing one has the limits the
 * command line names (the library refuses one that does not). */
static int create_queue(shmbus_bus_t *bus, const char *chan, const struct put_opts *po, int exists)
{
	shmbus_queue_opts_t qo;
	shmbus_queue_t *q;
	int r;

	if (po->slots > UINT32_MAX)
		return cli_usage_error("--slots %" PRIu64 " is too many", po->slots);
	shmbus_queue_opts_init(&qo);
	qo.slots = (uint32_t)po->slots;
	qo.max_msg = po->max_msg;
	qo.cell_bytes = po->cell_bytes;
	r = shmbus_queue_open(bus, chan, &qo, &q);
	if (r && exists)
		return cli_fail(r, "queue '%s' on bus '%s' does not match the command line",
		                chan, shmbus_bus_name(bus));
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
	case P_WRITERS:
		if (strcmp(arg, "one") == 0)
			po->writers = SHMBUS_WRITERS_ONE;
		else if (strcmp(arg, "many") == 0)
			po->writers = SHMBUS_WRITERS_MANY;
		else
			return cli_usage_error("--writers '%s': use one or many", arg);
		break;
	case P_SLOTS:
		if (cli_parse_u64(arg, "slots", &po->slots))
			return EX_USAGE;
		break;
	case P_MAXMSG:
		if (cli_parse_size(arg, "max-msg", &po->max_msg))
			return EX_USAGE;
		break;
	case P_CELL:
		if (cli_parse_size(arg, "cell-bytes", &po->cell_bytes))
			return EX_USAGE;
		break;
	case P_TIMEOUT:
		if (cli_parse_duration(arg, "timeout", &po->timeout_ns))
			return EX_USAGE;
		break;
	case P_WAIT_GROUPS:
		if (cli_parse_u64(arg, "wait-groups", &po->wait_groups))
			return EX_USAGE;
		if (po->wait_groups > UINT32_MAX)
			return cli_usage_error("--wait-groups %" PRIu64 ": too many", po->wait_groups);
		break;
	}
	return 0;
}

/* --create on a missing bus: make it as `shmbus create BUS` would (a
 * creator racing us wins; its bus is used). */
static int create_bus(const char *name)
{
	shmbus_bus_opts_t o;
	shmbus_bus_t *bus;
	int r;

	shmbus_bus_opts_init(&o);
	o.flags = SHMBUS_BUS_NO_PEER;
	r = shmbus_bus_create(name, &o, &bus);
	if (r == SHMBUS_EEXIST)
		return 0;
	if (r)
		return cli_fail(r, "cannot create bus '%s'", name);
	shmbus_bus_close(bus);
	return 0;
}

int cmd_put(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{"create", 'c', 0, P_CREATE}, {"dtype", 'd', 1, P_DTYPE},
		{"shape", 'S', 1, P_SHAPE}, {"kind", 'k', 1, P_KIND},
		{"slots", 0, 1, P_SLOTS}, {"max-msg", 0, 1, P_MAXMSG},
		{"hex", 'x', 0, P_HEX}, {"stdin", 0, 0, P_STDIN},
		{"timeout", 't', 1, P_TIMEOUT}, {"shut", 0, 0, P_SHUT},
		{"wait-groups", 0, 1, P_WAIT_GROUPS}, {"writers", 0, 1, P_WRITERS},
		{"cell-bytes", 0, 1, P_CELL}, {0}};
	struct put_opts po;
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)};
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
	if (po.create && (rc = create_bus(a.pos[0])) != 0)
		return rc;
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
	kind = exists ? ci.kind : (po.kind ? po.kind : (po.slots || po.max_msg ||
	                                    po.cell_bytes) ? SHMBUS_KIND_QUEUE : SHMBUS_KIND_STATE);
	if (exists && po.kind && po.kind != kind) {
		rc = cli_msg(cli_exit_code(SHMBUS_ETYPE), "channel '%s' of bus '%s' is a %s, not a %s",
		             chan, a.pos[0], shmbus_kind_name(kind), shmbus_kind_name(po.kind));
		goto out;
	}
	if (po.writers && kind != SHMBUS_KIND_STATE) {
		rc = cli_usage_error("--writers is for state channels; '%s' is a %s", chan,
		                     shmbus_kind_name(kind));
		goto out;
	}
	if (kind == SHMBUS_KIND_STATE) {
		if (po.shut || po.slots || po.max_msg || po.cell_bytes || po.wait_groups)
			rc = cli_usage_error("--shut, --slots, --max-msg, --cell-bytes and --wait-groups are for queues; '%s' is a state channel",
			                     chan);
		else if (po.writers && !po.create)
			rc = cli_usage_error("--writers applies with --create");
		else
			rc = state_put(bus, chan, &po, exists, a.pos + 2, a.npos - 2);
	} else if (kind == SHMBUS_KIND_QUEUE) {
		if (po.ndim || (po.dtype >= 0 && po.dtype != SHMBUS_BYTES))
			rc = cli_usage_error("queue messages are bytes: --dtype and --shape do not apply");
		else if (a.npos == 2 && !po.from_stdin && !po.shut && !po.wait_groups)
			rc = cli_usage_error("missing the messages to put (or --stdin, --shut, --wait-groups)");
		else if (po.from_stdin && a.npos > 2)
			rc = cli_usage_error("give messages or --stdin, not both");
		else if ((!exists || po.slots || po.max_msg || po.cell_bytes) &&
		         (rc = create_queue(bus, chan, &po, exists)) != 0)
			;
		else
			rc = queue_put(bus, chan, a.pos + 2, a.npos - 2, po.hex, po.from_stdin,
			               po.shut, (uint32_t)po.wait_groups, po.timeout_ns);
	} else if (kind == SHMBUS_KIND_ARRAY || kind == SHMBUS_KIND_LIST ||
	           kind == SHMBUS_KIND_DICT) {
		uint64_t length = po.ndim ? po.shape[0] : count_tokens(a.pos + 2, a.npos - 2);

		if (po.shut || po.slots || po.max_msg || po.cell_bytes || po.from_stdin ||
		    po.wait_groups ||
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

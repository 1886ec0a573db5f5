/*
 * cmd_get.c -- `shmbus get`, and what get, put and watch share about
 * opening channels and showing state values. The state half of each lives
 * here and in cmd_put.c / cmd_watch.c; a queue is handed to cmd_queue.c and
 * a container to cmd_containers.c once the directory said what kind the
 * channel is.
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

int cli_open_channel(const char *bus_name, const char *chan, shmbus_bus_t **bus,
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

int cli_open_state(shmbus_bus_t *bus, const char *chan, shmbus_state_t **st,
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

void cli_print_state(const shmbus_channel_info_t *ci, const void *buf, uint64_t seq,
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
int cli_wait_newer(shmbus_state_t *st, uint64_t after, int64_t end)
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

static int state_get(shmbus_bus_t *bus, const char *chan, int json, int hex, int with_seq,
                     int64_t timeout_ns)
{
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)};
	shmbus_state_t *st = NULL;
	void *buf = NULL;
	uint64_t seq = 0;
	int r, rc = EX_OK;

	rc = cli_open_state(bus, chan, &st, &ci);
	if (rc)
		return rc;
	buf = malloc(ci.value_size ? ci.value_size : 1);
	if (!buf) {
		rc = cli_msg(EX_ERROR, "out of memory for a %" PRIu64 "-byte value", ci.value_size);
		goto out;
	}
	r = shmbus_state_read(st, buf, ci.value_size, &seq);
	if (r == SHMBUS_ENODATA && timeout_ns != 0) {
		r = cli_wait_newer(st, 0, cli_deadline(timeout_ns));
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
	cli_print_state(&ci, buf, seq, json, hex, with_seq);
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
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)};
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
	rc = cli_open_channel(a.pos[0], a.pos[1], &bus, &ci);
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

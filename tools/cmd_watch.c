/*
 * cmd_watch.c -- `shmbus watch`: the current value, then each new one, as
 * "SEQ: VALUE" until Ctrl+C (exit 0), --count or --timeout. A state
 * channel keeps only its latest value, so a reader slower than the writer
 * sees gaps in SEQ, never a torn or repeated value. On a queue, watch is
 * `get --follow` with sequence numbers.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

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

	rc = cli_open_state(bus, chan, &st, &ci);
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
			cli_print_state(&ci, buf, seq, json, hex, 1);
			if (cli_flush())
				break;  /* the reader of our output went away */
			last = seq;
			if (count && ++printed >= count)
				break;
		} else if (r && r != SHMBUS_ENODATA) {
			rc = cli_fail(r, "channel '%s' of bus '%s'", chan, shmbus_bus_name(bus));
			break;
		}
		r = cli_wait_newer(st, last, cli_deadline(timeout_ns));
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
	rc = cli_open_channel(a.pos[0], a.pos[1], &bus, &ci);
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

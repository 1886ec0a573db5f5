/*
 * cmd_bus.c -- the subcommands about whole buses: ls, info, create, rm, gc.
 *
 * A bus is classified by its peer table, read without attaching
 * (SHMBUS_BUS_NO_PEER, so looking never changes what is seen):
 *   live   at least one registered process still exists;
 *   stale  processes registered, none of them alive: they died (or exited
 *          without closing) and nobody cleaned up;
 *   idle   nobody registered: made by `shmbus create`, or every user
 *          closed it cleanly and left it for the next;
 *   bad    it cannot be opened (corrupt, other ABI version, not ours).
 * `gc` removes stale buses (and idle ones with --idle); it never touches a
 * bad one, which needs a human and `rm --force`.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct bus_state {
	int rc;                 /* 0, or the open error */
	char err[512];
	shmbus_bus_info_t info;
	const char *status;
};

static void bus_classify(const char *name, struct bus_state *s)
{
	shmbus_bus_opts_t o;
	shmbus_bus_t *bus = NULL;

	memset(s, 0, sizeof(*s));
	s->info.size_of = sizeof(s->info);
	shmbus_bus_opts_init(&o);
	o.flags = SHMBUS_BUS_NO_PEER | cli_bus_flags;
	s->rc = shmbus_bus_open(name, &o, &bus);
	if (s->rc == 0)
		s->rc = shmbus_bus_info(bus, &s->info);
	if (s->rc) {
		const char *e = shmbus_last_error();

		snprintf(s->err, sizeof(s->err), "%s", *e ? e : shmbus_strerror(s->rc));
		s->status = "bad";
	} else if (s->info.live_peers > 0) {
		s->status = "live";
	} else if (s->info.peers > 0) {
		s->status = "stale";
	} else {
		s->status = "idle";
	}
	if (bus)
		shmbus_bus_close(bus);
}

/* ---- ls --------------------------------------------------------------- */

struct names {
	char **v;
	size_t n, cap;
};

static int collect(const char *name, void *arg)
{
	struct names *ns = arg;

	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 16;
		char **v = realloc(ns->v, cap * sizeof(*v));

		if (!v)
			return SHMBUS_ENOMEM;
		ns->v = v;
		ns->cap = cap;
	}
	ns->v[ns->n] = strdup(name);
	if (!ns->v[ns->n])
		return SHMBUS_ENOMEM;
	ns->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(struct names *ns)
{
	size_t i;

	for (i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
}

static int list_buses(struct names *ns)
{
	int r;

	memset(ns, 0, sizeof(*ns));
	r = shmbus_list(collect, ns);
	if (r) {
		names_free(ns);
		if (r == SHMBUS_ENOMEM)
			return cli_msg(EX_ERROR, "out of memory");
		return cli_fail(r, "cannot list buses");
	}
	qsort(ns->v, ns->n, sizeof(*ns->v), cmp_str);
	return 0;
}

static const char ls_help[] =
	"Usage: shmbus ls [--json]\n"
	"\n"
	"List the shmbus buses in /dev/shm (file: buses are not listed) with their\n"
	"size, channels, peers (live/registered) and status:\n"
	"  live   at least one attached process is alive\n"
	"  stale  processes attached, none alive (crashed): 'shmbus gc' removes it\n"
	"  idle   no process attached (created and left for later use)\n"
	"  bad    cannot be opened (the message says why)\n"
	"\n"
	"  --json   one JSON array of objects: name, size, channels, peers,\n"
	"           live_peers, status, and error for a bad bus\n";

int cmd_ls(int argc, char **argv)
{
	static const struct cli_opt opts[] = {{"json", 'j', 0, 'j'}, {0}};
	struct cli_args a;
	struct names ns;
	int json = 0, o, r, w = 4;
	size_t i;

	cli_args_init(&a, argc, argv);
	while ((o = cli_next_opt(&a, opts)) > 0) {
		if (o == CLI_OPT_HELP) {
			fputs(ls_help, stdout);
			return EX_OK;
		}
		if (o == 'j')
			json = 1;
	}
	if (o < 0)
		return EX_USAGE;
	if (a.npos)
		return cli_usage_error("takes no arguments (got '%s')", a.pos[0]);
	r = list_buses(&ns);
	if (r)
		return r;
	for (i = 0; i < ns.n; i++)
		if (strlen(term_text(ns.v[i])) > (size_t)w)
			w = (int)strlen(term_text(ns.v[i]));
	if (json)
		fputs("[", stdout);
	else if (ns.n)
		printf("%-*s %10s %8s %7s  %s\n", w, "NAME", "SIZE", "CHANNELS", "PEERS", "STATUS");
	for (i = 0; i < ns.n; i++) {
		struct bus_state s;
		char size[32];

		bus_classify(ns.v[i], &s);
		if (json) {
			printf("%s\n  {\"name\": ", i ? "," : "");
			json_str(stdout, ns.v[i], strlen(ns.v[i]));
			if (s.rc == 0)
				printf(", \"size\": %" PRIu64 ", \"channels\": %u, \"peers\": %u, \"live_peers\": %u",
				       s.info.size, s.info.channels, s.info.peers, s.info.live_peers);
			printf(", \"status\": \"%s\"", s.status);
			if (s.rc) {
				printf(", \"error\": ");
				json_str(stdout, s.err, strlen(s.err));
			}
			printf("}");
			continue;
		}
		if (s.rc) {
			printf("%-*s %10s %8s %7s  bad: %s\n", w, term_text(ns.v[i]), "-", "-", "-",
			       term_text(s.err));
			continue;
		}
		human_size(size, sizeof(size), s.info.size);
		printf("%-*s %10s %8u %3u/%-3u  %s\n", w, term_text(ns.v[i]), size, s.info.channels,
		       s.info.live_peers, s.info.peers, s.status);
	}
	if (json)
		printf("%s]\n", ns.n ? "\n" : "");
	names_free(&ns);
	cli_flush();
	return EX_OK;
}

/* ---- info ------------------------------------------------------------- */

static const char info_help[] =
	"Usage: shmbus info [--json] BUS\n"
	"\n"
	"Describe a bus: size and heap use, attached peers (pid, alive, attach\n"
	"time), and every channel with its kind, dtype, shape, value size and\n"
	"sequence number (state: the last value's; queue: the next message's).\n"
	"For a queue also: its ring ('N slots of M B', or 'N cells of M B' and\n"
	"the largest message for a queue of cells), head, depth (messages not\n"
	"yet consumed by the slowest group; with cells, counted in cells),\n"
	"producers, whether it is shut, and per consumer group its cursor, lag\n"
	"and members (live/registered). A NATS bridge's status channel\n"
	"(_bridge.NAME) is decoded: connection, links, rates, lag, errors.\n"
	"\n"
	"  --json   one JSON object (fields as above)\n";

/* A bridge's status channel (docs/bridge.md): "_bridge.NAME", uint64 [16],
 * layout version 1. Decoded into words here; any other channel, or a
 * layout this command does not know, is shown as an ordinary channel. */
#define BRIDGE_FIELDS 16

static int is_bridge_status(const shmbus_channel_info_t *ci)
{
	return strncmp(ci->name, "_bridge.", 8) == 0 && strncmp(ci->name, "_bridge.pos.", 12) != 0 &&
	       ci->kind == SHMBUS_KIND_STATE && ci->dtype == SHMBUS_UINT64 && ci->ndim == 1 &&
	       ci->shape[0] == BRIDGE_FIELDS;
}

static int bridge_read(shmbus_bus_t *bus, const char *chan, uint64_t *f)
{
	shmbus_state_opts_t so;
	shmbus_state_t *st;
	int r;

	shmbus_state_opts_init(&so);
	so.create = 0;
	so.ndim = 0;
	r = shmbus_state_open(bus, chan, &so, &st);
	if (r)
		return r;
	r = shmbus_state_read(st, f, BRIDGE_FIELDS * sizeof(uint64_t), NULL);
	shmbus_state_close(st);
	if (r == 0 && f[0] != 1)
		r = SHMBUS_EVERSION;
	return r;
}

static void bridge_status(shmbus_bus_t *bus, const shmbus_channel_info_t *ci, int json)
{
	static const char *names[BRIDGE_FIELDS] = {
		"layout", "pid", "running", "connected", "reconnects", "links",
		"links_running", "links_failed", "out_total", "in_total", "out_per_s",
		"in_per_s", "lag", "errors", "uptime_ms", "links_done"};
	uint64_t f[BRIDGE_FIELDS];
	int i;

	if (bridge_read(bus, ci->name, f) != 0)
		return;
	if (json) {
		printf(", \"bridge\": {");
		for (i = 1; i < BRIDGE_FIELDS; i++)
			printf("%s\"%s\": %" PRIu64, i > 1 ? ", " : "", names[i], f[i]);
		printf("}");
		return;
	}
	printf("      bridge %s: pid %" PRIu64 ", %s, %s NATS, %" PRIu64 " reconnect%s; links %" PRIu64
	       " (%" PRIu64 " running, %" PRIu64 " failed, %" PRIu64 " done)\n",
	       term_text(ci->name + 8), f[1], f[2] ? "running" : "stopped",
	       f[3] ? "connected to" : "not connected to", f[4], f[4] == 1 ? "" : "s", f[5],
	       f[6], f[7], f[15]);
	printf("      out %" PRIu64 " (%" PRIu64 "/s), in %" PRIu64 " (%" PRIu64 "/s), lag %" PRIu64
	       ", errors %" PRIu64 ", up %.1f s\n", f[8], f[10], f[9], f[11], f[12], f[13],
	       (double)f[14] / 1e3);
}

static void info_text(shmbus_bus_t *bus, const char *name, const shmbus_bus_info_t *bi,
                      const shmbus_peer_info_t *peers, size_t npeers,
                      const shmbus_channel_info_t *ch, size_t nch)
{
	char b1[32], b2[32], b3[64];
	size_t i;

	human_size(b1, sizeof(b1), bi->size);
	printf("bus %s: %s%s, ABI %u, %s\n", term_text(name), b1, bi->persistent ? ", file-backed" : "",
	       bi->abi_version, bi->live_peers ? "live" : bi->peers ? "stale" : "idle");
	human_size(b1, sizeof(b1), bi->heap_used);
	human_size(b2, sizeof(b2), bi->heap_size);
	time_text(b3, sizeof(b3), bi->create_time_ns);
	printf("  heap %s of %s used; created %s by pid %u\n", b1, b2, b3, bi->creator_pid);
	printf("  channels %u of %u; peers %u of %u (%u live)\n", bi->channels,
	       bi->max_channels, bi->peers, bi->max_peers, bi->live_peers);
	if (npeers) {
		printf("\npeers:\n  %-8s %-5s %s\n", "PID", "ALIVE", "ATTACHED");
		for (i = 0; i < npeers; i++) {
			time_text(b3, sizeof(b3), peers[i].attach_time_ns);
			printf("  %-8u %-5s %s\n", peers[i].pid, peers[i].alive ? "yes" : "no", b3);
		}
	}
	if (!nch)
		return;
	printf("\nchannels:\n  %-20s %-9s %-8s %-12s %10s %12s\n", "NAME", "KIND", "DTYPE",
	       "SHAPE", "VALUE", "SEQ");
	for (i = 0; i < nch; i++) {
		const char *dt = shmbus_dtype_name(ch[i].dtype);
		const char *kind = shmbus_kind_name(ch[i].kind);
		uint32_t nd = ch[i].ndim <= SHMBUS_MAX_DIMS ? ch[i].ndim : SHMBUS_MAX_DIMS;

		shape_text(b3, sizeof(b3), nd, ch[i].shape);
		human_size(b1, sizeof(b1), ch[i].value_size);
		if (ch[i].kind == SHMBUS_KIND_QUEUE)
			snprintf(b3, sizeof(b3), "-");
		if (ch[i].kind != SHMBUS_KIND_STATE && ch[i].kind != SHMBUS_KIND_QUEUE &&
		    ch[i].kind != SHMBUS_KIND_ARRAY)
			snprintf(b1, sizeof(b1), "-");
		printf("  %-20s %-9s %-8s %-12s %10s %12" PRIu64 "\n", term_text(ch[i].name),
		       kind ? kind : "?", dt ? dt : "?", nd ? b3 : "-", b1, ch[i].seq);
		if (ch[i].kind == SHMBUS_KIND_QUEUE)
			queue_info(bus, ch[i].name, 0);
		if (ch[i].kind == SHMBUS_KIND_STATE && (ch[i].flags & SHMBUS_CHANNEL_MANY_WRITERS))
			printf("      many writers (taking turns)\n");
		if (is_bridge_status(&ch[i]))
			bridge_status(bus, &ch[i], 0);
	}
}

static void info_json(shmbus_bus_t *bus, const char *name, const shmbus_bus_info_t *bi,
                      const shmbus_peer_info_t *peers, size_t npeers,
                      const shmbus_channel_info_t *ch, size_t nch)
{
	size_t i;

	printf("{\"name\": ");
	json_str(stdout, name, strlen(name));
	printf(", \"status\": \"%s\", \"size\": %" PRIu64 ", \"abi_version\": %u"
	       ", \"heap_size\": %" PRIu64 ", \"heap_used\": %" PRIu64
	       ", \"max_channels\": %u, \"max_peers\": %u, \"live_peers\": %u"
	       ", \"creator_pid\": %u, \"create_time_ns\": %" PRIu64 ", \"persistent\": %s,\n",
	       bi->live_peers ? "live" : bi->peers ? "stale" : "idle", bi->size,
	       bi->abi_version, bi->heap_size, bi->heap_used, bi->max_channels,
	       bi->max_peers, bi->live_peers, bi->creator_pid, bi->create_time_ns,
	       bi->persistent ? "true" : "false");
	printf(" \"peers\": [");
	for (i = 0; i < npeers; i++)
		printf("%s{\"pid\": %u, \"alive\": %s, \"start_time\": %" PRIu64
		       ", \"attach_time_ns\": %" PRIu64 "}", i ? ", " : "", peers[i].pid,
		       peers[i].alive ? "true" : "false", peers[i].start_time,
		       peers[i].attach_time_ns);
	printf("],\n \"channels\": [");
	for (i = 0; i < nch; i++) {
		const char *dt = shmbus_dtype_name(ch[i].dtype);
		const char *kind = shmbus_kind_name(ch[i].kind);
		uint32_t nd = ch[i].ndim <= SHMBUS_MAX_DIMS ? ch[i].ndim : SHMBUS_MAX_DIMS;

		printf("%s\n  {\"name\": ", i ? "," : "");
		json_str(stdout, ch[i].name, strnlen(ch[i].name, sizeof(ch[i].name)));
		printf(", \"kind\": ");
		json_str(stdout, kind ? kind : "?", strlen(kind ? kind : "?"));
		printf(", \"dtype\": ");
		json_str(stdout, dt ? dt : "?", strlen(dt ? dt : "?"));
		printf(", \"shape\": ");
		json_shape(stdout, nd, ch[i].shape);
		printf(", \"value_size\": %" PRIu64 ", \"capacity\": %" PRIu64
		       ", \"area_size\": %" PRIu64 ", \"seq\": %" PRIu64,
		       ch[i].value_size, ch[i].capacity, ch[i].area_size, ch[i].seq);
		if (ch[i].kind == SHMBUS_KIND_STATE)
			printf(", \"writers\": \"%s\"",
			       ch[i].flags & SHMBUS_CHANNEL_MANY_WRITERS ? "many" : "one");
		if (ch[i].kind == SHMBUS_KIND_QUEUE) {
			printf(", ");
			queue_info(bus, ch[i].name, 1);
		}
		if (is_bridge_status(&ch[i]))
			bridge_status(bus, &ch[i], 1);
		printf("}");
	}
	printf("%s]}\n", nch ? "\n " : "");
}

int cmd_info(int argc, char **argv)
{
	static const struct cli_opt opts[] = {{"json", 'j', 0, 'j'}, {0}};
	shmbus_peer_info_t *peers = NULL;
	shmbus_channel_info_t *ch = NULL;
	size_t npeers = 0, nch = 0;
	shmbus_bus_info_t bi = {.size_of = sizeof(bi)};
	struct cli_args a;
	shmbus_bus_t *bus;
	int json = 0, o, r;

	cli_args_init(&a, argc, argv);
	while ((o = cli_next_opt(&a, opts)) > 0) {
		if (o == CLI_OPT_HELP) {
			fputs(info_help, stdout);
			return EX_OK;
		}
		if (o == 'j')
			json = 1;
	}
	if (o < 0)
		return EX_USAGE;
	if (a.npos != 1)
		return cli_usage_error(a.npos ? "takes one bus name" : "missing the bus name");
	r = cli_open_bus(a.pos[0], SHMBUS_BUS_NO_PEER, &bus);
	if (r)
		return r;
	r = shmbus_bus_info(bus, &bi);
	if (!r) {
		peers = calloc(bi.max_peers ? bi.max_peers : 1, sizeof(*peers));
		ch = calloc(bi.max_channels ? bi.max_channels : 1, sizeof(*ch));
		if (!peers || !ch) {
			r = cli_msg(EX_ERROR, "out of memory");
			goto out;
		}
		ch[0].size_of = sizeof(*ch);   /* the size of every entry */
		r = shmbus_bus_peers(bus, peers, bi.max_peers, &npeers);
	}
	if (!r)
		r = shmbus_channel_list(bus, ch, bi.max_channels, &nch);
	if (r) {
		r = cli_fail(r, "bus '%s'", a.pos[0]);
		goto out;
	}
	if (npeers > bi.max_peers)
		npeers = bi.max_peers;
	if (nch > bi.max_channels)
		nch = bi.max_channels;
	if (json)
		info_json(bus, a.pos[0], &bi, peers, npeers, ch, nch);
	else
		info_text(bus, a.pos[0], &bi, peers, npeers, ch, nch);
	cli_flush();
out:
	free(peers);
	free(ch);
	shmbus_bus_close(bus);
	return r;
}

/* ---- create ----------------------------------------------------------- */

static const char create_help[] =
	"Usage: shmbus create [--size SIZE] [--mode MODE] [--max-channels N]\n"
	"                     [--max-peers N] BUS\n"
	"\n"
	"Create an empty bus (fails with exit code 4 if it exists). BUS is a name\n"
	"(/dev/shm/shmbus-BUS) or file:/path for a bus kept in a file.\n"
	"\n"
	"  --size SIZE        segment size, e.g. 64M (default 16M); the pages are\n"
	"                     reserved now, so a full /dev/shm fails here\n"
	"  --mode MODE        octal permission bits (default 0600)\n"
	"  --max-channels N   directory entries (default 64)\n"
	"  --max-peers N      processes attached at once (default 64)\n";

int cmd_create(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{"size", 's', 1, 's'}, {"mode", 'm', 1, 'm'},
		{"max-channels", 0, 1, 'c'}, {"max-peers", 0, 1, 'p'}, {0}};
	shmbus_bus_opts_t bo;
	struct cli_args a;
	shmbus_bus_t *bus;
	uint64_t v;
	int o, r;

	shmbus_bus_opts_init(&bo);
	bo.flags = SHMBUS_BUS_NO_PEER | cli_bus_flags;
	cli_args_init(&a, argc, argv);
	while ((o = cli_next_opt(&a, opts)) > 0) {
		switch (o) {
		case CLI_OPT_HELP:
			fputs(create_help, stdout);
			return EX_OK;
		case 's':
			if (cli_parse_size(a.arg, "size", &bo.size))
				return EX_USAGE;
			break;
		case 'm':
			if (cli_parse_mode(a.arg, &bo.mode))
				return EX_USAGE;
			break;
		case 'c':
		case 'p':
			if (cli_parse_u64(a.arg, o == 'c' ? "max-channels" : "max-peers", &v))
				return EX_USAGE;
			if (v == 0 || v > UINT32_MAX)
				return cli_usage_error("%s must be 1..%u", o == 'c' ? "max-channels" : "max-peers",
				                       UINT32_MAX);
			if (o == 'c')
				bo.max_channels = (uint32_t)v;
			else
				bo.max_peers = (uint32_t)v;
			break;
		}
	}
	if (o < 0)
		return EX_USAGE;
	if (a.npos != 1)
		return cli_usage_error(a.npos ? "takes one bus name" : "missing the bus name");
	r = shmbus_bus_create(a.pos[0], &bo, &bus);
	if (r)
		return cli_fail(r, "cannot create bus '%s'", a.pos[0]);
	shmbus_bus_close(bus);
	return EX_OK;
}

/* ---- rm --------------------------------------------------------------- */

static const char rm_help[] =
	"Usage: shmbus rm [--force] BUS [CHANNEL]\n"
	"       shmbus rm BUS QUEUE --group GROUP\n"
	"\n"
	"Remove a bus, or with CHANNEL one channel of it. Refused (exit code 5)\n"
	"while processes attached to the bus are alive, and refused for a bus that\n"
	"cannot be opened (corrupt, another version); --force removes anyway.\n"
	"Processes that have the bus open keep their mapping until they close it.\n"
	"\n"
	"With --group, remove one consumer group of a queue that nobody will use\n"
	"again: it stops holding producers back at once (a durable group otherwise\n"
	"does for ever), and messages its dead members held are dropped with it.\n"
	"Refused (exit code 5) while the group has a live member; producers and\n"
	"other groups may go on meanwhile.\n"
	"\n"
	"  -f, --force        remove even with live peers or a bus that fails to open\n"
	"  -g, --group GROUP  remove this consumer group of the queue CHANNEL\n";

/* rm BUS QUEUE --group GROUP */
static int rm_group(const char *name, const char *chan, const char *group)
{
	shmbus_bus_t *bus;
	int r = cli_open_bus(name, SHMBUS_BUS_NO_PEER, &bus);

	if (r)
		return r;
	r = queue_drop_group(bus, chan, group);
	shmbus_bus_close(bus);
	return r;
}

/* The pids of live peers, as text, for the refusal message. */
static void live_pids(shmbus_bus_t *bus, char *buf, size_t cap)
{
	shmbus_peer_info_t p[8];
	size_t n = 0, i, len = 0;

	buf[0] = '\0';
	if (shmbus_bus_peers(bus, p, 8, &n) != 0)
		return;
	for (i = 0; i < n && i < 8 && len < cap; i++)
		if (p[i].alive)
			len += (size_t)snprintf(buf + len, cap - len, "%s%u", len ? ", " : "", p[i].pid);
	if (n > 8 && len < cap)
		snprintf(buf + len, cap - len, ", ...");
}

int cmd_rm(int argc, char **argv)
{
	static const struct cli_opt opts[] = {{"force", 'f', 0, 'f'}, {"group", 'g', 1, 'g'}, {0}};
	shmbus_bus_opts_t bo;
	shmbus_bus_info_t bi = {.size_of = sizeof(bi)};
	struct cli_args a;
	shmbus_bus_t *bus;
	int force = 0, o, r;
	const char *name, *group = NULL;

	cli_args_init(&a, argc, argv);
	while ((o = cli_next_opt(&a, opts)) > 0) {
		if (o == CLI_OPT_HELP) {
			fputs(rm_help, stdout);
			return EX_OK;
		}
		if (o == 'f')
			force = 1;
		if (o == 'g')
			group = a.arg;
	}
	if (o < 0)
		return EX_USAGE;
	if (a.npos < 1 || a.npos > 2)
		return cli_usage_error(a.npos ? "takes a bus name and at most one channel"
		                              : "missing the bus name");
	name = a.pos[0];
	if (group) {
		if (a.npos != 2)
			return cli_usage_error("--group needs the queue: shmbus rm BUS QUEUE --group GROUP");
		if (force)
			return cli_usage_error("--force does not apply to --group (a group with a live member is never removed)");
		return rm_group(name, a.pos[1], group);
	}
	shmbus_bus_opts_init(&bo);
	bo.flags = SHMBUS_BUS_NO_PEER | cli_bus_flags;
	r = shmbus_bus_open(name, &bo, &bus);
	if (r == SHMBUS_ENOENT || (r && a.npos == 2))
		return cli_fail(r, "cannot open bus '%s'", name);
	if (r) {
		if (!force)
			return cli_fail(r, "bus '%s' cannot be opened to check for live peers (--force removes it anyway)",
			                name);
	} else {
		r = shmbus_bus_info(bus, &bi);
		if (r) {
			shmbus_bus_close(bus);
			return cli_fail(r, "bus '%s'", name);
		}
		if (bi.live_peers && !force) {
			char pids[128];

			live_pids(bus, pids, sizeof(pids));
			shmbus_bus_close(bus);
			return cli_msg(EX_BUSY, "bus '%s' has %u live peer%s (pid %s); --force removes it anyway",
			               name, bi.live_peers, bi.live_peers == 1 ? "" : "s", pids);
		}
		if (a.npos == 2) {
			r = shmbus_channel_delete(bus, a.pos[1]);
			shmbus_bus_close(bus);
			if (r)
				return cli_fail(r, "cannot remove channel '%s' of bus '%s'", a.pos[1], name);
			return EX_OK;
		}
		shmbus_bus_close(bus);
	}
	r = shmbus_bus_unlink(name);
	if (r)
		return cli_fail(r, "cannot remove bus '%s'", name);
	return EX_OK;
}

/* ---- gc --------------------------------------------------------------- */

static const char gc_help[] =
	"Usage: shmbus gc [--dry-run] [--idle] [BUS...]\n"
	"\n"
	"Clean up after crashed processes, on the named buses or on every bus in\n"
	"/dev/shm: a stale bus (processes registered, none alive) is removed; on a\n"
	"live bus the dead peers are reaped and what they held is released\n"
	"(writer roles, queue claims and group memberships, locks). Buses that\n"
	"cannot be opened are reported and left alone. Prints one line per bus\n"
	"it changed and a summary. Without BUS it also removes the temporary files\n"
	"of creators that died inside 'shmbus create' (never a bus).\n"
	"\n"
	"  -n, --dry-run   report what would be done, change nothing\n"
	"  --idle          also remove idle buses (nobody attached)\n";

struct gc_run {
	int dry, idle, named, rc;
	unsigned checked, removed, reaped, skipped;
};

/* Reap what dead peers of a live (or idle) bus held. */
static void gc_reap(struct gc_run *g, const char *name, const struct bus_state *s)
{
	uint32_t dead = s->info.peers - s->info.live_peers, n = 0;
	shmbus_bus_opts_t bo;
	shmbus_bus_t *bus;
	int r;

	if (g->dry) {
		if (dead)
			printf("would reap %u dead peer%s on bus %s\n", dead, dead == 1 ? "" : "s",
			       term_text(name));
		return;
	}
	shmbus_bus_opts_init(&bo);
	bo.flags = SHMBUS_BUS_NO_PEER | cli_bus_flags;
	r = shmbus_bus_open(name, &bo, &bus);
	if (!r) {
		r = shmbus_bus_gc(bus, &n);
		shmbus_bus_close(bus);
	}
	if (r) {
		g->rc = cli_fail(r, "bus '%s'", name);
		return;
	}
	if (n)
		printf("reaped %u dead peer%s and claim%s on bus %s\n", n, n == 1 ? "" : "s",
		       n == 1 ? "" : "s", term_text(name));
	g->reaped += n;
}

static void gc_one(struct gc_run *g, const char *name)
{
	struct bus_state s;
	int stale, r;

	g->checked++;
	bus_classify(name, &s);
	if (s.rc) {
		if (g->named && s.rc == SHMBUS_ENOENT)
			g->rc = cli_msg(EX_NOTFOUND, "no bus '%s'", name);
		else
			fprintf(stderr, "shmbus: gc: skipped bus '%s': %s\n", term_text(name),
			        term_text(s.err));
		g->skipped++;
		return;
	}
	stale = !strcmp(s.status, "stale");
	if (!stale && !(g->idle && !strcmp(s.status, "idle"))) {
		gc_reap(g, name, &s);
		return;
	}
	r = g->dry ? 0 : shmbus_bus_unlink(name);
	if (r) {
		g->rc = cli_fail(r, "cannot remove bus '%s'", name);
		return;
	}
	g->removed++;
	if (stale)
		printf("%s stale bus %s (%u dead peer%s)\n", g->dry ? "would remove" : "removed",
		       term_text(name), s.info.peers, s.info.peers == 1 ? "" : "s");
	else
		printf("%s idle bus %s\n", g->dry ? "would remove" : "removed", term_text(name));
}

/* The temporary files of creators that died mid-creation (never a bus). */
static void gc_temporaries(struct gc_run *g)
{
	uint32_t n = 0;
	int r = shmbus_gc_temporaries(g->dry, &n);

	if (r) {
		g->rc = cli_fail(r, "cannot remove abandoned temporary files");
		return;
	}
	if (n)
		printf("%s %u temporary file%s of creators that died\n",
		       g->dry ? "would remove" : "removed", n, n == 1 ? "" : "s");
}

int cmd_gc(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{"dry-run", 'n', 0, 'n'}, {"idle", 0, 0, 'i'}, {0}};
	struct gc_run g;
	struct names ns;
	struct cli_args a;
	size_t i;
	int o;

	memset(&g, 0, sizeof(g));
	cli_args_init(&a, argc, argv);
	while ((o = cli_next_opt(&a, opts)) > 0) {
		if (o == CLI_OPT_HELP) {
			fputs(gc_help, stdout);
			return EX_OK;
		}
		if (o == 'n')
			g.dry = 1;
		if (o == 'i')
			g.idle = 1;
	}
	if (o < 0)
		return EX_USAGE;
	memset(&ns, 0, sizeof(ns));
	g.named = a.npos > 0;
	if (a.npos) {
		for (i = 0; i < (size_t)a.npos; i++)
			if (collect(a.pos[i], &ns)) {
				names_free(&ns);
				return cli_msg(EX_ERROR, "out of memory");
			}
	} else {
		int r = list_buses(&ns);

		if (r)
			return r;
	}
	for (i = 0; i < ns.n; i++)
		gc_one(&g, ns.v[i]);
	if (!g.named)
		gc_temporaries(&g);
	printf("gc: %u bus%s checked, %u removed, %u reaped, %u skipped%s\n", g.checked,
	       g.checked == 1 ? "" : "es", g.removed, g.reaped, g.skipped,
	       g.dry ? " (dry run)" : "");
	names_free(&ns);
	cli_flush();
	return g.rc;
}

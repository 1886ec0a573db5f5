/*
 * cmd_watch.c -- `shmbus watch`: follow channels and print each change
 * until Ctrl+C (exit 0), --count or --timeout.
 *
 * Two forms. `watch BUS CHANNEL` follows one channel: the current value,
 * then each new one, as "SEQ: VALUE" (on a queue: `get --follow` with
 * sequence numbers, as a member of a consumer group). `watch BUS:CHANNEL
 * ... [BUS ...]` follows any number of state, queue and event channels on
 * any number of buses in one process, through one wait set
 * (shmbus_waitset_*), and prefixes each line with "BUS:CHANNEL".
 *
 * In the second form watch takes nothing from anyone. A state read never
 * disturbs the writer or other readers. On a queue, watch joins a consumer
 * group of its own ("watch-PID-N", non-durable, starting at the newest
 * message): every group sees every message, so the other groups and their
 * members lose nothing; the price is that while watch runs, producers wait
 * for it like for any group when it falls a whole ring behind. The group is
 * removed when watch ends (after a SIGKILL it stops gating after the bus's
 * liveness timeout; `shmbus rm BUS QUEUE --group NAME` removes it). An
 * event is a level: watch prints "set" when it finds it set and "clear"
 * when it finds it clear again, looking every EVENT_POLL_NS while it is
 * set (the wait set wakes on set, not on clear), so a clear and set again
 * within that time are not seen.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char watch_help[] =
	"Usage: shmbus watch [OPTIONS] BUS CHANNEL\n"
	"       shmbus watch [OPTIONS] BUS:CHANNEL|BUS ...\n"
	"\n"
	"Print the channel's current value, then each new one as it is published,\n"
	"as 'SEQ: VALUE' (a jump in SEQ means values came faster than they were\n"
	"printed; a state channel keeps only the latest). On a queue, take every\n"
	"message for a consumer group and print it as 'SEQ: MESSAGE'. Ctrl+C stops\n"
	"cleanly with exit code 0.\n"
	"\n"
	"The second form follows several channels on several buses at once (a BUS\n"
	"alone, or BUS: : its state, queue and event channels), one line per change\n"
	"prefixed with BUS:CHANNEL: 'B:C SEQ: VALUE' for a state (its current value\n"
	"first), 'B:C SEQ: MESSAGE' for each message put on a queue after watch\n"
	"started, 'B:C end of stream' when a queue is shut and drained, 'B:C set'\n"
	"and 'B:C clear' for an event. On a queue it consumes nothing: it reads\n"
	"through a consumer group of its own, removed when it ends (--group NAME:\n"
	"take that group's messages instead). It ends with exit code 0 when every\n"
	"queue it follows ended and nothing else is left.\n"
	"\n"
	"  -j, --json          one JSON object per line (as 'shmbus get --json';\n"
	"                      the second form adds \"bus\" and \"kind\")\n"
	"  -x, --hex           print the bytes in hex\n"
	"  -n, --count N       stop after N values, messages or changes\n"
	"  -t, --timeout T     stop with exit code 3 if nothing new comes within T\n"
	"  -g, --group NAME    queue: consumer group (default 'cli'; second form:\n"
	"                      a group of watch's own)\n"
	"      --latest        queue: a new group starts at the newest message\n";

/* ---- one channel: watch BUS CHANNEL ----------------------------------- */

static int state_watch(shmbus_bus_t *bus, const char *chan, int json, int hex,
                       uint64_t count, int64_t timeout_ns)
{
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)};
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

static int watch_one(const char *bus_name, const char *chan, struct queue_get_opts *qo,
                     int64_t timeout_ns)
{
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)};
	shmbus_bus_t *bus;
	int rc;

	rc = cli_open_channel(bus_name, chan, &bus, &ci);
	if (rc)
		return rc;
	if (ci.kind == SHMBUS_KIND_STATE) {
		rc = state_watch(bus, chan, qo->json, qo->hex, qo->count, timeout_ns);
	} else if (ci.kind == SHMBUS_KIND_QUEUE) {
		qo->follow = 1;
		qo->timeout_ns = timeout_ns;
		rc = queue_get(bus, chan, qo);
	} else {
		const char *k = shmbus_kind_name(ci.kind);

		rc = cli_msg(EX_USAGE, "channel '%s' is a %s; watch follows state and queue channels (and events: BUS:CHANNEL)",
		             chan, k ? k : "channel of unknown kind");
	}
	shmbus_bus_close(bus);
	return rc;
}

/* ---- many channels: watch BUS:CHANNEL ... ----------------------------- */

/* How often a set event is looked at to see it clear (and at most how late
 * a clear is printed). */
#define EVENT_POLL_NS (10 * 1000 * 1000)

struct wbus {
	const char *name;
	shmbus_bus_t *bus;
};

struct wmember {
	struct wbus *b;
	shmbus_channel_info_t ci;       /* name, kind, dtype, shape */
	int in_set;                     /* a member of the wait set now */
	int done;                       /* queue: end of stream printed */
	shmbus_state_t *st;
	void *buf;                      /* state: one value */
	uint64_t last;                  /* state: last seq printed */
	shmbus_queue_t *q;
	char group[SHMBUS_NAME_MAX + 1];
	int own_group;                  /* queue: watch made the group; drop it */
	shmbus_event_t *ev;
	int ev_set;                     /* event: last level printed */
};

struct watch {
	struct wbus *buses;
	size_t nbus;
	struct wmember *m;
	size_t n;
	shmbus_waitset_t *ws;
	const struct queue_get_opts *o;
	uint64_t printed;
};

/* Split "BUS:CHANNEL" at its last ':' past a "file:" prefix; the part
 * after must be a channel name or empty ("BUS:" is the whole bus, like a
 * BUS with no ':'). "file:/a/b" is a bus (a channel name has no '/'). */
static int split_target(char *arg, char **bus, char **chan)
{
	char *from = arg, *c;

	if (strncmp(arg, "file:", 5) == 0)
		from = arg + 5;
	c = strrchr(from, ':');
	*bus = arg;
	*chan = NULL;
	if (c && (c[1] == '\0' || shmbus_name_check(c + 1) == 0)) {
		*c = '\0';
		*chan = c[1] ? c + 1 : NULL;
	}
	return **bus ? 0 : -1;
}

static void print_label(const struct wmember *m, const char *kind)
{
	if (m->b && kind) {
		printf("{\"bus\": ");
		json_str(stdout, m->b->name, strlen(m->b->name));
		printf(", \"channel\": ");
		json_str(stdout, m->ci.name, strnlen(m->ci.name, sizeof(m->ci.name)));
		printf(", \"kind\": \"%s\"", kind);
		return;
	}
	/* term_text: both names may come from outside (a segment, argv). */
	printf("%s:", term_text(m->b->name));
	printf("%s ", term_text(m->ci.name));
}

static int printed_one(struct watch *w)
{
	w->printed++;
	return cli_flush();
}

static int on_state(struct watch *w, struct wmember *m, uint64_t tag)
{
	uint32_t nd = m->ci.ndim <= SHMBUS_MAX_DIMS ? m->ci.ndim : SHMBUS_MAX_DIMS;
	uint64_t seq;
	int r;

	r = shmbus_state_read(m->st, m->buf, m->ci.value_size, &seq);
	if (r == SHMBUS_ENODATA)
		return 0;
	if (r)
		return r;
	if (seq <= m->last)
		return 0;
	/* The wait set's mark moved to the seq it saw; the value read may be
	 * newer still: don't report that one twice. */
	shmbus_waitset_set_mark(w->ws, tag, seq);
	m->last = seq;
	print_label(m, w->o->json ? "state" : NULL);
	if (w->o->json) {
		printf(", \"seq\": %" PRIu64 ", \"dtype\": \"%s\", \"shape\": ", seq,
		       shmbus_dtype_name(m->ci.dtype));
		json_shape(stdout, nd, m->ci.shape);
		printf(", \"value\": ");
		print_value(stdout, m->buf, m->ci.dtype, nd, m->ci.shape, 1, w->o->hex);
		printf("}\n");
	} else {
		printf("%" PRIu64 ": ", seq);
		print_value(stdout, m->buf, m->ci.dtype, nd, m->ci.shape, 0, w->o->hex);
		putchar('\n');
	}
	return printed_one(w) ? 1 : 0;
}

static void print_msg(const struct watch *w, const struct wmember *m, const shmbus_msg_t *msg)
{
	print_label(m, w->o->json ? "queue" : NULL);
	if (w->o->json) {
		printf(", \"seq\": %" PRIu64 ", \"len\": %zu, \"redelivered\": %s, \"data\": ",
		       msg->seq, msg->len, (msg->flags & SHMBUS_MSG_REDELIVERED) ? "true" : "false");
		if (w->o->hex) {
			putchar('"');
			print_hex(stdout, msg->data, msg->len);
			putchar('"');
		} else {
			json_str(stdout, msg->data, msg->len);
		}
		printf("}\n");
		return;
	}
	printf("%" PRIu64 ": ", msg->seq);
	if (w->o->hex)
		print_hex(stdout, msg->data, msg->len);
	else
		print_escaped(stdout, msg->data, msg->len);
	putchar('\n');
}

/* Take what the group has now (timeout 0: the wait set said a get would
 * not block; SHMBUS_EAGAIN means a fellow member was faster). 1: stop. */
static int on_queue(struct watch *w, struct wmember *m, uint64_t tag)
{
	shmbus_msg_t msg;
	int r;

	for (;;) {
		if (w->o->count && w->printed >= w->o->count)
			return 1;
		r = shmbus_queue_peek(m->q, &msg, 0);
		if (r == SHMBUS_EAGAIN || r == SHMBUS_ETIMEDOUT)
			return 0;
		if (r == SHMBUS_ELAPPED) {
			fprintf(stderr, "shmbus: %s: group '%s' was overtaken; messages were skipped: %s\n",
			        cli_cmd, term_text(m->group), term_text(shmbus_last_error()));
			continue;
		}
		if (r == SHMBUS_ECLOSED) {
			shmbus_waitset_remove(w->ws, tag);
			m->in_set = 0;
			m->done = 1;
			print_label(m, w->o->json ? "queue" : NULL);
			printf(w->o->json ? ", \"end\": true}\n" : "end of stream\n");
			return printed_one(w) ? 1 : 0;
		}
		if (r)
			return r;
		print_msg(w, m, &msg);
		if (cli_flush())
			return 1;       /* nobody reads: leave the message queued */
		r = shmbus_queue_release(m->q);
		if (r)
			return r;
		w->printed++;
	}
}

static int print_event(struct watch *w, struct wmember *m, int set)
{
	m->ev_set = set;
	print_label(m, w->o->json ? "event" : NULL);
	if (w->o->json)
		printf(", \"set\": %s}\n", set ? "true" : "false");
	else
		printf("%s\n", set ? "set" : "clear");
	return printed_one(w) ? 1 : 0;
}

/* Ready means set. While it stays set it would be ready at every wait, so
 * it leaves the set until it is seen clear (poll_events). */
static int on_event(struct watch *w, struct wmember *m, uint64_t tag)
{
	int r;

	if (!shmbus_event_is_set(m->ev))
		return 0;
	r = shmbus_waitset_remove(w->ws, tag);
	if (r)
		return r;
	m->in_set = 0;
	return print_event(w, m, 1);
}

static int poll_events(struct watch *w)
{
	size_t i;
	int r;

	for (i = 0; i < w->n; i++) {
		struct wmember *m = &w->m[i];

		if (m->ci.kind != SHMBUS_KIND_EVENT || m->in_set)
			continue;
		if (w->o->count && w->printed >= w->o->count)
			return 1;
		if (shmbus_event_is_set(m->ev))
			continue;
		r = shmbus_waitset_add_event(w->ws, m->ev, i);
		if (r)
			return r;
		m->in_set = 1;
		r = print_event(w, m, 0);
		if (r)
			return r;
	}
	return 0;
}

static int member_fail(struct wmember *m, int r)
{
	return cli_fail(r, "channel '%s' of bus '%s'", m->ci.name, m->b->name);
}

/* ---- opening and closing ---------------------------------------------- */

static int open_member(struct watch *w, struct wmember *m, uint64_t tag)
{
	static unsigned groups_made;
	const char *cn = m->ci.name;
	int r;

	switch (m->ci.kind) {
	case SHMBUS_KIND_STATE:
		r = cli_open_state(m->b->bus, cn, &m->st, &m->ci);
		if (r)
			return r;
		m->buf = malloc(m->ci.value_size ? m->ci.value_size : 1);
		if (!m->buf)
			return cli_msg(EX_ERROR, "out of memory for a %" PRIu64 "-byte value",
			               m->ci.value_size);
		/* after 0: the current value is the first line. */
		r = shmbus_waitset_add_state(w->ws, m->st, 0, tag);
		break;
	case SHMBUS_KIND_QUEUE: {
		shmbus_queue_opts_t qo;
		uint32_t flags = SHMBUS_GROUP_LATEST;

		shmbus_queue_opts_init(&qo);
		qo.create = 0;
		qo.wait_policy = SHMBUS_WAIT_PARK;
		r = shmbus_queue_open(m->b->bus, cn, &qo, &m->q);
		if (r)
			return member_fail(m, r);
		if (w->o->group) {
			snprintf(m->group, sizeof(m->group), "%s", w->o->group);
			if (!w->o->latest)
				flags = SHMBUS_GROUP_EARLIEST;  /* as `get`: by hand */
		} else {
			snprintf(m->group, sizeof(m->group), "watch-%ld-%u", (long)getpid(),
			         groups_made++);
			m->own_group = 1;
		}
		r = shmbus_queue_join(m->q, m->group, flags);
		if (r)
			return cli_fail(r, "cannot join group '%s' of queue '%s'", m->group, cn);
		r = shmbus_waitset_add_queue(w->ws, m->q, SHMBUS_ON_MESSAGE, tag);
		break;
	}
	case SHMBUS_KIND_EVENT: {
		shmbus_event_opts_t eo;

		shmbus_event_opts_init(&eo);
		eo.create = 0;
		r = shmbus_event_open(m->b->bus, cn, &eo, &m->ev);
		if (r)
			return member_fail(m, r);
		r = shmbus_waitset_add_event(w->ws, m->ev, tag);
		break;
	}
	default: {
		const char *k = shmbus_kind_name(m->ci.kind);

		return cli_msg(EX_USAGE, "channel '%s' of bus '%s' is a %s; watch follows state, queue and event channels",
		               cn, m->b->name, k ? k : "channel of unknown kind");
	}
	}
	if (r)
		return cli_fail(r, "cannot wait on channel '%s' of bus '%s'", cn, m->b->name);
	m->in_set = 1;
	return 0;
}

static void close_member(struct watch *w, struct wmember *m)
{
	if (m->in_set && w->ws)
		shmbus_waitset_remove(w->ws, (uint64_t)(m - w->m));
	shmbus_state_close(m->st);
	free(m->buf);
	if (m->q) {
		shmbus_queue_close(m->q);       /* leaves the group */
		if (m->own_group) {
			shmbus_queue_opts_t qo;
			shmbus_queue_t *q;

			/* Our group gates producers no more than a dead member's
			 * would, but it holds one of the queue's group records:
			 * give it back through a handle that is no member. */
			shmbus_queue_opts_init(&qo);
			qo.create = 0;
			if (shmbus_queue_open(m->b->bus, m->ci.name, &qo, &q) == 0) {
				shmbus_queue_drop_group(q, m->group);
				shmbus_queue_close(q);
			}
		}
	}
	shmbus_event_close(m->ev);
}

static struct wbus *find_bus(struct watch *w, const char *name)
{
	size_t i;

	for (i = 0; i < w->nbus; i++)
		if (strcmp(w->buses[i].name, name) == 0)
			return &w->buses[i];
	return NULL;
}

static int add_target(struct watch *w, const char *bus_name, const char *chan, size_t *cap)
{
	shmbus_channel_info_t *all = NULL;
	struct wbus *b = find_bus(w, bus_name);
	size_t i, count = 0;
	int r, added = 0;

	if (!b) {
		b = &w->buses[w->nbus];
		b->name = bus_name;
		r = cli_open_bus(bus_name, SHMBUS_BUS_NO_PEER, &b->bus);
		if (r)
			return r;
		w->nbus++;
	}
	if (chan) {
		shmbus_channel_info_t ci = {.size_of = sizeof(ci)};

		r = shmbus_channel_info(b->bus, chan, &ci);
		if (r)
			return cli_fail(r, "channel '%s' of bus '%s'", chan, bus_name);
		count = 1;
		all = malloc(sizeof(*all));
		if (all)
			all[0] = ci;
	} else {
		r = shmbus_channel_list(b->bus, NULL, 0, &count);
		if (!r && count) {
			all = calloc(count, sizeof(*all));
			if (all) {
				all[0].size_of = sizeof(*all);   /* every entry's size */
				r = shmbus_channel_list(b->bus, all, count, &count);
			}
		}
		if (r)
			return cli_fail(r, "cannot list the channels of bus '%s'", bus_name);
	}
	if (count && !all)
		return cli_msg(EX_ERROR, "out of memory");
	for (i = 0; i < count; i++) {
		int k = all[i].kind;

		if (!chan && k != SHMBUS_KIND_STATE && k != SHMBUS_KIND_QUEUE &&
		    k != SHMBUS_KIND_EVENT)
			continue;
		if (w->n == *cap) {
			struct wmember *nm = realloc(w->m, (*cap * 2 + 8) * sizeof(*nm));

			if (!nm) {
				free(all);
				return cli_msg(EX_ERROR, "out of memory");
			}
			*cap = *cap * 2 + 8;
			w->m = nm;
		}
		memset(&w->m[w->n], 0, sizeof(w->m[w->n]));
		w->m[w->n].b = b;
		w->m[w->n].ci = all[i];
		w->n++;
		r = open_member(w, &w->m[w->n - 1], w->n - 1);
		if (r) {
			free(all);
			return r;
		}
		added++;
	}
	free(all);
	if (!added)
		return cli_msg(EX_NOTFOUND, "bus '%s' has no state, queue or event channel to watch",
		               bus_name);
	return 0;
}

static int left_to_watch(const struct watch *w)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		if (!w->m[i].done)
			return 1;
	return 0;
}

static int watch_loop(struct watch *w, int64_t timeout_ns)
{
	int64_t end = cli_deadline(timeout_ns);
	uint64_t ready[64];
	size_t i, n;
	int r;

	for (;;) {
		uint64_t before = w->printed;
		int64_t t;
		int polling = 0;

		if (cli_stop)
			return EX_OK;
		if (w->o->count && w->printed >= w->o->count)
			return EX_OK;
		if (!left_to_watch(w))
			return EX_OK;   /* every queue ended */
		for (i = 0; i < w->n; i++)
			polling |= w->m[i].ci.kind == SHMBUS_KIND_EVENT && !w->m[i].in_set;
		t = cli_slice(end);
		if (polling && t > EVENT_POLL_NS)
			t = EVENT_POLL_NS;
		n = 0;
		r = shmbus_waitset_wait(w->ws, t, ready, sizeof(ready) / sizeof(ready[0]), &n);
		if (r == SHMBUS_EINTR || r == SHMBUS_ETIMEDOUT)
			n = 0;          /* cli_stop says whether Ctrl+C came */
		else if (r == SHMBUS_EINVAL && shmbus_waitset_size(w->ws) == 0)
			n = 0;          /* every event set: only polling is left */
		else if (r)
			return cli_fail(r, "cannot wait on the channels");
		for (i = 0; i < n; i++) {
			struct wmember *m;

			if (ready[i] >= w->n)
				continue;
			m = &w->m[ready[i]];
			switch (m->ci.kind) {
			case SHMBUS_KIND_STATE: r = on_state(w, m, ready[i]); break;
			case SHMBUS_KIND_QUEUE: r = on_queue(w, m, ready[i]); break;
			default: r = on_event(w, m, ready[i]); break;
			}
			if (r < 0)
				return member_fail(m, r);
			if (r > 0)
				return EX_OK;   /* --count reached, or stdout gone */
		}
		r = polling ? poll_events(w) : 0;
		if (r < 0)
			return cli_fail(r, "cannot read an event");
		if (r > 0)
			return EX_OK;
		if (w->printed != before)
			end = cli_deadline(timeout_ns);
		else if (end >= 0 && cli_now_ns() >= end)
			return cli_msg(EX_TIMEOUT, "nothing new on the channels within the timeout");
	}
}

static int watch_many(struct cli_args *a, const struct queue_get_opts *o, int64_t timeout_ns)
{
	struct watch w;
	size_t cap = 0, i;
	int rc, r;

	memset(&w, 0, sizeof(w));
	w.o = o;
	w.buses = calloc((size_t)a->npos, sizeof(*w.buses));
	if (!w.buses)
		return cli_msg(EX_ERROR, "out of memory");
	r = shmbus_waitset_new(&w.ws);
	if (r) {
		free(w.buses);
		return cli_fail(r, "cannot make a wait set");
	}
	rc = EX_OK;
	for (i = 0; i < (size_t)a->npos && rc == EX_OK; i++) {
		char *bn, *cn;

		if (split_target(a->pos[i], &bn, &cn))
			rc = cli_usage_error("'%s' names no bus", a->pos[i]);
		else
			rc = add_target(&w, bn, cn, &cap);
	}
	if (rc == EX_OK)
		rc = watch_loop(&w, timeout_ns);
	for (i = 0; i < w.n; i++)
		close_member(&w, &w.m[i]);
	shmbus_waitset_free(w.ws);
	for (i = 0; i < w.nbus; i++)
		shmbus_bus_close(w.buses[i].bus);
	free(w.m);
	free(w.buses);
	return rc;
}

/* The old form, BUS CHANNEL: two arguments, neither with a ':CHANNEL'. */
static int is_one_channel(struct cli_args *a)
{
	int i;

	if (a->npos != 2)
		return 0;
	for (i = 0; i < 2; i++) {
		const char *from = a->pos[i], *c;

		if (strncmp(from, "file:", 5) == 0)
			from += 5;
		c = strrchr(from, ':');
		if (c && (c[1] == '\0' || shmbus_name_check(c + 1) == 0))
			return 0;
	}
	return 1;
}

int cmd_watch(int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		{"json", 'j', 0, O_JSON}, {"hex", 'x', 0, O_HEX},
		{"timeout", 't', 1, O_TIMEOUT}, {"group", 'g', 1, O_GROUP},
		{"count", 'n', 1, O_COUNT}, {"latest", 0, 0, O_LATEST}, {0}};
	struct queue_get_opts qo;
	int64_t timeout_ns = SHMBUS_FOREVER;
	struct cli_args a;
	int o;

	memset(&qo, 0, sizeof(qo));
	cli_args_init(&a, argc, argv);
	while ((o = cli_next_opt(&a, opts)) > 0) {
		switch (o) {
		case CLI_OPT_HELP:
			fputs(watch_help, stdout);
			return EX_OK;
		case O_JSON: qo.json = 1; break;
		case O_HEX: qo.hex = 1; break;
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
	if (a.npos == 0)
		return cli_usage_error("needs BUS CHANNEL, or one or more BUS:CHANNEL");
	if (is_one_channel(&a)) {
		if (!qo.group)
			qo.group = "cli";
		return watch_one(a.pos[0], a.pos[1], &qo, timeout_ns);
	}
	return watch_many(&a, &qo, timeout_ns);
}

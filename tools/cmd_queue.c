/*
 * cmd_queue.c -- the queue halves of get, put, watch, info and rm --group.
 *
 * The command consumes as a member of a named consumer group ("cli"
 * unless --group says otherwise). Groups are durable in the bus, so two
 * `shmbus get` runs in a row take consecutive messages, and a group the
 * command creates starts at the oldest message still queued, which is what
 * someone looking at a queue by hand expects (on a queue of cells, while
 * the library refuses that, at the newest). Messages are taken
 * zero-copy (peek, print, release): a message is released only after it
 * was written to stdout.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int open_queue(shmbus_bus_t *bus, const char *chan, shmbus_queue_t **q)
{
	shmbus_queue_opts_t qo;

	shmbus_queue_opts_init(&qo);
	qo.create = 0;
	qo.wait_policy = SHMBUS_WAIT_PARK;      /* a tool: no spinning */
	return shmbus_queue_open(bus, chan, &qo, q);
}

static void print_msg(const shmbus_msg_t *m, const struct queue_get_opts *o)
{
	if (o->json) {
		printf("{\"seq\": %" PRIu64 ", \"len\": %zu, \"redelivered\": %s, \"data\": ",
		       m->seq, m->len, (m->flags & SHMBUS_MSG_REDELIVERED) ? "true" : "false");
		if (o->hex) {
			putchar('"');
			print_hex(stdout, m->data, m->len);
			putchar('"');
		} else {
			json_str(stdout, m->data, m->len);
		}
		printf("}\n");
		return;
	}
	if (!o->quiet)
		printf("%" PRIu64 ": ", m->seq);
	if (o->hex)
		print_hex(stdout, m->data, m->len);
	else
		print_escaped(stdout, m->data, m->len);
	putchar('\n');
}

int queue_get(shmbus_bus_t *bus, const char *chan, const struct queue_get_opts *o)
{
	const char *bn = shmbus_bus_name(bus);
	uint64_t got = 0;
	shmbus_queue_t *q;
	int r, rc = EX_OK;

	r = open_queue(bus, chan, &q);
	if (r)
		return cli_fail(r, "queue '%s' of bus '%s'", chan, bn);
	r = shmbus_queue_join(q, o->group, o->latest ? SHMBUS_GROUP_LATEST : SHMBUS_GROUP_EARLIEST);
	if (r) {
		rc = cli_fail(r, "cannot join group '%s' of queue '%s'", o->group, chan);
		goto out;
	}
	while (!o->count || got < o->count) {
		int64_t end = cli_deadline(o->timeout_ns);
		shmbus_msg_t m;

		for (;;) {
			if (cli_stop) {
				r = SHMBUS_EINTR;
				break;
			}
			r = shmbus_queue_peek(q, &m, o->timeout_ns == 0 ? 0 : cli_slice(end));
			if (r == SHMBUS_ELAPPED) {
				fprintf(stderr, "shmbus: %s: group '%s' was overtaken; messages were skipped: %s\n",
				        cli_cmd, term_text(o->group), term_text(shmbus_last_error()));
				continue;
			}
			if (r == SHMBUS_EINTR)
				continue;       /* cli_stop says whether it was ours */
			if (r == SHMBUS_ETIMEDOUT && o->timeout_ns != 0 &&
			    (end < 0 || cli_now_ns() < end))
				continue;
			break;
		}
		if (r == 0) {
			print_msg(&m, o);
			if (cli_flush()) {
				/* Nobody reads our output: leave the message for
				 * the next member rather than lose it. */
				break;
			}
			r = shmbus_queue_release(q);
			if (r) {
				rc = cli_fail(r, "queue '%s': release", chan);
				break;
			}
			got++;
			continue;
		}
		if (r == SHMBUS_EINTR)
			rc = o->follow ? EX_OK : cli_msg(EX_INTR, "interrupted");
		else if (r == SHMBUS_ECLOSED)
			rc = o->follow ? EX_OK : cli_fail(r, "queue '%s' of bus '%s'", chan, bn);
		else if (r == SHMBUS_EAGAIN || r == SHMBUS_ETIMEDOUT)
			rc = cli_msg(EX_TIMEOUT, "queue '%s' of bus '%s': no message for group '%s'%s",
			             chan, bn, o->group, o->timeout_ns ? " within the timeout" : "");
		else
			rc = cli_fail(r, "queue '%s' of bus '%s'", chan, bn);
		break;
	}
out:
	shmbus_queue_close(q);
	return rc;
}

static int put_one(shmbus_queue_t *q, const char *chan, const void *msg, size_t len,
                   int64_t timeout_ns)
{
	int64_t end = cli_deadline(timeout_ns);
	int r;

	for (;;) {
		if (cli_stop)
			return cli_msg(EX_INTR, "interrupted");
		r = shmbus_queue_put(q, msg, len, timeout_ns == 0 ? 0 : cli_slice(end));
		if (r == SHMBUS_EINTR)
			continue;
		if (r == SHMBUS_ETIMEDOUT && timeout_ns != 0 && (end < 0 || cli_now_ns() < end))
			continue;
		break;
	}
	if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_EAGAIN)
		return cli_msg(EX_TIMEOUT, "queue '%s' is full: no room within the timeout", chan);
	if (r)
		return cli_fail(r, "cannot put to queue '%s'", chan);
	return 0;
}

static int put_text(shmbus_queue_t *q, const char *chan, const char *s, int hex,
                    int64_t timeout_ns)
{
	uint8_t *b;
	size_t len;
	int rc;

	if (!hex)
		return put_one(q, chan, s, strlen(s), timeout_ns);
	if (parse_hex(s, &b, &len))
		return EX_USAGE;
	rc = put_one(q, chan, b, len, timeout_ns);
	free(b);
	return rc;
}

/* Wait for n consumer groups (put --wait-groups), in slices for Ctrl+C. */
static int wait_groups(shmbus_queue_t *q, const char *chan, uint32_t n, int64_t timeout_ns)
{
	int64_t end = cli_deadline(timeout_ns);
	int r;

	for (;;) {
		if (cli_stop)
			return cli_msg(EX_INTR, "interrupted");
		r = shmbus_queue_wait_groups(q, n, timeout_ns == 0 ? 0 : cli_slice(end));
		if (r == SHMBUS_EINTR)
			continue;
		if (r == SHMBUS_ETIMEDOUT && timeout_ns != 0 && (end < 0 || cli_now_ns() < end))
			continue;
		break;
	}
	if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_EAGAIN)
		return cli_msg(EX_TIMEOUT, "%s; gave up at the timeout", shmbus_last_error());
	if (r)
		return cli_fail(r, "cannot wait for groups of queue '%s'", chan);
	return 0;
}

int queue_put(shmbus_bus_t *bus, const char *chan, char **vals, int nvals, int hex,
              int from_stdin, int shut, uint32_t ngroups, int64_t timeout_ns)
{
	shmbus_queue_t *q;
	char *line = NULL;
	size_t cap = 0;
	int r, rc = EX_OK, i;

	r = open_queue(bus, chan, &q);
	if (r)
		return cli_fail(r, "queue '%s' of bus '%s'", chan, shmbus_bus_name(bus));
	if (ngroups)
		rc = wait_groups(q, chan, ngroups, timeout_ns);
	for (i = 0; i < nvals && !rc; i++)
		rc = put_text(q, chan, vals[i], hex, timeout_ns);
	while (from_stdin && !rc) {
		ssize_t n = getline(&line, &cap, stdin);

		if (n < 0)
			break;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (hex)
			rc = put_text(q, chan, line, 1, timeout_ns);
		else
			rc = put_one(q, chan, line, (size_t)n, timeout_ns);
	}
	if (!rc && cli_stop)
		rc = cli_msg(EX_INTR, "interrupted");  /* and no end of stream */
	if (!rc && shut) {
		r = shmbus_queue_shut(q);
		if (r)
			rc = cli_fail(r, "cannot shut queue '%s'", chan);
	}
	free(line);
	shmbus_queue_close(q);
	return rc;
}

int queue_info(shmbus_bus_t *bus, const char *chan, int json)
{
	shmbus_group_info_t *g = NULL;
	shmbus_queue_info_t qi = {.size_of = sizeof(qi)};
	shmbus_queue_t *q = NULL;
	size_t cap = 16, i, n;
	int r;

	r = open_queue(bus, chan, &q);
	for (;;) {
		if (r)
			break;
		free(g);
		g = calloc(cap, sizeof(*g));
		if (!g) {
			r = SHMBUS_ENOMEM;
			break;
		}
		r = shmbus_queue_info(q, &qi, g, cap);
		if (r || qi.groups <= cap)
			break;
		cap = qi.groups;        /* groups were added meanwhile: again */
	}
	if (r) {
		const char *e = r == SHMBUS_ENOMEM ? "out of memory" : shmbus_last_error();

		if (!*e)
			e = shmbus_strerror(r);
		if (json) {
			printf("\"queue\": {\"error\": ");
			json_str(stdout, e, strlen(e));
			printf("}");
		} else {
			printf("      queue: cannot inspect: %s\n", term_text(e));
		}
		goto out;
	}
	n = qi.groups < cap ? qi.groups : cap;
	if (json) {
		printf("\"queue\": {\"slots\": %u, \"cell_bytes\": %" PRIu64 ", \"max_msg\": %" PRIu64
		       ", \"head\": %" PRIu64 ", \"depth\": %" PRIu64 ", \"producers\": %u"
		       ", \"shut\": %s, \"groups\": [", qi.slots, qi.cell_bytes, qi.max_msg, qi.head,
		       qi.depth, qi.producers, qi.shut ? "true" : "false");
		for (i = 0; i < n; i++) {
			printf("%s{\"name\": ", i ? ", " : "");
			json_str(stdout, g[i].name, strnlen(g[i].name, sizeof(g[i].name)));
			printf(", \"cursor\": %" PRIu64 ", \"lag\": %" PRIu64
			       ", \"members\": %u, \"live_members\": %u, \"durable\": %s}",
			       g[i].cursor, g[i].lag, g[i].members, g[i].live_members,
			       (g[i].flags & SHMBUS_GROUP_DURABLE) ? "true" : "false");
		}
		printf("]}");
		goto out;
	}
	/* With cells, head, depth and lags count cells: say so. */
	if (qi.cell_bytes)
		printf("      queue: %u cells of %" PRIu64 " B, max message %" PRIu64 " B, head %"
		       PRIu64 ", depth %" PRIu64 " cell%s", qi.slots, qi.cell_bytes, qi.max_msg,
		       qi.head, qi.depth, qi.depth == 1 ? "" : "s");
	else
		printf("      queue: %u slots of %" PRIu64 " B, head %" PRIu64 ", depth %" PRIu64,
		       qi.slots, qi.max_msg, qi.head, qi.depth);
	printf(", %u producer%s, %s\n", qi.producers, qi.producers == 1 ? "" : "s",
	       qi.shut ? "shut" : "open");
	for (i = 0; i < n; i++)
		printf("      group %-16s cursor %-8" PRIu64 " lag %-8" PRIu64
		       " members %u/%u%s\n", term_text(g[i].name), g[i].cursor, g[i].lag,
		       g[i].live_members, g[i].members,
		       (g[i].flags & SHMBUS_GROUP_DURABLE) ? " durable" : "");
out:
	free(g);
	shmbus_queue_close(q);
	return r;
}

int queue_drop_group(shmbus_bus_t *bus, const char *chan, const char *group)
{
	shmbus_queue_t *q;
	int r = open_queue(bus, chan, &q);

	if (r)
		return cli_fail(r, "cannot open queue '%s'", chan);
	r = shmbus_queue_drop_group(q, group);
	shmbus_queue_close(q);
	if (r)
		return cli_fail(r, "cannot remove group '%s' of queue '%s'", group, chan);
	return EX_OK;
}

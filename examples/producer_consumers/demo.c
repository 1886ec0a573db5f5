/*
 * demo.c -- the fan-out use case: one producer process sends a stream of
 * messages (strings and integer arrays of different lengths) through a
 * queue channel to 1-5 consumer processes, nothing lost, duplicated,
 * reordered or corrupted.
 *
 *   broadcast  every consumer joins its own group: each gets every message.
 *   work       all consumers join one group: each message goes to exactly
 *              one of them (a work queue).
 *
 * The producer waits until its consumers have joined, puts the messages,
 * then shuts the queue (end of stream). Each consumer prints what it gets,
 * checks it against what the producer meant to send, and stops when the
 * queue says SHMBUS_ECLOSED (no sentinel message needed). It reports the
 * message numbers it received to the parent through a pipe, and the parent
 * checks: in broadcast mode every consumer got all of them, in order; in
 * work mode every message went to exactly one consumer, and each consumer
 * got its share in order. The bus is removed at the end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmbus.h"

#define MAX_CONSUMERS 5
#define NMSG 12
#define TIMEOUT_NS (10000000000ll)   /* no wait in this demo takes 10 s */

/* The stream: strings and int32 arrays. A message is one type byte, the
 * message number (uint32) and the payload. */
static const char *const strings[] = {
	"hello from the producer",
	"shared memory, no sockets",
	"a",
	"the quick brown fox jumps over the lazy dog",
	"",
	"consumer groups: broadcast or work queue",
};

static size_t make_msg(int i, unsigned char *buf)
{
	uint32_t n = (uint32_t)i;
	size_t len = 5;

	memcpy(buf + 1, &n, 4);
	if (i % 2 == 0) {
		const char *s = strings[(i / 2) % 6];

		buf[0] = 'S';
		memcpy(buf + 5, s, strlen(s));
		len += strlen(s);
	} else {
		int32_t v, k, count = 1 + (i * 7) % 9;   /* 1..9 elements */

		buf[0] = 'I';
		for (k = 0; k < count; k++) {
			v = (int32_t)(i * 1000 + k * k) * (k % 2 ? -1 : 1);
			memcpy(buf + len, &v, 4);
			len += 4;
		}
	}
	return len;
}

static void describe(const unsigned char *m, size_t len, char *out, size_t cap)
{
	size_t k, o;
	int32_t v;

	if (m[0] == 'S') {
		snprintf(out, cap, "string \"%.*s\"", (int)(len - 5), (const char *)m + 5);
		return;
	}
	o = (size_t)snprintf(out, cap, "int32[%zu] {", (len - 5) / 4);
	for (k = 5; k + 4 <= len && o < cap; k += 4) {
		memcpy(&v, m + k, 4);
		o += (size_t)snprintf(out + o, cap - o, "%s%d", k > 5 ? ", " : "", v);
	}
	if (o < cap)
		snprintf(out + o, cap - o, "}");
}

static void fail(const char *who, const char *what, int r)
{
	fprintf(stderr, "%s: %s: %s (%s)\n", who, what, shmbus_strerror(r), shmbus_last_error());
	exit(1);
}

/* A consumer process: join, print and check each message, report the
 * numbers received (in arrival order) on fd. */
static int consumer(const char *bus_name, int id, const char *group, int fd)
{
	unsigned char buf[256], want[256];
	char who[64], text[512];
	uint32_t got[NMSG + 1], n;
	int count = 0, r;
	size_t len, wlen;
	shmbus_bus_t *bus;
	shmbus_queue_t *q;

	snprintf(who, sizeof(who), "consumer %d (group %s)", id, group);
	if ((r = shmbus_bus_open(bus_name, NULL, &bus)) != 0)
		fail(who, "open bus", r);
	if ((r = shmbus_queue_open(bus, "jobs", NULL, &q)) != 0)
		fail(who, "open queue", r);
	if ((r = shmbus_queue_join(q, group, 0)) != 0)
		fail(who, "join", r);
	for (;;) {
		r = shmbus_queue_get(q, buf, sizeof(buf), &len, NULL, TIMEOUT_NS);
		if (r == SHMBUS_ECLOSED)
			break;           /* end of stream: drained and shut */
		if (r != 0)
			fail(who, "get", r);
		if (len < 5 || count >= NMSG) {
			fprintf(stderr, "%s: unexpected message of %zu bytes\n", who, len);
			return 1;
		}
		memcpy(&n, buf + 1, 4);
		wlen = n < NMSG ? make_msg((int)n, want) : 0;
		if (n >= NMSG || wlen != len || memcmp(buf, want, len) != 0) {
			fprintf(stderr, "%s: message #%u is not what was sent (%zu bytes)\n", who, n, len);
			return 1;
		}
		describe(buf, len, text, sizeof(text));
		printf("  %s got #%u: %s\n", who, n, text);
		got[count++] = n;
	}
	printf("  %s: end of stream after %d messages\n", who, count);
	if (write(fd, &count, sizeof(count)) != sizeof(count) ||
	    write(fd, got, sizeof(got[0]) * (size_t)count) != (ssize_t)(sizeof(got[0]) * (size_t)count))
		return 1;
	shmbus_queue_close(q);
	shmbus_bus_close(bus);
	return 0;
}

/* Wait until the consumers have joined, so none misses the first message
 * (a group created later starts at the newest message). */
static int wait_joined(shmbus_queue_t *q, int work, int n)
{
	shmbus_group_info_t g[MAX_CONSUMERS];
	shmbus_queue_info_t info = {.size_of = sizeof(info)};
	int tries, r;

	for (tries = 0; tries < 1000; tries++) {
		if ((r = shmbus_queue_info(q, &info, g, MAX_CONSUMERS)) != 0)
			return r;
		if (work ? info.groups == 1 && (int)g[0].live_members == n : (int)info.groups == n)
			return 0;
		usleep(10000);
	}
	return SHMBUS_ETIMEDOUT;
}

static int run(int n, int work)
{
	char bus_name[64], group[32];
	unsigned char msg[256];
	int fds[MAX_CONSUMERS][2], i, r, st, bad = 0, count, seen[NMSG] = {0};
	uint32_t got[NMSG];
	pid_t pids[MAX_CONSUMERS];
	shmbus_bus_opts_t bo;
	shmbus_queue_opts_t qo;
	shmbus_bus_t *bus;
	shmbus_queue_t *q;

	printf("=== %s mode: 1 producer, %d consumer process%s\n", work ? "work-queue" : "broadcast",
	       n, n > 1 ? "es" : "");
	snprintf(bus_name, sizeof(bus_name), "demo_pc-%d", (int)getpid());
	shmbus_bus_opts_init(&bo);
	bo.size = 1 << 20;
	if ((r = shmbus_bus_create(bus_name, &bo, &bus)) != 0)
		fail("producer", "create bus", r);
	shmbus_queue_opts_init(&qo);
	qo.slots = 4;          /* a small ring: the producer waits for the consumers */
	qo.max_msg = 256;
	if ((r = shmbus_queue_open(bus, "jobs", &qo, &q)) != 0)
		fail("producer", "create queue", r);
	fflush(stdout);
	for (i = 0; i < n; i++) {
		if (pipe(fds[i]) != 0 || (pids[i] = fork()) < 0) {
			perror("demo: pipe/fork");
			exit(1);
		}
		if (pids[i] == 0) {
			close(fds[i][0]);
			snprintf(group, sizeof(group), work ? "workers" : "consumer%d", i);
			_exit(consumer(bus_name, i, group, fds[i][1]));
		}
		close(fds[i][1]);
	}
	if ((r = wait_joined(q, work, n)) != 0)
		fail("producer", "waiting for the consumers to join", r);
	for (i = 0; i < NMSG; i++) {
		size_t len = make_msg(i, msg);

		if ((r = shmbus_queue_put(q, msg, len, TIMEOUT_NS)) != 0)
			fail("producer", "put", r);
	}
	printf("  producer: %d messages sent, shutting the queue (end of stream)\n", NMSG);
	if ((r = shmbus_queue_shut(q)) != 0)
		fail("producer", "shut", r);
	for (i = 0; i < n; i++) {
		ssize_t k = read(fds[i][0], &count, sizeof(count));

		if (k != sizeof(count) || count < 0 || count > NMSG ||
		    read(fds[i][0], got, sizeof(got[0]) * (size_t)count) !=
		            (ssize_t)(sizeof(got[0]) * (size_t)count)) {
			fprintf(stderr, "demo: consumer %d reported nothing\n", i);
			bad = 1;
			count = 0;
		}
		close(fds[i][0]);
		if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "demo: consumer %d failed (status %d)\n", i, st);
			bad = 1;
		}
		for (r = 0; r < count; r++) {
			if (r > 0 && got[r] <= got[r - 1]) {
				fprintf(stderr, "demo: consumer %d got #%u after #%u\n", i, got[r],
				        got[r - 1]);
				bad = 1;
			}
			seen[got[r]]++;
		}
		if (!work && count != NMSG) {
			fprintf(stderr, "demo: consumer %d got %d of %d messages\n", i, count, NMSG);
			bad = 1;
		}
	}
	for (i = 0; i < NMSG; i++)
		if (seen[i] != (work ? 1 : n)) {
			fprintf(stderr, "demo: message #%d was received %d times, expected %d\n", i,
			        seen[i], work ? 1 : n);
			bad = 1;
		}
	shmbus_queue_close(q);
	shmbus_bus_close(bus);
	if ((r = shmbus_bus_unlink(bus_name)) != 0)
		fail("producer", "unlink", r);
	printf("  %s: every message received whole, in order, %s\n", bad ? "FAILED" : "ok",
	       work ? "each by exactly one consumer" : "by every consumer");
	return bad;
}

static void usage(void)
{
	printf("usage: demo [--consumers N] [--mode broadcast|work|both]\n"
	       "One producer sends %d messages (strings and int32 arrays) through a queue\n"
	       "channel to N consumer processes (1-5, default 3). broadcast: each\n"
	       "consumer has its own group and gets every message; work: the consumers\n"
	       "share one group and each message goes to one of them; both (default)\n"
	       "runs one after the other. Each consumer prints what it gets; the program\n"
	       "checks that everything arrived whole, in order, once per group, and exits\n"
	       "0 if so. Nothing is left in /dev/shm.\n", NMSG);
}

int main(int argc, char **argv)
{
	int n = 3, mode = 2, a, bad = 0;   /* mode: 0 broadcast, 1 work, 2 both */
	char *end;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
			usage();
			return 0;
		} else if (a + 1 < argc && !strcmp(argv[a], "--consumers")) {
			errno = 0;
			n = (int)strtol(argv[++a], &end, 10);
			if (errno || *end || n < 1 || n > MAX_CONSUMERS) {
				fprintf(stderr, "demo: --consumers takes 1..%d, not '%s'\n", MAX_CONSUMERS,
				        argv[a]);
				return 2;
			}
		} else if (a + 1 < argc && !strcmp(argv[a], "--mode")) {
			a++;
			if (!strcmp(argv[a], "broadcast"))
				mode = 0;
			else if (!strcmp(argv[a], "work"))
				mode = 1;
			else if (!strcmp(argv[a], "both"))
				mode = 2;
			else {
				fprintf(stderr, "demo: --mode is broadcast, work or both, not '%s'\n", argv[a]);
				return 2;
			}
		} else {
			fprintf(stderr, "demo: bad argument '%s' (try --help)\n", argv[a]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (mode != 1)
		bad |= run(n, 0);
	if (mode != 0)
		bad |= run(n, 1);
	return bad ? 1 : 0;
}

/*
 * queue_dead_claim_short_calls.c -- a producer killed between reserve and
 * commit does not wedge the queue, however its consumers wait: polling with
 * timeout 0, or in calls shorter than the liveness timeout (100 ms get and
 * peek loops against the default 200 ms).
 *
 * Each round a child producer reserves a slot, tells the parent through a
 * pipe, and the parent kills it with SIGKILL: the child is known to be
 * between reserve and commit when it dies. The parent then puts 4 messages
 * with timeout 0 (the ring must never report full) and its two groups must
 * get all of them, in order, within 10 s (the dead slot is passed over
 * within about one liveness timeout; 10 s leaves margin for a loaded
 * machine):
 *   "poll"  gets with timeout 0 in a loop (1 ms sleeps between polls);
 *   "slice" gets, or peeks and releases, with a 100 ms timeout in a loop.
 * 20 kills of 5 sequences each turn the 64-slot ring over.
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

#include "testutil.h"

#define ROUNDS 20
#define PER_ROUND 4
#define SLOTS 64
#define LIVENESS_NS 200000000ll      /* the default, stated: > 100 ms calls */
#define SLICE_NS 100000000ll
#define ROUND_LIMIT_NS 10000000000ull

static const char *bus_name;
static pid_t victim = -1;
static pid_t parent;

static void cleanup(void)
{
	if (getpid() != parent)
		return;
	test_kill_children(&victim, 1);
	if (bus_name)
		shmbus_bus_unlink(bus_name);
}

/* The child: reserve a slot, half-fill it, say so, wait to be killed. */
static void reserve_and_hang(int fd)
{
	shmbus_bus_t *bus;
	shmbus_queue_t *q;
	shmbus_queue_opts_t o;
	void *p;
	char c = 'r';

	shmbus_queue_opts_init(&o);
	o.create = 0;
	if (shmbus_bus_open(bus_name, NULL, &bus) != 0 || shmbus_queue_open(bus, "q", &o, &q) != 0 ||
	    shmbus_queue_reserve(q, 16, &p, 5000000000ll) != 0) {
		fprintf(stderr, "victim: %s\n", shmbus_last_error());
		_exit(1);
	}
	memset(p, 'x', 8);
	if (write(fd, &c, 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static void kill_in_reservation(void)
{
	int fds[2], st;
	char c;
	ssize_t n;

	CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	victim = fork();
	CHECK(victim >= 0, "fork: %s", strerror(errno));
	if (victim == 0) {
		close(fds[0]);
		reserve_and_hang(fds[1]);
	}
	close(fds[1]);
	do
		n = read(fds[0], &c, 1);
	while (n < 0 && errno == EINTR);
	close(fds[0]);
	CHECK(n == 1, "the producer child did not reserve a slot");
	CHECK(kill(victim, SIGKILL) == 0, "kill: %s", strerror(errno));
	CHECK(waitpid(victim, &st, 0) == victim && WIFSIGNALED(st), "victim did not die by the kill");
	victim = -1;
}

/* One message of group g's consumer, with the waiting pattern of its
 * round: 0 got one (*val), 1 none yet. */
static int take(shmbus_queue_t *c, int slice, int round, uint32_t *val)
{
	shmbus_msg_t m;
	size_t len = 0;
	int r;

	if (!slice) {
		r = shmbus_queue_get(c, val, sizeof(*val), &len, NULL, 0);
		if (r == SHMBUS_EAGAIN) {
			usleep(1000);
			return 1;
		}
	} else if (round & 1) {
		r = shmbus_queue_peek(c, &m, SLICE_NS);
		if (r == 0) {
			len = m.len;
			if (len == sizeof(*val))
				memcpy(val, m.data, len);
			OK(shmbus_queue_release(c));
		}
	} else {
		r = shmbus_queue_get(c, val, sizeof(*val), &len, NULL, SLICE_NS);
	}
	if (r == SHMBUS_ETIMEDOUT)
		return 1;
	CHECK(r == 0, "round %d: %s returned %d (%s): %s", round, slice ? "a 100 ms call" : "a poll",
	      r, shmbus_strerror(r), shmbus_last_error());
	CHECK(len == sizeof(*val), "round %d: a message of %zu bytes (a half-written slot?)", round,
	      len);
	return 0;
}

int main(void)
{
	static const char *const gname[2] = {"poll", "slice"};
	shmbus_bus_opts_t bo;
	shmbus_bus_t *bus;
	shmbus_queue_t *prod, *cons[2];
	shmbus_queue_opts_t o;
	shmbus_queue_info_t info = {.size_of = sizeof(info)};
	uint32_t next[2] = {0, 0}, val, sent = 0;
	uint64_t t0, worst = 0;
	int i, k, g;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parent = getpid();
	atexit(cleanup);
	bus_name = test_bus_name("qdeadclaim");
	shmbus_bus_opts_init(&bo);
	bo.size = 1ull << 20;
	OK(shmbus_bus_create(bus_name, &bo, &bus));
	OK(shmbus_bus_set_liveness(bus, LIVENESS_NS));
	shmbus_queue_opts_init(&o);
	o.slots = SLOTS;
	o.max_msg = 64;
	OK(shmbus_queue_open(bus, "q", &o, &prod));
	for (g = 0; g < 2; g++) {
		OK(shmbus_queue_open(bus, "q", &o, &cons[g]));
		OK(shmbus_queue_join(cons[g], gname[g], 0));
	}
	for (i = 0; i < ROUNDS; i++) {
		kill_in_reservation();
		for (k = 0; k < PER_ROUND; k++) {
			val = sent;
			OK(shmbus_queue_put(prod, &val, sizeof(val), 0));
			sent++;
		}
		t0 = test_now_ns();
		for (g = 0; g < 2; g++) {
			while (next[g] < sent) {
				CHECK(test_now_ns() - t0 < ROUND_LIMIT_NS,
				      "round %d: group '%s' is stuck behind the dead producer's slot: "
				      "%u of %u messages after 10 s: %s",
				      i, gname[g], next[g], sent, shmbus_last_error());
				if (take(cons[g], g, i, &val))
					continue;
				CHECK(val == next[g], "round %d: group '%s' got message %u, expected %u", i,
				      gname[g], val, next[g]);
				next[g]++;
			}
		}
		if (test_now_ns() - t0 > worst)
			worst = test_now_ns() - t0;
	}
	OK(shmbus_queue_info(prod, &info, NULL, 0));
	CHECK(info.head == (uint64_t)ROUNDS * (PER_ROUND + 1),
	      "head %llu, expected %d claims", (unsigned long long)info.head,
	      ROUNDS * (PER_ROUND + 1));
	printf("ok: %d producers killed between reserve and commit; both groups got all %u messages "
	       "(slowest round %.0f ms; %llu sequences through a %d-slot ring)\n",
	       ROUNDS, sent, worst / 1e6, (unsigned long long)info.head, SLOTS);
	for (g = 0; g < 2; g++)
		OK(shmbus_queue_close(cons[g]));
	OK(shmbus_queue_close(prod));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(bus_name));
	bus_name = NULL;
	return 0;
}

/*
 * queue_failed_claim.c -- a producer that lost the race for a seq does not
 * keep the group from passing that seq when its winner dies before
 * publishing (promise 3: a SIGKILLed producer blocks the others no longer
 * than the liveness timeout).
 *
 * The queue traces an unpublished seq to its producer by the intent the
 * producer stores in its record before the claiming CAS on head. Here two
 * producers race for one seq of a one-slot ring, deterministically:
 *   1. P (a child) puts message 0, which the group takes: P has its record
 *      and its gate is current.
 *   2. P puts message 1 with the kill-point hook armed to stop it
 *      (SIGSTOP) at its 2nd step: its intent names seq 1, its CAS on head
 *      is the next instruction (the test checks the steps' names).
 *   3. W (another child) reserves: it claims seq 1 and says so through a
 *      pipe; the parent kills it there, between reserve and commit.
 *   4. P continues: its CAS fails (head is 2), and seq 2 does not fit the
 *      one-slot ring until the group passes seq 1: P waits for space.
 * The group's member (the parent) then gets with a 5 s timeout: once the
 * liveness timeout (50 ms) has passed it must skip W's dead seq 1 and get
 * P's message 1, then P's later messages 2 and 3, in order. 5 s leaves a
 * wide margin for a loaded machine (the skip comes after one or two
 * liveness timeouts). P's puts have 10 s, and P must exit 0.
 * Before the fix P's failed claim kept its intent, which named seq 1: the
 * skip saw a live producer naming the seq and never came, so the group
 * stayed at seq 1 and P waited behind it (a wedge for as long as P lives).
 */
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"
#include "faultinject.h"

#define LIVENESS_NS 50000000ll          /* 50 ms */
#define GET_NS 5000000000ll             /* >> the liveness timeout, for a loaded machine */
#define PUT_NS 10000000000ll
#define MSGS 4                          /* P's messages 0 .. 3 */
#define TRACE 16

struct shared {
	const char *trace[TRACE];       /* P's armed put: names of its steps */
	char why[256];
};

static const char *bus_name;
static struct shared *sh;
static pid_t kids[2] = {-1, -1};        /* P, W */
static pid_t parent;

static void cleanup(void)
{
	if (getpid() != parent)
		return;
	test_kill_children(kids, 2);
	if (bus_name)
		shmbus_bus_unlink(bus_name);
}

static shmbus_queue_t *open_queue(shmbus_bus_t **b)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q;

	shmbus_queue_opts_init(&o);
	o.create = 0;
	if (shmbus_bus_open(bus_name, NULL, b) != 0 || shmbus_bus_set_liveness(*b, LIVENESS_NS) != 0 ||
	    shmbus_queue_open(*b, "q", &o, &q) != 0) {
		fprintf(stderr, "child: open: %s\n", shmbus_last_error());
		_exit(1);
	}
	return q;
}

/* P: message 0, then (after the parent took it) message 1 with the stop
 * armed, then 2 and 3. */
static void producer_p(int to_parent, int from_parent)
{
	shmbus_bus_t *b;
	shmbus_queue_t *q = open_queue(&b);
	uint32_t i;
	int r;

	for (i = 0; i < MSGS; i++) {
		if (i == 1) {
			if (test_hear(from_parent) != 'g')
				_exit(1);
			sb_fault_trace(sh->trace, TRACE);
			sb_fault_arm(2, SIGSTOP);
		}
		r = shmbus_queue_put(q, &i, sizeof(i), PUT_NS);
		if (i == 1) {
			sb_fault_disarm();
			sb_fault_trace(NULL, 0);
		}
		if (r != 0) {
			snprintf(sh->why, sizeof(sh->why), "P's put of message %u: %s: %s", i,
			         shmbus_strerror(r), shmbus_last_error());
			_exit(1);
		}
		if (i == 0)
			test_say(to_parent, 'p');
	}
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	_exit(0);
}

/* W: claim a seq, say so, wait for the SIGKILL. */
static void producer_w(int to_parent)
{
	shmbus_bus_t *b;
	shmbus_queue_t *q = open_queue(&b);
	void *ptr;
	int r = shmbus_queue_reserve(q, sizeof(uint32_t), &ptr, PUT_NS);

	if (r != 0) {
		snprintf(sh->why, sizeof(sh->why), "W's reserve: %s: %s", shmbus_strerror(r),
		         shmbus_last_error());
		_exit(1);
	}
	memset(ptr, 0xee, sizeof(uint32_t));
	test_say(to_parent, 'w');
	for (;;)
		pause();
}

static void get_one(shmbus_queue_t *c, uint32_t want, const char *what)
{
	uint32_t val = UINT32_MAX;
	size_t len = 0;
	uint64_t t0 = test_now_ns();
	int r = shmbus_queue_get(c, &val, sizeof(val), &len, NULL, GET_NS);

	CHECK(r == 0, "%s: get returned %d (%s) after %.0f ms: %s%s%s", what, r, shmbus_strerror(r),
	      (test_now_ns() - t0) / 1e6, shmbus_last_error(), sh->why[0] ? "; " : "", sh->why);
	CHECK(len == sizeof(val) && val == want, "%s: got a message of %zu bytes holding %u, expected "
	      "P's message %u", what, len, val, want);
	printf("ok: %s: P's message %u (%.0f ms)\n", what, want, (test_now_ns() - t0) / 1e6);
}

int main(void)
{
	shmbus_bus_opts_t bo;
	shmbus_bus_t *bus;
	shmbus_queue_t *cons;
	shmbus_queue_opts_t o;
	shmbus_queue_info_t info = {.size_of = sizeof(info)};
	int p2c[2], c2p[2], w2p[2], st;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parent = getpid();
	atexit(cleanup);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap: %s", strerror(errno));
	memset(sh, 0, sizeof(*sh));
	bus_name = test_bus_name("qfailclaim");
	shmbus_bus_opts_init(&bo);
	bo.size = 1ull << 20;
	OK(shmbus_bus_create(bus_name, &bo, &bus));
	OK(shmbus_bus_set_liveness(bus, LIVENESS_NS));
	shmbus_queue_opts_init(&o);
	o.slots = 1;
	o.max_msg = 16;
	OK(shmbus_queue_open(bus, "q", &o, &cons));
	OK(shmbus_queue_join(cons, "g", 0));
	CHECK(pipe(p2c) == 0 && pipe(c2p) == 0 && pipe(w2p) == 0, "pipe: %s", strerror(errno));

	kids[0] = fork();
	CHECK(kids[0] >= 0, "fork: %s", strerror(errno));
	if (kids[0] == 0)
		producer_p(c2p[1], p2c[0]);
	CHECK(test_hear(c2p[0]) == 'p', "P did not put its first message: %s", sh->why);
	get_one(cons, 0, "before the race");
	/* P's next claim: intent (step 1), then the CAS on head (step 2). */
	test_say(p2c[1], 'g');
	CHECK(waitpid(kids[0], &st, WUNTRACED) == kids[0] && WIFSTOPPED(st),
	      "P did not stop at its claim (status %#x): %s", st, sh->why);
	CHECK(sh->trace[0] && sh->trace[1] && strcmp(sh->trace[0], "queue.claim.intent") == 0 &&
	      strcmp(sh->trace[1], "queue.claim.head") == 0,
	      "P stopped at steps %s, %s; expected queue.claim.intent, queue.claim.head",
	      sh->trace[0] ? sh->trace[0] : "-", sh->trace[1] ? sh->trace[1] : "-");
	printf("ok: P stopped with its intent naming seq 1, before its claiming CAS\n");

	kids[1] = fork();
	CHECK(kids[1] >= 0, "fork: %s", strerror(errno));
	if (kids[1] == 0)
		producer_w(w2p[1]);
	CHECK(test_hear(w2p[0]) == 'w', "W did not claim a seq: %s", sh->why);
	OK(shmbus_queue_info(cons, &info, NULL, 0));
	CHECK(info.head == 2, "head %llu after W's claim, expected 2 (W holds seq 1)",
	      (unsigned long long)info.head);
	CHECK(kill(kids[1], SIGKILL) == 0, "kill: %s", strerror(errno));
	CHECK(waitpid(kids[1], &st, 0) == kids[1] && WIFSIGNALED(st), "W did not die by the kill");
	kids[1] = -1;
	printf("ok: W claimed seq 1 and was killed before publishing it\n");

	/* P's CAS now fails; it waits for space behind seq 1. */
	CHECK(kill(kids[0], SIGCONT) == 0, "kill: %s", strerror(errno));
	get_one(cons, 1, "past W's dead seq 1");
	get_one(cons, 2, "a later put of P's handle");
	get_one(cons, 3, "the last put of P's handle");
	CHECK(waitpid(kids[0], &st, 0) == kids[0] && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "P ended with status %#x: %s", st, sh->why);
	kids[0] = -1;
	OK(shmbus_queue_info(cons, &info, NULL, 0));
	CHECK(info.head == 5, "head %llu, expected 5 (P's 4 messages and W's skipped seq)",
	      (unsigned long long)info.head);
	printf("ok: a failed claim does not keep a dead winner's seq from being skipped\n");
	OK(shmbus_queue_close(cons));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(bus_name));
	bus_name = NULL;
	return 0;
}

/*
 * queue_reaped_claim.c -- a dead producer's claim is passed over even when
 * its record was freed before the seq could be skipped (promise 3: a
 * SIGKILLed producer blocks the others no longer than the liveness
 * timeout).
 *
 * A consumer skips a dead producer's unpublished seq once no live
 * producer's record names it and the slot is free (docs/queue.md, "Producer
 * killed between reserve and commit"). The slot of a claimed seq is not
 * always free: a group created with SHMBUS_GROUP_EARLIEST between a
 * producer's gate check and its claim may still need the message in it.
 * A producer that needs a record reaps the dead ones and first tries to
 * skip each one's seq; with the slot not free that skip cannot happen yet,
 * and the record is freed anyway. This test builds that case step by step,
 * with no timing involved:
 *   1. W (a child) puts messages 100 and 101 (seqs 0, 1); group "a" (the
 *      parent, a member since before) takes both.
 *   2. W reserves with the kill-point hook armed to stop it (SIGSTOP) at
 *      its 2nd step: its intent names seq 2, its CAS on head is next (the
 *      test checks the steps' names).
 *   3. The parent joins group "e" with SHMBUS_GROUP_EARLIEST: it starts at
 *      seq 0 (two slots back) and holds messages 100 and 101.
 *   4. W continues: it claims seq 2, finds the new group and waits for
 *      the slot, which "e" still needs; its reserve times out (300 ms)
 *      with the skip owed, W says so and the parent kills it.
 *   5. The parent opens a producer: the queue has one producer record, so
 *      the put reaps W's (the put is a poll and finds the ring full:
 *      SHMBUS_EAGAIN, not SHMBUS_ENOSPC, shows the record was freed).
 *   6. "e" takes 100 and 101; the parent puts 103 (seq 3).
 * Then each group must get 103 within 5 s (the skip of seq 2 comes after
 * one or two liveness timeouts of 50 ms; 5 s is margin for a loaded
 * machine). A skip rule that needs a dead producer's record to name the
 * seq would never pass seq 2 here: "a" would wait at it for ever.
 */
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"
#include "faultinject.h"

#define LIVENESS_NS 50000000ll          /* 50 ms */
#define GET_NS 5000000000ll             /* >> the liveness timeout, for a loaded machine */
#define RESERVE_NS 300000000ll
#define TRACE 16

struct shared {
	const char *trace[TRACE];       /* W's armed reserve: names of its steps */
	int reserve_rc;
	char why[256];
};

static const char *bus_name;
static struct shared *sh;
static pid_t w_pid = -1;
static pid_t parent;

static void cleanup(void)
{
	if (getpid() != parent)
		return;
	test_kill_children(&w_pid, 1);
	if (bus_name)
		shmbus_bus_unlink(bus_name);
}

/* W: two messages, then (told to) a reserve stopped at its claim, which
 * then times out waiting for the new group; wait for the SIGKILL. */
static void producer_w(int to_parent, int from_parent)
{
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	shmbus_queue_opts_t o;
	uint32_t v;
	void *ptr;
	int r;

	shmbus_queue_opts_init(&o);
	o.create = 0;
	if (shmbus_bus_open(bus_name, NULL, &b) != 0 || shmbus_bus_set_liveness(b, LIVENESS_NS) != 0 ||
	    shmbus_queue_open(b, "q", &o, &q) != 0) {
		snprintf(sh->why, sizeof(sh->why), "W: open: %s", shmbus_last_error());
		_exit(1);
	}
	for (v = 100; v < 102; v++)
		if ((r = shmbus_queue_put(q, &v, sizeof(v), GET_NS)) != 0) {
			snprintf(sh->why, sizeof(sh->why), "W's put of %u: %s: %s", v,
			         shmbus_strerror(r), shmbus_last_error());
			_exit(1);
		}
	test_say(to_parent, 'p');
	if (test_hear(from_parent) != 'g')
		_exit(1);
	sb_fault_trace(sh->trace, TRACE);
	sb_fault_arm(2, SIGSTOP);
	sh->reserve_rc = shmbus_queue_reserve(q, sizeof(v), &ptr, RESERVE_NS);
	sb_fault_disarm();
	sb_fault_trace(NULL, 0);
	snprintf(sh->why, sizeof(sh->why), "W's reserve: %s", shmbus_last_error());
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

	CHECK(r == 0, "%s: get returned %d (%s) after %.0f ms: %s", what, r, shmbus_strerror(r),
	      (test_now_ns() - t0) / 1e6, shmbus_last_error());
	CHECK(len == sizeof(val) && val == want,
	      "%s: got a message of %zu bytes holding %u, expected %u", what, len, val, want);
	printf("ok: %s: %u (%.0f ms)\n", what, want, (test_now_ns() - t0) / 1e6);
}

int main(void)
{
	shmbus_bus_opts_t bo;
	shmbus_bus_t *bus;
	shmbus_queue_t *ca, *ce, *prod;
	shmbus_queue_opts_t o;
	shmbus_queue_info_t info = {.size_of = sizeof(info)};
	uint32_t v = 103;
	int to_w[2], from_w[2], st;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parent = getpid();
	atexit(cleanup);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap: %s", strerror(errno));
	memset(sh, 0, sizeof(*sh));
	bus_name = test_bus_name("qreapedclaim");
	shmbus_bus_opts_init(&bo);
	bo.size = 1ull << 20;
	OK(shmbus_bus_create(bus_name, &bo, &bus));
	OK(shmbus_bus_set_liveness(bus, LIVENESS_NS));
	shmbus_queue_opts_init(&o);
	o.slots = 2;
	o.max_msg = 16;
	o.max_producers = 1;
	OK(shmbus_queue_open(bus, "q", &o, &ca));
	OK(shmbus_queue_join(ca, "a", 0));
	CHECK(pipe(to_w) == 0 && pipe(from_w) == 0, "pipe: %s", strerror(errno));

	w_pid = fork();
	CHECK(w_pid >= 0, "fork: %s", strerror(errno));
	if (w_pid == 0)
		producer_w(from_w[1], to_w[0]);
	CHECK(test_hear(from_w[0]) == 'p', "W did not put its messages: %s", sh->why);
	get_one(ca, 100, "group a");
	get_one(ca, 101, "group a");

	/* W's reserve: intent (step 1), then the CAS on head (step 2). */
	test_say(to_w[1], 'g');
	CHECK(waitpid(w_pid, &st, WUNTRACED) == w_pid && WIFSTOPPED(st),
	      "W did not stop at its claim (status %#x): %s", st, sh->why);
	CHECK(sh->trace[0] && sh->trace[1] && strcmp(sh->trace[0], "queue.claim.intent") == 0 &&
	      strcmp(sh->trace[1], "queue.claim.head") == 0,
	      "W stopped at steps %s, %s; expected queue.claim.intent, queue.claim.head",
	      sh->trace[0] ? sh->trace[0] : "-", sh->trace[1] ? sh->trace[1] : "-");
	OK(shmbus_queue_open(bus, "q", &o, &ce));
	OK(shmbus_queue_join(ce, "e", SHMBUS_GROUP_EARLIEST));
	CHECK(kill(w_pid, SIGCONT) == 0, "kill: %s", strerror(errno));
	CHECK(test_hear(from_w[0]) == 'w', "W's reserve did not return");
	CHECK(sh->reserve_rc == SHMBUS_ETIMEDOUT,
	      "W's reserve returned %d (%s), expected SHMBUS_ETIMEDOUT (the new group holds the slot): %s",
	      sh->reserve_rc, shmbus_strerror(sh->reserve_rc), sh->why);
	OK(shmbus_queue_info(ca, &info, NULL, 0));
	CHECK(info.head == 3, "head %llu after W's claim, expected 3 (W claimed seq 2)",
	      (unsigned long long)info.head);
	CHECK(kill(w_pid, SIGKILL) == 0, "kill: %s", strerror(errno));
	CHECK(waitpid(w_pid, &st, 0) == w_pid && WIFSIGNALED(st), "W did not die by the kill");
	w_pid = -1;
	printf("ok: W claimed seq 2 while group e needed its slot, timed out, was killed\n");

	/* The only producer record is W's: attaching reaps it while the slot
	 * of seq 2 is still group e's. */
	OK(shmbus_queue_open(bus, "q", &o, &prod));
	EXPECT_CODE(shmbus_queue_put(prod, &v, sizeof(v), 0), SHMBUS_EAGAIN);
	printf("ok: a new producer took W's record (reaped) and found the ring full\n");

	get_one(ce, 100, "group e (earliest)");
	get_one(ce, 101, "group e (earliest)");
	OK(shmbus_queue_put(prod, &v, sizeof(v), GET_NS));
	get_one(ca, 103, "group a, past W's reaped seq 2");
	get_one(ce, 103, "group e, past W's reaped seq 2");
	OK(shmbus_queue_info(ca, &info, NULL, 0));
	CHECK(info.head == 4 && info.depth == 0, "head %llu depth %llu, expected 4 and 0",
	      (unsigned long long)info.head, (unsigned long long)info.depth);
	printf("ok: a claim whose record was reaped before its skip is still passed over\n");
	OK(shmbus_queue_close(prod));
	OK(shmbus_queue_close(ce));
	OK(shmbus_queue_close(ca));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(bus_name));
	bus_name = NULL;
	return 0;
}

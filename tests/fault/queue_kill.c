/*
 * queue_kill.c -- promise 3 for queues: a process killed with SIGKILL at
 * any point does not block the others longer than the liveness timeout,
 * and no committed message is lost; redelivered messages are flagged.
 *
 * Two producers, a work group of three members ("work"), a broadcast group
 * of one member that is never killed ("bc"), and a broadcast group of one
 * member that is killed and left dead for a while ("fragile"). The parent
 * kills, round after round, a producer or a work member (each in turn) and
 * respawns it. No kill depends on timing: each lands at a point chosen
 * before the round.
 *   - In one producer round of four the producer stops itself
 *     (SIGSTOP) between reserve and commit and is killed there; in the
 *     others it dies by the kill-point hook (tests/faultinject.h) inside
 *     put, reserve or commit (in turn). The others must go on; the dead
 *     claim is skipped once the producer is known dead.
 *   - Every other work-member round the member stops itself holding a
 *     message (peeked, not released) and is killed there: that message
 *     must come again to another member, flagged REDELIVERED. In the
 *     others it dies by the hook inside peek, release or leave (closing
 *     its handle while it holds a message), in turn; after a leave its
 *     successor dies by the hook inside join, and a third one takes over.
 * A hook victim arms the hook as its next call of the planned kind starts
 * and dies just before that call's Nth shared-memory step; N counts 1, 2,
 * 3, ... over the rounds of that call until a call returns before step N
 * (the victim then stops right after the call and is killed there), and
 * starts again at 1. The victim records the names of its steps in the
 * shared mapping, and the test prints per call the steps it killed at and
 * the number of kill points explored. (Each kill point of put,
 * reserve/commit and peek/release on a quiet queue is also enumerated by
 * tests/fault/killpoints.c; here they come with the others running.)
 * Every message has a unique id, drawn from a shared counter; a producer
 * marks it committed once commit returned. Every few rounds the "fragile"
 * member dies by the hook in its peek and is kept dead for several
 * liveness timeouts: producers must go on past it (the ring turns over),
 * its group must keep its cursor, and the member that comes back is told
 * (SHMBUS_ELAPPED) that it was overtaken, then reads on.
 *
 * Two more members of "work" consume with shmbus_queue_get_many (batches
 * of 8 to 32, often after a pause so that a batch finds several messages)
 * into buffers, lengths, flags and a count that live in the shared
 * mapping, so the parent sees how far a call got. Every fourth round one
 * (in turn) is killed inside the call: every other time mid-batch, stopped
 * at the copy of entry j (1 to 4, in turn) because the parent had that
 * entry's buffer replaced by a PROT_NONE page (its SIGSEGV handler waits
 * for the kill); otherwise, and when no call reaches entry j within
 * 200 ms, by the hook at step N of its next call, as above. A trapped
 * member is killed only while it is inside the call (a phase word it
 * leaves by CAS when the call returns). A copying
 * call takes each message as it copies it (docs/queue.md, "What a kill
 * inside a copying call loses"): the messages a killed call had copied may
 * be lost. The parent records them from the shared buffers -- entries
 * below *got, and the entry at *got if it holds a whole message (copied
 * and perhaps taken, the count not yet advanced) -- and only those are
 * excused from "every committed id was delivered". A call that had
 * returned when the kill came counts as delivered.
 *
 * Afterwards, for "work" and "bc": every committed id was delivered, none
 * was delivered twice without the flag, none that was never produced came
 * out; "bc" saw no flag at all (nothing it held died); each id whose
 * holder was killed in "work" came again flagged. Members check every
 * checksum and that unflagged ids of one producer process increase (the
 * get_many members too, by the flags array). A message that a killed
 * get_many had copied unflagged (below *got) comes again, if at all, only
 * flagged. The test prints how many committed ids were lost with a killed
 * get_many.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"
#include "faultinject.h"

#define MAX_MSG 128
#define SLOTS 64
#define MAX_ID (1u << 21)
#define NPROD 2
#define NWORK 3
#define NGM 2                        /* get_many members of "work" */
#define GM_MAX 32                    /* largest get_many batch */
#define GM0 (NPROD + NWORK + 2)      /* slot of the first get_many member */
#define NSLOTS (GM0 + NGM)
#define LIVENESS_NS 10000000ll       /* 10 ms: a dead peer costs little */
#define TIMEOUT (20000000000ll)

enum { G_WORK, G_BC, G_FRAGILE, NGROUPS };
static const char *const gnames[NGROUPS] = {"work", "bc", "fragile"};

enum { ST_NONE, ST_RESERVED, ST_COMMITTED };

/* The calls whose steps the kill-point hook enumerates, by role. */
enum { C_NONE, C_PUT, C_RESERVE, C_COMMIT, C_JOIN, C_PEEK, C_RELEASE, C_LEAVE, C_GET_MANY,
       NCALLS };
static const char *const cnames[NCALLS] = {"-", "put", "reserve", "commit", "join", "peek",
                                           "release", "leave (close holding)", "get_many"};
#define TRACE 256                    /* steps of an armed call recorded */

/* A get_many member's phase: the parent kills it only after moving it from
 * PH_CALL to PH_KILLING, so never while it records a returned batch. */
enum { PH_IDLE, PH_CALL, PH_RECORDING, PH_KILLING };

/* Why a committed id of "work" may be missing: copied by a get_many that
 * was killed inside the call, counted in *got (COPIED) or the entry at
 * *got, a whole message perhaps taken before the count moved (INFLIGHT). */
enum { GM_NONE, GM_COPIED, GM_INFLIGHT };

struct shared {
	atomic_int failed;
	char why[512];
	atomic_int stop;                /* producers: stop producing */
	atomic_uint next_id;
	atomic_uint ready[NSLOTS];
	/* The kill-point plan of each process slot: at its next call of kind
	 * hook_call it arms the hook to die just before the call's step
	 * hook_at; a call that returns before that step stops the process
	 * (SIGSTOP) right after it, with hook_short = its steps + 1. */
	atomic_int hook_call[NSLOTS];
	atomic_long hook_at[NSLOTS];
	atomic_long hook_short[NSLOTS];
	const char *trace[NSLOTS][TRACE]; /* names of the armed call's steps */
	atomic_uint holding[NWORK];     /* id+1 while a member holds a message */
	atomic_int stop_holding[NWORK]; /* 1: stop (SIGSTOP) while holding the next one */
	atomic_int stop_inres[NPROD];   /* 1: stop inside the next reservation */
	atomic_ullong elapsed;          /* ELAPPED results seen by "fragile" */
	atomic_uchar state[MAX_ID];
	atomic_uchar plain[NGROUPS][MAX_ID];   /* unflagged deliveries */
	atomic_uchar flagged[NGROUPS][MAX_ID]; /* redeliveries */
	atomic_uchar must_redeliver[MAX_ID];   /* holder killed while holding */
	/* get_many members: what the call writes, where the parent sees it. */
	atomic_uint phase[NGM];
	atomic_uint returned[NGM];      /* 1: the call has returned */
	atomic_int trap[NGM];           /* j+1: entry j of each call goes to a guard page */
	atomic_int trapped[NGM];        /* 1: stopped at the copy into it */
	size_t n[NGM];                  /* entries asked for */
	size_t got[NGM];
	size_t lens[NGM][GM_MAX];
	uint32_t flags[NGM][GM_MAX];
	uint8_t bufs[NGM][GM_MAX][MAX_MSG];
	atomic_ullong gm_batches, gm_msgs, gm_flagged;
	atomic_uchar killed_copy[MAX_ID];      /* GM_*: copied by a killed get_many */
	atomic_uchar killed_plain[MAX_ID];     /* ... and its copy was unflagged */
};

static const char *bus_name;
static struct shared *sh;

#define fail_shared(...) test_fail_shared(&sh->failed, sh->why, sizeof(sh->why), __VA_ARGS__)

/* Message: id u32, producer pid u32, len u32, pad u32, sum u64, body. */
static size_t fill(uint8_t *m, uint32_t id, uint32_t pid)
{
	uint32_t len = 24 + (uint32_t)(test_hash(&id, 4) % (MAX_MSG - 24 + 1)), i, z = 0;
	uint64_t sum;

	memcpy(m, &id, 4);
	memcpy(m + 4, &pid, 4);
	memcpy(m + 8, &len, 4);
	memcpy(m + 12, &z, 4);
	memset(m + 16, 0, 8);
	for (i = 24; i < len; i++)
		m[i] = (uint8_t)(id * 13 + i);
	sum = test_hash(m, len);
	memcpy(m + 16, &sum, 8);
	return len;
}

/* 1 if m holds a whole message of len bytes. */
static int parse(const uint8_t *m, size_t len, uint32_t *id, uint32_t *pid, uint32_t *says)
{
	uint8_t copy[MAX_MSG];
	uint64_t sum;

	memcpy(id, m, 4);
	memcpy(pid, m + 4, 4);
	memcpy(says, m + 8, 4);
	memcpy(&sum, m + 16, 8);
	if (len < 24 || len > MAX_MSG || *says != len || *id >= MAX_ID)
		return 0;
	memcpy(copy, m, len);
	memset(copy + 16, 0, 8);
	return sum == test_hash(copy, len);
}

static uint32_t check(const uint8_t *m, size_t len, const char *who, uint32_t *pid)
{
	uint32_t id, l;

	if (len < 24 || len > MAX_MSG)
		fail_shared("%s: message of %zu bytes", who, len);
	if (!parse(m, len, &id, pid, &l))
		fail_shared("%s: corrupt message (len %zu, says %u, id %u)", who, len, l, id);
	return id;
}

/* Unflagged ids of one producer process only increase in one consumer's
 * stream (a producer claims its seqs in the order of its ids). */
static void in_order(uint32_t *last, uint32_t *lastpid, uint32_t id, uint32_t pid,
                     const char *who)
{
	int i;

	for (i = 0; i < 64 && lastpid[i] && lastpid[i] != pid; i++)
		;
	if (i == 64)
		return;
	if (lastpid[i] == pid && id <= last[i])
		fail_shared("%s: id %u of producer %u after id %u", who, id, pid, last[i]);
	lastpid[i] = pid;
	last[i] = id;
}

static shmbus_queue_t *open_queue(shmbus_bus_t **b)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q;

	shmbus_queue_opts_init(&o);
	o.slots = SLOTS;
	o.max_msg = MAX_MSG;
	if (shmbus_bus_open(bus_name, NULL, b) || shmbus_bus_set_liveness(*b, LIVENESS_NS) ||
	    shmbus_queue_open(*b, "q", &o, &q))
		fail_shared("open: %s", shmbus_last_error());
	return q;
}

/* In a victim, before a call of kind c: if the parent planned a kill in
 * it, arm the hook (counting from here) and record the call's steps. */
static int hook_arm(int slot, int c)
{
	if (atomic_load(&sh->hook_call[slot]) != c)
		return 0;
	memset(sh->trace[slot], 0, sizeof(sh->trace[slot]));
	sb_fault_trace(sh->trace[slot], TRACE);
	sb_fault_arm(atomic_load(&sh->hook_at[slot]), SIGKILL);
	return 1;
}

/* After the armed call returned: it had fewer steps than planned. Stop
 * here, just after it, for the parent's SIGKILL. */
static void hook_returned(int slot, int armed)
{
	if (!armed)
		return;
	sb_fault_disarm();
	atomic_store(&sh->hook_short[slot], sb_fault_steps() + 1);
	raise(SIGSTOP);
}

static void producer(int k)
{
	uint8_t buf[MAX_MSG];
	shmbus_bus_t *b;
	shmbus_queue_t *q = open_queue(&b);
	uint32_t id, me = (uint32_t)getpid(), n = 0;
	void *ptr;
	size_t len;
	int r, plan, armed, p_armed = 0, c_armed = 0;

	while (!atomic_load(&sh->stop)) {
		id = atomic_fetch_add(&sh->next_id, 1);
		if (id >= MAX_ID)
			break;
		len = fill(buf, id, me);
		atomic_store(&sh->state[id], ST_RESERVED);
		plan = atomic_load(&sh->hook_call[k]);
		if (plan == C_PUT || (plan == C_NONE && n % 4 == 3)) {
			/* Copying put. */
			p_armed = hook_arm(k, C_PUT);
			r = shmbus_queue_put(q, buf, len, TIMEOUT);
		} else {
			armed = hook_arm(k, C_RESERVE);
			r = shmbus_queue_reserve(q, MAX_MSG, &ptr, TIMEOUT);
			if (r == 0) {
				memcpy(ptr, buf, len);
				/* Planned to die in reserve, which returned:
				 * stopped holding the reservation. */
				hook_returned(k, armed);
				/* Asked to: wait between reserve and commit,
				 * stopped, for the parent's SIGKILL. */
				if (atomic_exchange(&sh->stop_inres[k], 0))
					raise(SIGSTOP);
				c_armed = hook_arm(k, C_COMMIT);
				r = shmbus_queue_commit(q, len);
			}
		}
		if (r == SHMBUS_ECLOSED)
			break;
		if (r)
			fail_shared("producer %d: %s: %s", k, shmbus_strerror(r), shmbus_last_error());
		atomic_store(&sh->state[id], ST_COMMITTED);
		/* Planned to die in the put or commit, which returned: stopped
		 * with the message committed (it must not be lost). */
		hook_returned(k, p_armed || c_armed);
		p_armed = c_armed = 0;
		if (n % 8 == 0)
			usleep(300);    /* a pace: ids (MAX_ID) last at any scale */
		if (++n == 16)
			atomic_store(&sh->ready[k], 1);
	}
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	_exit(0);
}

static void member(int slot, int g)
{
	uint32_t last[64] = {0}, lastpid[64] = {0};
	char who[32];
	shmbus_bus_t *b;
	shmbus_queue_t *q = open_queue(&b);
	shmbus_msg_t m;
	uint32_t id, pid;
	int r, armed, me = NPROD + slot;

	snprintf(who, sizeof(who), "%s member %d", gnames[g], slot);
	armed = hook_arm(me, C_JOIN);
	if (shmbus_queue_join(q, gnames[g], 0))
		fail_shared("%s: join: %s", who, shmbus_last_error());
	hook_returned(me, armed);
	atomic_store(&sh->ready[me], 1);
	for (;;) {
		armed = hook_arm(me, C_PEEK);
		r = shmbus_queue_peek(q, &m, TIMEOUT);
		if (r == SHMBUS_ECLOSED)
			break;
		if (r == SHMBUS_ELAPPED && g == G_FRAGILE) {
			atomic_fetch_add(&sh->elapsed, 1);
			continue;
		}
		if (r)
			fail_shared("%s: %s: %s", who, shmbus_strerror(r), shmbus_last_error());
		id = check(m.data, m.len, who, &pid);
		if (atomic_load(&sh->state[id]) == ST_NONE)
			fail_shared("%s: id %u was never produced", who, id);
		if (m.flags & SHMBUS_MSG_REDELIVERED) {
			atomic_fetch_add(&sh->flagged[g][id], 1);
		} else {
			in_order(last, lastpid, id, pid, who);
			atomic_fetch_add(&sh->plain[g][id], 1);
		}
		if (g == G_WORK)
			atomic_store(&sh->holding[slot], id + 1);
		/* Planned to die in the peek, which returned: stopped holding
		 * the message. */
		hook_returned(me, armed);
		if (g == G_WORK) {
			if (atomic_exchange(&sh->stop_holding[slot], 0))
				raise(SIGSTOP);    /* holding it, for the parent's SIGKILL */
			/* Leave the group holding it: close the handle (the
			 * message goes to another member, flagged), then stop. */
			if ((armed = hook_arm(me, C_LEAVE)) != 0) {
				shmbus_queue_close(q);
				hook_returned(me, armed);
			}
			/* Cleared before the release: a kill that finds it set
			 * came before the release. */
			atomic_store(&sh->holding[slot], 0);
		}
		armed = hook_arm(me, C_RELEASE);
		if (shmbus_queue_release(q))
			fail_shared("%s: release: %s", who, shmbus_last_error());
		hook_returned(me, armed);
	}
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	_exit(0);
}

/* Entry i (id) of get_many member k's batch reached "work". */
static void gm_count(int k, size_t i, uint32_t id)
{
	atomic_fetch_add(&sh->gm_msgs, 1);
	if (sh->flags[k][i] & SHMBUS_MSG_REDELIVERED) {
		atomic_fetch_add(&sh->gm_flagged, 1);
		atomic_fetch_add(&sh->flagged[G_WORK][id], 1);
	} else {
		atomic_fetch_add(&sh->plain[G_WORK][id], 1);
	}
}

/* The member checks and counts each entry of a returned batch, and keeps
 * its unflagged stream's per-producer order. */
static void gm_record(int k, size_t i, uint32_t *last, uint32_t *lastpid, const char *who)
{
	uint32_t pid, id = check(sh->bufs[k][i], sh->lens[k][i], who, &pid);

	if (atomic_load(&sh->state[id]) == ST_NONE)
		fail_shared("%s: id %u was never produced", who, id);
	if (sh->flags[k][i] & ~SHMBUS_MSG_REDELIVERED)
		fail_shared("%s: id %u: unknown flags %#x", who, id, sh->flags[k][i]);
	if (!(sh->flags[k][i] & SHMBUS_MSG_REDELIVERED))
		in_order(last, lastpid, id, pid, who);
	gm_count(k, i, id);
}

static uint8_t *guard;                  /* a get_many member's PROT_NONE page */
static long page;
static int gm_self = -1;

/* A copy into the guard page: the call stops there, inside get_many with
 * the entries before it copied, until the parent kills the process. Any
 * other fault is not ours: the default action, on the retry. */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
	uint8_t *a = si->si_addr;

	(void)uc;
	if (gm_self >= 0 && guard && a >= guard && a < guard + page) {
		atomic_store(&sh->trapped[gm_self], 1);
		for (;;)
			pause();
	}
	signal(sig, SIG_DFL);
}

/* A member of "work" consuming with get_many. */
static void gm_member(int k)
{
	struct sigaction sa;
	int trap;
	uint32_t last[64] = {0}, lastpid[64] = {0}, seed = (uint32_t)getpid();
	void *bufs[GM_MAX];
	size_t caps[GM_MAX], n, i, got;
	char who[40];
	shmbus_bus_t *b;
	shmbus_queue_t *q = open_queue(&b);
	unsigned ph;
	int r, armed;

	snprintf(who, sizeof(who), "work get_many member %d", k);
	gm_self = k;
	page = sysconf(_SC_PAGESIZE);
	guard = mmap(NULL, (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard == MAP_FAILED)
		fail_shared("%s: mmap guard page", who);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(SIGSEGV, &sa, NULL))
		fail_shared("%s: sigaction", who);
	for (i = 0; i < GM_MAX; i++)
		caps[i] = MAX_MSG;
	if (shmbus_queue_join(q, "work", 0))
		fail_shared("%s: join: %s", who, shmbus_last_error());
	atomic_store(&sh->ready[GM0 + k], 1);
	for (;;) {
		seed = seed * 1103515245u + 12345u;
		n = 8 + (seed >> 8) % (GM_MAX - 8 + 1);
		if ((seed >> 20) % 2 == 0)
			usleep(50 + (seed >> 4) % 400);  /* let a batch gather */
		/* No whole message left from an earlier call for the parent
		 * to take for one this call copied. */
		trap = atomic_load(&sh->trap[k]);
		for (i = 0; i < n; i++) {
			memset(sh->bufs[k][i], 0xff, 24);
			bufs[i] = trap == (int)i + 1 ? (void *)guard : (void *)sh->bufs[k][i];
		}
		sh->n[k] = n;
		atomic_store(&sh->returned[k], 0);
		/* seq_cst: the buffers are cleared before the parent may find
		 * us in the call (its CAS on phase). */
		atomic_store(&sh->phase[k], PH_CALL);
		armed = hook_arm(GM0 + k, C_GET_MANY);
		r = shmbus_queue_get_many(q, bufs, caps, sh->lens[k], sh->flags[k], n, TIMEOUT,
		                          &sh->got[k]);
		atomic_store(&sh->returned[k], 1);
		/* Planned to die in the call, which returned first: stopped
		 * just after it (the parent records the batch). */
		hook_returned(GM0 + k, armed);
		ph = PH_CALL;
		if (!atomic_compare_exchange_strong(&sh->phase[k], &ph, PH_RECORDING))
			for (;;)
				pause();        /* being killed: the parent records the batch */
		if (r == SHMBUS_ECLOSED)
			break;
		if (r)
			fail_shared("%s: %s: %s", who, shmbus_strerror(r), shmbus_last_error());
		got = sh->got[k];
		if (got == 0 || got > n)
			fail_shared("%s: get_many returned 0 with %zu of %zu", who, got, n);
		atomic_fetch_add(&sh->gm_batches, 1);
		for (i = 0; i < got; i++)
			gm_record(k, i, last, lastpid, who);
		atomic_store(&sh->phase[k], PH_IDLE);
	}
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	_exit(0);
}

/* Process slots: 0..NPROD-1 producers, then the work members, then bc and
 * fragile, then the get_many members of work. */
static pid_t spawn(int slot)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		if (slot < NPROD)
			producer(slot);
		else if (slot < NPROD + NWORK)
			member(slot - NPROD, G_WORK);
		else if (slot >= GM0)
			gm_member(slot - GM0);
		else
			member(slot - NPROD, slot == NPROD + NWORK ? G_BC : G_FRAGILE);
	}
	return pid;
}

static void kill_reap(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid %d", (int)pid);
	CHECK(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0),
	      "victim %d had failed before the kill (status %d): %s", (int)pid, st, sh->why);
}

/* A victim asked to stop itself at its next chance: wait until it is
 * stopped (it is busy; 10 s is a generous bound). */
static void wait_stopped(pid_t pid)
{
	uint64_t t0 = test_now_ns();
	int st;
	pid_t r;

	while ((r = waitpid(pid, &st, WNOHANG | WUNTRACED)) == 0) {
		CHECK(!atomic_load(&sh->failed), "a process failed: %s", sh->why);
		CHECK(test_now_ns() - t0 < 10000000000ull, "victim %d never stopped", (int)pid);
		usleep(100);
	}
	CHECK(r == pid && WIFSTOPPED(st), "victim %d: status %d, not stopped", (int)pid, st);
}

static void wait_ready(int slot)
{
	uint64_t t0 = test_now_ns();

	while (!atomic_load(&sh->ready[slot])) {
		CHECK(!atomic_load(&sh->failed), "a process failed: %s", sh->why);
		CHECK(test_now_ns() - t0 < 10000000000ull, "process %d never got ready", slot);
		usleep(200);
	}
}

static pid_t pids[NSLOTS];

static void respawn(int slot)
{
	atomic_store(&sh->ready[slot], 0);
	if (slot >= NPROD && slot < NPROD + NWORK)
		atomic_store(&sh->holding[slot - NPROD], 0);
	atomic_store(&sh->hook_call[slot], C_NONE);
	if (slot >= GM0) {
		atomic_store(&sh->phase[slot - GM0], PH_IDLE);
		atomic_store(&sh->trap[slot - GM0], 0);
		atomic_store(&sh->trapped[slot - GM0], 0);
	}
	pids[slot] = spawn(slot);
	wait_ready(slot);
}

/* The kill points explored, per call: kills by the hook, the highest step
 * killed at, and how often the call returned before the planned step (the
 * victim was then killed just after it, and the next plan starts again
 * at step 1). seen[]: the distinct (call, step name) pairs killed at. */
static int hook_kills[NCALLS], hook_max[NCALLS], hook_wraps[NCALLS];
static long next_at[NCALLS];
static struct {
	int call;
	const char *name;
} seen[256];
static int nseen;

enum { V_HOOKED, V_SHORT, V_TRAPPED };

/* Plan the death of the process in slot at the next step of its next
 * call of kind c (step 1, 2, ... over the rounds). seq_cst: hook_at is
 * stored before hook_call, which the victim loads first. */
static void hook_plan(int slot, int c)
{
	if (next_at[c] == 0)
		next_at[c] = 1;
	atomic_store(&sh->hook_short[slot], 0);
	atomic_store(&sh->hook_at[slot], next_at[c]);
	atomic_store(&sh->hook_call[slot], c);
}

/* Wait for the victim of a plan: killed by the hook at the planned step
 * (V_HOOKED), or stopped just after the call, which had fewer steps
 * (V_SHORT: killed there); both reaped. V_TRAPPED (not reaped): a
 * get_many member stopped at its guard page first. 20 s: it is busy and
 * reaches its next call within milliseconds; the bound only catches a
 * hang on a loaded machine. */
static int hook_wait(int slot, int c, atomic_int *trapped)
{
	long at = atomic_load(&sh->hook_at[slot]), sh_at;
	uint64_t t0 = test_now_ns();
	const char *name;
	pid_t r;
	int st, i;

	while ((r = waitpid(pids[slot], &st, WNOHANG | WUNTRACED)) == 0) {
		if (trapped && atomic_load(trapped))
			return V_TRAPPED;
		CHECK(!atomic_load(&sh->failed), "a process failed: %s", sh->why);
		CHECK(test_now_ns() - t0 < 20000000000ull,
		      "process %d never reached step %ld of its next %s", slot, at, cnames[c]);
		usleep(100);
	}
	CHECK(r == pids[slot], "waitpid %d", (int)pids[slot]);
	atomic_store(&sh->hook_call[slot], C_NONE);
	if (WIFSTOPPED(st)) {
		sh_at = atomic_load(&sh->hook_short[slot]);
		CHECK(sh_at >= 1 && sh_at <= at,
		      "process %d stopped, but not after a %s short of step %ld (%ld)", slot,
		      cnames[c], at, sh_at);
		kill_reap(pids[slot]);
		hook_wraps[c]++;
		next_at[c] = 1;
		return V_SHORT;
	}
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	      "process %d planned to die at step %ld of %s: status %d: %s", slot, at, cnames[c],
	      st, sh->why);
	name = at <= TRACE ? sh->trace[slot][at - 1] : "(past the record)";
	CHECK(name, "process %d died at step %ld of %s, which it did not record", slot, at,
	      cnames[c]);
	for (i = 0; i < nseen && (seen[i].call != c || strcmp(seen[i].name, name)); i++)
		;
	if (i == nseen && nseen < (int)(sizeof(seen) / sizeof(seen[0]))) {
		seen[nseen].call = c;
		seen[nseen++].name = name;
	}
	hook_kills[c]++;
	if (at > hook_max[c])
		hook_max[c] = (int)at;
	next_at[c]++;
	return V_HOOKED;
}

static int gm_kills, gm_inside, gm_copied, gm_returned, gm_trapped, gm_fallback;

/* Kill the fragile member at a planned step, keep it dead while producers
 * turn the ring over, check its group kept its cursor, bring it back. */
static void fragile_round(shmbus_queue_t *q)
{
	const int slot = NPROD + NWORK + 1;
	shmbus_group_info_t gi[NGROUPS];
	shmbus_queue_info_t info = {.size_of = sizeof(info)};
	uint64_t cursor, head0, t0;

	/* It dies by the hook in its peek (step 1, 2, ... as the others). */
	hook_plan(slot, C_PEEK);
	hook_wait(slot, C_PEEK, NULL);
	OK(shmbus_queue_info(q, &info, gi, NGROUPS));
	CHECK(strcmp(gi[G_FRAGILE].name, "fragile") == 0, "group order: %s", gi[G_FRAGILE].name);
	cursor = gi[G_FRAGILE].cursor;
	head0 = info.head;
	t0 = test_now_ns();
	do {
		usleep(2000);
		OK(shmbus_queue_info(q, &info, gi, NGROUPS));
		CHECK(test_now_ns() - t0 < 10000000000ull,
		      "producers stalled behind the dead member of 'fragile': head %llu, was %llu",
		      (unsigned long long)info.head, (unsigned long long)head0);
	} while (info.head < cursor + 3 * SLOTS);
	CHECK(gi[G_FRAGILE].cursor == cursor, "'fragile' kept its cursor %llu, now %llu",
	      (unsigned long long)cursor, (unsigned long long)gi[G_FRAGILE].cursor);
	respawn(slot);
}

/* Kill a get_many member inside its call, at a point chosen in advance.
 * Every other gm round, mid-copy: entry j (1 to 4, in turn) of its calls
 * goes to a guard page, and the member stops at that copy with j
 * messages copied. If no call reaches entry j within 200 ms (batches
 * were short), and in the other rounds, by the hook: at step N of its
 * next call, N = 1, 2, ... until a call returns before step N (then it is
 * killed just after that call, and N starts again). A batch the call
 * returned counts as delivered (the parent records it, the member could
 * not); the messages of a call killed inside may be lost, and the parent
 * notes which. */
static void gm_round(int round)
{
	int k = round % NGM, trap = round % 2 == 0 ? 1 + round / 2 % 4 : 0, trapped = 0, v;
	size_t got, n, i;
	uint32_t id, pid, says;
	uint64_t t0;
	unsigned ph;

	if (trap) {
		atomic_store(&sh->trap[k], trap + 1);
		t0 = test_now_ns();
		while (!atomic_load(&sh->trapped[k]) && test_now_ns() - t0 < 200000000ull)
			usleep(100);
		if (!atomic_load(&sh->trapped[k])) {
			/* The call that is running may still stop there. */
			atomic_store(&sh->trap[k], 0);
			gm_fallback++;
		}
	}
	if (!atomic_load(&sh->trapped[k]))
		hook_plan(GM0 + k, C_GET_MANY);
	v = atomic_load(&sh->trapped[k]) ? V_TRAPPED
	                                 : hook_wait(GM0 + k, C_GET_MANY, &sh->trapped[k]);
	if (v == V_TRAPPED) {
		/* Stopped in its handler, inside the call. */
		t0 = test_now_ns();
		for (;;) {
			ph = PH_CALL;
			if (atomic_compare_exchange_strong(&sh->phase[k], &ph, PH_KILLING))
				break;
			CHECK(!atomic_load(&sh->failed), "a process failed: %s", sh->why);
			CHECK(test_now_ns() - t0 < 10000000000ull,
			      "get_many member %d trapped but not in a call", k);
			usleep(20);
		}
		kill_reap(pids[GM0 + k]);
	}
	gm_kills++;
	/* Read after the kill: a trap that came late counts too. */
	trapped = atomic_load(&sh->trapped[k]);
	gm_trapped += trapped;
	/* It is dead: what it wrote is all there is. */
	got = sh->got[k];
	n = sh->n[k];
	CHECK(got <= n && n <= GM_MAX, "get_many member %d killed with *got %zu of %zu", k, got, n);
	CHECK(!trapped || (got == (size_t)trap && !atomic_load(&sh->returned[k])),
	      "get_many member %d stopped at the copy of entry %d with *got %zu%s", k, trap, got,
	      atomic_load(&sh->returned[k]) ? ", returned" : "");
	if (atomic_load(&sh->returned[k])) {
		gm_returned++;
		for (i = 0; i < got; i++) {
			CHECK(parse(sh->bufs[k][i], sh->lens[k][i], &id, &pid, &says),
			      "get_many returned a corrupt entry %zu of %zu (len %zu)", i, got,
			      sh->lens[k][i]);
			CHECK(atomic_load(&sh->state[id]) != ST_NONE, "get_many returned id %u, never produced", id);
			CHECK(!(sh->flags[k][i] & ~SHMBUS_MSG_REDELIVERED), "id %u: flags %#x", id,
			      sh->flags[k][i]);
			gm_count(k, i, id);
		}
	} else {
		gm_inside++;
		gm_copied += got > 0;
		for (i = 0; i < got; i++) {
			CHECK(parse(sh->bufs[k][i], sh->lens[k][i], &id, &pid, &says),
			      "a killed get_many had copied a corrupt entry %zu of %zu (len %zu)", i, got,
			      sh->lens[k][i]);
			atomic_store(&sh->killed_copy[id], GM_COPIED);
			if (!(sh->flags[k][i] & SHMBUS_MSG_REDELIVERED))
				atomic_store(&sh->killed_plain[id], 1);
		}
		/* The entry it was copying: whole, it may have been taken (the
		 * copy comes before the take, the count after). */
		if (got < n) {
			memcpy(&says, sh->bufs[k][got] + 8, 4);
			if (parse(sh->bufs[k][got], says, &id, &pid, &says) &&
			    atomic_load(&sh->killed_copy[id]) == GM_NONE)
				atomic_store(&sh->killed_copy[id], GM_INFLIGHT);
		}
	}
	respawn(GM0 + k);
}

static pid_t parent;

/* A failing check exits: the children and the bus go with it. */
static void cleanup(void)
{
	if (getpid() != parent)
		return;
	test_kill_children(pids, sizeof(pids) / sizeof(pids[0]));
	if (bus_name)
		shmbus_bus_unlink(bus_name);
}

int main(void)
{
	static const int prod_calls[] = {C_PUT, C_RESERVE, C_COMMIT},
	                 hold_calls[] = {C_PEEK, C_RELEASE, C_LEAVE};
	int rounds = (int)(300 * test_scale()), i, slot, st, redeliver_kills = 0, prod_kills = 0,
	    fragile_rounds = 0, holder_rounds = 0, prod_hooks = 0, gm_rounds = 0, join_kills = 0,
	    c, points = 0;
	shmbus_bus_opts_t bo;
	shmbus_bus_t *bus;
	shmbus_queue_t *q;
	shmbus_queue_opts_t o;
	uint64_t committed = 0, reserved_only = 0, lost = 0, dup = 0, unflagged_redeliver = 0,
	         flagged_total = 0, t0, gm_lost[3] = {0}, gm_again = 0, gm_again_plain = 0;
	uint32_t id, reaped = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parent = getpid();
	atexit(cleanup);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap");
	bus_name = test_bus_name("qkill");
	shmbus_bus_opts_init(&bo);
	bo.size = 4ull << 20;
	OK(shmbus_bus_create(bus_name, &bo, &bus));
	OK(shmbus_bus_set_liveness(bus, LIVENESS_NS));
	shmbus_queue_opts_init(&o);
	o.slots = SLOTS;
	o.max_msg = MAX_MSG;
	OK(shmbus_queue_open(bus, "q", &o, &q));
	t0 = test_now_ns();
	/* Groups in a known order, before any message. */
	for (slot = NPROD; slot < NSLOTS; slot++)
		respawn(slot);
	for (slot = 0; slot < NPROD; slot++)
		respawn(slot);
	for (i = 0; i < rounds; i++) {
		CHECK(!atomic_load(&sh->failed), "round %d: %s", i, sh->why);
		if (i % 50 == 25) {
			fragile_round(q);
			fragile_rounds++;
			continue;
		}
		if (i % 3 == 2) {
			/* A work member (in turn): every other such round it
			 * stops itself holding a message; in the others it dies
			 * by the hook in peek, release or leave (close holding a
			 * message), in turn; after a leave, its successor dies
			 * in join too. */
			int k = holder_rounds % NWORK;
			unsigned h;

			c = i % 2 == 0 ? C_NONE : hold_calls[holder_rounds / 2 % 3];
			holder_rounds++;
			slot = NPROD + k;
			if (c == C_NONE) {
				atomic_store(&sh->stop_holding[k], 1);
				wait_stopped(pids[slot]);
				kill_reap(pids[slot]);
			} else {
				hook_plan(slot, c);
				hook_wait(slot, c, NULL);
			}
			/* Still set once it is dead: it died before its release. */
			h = atomic_load(&sh->holding[k]);
			if (h) {
				atomic_store(&sh->must_redeliver[h - 1], 1);
				redeliver_kills++;
			}
			if (c == C_LEAVE) {
				atomic_store(&sh->holding[k], 0);
				atomic_store(&sh->ready[slot], 0);
				hook_plan(slot, C_JOIN);
				pids[slot] = spawn(slot);
				hook_wait(slot, C_JOIN, NULL);
				join_kills++;
			}
		} else {
			/* A producer (in turn): every other such round of
			 * three it stops itself between reserve and commit; in
			 * the others it dies by the hook in put, reserve or
			 * commit, in turn. */
			int k = prod_kills % NPROD;

			slot = k;
			if (i % 3 == 0 && i % 2 == 0) {
				atomic_store(&sh->stop_inres[k], 1);
				wait_stopped(pids[slot]);
				kill_reap(pids[slot]);
			} else {
				c = prod_calls[prod_hooks++ % 3];
				hook_plan(slot, c);
				hook_wait(slot, c, NULL);
			}
			prod_kills++;
		}
		respawn(slot);
		if (i % 4 == 1)
			gm_round(gm_rounds++);
	}
	/* Stop: producers finish, the queue is shut, members drain. */
	atomic_store(&sh->stop, 1);
	for (slot = 0; slot < NPROD; slot++) {
		CHECK(waitpid(pids[slot], &st, 0) == pids[slot], "waitpid");
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "producer %d: status %d: %s", slot, st,
		      sh->why);
	}
	OK(shmbus_queue_shut(q));
	for (slot = NPROD; slot < NSLOTS; slot++) {
		CHECK(waitpid(pids[slot], &st, 0) == pids[slot], "waitpid");
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "member %d: status %d: %s", slot, st,
		      sh->why);
	}
	CHECK(!atomic_load(&sh->failed), "%s", sh->why);
	for (id = 0; id < atomic_load(&sh->next_id) && id < MAX_ID; id++) {
		int s = sh->state[id], g;

		committed += s == ST_COMMITTED;
		reserved_only += s == ST_RESERVED;
		for (g = 0; g < NGROUPS; g++) {
			int p = sh->plain[g][id], f = sh->flagged[g][id];

			flagged_total += (uint64_t)f;
			if (p > 1 && dup++ < 5)
				fprintf(stderr, "group %s: id %u delivered %d times unflagged\n", gnames[g],
				        id, p);
			if (g == G_FRAGILE)
				continue;
			if (g == G_WORK && sh->killed_copy[id]) {
				/* Copied by a get_many killed inside the call: lost,
				 * or come again; unflagged only if the copy was not. */
				if (s == ST_COMMITTED && p + f == 0)
					gm_lost[sh->killed_copy[id]]++;
				else
					gm_again++;
				if (sh->killed_plain[id] && p && gm_again_plain++ < 5)
					fprintf(stderr, "group work: id %u, copied unflagged by a get_many killed inside the call, came again unflagged (%d times)\n",
					        id, p);
			} else if (s == ST_COMMITTED && p + f == 0 && lost++ < 5) {
				fprintf(stderr, "group %s: committed id %u never delivered%s\n", gnames[g], id,
				        g == G_WORK ? " (no get_many killed inside the call had copied it)" : "");
			}
			if (g == G_BC && f)
				CHECK(0, "group bc: id %u flagged redelivered, but no bc member died", id);
			if (g == G_WORK && sh->must_redeliver[id] && f == 0 &&
			    unflagged_redeliver++ < 5)
				fprintf(stderr, "group work: id %u's holder was killed; delivered %d times, none flagged\n",
				        id, p);
		}
	}
	printf("queue_kill: get_many: %llu batches, %llu messages (%llu flagged); %d members killed: %d inside the call (%d after copying, %d stopped mid-batch at a guard page), %d just after it returned; %llu committed ids lost with a killed get_many (%llu counted in *got, %llu the entry being copied), %llu copied by one and delivered anyway\n",
	       (unsigned long long)atomic_load(&sh->gm_batches),
	       (unsigned long long)atomic_load(&sh->gm_msgs),
	       (unsigned long long)atomic_load(&sh->gm_flagged), gm_kills, gm_inside, gm_copied,
	       gm_trapped, gm_returned, (unsigned long long)(gm_lost[GM_COPIED] + gm_lost[GM_INFLIGHT]),
	       (unsigned long long)gm_lost[GM_COPIED], (unsigned long long)gm_lost[GM_INFLIGHT],
	       (unsigned long long)gm_again);
	for (c = 1; c < NCALLS; c++) {
		int j;

		points += hook_kills[c];
		printf("queue_kill: %s: %d kills by the hook at steps 1..%d, %d calls returned before the planned step; steps:",
		       cnames[c], hook_kills[c], hook_max[c], hook_wraps[c]);
		for (j = 0; j < nseen; j++)
			if (seen[j].call == c)
				printf(" %s", seen[j].name);
		printf("\n");
	}
	printf("queue_kill: %d kill points explored (%d distinct call x step), %d victims killed just after a call that returned first, %d in join after a leave, %d get_many traps fell back to the hook\n",
	       points, nseen, hook_wraps[C_PUT] + hook_wraps[C_RESERVE] + hook_wraps[C_COMMIT] +
	       hook_wraps[C_JOIN] + hook_wraps[C_PEEK] + hook_wraps[C_RELEASE] +
	       hook_wraps[C_LEAVE] + hook_wraps[C_GET_MANY], join_kills, gm_fallback);
	CHECK(points > 0 && hook_kills[C_PUT] && hook_kills[C_RESERVE] && hook_kills[C_COMMIT] &&
	      hook_kills[C_PEEK] && hook_kills[C_RELEASE] && hook_kills[C_GET_MANY],
	      "a call was never killed inside by the hook");
	CHECK(lost == 0 && dup == 0 && unflagged_redeliver == 0 && gm_again_plain == 0,
	      "%llu committed messages lost, %llu unflagged duplicates, %llu redeliveries not flagged, %llu copied unflagged by a killed get_many and delivered again unflagged",
	      (unsigned long long)lost, (unsigned long long)dup,
	      (unsigned long long)unflagged_redeliver, (unsigned long long)gm_again_plain);
	CHECK(redeliver_kills > 0 && prod_kills > 0 && gm_kills > 0,
	      "kills: %d holding, %d producers, %d in get_many", redeliver_kills, prod_kills,
	      gm_kills);
	CHECK(fragile_rounds == 0 || atomic_load(&sh->elapsed) > 0,
	      "'fragile' came back overtaken %d times, was told %llu times", fragile_rounds,
	      (unsigned long long)atomic_load(&sh->elapsed));
	OK(shmbus_bus_gc(bus, &reaped));
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(bus_name));
	printf("ok queue_kill: %d rounds in %.1f s: %d producers killed, %d members killed holding a message, %d fragile rounds; %llu committed messages all delivered to work and bc, %llu in-flight at a kill, %llu flagged redeliveries\n",
	       rounds, (double)(test_now_ns() - t0) / 1e9, prod_kills, redeliver_kills,
	       fragile_rounds, (unsigned long long)committed, (unsigned long long)reserved_only,
	       (unsigned long long)flagged_total);
	printf("PASS queue_kill\n");
	return 0;
}

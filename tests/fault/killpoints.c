/*
 * killpoints.c -- every kill point of each mutating call, enumerated.
 *
 * For each call below, round N (N = 1, 2, ...) builds a fresh bus, forks a
 * child that opens it, arms the kill-point hook (tests/faultinject.h) and
 * makes the call: the child dies by SIGKILL just before its Nth
 * shared-memory mutation (an SB_STEP in src/). The parent then checks the
 * call's promise against what the child got done (the names of the steps
 * it passed are recorded in a shared page): nothing lost, duplicated or
 * torn; the container validates; the next open, lock, put or get works;
 * nothing wedges (every check has a timeout, and the whole round an
 * alarm). The rounds stop at the first N the call completes without
 * reaching; the completed call is checked too. Output, per call:
 *   killpoints: queue.put 9 explored, 9 passed
 * Every kill point must pass. KILLPOINTS=name,name runs only those calls;
 * KILLPOINTS_TRACE=1 lists the steps of each completed call.
 */
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"
#include "faultinject.h"
#include "internal.h"
#include "container.h"
#include "testarea.h"

#define MAXSTEP 4096
#define LIVE_NS 20000000ll        /* 20 ms liveness slices for the dead */
#define T_NS 5000000000ll         /* 5 s: every check's timeout (load margin) */

struct shared {
	const char *trace[MAXSTEP];  /* names of the child's steps, in order */
	long total;                  /* steps of a completed call */
	int ret;                     /* its return code */
	uint64_t wids[8];            /* what a parked consumer got */
	int wn, wrc;
};

static struct shared *sh;
static const char *bus_name;
static char bus_path[256];
static shmbus_bus_t *B;          /* the parent's handle on this round's bus */
static long cur_n;               /* the step the child was killed at */
static int killed;               /* 1: killed at cur_n; 0: the call completed */
static const char *cur_name;
static char why[1024];

static int reap_within(pid_t p, int *status, int64_t limit);
static pid_t waiter = -1;        /* a parked consumer of the round */

/* ---- the child's steps ------------------------------------------------ */

/* Did the child pass the step named name (its mutation is in memory)? A
 * name ending in '*' matches as a prefix. */
static int ran(const char *name)
{
	long lim = killed ? cur_n - 1 : (sh->total < MAXSTEP ? sh->total : MAXSTEP), i;
	size_t n = strlen(name);
	int prefix = n && name[n - 1] == '*';

	for (i = 0; i < lim; i++)
		if (sh->trace[i] && (prefix ? strncmp(sh->trace[i], name, n - 1) == 0
		                            : strcmp(sh->trace[i], name) == 0))
			return 1;
	return 0;
}

/* How many times the child passed the step named name. */
static int ran_count(const char *name)
{
	long lim = killed ? cur_n - 1 : (sh->total < MAXSTEP ? sh->total : MAXSTEP), i;
	int n = 0;

	for (i = 0; i < lim; i++)
		n += sh->trace[i] && strcmp(sh->trace[i], name) == 0;
	return n;
}

static const char *at_step(void)
{
	return killed ? (cur_n - 1 < MAXSTEP && sh->trace[cur_n - 1] ? sh->trace[cur_n - 1] : "?")
	              : "completed";
}

#define KC(cond, ...) do { if (!(cond)) { \
	int o_ = snprintf(why, sizeof(why), "line %d: ", __LINE__); \
	snprintf(why + o_, sizeof(why) - (size_t)o_, __VA_ARGS__); return -1; } } while (0)
#define KOK(call) do { int r_ = (call); KC(r_ == 0, "%s returned %d (%s): %s", #call, r_, \
	shmbus_strerror(r_), shmbus_last_error()); } while (0)

/* ---- parent handles of a round ---------------------------------------- */

static shmbus_queue_t *pp, *pc;    /* producer; consumer in group "g" */
static shmbus_state_t *pst;
static shmbus_lock_t *plk;
static shmbus_event_t *pev;
static shmbus_sem_t *psem;
static shmbus_array_t *parr;
static shmbus_dict_t *pd;
static shmbus_list_t *pl;
static shmbus_turn_t *ptn;

/* the child's */
static shmbus_queue_t *cq;
static shmbus_state_t *cst;
static shmbus_lock_t *clk;
static shmbus_event_t *cev;
static shmbus_sem_t *csem;
static shmbus_array_t *carr;
static shmbus_dict_t *cd;
static shmbus_list_t *cl;
static shmbus_turn_t *ctn;

static void close_parent(void)
{
	if (pp) shmbus_queue_close(pp);
	if (pc) shmbus_queue_close(pc);
	if (pst) shmbus_state_close(pst);
	if (plk) shmbus_lock_close(plk);
	if (pev) shmbus_event_close(pev);
	if (psem) shmbus_sem_close(psem);
	if (parr) shmbus_array_close(parr);
	if (pd) shmbus_dict_close(pd);
	if (pl) shmbus_list_close(pl);
	if (ptn) shmbus_turn_close(ptn);
	ptn = NULL;
	pp = pc = NULL; pst = NULL; plk = NULL; pev = NULL; psem = NULL;
	parr = NULL; pd = NULL; pl = NULL;
}

/* ---- messages that carry their own check ------------------------------ */

struct msg { uint64_t id, sum; };

static struct msg mk(uint64_t id)
{
	struct msg m = { id, test_hash(&id, sizeof(id)) ^ 0x5a5a };

	return m;
}

/* Next message of pc within the timeout: 0 and *id, or the error code. A
 * torn or foreign message is a failure (-100). */
static uint32_t last_flags;        /* of the message next_id returned */
static int flagged_dups;           /* redelivered a second time, flagged */

static int next_id(uint64_t *id, int64_t timeout)
{
	struct msg m;
	size_t len = 0;
	int r = shmbus_queue_get(pc, &m, sizeof(m), &len, &last_flags, timeout);

	if (r)
		return r;
	if (len != sizeof(m) || m.sum != (test_hash(&m.id, sizeof(m.id)) ^ 0x5a5a)) {
		snprintf(why, sizeof(why), "torn message (len %zu, id %llu)", len,
		         (unsigned long long)m.id);
		return -100;
	}
	*id = m.id;
	return 0;
}

#define EXPECT_ID(want) do { uint64_t id_ = 0; int r_ = next_id(&id_, T_NS); \
	KC(r_ == 0 && id_ == (want), "expected message %llu, got rc %d (%s) id %llu", \
	   (unsigned long long)(want), r_, shmbus_strerror(r_), (unsigned long long)id_); } while (0)
#define EXPECT_EMPTY() do { uint64_t id_ = 0; int r_ = next_id(&id_, 0); \
	KC(r_ == SHMBUS_EAGAIN, "expected an empty queue, got rc %d id %llu (duplicate?)", \
	   r_, (unsigned long long)id_); } while (0)

static int put_id(shmbus_queue_t *q, uint64_t id)
{
	struct msg m = mk(id);

	return shmbus_queue_put(q, &m, sizeof(m), T_NS);
}

/* Take every message pc can get now into seen[] (ids < 64); a torn one,
 * or one delivered twice without the REDELIVERED flag, fails. A second,
 * flagged delivery is the documented at-least-once edge (docs/queue.md,
 * "Limits": a member that dies between confirming its hold and its take
 * while another member takes the message); it is counted. */
static int drain(int *seen, int64_t timeout)
{
	uint64_t id;
	int r;

	while ((r = next_id(&id, timeout)) == 0) {
		KC(id < 64, "foreign message %llu", (unsigned long long)id);
		KC(!seen[id] || (last_flags & SHMBUS_MSG_REDELIVERED),
		   "message %llu delivered twice, the second time unflagged", (unsigned long long)id);
		if (seen[id])
			flagged_dups++;
		seen[id] = 1;
	}
	KC(r == SHMBUS_EAGAIN || r == SHMBUS_ETIMEDOUT, "get: %d (%s) %s", r, shmbus_strerror(r),
	   shmbus_last_error());
	return 0;
}

/* Producer pressure after a consumer died: 3 and then 20 more messages
 * through the 8-slot ring, group g draining as they come. A message the
 * dead member held gates the ring until it is delivered again, so the
 * puts only get through if it is (never lost, never wedged). Every id in
 * want[] (0-terminated) and 3, 10..29 arrive exactly once, nothing else. */
static int pressure(const uint64_t *want)
{
	int seen[64] = {0}, i;
	uint64_t id;

	KOK(put_id(pp, 3));
	for (i = 0; i < 20; i++) {
		struct msg m = mk(10 + (uint64_t)i);
		int r, tries = 0;

		/* The parent is also the consumer: on a full ring it waits for
		 * data as a consumer does (a wait longer than the liveness
		 * timeout looks for what dead members held, and adopts it), then
		 * retries the put. */
		while ((r = shmbus_queue_put(pp, &m, sizeof(m), 1000000000ll)) == SHMBUS_ETIMEDOUT &&
		       ++tries < 5)
			if (drain(seen, 10 * LIVE_NS))
				return -1;
		KC(r == 0, "put %d under pressure: %d (%s) %s -- a held message wedges the ring",
		   10 + i, r, shmbus_strerror(r), shmbus_last_error());
		if (drain(seen, 0))
			return -1;
	}
	if (drain(seen, 300000000))
		return -1;
	for (; *want; want++) {
		KC(seen[*want], "message %llu lost", (unsigned long long)*want);
		seen[*want] = 0;
	}
	KC(seen[3], "message 3 lost");
	seen[3] = 0;
	for (i = 0; i < 20; i++) {
		KC(seen[10 + i], "message %d lost", 10 + i);
		seen[10 + i] = 0;
	}
	for (id = 0; id < 64; id++)
		KC(!seen[id], "message %llu delivered but not expected", (unsigned long long)id);
	return 0;
}

static shmbus_queue_t *queue_handle(shmbus_bus_t *b)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q = NULL;

	shmbus_queue_opts_init(&o);
	o.slots = 8;
	o.max_msg = 64;
	if (shmbus_queue_open(b, "q", &o, &q))
		return NULL;
	return q;
}

/* ---- queue ------------------------------------------------------------- */

/* The parent holds a producer and a consumer of group "g"; message 1 is
 * queued before the child runs. */
static int q_setup(void)
{
	pp = queue_handle(B);
	pc = queue_handle(B);
	KC(pp && pc, "queue open: %s", shmbus_last_error());
	KOK(shmbus_queue_join(pc, "g", SHMBUS_GROUP_EARLIEST));
	KOK(put_id(pp, 1));
	return 0;
}

static int q_setup2(void)
{
	if (q_setup())
		return -1;
	KOK(put_id(pp, 2));
	return 0;
}

static int q_prep(shmbus_bus_t *b)
{
	cq = queue_handle(b);
	return cq ? 0 : -1;
}

static int q_prep_member(shmbus_bus_t *b)
{
	if (q_prep(b))
		return -1;
	return shmbus_queue_join(cq, "g", SHMBUS_GROUP_EARLIEST) < 0 ? -1 : 0;
}

static int op_put(shmbus_bus_t *b)
{
	(void)b;
	return put_id(cq, 2);
}

static int op_reserve_commit(shmbus_bus_t *b)
{
	struct msg m = mk(2);
	void *p;
	int r;

	(void)b;
	if ((r = shmbus_queue_reserve(cq, sizeof(m), &p, T_NS)) != 0)
		return r;
	memcpy(p, &m, sizeof(m));
	return shmbus_queue_commit(cq, sizeof(m));
}

/* A producer killed anywhere in put (or between reserve and commit):
 * message 2 is delivered once, whole, exactly when its publication
 * happened; a later message 3 from another producer gets through to the
 * consumer (a claimed but never published slot is skipped, not waited
 * for forever); nothing arrives twice. */
static int chk_produced(void)
{
	int published = ran("queue.publish.published");

	EXPECT_ID(1);
	KOK(put_id(pp, 3));
	if (published)
		EXPECT_ID(2);
	EXPECT_ID(3);
	EXPECT_EMPTY();
	return 0;
}

/* As q_setup, plus a consumer process in its own group "w" that took
 * message 1 and is parked in get (its state in /proc is S) when the
 * child runs: a producer dying under it must not leave it asleep. */
static int q_setup_parked(void)
{
	int fds[2], i;
	char c, path[64], buf[256];

	if (q_setup())
		return -1;
	KC(pipe(fds) == 0, "pipe");
	fflush(stdout);
	waiter = fork();
	if (waiter == 0) {
		shmbus_bus_t *b;
		shmbus_queue_t *q;
		struct msg m;
		size_t len;

		close(fds[0]);
		if (shmbus_bus_open(bus_name, NULL, &b) || shmbus_bus_set_liveness(b, LIVE_NS) ||
		    !(q = queue_handle(b)) || shmbus_queue_join(q, "w", SHMBUS_GROUP_EARLIEST) < 0 ||
		    shmbus_queue_get(q, &m, sizeof(m), &len, NULL, T_NS) || m.id != 1)
			_exit(3);
		if (write(fds[1], "r", 1) != 1)
			_exit(3);
		while (sh->wn < 8) {
			int r = shmbus_queue_get(q, &m, sizeof(m), &len, NULL, T_NS);

			if (r) {
				sh->wrc = r;
				break;
			}
			sh->wids[sh->wn++] = len == sizeof(m) ? m.id : 999;
			if (m.id == 3)
				break;
		}
		_exit(0);
	}
	close(fds[1]);
	KC(read(fds[0], &c, 1) == 1, "the parked consumer did not start");
	close(fds[0]);
	/* Parked: sleeping in the kernel (futex), not spinning. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)waiter);
	for (i = 0; i < 10000; i++) {
		FILE *f = fopen(path, "r");
		char *p = NULL;

		if (f) {
			p = fgets(buf, sizeof(buf), f);
			fclose(f);
		}
		p = p ? strrchr(buf, ')') : NULL;
		if (p && p[1] == ' ' && p[2] == 'S')
			break;
		usleep(1000);
	}
	KC(i < 10000, "the consumer never parked");
	return 0;
}

/* chk_produced, and the parked consumer of group w wakes and gets message
 * 2 (when published) and 3, in order, within the timeout. */
static int chk_produced_parked(void)
{
	int published = ran("queue.publish.published"), st = 0, i = 0;

	if (chk_produced())
		return -1;
	KC(reap_within(waiter, &st, 3 * T_NS) == 0, "the parked consumer is still asleep");
	waiter = -1;
	KC(WIFEXITED(st) && WEXITSTATUS(st) == 0, "parked consumer status %d", st);
	if (published)
		KC(sh->wn > i && sh->wids[i++] == 2, "parked consumer missed message 2 (got %d, rc %d)",
		   sh->wn, sh->wrc);
	KC(sh->wn == i + 1 && sh->wids[i] == 3,
	   "parked consumer got %d messages (rc %d %s), the last %llu; wanted %s3", sh->wn, sh->wrc,
	   shmbus_strerror(sh->wrc), (unsigned long long)(sh->wn ? sh->wids[sh->wn - 1] : 0),
	   published ? "2, " : "");
	return 0;
}

/* chk_produced for a consumer that only ever polls (get with timeout 0,
 * then with 5 ms, both shorter than the liveness timeout, in a loop for
 * up to 5 s): a dead producer's slot must be passed over once its death
 * is known, whatever the callers' timeouts and call pattern. */
static int chk_produced_polling(void)
{
	int published = ran("queue.publish.published"), want = published ? 2 : 3, r;
	uint64_t id = 0, end;

	EXPECT_ID(1);
	KOK(put_id(pp, 3));
	end = test_now_ns() + (uint64_t)T_NS;
	while (want <= 3) {
		r = next_id(&id, (want & 1) ? 0 : 5000000);
		if (r == 0) {
			KC(id == (uint64_t)want, "polling consumer got %llu, wanted %d",
			   (unsigned long long)id, want);
			want++;
			continue;
		}
		KC(r == SHMBUS_EAGAIN || r == SHMBUS_ETIMEDOUT, "poll: %d (%s)", r, shmbus_strerror(r));
		KC(test_now_ns() < end, "a polling consumer never passed the dead producer's slot "
		   "(still waiting for message %d after 5 s)", want);
		usleep(1000);
	}
	EXPECT_EMPTY();
	return 0;
}

static int op_put_many(shmbus_bus_t *b)
{
	struct msg m[3] = { mk(2), mk(3), mk(4) };
	const void *p[3] = { &m[0], &m[1], &m[2] };
	size_t l[3] = { sizeof(m[0]), sizeof(m[0]), sizeof(m[0]) }, done;

	(void)b;
	return shmbus_queue_put_many(cq, p, l, 3, T_NS, &done);
}

/* Killed in put_many(2, 3, 4): exactly the messages whose publication
 * happened arrive, in order, whole, once; the slots claimed but not
 * published are passed over; a later put gets through. */
static int chk_put_many(void)
{
	int n = ran_count("queue.queue_put_many.published"), i;

	EXPECT_ID(1);
	KOK(put_id(pp, 5));
	for (i = 0; i < n; i++)
		EXPECT_ID(2 + (uint64_t)i);
	EXPECT_ID(5);
	EXPECT_EMPTY();
	return 0;
}

static int op_get(shmbus_bus_t *b)
{
	struct msg m;
	size_t len;

	(void)b;
	return shmbus_queue_get(cq, &m, sizeof(m), &len, NULL, T_NS);
}

/* A consumer of group g killed in get: message 1 is gone from the group
 * exactly when the child's take (the cursor CAS) happened -- get copies
 * first, so a message taken is a message the caller had -- else the next
 * member gets it; message 2 follows; nothing twice; a put still works. */
static int chk_get(void)
{
	int taken = ran("queue.take_copy.cursor") || ran("queue.take_one.cursor");

	if (!taken)
		EXPECT_ID(1);
	EXPECT_ID(2);
	KOK(put_id(pp, 3));
	EXPECT_ID(3);
	EXPECT_EMPTY();
	return 0;
}

static int op_peek_release(shmbus_bus_t *b)
{
	shmbus_msg_t m;
	int r;

	(void)b;
	if ((r = shmbus_queue_peek(cq, &m, T_NS)) != 0)
		return r;
	return shmbus_queue_release(cq);
}

/* A consumer killed in peek/release: a message it held is delivered again
 * to the group (nothing lost); one it released is not (nothing twice). */
static int chk_peek(void)
{
	uint64_t want[3] = { 2, 0, 0 };

	if (!ran("queue.drop_hold.held"))
		want[1] = 1;
	return pressure(want);
}

static int op_join(shmbus_bus_t *b)
{
	(void)b;
	return shmbus_queue_join(cq, "h", SHMBUS_GROUP_EARLIEST) < 0 ? -1 : 0;
}

/* Killed while joining (and creating) group h: group g is untouched,
 * producers are not blocked for ever by a half-made group (5 puts into the
 * 8-slot ring with g drained), and h can be joined afterwards and serves
 * messages. */
static int chk_join(void)
{
	shmbus_queue_t *h = queue_handle(B);
	uint64_t id;
	int i, r;

	KC(h != NULL, "queue open after the kill: %s", shmbus_last_error());
	EXPECT_ID(1);
	for (i = 0; i < 5; i++)
		if ((r = put_id(pp, 10 + (uint64_t)i)) != 0) {
			shmbus_queue_close(h);
			KC(0, "put %d after the kill: %d (%s) %s", i, r, shmbus_strerror(r),
			   shmbus_last_error());
		}
	for (i = 0; i < 5; i++)
		EXPECT_ID(10 + (uint64_t)i);
	r = shmbus_queue_join(h, "h", SHMBUS_GROUP_EARLIEST);
	if (r >= 0) {
		struct msg m;
		size_t len;

		r = shmbus_queue_get(h, &m, sizeof(m), &len, NULL, T_NS);
		id = m.id;
		(void)id;
	}
	shmbus_queue_close(h);
	KC(r == 0, "join/get of h after the kill: %d (%s) %s", r, shmbus_strerror(r),
	   shmbus_last_error());
	return 0;
}

static int op_leave(shmbus_bus_t *b)
{
	(void)b;
	return shmbus_queue_close(cq);
}

static int chk_leave(void)
{
	EXPECT_ID(1);
	EXPECT_ID(2);
	KOK(put_id(pp, 3));
	EXPECT_ID(3);
	EXPECT_EMPTY();
	return 0;
}

static int op_shut(shmbus_bus_t *b)
{
	(void)b;
	return shmbus_queue_shut(cq);
}

/* Killed in shut: once the end mark is in head, puts fail with ECLOSED and
 * consumers drain then get ECLOSED (not a timeout); before it, the queue
 * works on. */
static int chk_shut(void)
{
	uint64_t id;
	int r;

	EXPECT_ID(1);
	if (ran("queue.queue_shut.head")) {
		r = put_id(pp, 3);
		KC(r == SHMBUS_ECLOSED, "put after shut: %d", r);
		r = next_id(&id, T_NS);
		KC(r == SHMBUS_ECLOSED, "get after shut: %d (%s), not ECLOSED", r, shmbus_strerror(r));
	} else {
		KOK(put_id(pp, 3));
		EXPECT_ID(3);
	}
	return 0;
}

static int dg_setup(void)
{
	shmbus_queue_t *o;

	if (q_setup())
		return -1;
	o = queue_handle(B);
	KC(o != NULL, "open");
	KC(shmbus_queue_join(o, "old", SHMBUS_GROUP_DURABLE) >= 0, "join old");
	shmbus_queue_close(o);
	return 0;
}

static int op_drop_group(shmbus_bus_t *b)
{
	(void)b;
	return shmbus_queue_drop_group(cq, "old");
}

/* Killed in drop_group: the group is either still there (and droppable
 * now) or gone; either way the durable group stops gating afterwards
 * (20 puts through an 8-slot ring) and its name can be joined again. */
static int chk_drop_group(void)
{
	shmbus_queue_t *h;
	int r, i;

	r = shmbus_queue_drop_group(pp, "old");
	KC(r == 0 || r == SHMBUS_ENOENT, "drop_group after the kill: %d (%s) %s", r,
	   shmbus_strerror(r), shmbus_last_error());
	EXPECT_ID(1);
	for (i = 0; i < 20; i++) {
		KOK(put_id(pp, 10 + (uint64_t)i));
		EXPECT_ID(10 + (uint64_t)i);
	}
	h = queue_handle(B);
	KC(h != NULL, "open");
	r = shmbus_queue_join(h, "old", 0);
	shmbus_queue_close(h);
	KC(r >= 0, "join old again: %d (%s)", r, shmbus_strerror(r));
	return 0;
}

/* ---- state ------------------------------------------------------------- */

#define ST_LEN 64

static void st_val(uint64_t *v, uint64_t k)
{
	int i;

	for (i = 0; i < ST_LEN; i++)
		v[i] = k * 1000 + (uint64_t)i;
}

static int st_setup(void)
{
	KOK(test_state_1d(B, "s", SHMBUS_UINT64, ST_LEN, &pst));
	return 0;
}

static int st_prep(shmbus_bus_t *b)
{
	return test_state_1d(b, "s", SHMBUS_UINT64, ST_LEN, &cst);
}

static int op_state_write(shmbus_bus_t *b)
{
	uint64_t v[ST_LEN];

	(void)b;
	st_val(v, 7);
	return shmbus_state_write(cst, v, sizeof(v));
}

static int op_state_commit(shmbus_bus_t *b)
{
	void *p;
	int r;

	(void)b;
	if ((r = shmbus_state_write_begin(cst, &p)) != 0)
		return r;
	st_val(p, 7);
	return shmbus_state_write_commit(cst);
}

/* A writer killed in write (or between write_begin and commit): readers
 * see no value or the whole new one -- never a torn mix -- and the new
 * one exactly when it was published; another process then takes over the
 * writer role and its value is read back whole. */
static int chk_state(void)
{
	uint64_t v[ST_LEN], w[ST_LEN], seq = 0;
	int r, pub = ran("state.publish.pub_seq");

	r = shmbus_state_read(pst, v, sizeof(v), &seq);
	if (pub) {
		st_val(w, 7);
		KC(r == 0 && memcmp(v, w, sizeof(v)) == 0, "published value: rc %d, v[0] %llu v[63] %llu",
		   r, (unsigned long long)v[0], (unsigned long long)v[ST_LEN - 1]);
	} else {
		KC(r == SHMBUS_ENODATA, "unpublished write visible: rc %d v[0] %llu", r,
		   (unsigned long long)v[0]);
	}
	st_val(w, 9);
	KOK(shmbus_state_write(pst, w, sizeof(w)));
	KOK(shmbus_state_read(pst, v, sizeof(v), &seq));
	KC(memcmp(v, w, sizeof(v)) == 0, "the next writer's value reads back torn");
	return 0;
}

/* ---- lock -------------------------------------------------------------- */

static int lk_setup(void)
{
	KOK(shmbus_lock_open(B, "L", NULL, &plk));
	return 0;
}

static int lk_prep(shmbus_bus_t *b)
{
	return shmbus_lock_open(b, "L", T_OPTS(shmbus_lock_opts_t, .create = 0), &clk);
}

static int op_lock_unlock(shmbus_bus_t *b)
{
	int r;

	(void)b;
	r = shmbus_lock_lock(clk, T_NS);
	if (r == SHMBUS_EOWNERDEAD)
		r = shmbus_lock_consistent(clk);
	if (r)
		return r;
	return shmbus_lock_unlock(clk);
}

/* A holder killed anywhere in lock/unlock: the next lock succeeds within
 * the timeout, with EOWNERDEAD exactly when the child died owning it;
 * after consistent+unlock the lock is plain again. */
static int chk_lock(void)
{
	int holding = ran("sync.try_take.owner") && !ran("sync.rlock_release.owner");
	int r = shmbus_lock_lock(plk, T_NS);

	KC(r == 0 || r == SHMBUS_EOWNERDEAD, "lock after the kill: %d (%s) %s", r,
	   shmbus_strerror(r), shmbus_last_error());
	KC((r == SHMBUS_EOWNERDEAD) == holding, "lock returned %d but the child %s holding it", r,
	   holding ? "died" : "was not");
	if (r == SHMBUS_EOWNERDEAD)
		KOK(shmbus_lock_consistent(plk));
	KOK(shmbus_lock_unlock(plk));
	KOK(shmbus_lock_lock(plk, T_NS));
	KOK(shmbus_lock_unlock(plk));
	return 0;
}

/* The lock's owner died before the child runs: the child recovers it. */
static int lk_setup_dead(void)
{
	pid_t p;
	int st;

	if (lk_setup())
		return -1;
	fflush(stdout);
	p = fork();
	if (p == 0) {
		shmbus_bus_t *b;
		shmbus_lock_t *l;

		if (shmbus_bus_open(bus_name, NULL, &b) || shmbus_lock_open(b, "L", T_OPTS(shmbus_lock_opts_t, .create = 0), &l) ||
		    shmbus_lock_lock(l, T_NS))
			_exit(3);
		_exit(0);
	}
	KC(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0, "dead owner");
	return 0;
}

/* Killed while recovering a lock whose owner died: the next locker gets
 * it (EOWNERDEAD while nobody made it consistent and unlocked), and it
 * never ends up unrecoverable. */
static int chk_lock_consistent(void)
{
	int r = shmbus_lock_lock(plk, T_NS);

	KC(r == 0 || r == SHMBUS_EOWNERDEAD, "lock after the kill: %d (%s) %s", r,
	   shmbus_strerror(r), shmbus_last_error());
	if (!killed)
		KC(r == 0, "lock after a completed recovery: %d", r);
	if (r == SHMBUS_EOWNERDEAD)
		KOK(shmbus_lock_consistent(plk));
	KOK(shmbus_lock_unlock(plk));
	KOK(shmbus_lock_lock(plk, T_NS));
	KOK(shmbus_lock_unlock(plk));
	return 0;
}

/* ---- event, semaphore -------------------------------------------------- */

static int ev_setup(void)
{
	KOK(shmbus_event_open(B, "E", NULL, &pev));
	return 0;
}

static int ev_prep(shmbus_bus_t *b)
{
	return shmbus_event_open(b, "E", T_OPTS(shmbus_event_opts_t, .create = 0), &cev);
}

static int op_event_set(shmbus_bus_t *b)
{
	(void)b;
	return shmbus_event_set(cev);
}

/* Killed in set: the event is set exactly when the store happened, and a
 * waiter sees that (no timeout when set); set/wait work afterwards. */
static int ev_setup_set(void)
{
	if (ev_setup())
		return -1;
	KOK(shmbus_event_set(pev));
	return 0;
}

static int op_event_clear(shmbus_bus_t *b)
{
	(void)b;
	return shmbus_event_clear(cev);
}

/* Killed in clear: the event is clear exactly when the store happened;
 * set and wait work afterwards. */
static int chk_event_clear(void)
{
	int cleared = ran("sync.event_clear.word");

	KC(shmbus_event_is_set(pev) == !cleared, "is_set %d after a kill %s the clear",
	   shmbus_event_is_set(pev), cleared ? "after" : "before");
	KOK(shmbus_event_set(pev));
	KOK(shmbus_event_wait(pev, T_NS));
	return 0;
}

static int chk_event(void)
{
	int set = ran("sync.event_set.word");
	int r = shmbus_event_wait(pev, set ? T_NS : 0);

	KC(set ? r == 0 : r != 0, "event wait %d after a kill %s the set", r,
	   set ? "after" : "before");
	KC(shmbus_event_is_set(pev) == set, "is_set disagrees");
	KOK(shmbus_event_set(pev));
	KOK(shmbus_event_wait(pev, T_NS));
	return 0;
}

static int sem_setup(uint32_t initial)
{
	KOK(shmbus_sem_open(B, "S", T_OPTS(shmbus_sem_opts_t, .create = 1, .initial = initial), &psem));
	return 0;
}

static int sem_setup0(void) { return sem_setup(0); }
static int sem_setup1(void) { return sem_setup(1); }

static int sem_prep(shmbus_bus_t *b)
{
	return shmbus_sem_open(b, "S", T_OPTS(shmbus_sem_opts_t, .create = 0), &csem);
}

static int op_sem_post(shmbus_bus_t *b)
{
	(void)b;
	return shmbus_sem_post(csem);
}

static int op_sem_wait(shmbus_bus_t *b)
{
	(void)b;
	return shmbus_sem_wait(csem, T_NS);
}

/* Killed in post (wait): the count went up (down) by one exactly when
 * its CAS happened; post and wait work afterwards. */
static int chk_sem(uint32_t want)
{
	uint32_t v = 99;

	KOK(shmbus_sem_value(psem, &v));
	KC(v == want, "semaphore value %u, expected %u", v, want);
	KOK(shmbus_sem_post(psem));
	KOK(shmbus_sem_wait(psem, T_NS));
	return 0;
}

static int chk_sem_post(void) { return chk_sem(ran("sync.sem_post.count") ? 1 : 0); }
static int chk_sem_wait(void) { return chk_sem(ran("sync.sem_take.count") ? 0 : 1); }

/* ---- array ------------------------------------------------------------- */

static int arr_setup(void)
{
	int64_t ten = 10;

	KOK(shmbus_array_open(B, "A", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 4, .create = 1), &parr));
	KOK(shmbus_array_set(parr, 1, &ten));
	return 0;
}

static int arr_prep(shmbus_bus_t *b)
{
	return shmbus_array_open(b, "A", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 4, .create = 0), &carr);
}

static int op_array_add(shmbus_bus_t *b)
{
	(void)b;
	return shmbus_array_add_i64(carr, 1, 5, NULL);
}

static int op_array_xchg(shmbus_bus_t *b)
{
	int64_t old;

	(void)b;
	return shmbus_array_xchg_i64(carr, 1, 77, &old);
}

static int op_array_set(shmbus_bus_t *b)
{
	int64_t v = 33;

	(void)b;
	return shmbus_array_set(carr, 1, &v);
}

static int op_array_cas(shmbus_bus_t *b)
{
	int64_t e = 10;

	(void)b;
	return shmbus_array_cas_i64(carr, 1, &e, 42);
}

static int chk_array(int64_t after, const char *step)
{
	int64_t v = 0, want = ran(step) ? after : 10;

	KOK(shmbus_array_get(parr, 1, &v));
	KC(v == want, "element %lld, expected %lld", (long long)v, (long long)want);
	KOK(shmbus_array_add_i64(parr, 1, 1, NULL));
	return 0;
}

static int chk_array_add(void) { return chk_array(15, "array.add_i64.element"); }
static int chk_array_cas(void) { return chk_array(42, "array.cas_i64.element"); }
static int chk_array_xchg(void) { return chk_array(77, "array.xchg_i64.element"); }
static int chk_array_set(void) { return chk_array(33, "array.set.element"); }

/* ---- dict and list ------------------------------------------------------ */

#define NK 400

static size_t dval(char *buf, int k, int gen, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (char)(k * 31 + gen * 7 + (int)i);
	return len;
}

static int dict_is(shmbus_dict_t *d, int k, int gen, size_t len)
{
	char key[16], buf[4096], want[4096];
	size_t n = 0;
	int r;

	snprintf(key, sizeof(key), "k%d", k);
	r = shmbus_dict_get(d, key, strlen(key), buf, sizeof(buf), &n);
	if (gen < 0)
		return r == SHMBUS_ENOENT;
	dval(want, k, gen, len);
	return r == 0 && n == len && memcmp(buf, want, len) == 0;
}

static int dict_put(shmbus_dict_t *d, int k, int gen, size_t len)
{
	char key[16], buf[4096];

	snprintf(key, sizeof(key), "k%d", k);
	dval(buf, k, gen, len);
	return shmbus_dict_set(d, key, strlen(key), buf, len);
}

/* A 64 KiB dict whose heap is cut into small free blocks: NK keys of 600
 * bytes set, then all but k0 deleted. A 3000-byte value then fits only
 * after the free runs are merged (the heap merge, rebuild_free). */
static int d_setup_merge(void)
{
	char key[16];
	int k;

	KOK(shmbus_dict_open(B, "D", T_OPTS(shmbus_dict_opts_t, .create = 1, .area_bytes = 64u << 10), &pd));
	for (k = 0; k < NK; k++)
		if (dict_put(pd, k, 1, 600) != 0)
			break;
	KC(k > 20 && k < NK, "%d keys fit (the dict must fill up)", k);
	for (k = 1; k < NK; k++) {
		snprintf(key, sizeof(key), "k%d", k);
		shmbus_dict_del(pd, key, strlen(key));
	}
	return 0;
}

static int d_setup(void)
{
	int k;

	KOK(shmbus_dict_open(B, "D", T_OPTS(shmbus_dict_opts_t, .create = 1, .area_bytes = 256u << 10), &pd));
	for (k = 0; k < 8; k++)
		KOK(dict_put(pd, k, 1, 100));
	return 0;
}

static int d_prep(shmbus_bus_t *b)
{
	return shmbus_dict_open(b, "D", T_OPTS(shmbus_dict_opts_t, .create = 0), &cd);
}

static int op_dict_set_merge(shmbus_bus_t *b)
{
	(void)b;
	return dict_put(cd, 99, 2, 3000);
}

static int op_dict_set(shmbus_bus_t *b)
{
	(void)b;
	return dict_put(cd, 3, 2, 300);   /* replaces a value: alloc + free */
}

static int op_dict_set_new(shmbus_bus_t *b)
{
	(void)b;
	return dict_put(cd, 20, 2, 50);   /* a new key */
}

static int d_common(void);

static int op_dict_fill(shmbus_bus_t *b)
{
	int k, r;

	(void)b;
	for (k = 8; k < 40; k++)
		if ((r = dict_put(cd, k, 2, 24 + (size_t)k)) != 0)
			return r;
	return 0;
}

/* Killed anywhere in 32 sets of new keys (the table grows on the way):
 * the dict validates, keys 0-7 are intact, and the new keys present are
 * whole and a prefix of the 32 -- each set applied entirely or not at
 * all, in order. */
static int chk_dict_fill(void)
{
	int k, gap = 0;

	for (k = 8; k < 40; k++) {
		int whole = dict_is(pd, k, 2, 24 + (size_t)k), none = dict_is(pd, k, -1, 0);

		KC(whole || none, "key %d torn", k);
		KC(!(gap && whole), "key %d present after an absent key", k);
		if (none)
			gap = 1;
	}
	if (!killed) {
		shmbus_channel_info_t ci = {.size_of = sizeof(ci)};

		KC(!gap, "completed sets not all visible");
		KOK(shmbus_channel_info(B, "D", &ci));
		KC(ci.capacity >= 64, "the table did not grow (capacity %llu; the case proves less)",
		   (unsigned long long)ci.capacity);
	}
	return d_common();
}

static int op_dict_del(shmbus_bus_t *b)
{
	char key[] = "k3";

	(void)b;
	return shmbus_dict_del(cd, key, 2);
}

static int inc(const void *old, size_t oldlen, void *out, size_t cap, size_t *outlen, void *arg)
{
	return test_dict_inc(old, oldlen, out, cap, outlen, arg);
}

static int op_dict_update(shmbus_bus_t *b)
{
	(void)b;
	return shmbus_dict_update(cd, "n", 1, inc, NULL);
}

/* After a kill anywhere in the call, the dict validates (blocks, free
 * lists, a heap walk) and every key holds its whole old or whole new value
 * -- applied entirely or not at all -- and the next set and get work. */
static int d_common(void)
{
	int k;

	KOK(shmbus_dict_validate(pd));
	for (k = 0; k < 8; k++)
		if (k != 3)
			KC(dict_is(pd, k, 1, 100), "key %d lost or changed", k);
	KOK(dict_put(pd, 50, 3, 200));
	KC(dict_is(pd, 50, 3, 200), "the next set did not read back");
	KOK(shmbus_dict_validate(pd));
	return 0;
}

static int chk_dict_set(void)
{
	int newv = dict_is(pd, 3, 2, 300), oldv = dict_is(pd, 3, 1, 100);

	KC(newv || oldv, "key 3 is neither its old nor its new value (torn or lost)");
	if (!killed)
		KC(newv, "completed set not visible");
	return d_common();
}

static int chk_dict_set_new(void)
{
	int newv = dict_is(pd, 20, 2, 50), none = dict_is(pd, 20, -1, 0);

	KC(newv || none, "new key 20 torn");
	if (!killed)
		KC(newv, "completed set not visible");
	return d_common();
}

static int chk_dict_del(void)
{
	int none = dict_is(pd, 3, -1, 0), oldv = dict_is(pd, 3, 1, 100);

	KC(none || oldv, "deleted key 3 is torn");
	if (!killed)
		KC(none, "completed del not visible");
	return d_common();
}

static int chk_dict_update(void)
{
	int64_t v = -1;
	size_t n = 0;
	int r = shmbus_dict_get(pd, "n", 1, &v, sizeof(v), &n);

	KC(r == SHMBUS_ENOENT || (r == 0 && n == 8 && v == 1), "counter rc %d value %lld", r,
	   (long long)v);
	if (!killed)
		KC(r == 0, "completed update not visible");
	KOK(shmbus_dict_update(pd, "n", 1, inc, NULL));
	KOK(shmbus_dict_get(pd, "n", 1, &v, sizeof(v), &n));
	KC(v == (r == 0 ? 2 : 1), "counter %lld after one more update", (long long)v);
	return d_common();
}

static int chk_dict_merge(void)
{
	int newv = dict_is(pd, 99, 2, 3000), none = dict_is(pd, 99, -1, 0);

	KOK(shmbus_dict_validate(pd));
	KC(dict_is(pd, 0, 1, 600), "key 0 lost or changed");
	KC(newv || none, "key 99 torn");
	if (!killed)
		KC(newv && ran("box.rebuild.mark"), "the completed set did not merge free space (the case proves nothing)");
	/* No space lost: the value the child was setting fits now (after the
	 * merge, redone by this locker if the child died in it). */
	if (!newv)
		KOK(dict_put(pd, 99, 2, 3000));
	KC(((struct sb_box *)test_area_of(B, "D"))->rebuilding == 0,
	   "a merge cut short is still marked unfinished after the next set");
	KOK(dict_put(pd, 98, 3, 2000));
	KC(dict_is(pd, 98, 3, 2000), "the next set did not read back");
	KOK(shmbus_dict_validate(pd));
	return 0;
}

static int l_setup(void)
{
	char buf[256];
	int k;

	KOK(shmbus_list_open(B, "Li", T_OPTS(shmbus_list_opts_t, .create = 1, .area_bytes = 256u << 10), &pl));
	for (k = 0; k < 6; k++)
		KOK(shmbus_list_append(pl, buf, dval(buf, k, 1, 40)));
	return 0;
}

static int l_prep(shmbus_bus_t *b)
{
	return shmbus_list_open(b, "Li", T_OPTS(shmbus_list_opts_t, .create = 0), &cl);
}

static int op_list_append(shmbus_bus_t *b)
{
	char buf[256];

	(void)b;
	return shmbus_list_append(cl, buf, dval(buf, 6, 2, 90));
}

static int op_list_set(shmbus_bus_t *b)
{
	char buf[256];

	(void)b;
	return shmbus_list_set(cl, 2, buf, dval(buf, 2, 2, 200));
}

static int op_list_pop0(shmbus_bus_t *b)
{
	char buf[256];
	size_t n;

	(void)b;
	return shmbus_list_pop(cl, 0, buf, sizeof(buf), &n);
}

static int op_list_insert(shmbus_bus_t *b)
{
	char buf[256];

	(void)b;
	return shmbus_list_insert(cl, 1, buf, dval(buf, 9, 2, 30));
}

static int list_is(int64_t i, int k, int gen, size_t len)
{
	char buf[4096], want[4096];
	size_t n = 0;

	if (shmbus_list_get(pl, i, buf, sizeof(buf), &n) != 0)
		return 0;
	dval(want, k, gen, len);
	return n == len && memcmp(buf, want, len) == 0;
}

/* The list validates; its elements are exactly the old list or exactly
 * the list after the call (applied entirely or not at all); an append
 * works next. want_new: the list after the call, as (k, gen, len) rows. */
static int l_check(const int (*after)[3], uint64_t after_len)
{
	uint64_t len = 0, i;
	int is_new = 1, is_old = 1;

	KOK(shmbus_list_validate(pl));
	KOK(shmbus_list_len(pl, &len));
	if (len != 6)
		is_old = 0;
	for (i = 0; i < 6 && is_old; i++)
		is_old = list_is((int64_t)i, (int)i, 1, 40);
	if (len != after_len)
		is_new = 0;
	for (i = 0; i < after_len && is_new; i++)
		is_new = list_is((int64_t)i, after[i][0], after[i][1], (size_t)after[i][2]);
	KC(is_old || is_new, "list (len %llu) is neither the old nor the new list",
	   (unsigned long long)len);
	if (!killed)
		KC(is_new, "completed call not visible");
	{
		char buf[64];

		KOK(shmbus_list_append(pl, buf, dval(buf, 7, 3, 20)));
		KC(list_is(-1, 7, 3, 20), "the next append did not read back");
	}
	KOK(shmbus_list_validate(pl));
	return 0;
}

static int op_list_update(shmbus_bus_t *b)
{
	(void)b;
	return shmbus_list_update(cl, 0, inc, NULL);
}

/* Element 0 is its whole old value or the whole update (an int64 1),
 * the rest is untouched, the list validates and takes an append. */
static int chk_list_update(void)
{
	int64_t v = 0;
	size_t n = 0;
	int k, upd;

	KOK(shmbus_list_validate(pl));
	upd = shmbus_list_get(pl, 0, &v, sizeof(v), &n) == 0 && n == 8 && v == 1;
	KC(upd || list_is(0, 0, 1, 40), "element 0 is neither its old value nor the update");
	if (!killed)
		KC(upd, "completed update not visible");
	for (k = 1; k < 6; k++)
		KC(list_is(k, k, 1, 40), "element %d changed", k);
	{
		char buf[64];

		KOK(shmbus_list_append(pl, buf, dval(buf, 7, 3, 20)));
		KC(list_is(-1, 7, 3, 20), "the next append did not read back");
	}
	KOK(shmbus_list_validate(pl));
	return 0;
}

static const int l_old[6][3] = { {0,1,40},{1,1,40},{2,1,40},{3,1,40},{4,1,40},{5,1,40} };

static int op_list_clear(shmbus_bus_t *b)
{
	(void)b;
	return shmbus_list_clear(cl);
}

static int chk_list_clear(void)
{
	return l_check(l_old, 0);
}

static int chk_list_append(void)
{
	int a[7][3];

	memcpy(a, l_old, sizeof(l_old));
	a[6][0] = 6; a[6][1] = 2; a[6][2] = 90;
	return l_check((const int (*)[3])a, 7);
}

static int chk_list_set(void)
{
	int a[6][3];

	memcpy(a, l_old, sizeof(l_old));
	a[2][1] = 2; a[2][2] = 200;
	return l_check((const int (*)[3])a, 6);
}

static int chk_list_pop0(void)
{
	return l_check(l_old + 1, 5);
}

static int chk_list_insert(void)
{
	int a[7][3] = { {0,1,40},{9,2,30},{1,1,40},{2,1,40},{3,1,40},{4,1,40},{5,1,40} };

	return l_check((const int (*)[3])a, 7);
}

/* ---- turn ---------------------------------------------------------------- */

static int tn_setup(void)
{
	KOK(shmbus_turn_open(B, "T", T_OPTS(shmbus_turn_opts_t, .create = 1, .max_parties = 4), &ptn));
	return 0;
}

static int tn_prep(shmbus_bus_t *b)
{
	return shmbus_turn_open(b, "T", T_OPTS(shmbus_turn_opts_t, .create = 0), &ctn);
}

static int op_turn(shmbus_bus_t *b)
{
	uint32_t me;
	int r;

	(void)b;
	if ((r = shmbus_turn_register(ctn, &me)) != 0 ||
	    (r = shmbus_turn_acquire(ctn, T_NS)) != 0)
		return r;
	return shmbus_turn_release(ctn);
}

/* A party killed while registering, taking or passing its turn: a new party registers
 * and gets its turns (the dead one is skipped) within the timeout, twice. */
static int chk_turn(void)
{
	uint32_t me;
	int i;

	KOK(shmbus_turn_register(ptn, &me));
	for (i = 0; i < 2; i++) {
		KOK(shmbus_turn_acquire(ptn, T_NS));
		KOK(shmbus_turn_release(ptn));
	}
	return 0;
}

/* ---- bus and channels ---------------------------------------------------- */

static char bus2[64];

static int op_bus_create(shmbus_bus_t *b)
{
	shmbus_bus_opts_t o;
	shmbus_bus_t *n;
	int r;

	(void)b;
	shmbus_bus_opts_init(&o);
	o.size = 1u << 20;
	if ((r = shmbus_bus_create(bus2, &o, &n)) != 0)
		return r;
	return shmbus_bus_close(n);
}

static int count_tmp(void)
{
	char cmd[400];
	FILE *f;
	int n = 0, c;

	snprintf(cmd, sizeof(cmd), "ls /dev/shm | grep -c '^shmbus-%s\\.tmp-' ", bus2);
	f = popen(cmd, "r");
	if (f) {
		if (fscanf(f, "%d", &c) == 1)
			n = c;
		pclose(f);
	}
	return n;
}

static int list_cb(const char *name, void *arg)
{
	(void)name;
	(void)arg;
	return 0;
}

/* Killed while creating a bus: the name either does not exist or opens
 * as a whole, valid bus (never half-built); the temporary file is removed
 * by the next listing; creating (or opening) the bus then works. */
static int chk_bus_create(void)
{
	shmbus_bus_t *n = NULL;
	shmbus_channel_info_t ci[4] = {{.size_of = sizeof(ci[0])}};
	size_t cnt = 0;
	int r = shmbus_bus_open(bus2, NULL, &n);

	KC(r == 0 || r == SHMBUS_ENOENT, "open after a killed create: %d (%s) %s", r,
	   shmbus_strerror(r), shmbus_last_error());
	if (!killed)
		KC(r == 0, "completed create did not publish the bus");
	if (r == 0) {
		r = shmbus_channel_list(n, ci, 4, &cnt);
		shmbus_bus_close(n);
		KC(r == 0, "channel list of the new bus: %d", r);
	} else {
		KOK(shmbus_bus_create(bus2, NULL, &n));
		shmbus_bus_close(n);
	}
	shmbus_list(list_cb, NULL);
	KC(count_tmp() == 0, "a temporary file of the killed create is left in /dev/shm");
	shmbus_bus_unlink(bus2);
	return 0;
}

static int op_bus_open_close(shmbus_bus_t *b)
{
	shmbus_bus_t *n;
	int r;

	(void)b;
	if ((r = shmbus_bus_open(bus_name, NULL, &n)) != 0)
		return r;
	return shmbus_bus_close(n);
}

/* Killed while opening or closing a bus: the bus opens again, its
 * directory works (a channel is created) and gc reclaims the dead peer. */
static int chk_bus_open(void)
{
	shmbus_bus_t *n;
	shmbus_lock_t *l;
	uint32_t reaped = 0;

	KOK(shmbus_bus_open(bus_name, NULL, &n));
	KOK(shmbus_lock_open(n, "after", NULL, &l));
	shmbus_lock_close(l);
	KOK(shmbus_bus_gc(n, &reaped));
	KOK(shmbus_bus_close(n));
	return 0;
}

static int op_chan_create(shmbus_bus_t *b)
{
	shmbus_lock_t *l;
	int r;

	if ((r = shmbus_lock_open(b, "C", NULL, &l)) != 0)
		return r;
	return shmbus_lock_close(l);
}

/* Killed while creating a channel: it exists whole (usable) or not at all
 * (and can be created now); other channels are untouched. */
static int chk_chan_create(void)
{
	shmbus_lock_t *l;
	int r = shmbus_lock_open(B, "C", T_OPTS(shmbus_lock_opts_t, .create = 0), &l);

	KC(r == 0 || r == SHMBUS_ENOENT, "open of a half-created channel: %d (%s) %s", r,
	   shmbus_strerror(r), shmbus_last_error());
	if (!killed)
		KC(r == 0, "completed create not visible");
	if (r)
		KOK(shmbus_lock_open(B, "C", NULL, &l));
	r = shmbus_lock_lock(l, T_NS);
	if (r == 0)
		shmbus_lock_unlock(l);
	shmbus_lock_close(l);
	KC(r == 0, "lock of the new channel: %d", r);
	return chk_lock();
}

static int op_chan_delete(shmbus_bus_t *b)
{
	return shmbus_channel_delete(b, "L");
}

static int chk_chan_delete(void)
{
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)};
	shmbus_lock_t *l;
	int r = shmbus_channel_info(B, "L", &ci);

	KC(r == 0 || r == SHMBUS_ENOENT, "info of a half-deleted channel: %d (%s)", r,
	   shmbus_strerror(r));
	if (!killed)
		KC(r == SHMBUS_ENOENT, "completed delete still visible");
	KOK(shmbus_lock_open(B, "L", NULL, &l));
	KOK(shmbus_lock_lock(l, T_NS));
	KOK(shmbus_lock_unlock(l));
	shmbus_lock_close(l);
	return 0;
}

/* gc after dead processes left a lock held, a message held and a state
 * writer role taken. */
static int gc_setup(void)
{
	pid_t p;
	int st;

	if (q_setup2() || st_setup() || lk_setup())
		return -1;
	fflush(stdout);
	p = fork();
	if (p == 0) {
		shmbus_bus_t *b;
		shmbus_lock_t *l;
		shmbus_queue_t *q;
		shmbus_state_t *s;
		shmbus_msg_t m;
		uint64_t v[ST_LEN];

		st_val(v, 5);
		if (shmbus_bus_open(bus_name, NULL, &b) || shmbus_lock_open(b, "L", T_OPTS(shmbus_lock_opts_t, .create = 0), &l) ||
		    shmbus_lock_lock(l, T_NS) || !(q = queue_handle(b)) ||
		    shmbus_queue_join(q, "g", 0) < 0 || shmbus_queue_peek(q, &m, T_NS) ||
		    test_state_1d(b, "s", SHMBUS_UINT64, ST_LEN, &s) ||
		    shmbus_state_write(s, v, sizeof(v)))
			_exit(3);
		_exit(0);
	}
	KC(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0, "dead process");
	return 0;
}

static int op_gc(shmbus_bus_t *b)
{
	uint32_t n;

	return shmbus_bus_gc(b, &n);
}

/* Killed in gc: another gc completes, the lock comes back (EOWNERDEAD at
 * most once), the held message is delivered again, the state takes a new
 * writer. */
static int chk_gc(void)
{
	uint32_t n;
	uint64_t v[ST_LEN], seq;
	int r;

	KOK(shmbus_bus_gc(B, &n));
	r = shmbus_lock_lock(plk, T_NS);
	KC(r == 0 || r == SHMBUS_EOWNERDEAD, "lock after gc: %d", r);
	if (r)
		KOK(shmbus_lock_consistent(plk));
	KOK(shmbus_lock_unlock(plk));
	{
		static const uint64_t want[] = { 1, 2, 0 };

		if (pressure(want))
			return -1;
	}
	st_val(v, 6);
	KOK(shmbus_state_write(pst, v, sizeof(v)));
	KOK(shmbus_state_read(pst, v, sizeof(v), &seq));
	return 0;
}

/* ---- the driver ---------------------------------------------------------- */

struct kp {
	const char *name;
	int (*setup)(void);                /* parent: fixtures on the fresh bus */
	int (*prep)(shmbus_bus_t *b);      /* child, unarmed: open its handles */
	int (*op)(shmbus_bus_t *b);        /* child, armed: the call */
	int (*check)(void);                /* parent: the promise */
};

static const struct kp cases[] = {
	{ "queue.put", q_setup, q_prep, op_put, chk_produced },
	{ "queue.reserve+commit", q_setup, q_prep, op_reserve_commit, chk_produced },
	{ "queue.put/parked-consumer", q_setup_parked, q_prep, op_put, chk_produced_parked },
	{ "queue.reserve+commit/parked-consumer", q_setup_parked, q_prep, op_reserve_commit,
	  chk_produced_parked },
	{ "queue.put/polling-consumer", q_setup, q_prep, op_put, chk_produced_polling },
	{ "queue.reserve+commit/polling-consumer", q_setup, q_prep, op_reserve_commit,
	  chk_produced_polling },
	{ "queue.put_many", q_setup, q_prep, op_put_many, chk_put_many },
	{ "queue.get", q_setup2, q_prep_member, op_get, chk_get },
	{ "queue.peek+release", q_setup2, q_prep_member, op_peek_release, chk_peek },
	{ "queue.join", q_setup, q_prep, op_join, chk_join },
	{ "queue.leave", q_setup2, q_prep_member, op_leave, chk_leave },
	{ "queue.shut", q_setup, q_prep, op_shut, chk_shut },
	{ "queue.drop_group", dg_setup, q_prep, op_drop_group, chk_drop_group },
	{ "state.write", st_setup, st_prep, op_state_write, chk_state },
	{ "state.write_begin+commit", st_setup, st_prep, op_state_commit, chk_state },
	{ "lock.lock+unlock", lk_setup, lk_prep, op_lock_unlock, chk_lock },
	{ "lock.consistent", lk_setup_dead, lk_prep, op_lock_unlock, chk_lock_consistent },
	{ "dict.set+merge", d_setup_merge, d_prep, op_dict_set_merge, chk_dict_merge },
	{ "dict.set", d_setup, d_prep, op_dict_set, chk_dict_set },
	{ "dict.set_new", d_setup, d_prep, op_dict_set_new, chk_dict_set_new },
	{ "dict.set_x32", d_setup, d_prep, op_dict_fill, chk_dict_fill },
	{ "dict.del", d_setup, d_prep, op_dict_del, chk_dict_del },
	{ "dict.update", d_setup, d_prep, op_dict_update, chk_dict_update },
	{ "list.append", l_setup, l_prep, op_list_append, chk_list_append },
	{ "list.set", l_setup, l_prep, op_list_set, chk_list_set },
	{ "list.pop0", l_setup, l_prep, op_list_pop0, chk_list_pop0 },
	{ "list.insert", l_setup, l_prep, op_list_insert, chk_list_insert },
	{ "list.update", l_setup, l_prep, op_list_update, chk_list_update },
	{ "list.clear", l_setup, l_prep, op_list_clear, chk_list_clear },
	{ "array.set", arr_setup, arr_prep, op_array_set, chk_array_set },
	{ "array.xchg", arr_setup, arr_prep, op_array_xchg, chk_array_xchg },
	{ "array.add", arr_setup, arr_prep, op_array_add, chk_array_add },
	{ "array.cas", arr_setup, arr_prep, op_array_cas, chk_array_cas },
	{ "event.set", ev_setup, ev_prep, op_event_set, chk_event },
	{ "event.clear", ev_setup_set, ev_prep, op_event_clear, chk_event_clear },
	{ "sem.post", sem_setup0, sem_prep, op_sem_post, chk_sem_post },
	{ "sem.wait", sem_setup1, sem_prep, op_sem_wait, chk_sem_wait },
	{ "turn.register+acquire+pass", tn_setup, tn_prep, op_turn, chk_turn },
	{ "bus.create", NULL, NULL, op_bus_create, chk_bus_create },
	{ "bus.open+close", NULL, NULL, op_bus_open_close, chk_bus_open },
	{ "channel.create", lk_setup, NULL, op_chan_create, chk_chan_create },
	{ "channel.delete", lk_setup, NULL, op_chan_delete, chk_chan_delete },
	{ "bus.gc", gc_setup, NULL, op_gc, chk_gc },
};

static void cleanup(void)
{
	unlink(bus_path);
	if (bus2[0]) {
		char p[300];

		snprintf(p, sizeof(p), "/dev/shm/shmbus-%s", bus2);
		unlink(p);
	}
}

static void on_alarm(int sig)
{
	char m[300];
	int n;

	(void)sig;
	n = snprintf(m, sizeof(m), "FAIL killpoints: %s wedged (round %ld, killed at %s)\n",
	             cur_name ? cur_name : "?", cur_n, at_step());
	if (write(2, m, (size_t)n) < 0)
		n = 0;
	cleanup();
	_exit(1);
}

static void round_begin(void)
{
	shmbus_bus_opts_t o;

	shmbus_bus_opts_init(&o);
	o.size = 4u << 20;
	OK(shmbus_bus_create(bus_name, &o, &B));
	OK(shmbus_bus_set_liveness(B, LIVE_NS));
}

static void round_end(void)
{
	if (waiter > 0) {
		kill(waiter, SIGKILL);
		waitpid(waiter, NULL, 0);
		waiter = -1;
	}
	close_parent();
	shmbus_bus_close(B);
	B = NULL;
	shmbus_bus_unlink(bus_name);
}

/* Wait for process p, at most limit ns (then it is killed: -1). */
static int reap_within(pid_t p, int *status, int64_t limit)
{
	uint64_t end = test_now_ns() + (uint64_t)limit;

	while (waitpid(p, status, WNOHANG) == 0) {
		if (test_now_ns() > end) {
			kill(p, SIGKILL);
			waitpid(p, status, 0);
			return -1;
		}
		usleep(1000);
	}
	return 0;
}

static int explore(const struct kp *k, int *explored, int *passed)
{
	long n;
	int st, r;
	pid_t p;

	cur_name = k->name;
	*explored = *passed = 0;
	for (n = 1; n < MAXSTEP; n++) {
		alarm(120);
		cur_n = n;
		round_begin();
		why[0] = 0;
		memset(sh, 0, sizeof(*sh));
		if (k->setup && k->setup() != 0)
			FAIL("%s: setup: %s", k->name, why);
		fflush(stdout);
		fflush(stderr);
		p = fork();
		CHECK(p >= 0, "fork");
		if (p == 0) {
			shmbus_bus_t *cb;

			alarm(60);
			if (shmbus_bus_open(bus_name, NULL, &cb) ||
			    shmbus_bus_set_liveness(cb, LIVE_NS) || (k->prep && k->prep(cb)))
				_exit(3);
			sb_fault_trace(sh->trace, MAXSTEP);
			sb_fault_arm(n, SIGKILL);
			r = k->op(cb);
			sb_fault_disarm();
			sh->total = sb_fault_steps();
			sh->ret = r;
			_exit(0);
		}
		if (reap_within(p, &st, 60000000000ll) != 0)
			FAIL("%s: the call wedged in the child (round %ld)", k->name, n);
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
			killed = 1;
		} else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			killed = 0;
			if (sh->ret != 0)
				FAIL("%s: the call itself failed: %d (%s)", k->name, sh->ret,
				     shmbus_strerror(sh->ret));
		} else {
			FAIL("%s: child status %d (round %ld)", k->name, st, n);
		}
		if (!killed && getenv("KILLPOINTS_TRACE")) {
			long i;

			for (i = 0; i < sh->total && i < MAXSTEP; i++)
				printf("  %s step %ld: %s\n", k->name, i + 1, sh->trace[i]);
		}
		r = k->check();
		if (killed)
			(*explored)++;
		if (r == 0 && killed)
			(*passed)++;
		if (r != 0)
			printf("  FAIL %s killed at step %ld (%s): %s\n", k->name, n, at_step(), why);
		round_end();
		alarm(0);
		if (!killed) {
			if (r != 0)
				return -1;
			break;
		}
	}
	return 0;
}

static int wanted(const char *name)
{
	const char *only = getenv("KILLPOINTS");
	const char *s;
	size_t n = strlen(name);

	if (!only || !*only)
		return 1;
	for (s = only; (s = strstr(s, name)) != NULL; s += n)
		if ((s == only || s[-1] == ',') && (s[n] == 0 || s[n] == ','))
			return 1;
	return 0;
}

int main(void)
{
	size_t i;
	int total = 0, failed = 0, calls = 0;

	bus_name = test_bus_name("kp");
	snprintf(bus_path, sizeof(bus_path), "/dev/shm/shmbus-%s", bus_name);
	snprintf(bus2, sizeof(bus2), "t-kp2-%d", (int)getpid());
	atexit(cleanup);
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);      /* output into `| head`: still clean up */
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap");
	for (i = 0; i < SB_ARRAY_LEN(cases); i++) {
		int e = 0, p = 0, r;

		if (!wanted(cases[i].name))
			continue;
		calls++;
		r = explore(&cases[i], &e, &p);
		printf("killpoints: %s %d explored, %d passed%s\n", cases[i].name, e, p,
		       r ? " (and the completed call FAILED)" : "");
		fflush(stdout);
		total += e;
		if (p != e || r)
			failed++;
	}
	printf("killpoints: %d kill points over %d calls; %d calls failed; %d messages delivered a second time, flagged (at-least-once edge)\n",
	       total, calls, failed, flagged_dups);
	if (failed)
		return 1;
	printf("killpoints: ok\n");
	return 0;
}

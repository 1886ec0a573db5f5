/*
 * wait.c -- clocks, deadlines, the futex calls, and the one park primitive
 * every blocking call of the library waits through (state wait, queue data
 * and space, lock, event, semaphore, turn).
 *
 * Policy (one for every kind): spin for a budget (default 50 us, long
 * enough that a peer answering within tens of microseconds never costs a
 * sleep -- one futex wake-up costs about 30 us on a VM), with a pause
 * instruction for the first SB_PURE_SPIN_NS and a sched_yield per round
 * after that (the peer may be waiting for our CPU); then park. Handles
 * with a wait policy (state, queue) choose SPIN (never park), PARK (park
 * at once) or SPIN_PARK (the default, which the sync kinds use).
 *
 * Parking: prepare -> recheck -> sleep -> cancel.
 *   prepare   the waiter announces itself: fetch_add on a waiter count
 *             (or raises bit 0 of the futex word itself, for locks and
 *             semaphores), seq_cst;
 *   recheck   it loads the condition again, seq_cst, and sleeps only if
 *             the condition is still false; futex words are shared (not
 *             FUTEX_PRIVATE): they live in memory other processes map;
 *   sleep     FUTEX_WAIT on a word, for at most one slice (250 ms), the
 *             deadline, and the caller's cap (the liveness timeout);
 *   cancel    it retracts the count, then looks at the segment
 *             (sb_wait_check: truncated, overwritten, channel deleted).
 * The waker publishes the condition with a seq_cst store or RMW, then
 * loads the count (seq_cst) and calls FUTEX_WAKE only if it is non-zero,
 * so the common path has no system call.
 *
 * Why no wake-up is lost. The waiter does W1 = store count, W2 = load
 * condition; the waker does K1 = store condition, K2 = load count. All
 * four are seq_cst, so they fall in one total order S consistent with
 * program order (W1 before W2, K1 before K2). If W2 does not see K1, W2
 * precedes K1 in S, so W1 < W2 < K1 < K2 and K2 sees the count: the waker
 * calls FUTEX_WAKE. Either the waiter saw the condition (and does not
 * sleep), or the waker saw the waiter (and wakes it). The wake cannot come
 * too early either: the waiter sleeps with FUTEX_WAIT(word, expected),
 * where expected was read at or before W2, and the waker changes the word
 * before its FUTEX_WAKE; the kernel compares the word under its hash-
 * bucket lock, so a sleep that starts after the change returns at once
 * (EAGAIN). With either order weakened to acquire/release (x86 would then
 * let W2 pass W1 through its store buffer), both loads may read the old
 * values and the waiter sleeps through the only wake-up: the mutants of
 * tests/model/wait.pml show exactly that, and the model with both pairs
 * passes. A waker that dies between K1 and K2 is covered by the slices:
 * no sleep outlasts the caller's cap (the liveness timeout) or 250 ms.
 *
 * Waiting on several channels at once is waitset.c's: every wake site
 * above also rings its bus's bell (sb_bell_ring, after the same seq_cst
 * publication), and a wait set sleeps with futex_waitv on the bells of
 * its buses, not on the channels' words; the same store->load argument,
 * twice, is written there.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sched.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include <stdio.h>

#include "internal.h"
#include "sigbus.h"

uint64_t sb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t sb_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sb_deadline_init(sb_deadline_t *d, int64_t timeout_ns)
{
	int64_t now;

	if (timeout_ns < 0) {
		d->end = -1;
		return;
	}
	/* A timeout too large to add to the clock (INT64_MAX, say) saturates:
	 * it ends at the end of time, rather than in a signed overflow. */
	now = (int64_t)sb_now_ns();
	d->end = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
}

int64_t sb_deadline_left(const sb_deadline_t *d)
{
	int64_t left;

	if (d->end < 0)
		return -1;
	left = d->end - (int64_t)sb_now_ns();
	return left > 0 ? left : 0;
}

int sb_futex_wait(_Atomic uint32_t *addr, uint32_t expected, int64_t timeout_ns)
{
	struct timespec ts, *tsp = NULL;
	long r;

	if (timeout_ns == 0)
		return SHMBUS_ETIMEDOUT;
	if (timeout_ns > 0) {
		ts.tv_sec = timeout_ns / 1000000000ll;
		ts.tv_nsec = timeout_ns % 1000000000ll;
		tsp = &ts;
	}
	r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT, expected, tsp, NULL, 0);
	if (r == 0)
		return 0;
	switch (errno) {
	case EAGAIN: return 0;          /* the word changed before we slept */
	case ETIMEDOUT: return SHMBUS_ETIMEDOUT;
	case EINTR: return SHMBUS_EINTR;
	default: return sb_err_sys(errno, "futex wait");
	}
}

void sb_futex_wake(_Atomic uint32_t *addr, int n)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, n, NULL, NULL, 0);
}

static int segment_err(const struct sb_chan *ch)
{
	char who[SHMBUS_NAME_MAX + 32];

	snprintf(who, sizeof(who), "%s '%s': ", shmbus_kind_name(ch->p.kind), ch->name);
	return sb_bus_health(ch->bus, who);
}

int sb_chan_damage_err(const struct sb_chan *ch)
{
	int r = segment_err(ch);

	return r ? r : sb_err(SHMBUS_ECORRUPT, "%s '%s': bus '%s' was truncated while mapped",
	                      shmbus_kind_name(ch->p.kind), ch->name, ch->bus->name);
}

/* sb_wait_check at time now (sb_now_ns), read by the caller. */
static int wait_check_at(const struct sb_chan *ch, uint64_t *next_check, uint64_t now)
{
	shmbus_bus_t *bus = ch->bus;
	const struct sb_dirent *e = &bus->dir[ch->index];
	/* A little under one slice: the check after each slice's sleep runs. */
	const uint64_t every = SB_WAIT_SLICE_NS - SB_WAIT_SLICE_NS / 8;
	int r;

	if (sb_map_damaged(bus->base))
		return segment_err(ch);
	if (*next_check == 0 || now < *next_check) {
		if (*next_check == 0)
			*next_check = now + every;
		return 0;
	}
	*next_check = now + every;
	r = segment_err(ch);
	if (r)
		return r;
	/* acquire: pairs with the release store of READY in entry_create;
	 * generation is written before it and only under the bus mutex
	 * (relaxed: a stale read only delays the report by a slice). */
	if (atomic_load_explicit(&e->state, memory_order_acquire) != SB_DIR_READY ||
	    atomic_load_explicit(&e->generation, memory_order_relaxed) != ch->generation)
		return sb_err(SHMBUS_ENOENT, "%s '%s' was deleted from bus '%s' while waiting",
		              shmbus_kind_name(ch->p.kind), ch->name, bus->name);
	return 0;
}

int sb_wait_check(const struct sb_chan *ch, uint64_t *next_check)
{
	return wait_check_at(ch, next_check, sb_now_ns());
}

int sb_mutex_lock(pthread_mutex_t *m, int64_t timeout_ns)
{
	struct timespec ts;

	if (timeout_ns < 0)
		return pthread_mutex_lock(m);
#ifdef SB_TSAN
	clock_gettime(CLOCK_REALTIME, &ts);
#else
	clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
	ts.tv_sec += timeout_ns / 1000000000ll;
	ts.tv_nsec += timeout_ns % 1000000000ll;
	if (ts.tv_nsec >= 1000000000l) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000l;
	}
#ifdef SB_TSAN
	return pthread_mutex_timedlock(m, &ts);
#else
	return pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
#endif
}

void sb_racy_copy(void *dst, const void *src, size_t n)
{
#ifdef SB_TSAN
	/* relaxed: the seqlock re-checks the sequence afterwards and discards
	 * a copy that raced. Both sides of a seqlock copy go through here, so
	 * under TSan the tolerated race is between atomics, not a data race. */
	unsigned char *d = dst;
	const unsigned char *s = src;
	size_t i;

	for (i = 0; i < n; i++)
		__atomic_store_n(&d[i], __atomic_load_n(&s[i], __ATOMIC_RELAXED),
		                 __ATOMIC_RELAXED);
#else
	memcpy(dst, src, n);
#endif
}

/* ---- the park primitive --------------------------------------------- */

uint64_t sb_park_start(struct sb_park *p, const struct sb_chan *ch, int64_t timeout_ns,
                       int policy, int64_t spin_ns)
{
	uint64_t now = sb_now_ns();

	p->ch = ch;
	p->started = 1;
	p->spins = 0;
	p->next_check = 0;
	/* As sb_deadline_init, without a second clock read; a timeout so
	 * large that the end would overflow is no limit at all. */
	p->d.end = timeout_ns < 0 || timeout_ns > INT64_MAX - (int64_t)now
	           ? -1 : (int64_t)now + timeout_ns;
	if (spin_ns <= 0)
		spin_ns = SB_DEFAULT_SPIN_NS;
	/* A call with timeout 0 does not spin: sb_park_spin says time is up
	 * after the caller's first look. */
	p->poll = timeout_ns == 0;
	p->yielding = 0;
	p->spin_end = timeout_ns == 0 ? 0
	            : policy == SHMBUS_WAIT_SPIN ? UINT64_MAX
	            : policy == SHMBUS_WAIT_PARK ? 0 : now + (uint64_t)spin_ns;
	p->yield_at = now + SB_PURE_SPIN_NS;
	p->live_every = 0;
	p->live_at = 0;
	return now;
}

void sb_park_liveness(struct sb_park *p, int64_t ns)
{
	p->live_every = ns > 0 ? (uint64_t)ns : 0;
	p->live_at = ns > 0 ? sb_now_ns() + (uint64_t)ns : 0;
}

int sb_park_spin_slow(struct sb_park *p)
{
	uint64_t now = sb_now_ns();     /* one clock read for the round */
	int r;

	r = wait_check_at(p->ch, &p->next_check, now);
	if (r)
		return r;
	if (sb_park_left_at(p, now) == 0)
		return SHMBUS_ETIMEDOUT;
	if (now >= p->spin_end)
		return 0;
	if (p->live_every && now >= p->live_at) {
		p->live_at = now + p->live_every;
		return SB_PARK_LIVE;
	}
	if (now < p->yield_at) {
		sb_cpu_relax();
		return 1;
	}
	p->yielding = 1;
	sched_yield();
	return 2;
}

int sb_park_sleep(struct sb_park *p, _Atomic uint32_t *word, uint32_t expected,
                  int64_t cap_ns)
{
	int64_t ns = sb_deadline_left(&p->d);

	if (cap_ns >= 0 && (ns < 0 || cap_ns < ns))
		ns = cap_ns;
	if (ns == 0)
		return SHMBUS_ETIMEDOUT;
	return sb_futex_wait(word, expected, sb_wait_slice(ns));
}

int sb_park_cancel(struct sb_park *p, _Atomic uint32_t *count)
{
	/* relaxed: only the count's value matters to the waker; a waker that
	 * still sees us wakes a futex nobody sleeps on, which is harmless. */
	if (count) {
		SB_STEP("wait.park_cancel.count");
		atomic_fetch_sub_explicit(count, 1, memory_order_relaxed);
	}
	return sb_wait_check(p->ch, &p->next_check);
}

uint32_t sb_park_raise(_Atomic uint32_t *word)
{
	/* seq_cst: the raise comes before the caller re-reads what it waits
	 * for; pairs with the waker's change, then its load of this word. */
	uint32_t w = atomic_load_explicit(word, memory_order_seq_cst);

	SB_STEP("wait.park_raise.word");
	while (!(w & 1u) &&
	       !atomic_compare_exchange_weak_explicit(word, &w, w | 1u, memory_order_seq_cst,
	                                              memory_order_seq_cst))
		;
	return w | 1u;
}

void sb_park_wake_flagged(_Atomic uint32_t *word)
{
	/* seq_cst: the load half of the store-load pair with sb_park_raise
	 * and the waiter's re-read; the CAS changes the word a late sleeper
	 * expects, so its futex wait returns at once. */
	uint32_t w = atomic_load_explicit(word, memory_order_seq_cst);

	SB_STEP("wait.wake_flagged.word");
	if ((w & 1u) &&
	    atomic_compare_exchange_strong_explicit(word, &w, w + 1u, memory_order_seq_cst,
	                                            memory_order_relaxed))
		sb_futex_wake(word, 1);
}

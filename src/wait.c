/*
 * wait.c -- clocks, deadlines and the futex calls every blocking operation
 * is built on.
 *
 * The policy (in state.c and queue.c) is: spin with a pause instruction
 * for a budget (default 50 us, long enough that a peer answering within
 * tens of microseconds never costs a sleep -- one futex wake-up costs about
 * 30 us on a VM), then announce ourselves in a waiter counter and sleep on
 * a futex word. Writers call FUTEX_WAKE only when that counter is non-zero,
 * so the common path has no system call. Futexes here are shared (not
 * FUTEX_PRIVATE) because the words live in memory mapped by other processes.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

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

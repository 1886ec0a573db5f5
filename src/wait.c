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
	if (timeout_ns < 0)
		d->end = -1;
	else
		d->end = (int64_t)sb_now_ns() + timeout_ns;
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

int sb_wait_check(const struct sb_chan *ch, uint64_t *next_check)
{
	shmbus_bus_t *bus = ch->bus;
	const struct sb_dirent *e = &bus->dir[ch->index];
	/* A little under one slice: the check after each slice's sleep runs. */
	const uint64_t every = SB_WAIT_SLICE_NS - SB_WAIT_SLICE_NS / 8;
	uint64_t now;
	int r;

	if (sb_map_damaged(bus->base))
		return segment_err(ch);
	now = sb_now_ns();
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
	    __atomic_load_n(&e->generation, __ATOMIC_RELAXED) != ch->generation)
		return sb_err(SHMBUS_ENOENT, "%s '%s' was deleted from bus '%s' while waiting",
		              shmbus_kind_name(ch->p.kind), ch->name, bus->name);
	return 0;
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

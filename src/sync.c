/*
 * sync.c -- process-shared synchronisation objects that survive the death
 * of a holder: lock, event and semaphore channels, and the robust lock the
 * containers use.
 *
 * Robust lock. One 64-bit word, owner, holds the token (peers.c) of the
 * holding process, 0 when free; taking the lock is one CAS from 0 to
 * the caller's token, so the holder is known at every instant, even to a
 * process that finds it dead. A locker spins (the park primitive's
 * policy, wait.c), then raises the
 * flag bit of `contended` and sleeps on that word; an unlock stores 0 and,
 * only if the flag is up, clears it and bumps the generation in the bits
 * above (one CAS: +1 on an odd word) and wakes one sleeper. The seq_cst
 * store/load pairs on both sides make sure either the unlocker sees the
 * flag or the waiter sees the free lock, and since the waiter sleeps on
 * the value it raised, any wake-up between its raise and its sleep changes
 * the word and the sleep returns at once. (The flag used to be a separate
 * bit cleared by the unlocker, with the sleep on the owner word: an unlock
 * and a re-lock by the same process between a waiter's load of the owner
 * and its sleep left it asleep with the flag down, until its liveness
 * slice ended; in a semaphore, which has no slices, for the whole
 * timeout.) A waiter that slept and then gets the lock raises the flag
 * again, since others may still sleep: at most one needless wake-up ends a
 * contended spell, and a waiter killed in its sleep leaves nothing behind
 * (a count of sleepers would stay raised forever and cost every later
 * unlock a system call). A sleeper wakes at least once
 * per liveness timeout and checks whether the owner's process still
 * exists; if not, it takes the lock over by CAS from the dead token and
 * marks health OWNER_DIED. A locker that finds OWNER_DIED gets
 * SHMBUS_EOWNERDEAD: it owns the lock and must repair the data and call
 * consistent; unlocking without doing so makes the lock UNRECOVERABLE for
 * good (SHMBUS_ENOTRECOVERABLE), and dying without doing so passes
 * EOWNERDEAD on to the next locker.
 *
 * Event (manual reset). One word: bit 0 is the flag, the bits above count
 * the clear -> set transitions. A waiter sleeps on the word's value; it
 * returns once the flag is set or the count moved, so a set followed at
 * once by a clear still releases everyone who was waiting.
 *
 * Semaphore. A count taken by CAS while positive; a waiter raises the
 * flag of a `contended` word like the lock's (flag + generation, the
 * futex word) and sleeps on it while the count reads 0; post adds one and,
 * if it clears a raised flag, wakes one sleeper. A waiter that slept and takes a
 * unit raises the flag again and passes a wake-up on if units are left,
 * and a woken waiter always tries to take a unit before giving up on a
 * timeout or a signal, so a wake-up is never lost; a waiter killed asleep
 * costs at most one wake-up. Units have no owner: a process that
 * dies between wait and post keeps its unit (as with any semaphore).
 *
 * Turn channels are in turn.c.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "sigbus.h"
#include "sync.h"

#define SB_LOCK_MAGIC 0x4b434f4cu  /* "LOCK" */
#define SB_EVENT_MAGIC 0x544e5645u /* "EVNT" */
#define SB_SEM_MAGIC 0x4d455353u   /* "SSEM" */

/* ---- the robust lock ------------------------------------------------ */

/* After a successful CAS: what the caller gets given the data's health. */
static int took(struct sb_rlock *l, uint64_t token)
{
	/* relaxed: ordered after the acquiring CAS; health changes only
	 * under the lock. */
	uint32_t h = atomic_load_explicit(&l->health, memory_order_relaxed);

	if (h == SB_RLOCK_OK)
		return 0;
	if (h == SB_RLOCK_OWNER_DIED)
		return SHMBUS_EOWNERDEAD;
	/* Anything else (UNRECOVERABLE or garbage): give it back. relaxed:
	 * we hold the lock; the release in sb_rlock_release publishes it. */
	SB_STEP("sync.took.health");
	atomic_store_explicit(&l->health, SB_RLOCK_UNRECOVERABLE, memory_order_relaxed);
	sb_rlock_release(l, token);
	return SHMBUS_ENOTRECOVERABLE;
}

/* Take the lock over from dead, if that process is gone. 1 if taken. */
static int steal(const shmbus_bus_t *bus, struct sb_rlock *l, uint64_t dead,
                 uint64_t token)
{
	uint32_t ok = SB_RLOCK_OK;

	if (dead == 0 || dead == token || sb_token_alive(bus, dead))
		return 0;
	/* acquire: we hold the lock from here. Fails if another process took
	 * it over first. The value we replace was stored by the dead owner's
	 * acquiring CAS, an RMW in the release sequence of the last unlock's
	 * store of 0: so this synchronises with that unlock, and everything
	 * before it is visible. Nothing orders what the dead owner wrote while
	 * holding the lock in C11 terms: its death does, which sb_token_alive
	 * observed through the kernel (kill(2), /proc) after its exit had
	 * completed every store. */
	SB_STEP("sync.steal.owner");
	if (!atomic_compare_exchange_strong_explicit(&l->owner, &dead, token,
	                                             memory_order_acquire,
	                                             memory_order_relaxed))
		return 0;
	/* relaxed: under the lock; published by the release in unlock. */
	SB_STEP("sync.steal.health");
	atomic_compare_exchange_strong_explicit(&l->health, &ok, SB_RLOCK_OWNER_DIED,
	                                        memory_order_relaxed, memory_order_relaxed);
	return 1;
}

static int try_take(struct sb_rlock *l, uint64_t token)
{
	uint64_t free_ = 0;

	/* acquire: pairs with the seq_cst (release) store of 0 in
	 * sb_rlock_release; the previous holder's writes are visible. */
	SB_STEP("sync.try_take.owner");
	return atomic_compare_exchange_strong_explicit(&l->owner, &free_, token,
	                                               memory_order_acquire,
	                                               memory_order_relaxed);
}

int sb_rlock_acquire(struct sb_rlock *l, const struct sb_chan *ch, uint64_t token,
                     int64_t timeout_ns, int policy, int64_t spin_ns)
{
	const shmbus_bus_t *bus = ch->bus;
	int64_t liveness_ns = bus->liveness_ns;
	struct sb_park p;
	uint64_t cur;
	uint32_t w;
	int r, rc;

	/* relaxed: a hint; the CAS decides. A free lock costs no clock read. */
	if (atomic_load_explicit(&l->owner, memory_order_relaxed) == 0 && try_take(l, token))
		return took(l, token);
	sb_park_start(&p, ch, timeout_ns, policy, spin_ns);
	sb_park_liveness(&p, liveness_ns);
	for (;;) {
		/* relaxed: a hint; the CAS decides. */
		if (atomic_load_explicit(&l->owner, memory_order_relaxed) == 0 &&
		    try_take(l, token))
			return took(l, token);
		r = sb_park_spin(&p);
		if (r <= 0)
			break;
		/* A spinner that never parks looks for a dead owner once per
		 * liveness timeout, as a sleeper does. relaxed: only the
		 * token's value matters; steal's CAS decides. */
		if (r == SB_PARK_LIVE &&
		    steal(bus, l, atomic_load_explicit(&l->owner, memory_order_relaxed), token))
			return took(l, token);
	}
	if (r == SHMBUS_ETIMEDOUT && p.poll) {
		/* relaxed: only the token's value matters; steal's CAS decides. */
		cur = atomic_load_explicit(&l->owner, memory_order_relaxed);
		if (steal(bus, l, cur, token))
			return took(l, token);
		return SHMBUS_ETIMEDOUT;
	}
	if (r < 0 && r != SHMBUS_ETIMEDOUT)
		return r;
	for (;;) {
		/* Raise the flag before re-reading owner (seq_cst); pairs with
		 * the store of 0 and the flag check in sb_rlock_release. */
		w = sb_park_raise(&l->contended);
		cur = atomic_load_explicit(&l->owner, memory_order_seq_cst);
		r = cur != 0 ? sb_park_sleep(&p, &l->contended, w, liveness_ns) : 0;
		/* Truncated, overwritten or deleted while we slept: the lock
		 * word may now be a zero page; never take it there. The wake-up
		 * we may have taken is passed on. */
		rc = sb_park_cancel(&p, NULL);
		if (rc) {
			sb_park_wake_flagged(&l->contended);
			return rc;
		}
		/* A woken waiter always tries before leaving, so the one
		 * wake-up an unlock sends is never wasted. (relaxed owner
		 * load: steal's CAS decides.) */
		if (try_take(l, token) ||
		    (r == SHMBUS_ETIMEDOUT &&
		     steal(bus, l, atomic_load_explicit(&l->owner, memory_order_relaxed), token))) {
			/* relaxed: read by our own unlock; others may sleep. */
			SB_STEP("sync.rlock_acquire.contended");
			atomic_fetch_or_explicit(&l->contended, 1u, memory_order_relaxed);
			return took(l, token);
		}
		if (r == SHMBUS_EINTR)
			return r;
		if (r < 0 && r != SHMBUS_ETIMEDOUT)
			return r;
		if (sb_park_left(&p) == 0)
			return SHMBUS_ETIMEDOUT;
	}
}

void sb_rlock_consistent(struct sb_rlock *l)
{
	/* relaxed: under the lock; published by the release in unlock. */
	SB_STEP("sync.rlock_consistent.health");
	atomic_store_explicit(&l->health, SB_RLOCK_OK, memory_order_relaxed);
}

/* After storing owner = 0: wake one sleeper if any may sleep. */
static void wake_one(struct sb_rlock *l)
{
	/* Clearing the flag means a waiter that died asleep costs at most
	 * one wake-up. */
	sb_park_wake_flagged(&l->contended);
}

void sb_rlock_release(struct sb_rlock *l, uint64_t token)
{
	uint32_t died = SB_RLOCK_OWNER_DIED;

	/* relaxed: under the lock; published by the release below. */
	SB_STEP("sync.rlock_release.health");
	atomic_compare_exchange_strong_explicit(&l->health, &died, SB_RLOCK_UNRECOVERABLE,
	                                        memory_order_relaxed, memory_order_relaxed);
	/* seq_cst: releases the guarded data (pairs with the acquiring CAS in
	 * try_take) and, with the seq_cst load of contended, forms the
	 * store-load pair the sleepers in sb_rlock_acquire rely on. */
	SB_STEP("sync.rlock_release.owner");
	if (!atomic_compare_exchange_strong_explicit(&l->owner, &token, 0,
	                                             memory_order_seq_cst,
	                                             memory_order_relaxed))
		return;
	wake_one(l);
}

int sb_rlock_reap(const shmbus_bus_t *bus, struct sb_rlock *l, uint64_t token)
{
	/* relaxed: only the token's value matters; steal's CAS decides. */
	uint64_t cur = atomic_load_explicit(&l->owner, memory_order_relaxed);

	if (!steal(bus, l, cur, token))
		return 0;
	/* seq_cst: as in sb_rlock_release, but health stays OWNER_DIED so the
	 * next locker repairs. */
	SB_STEP("sync.rlock_reap.owner");
	atomic_store_explicit(&l->owner, 0, memory_order_seq_cst);
	wake_one(l);
	return 1;
}

/* ---- opening -------------------------------------------------------- */

/* The options every sync kind shares: create, wait_policy, spin_ns. */
struct sync_opts {
	uint32_t size_of;
	int32_t create;
	int32_t wait_policy;
	uint32_t word;             /* reserved_, initial or max_parties */
	int64_t spin_ns;
};
#define SYNC_OPTS_CHECK(T) \
	_Static_assert(sizeof(T) == sizeof(struct sync_opts) && \
	               offsetof(T, create) == offsetof(struct sync_opts, create) && \
	               offsetof(T, wait_policy) == offsetof(struct sync_opts, wait_policy) && \
	               offsetof(T, spin_ns) == offsetof(struct sync_opts, spin_ns), \
	               #T " has the sync layout")
SYNC_OPTS_CHECK(shmbus_lock_opts_t);
SYNC_OPTS_CHECK(shmbus_event_opts_t);
SYNC_OPTS_CHECK(shmbus_sem_opts_t);
SYNC_OPTS_CHECK(shmbus_turn_opts_t);
_Static_assert(offsetof(shmbus_sem_opts_t, initial) == offsetof(struct sync_opts, word), "");
_Static_assert(offsetof(shmbus_turn_opts_t, max_parties) == offsetof(struct sync_opts, word), "");
/* 1.0's layout, the smallest size_of accepted. */
#define SB_SYNC_OPTS_1_0 24u
_Static_assert(sizeof(struct sync_opts) == SB_SYNC_OPTS_1_0, "1.0 is the layout now");

void sb_sync_opts_init(void *opts, size_t size)
{
	struct sync_opts *o = opts;

	memset(o, 0, size);
	o->size_of = (uint32_t)size;
	o->create = 1;
}

int sb_sync_open(shmbus_bus_t *bus, const char *name, int kind,
                 int (*check)(void *opts, const char *name, struct sb_params *want),
                 void (*init)(void *opts), const void *opts, struct sb_chan *ch,
                 int *policy, int64_t *spin_ns)
{
	const struct sb_open_desc d = {
		.kind = kind,
		/* sem's initial and turn's max_parties only create */
		.flags = SB_OPEN_ANY_PARAMS,
		.size = sizeof(struct sync_opts),
		.size_1_0 = SB_SYNC_OPTS_1_0,
		.create_off = offsetof(struct sync_opts, create),
		.init = init,
		.check = check,
	};
	struct sync_opts o;
	int r;

	if ((r = sb_kind_open(bus, name, &d, opts, &o, ch)) != 0)
		return r;
	*policy = o.wait_policy;
	*spin_ns = o.spin_ns;
	return 0;
}

int sb_sync_opts_check(void *opts, const char *name, struct sb_params *want)
{
	const struct sync_opts *o = opts;

	if (want->kind != SHMBUS_KIND_SEMAPHORE && want->kind != SHMBUS_KIND_TURN && o->word)
		return sb_err(SHMBUS_EINVAL, "%s '%s' options: reserved_ is %u, not 0",
		              shmbus_kind_name(want->kind), name, o->word);
	return sb_wait_opts_check(shmbus_kind_name(want->kind), name, o->wait_policy,
	                          o->spin_ns);
}

int sb_plain_plan(struct sb_params *p, uint64_t area, uint64_t *out)
{
	p->dtype = SHMBUS_BYTES;
	p->ndim = 0;
	memset(p->shape, 0, sizeof(p->shape));
	p->value_size = 1;         /* what sb_shape_bytes gives for ndim 0 */
	*out = area;
	return 0;
}

int sb_check_magic(const uint8_t *area, uint64_t size, uint64_t need,
                       uint32_t magic_off, uint32_t magic)
{
	uint32_t m;

	if (size < need)
		return sb_err(SHMBUS_ECORRUPT, "area of %llu bytes, needs %llu",
		              (unsigned long long)size, (unsigned long long)need);
	memcpy(&m, area + magic_off, sizeof(m));
	if (m != magic)
		return sb_err(SHMBUS_ECORRUPT, "bad magic 0x%08x", m);
	return 0;
}

/* ---- lock channels -------------------------------------------------- */

struct sb_lock_area {
	struct sb_rlock rl;
	uint32_t magic;
	uint8_t pad[SB_LINE - 4];
};
_Static_assert(sizeof(struct sb_lock_area) == 2 * SB_LINE, "lock area is 2 lines");

struct shmbus_lock {
	struct sb_chan ch;
	struct sb_lock_area *a;
	uint64_t token;
	int held;                  /* 1 held, 2 held with repair pending */
	int policy;                /* shmbus_wait_policy_t, from the options */
	int64_t spin_ns;
};
_Static_assert(offsetof(struct shmbus_lock, ch) == 0, "wait sets find the channel first");

static int lock_plan(struct sb_params *p, uint64_t *area)
{
	return sb_plain_plan(p, sizeof(struct sb_lock_area), area);
}

static int lock_init(uint8_t *area, uint64_t size, const struct sb_params *p)
{
	(void)size;
	(void)p;
	((struct sb_lock_area *)area)->magic = SB_LOCK_MAGIC;
	return 0;
}

static int lock_check(const uint8_t *area, uint64_t size, const struct sb_params *p)
{
	(void)p;
	return sb_check_magic(area, size, sizeof(struct sb_lock_area),
	                   offsetof(struct sb_lock_area, magic), SB_LOCK_MAGIC);
}

static int lock_gc(struct sb_chan *ch, uint32_t *reaped)
{
	struct sb_lock_area *a = (struct sb_lock_area *)ch->area;

	*reaped = (uint32_t)sb_rlock_reap(ch->bus, &a->rl, sb_self_token());
	if (*reaped)
		sb_chan_ring(ch);
	return 0;
}

static void lock_info(struct sb_chan *ch, shmbus_channel_info_t *info)
{
	struct sb_lock_area *a = (struct sb_lock_area *)ch->area;

	/* relaxed: a snapshot for display; seq is the holder's pid. */
	info->seq = sb_token_pid(atomic_load_explicit(&a->rl.owner, memory_order_relaxed));
	info->flags = atomic_load_explicit(&a->rl.health, memory_order_relaxed);
}

const struct sb_kind_ops sb_lock_ops = {
	.plan = lock_plan,
	.init = lock_init,
	.check = lock_check,
	.gc = lock_gc,
	.info = lock_info,
};

void shmbus_lock_opts_init(shmbus_lock_opts_t *opts)
{
	sb_sync_opts_init(opts, sizeof(*opts));
}

static void lock_opts_init(void *opts)
{
	shmbus_lock_opts_init(opts);
}

int shmbus_lock_open(shmbus_bus_t *bus, const char *name, const shmbus_lock_opts_t *opts,
                     shmbus_lock_t **out)
{
	shmbus_lock_t *l;
	int r;

	if (!bus || !out)
		return sb_err(SHMBUS_EINVAL, "shmbus_lock_open: NULL argument");
	*out = NULL;
	if (!(l = calloc(1, sizeof(*l))))
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	if ((r = sb_sync_open(bus, name, SHMBUS_KIND_LOCK, sb_sync_opts_check, lock_opts_init,
	                      opts, &l->ch, &l->policy, &l->spin_ns)) != 0) {
		free(l);
		return r;
	}
	l->a = (struct sb_lock_area *)l->ch.area;
	l->token = sb_self_token();
	*out = l;
	return 0;
}

int shmbus_lock_close(shmbus_lock_t *l)
{
	if (!l)
		return 0;
	if (l->held) {
		sb_rlock_release(&l->a->rl, l->token);
		sb_chan_ring(&l->ch);
	}
	free(l);
	return 0;
}

int shmbus_lock_lock(shmbus_lock_t *l, int64_t timeout_ns)
{
	int r;

	if (!l)
		return sb_err(SHMBUS_EINVAL, "lock is NULL");
	if (l->held)
		return sb_err(SHMBUS_ESTATE, "lock '%s' is already held through this handle",
		              l->ch.name);
	r = sb_rlock_acquire(&l->a->rl, &l->ch, l->token, timeout_ns, l->policy, l->spin_ns);
	/* Taken on pages lost to a truncation: not a lock anyone else sees. */
	if ((r == 0 || r == SHMBUS_EOWNERDEAD) && sb_map_damaged(l->ch.bus->base)) {
		sb_rlock_release(&l->a->rl, l->token);
		return sb_chan_damage_err(&l->ch);
	}
	switch (r) {
	case 0:
		l->held = 1;
		return 0;
	case SHMBUS_EOWNERDEAD:
		l->held = 2;
		return sb_err(r, "lock '%s': its previous owner died holding it; repair, then call shmbus_lock_consistent",
		              l->ch.name);
	case SHMBUS_ENOTRECOVERABLE:
		return sb_err(r, "lock '%s' was released unrepaired after its owner died; delete and re-create it",
		              l->ch.name);
	case SHMBUS_ETIMEDOUT:
		/* relaxed: the holder's pid, for the message only. */
		return sb_err(r, "lock '%s' still held by pid %u when the timeout ran out",
		              l->ch.name,
		              sb_token_pid(atomic_load_explicit(&l->a->rl.owner,
		                                                memory_order_relaxed)));
	case SHMBUS_EINTR:
		return sb_err(r, "interrupted while waiting for lock '%s'", l->ch.name);
	default:
		return r;
	}
}

int shmbus_lock_consistent(shmbus_lock_t *l)
{
	if (!l)
		return sb_err(SHMBUS_EINVAL, "lock is NULL");
	if (l->held != 2)
		return sb_err(SHMBUS_ESTATE, "lock '%s': consistent is only for a lock taken with SHMBUS_EOWNERDEAD",
		              l->ch.name);
	sb_rlock_consistent(&l->a->rl);
	l->held = 1;
	return 0;
}

int shmbus_lock_unlock(shmbus_lock_t *l)
{
	if (!l)
		return sb_err(SHMBUS_EINVAL, "lock is NULL");
	if (!l->held)
		return sb_err(SHMBUS_ESTATE, "lock '%s' is not held through this handle", l->ch.name);
	/* relaxed: our own token; only we can have stored it. */
	if (atomic_load_explicit(&l->a->rl.owner, memory_order_relaxed) != l->token) {
		l->held = 0;
		return sb_err(SHMBUS_EPERM, "lock '%s' was taken from this process (reaped as dead?)",
		              l->ch.name);
	}
	sb_rlock_release(&l->a->rl, l->token);
	sb_chan_ring(&l->ch);
	l->held = 0;
	return 0;
}

/* ---- event channels ------------------------------------------------- */

struct sb_event_area {
	_Atomic uint32_t word;     /* bit 0: set; above: count of sets */
	_Atomic uint32_t waiters;
	uint32_t magic;
	uint8_t pad[SB_LINE - 12];
};
_Static_assert(sizeof(struct sb_event_area) == SB_LINE, "event area is a line");

struct shmbus_event {
	struct sb_chan ch;
	struct sb_event_area *a;
	int policy;                /* shmbus_wait_policy_t, from the options */
	int64_t spin_ns;
};
_Static_assert(offsetof(struct shmbus_event, ch) == 0, "wait sets find the channel first");

static int event_plan(struct sb_params *p, uint64_t *area)
{
	return sb_plain_plan(p, sizeof(struct sb_event_area), area);
}

static int event_init(uint8_t *area, uint64_t size, const struct sb_params *p)
{
	(void)size;
	(void)p;
	((struct sb_event_area *)area)->magic = SB_EVENT_MAGIC;
	return 0;
}

static int event_check(const uint8_t *area, uint64_t size, const struct sb_params *p)
{
	(void)p;
	return sb_check_magic(area, size, sizeof(struct sb_event_area),
	                   offsetof(struct sb_event_area, magic), SB_EVENT_MAGIC);
}

static void event_info(struct sb_chan *ch, shmbus_channel_info_t *info)
{
	struct sb_event_area *a = (struct sb_event_area *)ch->area;
	/* relaxed: a snapshot for display. */
	uint32_t w = atomic_load_explicit(&a->word, memory_order_relaxed);

	info->flags = w & 1u;
	info->seq = w >> 1;
	/* relaxed: a snapshot for display (and for tests that must know
	 * every waiter announced itself before they pulse the event). */
	info->capacity = atomic_load_explicit(&a->waiters, memory_order_relaxed);
}

const struct sb_kind_ops sb_event_ops = {
	.plan = event_plan,
	.init = event_init,
	.check = event_check,
	.info = event_info,
};

void shmbus_event_opts_init(shmbus_event_opts_t *opts)
{
	sb_sync_opts_init(opts, sizeof(*opts));
}

static void event_opts_init(void *opts)
{
	shmbus_event_opts_init(opts);
}

int shmbus_event_open(shmbus_bus_t *bus, const char *name, const shmbus_event_opts_t *opts,
                      shmbus_event_t **out)
{
	shmbus_event_t *e;
	int r;

	if (!bus || !out)
		return sb_err(SHMBUS_EINVAL, "shmbus_event_open: NULL argument");
	*out = NULL;
	if (!(e = calloc(1, sizeof(*e))))
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	if ((r = sb_sync_open(bus, name, SHMBUS_KIND_EVENT, sb_sync_opts_check, event_opts_init,
	                      opts, &e->ch, &e->policy, &e->spin_ns)) != 0) {
		free(e);
		return r;
	}
	e->a = (struct sb_event_area *)e->ch.area;
	*out = e;
	return 0;
}

int shmbus_event_close(shmbus_event_t *e)
{
	free(e);
	return 0;
}

int shmbus_event_set(shmbus_event_t *e)
{
	uint32_t w;

	if (!e)
		return sb_err(SHMBUS_EINVAL, "event is NULL");
	/* relaxed: the CAS below re-reads. */
	w = atomic_load_explicit(&e->a->word, memory_order_relaxed);
	do {
		if (w & 1u)
			return 0;
		/* seq_cst: publishes what the setter wrote before (pairs with
		 * the acquire loads in wait) and forms the store-load pair with
		 * the waiters load below. */
		SB_STEP("sync.event_set.word");
	} while (!atomic_compare_exchange_weak_explicit(&e->a->word, &w, (w + 2u) | 1u,
	                                                memory_order_seq_cst,
	                                                memory_order_relaxed));
	sb_park_wake(&e->a->waiters, &e->a->word, INT_MAX);
	sb_chan_ring(&e->ch);
	return 0;
}

int shmbus_event_clear(shmbus_event_t *e)
{
	if (!e)
		return sb_err(SHMBUS_EINVAL, "event is NULL");
	/* release: keeps the set count; waiters only look at bit 0 and it. */
	SB_STEP("sync.event_clear.word");
	atomic_fetch_and_explicit(&e->a->word, ~1u, memory_order_release);
	return 0;
}

bool shmbus_event_is_set(const shmbus_event_t *e)
{
	/* acquire: pairs with the CAS in set. */
	return e && (atomic_load_explicit(&e->a->word, memory_order_acquire) & 1u);
}

static int event_err(shmbus_event_t *e, int r)
{
	if (r == SHMBUS_ETIMEDOUT)
		return sb_err(r, "event '%s' not set within the timeout", e->ch.name);
	if (r == SHMBUS_EINTR)
		return sb_err(r, "interrupted while waiting on event '%s'", e->ch.name);
	return r;
}

int shmbus_event_wait(shmbus_event_t *e, int64_t timeout_ns)
{
	struct sb_park p;
	uint32_t w0, w;
	int r, rc;

	if (!e)
		return sb_err(SHMBUS_EINVAL, "event is NULL");
	/* acquire: pairs with the CAS in set. */
	w0 = atomic_load_explicit(&e->a->word, memory_order_acquire);
	if (w0 & 1u)
		return sb_map_damaged(e->ch.bus->base) ? sb_chan_damage_err(&e->ch) : 0;
	sb_park_start(&p, &e->ch, timeout_ns, e->policy, e->spin_ns);
	while ((r = sb_park_spin(&p)) > 0) {
		/* acquire: pairs with the CAS in set. */
		w = atomic_load_explicit(&e->a->word, memory_order_acquire);
		if ((w & 1u) || (w >> 1) != (w0 >> 1))
			return sb_map_damaged(e->ch.bus->base) ? sb_chan_damage_err(&e->ch) : 0;
	}
	if (r < 0)
		return event_err(e, r);
	for (;;) {
		sb_park_prepare(&e->a->waiters);
		/* seq_cst: the re-check; pairs with set's CAS and its load of
		 * waiters (sb_park_wake). */
		w = atomic_load_explicit(&e->a->word, memory_order_seq_cst);
		r = w == w0 ? sb_park_sleep(&p, &e->a->word, w0, -1) : 0;
		/* Truncated, overwritten or deleted while we slept. */
		rc = sb_park_cancel(&p, &e->a->waiters);
		if (rc)
			return rc;
		/* acquire: pairs with the CAS in set. */
		w = atomic_load_explicit(&e->a->word, memory_order_acquire);
		if ((w & 1u) || (w >> 1) != (w0 >> 1))
			return 0;
		w0 = w;
		if (r != 0 && r != SHMBUS_ETIMEDOUT)
			return event_err(e, r);
		if (sb_park_left(&p) == 0)
			return event_err(e, SHMBUS_ETIMEDOUT);
	}
}

/* ---- semaphore channels --------------------------------------------- */

struct sb_sem_area {
	_Atomic uint32_t count;
	_Atomic uint32_t contended;/* bit 0: someone may sleep; bits 1-31:
	                              wake-ups so far; the futex word */
	uint32_t magic;
	uint8_t pad[SB_LINE - 12];
};
_Static_assert(sizeof(struct sb_sem_area) == SB_LINE, "semaphore area is a line");

struct shmbus_sem {
	struct sb_chan ch;
	struct sb_sem_area *a;
	int policy;                /* shmbus_wait_policy_t, from the options */
	int64_t spin_ns;
};
_Static_assert(offsetof(struct shmbus_sem, ch) == 0, "wait sets find the channel first");

static int sem_plan(struct sb_params *p, uint64_t *area)
{
	return sb_plain_plan(p, sizeof(struct sb_sem_area), area);
}

static int sem_init(uint8_t *area, uint64_t size, const struct sb_params *p)
{
	struct sb_sem_area *a = (struct sb_sem_area *)area;

	(void)size;
	a->magic = SB_SEM_MAGIC;
	/* param[1] - 1 is the initial count (0 in the directory means any).
	 * relaxed: the area is not published yet (the directory's READY
	 * release does that). */
	SB_STEP("sync.sem_init.count");
	atomic_store_explicit(&a->count, p->param[1] ? (uint32_t)(p->param[1] - 1) : 0,
	                      memory_order_relaxed);
	return 0;
}

static int sem_check(const uint8_t *area, uint64_t size, const struct sb_params *p)
{
	(void)p;
	return sb_check_magic(area, size, sizeof(struct sb_sem_area),
	                   offsetof(struct sb_sem_area, magic), SB_SEM_MAGIC);
}

static void sem_info(struct sb_chan *ch, shmbus_channel_info_t *info)
{
	struct sb_sem_area *a = (struct sb_sem_area *)ch->area;

	/* relaxed: a snapshot for display. */
	info->seq = atomic_load_explicit(&a->count, memory_order_relaxed);
}

const struct sb_kind_ops sb_sem_ops = {
	.plan = sem_plan,
	.init = sem_init,
	.check = sem_check,
	.info = sem_info,
};

void shmbus_sem_opts_init(shmbus_sem_opts_t *opts)
{
	sb_sync_opts_init(opts, sizeof(*opts));
}

static void sem_opts_init(void *opts)
{
	shmbus_sem_opts_init(opts);
}

static int sem_opts_check(void *opts, const char *name, struct sb_params *want)
{
	const shmbus_sem_opts_t *o = opts;

	if (o->initial == UINT32_MAX)
		return sb_err(SHMBUS_EINVAL, "semaphore '%s': initial count %u, the limit is %u",
		              name, o->initial, UINT32_MAX - 1);
	/* The directory reads param 0 as "any": the count is stored + 1. */
	want->param[1] = (uint64_t)o->initial + 1;
	return sb_sync_opts_check(opts, name, want);
}

int shmbus_sem_open(shmbus_bus_t *bus, const char *name, const shmbus_sem_opts_t *opts,
                    shmbus_sem_t **out)
{
	shmbus_sem_t *s;
	int r;

	if (!bus || !out)
		return sb_err(SHMBUS_EINVAL, "shmbus_sem_open: NULL argument");
	*out = NULL;
	if (!(s = calloc(1, sizeof(*s))))
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	if ((r = sb_sync_open(bus, name, SHMBUS_KIND_SEMAPHORE, sem_opts_check, sem_opts_init,
	                      opts, &s->ch, &s->policy, &s->spin_ns)) != 0) {
		free(s);
		return r;
	}
	s->a = (struct sb_sem_area *)s->ch.area;
	*out = s;
	return 0;
}

int shmbus_sem_close(shmbus_sem_t *s)
{
	free(s);
	return 0;
}

/* Wake one sleeper if the flag says one may sleep. seq_cst: the load
 * half of the store-load pairs with a sleeper's flag store and count
 * load; the exchange clears the flag, so a waiter killed asleep costs at
 * most one wake-up. */
static void sem_wake(struct sb_sem_area *a)
{
	sb_park_wake_flagged(&a->contended);
}

int shmbus_sem_post(shmbus_sem_t *s)
{
	uint32_t c;

	if (!s)
		return sb_err(SHMBUS_EINVAL, "semaphore is NULL");
	/* relaxed: the CAS below re-reads. */
	c = atomic_load_explicit(&s->a->count, memory_order_relaxed);
	do {
		if (c >= UINT32_MAX - 1)
			return sb_err(SHMBUS_ETOOBIG, "semaphore '%s' is at its maximum count",
			              s->ch.name);
		/* seq_cst: publishes the poster's writes (pairs with the
		 * acquiring CAS in take) and, with the load of contended in
		 * sem_wake, forms the store-load pair the sleepers rely on. */
		SB_STEP("sync.sem_post.count");
	} while (!atomic_compare_exchange_weak_explicit(&s->a->count, &c, c + 1,
	                                                memory_order_seq_cst,
	                                                memory_order_relaxed));
	sem_wake(s->a);
	sb_chan_ring(&s->ch);
	return 0;
}

static int sem_take(struct sb_sem_area *a)
{
	/* relaxed: the CAS below re-reads. */
	uint32_t c = atomic_load_explicit(&a->count, memory_order_relaxed);

	SB_STEP("sync.sem_take.count");
	while (c != 0 && c < UINT32_MAX)
		/* acquire: pairs with the CAS in post. */
		if (atomic_compare_exchange_weak_explicit(&a->count, &c, c - 1,
		                                          memory_order_acquire,
		                                          memory_order_relaxed))
			return 1;
	return 0;
}

/* A unit taken from pages lost to a truncation is no unit. */
static int sem_taken(shmbus_sem_t *s)
{
	return sb_map_damaged(s->ch.bus->base) ? sb_chan_damage_err(&s->ch) : 0;
}

static int sem_err(shmbus_sem_t *s, int r)
{
	if (r == SHMBUS_ETIMEDOUT)
		return sb_err(r, "semaphore '%s' stayed at 0 for the timeout", s->ch.name);
	if (r == SHMBUS_EINTR)
		return sb_err(r, "interrupted while waiting on semaphore '%s'", s->ch.name);
	return r;
}

int shmbus_sem_wait(shmbus_sem_t *s, int64_t timeout_ns)
{
	struct sb_park p;
	uint32_t w;
	int r, rc;

	if (!s)
		return sb_err(SHMBUS_EINVAL, "semaphore is NULL");
	if (sem_take(s->a))             /* a unit there costs no clock read */
		return sem_taken(s);
	sb_park_start(&p, &s->ch, timeout_ns, s->policy, s->spin_ns);
	for (;;) {
		if (sem_take(s->a))
			return sem_taken(s);
		r = sb_park_spin(&p);
		if (r < 0)
			return sem_err(s, r);
		if (r == 0)
			break;
	}
	for (;;) {
		/* Raise the flag, then re-read (seq_cst); pairs with post. */
		w = sb_park_raise(&s->a->contended);
		r = atomic_load_explicit(&s->a->count, memory_order_seq_cst) == 0
		            ? sb_park_sleep(&p, &s->a->contended, w, -1) : 0;
		/* Truncated, overwritten or deleted while we slept; a wake-up
		 * we may have taken is passed on. */
		rc = sb_park_cancel(&p, NULL);
		if (rc) {
			sem_wake(s->a);
			return rc;
		}
		if (sem_take(s->a)) {
			/* The wake-up that freed us cleared the flag: others
			 * may still sleep, so raise it again (seq_cst), and if
			 * units are left, pass one wake-up on. */
			sb_park_raise(&s->a->contended);
			if (atomic_load_explicit(&s->a->count, memory_order_seq_cst) != 0)
				sem_wake(s->a);
			return sem_taken(s);
		}
		if (r != 0 && r != SHMBUS_ETIMEDOUT)
			return sem_err(s, r);
		if (sb_park_left(&p) == 0)
			return sem_err(s, SHMBUS_ETIMEDOUT);
	}
}

int shmbus_sem_value(const shmbus_sem_t *s, uint32_t *value)
{
	if (!s || !value)
		return sb_err(SHMBUS_EINVAL, "shmbus_sem_value: NULL argument");
	/* relaxed: a snapshot; it may change at once. */
	*value = atomic_load_explicit(&s->a->count, memory_order_relaxed);
	return 0;
}

/* ---- readiness, for wait sets (waitset.c) --------------------------- */

/* Every load below is seq_cst: the re-check half of the store-load pair
 * with the waker's seq_cst change, then its load of the bell's `sets`. */

int sb_lock_ready(shmbus_lock_t *l, int live)
{
	uint64_t o = atomic_load_explicit(&l->a->rl.owner, memory_order_seq_cst);

	/* A dead owner's lock is taken over by the next locker. */
	return o == 0 || (live && !sb_token_alive(l->ch.bus, o));
}

int sb_event_ready(shmbus_event_t *e)
{
	return (int)(atomic_load_explicit(&e->a->word, memory_order_seq_cst) & 1u);
}

int sb_sem_ready(shmbus_sem_t *s)
{
	uint32_t c = atomic_load_explicit(&s->a->count, memory_order_seq_cst);

	return c != 0 && c < UINT32_MAX;
}

/*
 * waitset.c -- wait sets: one thread waits on many channels, on any number
 * of buses, and learns which of them are ready.
 *
 * The bell. Every bus has one in its header page (struct sb_bell): a futex
 * word, the number of wait sets with a member on the bus (`sets`), the
 * number parked on the word now (`sleepers`), and a ring of the last 256
 * channels that changed (entry s: s << 32 | directory index, at s % 256;
 * `head` counts the rings). Every wake site of the library (a state
 * publication, a queue put, get, release, leave or shut, an event set, a
 * lock unlock, a semaphore post, a turn passed) rings it after publishing
 * its condition: sb_bell_ring loads `sets` and, with no wait set on the bus
 * (the common case), does nothing more. Otherwise it claims slot s =
 * head++ , writes the entry, and if a wait set sleeps bumps the word and
 * wakes it. The per-channel waiter counts and futex wake-ups of single
 * waits are untouched.
 *
 * A wait set keeps, per bus, a cursor into the ring and a map from
 * directory index to its members there; so a wake-up costs in proportion
 * to the channels that changed, not to the members. The members that may
 * be ready are kept in a candidate list: a member just added (checked on
 * the next wait, after its bus is registered), the members named by ring
 * entries, every member of a bus whose ring the set lost track of (an
 * entry not yet written, or overwritten: more than 256 rings since the
 * cursor), and the members reported last time (level-triggered: a queue
 * member that still has a message is reported again). A candidate is
 * checked with its kind's readiness predicate (sb_*_ready: never blocks,
 * never consumes) and dropped when not ready. A state member's mark moves
 * to the sequence number it is reported with.
 *
 * Waiting: drain the rings and check the candidates; if none is ready,
 * spin (the set's policy), then park: on every bus sleepers++, w = word,
 * then read head again: moved -> back to the start; else futex_waitv on
 * the buses' words (and on a process-private word of the set, bumped by
 * add, remove and the fd machinery, so a waiting thread sees membership
 * change) for at most a slice (250 ms) and the deadline; then sleepers--.
 * Each slice every member is checked again, with the liveness of lock and
 * turn holders, and every bus's segment (sb_bus_health): this covers a
 * waker killed between publishing and ringing, a dead holder, and a bus
 * truncated while we sleep -- a damaged bus makes all its members ready,
 * and the caller's own call then returns the error.
 *
 * Why no wake-up is lost: two Dekker pairs, all four accesses of each
 * seq_cst, as in wait.c.
 *  (1) sets / condition. The set does sets++ then (later) checks the
 *      member; the waker publishes the condition then loads sets. Either
 *      the check sees the condition, or the waker sees sets > 0 and rings.
 *      A ring claimed before the set read its cursor was claimed after
 *      the condition was published, and the set's head load that saw it
 *      orders the condition before the check.
 *  (2) sleepers / head. The set does sleepers++ then loads head; the
 *      ringer does head++ then loads sleepers. Either the set sees head
 *      moved (and does not sleep), or the ringer sees the sleeper and
 *      bumps the word after the set read it, so its futex_waitv returns at
 *      once or is woken. tests/model/waitset.pml checks both pairs; with
 *      either weakened, spin finds the lost wake-up.
 *
 * Limits: futex_waitv takes at most 128 words, one the set's own: 127
 * buses per set (SHMBUS_ENOSPC on the 128th). Without futex_waitv (Linux
 * before 5.16: ENOSYS) the set sleeps on its first bus's word for at most
 * 10 ms at a time. A set that dies with members leaves `sets` raised on
 * their buses (every wake site then claims a ring slot: two atomics, no
 * system call), and one killed asleep leaves `sleepers` raised (every ring
 * then costs a FUTEX_WAKE); both are costs, never lost wake-ups.
 *
 * The fd (shmbus_waitset_fd): an eventfd and one thread per set that waits
 * as above without reporting (it never moves a mark) and, when a member is
 * ready, writes 1 to the eventfd, then sleeps on the set's private word
 * until the next shmbus_waitset_wait, which reads the eventfd to 0 and
 * bumps the word: the thread looks again, and signals again while members
 * stay ready. A set does not cross fork: the child must not use it.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "sigbus.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_WAITV_MAX
#define FUTEX_WAITV_MAX 128
struct futex_waitv {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t __reserved;
};
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
#endif

#define WS_MAX_BUSES (FUTEX_WAITV_MAX - 1)
#define WS_FALLBACK_NS 10000000ll  /* the sleep without futex_waitv */

/* ---- the waker's side ----------------------------------------------- */

void sb_bell_ring_slow(struct sb_bell *b, uint32_t index)
{
	uint64_t s;

	/* seq_cst: the store half of the sleepers/head pair (a parking set
	 * does sleepers++ then loads head); also orders the caller's
	 * publication before the claim a set's head load sees. */
	SB_STEP("waitset.ring.head");
	s = atomic_fetch_add_explicit(&b->head, 1, memory_order_seq_cst);
	/* release: the entry is whole when its seq matches; pairs with the
	 * acquire load in drain(). */
	atomic_store_explicit(&b->ring[s % SB_BELL_RING], s << 32 | index, memory_order_release);
	/* seq_cst: the load half of the sleepers/head pair. */
	if (atomic_load_explicit(&b->sleepers, memory_order_seq_cst) != 0) {
		/* seq_cst: changes the word a set read after announcing itself,
		 * so a futex_waitv that has not started returns at once. */
		SB_STEP("waitset.ring.word");
		atomic_fetch_add_explicit(&b->word, 1, memory_order_seq_cst);
		sb_futex_wake(&b->word, INT_MAX);
	}
}

/* ---- the set -------------------------------------------------------- */

struct ws_bus;

struct ws_member {
	uint64_t tag;
	int cond;                  /* SHMBUS_ON_* */
	void *h;                   /* the handle; starts with its struct sb_chan */
	const struct sb_chan *ch;
	struct ws_bus *wb;
	uint64_t mark;             /* state: the last sequence number reported */
	int32_t group;             /* queue: the handle's group when added */
	uint32_t party;            /* turn: the handle's party */
	uint64_t *scratch;         /* queue space: the gate's, max_groups entries */
	int cand;                  /* on the candidate list */
	int live;                  /* put there by a full look: check holders'
	                              liveness too, until reported or dropped */
	struct ws_member *tnext;   /* tag hash chain */
	struct ws_member *inext;   /* members at the same directory index */
};

struct ws_bus {
	shmbus_bus_t *bus;
	struct sb_bell *bell;
	uint64_t cursor;           /* next ring entry to read */
	uint32_t nmemb;
	uint32_t nidx;             /* the bus's max_channels (local copy) */
	struct ws_member **map;    /* nidx chains, by directory index */
	struct ws_bus *next;
};

struct shmbus_waitset {
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* parkers == 0 (a bus may be dropped), droppers == 0 */
	struct ws_member **tags;   /* hash buckets, nbuckets a power of 2 */
	size_t nbuckets, n;
	struct ws_bus *buses;
	uint32_t nbuses;
	uint32_t parkers;          /* threads inside park() using bus words */
	uint32_t droppers;         /* removes waiting for parkers == 0 */
	struct ws_member **cand;
	size_t ncand, capcand;
	/* Process-private futex word: bumped (seq_cst, then a wake) by every
	 * membership change and re-arm; a parked thread sleeps on the value
	 * it read under the mutex before its look, so it misses none. */
	_Atomic uint32_t priv;
	int policy;
	int64_t spin_ns;
	uint64_t next_full;        /* when the next full check is due */
	int efd;                   /* eventfd, -1 until shmbus_waitset_fd */
	pthread_t thr;
	int thr_started, stop, signalled;
};

/* futex_waitv said ENOSYS (Linux before 5.16); tests set it to run the
 * fallback. */
int sb_ws_no_waitv;

/* How often a waiting set looks at every member and segment: each slice.
 * Only tests change it (before any set waits), to see that every report
 * they expect comes from a ring, not from the periodic look. */
int64_t sb_ws_full_ns = SB_WAIT_SLICE_NS;

/* Sleep on the set's own word (process-private) while it reads pw, at
 * most ns (-1: no limit). */
static void sb_futex_wait_private(_Atomic uint32_t *w, uint32_t pw, int64_t ns)
{
	struct timespec ts = {ns / 1000000000ll, ns % 1000000000ll};

	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, pw, ns < 0 ? NULL : &ts, NULL, 0);
}

static void bump_priv(shmbus_waitset_t *ws)
{
	/* seq_cst: the change a parked thread's futex_waitv compares with;
	 * made under the mutex, after the change it announces. */
	atomic_fetch_add_explicit(&ws->priv, 1, memory_order_seq_cst);
	syscall(SYS_futex, (uint32_t *)&ws->priv, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static size_t tag_hash(const shmbus_waitset_t *ws, uint64_t tag)
{
	return (size_t)((tag * 0x9E3779B97F4A7C15ull) >> 17) & (ws->nbuckets - 1);
}

static struct ws_member *find(const shmbus_waitset_t *ws, uint64_t tag)
{
	struct ws_member *m;

	for (m = ws->tags[tag_hash(ws, tag)]; m; m = m->tnext)
		if (m->tag == tag)
			return m;
	return NULL;
}

static int grow_tags(shmbus_waitset_t *ws)
{
	size_t nb = ws->nbuckets * 2, i;
	struct ws_member **old = ws->tags, *m, *nx;
	struct ws_member **t = calloc(nb, sizeof(*t));

	if (!t)
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	ws->tags = t;
	ws->nbuckets = nb;
	for (i = 0; i < nb / 2; i++)
		for (m = old[i]; m; m = nx) {
			size_t h = tag_hash(ws, m->tag);

			nx = m->tnext;
			m->tnext = t[h];
			t[h] = m;
		}
	free(old);
	return 0;
}

static int cand_add(shmbus_waitset_t *ws, struct ws_member *m)
{
	if (m->cand)
		return 0;
	if (ws->ncand == ws->capcand) {
		size_t c = ws->capcand ? ws->capcand * 2 : 64;
		struct ws_member **a = realloc(ws->cand, c * sizeof(*a));

		if (!a)
			return SHMBUS_ENOMEM;
		ws->cand = a;
		ws->capcand = c;
	}
	ws->cand[ws->ncand++] = m;
	m->cand = 1;
	return 0;
}

static void cand_drop(shmbus_waitset_t *ws, size_t i)
{
	ws->cand[i]->cand = 0;
	ws->cand[i] = ws->cand[--ws->ncand];
}

/* Every member of wb may be ready (live: a full look, see ws_member).
 * Out of memory: the next slice's full check finds them. */
static void bus_all(shmbus_waitset_t *ws, struct ws_bus *wb, int live)
{
	struct ws_member *m;
	uint32_t i;

	for (i = 0; i < wb->nidx; i++)
		for (m = wb->map[i]; m; m = m->inext) {
			if (live)
				m->live = 1;
			cand_add(ws, m);
		}
}

/* Read wb's ring from the cursor to its head: the members it names are
 * candidates. */
static void drain(shmbus_waitset_t *ws, struct ws_bus *wb)
{
	struct sb_bell *b = wb->bell;
	struct ws_member *m;
	uint64_t h, s, e;
	uint32_t idx;

	/* seq_cst: a claim seen here orders its publication before our
	 * checks (pair 1), and it is the re-read of pair 2 in park(). */
	h = atomic_load_explicit(&b->head, memory_order_seq_cst);
	if (h == wb->cursor)
		return;
	/* Lapped (or a head that went back: damage): look at them all. */
	if (h - wb->cursor > SB_BELL_RING) {
		bus_all(ws, wb, 0);
		wb->cursor = h;
		return;
	}
	for (s = wb->cursor; s != h; s++) {
		/* acquire: pairs with the release store of the entry in
		 * sb_bell_ring_slow. */
		e = atomic_load_explicit(&b->ring[s % SB_BELL_RING], memory_order_acquire);
		if ((uint32_t)(e >> 32) != (uint32_t)s) {
			/* not yet written, or overwritten */
			bus_all(ws, wb, 0);
			break;
		}
		idx = (uint32_t)e;
		if (idx < wb->nidx)     /* never trust the segment */
			for (m = wb->map[idx]; m; m = m->inext)
				cand_add(ws, m);
	}
	wb->cursor = h;
}

static int member_ready(struct ws_member *m, int live, uint64_t *seq)
{
	const struct sb_chan *ch = m->ch;

	/* Truncated, or deleted: the member's own call reports it. */
	if (sb_map_damaged(ch->bus->base) || !sb_chan_valid(ch))
		return 1;
	switch (m->cond) {
	case SHMBUS_ON_STATE:
		return sb_state_ready(m->h, m->mark, seq);
	case SHMBUS_ON_MESSAGE:
	case SHMBUS_ON_SPACE:
	case SHMBUS_ON_END:
		return sb_queue_ready(m->h, m->cond, m->group, m->scratch, live);
	case SHMBUS_ON_EVENT:
		return sb_event_ready(m->h);
	case SHMBUS_ON_LOCK:
		return sb_lock_ready(m->h, live);
	case SHMBUS_ON_SEM:
		return sb_sem_ready(m->h);
	case SHMBUS_ON_TURN:
		return sb_turn_ready(m->h, m->party, live);
	}
	return 1;
}

/* Check the candidates; report up to cap of the ready ones (out: moves
 * state marks) or only count them (the fd thread). Ready members stay
 * candidates (level-triggered). A full look's liveness hint lasts until
 * the member is reported or found not ready: a report the fd thread
 * signals is still there for the wait(0) that follows. */
static size_t check(shmbus_waitset_t *ws, uint64_t *out, size_t cap, size_t *n)
{
	size_t i = 0, k = 0;
	uint64_t seq = 0;

	while (i < ws->ncand) {
		struct ws_member *m = ws->cand[i];

		if (!member_ready(m, m->live, &seq)) {
			m->live = 0;
			cand_drop(ws, i);
			continue;
		}
		k++;
		if (out && *n < cap) {
			out[(*n)++] = m->tag;
			if (m->cond == SHMBUS_ON_STATE && seq > m->mark)
				m->mark = seq;
			/* Once per full look: a full ring behind a live but
			 * slow consumer is not reported at every wait. */
			m->live = 0;
		}
		i++;
	}
	return k;
}

/* Once a slice: every bus's segment, and every member with the liveness
 * of holders. */
static void full(shmbus_waitset_t *ws)
{
	struct ws_bus *wb;

	for (wb = ws->buses; wb; wb = wb->next) {
		/* Marks the mapping damaged when the file shrank. */
		sb_bus_health(wb->bus, "wait set: ");
		bus_all(ws, wb, 1);
	}
}

static int waitv(struct futex_waitv *fw, uint32_t k, int64_t ns)
{
	struct timespec ts;
	uint64_t end = sb_now_ns() + (uint64_t)ns;
	long r;

	if (!sb_ws_no_waitv) {
		ts.tv_sec = (time_t)(end / 1000000000ull);
		ts.tv_nsec = (long)(end % 1000000000ull);
		r = syscall(SYS_futex_waitv, fw, k, 0, &ts, CLOCK_MONOTONIC);
		if (r >= 0)
			return 0;
		switch (errno) {
		case EAGAIN: return 0;
		case ETIMEDOUT: return SHMBUS_ETIMEDOUT;
		case EINTR: return SHMBUS_EINTR;
		case ENOSYS: sb_ws_no_waitv = 1; break;
		default: return sb_err_sys(errno, "futex_waitv");
		}
	}
	/* Linux before 5.16: the first bus's word (else the set's own), a
	 * short sleep so the other buses and membership changes are seen. */
	if (ns > WS_FALLBACK_NS)
		ns = WS_FALLBACK_NS;
	if (k == 1) {
		sb_futex_wait_private((_Atomic uint32_t *)(uintptr_t)fw[0].uaddr,
		                      (uint32_t)fw[0].val, ns);
		return 0;
	}
	return sb_futex_wait((_Atomic uint32_t *)(uintptr_t)fw[1].uaddr, (uint32_t)fw[1].val, ns);
}

/* Sleep until a ring on one of the buses, a change of the private word
 * (pw: read before the last look), the end of a slice, or ns. Called and
 * returns with the mutex held; releases it while asleep. */
static int park(shmbus_waitset_t *ws, uint32_t pw, int64_t ns)
{
	struct futex_waitv fw[FUTEX_WAITV_MAX];
	struct ws_bus *wb;
	uint32_t k = 0, i;
	int moved = 0, r = 0;

	/* A remove is waiting for the parkers to leave so it can drop a bus:
	 * do not park again (the fd thread would, at once, and the remove
	 * would wait forever); wait for it, then look again. */
	if (ws->droppers) {
		while (ws->droppers)
			pthread_cond_wait(&ws->cv, &ws->mu);
		return 0;
	}
	memset(fw, 0, sizeof(fw));
	fw[k].val = pw;
	fw[k].uaddr = (uint64_t)(uintptr_t)&ws->priv;
	fw[k++].flags = FUTEX_32 | FUTEX_PRIVATE_FLAG;
	for (wb = ws->buses; wb; wb = wb->next) {
		/* seq_cst: the store half of pair 2: announced before head is
		 * read again below; pairs with the ringer's head++ then its
		 * load of sleepers. */
		SB_STEP("waitset.park.sleepers");
		atomic_fetch_add_explicit(&wb->bell->sleepers, 1, memory_order_seq_cst);
		/* seq_cst: read after the announcement, so a ringer that saw
		 * it changes the word after this value. */
		fw[k].val = atomic_load_explicit(&wb->bell->word, memory_order_seq_cst);
		fw[k].uaddr = (uint64_t)(uintptr_t)&wb->bell->word;
		fw[k++].flags = FUTEX_32;
	}
	for (wb = ws->buses; wb; wb = wb->next)
		/* seq_cst: the load half of pair 2. */
		if (atomic_load_explicit(&wb->bell->head, memory_order_seq_cst) != wb->cursor)
			moved = 1;
	ws->parkers++;
	if (!moved) {
		pthread_mutex_unlock(&ws->mu);
		r = waitv(fw, k, sb_wait_slice(ns));
		pthread_mutex_lock(&ws->mu);
	}
	/* The buses of fw[] are still ours: a remove that drops a bus waits
	 * for parkers == 0 (remove_member). relaxed: only the value matters
	 * to a ringer; one that still sees us wakes nobody, harmlessly. */
	for (i = 1; i < k; i++)
		atomic_fetch_sub_explicit(&((struct sb_bell *)(uintptr_t)
		                            (fw[i].uaddr - offsetof(struct sb_bell, word)))->sleepers,
		                          1, memory_order_relaxed);
	if (--ws->parkers == 0)
		pthread_cond_broadcast(&ws->cv);
	return r == SHMBUS_ETIMEDOUT ? 0 : r;
}

/* The wait, with the mutex held: 0 when a member is ready (reported to
 * out, if out), SHMBUS_ETIMEDOUT, SHMBUS_EINTR, or SHMBUS_ECANCELED-like
 * 1 when the fd thread is told to stop. */
static int wait_locked(shmbus_waitset_t *ws, int64_t timeout_ns, int policy, int64_t spin_ns,
                       uint64_t *out, size_t cap, size_t *n, int fd_thread)
{
	sb_deadline_t d;
	uint64_t now = sb_now_ns(), spin_end, yield_at = now + SB_PURE_SPIN_NS;
	struct ws_bus *wb;
	uint32_t pw;
	int r;

	sb_deadline_init(&d, timeout_ns);
	if (spin_ns <= 0)
		spin_ns = SB_DEFAULT_SPIN_NS;
	spin_end = timeout_ns == 0 || policy == SHMBUS_WAIT_PARK ? 0
	         : policy == SHMBUS_WAIT_SPIN ? UINT64_MAX : now + (uint64_t)spin_ns;
	if (ws->next_full == 0)
		ws->next_full = now + (uint64_t)sb_ws_full_ns;
	for (;;) {
		if (fd_thread && (ws->stop || ws->signalled))
			return 1;
		/* seq_cst: read before the look, so a change made after the
		 * look wakes the park below (pairs with bump_priv). */
		pw = atomic_load_explicit(&ws->priv, memory_order_seq_cst);
		if (now >= ws->next_full) {
			full(ws);
			ws->next_full = now + (uint64_t)sb_ws_full_ns;
		}
		for (wb = ws->buses; wb; wb = wb->next)
			drain(ws, wb);
		if (check(ws, out, cap, n))
			return 0;
		if (sb_deadline_left(&d) == 0)
			return SHMBUS_ETIMEDOUT;
		if (now < spin_end) {
			pthread_mutex_unlock(&ws->mu);
			if (now < yield_at)
				sb_cpu_relax();
			else
				sched_yield();
			pthread_mutex_lock(&ws->mu);
		} else {
			int64_t left = sb_deadline_left(&d), to_full;

			to_full = (int64_t)(ws->next_full - now);
			if (to_full < 1)
				to_full = 1;
			if (left < 0 || left > to_full)
				left = to_full;
			r = park(ws, pw, left);
			if (r && r != SHMBUS_EINTR)
				return r;
			if (r == SHMBUS_EINTR && !fd_thread)
				return r;
		}
		now = sb_now_ns();
	}
}

/* ---- API ------------------------------------------------------------ */

int shmbus_waitset_new(shmbus_waitset_t **out)
{
	shmbus_waitset_t *ws;

	if (!out)
		return sb_err(SHMBUS_EINVAL, "shmbus_waitset_new: NULL argument");
	*out = NULL;
	ws = calloc(1, sizeof(*ws));
	if (!ws || !(ws->tags = calloc(64, sizeof(*ws->tags)))) {
		free(ws);
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	}
	ws->nbuckets = 64;
	ws->efd = -1;
	ws->policy = SHMBUS_WAIT_SPIN_PARK;
	pthread_mutex_init(&ws->mu, NULL);
	pthread_cond_init(&ws->cv, NULL);
	*out = ws;
	return 0;
}

static void *fd_main(void *arg);

static void drop_bus(shmbus_waitset_t *ws, struct ws_bus *wb)
{
	struct ws_bus **pp;

	for (pp = &ws->buses; *pp != wb; pp = &(*pp)->next)
		;
	*pp = wb->next;
	ws->nbuses--;
	/* seq_cst: the set stops listening; a waker that still sees the
	 * count rings for nobody, harmlessly. */
	SB_STEP("waitset.drop_bus.sets");
	atomic_fetch_sub_explicit(&wb->bell->sets, 1, memory_order_seq_cst);
	free(wb->map);
	free(wb);
}

int shmbus_waitset_free(shmbus_waitset_t *ws)
{
	struct ws_member *m, *nx;
	size_t i;

	if (!ws)
		return 0;
	pthread_mutex_lock(&ws->mu);
	if (ws->thr_started) {
		ws->stop = 1;
		bump_priv(ws);
		pthread_mutex_unlock(&ws->mu);
		pthread_join(ws->thr, NULL);
		pthread_mutex_lock(&ws->mu);
	}
	for (i = 0; i < ws->nbuckets; i++)
		for (m = ws->tags[i]; m; m = nx) {
			nx = m->tnext;
			free(m->scratch);
			free(m);
		}
	while (ws->buses)
		drop_bus(ws, ws->buses);
	pthread_mutex_unlock(&ws->mu);
	if (ws->efd >= 0)
		close(ws->efd);
	pthread_cond_destroy(&ws->cv);
	pthread_mutex_destroy(&ws->mu);
	free(ws->tags);
	free(ws->cand);
	free(ws);
	return 0;
}

/* The set's record of ch's bus, registered (sets++) if new. */
static int bus_of(shmbus_waitset_t *ws, const struct sb_chan *ch, struct ws_bus **out)
{
	struct ws_bus *wb;

	for (wb = ws->buses; wb; wb = wb->next)
		if (wb->bus == ch->bus) {
			*out = wb;
			return 0;
		}
	if (ws->nbuses >= WS_MAX_BUSES)
		return sb_err(SHMBUS_ENOSPC, "a wait set holds channels of at most %d buses",
		              WS_MAX_BUSES);
	wb = calloc(1, sizeof(*wb));
	if (!wb || !(wb->map = calloc(ch->bus->max_channels, sizeof(*wb->map)))) {
		free(wb);
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	}
	wb->bus = ch->bus;
	wb->bell = &ch->bus->hdr->bell;
	wb->nidx = ch->bus->max_channels;
	/* seq_cst: the store half of pair 1: registered before any member of
	 * this bus is checked; pairs with the waker's load of sets after its
	 * publication. */
	SB_STEP("waitset.register.sets");
	atomic_fetch_add_explicit(&wb->bell->sets, 1, memory_order_seq_cst);
	/* seq_cst: after the registration: every ring from here on is read. */
	wb->cursor = atomic_load_explicit(&wb->bell->head, memory_order_seq_cst);
	wb->next = ws->buses;
	ws->buses = wb;
	ws->nbuses++;
	*out = wb;
	return 0;
}

static int add(shmbus_waitset_t *ws, void *h, int cond, uint64_t tag, uint64_t mark)
{
	const struct sb_chan *ch = h;  /* every handle starts with its sb_chan */
	struct ws_member *m;
	struct ws_bus *wb = NULL;
	uint32_t groups = 0;
	int r;

	if (!ws || !h)
		return sb_err(SHMBUS_EINVAL, "shmbus_waitset_add: NULL argument");
	m = calloc(1, sizeof(*m));
	if (!m)
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	m->tag = tag;
	m->cond = cond;
	m->h = h;
	m->ch = ch;
	m->mark = mark;
	m->group = -1;
	if (cond == SHMBUS_ON_MESSAGE || cond == SHMBUS_ON_END || cond == SHMBUS_ON_SPACE) {
		m->group = sb_queue_group(h, &groups);
		if (cond != SHMBUS_ON_SPACE && m->group < 0) {
			free(m);
			return sb_err(SHMBUS_ESTATE, "queue '%s': join a group before waiting for its messages",
			              ch->name);
		}
		if (cond == SHMBUS_ON_SPACE && !(m->scratch = calloc(groups, sizeof(uint64_t)))) {
			free(m);
			return sb_err(SHMBUS_ENOMEM, "out of memory");
		}
	}
	if (cond == SHMBUS_ON_TURN && sb_turn_party(h, &m->party) != 0) {
		free(m);
		return sb_err(SHMBUS_ESTATE, "turn '%s': register before adding it to a wait set",
		              ch->name);
	}
	pthread_mutex_lock(&ws->mu);
	r = find(ws, tag) ? sb_err(SHMBUS_EEXIST, "tag %llu is already in the wait set",
	                           (unsigned long long)tag) : 0;
	if (!r && ws->n >= ws->nbuckets)
		r = grow_tags(ws);
	if (!r)
		r = bus_of(ws, ch, &wb);
	if (!r && cand_add(ws, m) != 0)
		r = sb_err(SHMBUS_ENOMEM, "out of memory");
	if (r) {
		if (wb && wb->nmemb == 0)       /* registered for this member only */
			drop_bus(ws, wb);
		pthread_mutex_unlock(&ws->mu);
		free(m->scratch);
		free(m);
		return r;
	}
	m->wb = wb;
	wb->nmemb++;
	m->inext = wb->map[ch->index];   /* index < max_channels: checked at open */
	wb->map[ch->index] = m;
	m->tnext = ws->tags[tag_hash(ws, tag)];
	ws->tags[tag_hash(ws, tag)] = m;
	ws->n++;
	bump_priv(ws);
	pthread_mutex_unlock(&ws->mu);
	return 0;
}

int shmbus_waitset_add_state(shmbus_waitset_t *ws, shmbus_state_t *st, uint64_t after,
                             uint64_t tag)
{
	return add(ws, st, SHMBUS_ON_STATE, tag, after);
}

int shmbus_waitset_add_queue(shmbus_waitset_t *ws, shmbus_queue_t *q, int cond, uint64_t tag)
{
	if (cond != SHMBUS_ON_MESSAGE && cond != SHMBUS_ON_SPACE && cond != SHMBUS_ON_END)
		return sb_err(SHMBUS_EINVAL, "queue condition %d: use SHMBUS_ON_MESSAGE, _SPACE or _END",
		              cond);
	return add(ws, q, cond, tag, 0);
}

int shmbus_waitset_add_event(shmbus_waitset_t *ws, shmbus_event_t *e, uint64_t tag)
{
	return add(ws, e, SHMBUS_ON_EVENT, tag, 0);
}

int shmbus_waitset_add_lock(shmbus_waitset_t *ws, shmbus_lock_t *l, uint64_t tag)
{
	return add(ws, l, SHMBUS_ON_LOCK, tag, 0);
}

int shmbus_waitset_add_sem(shmbus_waitset_t *ws, shmbus_sem_t *s, uint64_t tag)
{
	return add(ws, s, SHMBUS_ON_SEM, tag, 0);
}

int shmbus_waitset_add_turn(shmbus_waitset_t *ws, shmbus_turn_t *t, uint64_t tag)
{
	return add(ws, t, SHMBUS_ON_TURN, tag, 0);
}

int shmbus_waitset_set_mark(shmbus_waitset_t *ws, uint64_t tag, uint64_t after)
{
	struct ws_member *m;
	int r = 0;

	if (!ws)
		return sb_err(SHMBUS_EINVAL, "wait set is NULL");
	pthread_mutex_lock(&ws->mu);
	m = find(ws, tag);
	if (!m)
		r = sb_err(SHMBUS_ENOENT, "no tag %llu in the wait set", (unsigned long long)tag);
	else if (m->cond != SHMBUS_ON_STATE)
		r = sb_err(SHMBUS_EINVAL, "tag %llu is not a state member", (unsigned long long)tag);
	else {
		m->mark = after;
		if (cand_add(ws, m) != 0)
			r = sb_err(SHMBUS_ENOMEM, "out of memory");
		bump_priv(ws);
	}
	pthread_mutex_unlock(&ws->mu);
	return r;
}

int shmbus_waitset_remove(shmbus_waitset_t *ws, uint64_t tag)
{
	struct ws_member *m, **pp;
	struct ws_bus *wb;
	size_t i;

	if (!ws)
		return sb_err(SHMBUS_EINVAL, "wait set is NULL");
	pthread_mutex_lock(&ws->mu);
	m = find(ws, tag);
	if (!m) {
		pthread_mutex_unlock(&ws->mu);
		return sb_err(SHMBUS_ENOENT, "no tag %llu in the wait set", (unsigned long long)tag);
	}
	for (pp = &ws->tags[tag_hash(ws, tag)]; *pp != m; pp = &(*pp)->tnext)
		;
	*pp = m->tnext;
	wb = m->wb;
	for (pp = &wb->map[m->ch->index]; *pp != m; pp = &(*pp)->inext)
		;
	*pp = m->inext;
	if (m->cand)
		for (i = 0; i < ws->ncand; i++)
			if (ws->cand[i] == m) {
				cand_drop(ws, i);
				break;
			}
	ws->n--;
	bump_priv(ws);
	if (--wb->nmemb == 0) {
		/* A parked thread still counts itself in the bus's sleepers:
		 * let it leave before the caller may close the bus. */
		ws->droppers++;
		while (ws->parkers)
			pthread_cond_wait(&ws->cv, &ws->mu);
		drop_bus(ws, wb);
		if (--ws->droppers == 0)
			pthread_cond_broadcast(&ws->cv);
	}
	pthread_mutex_unlock(&ws->mu);
	free(m->scratch);
	free(m);
	return 0;
}

size_t shmbus_waitset_size(shmbus_waitset_t *ws)
{
	size_t n;

	if (!ws)
		return 0;
	pthread_mutex_lock(&ws->mu);
	n = ws->n;
	pthread_mutex_unlock(&ws->mu);
	return n;
}

int shmbus_waitset_set_wait(shmbus_waitset_t *ws, int policy, int64_t spin_ns)
{
	if (!ws)
		return sb_err(SHMBUS_EINVAL, "wait set is NULL");
	if (policy != SHMBUS_WAIT_SPIN_PARK && policy != SHMBUS_WAIT_SPIN &&
	    policy != SHMBUS_WAIT_PARK)
		return sb_err(SHMBUS_EINVAL, "wait policy %d: use SHMBUS_WAIT_SPIN_PARK, _SPIN or _PARK",
		              policy);
	if (spin_ns < 0)
		return sb_err(SHMBUS_EINVAL, "spin_ns %lld is negative", (long long)spin_ns);
	pthread_mutex_lock(&ws->mu);
	ws->policy = policy;
	ws->spin_ns = spin_ns;
	pthread_mutex_unlock(&ws->mu);
	return 0;
}

int shmbus_waitset_wait(shmbus_waitset_t *ws, int64_t timeout_ns, uint64_t *ready, size_t cap,
                        size_t *n)
{
	uint64_t v;
	int r;

	if (n)
		*n = 0;
	if (!ws || !n || !ready || cap == 0)
		return sb_err(SHMBUS_EINVAL, "shmbus_waitset_wait: NULL argument or cap 0");
	pthread_mutex_lock(&ws->mu);
	if (ws->n == 0 && timeout_ns < 0) {
		pthread_mutex_unlock(&ws->mu);
		return sb_err(SHMBUS_EINVAL, "the wait set is empty and the wait has no timeout");
	}
	if (ws->efd >= 0) {
		/* Re-arm: the fd reads empty until the thread finds a member
		 * ready again (it looks again now). */
		while (read(ws->efd, &v, sizeof(v)) > 0)
			;
		ws->signalled = 0;
		bump_priv(ws);
	}
	r = wait_locked(ws, timeout_ns, ws->policy, ws->spin_ns, ready, cap, n, 0);
	pthread_mutex_unlock(&ws->mu);
	if (r == SHMBUS_ETIMEDOUT)
		return sb_err(r, "no member of the wait set was ready within the timeout");
	if (r == SHMBUS_EINTR)
		return sb_err(r, "interrupted while waiting on a wait set");
	return r;
}

/* ---- the fd --------------------------------------------------------- */

static void *fd_main(void *arg)
{
	shmbus_waitset_t *ws = arg;
	uint64_t one = 1;
	uint32_t pw;
	size_t n = 0;
	int r;

	pthread_mutex_lock(&ws->mu);
	while (!ws->stop) {
		if (ws->signalled) {
			/* seq_cst: pairs with bump_priv, made under the mutex. */
			pw = atomic_load_explicit(&ws->priv, memory_order_seq_cst);
			pthread_mutex_unlock(&ws->mu);
			sb_futex_wait_private(&ws->priv, pw, -1);
			pthread_mutex_lock(&ws->mu);
			continue;
		}
		/* Never reports, never moves a mark: only counts. */
		r = wait_locked(ws, -1, SHMBUS_WAIT_PARK, 0, NULL, 0, &n, 1);
		if (r == 0 && !ws->stop) {
			ws->signalled = 1;
			if (write(ws->efd, &one, sizeof(one)) < 0) {
				/* EAGAIN: the counter is full, so it is readable. */
			}
		} else if (r < 0 && !ws->stop) {
			/* A failed sleep (futex_waitv refused): look again
			 * after a slice, not in a busy loop. */
			pw = atomic_load_explicit(&ws->priv, memory_order_seq_cst);
			pthread_mutex_unlock(&ws->mu);
			sb_futex_wait_private(&ws->priv, pw, SB_WAIT_SLICE_NS);
			pthread_mutex_lock(&ws->mu);
		}
	}
	pthread_mutex_unlock(&ws->mu);
	return NULL;
}

int shmbus_waitset_fd(shmbus_waitset_t *ws, int *fd)
{
	int r = 0;

	if (!ws || !fd)
		return sb_err(SHMBUS_EINVAL, "shmbus_waitset_fd: NULL argument");
	pthread_mutex_lock(&ws->mu);
	if (ws->efd < 0) {
		ws->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (ws->efd < 0)
			r = sb_err_sys(errno, "eventfd");
		else {
			sigset_t all, old;

			/* The thread takes no asynchronous signal (a Ctrl+C
			 * must reach the program's own threads), but keeps the
			 * faults: a SIGBUS from a truncated bus is handled
			 * (sigbus.c), and a blocked fault would kill. */
			sigfillset(&all);
			sigdelset(&all, SIGBUS);
			sigdelset(&all, SIGSEGV);
			sigdelset(&all, SIGFPE);
			sigdelset(&all, SIGILL);
			pthread_sigmask(SIG_SETMASK, &all, &old);
			r = pthread_create(&ws->thr, NULL, fd_main, ws);
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			if (r != 0) {
				r = sb_err_sys(r, "wait set thread");
				close(ws->efd);
				ws->efd = -1;
			} else
				ws->thr_started = 1;
		}
	}
	if (!r)
		*fd = ws->efd;
	pthread_mutex_unlock(&ws->mu);
	return r;
}

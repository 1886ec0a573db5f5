/*
 * waitset.c -- wait sets: one thread waits on many channels, on any number
 * of buses, and learns which of them are ready.
 *
 * The bell. Every bus has one in its header page (struct sb_bell): a futex
 * word, the number of wait sets with a member on the bus (`sets`), the
 * number parked on the word now (`sleepers`), and a ring of the last 256
 * channels that changed (entry s: s << 32 | directory index, at s % 256;
 * `head` counts the rings). Every wake site of the library (a state
 * publication, a queue put, get, release, join, leave or shut, an event
 * set, a lock unlock, a semaphore post, a turn passed) rings it after publishing
 * its condition: sb_bell_ring loads `sets` and, with no wait set on the bus
 * (the common case), does nothing more. Otherwise it claims slot s =
 * head++, writes the entry, and if a wait set sleeps bumps the word and
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
 * A small set (up to WS_DIRECT_MAX members) that spins looks at its
 * members directly and, while it does, is not counted in `sets` (quiet):
 * wakers on its buses then skip the ring. Before it reads the rings or
 * parks it is counted again (listen): sets++, cursor = head, and every
 * member of the bus becomes a candidate -- a registration like the first,
 * so pair (1) below covers what was published meanwhile. A small set is
 * thus counted only while it sleeps, which also bounds what a set killed
 * while spinning leaves behind.
 *
 * Waiting: drain the rings and check the candidates; if none is ready,
 * spin (the set's policy), then park: on every bus sleepers++, w = word,
 * then read head again: moved -> back to the start; else futex_waitv on
 * the buses' words (and on a process-private word of the set, bumped by
 * add, remove and the fd machinery, so a waiting thread sees membership
 * change) for at most a slice (250 ms) and the deadline; then sleepers--.
 * Each slice every member is checked again (a full look), with the
 * liveness of lock and turn holders, and every bus's segment
 * (sb_bus_health): this covers a waker killed between publishing and
 * ringing, a dead holder, and a bus truncated while we sleep -- a damaged
 * bus makes all its members ready, and the caller's own call then returns
 * the error. A full look also reports a queue member whose next seq stays
 * claimed and unpublished, or whose ring stays full: the caller's own call
 * (timeout 0) runs the liveness checks that repair a dead producer's claim
 * or a dead consumer's hold. What a full look found stays a report until
 * a wait reports it once (so the wait(0) after the fd's signal sees it).
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
 * as above (parking at once, unless the program chose the set's policy
 * with shmbus_waitset_set_wait), without reporting (it never moves a mark)
 * and, when a member is
 * ready, writes 1 to the eventfd, then sleeps on the set's private word
 * until the next shmbus_waitset_wait, which reads the eventfd to 0 and
 * bumps the word: the thread looks again, and signals again while members
 * stay ready. A set does not cross fork: the child must not use it.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sigbus.h"
#include "waitset.h"

#define WS_FALLBACK_NS 10000000ll  /* the sleep without futex_waitv */
#define WS_DIRECT_MAX 8            /* a set this small spins on its members */

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

/* futex_waitv said ENOSYS (Linux before 5.16); tests set it to run the
 * fallback. */
int sb_ws_no_waitv;

/* How often a waiting set looks at every member and segment: each slice.
 * Only tests change it (before any set waits), to see that every report
 * they expect comes from a ring, not from the periodic look. */
int64_t sb_ws_full_ns = SB_WAIT_SLICE_NS;

/* Sleep on the set's own word (process-private) while it reads pw, at
 * most ns (-1: no limit). */
void sb_ws_futex_wait_private(_Atomic uint32_t *w, uint32_t pw, int64_t ns)
{
	struct timespec ts = {ns / 1000000000ll, ns % 1000000000ll};

	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, pw, ns < 0 ? NULL : &ts, NULL, 0);
}

void sb_ws_bump_priv(shmbus_waitset_t *ws)
{
	/* seq_cst: the change a parked thread's futex_waitv compares with;
	 * made under the mutex, after the change it announces. */
	atomic_fetch_add_explicit(&ws->priv, 1, memory_order_seq_cst);
	syscall(SYS_futex, (uint32_t *)&ws->priv, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

int sb_ws_cand_add(shmbus_waitset_t *ws, struct ws_member *m)
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

void sb_ws_cand_drop(shmbus_waitset_t *ws, size_t i)
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
			sb_ws_cand_add(ws, m);
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
	int spins;

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
		/* Claimed but not yet written: the ringer is between its
		 * fetch_add of head and its store of the entry, two
		 * instructions apart. Wait a little for it (acquire, as
		 * above) rather than look at every member of the bus, which a
		 * spinning set would do on nearly every ring. */
		for (spins = 0; (uint32_t)(e >> 32) != (uint32_t)s && spins < 200; spins++) {
			if ((int32_t)((uint32_t)(e >> 32) - (uint32_t)s) > 0)
				break;  /* overwritten by a later lap */
			sb_cpu_relax();
			e = atomic_load_explicit(&b->ring[s % SB_BELL_RING], memory_order_acquire);
		}
		if ((uint32_t)(e >> 32) != (uint32_t)s) {
			/* not written (its ringer stopped or died), or
			 * overwritten: look at them all */
			bus_all(ws, wb, 0);
			break;
		}
		idx = (uint32_t)e;
		if (idx < wb->nidx)     /* never trust the segment */
			for (m = wb->map[idx]; m; m = m->inext)
				sb_ws_cand_add(ws, m);
	}
	wb->cursor = h;
}

/* Every member is a candidate: the look of a small set while it spins. */
static void direct(shmbus_waitset_t *ws)
{
	struct ws_member *m;
	size_t i;

	for (i = 0; i < ws->nbuckets; i++)
		for (m = ws->tags[i]; m; m = m->tnext)
			sb_ws_cand_add(ws, m);
}

/* A small set that spins looks at its members, not at the rings, so it
 * stops being counted in its buses' `sets` while it does: wakers there
 * then skip the ring (one load of a line nobody writes) instead of
 * claiming an entry on a line both sides of a ping-pong write. Only when
 * no other thread of the set is parked on the bells (the fd's thread). */
static void quiet(shmbus_waitset_t *ws)
{
	struct ws_bus *wb;

	if (ws->parkers)
		return;
	for (wb = ws->buses; wb; wb = wb->next)
		if (wb->registered) {
			/* relaxed: a waker that still sees the count rings
			 * for nobody, harmlessly; the next listen() orders
			 * its own registration. */
			SB_STEP("waitset.quiet.sets");
			atomic_fetch_sub_explicit(&wb->bell->sets, 1, memory_order_relaxed);
			wb->registered = 0;
		}
}

/* Be counted again before reading the rings: as a new registration
 * (bus_of), sets++ then the cursor, and every member of the bus becomes a
 * candidate, so the look that follows sees whatever was published while
 * the set was not counted (pair 1). */
static void listen(shmbus_waitset_t *ws)
{
	struct ws_bus *wb;

	for (wb = ws->buses; wb; wb = wb->next)
		if (!wb->registered) {
			/* seq_cst: the store half of pair 1, before the look
			 * at the members below; pairs with the waker's load
			 * of sets after its publication. */
			SB_STEP("waitset.listen.sets");
			atomic_fetch_add_explicit(&wb->bell->sets, 1, memory_order_seq_cst);
			/* seq_cst: after the registration: every ring from
			 * here on is read. */
			wb->cursor = atomic_load_explicit(&wb->bell->head, memory_order_seq_cst);
			wb->registered = 1;
			bus_all(ws, wb, 0);
		}
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
/* More members were ready than the caller had room for: the ones just
 * reported go to the back of the candidates, so the next call reports
 * the others first (a level-triggered member at the front would
 * otherwise be reported at every call, and the rest never). */
static void rotate(shmbus_waitset_t *ws)
{
	size_t i = 0, end = ws->ncand;
	struct ws_member *t;

	/* Stable, in place: the others keep their order (a partition that
	 * swapped could leave one member between two that take turns). At
	 * most cap moves of the list: only when more were ready than cap. */
	while (i < end) {
		if (!ws->cand[i]->reported) {
			i++;
			continue;
		}
		t = ws->cand[i];
		memmove(&ws->cand[i], &ws->cand[i + 1], (ws->ncand - i - 1) * sizeof(*ws->cand));
		ws->cand[ws->ncand - 1] = t;
		end--;
	}
	for (i = 0; i < ws->ncand; i++)
		ws->cand[i]->reported = 0;
}

static size_t check(shmbus_waitset_t *ws, uint64_t *out, size_t cap, size_t *n)
{
	size_t i = 0, k = 0;
	uint64_t seq = 0;

	while (i < ws->ncand) {
		struct ws_member *m = ws->cand[i];

		if (!member_ready(m, m->live, &seq)) {
			m->live = 0;
			sb_ws_cand_drop(ws, i);
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
			m->reported = 1;
		}
		i++;
	}
	if (out && k > *n)
		rotate(ws);
	else
		for (i = 0; i < ws->ncand; i++)
			ws->cand[i]->reported = 0;
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
		sb_ws_futex_wait_private((_Atomic uint32_t *)(uintptr_t)fw[0].uaddr,
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

int sb_ws_wait_locked(shmbus_waitset_t *ws, int64_t timeout_ns, int policy, int64_t spin_ns,
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
		if (now < spin_end && ws->n <= WS_DIRECT_MAX) {
			/* Spinning on a small set: look at every member, not
			 * at the rings. A spinner that reads the bell's lines
			 * pulls them from the ringer's cache on every ring,
			 * which doubled a spinning round trip; the members'
			 * own lines are the ones the waker writes first. The
			 * cursors catch up (drain) before the set parks:
			 * park() sees head != cursor and comes back here. */
			quiet(ws);
			direct(ws);
		} else {
			listen(ws);
			for (wb = ws->buses; wb; wb = wb->next)
				drain(ws, wb);
		}
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


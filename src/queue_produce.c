/*
 * queue_produce.c -- the producing side of queue channels (protocol at the
 * top of queue.c).
 *
 * A producer handle owns one producer record. To send, it claims the next
 * sequence with a CAS on head (after writing the seq into its record as an
 * intent), checks the epoch, writes the message into the slot and
 * publishes the slot word. The only shared line it writes per message,
 * besides the slot, is head; it reads nothing else that changes while
 * data flows: the gate is cached in the handle and recomputed only when
 * the cached value would block.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "queue.h"
#include "sigbus.h"

static int closed_err(shmbus_queue_t *q)
{
	return sb_err(SHMBUS_ECLOSED, "queue '%s' is shut (end of stream); no more messages",
	              q->ch.name);
}

static int attach_producer(shmbus_queue_t *q)
{
	struct sb_q_view *v = &q->v;
	int pass, r;
	uint32_t i;

	for (pass = 0; pass < 2; pass++) {
		r = sb_bus_lock(v->bus);
		if (r)
			return r;
		for (i = 0; i < v->max_producers; i++) {
			struct sb_q_prod *pr = &v->prods[i];
			uint64_t expect = 0;

			/* relaxed: a hint; the claiming CAS below decides, and
			 * the intent reset is published by its release. */
			if (atomic_load_explicit(&pr->token, memory_order_relaxed) != 0)
				continue;
			atomic_store_explicit(&pr->intent, 0, memory_order_relaxed);
			/* release: the reset intent is visible before the record
			 * counts as ours (scanners acquire the token first). */
			if (atomic_compare_exchange_strong_explicit(&pr->token, &expect, q->token,
			                                            memory_order_release,
			                                            memory_order_relaxed)) {
				sb_q_raise_hi(&v->ctl->producers_hi, i + 1);
				sb_bus_unlock(v->bus);
				q->prod = (int32_t)i;
				/* A gate of 0 is a valid lower bound at any epoch. */
				q->gate = 0;
				q->epoch = atomic_load_explicit(&v->ctl->epoch, memory_order_seq_cst);
				return 0;
			}
		}
		sb_bus_unlock(v->bus);
		/* Again even if we reaped nothing: a concurrent reaper may
		 * have freed the records. */
		if (pass == 0)
			sb_q_reap_producers(v);
	}
	return sb_err(SHMBUS_ENOSPC, "queue '%s' has %u producers, its max_producers", q->ch.name,
	              v->max_producers);
}

/* The consumers-side wake-up that put_many defers to the end of a batch. */
static void signal_consumers(shmbus_queue_t *q)
{
	uint64_t last = q->unsignalled - 1;

	q->unsignalled = 0;
	/* seq_cst fence: orders the batch's release stores of published before
	 * the waiter count and request loads (the store-load pair of
	 * sb_q_publish). The handle's claims rise, so last is the batch's
	 * highest seq: a sleeper waiting for any of them asked for at most it. */
	atomic_thread_fence(memory_order_seq_cst);
	sb_q_signal_consumers(q->v.ctl, last);
}

/* A detached group blocks seq h: raise its floor so that h fits, plus a
 * quarter ring so that a dead group costs one scan per quarter ring. */
static void raise_floor(struct sb_q_view *v, int32_t gi, uint64_t h)
{
	struct sb_q_group *g = &v->groups[gi];
	uint64_t need = h - v->size + 1, step = v->size / 4 ? v->size / 4 : 1, target, hd, fw;
	int raised = 0;

	/* acquire: the floor never passes what was claimed. */
	hd = atomic_load_explicit(&v->ctl->head, memory_order_acquire) & SB_Q_SEQ;
	target = need + step < hd ? need + step : hd;
	if (target < need)
		target = need;
	/* acquire: pairs with the release CAS of a rejoin that cleared
	 * DETACHED. */
	fw = atomic_load_explicit(&g->floor, memory_order_acquire);
	/* release: only while DETACHED (a rejoin clears it, and then the floor
	 * it read bounds every gate computed from it); pairs with the acquire
	 * load of floor in sb_q_gate and reactivate. */
	while ((fw & SB_Q_DETACHED) && (fw >> 1) < target)
		if (atomic_compare_exchange_weak_explicit(&g->floor, &fw, target << 1 | SB_Q_DETACHED,
		                                          memory_order_release,
		                                          memory_order_acquire))
			raised = 1;
	if (raised)
		sb_q_wake_producers(v->ctl);
}

static int full_err(shmbus_queue_t *q, int code, int32_t blocker, uint64_t gate)
{
	const char *gname = blocker >= 0 ? q->v.groups[blocker].name : "?";

	return sb_err(code, "queue '%s' is full (%llu slots): group '%.63s' has not released seq %llu",
	              q->ch.name, (unsigned long long)q->v.size, gname, (unsigned long long)gate);
}

/* Wait until seq h may be written (h - slots < gate). owned: h is claimed
 * already (a group appeared after our gate), so end of stream does not
 * apply. */
static int wait_space(shmbus_queue_t *q, uint64_t h, int owned, int64_t timeout_ns,
                      struct sb_q_wait *w)
{
	struct sb_q_view *v = &q->v;
	struct sb_q_ctl *ctl = v->ctl;
	uint64_t gate, now, fw;
	int32_t blocker;
	uint32_t ev;
	int i, r = 0, rc;

	for (;;) {
		gate = sb_q_gate(v, &blocker, &q->epoch);
		q->gate = gate;
		if (sb_q_fits(h, gate, v->size))
			return 0;
		/* acquire: pairs with the fetch_or in shut. */
		if (!owned && (atomic_load_explicit(&ctl->head, memory_order_acquire) & SB_Q_CLOSED))
			return closed_err(q);
		if (blocker >= 0) {
			fw = atomic_load_explicit(&v->groups[blocker].floor, memory_order_acquire);
			if (fw & SB_Q_DETACHED) {
				raise_floor(v, blocker, h);
				continue;
			}
		}
		if (timeout_ns == 0)
			return full_err(q, SHMBUS_EAGAIN, blocker, gate);
		if (q->unsignalled)
			signal_consumers(q);
		if (!w->started)
			sb_q_wait_start(w, q, timeout_ns);
		now = sb_now_ns();
		if (now >= w->next_live) {
			/* Blocked for the liveness timeout: free the records of dead
			 * members of the group we wait on, and stop it gating if it
			 * has no live member left (unless DURABLE). */
			w->next_live = now + (uint64_t)q->ch.bus->liveness_ns;
			if (blocker >= 0) {
				sb_q_reap_members(v, blocker, NULL);
				sb_q_maybe_detach(v, blocker);
			}
			continue;
		}
		if (sb_park_left_at(&w->pk, now) == 0)
			return full_err(q, SHMBUS_ETIMEDOUT, blocker, gate);
		if (!w->parking) {
			/* One round: a few pauses or one yield, then the gate
			 * again. */
			for (i = 0; i < 32 && (r = sb_park_spin(&w->pk)) == 1; i++)
				;
			if (r == SHMBUS_ETIMEDOUT)
				return full_err(q, r, blocker, gate);
			if (r < 0)
				return r;
			if (r > 0)
				continue;
			w->parking = 1;
		}
		/* seq_cst: announce ourselves and what we need (the gate at
		 * which h fits) before re-reading the gate; pairs with the
		 * store-load pair of a release (hold dropped, then
		 * sb_q_release_wake). */
		sb_park_prepare(&ctl->prod_waiters);
		ev = atomic_load_explicit(&ctl->prod_event, memory_order_seq_cst);
		sb_q_want(&ctl->prod_need, h - v->size + 1);
		gate = sb_q_gate(v, &blocker, &q->epoch);
		q->gate = gate;
		if (!sb_q_fits(h, gate, v->size) &&
		    (owned || !(atomic_load_explicit(&ctl->head, memory_order_seq_cst) & SB_Q_CLOSED)))
			r = sb_park_sleep(&w->pk, &ctl->prod_event, ev, sb_q_live_ns(w, now));
		/* Truncated, overwritten or deleted while we waited. */
		rc = sb_park_cancel(&w->pk, &ctl->prod_waiters);
		if (rc)
			return rc;
		if (r == SHMBUS_EINTR)
			return sb_err(r, "interrupted while waiting for space in queue '%s'", q->ch.name);
		if (r < 0 && r != SHMBUS_ETIMEDOUT)
			return r;
		r = 0;
	}
}

/* Claim the next sequence into *seq. */
static int claim(shmbus_queue_t *q, int64_t timeout_ns, struct sb_q_wait *w, uint64_t *seq)
{
	struct sb_q_view *v = &q->v;
	struct sb_q_ctl *ctl = v->ctl;
	struct sb_q_prod *rec = &v->prods[q->prod];
	/* relaxed: a stale value only makes the CAS below fail and reload. */
	uint64_t h = atomic_load_explicit(&ctl->head, memory_order_relaxed);
	int r;

	for (;;) {
		if (h & SB_Q_CLOSED)
			return closed_err(q);
		/* relaxed: a new group seen here is waited for before claiming
		 * (honouring the timeout); the seq_cst re-check after the claim
		 * is what guarantees it. */
		if (!sb_q_fits(h, q->gate, v->size) ||
		    atomic_load_explicit(&ctl->epoch, memory_order_relaxed) != q->epoch) {
			r = wait_space(q, h, 0, timeout_ns, w);
			if (r)
				return r;
			/* relaxed: a fresh guess for the claim CAS, which decides. */
			h = atomic_load_explicit(&ctl->head, memory_order_relaxed);
			continue;
		}
		/* release: the intent is visible to whoever sees the claim below
		 * (they acquire head, then the intents); and to a scanner that
		 * sees a later intent, our previous publication is visible. */
		atomic_store_explicit(&rec->intent, h + 1, memory_order_release);
		/* seq_cst: the claim; a failed CAS reloads h (and sees CLOSED). */
		if (atomic_compare_exchange_weak_explicit(&ctl->head, &h, h + 1,
		                                          memory_order_seq_cst,
		                                          memory_order_relaxed))
			break;
	}
	/* seq_cst: after our claim; pairs with the epoch bump in create_group
	 * (a group that missed our claim is visible to us now). */
	if (atomic_load_explicit(&ctl->epoch, memory_order_seq_cst) != q->epoch) {
		/* A group created between the check above and the claim may
		 * still need the message in our slot: the seq is ours, but it
		 * cannot be written (not even as a skip) before the slot is
		 * free. If the wait fails, the skip is owed: the next call on
		 * this handle (or close) publishes it, and meanwhile our intent
		 * names the seq so that nobody skips it for us while we live. */
		r = wait_space(q, h, 1, timeout_ns, w);
		if (r) {
			q->owed = h + 1;
			return r;
		}
	}
	*seq = h;
	return 0;
}

/* Publish the skip a failed claim left owed, once its slot is free. */
int sb_q_pay_owed(shmbus_queue_t *q, int64_t timeout_ns, struct sb_q_wait *w)
{
	uint64_t h = q->owed - 1;
	int r = wait_space(q, h, 1, timeout_ns, w);

	if (r)
		return r;
	sb_q_publish(&q->v, sb_q_slot(&q->v, h), q->owed | SB_Q_SKIP);
	q->owed = 0;
	return 0;
}

static int too_big(shmbus_queue_t *q, size_t len)
{
	return sb_err(SHMBUS_ETOOBIG, "message of %zu bytes is larger than queue '%s''s max_msg of %llu bytes",
	              len, q->ch.name, (unsigned long long)q->v.max_msg);
}

static int begin(shmbus_queue_t *q, size_t len, int64_t timeout_ns, struct sb_q_wait *w,
                 uint64_t *seq)
{
	int r;

	if (len > q->v.max_msg)
		return too_big(q, len);
	if (q->claimed)
		return sb_err(SHMBUS_ESTATE, "queue '%s': a reservation is open; commit or abort it first",
		              q->ch.name);
	if (q->prod < 0 && (r = attach_producer(q)) != 0)
		return r;
	if (q->owed && (r = sb_q_pay_owed(q, timeout_ns, w)) != 0)
		return r;
	return claim(q, timeout_ns, w, seq);
}

int shmbus_queue_reserve(shmbus_queue_t *q, size_t len, void **ptr, int64_t timeout_ns)
{
	struct sb_q_wait w = {0};
	uint64_t s;
	int r;

	if (!q || !ptr)
		return sb_err(SHMBUS_EINVAL, "shmbus_queue_reserve: NULL argument");
	r = begin(q, len, timeout_ns, &w, &s);
	if (r)
		return r;
	q->claimed = s + 1;
	q->claimed_len = len;
	*ptr = sb_q_data(&q->v, sb_q_slot(&q->v, s));
	return 0;
}

int shmbus_queue_commit(shmbus_queue_t *q, size_t len)
{
	struct sb_q_slot *sl;

	if (!q)
		return sb_err(SHMBUS_EINVAL, "queue is NULL");
	if (!q->claimed)
		return sb_err(SHMBUS_ESTATE, "queue '%s': commit without reserve", q->ch.name);
	if (len > q->claimed_len)
		return sb_err(SHMBUS_EINVAL, "queue '%s': commit of %zu bytes, %zu were reserved",
		              q->ch.name, len, q->claimed_len);
	sl = sb_q_slot(&q->v, q->claimed - 1);
	sl->len = (uint32_t)len;
	sl->flags = 0;
	sb_q_publish(&q->v, sl, q->claimed);
	q->claimed = 0;
	/* Written into pages lost to a truncation: not delivered. */
	return sb_map_damaged(q->ch.bus->base) ? sb_chan_damage_err(&q->ch) : 0;
}

int shmbus_queue_abort(shmbus_queue_t *q)
{
	if (!q)
		return sb_err(SHMBUS_EINVAL, "queue is NULL");
	if (!q->claimed)
		return sb_err(SHMBUS_ESTATE, "queue '%s': abort without reserve", q->ch.name);
	sb_q_publish(&q->v, sb_q_slot(&q->v, q->claimed - 1), q->claimed | SB_Q_SKIP);
	q->claimed = 0;
	return 0;
}

int shmbus_queue_put(shmbus_queue_t *q, const void *msg, size_t len, int64_t timeout_ns)
{
	struct sb_q_wait w = {0};
	struct sb_q_slot *sl;
	uint64_t s;
	int r;

	if (!q || (!msg && len))
		return sb_err(SHMBUS_EINVAL, "shmbus_queue_put: NULL argument");
	r = begin(q, len, timeout_ns, &w, &s);
	if (r)
		return r;
	sl = sb_q_slot(&q->v, s);
	if (len)
		memcpy(sb_q_data(&q->v, sl), msg, len);
	sl->len = (uint32_t)len;
	sl->flags = 0;
	sb_q_publish(&q->v, sl, s + 1);
	/* Written into pages lost to a truncation: not delivered. */
	return sb_map_damaged(q->ch.bus->base) ? sb_chan_damage_err(&q->ch) : 0;
}

int shmbus_queue_put_many(shmbus_queue_t *q, const void *const *msgs, const size_t *lens,
                          size_t n, int64_t timeout_ns, size_t *done)
{
	struct sb_q_wait w = {0};
	struct sb_q_slot *sl;
	size_t i;
	uint64_t s;
	int r = 0;

	if (done)
		*done = 0;
	if (!q || (n && (!msgs || !lens)))
		return sb_err(SHMBUS_EINVAL, "shmbus_queue_put_many: NULL argument");
	for (i = 0; i < n; i++) {
		if (!msgs[i] && lens[i]) {
			r = sb_err(SHMBUS_EINVAL, "shmbus_queue_put_many: message %zu is NULL", i);
			break;
		}
		/* One deadline for the whole batch (w is shared). */
		r = begin(q, lens[i], timeout_ns, &w, &s);
		if (r)
			break;
		sl = sb_q_slot(&q->v, s);
		if (lens[i])
			memcpy(sb_q_data(&q->v, sl), msgs[i], lens[i]);
		sl->len = (uint32_t)lens[i];
		sl->flags = 0;
		/* release: publishes the message; the waiter check is done once
		 * for the batch (signal_consumers), or before any wait. */
		atomic_store_explicit(&sl->published, s + 1, memory_order_release);
		q->unsignalled = s + 1;
		if (done)
			*done = i + 1;
	}
	if (q->unsignalled)
		signal_consumers(q);
	if (!r && sb_map_damaged(q->ch.bus->base))
		r = sb_chan_damage_err(&q->ch);
	return r;
}

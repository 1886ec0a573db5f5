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
			SB_STEP("queue.attach_producer.intent");
			atomic_store_explicit(&pr->intent, 0, memory_order_relaxed);
			/* relaxed: as the intent (read only while intent is set). */
			if (v->cell)
				atomic_store_explicit(&pr->intent_len, 0, memory_order_relaxed);
			/* release: the reset intent is visible before the record
			 * counts as ours (scanners acquire the token first). */
			SB_STEP("queue.attach_producer.token");
			if (atomic_compare_exchange_strong_explicit(&pr->token, &expect, q->token,
			                                            memory_order_release,
			                                            memory_order_relaxed)) {
				sb_q_raise_hi(&v->ctl->producers_hi, i + 1);
				sb_bus_unlock(v->bus);
				q->prod = (int32_t)i;
				/* A gate of 0 is a valid lower bound at any epoch.
				 * seq_cst: the epoch the next claim re-checks;
				 * pairs with the bump in finish_group. */
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
	sb_q_signal_consumers(&q->v, last);
}

/* With cells, the first record start at or past want, walking record by
 * record from x (a record start) by the published words and lengths; the
 * head hd (a record start too: claims move it by whole records) if a record
 * on the way is not published (its length is not known yet) or its length
 * is not one (0, or past the ring's end: corrupt), or if the walk reaches
 * it. The caller makes sure no cell from x on is rewritten meanwhile. */
static uint64_t record_start_from(const struct sb_q_view *v, uint64_t x, uint64_t want,
                                  uint64_t hd)
{
	while (x < want && x < hd) {
		struct sb_q_slot *s = sb_q_slot(v, x);
		/* acquire: pairs with the publication's release; its length
		 * below is that record's. */
		uint64_t p = atomic_load_explicit(&s->published, memory_order_acquire), k;

		if ((p & SB_Q_SEQ) != x + 1)
			return hd;
		k = sb_q_rec_k(v, s);
		if (k == 0 || (x & v->mask) + k > v->size)
			return hd;
		x += k;
	}
	return x < hd ? x : hd;
}

/* A detached group blocks seq h: raise its floor so that h fits, plus a
 * quarter ring so that a dead group costs one scan per quarter ring. With
 * cells the floor lands on a record start (a rejoining member's cursor
 * jumps to it): the first one at or past that target, found by walking
 * the records from the group's position x0 = max(cursor, floor), itself a
 * record start. The lengths read on the way are the current lap's: while
 * the floor word and the cursor are what we read before the walk, the
 * group's gating position is at most x0 (holds only lower it), so no
 * producer writes a seq at or past x0 + slots, and the walk stays in
 * [x0, head) with head <= x0 + slots. The cursor re-read after the walk
 * and the floor CAS (it fails if the floor moved) check that; a floor
 * value never goes back and a cursor never does, so an equal value is an
 * unchanged one (a rejoin that cleared DETACHED and took nothing left
 * the position at most x0). */
static void raise_floor(struct sb_q_view *v, int32_t gi, uint64_t h)
{
	struct sb_q_group *g = &v->groups[gi];
	uint64_t need = h - v->size + 1, step = v->size / 4 ? v->size / 4 : 1, target, hd, fw;
	uint64_t c0, x0;
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
	SB_STEP("queue.raise_floor.floor");
	while (fw & SB_Q_DETACHED) {
		uint64_t t = target;

		if (v->cell) {
			/* acquire: pairs with the cursor CAS of the group's
			 * last take. */
			c0 = atomic_load_explicit(&g->cursor, memory_order_acquire);
			x0 = c0 > (fw >> 1) ? c0 : fw >> 1;
			t = record_start_from(v, x0, target, hd > need ? hd : need);
			/* acquire: the cursor again, after the walk: moved, the
			 * lengths read may be another lap's. */
			if (atomic_load_explicit(&g->cursor, memory_order_acquire) != c0) {
				/* acquire: as above. */
				fw = atomic_load_explicit(&g->floor, memory_order_acquire);
				continue;
			}
		}
		if ((fw >> 1) >= t)
			break;
		/* release: the floor only rises, and only while DETACHED (a
		 * rejoin that cleared the bit makes this CAS fail); pairs with
		 * the acquire loads of floor above and in the rejoin, which then
		 * see the record starts this walk read. */
		if (atomic_compare_exchange_weak_explicit(&g->floor, &fw, t << 1 | SB_Q_DETACHED,
		                                          memory_order_release,
		                                          memory_order_acquire)) {
			raised = 1;
			break;
		}
	}
	if (raised)
		sb_q_wake_producers(v);
}

static int full_err(shmbus_queue_t *q, int code, int32_t blocker, uint64_t gate)
{
	const char *gname = blocker >= 0 ? q->v.groups[blocker].name : "?";

	return sb_err(code, "queue '%s' is full (%llu slots): group '%.63s' has not released seq %llu",
	              q->ch.name, (unsigned long long)q->v.size, gname, (unsigned long long)gate);
}

/* The liveness checks of a producer blocked by group gi at the gate:
 * pass over the gate's seq if its claimer died between reserve and commit
 * (the group's members then pass it), free the records of the group's dead
 * members and, with detach (the group has blocked us for the liveness
 * timeout), stop it gating if it has no live member left (unless DURABLE):
 * a member that restarts within the liveness timeout loses nothing. */
static void check_liveness(struct sb_q_view *v, int32_t gi, uint64_t gate, int detach,
                           uint64_t token)
{
	if (gi < 0)
		return;
	/* With cells the skip needs a length and a hold: the members' rule,
	 * with a borrowed member record (sb_q_pass_dead_claim). */
	if (v->cell)
		sb_q_pass_dead_claim(v, gi, token);
	else
		sb_q_skip_abandoned(v, gate);
	sb_q_reap_members(v, gi, NULL);
	if (detach)
		sb_q_maybe_detach(v, gi);
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
	int i, r = 0, rc, due, polled = 0;

	for (;;) {
		gate = sb_q_gate(v, &blocker, &q->epoch);
		q->gate = gate;
		if (sb_q_fits(h, gate, v->size))
			return 0;
		/* acquire: pairs with the fetch_or in shut. */
		if (!owned && (atomic_load_explicit(&ctl->head, memory_order_acquire) & SB_Q_CLOSED))
			return closed_err(q);
		if (blocker >= 0) {
			/* acquire: pairs with the release CAS that raises
			 * DETACHED in sb_q_maybe_detach. */
			fw = atomic_load_explicit(&v->groups[blocker].floor, memory_order_acquire);
			if (fw & SB_Q_DETACHED) {
				raise_floor(v, blocker, h);
				continue;
			}
		}
		if (timeout_ns == 0) {
			/* A full ring is a slow path: a producer that polls
			 * still runs the checks when the group's are due
			 * (once per call, however short the liveness timeout). */
			due = polled++ ? 0 : sb_q_live_due(v, blocker, sb_now_ns(),
			                                    q->ch.bus->liveness_ns);
			if (due) {
				check_liveness(v, blocker, gate, due == 2, q->token);
				continue;
			}
			return full_err(q, SHMBUS_EAGAIN, blocker, gate);
		}
		if (q->unsignalled)
			signal_consumers(q);
		if (!w->started)
			sb_q_wait_start(w, q, timeout_ns);
		now = sb_now_ns();
		/* Blocked for the liveness timeout, in this call or, by the
		 * group's clock, over calls (short calls in a loop). */
		due = now >= w->next_live ? 2 : sb_q_live_due(v, blocker, now, q->ch.bus->liveness_ns);
		if (due) {
			w->next_live = now + (uint64_t)q->ch.bus->liveness_ns;
			check_liveness(v, blocker, gate, due == 2, q->token);
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

/* The claim's length at head h for a message of k seqs: with cells, a
 * message that would wrap is preceded by a PAD record filling the ring's
 * end (*pad); if pad and message together exceed the ring, the pad is
 * claimed alone (the message then from the ring's start; flaw 1 of
 * tests/model/vqueue.pml). */
static uint64_t claim_len(const struct sb_q_view *v, uint64_t h, uint64_t k, uint64_t *pad)
{
	uint64_t off = h & v->mask;

	*pad = 0;
	if (!v->cell || off + k <= v->size)
		return k;
	*pad = v->size - off;
	return *pad + k <= v->size ? *pad + k : *pad;
}

/* Publish the PAD record of seqs [h, h + pad): no message, its length. */
static void publish_pad(struct sb_q_view *v, uint64_t h, uint64_t pad)
{
	struct sb_q_slot *sl = sb_q_slot(v, h);

	sb_q_set_rec(sl, 0, pad);
	sb_q_publish(v, sl, (h + 1) | SB_Q_SKIP);
}

/* Claim k consecutive seqs for a message (k > 1 only with cells) into
 * *seq, passing the pad a wrap needs. */
static int claim(shmbus_queue_t *q, uint64_t k, int64_t timeout_ns, struct sb_q_wait *w,
                 uint64_t *seq)
{
	struct sb_q_view *v = &q->v;
	struct sb_q_ctl *ctl = v->ctl;
	struct sb_q_prod *rec = &v->prods[q->prod];
	/* relaxed: a stale value only makes the CAS below fail and reload. */
	uint64_t h = atomic_load_explicit(&ctl->head, memory_order_relaxed);
	uint64_t n, pad;
	int r;

again:
	for (;;) {
		if (h & SB_Q_CLOSED)
			return closed_err(q);
		n = claim_len(v, h, k, &pad);
		/* relaxed: a new group seen here is waited for before claiming
		 * (honouring the timeout); the seq_cst re-check after the claim
		 * is what guarantees it. The gate covers the claim's last seq. */
		if (!sb_q_fits(h + n - 1, q->gate, v->size) ||
		    atomic_load_explicit(&ctl->epoch, memory_order_relaxed) != q->epoch) {
			r = wait_space(q, h + n - 1, 0, timeout_ns, w);
			if (r)
				return r;
			/* relaxed: a fresh guess for the claim CAS, which decides. */
			h = atomic_load_explicit(&ctl->head, memory_order_relaxed);
			continue;
		}
		/* relaxed: the intent's length, before its first seq; the
		 * release store of the intent below publishes both (a skipper
		 * acquires the intent, then reads this). */
		if (v->cell) {
			SB_STEP("queue.claim.intent_len");
			atomic_store_explicit(&rec->intent_len, n, memory_order_relaxed);
		}
		/* release: orders our previous publication before this intent,
		 * for a scanner (sb_q_skip_abandoned) that acquires an intent
		 * past seq: seq was published first. This store's release does
		 * not publish the intent itself; the claiming CAS below does: a
		 * seq_cst RMW (so a release) after it, and a scanner that
		 * acquires head at or past our claim (the release sequence of
		 * head's RMWs) then reads this intent or a later one. */
		SB_STEP("queue.claim.intent");
		atomic_store_explicit(&rec->intent, h + 1, memory_order_release);
		/* seq_cst: the claim; a failed CAS reloads h (and sees CLOSED). */
		SB_STEP("queue.claim.head");
		if (atomic_compare_exchange_weak_explicit(&ctl->head, &h, h + n,
		                                          memory_order_seq_cst,
		                                          memory_order_relaxed))
			break;
		/* The failed CAS claimed nothing, but our intent names the seq
		 * another producer just won. Kept while we wait for space, it
		 * would forbid the skip of that seq if its winner dies before
		 * publishing, and the gate we wait for would never come: clear
		 * it before anything else. release: like the intent store, it
		 * orders our previous publication before it, for a scanner that
		 * acquires 0 here and then CASes the slot word it read earlier
		 * (pairs with the acquire load of intent in
		 * sb_q_skip_abandoned). A scanner that still reads the stale
		 * intent only sees a live record naming the seq and skips
		 * nothing now; it looks again at its next liveness check. */
		SB_STEP("queue.claim.failed_intent");
		atomic_store_explicit(&rec->intent, 0, memory_order_release);
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
		r = wait_space(q, h + n - 1, 1, timeout_ns, w);
		if (r) {
			q->owed = h + 1;
			q->owed_k = n;
			return r;
		}
	}
	if (pad) {
		publish_pad(v, h, pad);
		if (n == pad) {
			/* The pad alone: now the message, from the ring's start. */
			h += n;
			goto again;
		}
	}
	*seq = h + pad;
	return 0;
}

/* Publish the skip a failed claim left owed, once its slot is free. */
int sb_q_pay_owed(shmbus_queue_t *q, int64_t timeout_ns, struct sb_q_wait *w)
{
	uint64_t h = q->owed - 1;
	int r = wait_space(q, h + q->owed_k - 1, 1, timeout_ns, w);

	if (r)
		return r;
	/* With cells the skip passes the whole claim (pad included): a SKIP
	 * carries no bytes, so it may span the ring's end. */
	if (q->v.cell)
		sb_q_set_rec(sb_q_slot(&q->v, h), 0, q->owed_k);
	sb_q_publish(&q->v, sb_q_slot(&q->v, h), q->owed | SB_Q_SKIP);
	q->owed = 0;
	return 0;
}

static int too_big(shmbus_queue_t *q, size_t len)
{
	return sb_err(SHMBUS_ETOOBIG, "message of %zu bytes is larger than queue '%s''s max_msg of %llu bytes",
	              len, q->ch.name, (unsigned long long)q->v.max_msg);
}

/* Claim a record for a message of len bytes into *seq. */
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
	return claim(q, sb_q_cells(&q->v, len), timeout_ns, w, seq);
}

/* Write the record of seq s: the bytes (already copied), length and k. */
static struct sb_q_slot *set_record(shmbus_queue_t *q, uint64_t s, size_t len, uint64_t k)
{
	struct sb_q_slot *sl = sb_q_slot(&q->v, s);

	if (q->v.cell)
		sb_q_set_rec(sl, len, k);
	else
		sb_q_set_len(sl, len);
	return sl;
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
	q->claimed_k = sb_q_cells(&q->v, len);
	*ptr = sb_q_data(&q->v, s);
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
	/* The record keeps the cells reserved (a shorter commit leaves some
	 * unused). */
	sl = set_record(q, q->claimed - 1, len, q->claimed_k);
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
	if (q->v.cell)
		sb_q_set_rec(sb_q_slot(&q->v, q->claimed - 1), 0, q->claimed_k);
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
	SB_STEP("queue.put.copy");
	if (len)
		sb_q_copy(sb_q_data(&q->v, s), msg, len);
	sl = set_record(q, s, len, sb_q_cells(&q->v, len));
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
		SB_STEP("queue.put_many.copy");
		if (lens[i])
			sb_q_copy(sb_q_data(&q->v, s), msgs[i], lens[i]);
		sl = set_record(q, s, lens[i], sb_q_cells(&q->v, lens[i]));
		/* release: publishes the message; the waiter check is done once
		 * for the batch (signal_consumers), or before any wait. */
		SB_STEP("queue.queue_put_many.published");
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

/* Groups that receive every message claimed from now on: READY (their
 * start is final, and at or below any claim made after we saw it) and not
 * detached. */
static uint32_t receiving_groups(struct sb_q_view *v)
{
	uint32_t n = sb_q_hi(&v->ctl->groups_hi, v->max_groups), i, k = 0;

	for (i = 0; i < n; i++) {
		struct sb_q_group *g = &v->groups[i];

		/* acquire: pairs with the release store of READY in
		 * finish_group, after the start's head load: a claim of ours
		 * made after this load gets a seq at or past the start. */
		if (atomic_load_explicit(&g->state, memory_order_acquire) != SB_Q_GROUP_READY)
			continue;
		/* acquire: pairs with the CASes that set or clear DETACHED. */
		if (atomic_load_explicit(&g->floor, memory_order_acquire) & SB_Q_DETACHED)
			continue;
		k++;
	}
	return k;
}

int shmbus_queue_wait_groups(shmbus_queue_t *q, uint32_t n, int64_t timeout_ns)
{
	struct sb_q_ctl *ctl;
	struct sb_park p;
	uint32_t ev, have;
	int r, rc;

	if (!q)
		return sb_err(SHMBUS_EINVAL, "queue is NULL");
	if (n > q->v.max_groups)
		return sb_err(SHMBUS_EINVAL, "queue '%s' holds at most %u groups; %u would never come",
		              q->ch.name, q->v.max_groups, n);
	ctl = q->v.ctl;
	/* Groups come seldom: park at once, no spinning. */
	sb_park_start(&p, &q->ch, timeout_ns, SHMBUS_WAIT_PARK, 0);
	for (;;) {
		/* seq_cst: the event before the groups. join makes a group
		 * READY, then bumps prod_event (seq_cst, sb_q_wake_producers,
		 * always): if the count below misses the group, this load
		 * preceded the bump and the futex wait returns at once. */
		ev = atomic_load_explicit(&ctl->prod_event, memory_order_seq_cst);
		have = receiving_groups(&q->v);
		if (have >= n)
			return 0;
		if (sb_map_damaged(q->ch.bus->base))
			return sb_err(SHMBUS_ECORRUPT, "queue '%s': bus '%s' was truncated while mapped",
			              q->ch.name, q->ch.bus->name);
		if (sb_park_left(&p) == 0)
			return sb_err(timeout_ns == 0 ? SHMBUS_EAGAIN : SHMBUS_ETIMEDOUT,
			              "queue '%s' has %u consumer group%s; waiting for %u",
			              q->ch.name, have, have == 1 ? "" : "s", n);
		sb_park_prepare(&ctl->prod_waiters);
		/* seq_cst: the re-check after announcing the sleeper; a bump
		 * that sb_q_wake_producers made before our count was visible
		 * to it is seen here (and its group with it). */
		r = atomic_load_explicit(&ctl->prod_event, memory_order_seq_cst) != ev ? 0
		    : sb_park_sleep(&p, &ctl->prod_event, ev, q->ch.bus->liveness_ns);
		/* Looks at the segment too: truncated, or the queue deleted. */
		rc = sb_park_cancel(&p, &ctl->prod_waiters);
		if (rc)
			return rc;
		if (r == SHMBUS_EINTR)
			return sb_err(r, "interrupted while waiting for groups of queue '%s'", q->ch.name);
		if (r < 0 && r != SHMBUS_ETIMEDOUT)
			return r;
	}
}

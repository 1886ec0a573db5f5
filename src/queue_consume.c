/*
 * queue_consume.c -- the consuming side of queue channels (protocol at the
 * top of queue.c).
 *
 * A consumer handle is a member of one group. To take the group's next
 * message it announces a tentative hold on the cursor's seq, checks that
 * the cursor did not move, confirms the hold and advances the cursor by
 * CAS; the slot cannot be reused while the hold stands. Release clears the
 * hold. Copying calls skip the hold when they can: copy, then advance the
 * cursor (take_copy). Held messages of dead members are adopted by a live member of the
 * group and delivered again with SHMBUS_MSG_REDELIVERED.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "queue.h"
#include "sigbus.h"

/* Drop this member's hold and wake producers that sleep waiting for the
 * space it frees. */
static void drop_hold(shmbus_queue_t *q, struct sb_q_member *m)
{
	/* seq_cst: the store half of the store-load pair with wait_space;
	 * also orders our reads of the message before the slot's reuse. */
	SB_STEP("queue.drop_hold.held");
	atomic_store_explicit(&m->held, 0, memory_order_seq_cst);
	sb_q_release_wake(&q->v, &q->v.groups[q->group].cursor);
}

/* Release a message get_many copied out but whose hold it meant to hand
 * straight to the next take (see take_one). */
static void release_spent(shmbus_queue_t *q)
{
	if (!q->spent)
		return;
	q->spent = 0;
	q->held = 0;
	drop_hold(q, &q->v.members[q->member]);
}

/* Take over an orphaned record of our group (its owner died holding a
 * message). 0: a message is now held (redelivery); 1: none. */
static int adopt(shmbus_queue_t *q)
{
	struct sb_q_view *v = &q->v;
	struct sb_q_group *g = &v->groups[q->group];
	uint32_t n = sb_q_hi(&v->ctl->members_hi, v->max_members), i;
	/* acquire: pairs with the release increments of the hint, so the
	 * orphan records it counts are visible to the scan below. */
	int64_t hint = atomic_load_explicit(&g->orphans, memory_order_acquire);
	int found = 0;

	q->scan_orphans = 0;
	for (i = 0; i < n; i++) {
		struct sb_q_member *mr = &v->members[i], *old;
		uint64_t t = SB_Q_ORPHAN, held, s, c;

		/* acquire: pairs with the CAS that made the record an orphan. */
		if (atomic_load_explicit(&mr->token, memory_order_acquire) != SB_Q_ORPHAN ||
		    atomic_load_explicit(&mr->group, memory_order_relaxed) != (uint32_t)q->group)
			continue;
		/* acq_rel: one adopter wins the record with its hold in place, so
		 * the held seq never stops gating producers. */
		SB_STEP("queue.adopt.token");
		if (!atomic_compare_exchange_strong_explicit(&mr->token, &t, q->token,
		                                             memory_order_acq_rel,
		                                             memory_order_relaxed))
			continue;
		found = 1;
		/* relaxed: the hint counts down after the record changed hands. */
		SB_STEP("queue.adopt.orphans");
		atomic_fetch_sub_explicit(&g->orphans, 1, memory_order_relaxed);
		old = &v->members[q->member];
		/* seq_cst: a tentative hold of our old record is gone before the
		 * record is free; release: our last use precedes its reuse. */
		SB_STEP("queue.adopt.held");
		atomic_store_explicit(&old->held, 0, memory_order_seq_cst);
		SB_STEP("queue.adopt.token");
		atomic_store_explicit(&old->token, 0, memory_order_release);
		q->member = (int32_t)i;
		/* seq_cst: the final value of the dead owner's hold. */
		held = atomic_load_explicit(&mr->held, memory_order_seq_cst);
		if (held != 0 && !(held & SB_Q_TENTATIVE)) {
			s = held - 1;
			/* acquire: a cursor at or below s means the owner died
			 * between confirming its hold and the take; the message is
			 * still the group's next and is handed out normally. */
			c = atomic_load_explicit(&g->cursor, memory_order_acquire);
			/* acquire: the message is still in its slot (a confirmed hold
			 * is protected, unless the group was overtaken). */
			if (c > s &&
			    atomic_load_explicit(&sb_q_slot(v, s)->published, memory_order_acquire) == held) {
				q->held = held;
				q->held_flags = SHMBUS_MSG_REDELIVERED;
				return 0;
			}
		}
		/* A tentative hold: the dead member never took the message. */
		drop_hold(q, mr);
	}
	/* The hint said orphans but none was found (a reaper or adopter died
	 * between its record change and its count): reset it, unless it moved
	 * meanwhile. relaxed: a hint; the records are the truth. */
	SB_STEP("queue.adopt.orphans");
	if (!found && hint != 0)
		atomic_compare_exchange_strong_explicit(&g->orphans, &hint, 0, memory_order_relaxed,
		                                        memory_order_relaxed);
	return 1;
}

/* The slot for c holds a later sequence while the cursor is still c: the
 * group was overtaken (its floor passed c), or the segment is corrupt. */
static int overtaken(shmbus_queue_t *q, uint64_t c, uint64_t p)
{
	struct sb_q_group *g = &q->v.groups[q->group];
	/* acquire: pairs with the floor CAS in raise_floor. */
	uint64_t f = atomic_load_explicit(&g->floor, memory_order_acquire) >> 1;

	if (c < f) {
		/* seq_cst: as the cursor CAS in take_one. */
		SB_STEP("queue.overtaken.cursor");
		if (atomic_compare_exchange_strong_explicit(&g->cursor, &c, f, memory_order_seq_cst,
		                                            memory_order_relaxed)) {
			q->elapsed += f - c;
			return SHMBUS_ELAPPED;
		}
		return 0;
	}
	return sb_err(SHMBUS_ECORRUPT, "queue '%s': slot of seq %llu holds seq %llu while group '%s' waits for it",
	              q->ch.name, (unsigned long long)c, (unsigned long long)((p & SB_Q_SEQ) - 1),
	              q->group_name);
}

/* A copying take (get, get_many): where the message may go at once. */
struct sb_q_copy {
	void *buf;
	size_t cap;
	size_t len;                  /* out: its length, when taken */
	int taken;                   /* out: 1 if copied and taken, nothing held */
};

/* Copy message c out of its slot and take it by advancing the cursor, with
 * no hold: while the cursor is c, no producer may write the slot's next
 * lap (the gate is at most the cursor), so a copy made before a successful
 * CAS c -> c+1 is message c, whole. If the CAS fails another member took
 * it and the copy is dropped (a producer may have been rewriting the slot
 * meanwhile: see sb_q_copy). 1: taken; 0: the cursor moved (retry); -1:
 * not for this path (too big for the buffer or a bad length: the hold
 * path keeps it or reports it). Saves the hold's exchange and the
 * releasing store, two locked instructions per message. */
static int take_copy(shmbus_queue_t *q, struct sb_q_slot *sl, uint64_t c, struct sb_q_copy *cp)
{
	struct sb_q_group *g = &q->v.groups[q->group];
	uint32_t n = sb_q_len(sl);   /* read once, checked before use */
	uint64_t k = sb_q_rec_k(&q->v, sl);

	/* A bad k or length (a later lap's, the group having moved on, or a
	 * corrupt segment) goes the hold path, which re-reads it protected. */
	if (!sb_q_rec_ok(&q->v, c, k, n) || n > cp->cap)
		return -1;
	if (n)
		sb_q_copy(cp->buf, sb_q_data(&q->v, c), n);
	/* seq_cst: the take of the whole record (its k seqs); orders our
	 * reads of its cells before any producer that sees the cursor past
	 * c rewrites them (sb_q_gate reads cursors), and is the store half
	 * of sb_q_release_wake's pair. */
	SB_STEP("queue.take_copy.cursor");
	if (!atomic_compare_exchange_strong_explicit(&g->cursor, &c, c + k, memory_order_seq_cst,
	                                             memory_order_relaxed))
		return 0;
	sb_q_release_wake(&q->v, &g->cursor);
	cp->len = n;
	cp->taken = 1;
	return 1;
}

/* One attempt to take the group's next message. 0: taken (q->held set,
 * or with cp, copied out and taken with nothing held: cp->taken);
 * 1: nothing ready yet, *wait_c is the seq to wait for; or an error.
 * exact: learn of end of stream from head itself (a try, or a waiter about
 * to park); otherwise from ctl->closed, the copy on a line producers do
 * not write, so that a spinning consumer does not take head's line away
 * from the producer it waits for at every round. */
static int take_one(shmbus_queue_t *q, uint64_t *wait_c, int exact, struct sb_q_copy *cp)
{
	struct sb_q_view *v = &q->v;
	struct sb_q_group *g = &v->groups[q->group];
	struct sb_q_member *m;
	uint64_t c, p, h, k;
	int tentative = 0, r;

	for (;;) {
		/* relaxed: a hint; adoption itself is a CAS. */
		if (atomic_load_explicit(&g->orphans, memory_order_relaxed) > 0 || q->scan_orphans) {
			release_spent(q);
			if (adopt(q) == 0)
				return 0;
		}
		m = &v->members[q->member];
		/* acquire: pairs with the cursor CASes of other members. */
		c = atomic_load_explicit(&g->cursor, memory_order_acquire);
		/* acquire: pairs with the publication in sb_q_publish. */
		p = atomic_load_explicit(&sb_q_slot(v, c)->published, memory_order_acquire);
		/* Not while a tentative hold of ours is up (a retry after the
		 * cursor moved): the hold path replaces or drops it. */
		if (p == c + 1 && cp && !q->spent && !tentative) {
			r = take_copy(q, sb_q_slot(v, c), c, cp);
			if (r == 1)
				return 0;
			if (r == 0)
				continue;
		}
		if (p == c + 1) {
			/* seq_cst: the hold is announced before the cursor is
			 * re-read; pairs with sb_q_gate reading cursors then holds. */
			SB_STEP("queue.take_one.held");
			atomic_exchange_explicit(&m->held, (c + 1) | SB_Q_TENTATIVE,
			                         memory_order_seq_cst);
			tentative = 1;
			if (q->spent) {
				/* Hand-over (get_many): the exchange replaced the hold
				 * of the message copied out, a lower seq, so the gate
				 * only rose; being seq_cst it is also the release store
				 * of drop_hold (our reads of that message come first,
				 * and it is the store half of sb_q_release_wake's pair). */
				q->spent = 0;
				q->held = 0;
				sb_q_release_wake(v, &g->cursor);
			}
			/* seq_cst: re-check after the tentative hold, the load
			 * half of the hold/gate pair with sb_q_gate. */
			if (atomic_load_explicit(&g->cursor, memory_order_seq_cst) != c)
				continue;
			/* The record's length in seqs, protected now (the gate
			 * is at most c, so none of its cells is rewritten); its
			 * bytes are checked by acquire_msg. */
			k = sb_q_rec_k(v, sb_q_slot(v, c));
			if (k < 1 || (c & v->mask) + k > v->size) {
				drop_hold(q, m);
				return sb_err(SHMBUS_ECORRUPT, "queue '%s': record at seq %llu claims %llu cells",
				              q->ch.name, (unsigned long long)c, (unsigned long long)k);
			}
			/* relaxed: confirms a hold that is already protected. */
			SB_STEP("queue.take_one.held");
			atomic_store_explicit(&m->held, c + 1, memory_order_relaxed);
			/* seq_cst: the take of the record's k seqs; orders the
			 * hold before it, and keeps every cursor change in the
			 * order sb_q_release_wake's reasoning uses. */
			SB_STEP("queue.take_one.cursor");
			if (!atomic_compare_exchange_strong_explicit(&g->cursor, &c, c + k,
			                                             memory_order_seq_cst,
			                                             memory_order_relaxed))
				continue;
			q->held = c + 1;
			q->held_flags = 0;
			return 0;
		}
		if (p == ((c + 1) | SB_Q_SKIP)) {
			/* A PAD's or skip's length (1 without cells), stored
			 * before its word; stable while the cursor is c. */
			k = sb_q_rec_k(v, sb_q_slot(v, c));
			if (k < 1 || k > v->size) {
				/* acquire: moved means a later lap's meta. */
				if (atomic_load_explicit(&g->cursor, memory_order_acquire) != c)
					continue;
				return sb_err(SHMBUS_ECORRUPT, "queue '%s': skip at seq %llu claims %llu seqs",
				              q->ch.name, (unsigned long long)c, (unsigned long long)k);
			}
			/* seq_cst: passing a skipped record releases it (the
			 * store half of the pair completed by sb_q_release_wake). */
			SB_STEP("queue.take_one.cursor");
			if (atomic_compare_exchange_strong_explicit(&g->cursor, &c, c + k,
			                                            memory_order_seq_cst,
			                                            memory_order_relaxed))
				sb_q_release_wake(v, &g->cursor);
			continue;
		}
		if (tentative) {
			drop_hold(q, m);
			tentative = 0;
		}
		/* Nothing to hand the hold to now: release it before any
		 * return or wait. */
		release_spent(q);
		if ((p & SB_Q_SEQ) > c + 1) {
			/* acquire: pairs with the cursor CAS of the take that
			 * moved it; moved means retry from the new cursor. */
			if (atomic_load_explicit(&g->cursor, memory_order_acquire) != c)
				continue;
			r = overtaken(q, c, p);
			if (r == 0)
				continue;
			if (r == SHMBUS_ELAPPED)
				sb_q_wake_producers(v);
			return r;
		}
		/* acquire: pairs with the fetch_or in shut (head), or with its
		 * store of the copy (closed). */
		h = atomic_load_explicit(exact ? &v->ctl->head : &v->ctl->closed,
		                         memory_order_acquire);
		if ((h & SB_Q_CLOSED) && c >= (h & SB_Q_SEQ)) {
			uint32_t orph = 0;

			/* Before the end: a message held by a dead member of the
			 * group is delivered again (a member that dies after this
			 * has its message redelivered on a later call). */
			sb_q_reap_members(v, q->group, &orph);
			if (orph) {
				q->scan_orphans = 1;
				continue;
			}
			return sb_err(SHMBUS_ECLOSED, "queue '%s' is shut and group '%s' has taken every message",
			              q->ch.name, q->group_name);
		}
		if (exact && c > (h & SB_Q_SEQ))
			return sb_err(SHMBUS_ECORRUPT, "queue '%s': group '%s' cursor %llu is past the head %llu",
			              q->ch.name, q->group_name, (unsigned long long)c,
			              (unsigned long long)(h & SB_Q_SEQ));
		*wait_c = c;
		return 1;
	}
}

/* 1 while nothing a take could use has changed since it saw seq c
 * missing. seq_cst loads: the re-check half of the store-load pairs.
 * exact: end of stream from head (before parking), else from the copy
 * (spinning; see take_one). */
static int still_waiting(shmbus_queue_t *q, uint64_t c, int exact)
{
	struct sb_q_view *v = &q->v;
	struct sb_q_group *g = &v->groups[q->group];
	uint64_t h;

	/* seq_cst: the re-check after announcing a sleeper; each load pairs
	 * with the seq_cst store that would have made it false (a take, a
	 * publication, an orphan, a shut) before the waker reads the count. */
	if (atomic_load_explicit(&g->cursor, memory_order_seq_cst) != c ||
	    (atomic_load_explicit(&sb_q_slot(v, c)->published, memory_order_seq_cst) & SB_Q_SEQ) >= c + 1 ||
	    atomic_load_explicit(&g->orphans, memory_order_seq_cst) > 0 || q->scan_orphans)
		return 0;
	h = atomic_load_explicit(exact ? &v->ctl->head : &v->ctl->closed, memory_order_seq_cst);
	return !((h & SB_Q_CLOSED) && c >= (h & SB_Q_SEQ));
}

/* The liveness checks of a consumer blocked on seq c: a dead producer may
 * hold seq c; dead members of our group may hold messages. */
static void check_liveness(shmbus_queue_t *q, uint64_t c)
{
	if (q->v.cell)
		sb_q_skip_dead_claim(&q->v, &q->v.members[q->member], &q->v.groups[q->group], c);
	else
		sb_q_skip_abandoned(&q->v, c);
	sb_q_reap_members(&q->v, q->group, NULL);
	q->scan_orphans = 1;
}

/* A poll (timeout 0) found seq c missing. If c is claimed and a later seq
 * is claimed too -- its producer may have died between reserve and commit
 * -- run the checks when the group's are due. 1 if they ran. A poll on an
 * empty ring costs nothing more (head was just read by take_one). */
static int poll_liveness(shmbus_queue_t *q, uint64_t c)
{
	/* relaxed: a hint; sb_q_skip_abandoned re-reads head (acquire). */
	uint64_t h = atomic_load_explicit(&q->v.ctl->head, memory_order_relaxed) & SB_Q_SEQ;

	if (c + 1 >= h || !sb_q_live_due(&q->v, q->group, sb_now_ns(), q->ch.bus->liveness_ns))
		return 0;
	check_liveness(q, c);
	return 1;
}

static int wait_data(shmbus_queue_t *q, uint64_t c, int64_t timeout_ns, struct sb_q_wait *w)
{
	struct sb_q_ctl *ctl = q->v.ctl;
	uint64_t now;
	uint32_t ev;
	int i, r = 0, rc;

	if (!w->started)
		sb_q_wait_start(w, q, timeout_ns);
	now = sb_now_ns();
	/* Blocked for the liveness timeout, in this call or, by the group's
	 * clock, over the calls of its members (short calls in a loop). */
	if (now >= w->next_live ||
	    sb_q_live_due(&q->v, q->group, now, q->ch.bus->liveness_ns)) {
		w->next_live = now + (uint64_t)q->ch.bus->liveness_ns;
		w->exact = 1;
		check_liveness(q, c);
		return 0;
	}
	if (sb_park_left_at(&w->pk, now) == 0)
		r = SHMBUS_ETIMEDOUT;
	/* Spin (a bounded number of rounds per call, so that the liveness
	 * check above keeps running under SHMBUS_WAIT_SPIN). */
	for (i = 0; !r && !w->parking && i < 64 && still_waiting(q, c, 0); i++) {
		r = sb_park_spin(&w->pk);
		if (r == 2)             /* yielded: look at the ring again */
			return 0;
		if (r == 1)
			r = 0;
		else if (r == 0)
			w->parking = 1;
	}
	if (r == SHMBUS_ETIMEDOUT)
		return sb_err(SHMBUS_ETIMEDOUT, "no message for group '%s' of queue '%s' (waiting for seq %llu)",
		              q->group_name, q->ch.name, (unsigned long long)c);
	if (r < 0 || !w->parking)
		return r;
	/* seq_cst: announce the sleeper, read the event, then ask for seq c
	 * (sb_q_want) before re-checking; pairs with the store-load pair in
	 * sb_q_publish / sb_q_signal_consumers. */
	sb_park_prepare(&ctl->cons_waiters);
	ev = atomic_load_explicit(&ctl->cons_event, memory_order_seq_cst);
	sb_q_want(&ctl->cons_need, c);
	w->exact = 1;
	if (still_waiting(q, c, 1))
		r = sb_park_sleep(&w->pk, &ctl->cons_event, ev, sb_q_live_ns(w, now));
	/* Truncated, overwritten or deleted while we waited. */
	rc = sb_park_cancel(&w->pk, &ctl->cons_waiters);
	if (rc)
		return rc;
	if (r == SHMBUS_EINTR)
		return sb_err(r, "interrupted while waiting on queue '%s'", q->ch.name);
	if (r < 0 && r != SHMBUS_ETIMEDOUT)
		return r;
	return 0;
}

static int elapsed_err(shmbus_queue_t *q)
{
	uint64_t n = q->elapsed;

	q->elapsed = 0;
	return sb_err(SHMBUS_ELAPPED,
	              "group '%s' of queue '%s' was overtaken while it had no live member: %llu messages skipped",
	              q->group_name, q->ch.name, (unsigned long long)n);
}

/* Get a message into q->held (waiting up to timeout_ns); *slp its slot,
 * *len its checked length. With defer_elapsed, a skip found now is left
 * for the next call to report (EAGAIN now). With cp (a copying call), the
 * message may instead be copied out and taken at once: cp->taken, nothing
 * held. */
static int acquire_msg(shmbus_queue_t *q, int64_t timeout_ns, int defer_elapsed,
                       struct sb_q_copy *cp, struct sb_q_slot **slp, size_t *len)
{
	struct sb_q_wait w = {0};
	struct sb_q_slot *sl;
	uint64_t c = 0;
	int r, polled = 0;

	if (q->group < 0)
		return sb_err(SHMBUS_ESTATE, "queue '%s': join a group before consuming", q->ch.name);
	if (q->held && !q->kept && !q->spent)
		return sb_err(SHMBUS_ESTATE, "queue '%s': release seq %llu before taking another",
		              q->ch.name, (unsigned long long)(q->held - 1));
	if (!q->held || q->spent) {
		if (q->elapsed) {
			release_spent(q);
			return elapsed_err(q);
		}
		for (;;) {
			/* Exact once the wait has parked or checked liveness:
			 * the mark of a shutter that died before copying it to
			 * ctl->closed is seen then. */
			r = take_one(q, &c, timeout_ns == 0 || w.exact, cp);
			/* A copy from pages lost to a truncation is no message. */
			if (r == 0 && cp && cp->taken)
				return sb_map_damaged(q->ch.bus->base) ? sb_chan_damage_err(&q->ch) : 0;
			if (r == 0)
				break;
			if (r == SHMBUS_ELAPPED)
				return defer_elapsed ? SHMBUS_EAGAIN : elapsed_err(q);
			if (r < 0)
				return r;
			if (timeout_ns == 0 && !polled && poll_liveness(q, c)) {
				polled = 1;
				continue;
			}
			if (timeout_ns == 0)
				return sb_err(SHMBUS_EAGAIN, "no message for group '%s' of queue '%s'",
				              q->group_name, q->ch.name);
			r = wait_data(q, c, timeout_ns, &w);
			if (r)
				return r;
		}
	}
	q->kept = 0;
	sl = sb_q_slot(&q->v, q->held - 1);
	if (sb_map_damaged(q->ch.bus->base)) {
		shmbus_queue_release(q);
		return sb_chan_damage_err(&q->ch);
	}
	{
		/* Read once each: checked, then used. */
		uint32_t n = sb_q_len(sl);
		uint64_t k = sb_q_rec_k(&q->v, sl), seq = q->held - 1;

		if (!sb_q_rec_ok(&q->v, seq, k, n)) {
			shmbus_queue_release(q);
			return sb_err(SHMBUS_ECORRUPT, "queue '%s': message %llu claims %u bytes in %llu seqs, max_msg is %llu",
			              q->ch.name, (unsigned long long)seq, n, (unsigned long long)k,
			              (unsigned long long)q->v.max_msg);
		}
		*len = n;
	}
	*slp = sl;
	return 0;
}

/* A bus that lost pages to a truncation hands nothing out: an entry
 * check, and one after a take whose copy may have read zero pages. One
 * relaxed load of a process-wide flag while no bus is damaged. */
static int damaged(const shmbus_queue_t *q)
{
	return sb_map_damaged(q->ch.bus->base) ? sb_chan_damage_err(&q->ch) : 0;
}

int shmbus_queue_peek(shmbus_queue_t *q, shmbus_msg_t *msg, int64_t timeout_ns)
{
	struct sb_q_slot *sl;
	size_t len;
	int r;

	if (!q || !msg)
		return sb_err(SHMBUS_EINVAL, "shmbus_queue_peek: NULL argument");
	r = damaged(q);
	if (r)
		return r;
	r = acquire_msg(q, timeout_ns, 0, NULL, &sl, &len);
	if (r)
		return r;
	(void)sl;
	msg->data = sb_q_data(&q->v, q->held - 1);
	msg->len = len;
	msg->seq = q->held - 1;
	msg->flags = q->held_flags;
	msg->reserved_ = 0;
	return 0;
}

int shmbus_queue_release(shmbus_queue_t *q)
{
	if (!q)
		return sb_err(SHMBUS_EINVAL, "queue is NULL");
	if (!q->held)
		return sb_err(SHMBUS_ESTATE, "queue '%s': release without a message", q->ch.name);
	/* The seq_cst store of drop_hold also orders our reads of the data
	 * before the slot can be reused (producers read held seq_cst). */
	drop_hold(q, &q->v.members[q->member]);
	q->held = 0;
	q->kept = 0;
	return 0;
}

/* Copy the held message out and release it; with spend, keep the hold
 * for the next take to hand over (get_many, more to come). */
static int copy_out(shmbus_queue_t *q, struct sb_q_slot *sl, size_t mlen, void *buf, size_t cap,
                    size_t *len, uint32_t *flags, int spend)
{
	if (len)
		*len = mlen;
	if (mlen > cap) {
		q->kept = 1;
		return sb_err(SHMBUS_ETOOBIG,
		              "queue '%s': message of %zu bytes does not fit the %zu-byte buffer; it stays for the next call",
		              q->ch.name, mlen, cap);
	}
	(void)sl;
	if (mlen)
		memcpy(buf, sb_q_data(&q->v, q->held - 1), mlen);
	if (flags)
		*flags = q->held_flags;
	if (spend) {
		q->spent = 1;
		return 0;
	}
	return shmbus_queue_release(q);
}

/* The common case of a copying take, ahead of acquire_msg: this member
 * holds nothing and has nothing to report, no orphan waits in its group,
 * and the group's next message is published. Then acquire_msg would do
 * exactly this (take_one's first round, take_copy); skipping its set-up
 * saves a third of a get's instructions. 1: taken (cp->len set); 0: take
 * the long way, which decides everything this leaves out. */
static inline int take_fast(shmbus_queue_t *q, struct sb_q_copy *cp)
{
	struct sb_q_group *g;
	uint64_t c;

	if (q->group < 0 || q->held || q->elapsed || q->scan_orphans)
		return 0;
	g = &q->v.groups[q->group];
	/* relaxed: a hint, as in take_one; adoption itself is a CAS. */
	if (atomic_load_explicit(&g->orphans, memory_order_relaxed) > 0)
		return 0;
	/* acquire: pairs with the cursor CASes of other members. */
	c = atomic_load_explicit(&g->cursor, memory_order_acquire);
	/* acquire: pairs with the publication in sb_q_publish. */
	if (atomic_load_explicit(&sb_q_slot(&q->v, c)->published, memory_order_acquire) != c + 1)
		return 0;
	return take_copy(q, sb_q_slot(&q->v, c), c, cp) == 1;
}

int shmbus_queue_get(shmbus_queue_t *q, void *buf, size_t cap, size_t *len, uint32_t *flags,
                     int64_t timeout_ns)
{
	struct sb_q_copy cp;
	struct sb_q_slot *sl;
	size_t mlen;
	int r;

	if (!q || (!buf && cap))
		return sb_err(SHMBUS_EINVAL, "shmbus_queue_get: NULL argument");
	r = damaged(q);
	if (r)
		return r;
	cp.buf = buf;
	cp.cap = cap;
	cp.taken = 0;
	if (take_fast(q, &cp)) {
		r = damaged(q);
		if (r)
			return r;
		if (len)
			*len = cp.len;
		if (flags)
			*flags = 0;
		return 0;
	}
	r = acquire_msg(q, timeout_ns, 0, &cp, &sl, &mlen);
	if (!r)
		r = damaged(q);
	if (r)
		return r;
	if (cp.taken) {
		if (len)
			*len = cp.len;
		if (flags)
			*flags = 0;
		return 0;
	}
	return copy_out(q, sl, mlen, buf, cap, len, flags, 0);
}

int shmbus_queue_get_many(shmbus_queue_t *q, void *const *bufs, const size_t *caps,
                          size_t *lens, uint32_t *flags, size_t n, int64_t timeout_ns,
                          size_t *got)
{
	struct sb_q_copy cp;
	struct sb_q_slot *sl;
	size_t i, mlen;
	int r = 0;

	if (got)
		*got = 0;
	if (!q || !got || (n && (!bufs || !caps || !lens)))
		return sb_err(SHMBUS_EINVAL, "shmbus_queue_get_many: NULL argument");
	r = damaged(q);
	if (r)
		return r;
	for (i = 0; i < n; i++) {
		/* Blocks only for the first; an ELAPPED after the first waits for
		 * the next call, as does a message too big for its buffer. */
		if (i > 0 && q->elapsed)
			break;
		cp.buf = bufs[i];
		cp.cap = caps[i];
		cp.taken = 0;
		if (!take_fast(q, &cp)) {
			r = acquire_msg(q, i == 0 ? timeout_ns : 0, i > 0, &cp, &sl, &mlen);
			if (r)
				break;
		}
		if (cp.taken) {
			lens[i] = cp.len;
			if (flags)
				flags[i] = 0;
			*got = i + 1;
			continue;
		}
		/* Every message but the last keeps its hold, which the next
		 * take replaces in one exchange instead of a release store and
		 * an exchange; whatever ends the batch releases it below. */
		r = copy_out(q, sl, mlen, bufs[i], caps[i], &lens[i], flags ? &flags[i] : NULL,
		             i + 1 < n);
		if (r)
			break;
		*got = i + 1;
	}
	release_spent(q);
	return *got > 0 ? 0 : r;
}

/* ---- readiness, for wait sets (waitset.c) --------------------------- */

int sb_queue_group(shmbus_queue_t *q, uint32_t *groups)
{
	*groups = q->v.max_groups;
	return q->group;
}

int sb_queue_ready(shmbus_queue_t *q, int cond, int32_t gi, uint64_t *scratch, int live)
{
	struct sb_q_view *v = &q->v;
	struct sb_q_group *g;
	int32_t blocker;
	uint64_t h, c, p, epoch;

	/* Every load seq_cst: the re-check half of the store-load pair with a
	 * waker's seq_cst change, then its load of the bell's `sets`. */
	h = atomic_load_explicit(&v->ctl->head, memory_order_seq_cst);
	/* Full at a full look (live): the gating group may hold a dead
	 * member's message; the producer's own call with timeout 0 runs the
	 * liveness checks when due (at most one needless report a slice). */
	if (cond == SHMBUS_ON_SPACE)
		return live || (h & SB_Q_CLOSED) ||
		       sb_q_fits(h & SB_Q_SEQ, sb_q_gate_with(v, scratch, &blocker, &epoch),
		                 v->size);
	if (gi < 0 || (uint32_t)gi >= v->max_groups)
		return 1;              /* not a consumer: the call fails at once */
	g = &v->groups[gi];
	c = atomic_load_explicit(&g->cursor, memory_order_seq_cst);
	if (cond == SHMBUS_ON_MESSAGE) {
		/* The slot of c is picked with the local mask: in bounds. */
		p = atomic_load_explicit(&sb_q_slot(v, c)->published, memory_order_seq_cst);
		if ((p & SB_Q_SEQ) >= c + 1 ||
		    atomic_load_explicit(&g->orphans, memory_order_seq_cst) > 0)
			return 1;
		/* Seq c claimed and not published: its producer may have died
		 * (then no ring comes). Once a slice, let the consumer's own
		 * call look: it skips a dead producer's seq (sb_q_live_due). */
		if (live && (h & SB_Q_SEQ) > c)
			return 1;
		/* The head read before the cursor may predate a shut. */
		h = atomic_load_explicit(&v->ctl->head, memory_order_seq_cst);
	}
	return (h & SB_Q_CLOSED) && c >= (h & SB_Q_SEQ);
}

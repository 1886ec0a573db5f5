/*
 * queue_live.c -- crash recovery of queue channels (protocol at the top of
 * queue.c): what a peer does when the process it waits on may be dead.
 *
 * Nothing here runs while data flows. A consumer blocked on seq s skips it
 * if no live producer record names it (sb_q_skip_abandoned) and turns the
 * records of its group's dead members into orphans, whose held message a
 * live member adopts and gets again, flagged (sb_q_reap_members). A
 * producer blocked by a group does the same for that group and, if the
 * group has no live member left and is not DURABLE, detaches it
 * (sb_q_maybe_detach): the group keeps its cursor but stops gating. A
 * member that joins a detached group reattaches it (sb_q_reactivate) and
 * learns how much was lost. These checks run once a call has been blocked
 * for the liveness timeout, and also whenever the group's own clock
 * (live_ns, sb_q_live_due) says nobody ran them for that long: callers that
 * poll with timeout 0, or wait in calls shorter than the liveness timeout,
 * get them too, at most once per liveness timeout per group.
 * Liveness is a token checked through the kernel lock its owner's bus
 * handle holds (peers.c): a reused pid is never taken for the dead owner,
 * and an owner in another pid namespace is seen alive.
 */
#include <string.h>

#include "queue.h"

int sb_q_live_due(struct sb_q_view *v, int32_t gi, uint64_t now, int64_t liveness_ns)
{
	_Atomic uint64_t *t;
	uint64_t last;

	if (gi < 0 || (uint32_t)gi >= v->max_groups)
		return 0;
	t = &v->groups[gi].live_ns;
	/* relaxed: a rate limit only. The checks are right at any time (each
	 * repair is a CAS that re-checks its condition), so a stale or torn
	 * view of the time costs at most an early or a second round. A time
	 * ahead of ours (a process in another time namespace) counts as due. */
	last = atomic_load_explicit(t, memory_order_relaxed);
	if (now >= last && now - last < (uint64_t)liveness_ns)
		return 0;
	/* relaxed: one caller of those that found it due owns the round. */
	SB_STEP("queue.live_due.live_ns");
	if (!atomic_compare_exchange_strong_explicit(t, &last, now, memory_order_relaxed,
	                                             memory_order_relaxed))
		return 0;
	/* The previous round ran less than two liveness timeouts ago: the
	 * group has kept someone waiting for at least one. */
	return now >= last && now - last < 2 * (uint64_t)liveness_ns ? 2 : 1;
}

/* Skip seq (publish SKIP) if it is claimed, unpublished, its slot is free
 * and no record of a live process names it (intent == seq+1). The rule
 * asks for no dead record naming it: the dead owner's record may be gone
 * already, freed by a reaper that could not skip yet (the slot was not
 * free) or by a close that left its skip owed, and a rule that needed it
 * would then never pass the seq. Safe because a live handle's record
 * names its claimed seq from before its claiming CAS (we read head first,
 * acquire, so we see that intent) until after its publication, and a
 * failed claim clears the intent at once, so it names nothing it does not
 * own: no live record naming seq means its claimer is dead or closed and
 * will never write it. A stale read of a live record (an intent since
 * cleared) only makes us skip nothing this time. tests/model/queue.pml
 * checks both halves: nothing a live producer claimed is ever skipped, and
 * no dead claim is left unskipped. */
int sb_q_skip_abandoned(struct sb_q_view *v, uint64_t seq)
{
	struct sb_q_slot *s = sb_q_slot(v, seq);
	uint64_t h, p;
	uint32_t n, i;

	/* With cells a skip needs a length and a hold: only a member of the
	 * blocked group passes a dead claim (sb_q_skip_dead_claim). */
	if (v->cell)
		return 0;

	/* acquire: pairs with the producers' claiming CAS (a release RMW after
	 * their intent store): every intent of a claim below h is visible. */
	h = atomic_load_explicit(&v->ctl->head, memory_order_acquire) & SB_Q_SEQ;
	if (seq >= h)
		return 0;
	/* acquire: the value our CAS below must still find. */
	p = atomic_load_explicit(&s->published, memory_order_acquire);
	if ((p & SB_Q_SEQ) >= seq + 1)
		return 0;
	n = sb_q_hi(&v->ctl->producers_hi, v->max_producers);
	for (i = 0; i < n; i++) {
		/* acquire: pairs with the release that stored this token (the
		 * record's claiming CAS): the record is set up. */
		uint64_t t = atomic_load_explicit(&v->prods[i].token, memory_order_acquire);

		/* acquire: pairs with the release store of intent in claim():
		 * a live owner that moved on to a later intent published seq
		 * first. */
		if (t == 0 || atomic_load_explicit(&v->prods[i].intent, memory_order_acquire) != seq + 1)
			continue;
		if (sb_token_alive(v->bus, t))
			return 0;
	}
	/* The slot may still hold an older message some group needs (the
	 * owner claimed with a stale gate, then found a new group): a skip
	 * waits until the slot is free, like a message would. */
	{
		int32_t blocker;
		uint64_t ep;

		if (!sb_q_fits(seq, sb_q_gate(v, &blocker, &ep), v->size))
			return 0;
	}
	/* release: a SKIP carries no data. Fails if the owner published after
	 * all (it was then alive, and its publication wins). */
	SB_STEP("queue.q_skip_abandoned.published");
	if (!atomic_compare_exchange_strong_explicit(&s->published, &p,
	                                             (seq + 1) | SB_Q_SKIP,
	                                             memory_order_release,
	                                             memory_order_relaxed))
		return 0;
	sb_q_wake_consumers(v);
	return 1;
}

/* The skip rule with cells (tests/model/vqueue.pml, the spec): seq c, a
 * record's first seq where group g waits, is passed only if a DEAD
 * producer's intent range [a, a + b) covers it and no LIVE one does, by
 * the smallest covering dead range (two dead intents may name c with
 * different lengths: one won the claim, the other lost its CAS and died
 * before clearing its intent; the smallest never passes a live claim),
 * clipped to head. The fixes the model found: the word is read only
 * after the liveness scan (an owner that published and died meanwhile
 * keeps its record), and the length is stored under a hold on c taken
 * before a re-read of the cursor (a second skipper that passed c first
 * cannot let the ring turn under our late store). Unlike
 * sb_q_skip_abandoned it needs the dead record (for the length): a dead
 * producer's record is kept until every group passed its claim
 * (sb_q_reap_producers). */
int sb_q_skip_dead_claim(struct sb_q_view *v, struct sb_q_member *m, struct sb_q_group *g,
                         uint64_t c)
{
	struct sb_q_slot *s = sb_q_slot(v, c);
	uint64_t h, p, L = UINT64_MAX, gate, ep;
	uint32_t n, i;
	int32_t blocker;
	int done;

	/* acquire: pairs with the producers' claiming CAS (a release RMW
	 * after their intent stores): every intent of a claim below h is
	 * visible. */
	h = atomic_load_explicit(&v->ctl->head, memory_order_acquire) & SB_Q_SEQ;
	if (c >= h)
		return 0;
	n = sb_q_hi(&v->ctl->producers_hi, v->max_producers);
	for (i = 0; i < n; i++) {
		struct sb_q_prod *pr = &v->prods[i];
		/* acquire: pairs with the release that stored this token. */
		uint64_t t = atomic_load_explicit(&pr->token, memory_order_acquire), a, b;

		if (t == 0)
			continue;
		/* acquire: pairs with the release store of intent in claim(),
		 * which follows its length's store: a, then b. */
		a = atomic_load_explicit(&pr->intent, memory_order_acquire);
		/* relaxed: ordered after the intent's acquire. */
		b = atomic_load_explicit(&pr->intent_len, memory_order_relaxed);
		/* Checked: a length outside 1..slots names no claim. */
		if (a == 0 || b == 0 || b > v->size || c < a - 1 || c - (a - 1) >= b)
			continue;
		if (sb_token_alive(v->bus, t))
			return 0;
		if (a - 1 + b - c < L)
			L = a - 1 + b - c;
	}
	if (L == UINT64_MAX)
		return 0;
	/* acquire: the word, only now (flaw 3): an owner found dead that
	 * published first is seen; unpublished now, it stays so (only
	 * skippers write it) -- the CAS below still checks. */
	p = atomic_load_explicit(&s->published, memory_order_acquire);
	if ((p & SB_Q_SEQ) >= c + 1)
		return 0;
	if (L > h - c)
		L = h - c;
	/* The cell may still hold an older message some group needs (the
	 * owner claimed with a stale gate, then found a new group). */
	gate = sb_q_gate(v, &blocker, &ep);
	if (!sb_q_fits(c, gate, v->size))
		return 0;
	/* seq_cst: a hold on c, before the cursor's re-read (flaw 4): while
	 * it stands the gate is at most c, so c's cell is not rewritten
	 * under the length store below; tentative, so that a reaper of ours
	 * drops it (pairs with sb_q_gate reading cursors then holds). */
	SB_STEP("queue.skip_dead_claim.held");
	atomic_store_explicit(&m->held, (c + 1) | SB_Q_TENTATIVE, memory_order_seq_cst);
	done = 0;
	/* seq_cst: the re-read after the hold; moved means someone passed c. */
	if (atomic_load_explicit(&g->cursor, memory_order_seq_cst) == c) {
		sb_q_set_rec(s, 0, L);
		/* release: publishes the length (pairs with the consumers'
		 * acquire of the word, then their read of the length). Fails if
		 * another skipper won, or the owner published after all. */
		SB_STEP("queue.skip_dead_claim.published");
		done = atomic_compare_exchange_strong_explicit(&s->published, &p,
		                                               (c + 1) | SB_Q_SKIP,
		                                               memory_order_release,
		                                               memory_order_relaxed);
	}
	/* seq_cst: the hold is dropped after the word is final. */
	SB_STEP("queue.skip_dead_claim.unhold");
	atomic_store_explicit(&m->held, 0, memory_order_seq_cst);
	sb_q_release_wake(v, &g->cursor);
	if (done)
		sb_q_wake_consumers(v);
	return done;
}

/* A dead claim at the cursor of a group whose members are not there to
 * pass it (a DURABLE group with no live member gates producers and keeps
 * the dead producer's record until someone does): the blocked producer,
 * or gc, runs the members' rule (sb_q_skip_dead_claim: the smallest
 * covering dead range, never while a live intent covers it, the word read
 * after the scan, the length stored under a hold) with a member record of
 * the group borrowed for the call, so that its hold gates producers as a
 * member's does (sb_q_gate scans member records, not producers'). Under
 * the bus mutex: no join, detach or reactivation runs meanwhile, so the
 * group stays READY, its floor stays below its cursor (a detached group's
 * floor would overrule our hold in the gate: we leave those to
 * raise_floor), and the borrowed record is never counted as a live member
 * by sb_q_maybe_detach. Members of the group may still skip or take
 * concurrently: the rule settles that by the cursor re-read under the hold
 * and the CAS on the word. If we die with the record, it is reaped like
 * a dead member's (its hold is tentative, so it is dropped). The SKIP is
 * what the group's next member passes at once; the cursor stays where the
 * group left it (the group has not consumed anything). */
int sb_q_pass_dead_claim(struct sb_q_view *v, int32_t gi, uint64_t token)
{
	struct sb_q_group *g;
	struct sb_q_slot *s;
	uint64_t c, fw, h, p, me = token;
	int mi, done = 0;

	if (!v->cell || gi < 0 || (uint32_t)gi >= v->max_groups || token == 0)
		return 0;
	g = &v->groups[gi];
	/* Cheap filters before the mutex (a group blocked by a slow member,
	 * at a published record, is the common case); sb_q_skip_dead_claim
	 * checks both again. seq_cst: the cursor as a member reads it. */
	c = atomic_load_explicit(&g->cursor, memory_order_seq_cst);
	/* acquire: pairs with the claiming CAS. */
	h = atomic_load_explicit(&v->ctl->head, memory_order_acquire) & SB_Q_SEQ;
	s = sb_q_slot(v, c);
	/* acquire: a published record at c is the members' to take. */
	p = atomic_load_explicit(&s->published, memory_order_acquire);
	if (c >= h || (p & SB_Q_SEQ) >= c + 1)
		return 0;
	if (sb_bus_lock(v->bus) != 0)
		return 0;
	/* relaxed (state, floor): groups are created, freed, detached and
	 * reactivated under the mutex we hold. */
	if (atomic_load_explicit(&g->state, memory_order_relaxed) != SB_Q_GROUP_READY)
		goto out;
	fw = atomic_load_explicit(&g->floor, memory_order_relaxed);
	/* seq_cst: the cursor again, under the mutex; moved, a member is
	 * there to pass what lies at it. */
	if (atomic_load_explicit(&g->cursor, memory_order_seq_cst) != c ||
	    (fw & SB_Q_DETACHED) || (fw >> 1) > c)
		goto out;
	mi = sb_q_add_member(v, (uint32_t)gi, token);
	if (mi < 0)
		goto out;
	done = sb_q_skip_dead_claim(v, &v->members[mi], g, c);
	/* release: the borrowed record is free again; sb_q_skip_dead_claim
	 * dropped its hold (seq_cst) before returning. Pairs with the
	 * scanners' acquire loads of the token. */
	SB_STEP("queue.pass_dead_claim.token");
	atomic_compare_exchange_strong_explicit(&v->members[mi].token, &me, 0,
	                                        memory_order_release, memory_order_relaxed);
out:
	sb_bus_unlock(v->bus);
	return done;
}

uint32_t sb_q_reap_members(struct sb_q_view *v, int32_t group, uint32_t *orphaned)
{
	uint32_t n = sb_q_hi(&v->ctl->members_hi, v->max_members), i, reaped = 0, orph = 0;

	for (i = 0; i < n; i++) {
		struct sb_q_member *m = &v->members[i];
		/* acquire: pairs with the token's release CAS at join. */
		uint64_t t = atomic_load_explicit(&m->token, memory_order_acquire), held;
		uint32_t gi = atomic_load_explicit(&m->group, memory_order_relaxed);

		if (t == 0 || t == SB_Q_ORPHAN || (group >= 0 && gi != (uint32_t)group) ||
		    sb_token_alive(v->bus, t))
			continue;
		if (gi >= v->max_groups) {
			/* A joiner died before its new group existed: nothing held.
			 * release: the record is free. */
			SB_STEP("queue.q_reap_members.token");
			if (atomic_compare_exchange_strong_explicit(&m->token, &t, 0,
			                                            memory_order_release,
			                                            memory_order_relaxed))
				reaped++;
			continue;
		}
		/* seq_cst: the hold is final, its owner is dead. */
		held = atomic_load_explicit(&m->held, memory_order_seq_cst);
		SB_STEP("queue.q_reap_members.token");
		if (held != 0 && !(held & SB_Q_TENTATIVE)) {
			/* acq_rel: one reaper turns the record into an orphan; the
			 * hold stays in place and keeps gating until adopted. */
			if (atomic_compare_exchange_strong_explicit(&m->token, &t, SB_Q_ORPHAN,
			                                            memory_order_acq_rel,
			                                            memory_order_relaxed)) {
				/* release: a hint counted after the record changed;
				 * pairs with the acquire load in adopt(). */
				SB_STEP("queue.q_reap_members.orphans");
				atomic_fetch_add_explicit(&v->groups[gi].orphans, 1,
				                          memory_order_release);
				orph++;
				reaped++;
			}
		} else if (atomic_compare_exchange_strong_explicit(&m->token, &t, 0,
		                                                   memory_order_release,
		                                                   memory_order_relaxed)) {
			/* release: the record is free; a tentative hold is dropped
			 * (gate scans skip free records, join resets held). */
			reaped++;
		}
	}
	if (orph)
		sb_q_wake_consumers(v);
	if (reaped)
		sb_q_wake_producers(v);
	if (orphaned)
		*orphaned = orph;
	return reaped;
}

uint32_t sb_q_reap_producers(struct sb_q_view *v)
{
	uint32_t n = sb_q_hi(&v->ctl->producers_hi, v->max_producers), i, reaped = 0;

	for (i = 0; i < n; i++) {
		struct sb_q_prod *pr = &v->prods[i];
		/* acquire: pairs with the release CAS that claimed the record. */
		uint64_t t = atomic_load_explicit(&pr->token, memory_order_acquire), in;

		if (t == 0 || sb_token_alive(v->bus, t))
			continue;
		/* acquire: pairs with the release store of intent in claim(). */
		in = atomic_load_explicit(&pr->intent, memory_order_acquire);
		if (in != 0 && v->cell) {
			/* With cells the skip of its claim needs its intent:
			 * the record stays until every group passed the claim.
			 * relaxed: ordered after the intent's acquire. */
			uint64_t b = atomic_load_explicit(&pr->intent_len, memory_order_relaxed);
			int32_t blocker;
			uint64_t ep;

			if (b <= v->size && sb_q_gate(v, &blocker, &ep) < in - 1 + b)
				continue;
		} else if (in != 0)
			sb_q_skip_abandoned(v, in - 1);
		/* Freed even if that skip did not happen (its slot not free
		 * yet): a consumer blocked at the seq skips it later, since no
		 * live record names it (see sb_q_skip_abandoned).
		 * release: the record is free; its intent is reset by the next
		 * owner before it takes the record. */
		SB_STEP("queue.q_reap_producers.token");
		if (atomic_compare_exchange_strong_explicit(&pr->token, &t, 0,
		                                            memory_order_release,
		                                            memory_order_relaxed))
			reaped++;
	}
	return reaped;
}

uint32_t sb_q_live_members(struct sb_q_view *v, uint32_t group, uint32_t *total)
{
	uint32_t n = sb_q_hi(&v->ctl->members_hi, v->max_members), i, live = 0, all = 0;

	for (i = 0; i < n; i++) {
		struct sb_q_member *m = &v->members[i];
		/* acquire: pairs with the token's release CAS at join. */
		uint64_t t = atomic_load_explicit(&m->token, memory_order_acquire);

		/* relaxed: ordered after the token's acquire above. */
		if (t == 0 || atomic_load_explicit(&m->group, memory_order_relaxed) != group)
			continue;
		all++;
		if (t != SB_Q_ORPHAN && sb_token_alive(v->bus, t))
			live++;
	}
	if (total)
		*total = all;
	return live;
}

int sb_q_maybe_detach(struct sb_q_view *v, int32_t group)
{
	struct sb_q_group *g;
	uint64_t fw;
	int done = 0;

	if (group < 0 || (uint32_t)group >= v->max_groups)
		return 0;
	g = &v->groups[group];
	if (g->flags & SHMBUS_GROUP_DURABLE)
		return 0;
	if (sb_bus_lock(v->bus) != 0)
		return 0;
	/* Under the mutex: join adds members and clears DETACHED under it too.
	 * relaxed (state, floor): the mutex orders them against join; the
	 * CAS below settles races with producers raising the floor. */
	if (atomic_load_explicit(&g->state, memory_order_relaxed) != SB_Q_GROUP_FREE &&
	    sb_q_live_members(v, (uint32_t)group, NULL) == 0) {
		fw = atomic_load_explicit(&g->floor, memory_order_relaxed);
		/* release: producers that see DETACHED may raise the floor. */
		SB_STEP("queue.q_maybe_detach.floor");
		while (!(fw & SB_Q_DETACHED) &&
		       !atomic_compare_exchange_weak_explicit(&g->floor, &fw, fw | SB_Q_DETACHED,
		                                              memory_order_release,
		                                              memory_order_relaxed))
			;
		done = 1;
	}
	sb_bus_unlock(v->bus);
	return done;
}

/* Under the mutex: a member rejoins a group that stopped gating. */
uint64_t sb_q_reactivate(struct sb_q_view *v, uint32_t gi)
{
	struct sb_q_group *g = &v->groups[gi];
	/* acquire: pairs with the release CAS that raised DETACHED and with
	 * the producers' floor raises, so the floor read is theirs. */
	uint64_t fw = atomic_load_explicit(&g->floor, memory_order_acquire), f, c, lost = 0;

	if (!(fw & SB_Q_DETACHED))
		return 0;
	/* acq_rel: after this, producers no longer raise the floor (their CAS
	 * needs DETACHED); the floor we leave bounds every gate they computed. */
	SB_STEP("queue.q_reactivate.floor");
	while (!atomic_compare_exchange_weak_explicit(&g->floor, &fw, fw & ~SB_Q_DETACHED,
	                                              memory_order_acq_rel, memory_order_acquire))
		;
	f = fw >> 1;
	/* acquire: pairs with the cursor CAS of the group's last take. */
	c = atomic_load_explicit(&g->cursor, memory_order_acquire);
	if (c < f) {
		lost = f - c;
		/* seq_cst: nobody else takes from this group (no live member). */
		SB_STEP("queue.q_reactivate.cursor");
		atomic_store_explicit(&g->cursor, f, memory_order_seq_cst);
	}
	/* Dead holders' messages below the floor may be overwritten: lost too. */
	sb_q_reap_members(v, (int32_t)gi, NULL);
	return lost + sb_q_drop_orphans(v, gi, f);
}

uint32_t sb_q_drop_orphans(struct sb_q_view *v, uint32_t gi, uint64_t below)
{
	struct sb_q_group *g = &v->groups[gi];
	uint32_t n = sb_q_hi(&v->ctl->members_hi, v->max_members), i, dropped = 0;

	for (i = 0; i < n; i++) {
		struct sb_q_member *m = &v->members[i];
		uint64_t t = SB_Q_ORPHAN, held;

		/* acquire: pairs with the reaper's acq_rel CAS to ORPHAN and,
		 * through the release sequence of the token word, with the
		 * member's release CAS at join: the group is the member's.
		 * Its last hold it stored while alive; nothing in C11 orders
		 * that store after its token: its death does, which the
		 * reaper saw through the kernel (sb_token_alive) before its
		 * CAS, and held is read acquire for the holds it released. */
		if (atomic_load_explicit(&m->token, memory_order_acquire) != SB_Q_ORPHAN ||
		    atomic_load_explicit(&m->group, memory_order_relaxed) != gi)
			continue;
		held = atomic_load_explicit(&m->held, memory_order_acquire) & SB_Q_SEQ;
		if (held != 0 && held - 1 >= below)
			continue;
		/* release: the orphan is dropped (gate scans skip free records,
		 * and join resets held before reusing one). */
		SB_STEP("queue.q_drop_orphans.token");
		if (atomic_compare_exchange_strong_explicit(&m->token, &t, 0, memory_order_release,
		                                            memory_order_relaxed)) {
			/* relaxed: a hint, counted down after the record changed. */
			SB_STEP("queue.q_drop_orphans.orphans");
			atomic_fetch_sub_explicit(&g->orphans, 1, memory_order_relaxed);
			dropped++;
		}
	}
	return dropped;
}

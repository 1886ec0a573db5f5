/*
 * queue.c -- queue channels: a lossless, bounded stream of messages from
 * any number of producers to named consumer groups, in shared memory.
 *
 * Protocol (a sequenced ring with gating; full rationale in docs/queue.md).
 * Every message gets a sequence number s from a 64-bit counter that never
 * wraps in practice; it lives in slot s & mask of a ring of 2^n slots.
 *
 *   head         next seq to claim; bit 63 marks end of stream. Producers
 *                claim s by CAS s -> s+1; shut sets bit 63 with fetch_or,
 *                so a claim either happened before the shut (and completes)
 *                or fails with ECLOSED. The close position is head at shut.
 *   closed       head at shut, copied there by shut after the fetch_or, on
 *                a line producers never write: a consumer that finds no
 *                message polls it rather than head (which every claim
 *                writes); a try, or a waiter about to park, reads head.
 *   slot layout  small slots (max_msg <= 1 KiB) are packed at 16 bytes,
 *                larger ones take whole lines; segments of earlier versions
 *                (a line per slot) are accepted by their stride.
 *   slot word    published = s+1 once message s is in the slot (release);
 *                | SKIP when the seq carries no message (aborted, or its
 *                producer died). Consumers acquire-load it.
 *   intent       each producer handle owns a record; before claiming s it
 *                stores intent = s+1 there, so an unpublished claimed seq
 *                can be traced to its owner; a claim CAS that fails
 *                stores 0 at once (it claimed nothing, and the seq it
 *                named is another producer's). So from before its claim
 *                until after its publication (or its skip) a live handle's
 *                record names its seq, and no live record names a seq it
 *                did not claim. A consumer blocked on seq s for the
 *                liveness timeout (timed per group across calls, live_ns)
 *                publishes SKIP for s by CAS if no record of a live
 *                process names s+1 (whether a dead one still does or its
 *                record was freed: reaped, or closed with a skip owed)
 *                and the slot is free.
 *   group        name, flags, cursor (next seq the group hands out), floor
 *                (see detaching), orphans (hint: dead members' holds).
 *   member       group index, owner token, held = s+1 of the message the
 *                member holds (| TENTATIVE while it is trying to take it).
 *
 * Copying take (get, get_many): read cursor c; if slot c holds s = c,
 * copy the message out, then CAS cursor c -> c+1; no hold. While the
 * cursor is c the gate is at most c, so no producer writes the slot's next
 * lap: a copy followed by a successful CAS is message c, whole. A failed
 * CAS (another member took c) drops the copy. The hold protocol below is
 * still used by peek, and by get when the message does not fit the buffer
 * (it stays held), is redelivered, or a tentative hold is up.
 *
 * Taking (a member of group g): read cursor c; if slot c holds s = c, store
 * held = c+1|TENTATIVE (seq_cst), re-read the cursor (still c?), confirm
 * held = c+1, then CAS cursor c -> c+1. Release stores held = 0. A group's
 * release position is min(cursor, its members' held - 1): everything below
 * it is consumed by the group. The re-read makes a confirmed hold
 * protected: any producer that sees the cursor past c also sees the hold.
 * A member that dies with a confirmed hold has its record turned into an
 * ORPHAN (by whoever notices); another member adopts the record and gets
 * the message again, flagged REDELIVERED (at-least-once). A tentative hold
 * of a dead member is dropped: it never took the message. Within a
 * get_many batch, the hold of a message already copied out is not cleared:
 * the next take's tentative exchange replaces it (the new seq is higher,
 * so the gate only rises; the seq_cst exchange is the release), and any
 * other outcome of that take, or the end of the batch, clears it first.
 *
 * Gating: a producer may write seq s once s - slots < gate, where gate =
 * min over groups of max(release position, floor). It keeps the gate in its
 * handle and recomputes it only when the cached value would block. The
 * gate never decreases for the groups that existed when it was computed;
 * a new group changes that, so join bumps `epoch` after making the group
 * visible and reads head afterwards, and a producer re-reads epoch after
 * each successful claim (seq_cst on both sides): either the creator saw
 * the claim in head and starts the group after it, or the producer sees the
 * new epoch and waits for the new group before writing. A group gates from
 * the moment it is visible (CREATING) and members take from it only once
 * its start is final (READY); a join that finds a CREATING group (its
 * creator died under the bus mutex) finishes it, since the rule holds at
 * any later time too.
 *
 * Detaching: a producer blocked for the liveness timeout by a group whose
 * members are all dead (and that is not DURABLE) sets the group's DETACHED
 * bit (under the bus mutex, so it cannot race a join). A detached group
 * keeps its cursor, but blocked producers raise its floor (by CAS, only
 * while DETACHED) to let themselves pass. A member that rejoins clears the
 * bit; if the floor passed the cursor, the cursor jumps to the floor and
 * the member gets SHMBUS_ELAPPED once; otherwise it lost nothing.
 *
 * Waiting (through the park primitive of wait.c, which argues the
 * store-load pairs): spin for spin_ns (yielding the CPU after the first
 * 2 us), then park on a futex word with a waiter count (cons_event /
 * prod_event); the
 * waking side calls FUTEX_WAKE only when the count is non-zero, and the
 * store it made visible plus the count load are seq_cst, as are the
 * sleeper's count increment and re-check. A consumer also records the seq
 * it waits for, its group's cursor (cons_need, the lowest request wins);
 * a publication of seq s wakes only if s >= cons_need, since a group's
 * cursor never moves back and a publication below every sleeper's cursor
 * helps none of them. A wake-up resets the request to "none" before it
 * changes the event, so every publication after it is free until a
 * sleeper asks again (a woken consumer that takes the burst does not cost
 * each put a FUTEX_WAKE). A producer also records the gate
 * it needs (prod_need, the lowest request wins); a consumer's release
 * wakes producers only once its group's cursor has reached that request,
 * since the release that lets a producer through is made by a group whose
 * cursor is then at or past it (every cursor change is seq_cst). While blocked
 * longer than the liveness timeout, a peer checks whoever it waits on; the
 * time is also kept per group (live_ns, queue_live.c), so that callers
 * waiting in short calls or polling get the checks too.
 *
 * Cells (cell_bytes != 0; the spec is tests/model/vqueue.pml): the
 * slots become cells of cell_bytes, their words (published, len, and the
 * record's length k in seqs) an array of metas apart from the cells. A
 * message of n bytes is a record of k = max(1, ceil(n / cell)) consecutive
 * seqs; only its first seq's meta is written. A record never wraps: a
 * claim at h whose record would cross the ring's end starts with a PAD (a
 * SKIP whose k is the pad), claimed with the message, or alone when pad
 * and message exceed the ring. The intent is two words (first seq + 1, the
 * claim's length: intent_len stored first, intent released after it); the
 * gate covers the claim's last seq; cursors advance by k (a SKIP's too),
 * and a hold on the first seq protects the record's cells. A dead claim
 * is skipped only by a member of the blocked group (sb_q_skip_dead_claim):
 * a dead intent range covers the seq and no live one does, by the smallest
 * covering dead range clipped to head; the word is read after the scan,
 * the length stored under a hold. A blocked producer and gc run the same
 * code with a member record of the group borrowed under the bus mutex
 * (sb_q_pass_dead_claim), for groups whose members are not there to do
 * it. Producer records with a dead owner stay until every group passed
 * their claim. Group starts and detached floors land on record starts:
 * LATEST at the head; EARLIEST at the first record start a lap before the
 * head or later, recognised by its word (own seq + 1) or an intent naming
 * it, while the CREATING group gates below it (earliest_start); a
 * detached floor at the first record start past what the blocked producer
 * needs plus a quarter ring, found by walking the published records from
 * the group's position, re-validated by the cursor and the floor's CAS
 * (raise_floor in queue_produce.c).
 *
 * Nothing read from the segment is trusted: slot indices come from the local
 * mask, lengths are checked against the local max_msg, record indices
 * against the local table sizes, a record's k against the ring's end.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

/* ---- geometry ------------------------------------------------------- */

int sb_q_make_line_stride;

static uint64_t round_pow2(uint64_t x)
{
	uint64_t p = 1;

	while (p < x)
		p <<= 1;
	return p;
}

int sb_q_geometry(const struct sb_params *p, int line_stride, struct sb_q_geom *g)
{
	uint64_t bytes;

	g->slots = p->param[0];
	g->max_msg = p->param[1];
	if (g->slots == 0 || g->slots > SB_Q_MAX_SLOTS || (g->slots & (g->slots - 1)) ||
	    g->max_msg == 0 || g->max_msg > SB_Q_MAX_MSG || p->param[2] == 0 ||
	    p->param[2] > SB_Q_MAX_GROUPS || p->param[3] == 0 ||
	    p->param[3] > SB_Q_MAX_MEMBERS || p->param[4] == 0 ||
	    p->param[4] > SB_Q_MAX_PRODUCERS)
		return SHMBUS_EINVAL;
	g->max_groups = (uint32_t)p->param[2];
	g->max_members = (uint32_t)p->param[3];
	g->max_producers = (uint32_t)p->param[4];
	g->cell_bytes = p->param[5];
	g->cell_off = 0;
	g->prod_off = sizeof(struct sb_q_ctl);
	g->group_off = g->prod_off + (uint64_t)g->max_producers * sizeof(struct sb_q_prod);
	g->member_off = g->group_off + (uint64_t)g->max_groups * sizeof(struct sb_q_group);
	g->slot_off = g->member_off + (uint64_t)g->max_members * sizeof(struct sb_q_member);
	if (g->cell_bytes) {
		/* Records of whole cells: the metas (a slot without data) in
		 * one array, the cells in another, so that a record's cells
		 * are contiguous bytes (see the top of the file). */
		if (g->cell_bytes % 8 || g->cell_bytes > SB_Q_MAX_MSG ||
		    g->max_msg > g->slots * g->cell_bytes)
			return SHMBUS_EINVAL;
		g->data_off = 0;
		g->stride = sizeof(struct sb_q_slot);
		g->cell_off = SB_ALIGN(g->slot_off + g->slots * g->stride, SB_LINE);
		/* slots <= 2^24 and cell_bytes <= 2^30: no overflow. */
		g->area = g->cell_off + g->slots * g->cell_bytes;
		return 0;
	}
	/* Small messages share the slot word's line, so an 8-byte message
	 * reaches a consumer in one line transfer; large ones start on a line.
	 * Small slots are packed at 16 bytes (the slot word's alignment) rather
	 * than a line each: a stream moves 1.25 lines per 64-byte message
	 * instead of 2, two 8-byte messages per line instead of one; packing
	 * shares lines between neighbouring slots, which costs nothing a
	 * stream does not already pay (the consumer follows the producer) and
	 * a single message still sits in one or two lines. line_stride: the
	 * layout of segments made before packing (a line per slot), which
	 * queue_check still accepts. */
	g->data_off = g->max_msg <= 1024 ? sizeof(struct sb_q_slot) : SB_LINE;
	g->stride = SB_ALIGN(g->data_off + g->max_msg,
	                     g->max_msg <= 1024 && !line_stride ? 16 : SB_LINE);
	if (__builtin_mul_overflow(g->slots, g->stride, &bytes) ||
	    __builtin_add_overflow(bytes, g->slot_off, &g->area))
		return SHMBUS_ETOOBIG;
	return 0;
}

static int queue_plan(struct sb_params *p, uint64_t *area)
{
	struct sb_q_geom g;
	uint64_t fit;
	int slots_given, msg_given, r;

	slots_given = p->param[0] != 0;
	if (p->param[0] == 0)
		p->param[0] = SB_Q_DEFAULT_SLOTS;
	if (p->param[0] > SB_Q_MAX_SLOTS)
		return sb_err(SHMBUS_EINVAL, "queue slots %llu: the limit is %u",
		              (unsigned long long)p->param[0], SB_Q_MAX_SLOTS);
	p->param[0] = round_pow2(p->param[0]);
	msg_given = p->param[1] != 0;
	if (p->param[5] && (p->param[5] % 8 || p->param[5] > SB_Q_MAX_MSG))
		return sb_err(SHMBUS_EINVAL, "queue cell_bytes %llu: a multiple of 8, at most %llu (1 GiB)",
		              (unsigned long long)p->param[5], SB_Q_MAX_MSG);
	if (p->param[5] && !msg_given)
		/* With cells: the whole ring, up to the limit. */
		p->param[1] = p->param[0] * p->param[5] < SB_Q_MAX_MSG ?
		              p->param[0] * p->param[5] : SB_Q_MAX_MSG;
	if (p->param[5] && p->param[1] > p->param[0] * p->param[5])
		return sb_err(SHMBUS_EINVAL, "queue max_msg %llu bytes: more than its ring (%llu cells x %llu bytes)",
		              (unsigned long long)p->param[1], (unsigned long long)p->param[0],
		              (unsigned long long)p->param[5]);
	if (p->param[1] == 0)
		p->param[1] = SB_Q_DEFAULT_MSG;
	if (p->param[1] > SB_Q_MAX_MSG)
		return sb_err(SHMBUS_EINVAL, "queue max_msg %llu bytes: the limit is %llu (1 GiB)",
		              (unsigned long long)p->param[1], SB_Q_MAX_MSG);
	if (p->param[2] == 0)
		p->param[2] = SB_Q_DEFAULT_GROUPS;
	if (p->param[3] == 0)
		p->param[3] = SB_Q_DEFAULT_MEMBERS;
	if (p->param[4] == 0)
		p->param[4] = SB_Q_DEFAULT_PRODUCERS;
	if (p->param[2] > SB_Q_MAX_GROUPS || p->param[3] > SB_Q_MAX_MEMBERS ||
	    p->param[4] > SB_Q_MAX_PRODUCERS)
		return sb_err(SHMBUS_EINVAL,
		              "queue tables: %llu groups / %llu members / %llu producers; limits %u / %u / %u",
		              (unsigned long long)p->param[2], (unsigned long long)p->param[3],
		              (unsigned long long)p->param[4], SB_Q_MAX_GROUPS, SB_Q_MAX_MEMBERS,
		              SB_Q_MAX_PRODUCERS);
	p->dtype = SHMBUS_BYTES;
	p->ndim = 1;
	memset(p->shape, 0, sizeof(p->shape));
	p->shape[0] = p->param[1];
	p->value_size = p->param[1];
	r = sb_q_geometry(p, sb_q_make_line_stride, &g);
	if (r)
		return sb_err(r, "queue of %llu slots x %llu bytes does not fit in 64 bits",
		              (unsigned long long)p->param[0], (unsigned long long)p->param[1]);
	/* Slots left to their default follow the bus (sb_default_size): when
	 * the ring does not fit in the heap still free, they are halved (down
	 * to SB_Q_MIN_DEFAULT_SLOTS) until it takes at most half of it. */
	fit = sb_default_size(p, g.area);
	while (!slots_given && g.area > fit && p->param[0] > SB_Q_MIN_DEFAULT_SLOTS) {
		/* With cells, a ring no smaller than the message asked for. */
		if (p->param[5] && p->param[1] > p->param[0] / 2 * p->param[5]) {
			if (msg_given)
				break;
			p->param[1] = p->param[0] / 2 * p->param[5];
			p->shape[0] = p->value_size = p->param[1];
		}
		p->param[0] /= 2;
		if (sb_q_geometry(p, sb_q_make_line_stride, &g) != 0)
			return SHMBUS_EINVAL;
	}
	*area = g.area;
	return 0;
}

static int queue_init(uint8_t *area, uint64_t size, const struct sb_params *p)
{
	struct sb_q_ctl *ctl = (struct sb_q_ctl *)area;
	struct sb_q_geom g;

	if (sb_q_geometry(p, sb_q_make_line_stride, &g) != 0 || g.area > size)
		return SHMBUS_EINVAL;
	ctl->magic = SB_Q_MAGIC;
	ctl->slots = (uint32_t)g.slots;
	ctl->max_msg = g.max_msg;
	ctl->stride = g.stride;
	ctl->data_off = g.data_off;
	ctl->max_groups = g.max_groups;
	ctl->max_members = g.max_members;
	ctl->max_producers = g.max_producers;
	ctl->prod_off = g.prod_off;
	ctl->group_off = g.group_off;
	ctl->member_off = g.member_off;
	ctl->slot_off = g.slot_off;
	ctl->cell_bytes = g.cell_bytes;
	ctl->cell_off = g.cell_off;
	/* relaxed: the area is not published yet. */
	SB_STEP("queue.queue_init.prod_need");
	atomic_store_explicit(&ctl->prod_need, UINT64_MAX, memory_order_relaxed);
	/* relaxed: as above. */
	SB_STEP("queue.queue_init.cons_need");
	atomic_store_explicit(&ctl->cons_need, UINT64_MAX, memory_order_relaxed);
	return 0;
}

static int queue_check(const uint8_t *area, uint64_t size, const struct sb_params *p)
{
	const struct sb_q_ctl *ctl = (const struct sb_q_ctl *)area;
	struct sb_q_geom g;

	if (sb_q_geometry(p, 0, &g) != 0)
		return sb_err(SHMBUS_ECORRUPT, "queue parameters out of range");
	/* A segment made before small slots were packed: its own layout. */
	if (ctl->stride != g.stride && !g.cell_bytes)
		sb_q_geometry(p, 1, &g);
	if (p->value_size != g.max_msg)
		return sb_err(SHMBUS_ECORRUPT, "queue value size disagrees with max_msg");
	if (size < sizeof(*ctl) || g.area > size)
		return sb_err(SHMBUS_ECORRUPT, "queue area of %llu bytes, needs %llu",
		              (unsigned long long)size, (unsigned long long)g.area);
	if (ctl->magic != SB_Q_MAGIC || ctl->slots != g.slots || ctl->max_msg != g.max_msg ||
	    ctl->stride != g.stride || ctl->data_off != g.data_off ||
	    ctl->max_groups != g.max_groups || ctl->max_members != g.max_members ||
	    ctl->max_producers != g.max_producers || ctl->prod_off != g.prod_off ||
	    ctl->group_off != g.group_off || ctl->member_off != g.member_off ||
	    ctl->slot_off != g.slot_off || ctl->cell_bytes != g.cell_bytes ||
	    ctl->cell_off != g.cell_off)
		return sb_err(SHMBUS_ECORRUPT, "queue control block disagrees with the directory");
	return 0;
}

int sb_q_view_init(struct sb_q_view *v, struct sb_chan *ch)
{
	struct sb_q_geom g;

	memset(v, 0, sizeof(*v));
	/* Recomputed from the validated params (queue_check agreed with the
	 * shared copy); the segment's own offsets are never used. */
	/* One of the two layouts computed from the validated params, chosen
	 * by the stride queue_check accepted (read once here: a peer that
	 * rewrites it can only pick the other layout, itself in bounds). */
	if (sb_q_geometry(&ch->p, 0, &g) != 0 ||
	    (((const struct sb_q_ctl *)ch->area)->stride != g.stride && !g.cell_bytes &&
	     sb_q_geometry(&ch->p, 1, &g) != 0) ||
	    g.area > ch->area_size)
		return sb_err(SHMBUS_ECORRUPT, "queue '%s': bad geometry", ch->name);
	v->bus = ch->bus;
	v->index = ch->index;
	v->name = ch->name;
	v->ctl = (struct sb_q_ctl *)ch->area;
	v->prods = (struct sb_q_prod *)(ch->area + g.prod_off);
	v->groups = (struct sb_q_group *)(ch->area + g.group_off);
	v->members = (struct sb_q_member *)(ch->area + g.member_off);
	v->slots = ch->area + g.slot_off;
	v->size = g.slots;
	v->mask = g.slots - 1;
	v->stride = g.stride;
	v->data_off = g.data_off;
	v->cell = g.cell_bytes;
	v->cells = g.cell_bytes ? ch->area + g.cell_off : NULL;
	v->max_msg = g.max_msg;
	v->max_groups = g.max_groups;
	v->max_members = g.max_members;
	v->max_producers = g.max_producers;
	v->pos = calloc(g.max_groups, sizeof(uint64_t));
	if (!v->pos)
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	return 0;
}

void sb_q_view_free(struct sb_q_view *v)
{
	free(v->pos);
	v->pos = NULL;
}

/* ---- waking --------------------------------------------------------- */

void sb_q_wake_consumers(struct sb_q_view *v)
{
	struct sb_q_ctl *ctl = v->ctl;

	/* seq_cst: every sleeper wakes and asks again if it must sleep on;
	 * the reset comes before the event changes, so a request made after
	 * it is made by a consumer whose futex wait then returns at once
	 * (pairs with sb_q_want in wait_data). */
	SB_STEP("queue.q_wake_consumers.cons_need");
	atomic_store_explicit(&ctl->cons_need, UINT64_MAX, memory_order_seq_cst);
	/* seq_cst: a sleeper read the event before re-checking its condition;
	 * changing it makes a FUTEX_WAIT that has not started return at once. */
	SB_STEP("queue.q_wake_consumers.cons_event");
	atomic_fetch_add_explicit(&ctl->cons_event, 1, memory_order_seq_cst);
	/* The count's seq_cst load after the change: the waker's half of the
	 * store-load pair with wait_data's sb_park_prepare. */
	sb_park_wake(&ctl->cons_waiters, &ctl->cons_event, INT_MAX);
	sb_bell_ring(v->bus, v->index);
}

void sb_q_wake_producers(struct sb_q_view *v)
{
	struct sb_q_ctl *ctl = v->ctl;

	/* seq_cst: every sleeper wakes and asks again if it must sleep on;
	 * the reset comes before the event changes, so a request made after
	 * it is made by a producer whose futex wait then returns at once. */
	SB_STEP("queue.q_wake_producers.prod_need");
	atomic_store_explicit(&ctl->prod_need, UINT64_MAX, memory_order_seq_cst);
	/* seq_cst: as in sb_q_wake_consumers, for prod_event. */
	SB_STEP("queue.q_wake_producers.prod_event");
	atomic_fetch_add_explicit(&ctl->prod_event, 1, memory_order_seq_cst);
	/* As in sb_q_wake_consumers; shmbus_queue_wait_groups counts itself
	 * in prod_waiters too. */
	sb_park_wake(&ctl->prod_waiters, &ctl->prod_event, INT_MAX);
	sb_bell_ring(v->bus, v->index);
}

/* ---- the gate ------------------------------------------------------- */

uint64_t sb_q_gate(struct sb_q_view *v, int32_t *blocker, uint64_t *epoch)
{
	return sb_q_gate_with(v, v->pos, blocker, epoch);
}

uint64_t sb_q_gate_with(struct sb_q_view *v, uint64_t *pos, int32_t *blocker,
                        uint64_t *epoch)
{
	struct sb_q_ctl *ctl = v->ctl;
	uint64_t h, gate;
	uint32_t ng, nm, i;

	/* seq_cst: the epoch is read before the group table, so a group
	 * created later bumps it past the value we return (pairs with the
	 * fetch_add in create_group). */
	*epoch = atomic_load_explicit(&ctl->epoch, memory_order_seq_cst);
	/* seq_cst: head before the groups: a group we miss was created after
	 * this load, and starts at or after the head we read. */
	h = atomic_load_explicit(&ctl->head, memory_order_seq_cst) & SB_Q_SEQ;
	gate = h;
	*blocker = -1;
	ng = sb_q_hi(&ctl->groups_hi, v->max_groups);
	for (i = 0; i < ng; i++) {
		struct sb_q_group *g = &v->groups[i];

		pos[i] = UINT64_MAX;
		/* acquire: pairs with the release store of CREATING in
		 * create_group (a creating group gates already). */
		if (atomic_load_explicit(&g->state, memory_order_acquire) == SB_Q_GROUP_FREE)
			continue;
		/* seq_cst: cursors before holds (see the take protocol): a
		 * cursor past c means the hold on c, if any, is visible below. */
		pos[i] = atomic_load_explicit(&g->cursor, memory_order_seq_cst);
	}
	/* After the cursors: a member that took anything was counted in the
	 * mark before it took it. */
	nm = sb_q_hi(&ctl->members_hi, v->max_members);
	for (i = 0; i < nm; i++) {
		struct sb_q_member *m = &v->members[i];
		uint64_t held, s1;
		uint32_t gi;

		/* acquire: pairs with the release CAS that set the token after
		 * group and held were initialised. */
		if (atomic_load_explicit(&m->token, memory_order_acquire) == 0)
			continue;
		/* relaxed: ordered after the token's acquire above. */
		gi = atomic_load_explicit(&m->group, memory_order_relaxed);
		if (gi >= ng || pos[gi] == UINT64_MAX)
			continue;
		/* seq_cst: pairs with the exchange of held in take_one. */
		held = atomic_load_explicit(&m->held, memory_order_seq_cst);
		s1 = held & SB_Q_SEQ;
		if (s1 != 0 && s1 - 1 < pos[gi])
			pos[gi] = s1 - 1;
	}
	for (i = 0; i < ng; i++) {
		uint64_t eff, f;

		if (pos[i] == UINT64_MAX)
			continue;
		/* acquire: pairs with the CAS that raised the floor. */
		f = atomic_load_explicit(&v->groups[i].floor, memory_order_acquire) >> 1;
		eff = pos[i] > f ? pos[i] : f;
		if (eff < gate) {
			gate = eff;
			*blocker = (int32_t)i;
		}
	}
	return gate;
}

/* ---- kind ops: gc and info ------------------------------------------ */

static int queue_gc(struct sb_chan *ch, uint32_t *reaped)
{
	struct sb_q_view v;
	int r = sb_q_view_init(&v, ch);

	*reaped = 0;
	if (r)
		return r;
	*reaped = sb_q_reap_members(&v, -1, NULL);
	/* With cells a dead producer's record stays until every group passed
	 * its claim: pass the dead claims at the groups' cursors first (the
	 * members' rule; a group with no live member would never do it). */
	if (v.cell) {
		uint32_t i, ng = sb_q_hi(&v.ctl->groups_hi, v.max_groups);
		uint64_t token = ch->bus->token ? ch->bus->token : sb_self_token();

		for (i = 0; i < ng; i++)
			sb_q_pass_dead_claim(&v, (int32_t)i, token);
	}
	*reaped += sb_q_reap_producers(&v);
	sb_q_view_free(&v);
	return 0;
}

static void queue_info_op(struct sb_chan *ch, shmbus_channel_info_t *info)
{
	const struct sb_q_ctl *ctl = (const struct sb_q_ctl *)ch->area;

	/* relaxed: a snapshot for display. */
	info->seq = atomic_load_explicit(&ctl->head, memory_order_relaxed) & SB_Q_SEQ;
	info->capacity = ch->p.param[0];
	info->cell_bytes = ch->p.param[5];
}

const struct sb_kind_ops sb_queue_ops = {
	.plan = queue_plan,
	.init = queue_init,
	.check = queue_check,
	.gc = queue_gc,
	.info = queue_info_op,
};

/* ---- open / close --------------------------------------------------- */

void shmbus_queue_opts_init(shmbus_queue_opts_t *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->size_of = sizeof(*opts);
	opts->create = 1;
}

/* The existing channel's parameters must match what the caller asked for
 * (zero means "whatever it has"). */
static int check_match(shmbus_queue_t *q, const shmbus_queue_opts_t *o)
{
	static const char *const what[] = {"slots", "max_msg", "max_groups", "max_members",
	                                   "max_producers", "cell_bytes"};
	uint64_t asked[6] = {o->slots ? round_pow2(o->slots) : 0, o->max_msg, o->max_groups,
	                     o->max_members, o->max_producers, o->cell_bytes};
	int i;

	for (i = 0; i < 6; i++)
		if (asked[i] && asked[i] != q->ch.p.param[i])
			return sb_err(SHMBUS_ETYPE, "queue '%s' exists with %s %llu, asked for %llu",
			              q->ch.name, what[i], (unsigned long long)q->ch.p.param[i],
			              (unsigned long long)asked[i]);
	return 0;
}

static void queue_opts_init(void *opts)
{
	shmbus_queue_opts_init(opts);
}

static int queue_opts_check(void *opts, const char *name, struct sb_params *want)
{
	const shmbus_queue_opts_t *o = opts;
	int r;

	if (o->reserved_)
		return sb_err(SHMBUS_EINVAL, "queue '%s' options: reserved_ is %d, not 0", name,
		              o->reserved_);
	if ((r = sb_wait_opts_check("queue", name, o->wait_policy, o->spin_ns)) != 0)
		return r;
	if (o->slots > SB_Q_MAX_SLOTS)
		return sb_err(SHMBUS_EINVAL, "queue '%s': %u slots, the limit is %u",
		              name, o->slots, SB_Q_MAX_SLOTS);
	if (o->max_msg > SB_Q_MAX_MSG)
		return sb_err(SHMBUS_EINVAL, "queue '%s': max_msg %llu bytes, the limit is %llu (1 GiB)",
		              name, (unsigned long long)o->max_msg, SB_Q_MAX_MSG);
	/* For creating; an existing queue is compared by check_match, with
	 * a message that names the parameter. */
	want->param[0] = o->slots ? round_pow2(o->slots) : 0;
	want->param[1] = o->max_msg;
	want->param[2] = o->max_groups;
	want->param[3] = o->max_members;
	want->param[4] = o->max_producers;
	want->param[5] = o->cell_bytes;
	return 0;
}

/* 1.0's layout, the smallest size_of accepted (cell_bytes is part of it:
 * it came before 1.0 was released). */
#define SB_QUEUE_OPTS_1_0 56u
_Static_assert(sizeof(shmbus_queue_opts_t) == SB_QUEUE_OPTS_1_0,
               "shmbus_queue_opts_t is 1.0's layout");

static const struct sb_open_desc queue_desc = {
	.kind = SHMBUS_KIND_QUEUE,
	.flags = SB_OPEN_ANY_PARAMS,
	.size = sizeof(shmbus_queue_opts_t),
	.size_1_0 = SB_QUEUE_OPTS_1_0,
	.create_off = offsetof(shmbus_queue_opts_t, create),
	.init = queue_opts_init,
	.check = queue_opts_check,
};

int shmbus_queue_open(shmbus_bus_t *bus, const char *name, const shmbus_queue_opts_t *opts,
                      shmbus_queue_t **out)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q;
	int r;

	if (!bus || !out)
		return sb_err(SHMBUS_EINVAL, "shmbus_queue_open: NULL argument");
	*out = NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	shmbus_queue_opts_init(&o);
	r = sb_kind_open(bus, name, &queue_desc, opts, &o, &q->ch);
	if (!r)
		r = check_match(q, &o);
	if (!r)
		r = sb_q_view_init(&q->v, &q->ch);
	if (r) {
		sb_q_view_free(&q->v);
		free(q);
		return r;
	}
	q->v.name = q->ch.name;
	q->token = bus->token ? bus->token : sb_self_token();
	q->policy = o.wait_policy;
	q->spin_ns = o.spin_ns ? o.spin_ns : SB_DEFAULT_SPIN_NS;
	q->prod = -1;
	q->group = -1;
	q->member = -1;
	*out = q;
	return 0;
}

int shmbus_queue_set_wait(shmbus_queue_t *q, int policy, int64_t spin_ns)
{
	if (!q || policy < 0 || policy > SHMBUS_WAIT_PARK || spin_ns < 0)
		return sb_err(SHMBUS_EINVAL, "wait policy %d / spin_ns %lld invalid", policy,
		              (long long)spin_ns);
	q->policy = policy;
	q->spin_ns = spin_ns ? spin_ns : SB_DEFAULT_SPIN_NS;
	return 0;
}

static void leave_group(shmbus_queue_t *q)
{
	struct sb_q_member *m = &q->v.members[q->member];
	uint64_t me = q->token;

	if (q->held) {
		/* A message handed out and not released is delivered again to
		 * another member (or to this group's next member). acq_rel: the
		 * record becomes an orphan with its hold in place. */
		SB_STEP("queue.leave_group.token");
		if (atomic_compare_exchange_strong_explicit(&m->token, &me, SB_Q_ORPHAN,
		                                            memory_order_acq_rel,
		                                            memory_order_relaxed)) {
			/* release: a hint, counted after the record changed;
			 * pairs with the acquire load in adopt(). */
			SB_STEP("queue.leave_group.orphans");
			atomic_fetch_add_explicit(&q->v.groups[q->group].orphans, 1,
			                          memory_order_release);
			sb_q_wake_consumers(&q->v);
		}
	} else {
		/* seq_cst: drop any tentative hold before the record is freed. */
		SB_STEP("queue.leave_group.held");
		atomic_store_explicit(&m->held, 0, memory_order_seq_cst);
		/* release: our last use of the record happens before it is free. */
		SB_STEP("queue.leave_group.token");
		atomic_compare_exchange_strong_explicit(&m->token, &me, 0, memory_order_release,
		                                        memory_order_relaxed);
	}
	/* seq_cst: store-load pair with a producer that announced itself. */
	if (atomic_load_explicit(&q->v.ctl->prod_waiters, memory_order_seq_cst))
		sb_q_wake_producers(&q->v);
	else
		sb_bell_ring(q->v.bus, q->v.index);
	q->held = 0;
	q->group = q->member = -1;
}

int shmbus_queue_close(shmbus_queue_t *q)
{
	if (!q)
		return 0;
	if (sb_inherited(q->token)) {
		/* Inherited through fork: the records are the parent's. */
		sb_q_view_free(&q->v);
		free(q);
		return 0;
	}
	if (q->claimed)
		shmbus_queue_abort(q);
	if (q->owed) {
		struct sb_q_wait w = {0};

		/* If the slot is not free yet, the record is freed below with the
		 * skip unpaid: a blocked consumer publishes it (no live record
		 * names the seq) once the slot is free. With cells the skip
		 * needs the intent's length: the record stays ours (its token
		 * our process's) and a consumer skips the claim once we exit. */
		sb_q_pay_owed(q, 0, &w);
	}
	if (q->member >= 0)
		leave_group(q);
	if (q->prod >= 0 && !(q->owed && q->v.cell)) {
		struct sb_q_prod *pr = &q->v.prods[q->prod];
		uint64_t me = q->token;

		/* release: the record is free once our publications are done. */
		SB_STEP("queue.queue_close.intent");
		atomic_store_explicit(&pr->intent, 0, memory_order_release);
		SB_STEP("queue.queue_close.token");
		atomic_compare_exchange_strong_explicit(&pr->token, &me, 0, memory_order_release,
		                                        memory_order_relaxed);
	}
	sb_q_view_free(&q->v);
	free(q);
	return 0;
}

/* ---- groups --------------------------------------------------------- */

static int find_group(struct sb_q_view *v, const char *name)
{
	uint32_t n = sb_q_hi(&v->ctl->groups_hi, v->max_groups), i;

	/* relaxed: under the bus mutex, like every change of state. */
	for (i = 0; i < n; i++)
		if (atomic_load_explicit(&v->groups[i].state, memory_order_relaxed) != SB_Q_GROUP_FREE &&
		    strncmp(v->groups[i].name, name, SHMBUS_NAME_MAX + 1) == 0)
			return (int)i;
	return -1;
}

/* With cells, under the mutex, for a CREATING group gating at a cursor at
 * or below lo = head - slots: the oldest record still in the ring, i.e.
 * the first record start in [lo, h), h the head read after the epoch
 * bump (h itself if none). A lap ago may fall inside a record, so starts
 * are recognised, not computed: seq x starts a record if its cell's word
 * is x+1 (| SKIP) -- only a record's first seq has its meta written, and
 * an inner cell keeps an older lap's word (below x+1) -- or if a
 * producer's intent names x (a claim not yet published: its first seq is
 * a record's, the PAD's if it has one; a failed claim's intent names a
 * head it read, also a record's start). The words are the current lap's:
 * our group gates from CREATING on with its cursor at most lo, so no
 * producer writes a seq at or past lo + slots = h (a claim made with a
 * gate older than the group re-reads the epoch and waits for it, see the
 * epoch rule), and the cells of [lo, h) are rewritten only by their own
 * seq's publication. The intents are read before the words: an owner that
 * published x and moved its intent on (or freed its record) did so after
 * the publication, and our acquire of its intent (or token) makes the
 * word visible, so a record start of [lo, h) is either named or seen
 * published -- or was abandoned (its dead owner's record freed), which a
 * group would skip anyway. A published start's length is checked: 0, or
 * past the ring's end, is corrupt (SHMBUS_ECORRUPT), not a start. */
static int earliest_start(struct sb_q_view *v, uint64_t lo, uint64_t h, uint64_t *start)
{
	uint64_t first = h, x;
	uint32_t n = sb_q_hi(&v->ctl->producers_hi, v->max_producers), i;

	for (i = 0; i < n; i++) {
		struct sb_q_prod *pr = &v->prods[i];
		uint64_t a;

		/* acquire: pairs with the release that stored the token (or
		 * freed the record after its last publication). */
		if (atomic_load_explicit(&pr->token, memory_order_acquire) == 0)
			continue;
		/* acquire: pairs with the release store of intent in claim(),
		 * made after the owner's previous publication. */
		a = atomic_load_explicit(&pr->intent, memory_order_acquire);
		if (a != 0 && a - 1 >= lo && a - 1 < first)
			first = a - 1;
	}
	for (x = lo; x < first; x++) {
		struct sb_q_slot *s = sb_q_slot(v, x);
		/* acquire: pairs with the publication's release; the length
		 * read below is that record's. */
		uint64_t p = atomic_load_explicit(&s->published, memory_order_acquire), k;

		if ((p & SB_Q_SEQ) != x + 1)
			continue;
		k = sb_q_rec_k(v, s);
		if (k == 0 || (x & v->mask) + k > v->size)
			return sb_err(SHMBUS_ECORRUPT, "queue '%s': the record at seq %llu has a length of %llu cells in a ring of %llu",
			              v->name, (unsigned long long)x, (unsigned long long)k,
			              (unsigned long long)v->size);
		first = x;
		break;
	}
	*start = first;
	return 0;
}

/* Under the mutex: make a CREATING group's start final and the group READY.
 * The group gates producers already; a producer whose claim the head load
 * below misses re-reads the epoch after that claim and sees ours (see the
 * epoch rule at the top of the file). Also finishes a group whose creator
 * died half way: the rule holds at any later time. On an error (a corrupt
 * record at an EARLIEST start) the group stays CREATING: it keeps gating
 * at its tentative start, never past a record start, and the next join
 * tries again. */
static int finish_group(struct sb_q_view *v, uint32_t gi)
{
	struct sb_q_ctl *ctl = v->ctl;
	struct sb_q_group *g = &v->groups[gi];
	uint64_t h, c;
	int r;

	/* seq_cst: the group is visible (CREATING) before the epoch changes,
	 * and the head is read after it. */
	SB_STEP("queue.finish_group.epoch");
	atomic_fetch_add_explicit(&ctl->epoch, 1, memory_order_seq_cst);
	h = atomic_load_explicit(&ctl->head, memory_order_seq_cst) & SB_Q_SEQ;
	/* relaxed: nobody takes from a group that is not READY. */
	c = atomic_load_explicit(&g->cursor, memory_order_relaxed);
	if (g->flags & SHMBUS_GROUP_EARLIEST) {
		if (h > v->size && v->cell) {
			/* The tentative start (create_group) is a lap before a
			 * head read earlier: at most h - slots. */
			if (c > h - v->size)
				return sb_err(SHMBUS_ECORRUPT, "queue '%s': group '%.63s' starts at seq %llu, past a lap before the head %llu",
				              v->name, g->name, (unsigned long long)c,
				              (unsigned long long)h);
			r = earliest_start(v, h - v->size, h, &h);
			if (r)
				return r;
		} else
			h = h > v->size ? h - v->size : 0;
	}
	SB_STEP("queue.finish_group.cursor");
	if (h > c)
		/* seq_cst: the start moves forward only. */
		atomic_store_explicit(&g->cursor, h, memory_order_seq_cst);
	/* release: members (who acquire the state at join, under the mutex)
	 * start from the final cursor. */
	SB_STEP("queue.finish_group.state");
	atomic_store_explicit(&g->state, SB_Q_GROUP_READY, memory_order_release);
	return 0;
}

/* Under the mutex. The new group's start must not precede anything a
 * producer may overwrite: see the epoch rule at the top of the file. */
static int create_group(struct sb_q_view *v, const char *name, uint32_t flags)
{
	struct sb_q_group *g = NULL;
	uint64_t h;
	uint32_t i;
	int r;

	/* relaxed: groups are created and freed under the bus mutex we hold. */
	for (i = 0; i < v->max_groups; i++)
		if (atomic_load_explicit(&v->groups[i].state, memory_order_relaxed) == SB_Q_GROUP_FREE) {
			g = &v->groups[i];
			break;
		}
	if (!g)
		return sb_err(SHMBUS_ENOSPC, "queue '%s' has %u groups, its max_groups; cannot add '%s'",
		              v->name, v->max_groups, name);
	/* relaxed: the head only bounds the tentative start from below. */
	h = atomic_load_explicit(&v->ctl->head, memory_order_relaxed) & SB_Q_SEQ;
	memset(g->name, 0, sizeof(g->name));
	memcpy(g->name, name, strlen(name));
	g->flags = flags & (SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE);
	/* relaxed: the record is not yet visible; the release below
	 * publishes floor, orphans and cursor together. */
	SB_STEP("queue.create_group.floor");
	atomic_store_explicit(&g->floor, 0, memory_order_relaxed);
	SB_STEP("queue.create_group.orphans");
	atomic_store_explicit(&g->orphans, 0, memory_order_relaxed);
	SB_STEP("queue.create_group.cursor");
	atomic_store_explicit(&g->cursor,
	                      (flags & SHMBUS_GROUP_EARLIEST) ? (h > v->size ? h - v->size : 0) : h,
	                      memory_order_relaxed);
	/* release: the record is complete before producers count it; pairs
	 * with the acquire load of state in sb_q_gate. */
	SB_STEP("queue.create_group.state");
	atomic_store_explicit(&g->state, SB_Q_GROUP_CREATING, memory_order_release);
	sb_q_raise_hi(&v->ctl->groups_hi, i + 1);
	r = finish_group(v, i);
	if (r) {
		/* release: the group is gone again; it gated at a start at or
		 * below every other's, and removing a group only raises the
		 * gate (see drop_group). */
		SB_STEP("queue.create_group.free");
		atomic_store_explicit(&g->state, SB_Q_GROUP_FREE, memory_order_release);
		sb_q_wake_producers(v);
		return r;
	}
	return (int)i;
}

/* Called with the bus mutex held (join is the only caller), so two joiners
 * never fill the same free record at once; the CAS below only races
 * reapers and adopters, which never turn a free record into a live one. */
int sb_q_add_member(struct sb_q_view *v, uint32_t gi, uint64_t token)
{
	int pass;
	uint32_t i;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < v->max_members; i++) {
			struct sb_q_member *m = &v->members[i];
			uint64_t expect = 0;

			/* relaxed: a hint; the claiming CAS below decides. The
			 * two stores after it are published by that CAS's
			 * release. */
			if (atomic_load_explicit(&m->token, memory_order_relaxed) != 0)
				continue;
			SB_STEP("queue.add_member.group");
			atomic_store_explicit(&m->group, gi, memory_order_relaxed);
			SB_STEP("queue.add_member.held");
			atomic_store_explicit(&m->held, 0, memory_order_relaxed);
			/* release: group and held are set before the record is in
			 * use; pairs with the scanners' acquire loads of token. */
			SB_STEP("queue.add_member.token");
			if (atomic_compare_exchange_strong_explicit(&m->token, &expect, token,
			                                            memory_order_release,
			                                            memory_order_relaxed)) {
				sb_q_raise_hi(&v->ctl->members_hi, i + 1);
				return (int)i;
			}
		}
		/* Again even if we reaped nothing: a concurrent reaper may
		 * have freed the records. */
		if (pass == 0)
			sb_q_reap_members(v, -1, NULL);
	}
	return sb_err(SHMBUS_ENOSPC, "queue '%s' has %u members, its max_members", v->name,
	              v->max_members);
}

int shmbus_queue_join(shmbus_queue_t *q, const char *group, uint32_t flags)
{
	struct sb_q_view *v;
	int gi, mi, r;
	uint64_t lost = 0;

	if (!q)
		return sb_err(SHMBUS_EINVAL, "queue is NULL");
	v = &q->v;
	r = shmbus_name_check(group);
	if (r)
		return sb_err(r, "group %s", shmbus_last_error());
	if (flags & ~(SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE))
		return sb_err(SHMBUS_EINVAL, "group flags 0x%x: unknown bits", flags);
	if (q->group >= 0) {
		if (strcmp(q->group_name, group) == 0)
			return 0;
		return sb_err(SHMBUS_ESTATE, "queue '%s': this handle is a member of group '%s'; open another handle for '%s'",
		              v->name, q->group_name, group);
	}
	r = sb_bus_lock(v->bus);
	if (r)
		return r;
	gi = find_group(v, group);
	/* A new group's member record points nowhere until the group exists. */
	mi = sb_q_add_member(v, gi >= 0 ? (uint32_t)gi : UINT32_MAX, q->token);
	if (mi < 0) {
		sb_bus_unlock(v->bus);
		return mi;
	}
	if (gi < 0) {
		gi = create_group(v, group, flags);
		if (gi < 0) {
			uint64_t me = q->token;

			/* release: the record we filled is free again. */
			SB_STEP("queue.queue_join.token");
			atomic_compare_exchange_strong_explicit(&v->members[mi].token, &me, 0,
			                                        memory_order_release,
			                                        memory_order_relaxed);
			sb_bus_unlock(v->bus);
			return gi;
		}
		/* relaxed: the record is ours and its group was not yet READY. */
		SB_STEP("queue.queue_join.group");
		atomic_store_explicit(&v->members[mi].group, (uint32_t)gi, memory_order_relaxed);
	} else {
		/* relaxed: under the mutex. */
		if (atomic_load_explicit(&v->groups[gi].state, memory_order_relaxed) ==
		    SB_Q_GROUP_CREATING)
			r = finish_group(v, (uint32_t)gi);
		if (r) {
			uint64_t me = q->token;

			/* release: the record we filled is free again. */
			SB_STEP("queue.queue_join.token");
			atomic_compare_exchange_strong_explicit(&v->members[mi].token, &me, 0,
			                                        memory_order_release,
			                                        memory_order_relaxed);
			sb_bus_unlock(v->bus);
			return r;
		}
		lost = sb_q_reactivate(v, (uint32_t)gi);
	}
	sb_bus_unlock(v->bus);
	q->group = gi;
	q->member = mi;
	q->elapsed = lost;
	snprintf(q->group_name, sizeof(q->group_name), "%s", group);
	sb_q_wake_producers(v);
	return 0;
}

/* Remove a group nobody will use again, so that it stops gating producers
 * (a DURABLE group otherwise gates for ever). Under the bus mutex, which
 * join also holds, so no member can appear meanwhile: dead members are
 * reaped, a live one refuses the drop, and the records of dead members
 * that held messages (orphans) are freed with the group, so that a group
 * created later in the same record never adopts them. Removing a group
 * only raises the gate, so producers' cached gates stay valid lower
 * bounds; a group created later in the record bumps the epoch as any new
 * group does. */
int shmbus_queue_drop_group(shmbus_queue_t *q, const char *group)
{
	struct sb_q_view *v;
	struct sb_q_group *g;
	uint32_t live;
	int gi, r;

	if (!q || !group)
		return sb_err(SHMBUS_EINVAL, "shmbus_queue_drop_group: NULL argument");
	v = &q->v;
	r = shmbus_name_check(group);
	if (r)
		return sb_err(r, "group %s", shmbus_last_error());
	if (q->group >= 0 && strcmp(q->group_name, group) == 0)
		return sb_err(SHMBUS_EBUSY, "queue '%s': this handle is a member of group '%s'; close it first",
		              v->name, group);
	r = sb_bus_lock(v->bus);
	if (r)
		return r;
	gi = find_group(v, group);
	if (gi < 0) {
		sb_bus_unlock(v->bus);
		return sb_err(SHMBUS_ENOENT, "queue '%s' has no group '%s'", v->name, group);
	}
	g = &v->groups[gi];
	sb_q_reap_members(v, gi, NULL);
	live = sb_q_live_members(v, (uint32_t)gi, NULL);
	if (live) {
		sb_bus_unlock(v->bus);
		return sb_err(SHMBUS_EBUSY, "group '%s' of queue '%s' has %u live member%s; close them first",
		              group, v->name, live, live == 1 ? "" : "s");
	}
	/* The holds of its dead members go with it: a group made later in
	 * this record must neither be gated by them nor adopt them. */
	sb_q_drop_orphans(v, (uint32_t)gi, UINT64_MAX);
	/* relaxed: a hint; create_group resets it too. */
	SB_STEP("queue.queue_drop_group.orphans");
	atomic_store_explicit(&g->orphans, 0, memory_order_relaxed);
	/* seq_cst: from here on gate scans skip the group (they acquire the
	 * state); the record is free for create_group, under the mutex. */
	SB_STEP("queue.queue_drop_group.state");
	atomic_store_explicit(&g->state, SB_Q_GROUP_FREE, memory_order_seq_cst);
	sb_bus_unlock(v->bus);
	sb_q_wake_producers(v);
	return 0;
}

/* ---- end of stream, info -------------------------------------------- */

int shmbus_queue_shut(shmbus_queue_t *q)
{
	uint64_t h;

	if (!q)
		return sb_err(SHMBUS_EINVAL, "queue is NULL");
	/* seq_cst: claims before this RMW complete; later ones see the bit
	 * (their CAS from a value without it fails). */
	SB_STEP("queue.queue_shut.head");
	h = atomic_fetch_or_explicit(&q->v.ctl->head, SB_Q_CLOSED, memory_order_seq_cst);
	/* seq_cst: the copy spinning consumers poll (take_one); made after
	 * the mark, so it never names a position head did not end at, and
	 * before the wake-ups. Head stays the authority: a shutter that dies
	 * before this store is seen by consumers when they park. */
	SB_STEP("queue.queue_shut.closed");
	atomic_store_explicit(&q->v.ctl->closed, (h & SB_Q_SEQ) | SB_Q_CLOSED,
	                      memory_order_seq_cst);
	sb_q_wake_consumers(&q->v);
	sb_q_wake_producers(&q->v);
	return 0;
}

bool shmbus_queue_is_shut(const shmbus_queue_t *q)
{
	/* acquire: pairs with the fetch_or in shmbus_queue_shut. */
	return q && (atomic_load_explicit(&q->v.ctl->head, memory_order_acquire) & SB_Q_CLOSED);
}

int shmbus_queue_info(shmbus_queue_t *q, shmbus_queue_info_t *out,
                      shmbus_group_info_t *groups, size_t cap)
{
	shmbus_queue_info_t full, *info = &full;
	struct sb_q_view *v;
	uint64_t h, gate, ep;
	uint32_t ng, np, i, n = 0;
	int32_t blocker;
	int r;

	if (!q || !out || (!groups && cap))
		return sb_err(SHMBUS_EINVAL, "shmbus_queue_info: NULL argument");
	if ((r = sb_out_check(out, "shmbus_queue_info: info")) != 0)
		return r;
	v = &q->v;
	memset(info, 0, sizeof(*info));
	info->size_of = sizeof(*info);
	info->slots = (uint32_t)v->size;
	info->max_msg = v->max_msg;
	info->cell_bytes = v->cell;
	gate = sb_q_gate(v, &blocker, &ep);
	/* acquire: a snapshot, at or after the one the gate used. */
	h = atomic_load_explicit(&v->ctl->head, memory_order_acquire);
	info->shut = (h & SB_Q_CLOSED) ? 1 : 0;
	h &= SB_Q_SEQ;
	info->head = h;
	info->depth = h > gate ? h - gate : 0;
	np = sb_q_hi(&v->ctl->producers_hi, v->max_producers);
	/* relaxed: counts for display, a snapshot. */
	for (i = 0; i < np; i++)
		if (atomic_load_explicit(&v->prods[i].token, memory_order_relaxed) != 0)
			info->producers++;
	ng = sb_q_hi(&v->ctl->groups_hi, v->max_groups);
	for (i = 0; i < ng; i++) {
		struct sb_q_group *g = &v->groups[i];

		/* acquire: pairs with the release that made the group visible,
		 * so its name and cursor are complete. */
		if (atomic_load_explicit(&g->state, memory_order_acquire) == SB_Q_GROUP_FREE)
			continue;
		if (n < cap) {
			shmbus_group_info_t *gi = &groups[n];
			/* relaxed: a snapshot for display. */
			uint64_t c = atomic_load_explicit(&g->cursor, memory_order_relaxed);

			memset(gi, 0, sizeof(*gi));
			memcpy(gi->name, g->name, SHMBUS_NAME_MAX);
			gi->name[SHMBUS_NAME_MAX] = '\0';
			gi->cursor = c;
			gi->lag = h > c ? h - c : 0;
			gi->live_members = sb_q_live_members(v, i, &gi->members);
			gi->flags = g->flags;
		}
		n++;
	}
	info->groups = n;
	sb_out_copy(out, info, sizeof(*info));
	return 0;
}

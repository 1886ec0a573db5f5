/*
 * queue.h -- declarations shared by the files of the queue channel
 * (queue.c: layout, kind ops, open/join/close/info; queue_produce.c;
 * queue_consume.c; queue_live.c: crash recovery). The protocol is
 * described at the top of queue.c.
 *
 * Area of a queue channel (all offsets from the area's start, all records
 * cache-line sized or padded, every field 64-bit unless a futex word):
 *
 *   ctl          6 lines: head | epoch + high-water marks + closed | consumer
 *                waiters + event + need | producer waiters + event + need |
 *                2 lines of immutable geometry
 *   producers    max_producers x 1 line  {token, intent}
 *   groups       max_groups x 3 lines    {name | state, flags, floor,
 *                                          live_ns | cursor, orphans}
 *   members      max_members x 1 line    {token, group, held}
 *   slots        2^n x stride            {published, len, flags, data...}
 *
 * With cells (cell_bytes != 0): slots are 16-byte metas {published, len,
 * k}, then, from the next line, cells: 2^n x cell_bytes.
 */
#ifndef SHMBUS_QUEUE_H
#define SHMBUS_QUEUE_H

#include <sched.h>
#include <string.h>

#include "internal.h"

#define SB_Q_MAGIC 0x51554555u             /* "QUEU" */
#define SB_Q_MAX_SLOTS (1u << 24)
#define SB_Q_MAX_MSG (1ull << 30)
#define SB_Q_MAX_GROUPS 1024u
#define SB_Q_MAX_MEMBERS 4096u
#define SB_Q_MAX_PRODUCERS 4096u
#define SB_Q_DEFAULT_SLOTS 1024u
#define SB_Q_MIN_DEFAULT_SLOTS 16u   /* defaults shrink no further */
#define SB_Q_DEFAULT_MSG 4096u
#define SB_Q_DEFAULT_GROUPS 16u
#define SB_Q_DEFAULT_MEMBERS 64u
#define SB_Q_DEFAULT_PRODUCERS 64u

#define SB_Q_CLOSED (1ull << 63)           /* head: end of stream marked */
#define SB_Q_SKIP (1ull << 63)             /* slot word: no message at this seq */
#define SB_Q_TENTATIVE (1ull << 63)        /* held: intent, not yet confirmed */
#define SB_Q_SEQ (~(1ull << 63))           /* the sequence part of those words */
#define SB_Q_ORPHAN UINT64_MAX             /* member token: holder died */
#define SB_Q_DETACHED 1ull                 /* floor word: group does not gate */

/* A group is CREATING from the moment it gates producers until its start
 * is final; a join that finds it so (its creator died) finishes it. */
enum { SB_Q_GROUP_FREE = 0, SB_Q_GROUP_READY = 1, SB_Q_GROUP_CREATING = 2 };

struct sb_q_ctl {
	_Atomic uint64_t head;                 /* next seq to claim | SB_Q_CLOSED */
	uint8_t pad0[SB_LINE - 8];
	/* read-mostly */
	_Atomic uint64_t epoch;                /* bumped when a group is created */
	_Atomic uint32_t groups_hi;            /* records in use lie below these */
	_Atomic uint32_t members_hi;
	_Atomic uint32_t producers_hi;
	uint32_t pad1_;
	_Atomic uint64_t closed;               /* head at shut | SB_Q_CLOSED; 0 open.
	                                          A copy of head's end-of-stream mark on
	                                          a line producers never write, so that
	                                          waiting consumers poll it instead of
	                                          head (the line every claim writes) */
	uint8_t pad1[SB_LINE - 32];
	_Atomic uint32_t cons_waiters;         /* consumers asleep on cons_event */
	_Atomic uint32_t cons_event;
	_Atomic uint64_t cons_need;            /* lowest seq a sleeping consumer waits for */
	uint8_t pad2[SB_LINE - 16];
	_Atomic uint32_t prod_waiters;         /* producers asleep on prod_event */
	_Atomic uint32_t prod_event;
	_Atomic uint64_t prod_need;            /* lowest gate a sleeping producer waits for */
	uint8_t pad3[SB_LINE - 16];
	/* immutable after creation */
	uint32_t magic;
	uint32_t slots;
	uint64_t max_msg;
	uint64_t stride;
	uint64_t data_off;
	uint32_t max_groups;
	uint32_t max_members;
	uint32_t max_producers;
	uint32_t pad4_;
	uint64_t prod_off, group_off, member_off, slot_off;
	uint64_t cell_bytes;                   /* 0: a message per slot (1.0) */
	uint64_t cell_off;                     /* cells, with cell_bytes */
	uint8_t pad5[2 * SB_LINE - 96];
};
_Static_assert(sizeof(struct sb_q_ctl) == 6 * SB_LINE, "queue control is 6 lines");

struct sb_q_prod {
	_Atomic uint64_t token;                /* owner; 0 = free */
	_Atomic uint64_t intent;               /* seq+1 of the last claim attempt */
	_Atomic uint64_t intent_len;           /* cells: the claim's length in seqs
	                                          (pad included); 0 unused otherwise */
	uint8_t pad[SB_LINE - 24];
};
_Static_assert(sizeof(struct sb_q_prod) == SB_LINE, "producer record is a line");

struct sb_q_group {
	char name[SHMBUS_NAME_MAX + 1];
	_Atomic uint32_t state;                /* SB_Q_GROUP_*; changed under the bus mutex */
	uint32_t flags;                        /* SHMBUS_GROUP_* given at creation */
	_Atomic uint64_t floor;                /* f << 1 | SB_Q_DETACHED */
	_Atomic uint64_t live_ns;              /* CLOCK_MONOTONIC of the group's last
	                                          liveness checks (sb_q_live_due); 0
	                                          in segments made before it */
	uint8_t pad1[SB_LINE - 24];
	_Atomic uint64_t cursor;               /* next seq the group hands out */
	_Atomic int64_t orphans;               /* hint: held messages of dead members */
	uint8_t pad2[SB_LINE - 16];
};
_Static_assert(sizeof(struct sb_q_group) == 3 * SB_LINE, "group record is 3 lines");

struct sb_q_member {
	_Atomic uint64_t token;                /* owner; 0 free; SB_Q_ORPHAN */
	_Atomic uint32_t group;
	uint32_t pad_;
	_Atomic uint64_t held;                 /* seq+1 held (| SB_Q_TENTATIVE); 0 none */
	uint8_t pad[SB_LINE - 24];
};
_Static_assert(sizeof(struct sb_q_member) == SB_LINE, "member record is a line");

/* A slot, or with cells the meta of a cell: only a record's first seq has
 * its meta written (inner seqs keep older laps' words). */
struct sb_q_slot {
	_Atomic uint64_t published;            /* seq+1 of the message here (| SB_Q_SKIP) */
	uint32_t len;                          /* bytes of the message */
	uint32_t flags;                        /* cells: the record's length in seqs
	                                          (a SKIP's too); 0 otherwise */
};
_Static_assert(sizeof(struct sb_q_slot) == 16, "a slot's meta is 16 bytes");

/* Where everything lies; computed from validated parameters only. */
struct sb_q_geom {
	uint64_t slots, max_msg, stride, data_off, cell_bytes, cell_off;
	uint32_t max_groups, max_members, max_producers;
	uint64_t prod_off, group_off, member_off, slot_off, area;
};

/* line_stride: a line per slot, as segments made before small slots were
 * packed have it (accepted on open; new queues are packed). */
int sb_q_geometry(const struct sb_params *p, int line_stride, struct sb_q_geom *g);
/* Tests only: non-zero makes new queues with the line-per-slot layout, to
 * check that such segments still open and work. */
extern int sb_q_make_line_stride;

/* Process-local, validated view of one queue area. */
struct sb_q_view {
	shmbus_bus_t *bus;
	uint32_t index;                        /* directory slot: the bell's channel */
	const char *name;
	struct sb_q_ctl *ctl;
	struct sb_q_prod *prods;
	struct sb_q_group *groups;
	struct sb_q_member *members;
	uint8_t *slots;
	uint8_t *cells;                        /* with cell_bytes: the cells */
	uint64_t size, mask, stride, data_off, max_msg;
	uint64_t cell;                         /* cell_bytes; 0: a message per slot */
	uint32_t max_groups, max_members, max_producers;
	uint64_t *pos;                         /* scratch, max_groups entries */
};

int sb_q_view_init(struct sb_q_view *v, struct sb_chan *ch);
void sb_q_view_free(struct sb_q_view *v);

struct shmbus_queue {
	struct sb_chan ch;
	struct sb_q_view v;
	uint64_t token;
	int policy;
	int64_t spin_ns;
	/* producing */
	int32_t prod;                          /* record index; -1 none yet */
	uint64_t gate;                         /* cached: lowest seq not released */
	uint64_t epoch;                        /* ctl->epoch when gate was computed */
	uint64_t claimed;                      /* seq+1 of the open reservation */
	size_t claimed_len;
	uint64_t claimed_k;                    /* its cells (1 without cells) */
	uint64_t owed;                         /* seq+1 claimed, skip not yet published */
	uint64_t owed_k;                       /* its length in seqs */
	uint64_t unsignalled;                  /* seq+1 of the last publication made
	                                          without the waiter check; 0 none */
	/* consuming */
	int32_t group, member;                 /* -1 until joined */
	char group_name[SHMBUS_NAME_MAX + 1];
	uint64_t held;                         /* seq+1 of the message taken; 0 none */
	uint32_t held_flags;
	int kept;                              /* taken but not handed out (ETOOBIG) */
	int spent;                             /* held, already copied out by get_many:
	                                          the next take replaces the hold */
	int scan_orphans;                      /* look for orphans even without the hint */
	uint64_t elapsed;                      /* skipped messages to report once */
};
_Static_assert(offsetof(struct shmbus_queue, ch) == 0, "wait sets find the channel first");

static inline struct sb_q_slot *sb_q_slot(const struct sb_q_view *v, uint64_t seq)
{
	return (struct sb_q_slot *)(v->slots + (seq & v->mask) * v->stride);
}

/* The bytes of the record starting at seq: its slot's data, or its first
 * cell (a record's cells are contiguous: it never wraps). */
static inline uint8_t *sb_q_data(const struct sb_q_view *v, uint64_t seq)
{
	if (v->cell)
		return v->cells + (seq & v->mask) * v->cell;
	return (uint8_t *)sb_q_slot(v, seq) + v->data_off;
}

/* Seqs a message of len bytes takes: 1, or with cells max(1, its cells). */
static inline uint64_t sb_q_cells(const struct sb_q_view *v, size_t len)
{
	return v->cell && len > v->cell ? (len + v->cell - 1) / v->cell : 1;
}

/* The record length (seqs) of the meta at seq, read once, NOT checked:
 * callers check it (sb_q_rec_ok) before use. 1 without cells. */
static inline uint64_t sb_q_rec_k(const struct sb_q_view *v, const struct sb_q_slot *s)
{
	/* relaxed: like len (see sb_q_copy); published by the slot word. */
	return v->cell ? __atomic_load_n(&s->flags, __ATOMIC_RELAXED) : 1;
}

/* A message record of k seqs and len bytes starting at seq c lies inside
 * the ring and holds its bytes. */
static inline int sb_q_rec_ok(const struct sb_q_view *v, uint64_t c, uint64_t k, uint64_t len)
{
	if (!v->cell)
		return k == 1 && len <= v->max_msg;
	return k >= 1 && (c & v->mask) + k <= v->size && len <= v->max_msg &&
	       len <= k * v->cell;
}

/* A copying take may read a slot while a producer rewrites it for its
 * next lap: another member took the message meanwhile, so the take's
 * cursor CAS fails and its copy is dropped. The protocol tolerates that
 * race; to keep it a race between atomics (so that ThreadSanitizer checks
 * the real path and reports only real races), the slot's bytes and length
 * are written by put and read by the copying take with relaxed accesses:
 * the copy goes through sb_racy_copy under TSan and is a plain memcpy
 * otherwise, and a relaxed 32-bit load or store is a plain mov. */
static inline void sb_q_copy(void *dst, const void *src, size_t n)
{
#ifdef SB_TSAN
	sb_racy_copy(dst, src, n);
#else
	memcpy(dst, src, n);
#endif
}

static inline uint32_t sb_q_len(const struct sb_q_slot *s)
{
	/* relaxed: see sb_q_copy; the message is published or re-checked
	 * by the caller's slot word and cursor. */
	return __atomic_load_n(&s->len, __ATOMIC_RELAXED);
}

static inline void sb_q_set_len(struct sb_q_slot *s, size_t len)
{
	/* relaxed: see sb_q_copy; published by the slot word's store. */
	__atomic_store_n(&s->len, (uint32_t)len, __ATOMIC_RELAXED);
	s->flags = 0;
}

/* With cells: the record's length in bytes and seqs. */
static inline void sb_q_set_rec(struct sb_q_slot *s, size_t len, uint64_t k)
{
	/* relaxed: see sb_q_copy; published by the slot word's store (a
	 * skipper's by its CAS, under its hold). */
	__atomic_store_n(&s->len, (uint32_t)len, __ATOMIC_RELAXED);
	__atomic_store_n(&s->flags, (uint32_t)k, __ATOMIC_RELAXED);
}

static inline uint32_t sb_q_hi(_Atomic uint32_t *w, uint32_t max)
{
	/* acquire: records below the mark were set up before it was raised. */
	uint32_t n = atomic_load_explicit(w, memory_order_acquire);

	return n < max ? n : max;
}

/* Raise a high-water mark (under the bus mutex) before the new record is
 * used. seq_cst: scanners load it after the words that depend on it. */
static inline void sb_q_raise_hi(_Atomic uint32_t *hi, uint32_t n)
{
	SB_STEP("queue.raise_hi.hi");
	if (atomic_load_explicit(hi, memory_order_relaxed) < n)
		atomic_store_explicit(hi, n, memory_order_seq_cst);
}

/* One blocking call's timing, started lazily: nothing reads the clock
 * until the call actually has to wait. */
struct sb_q_wait {
	int started;
	int parking;                 /* the spin phase is over */
	struct sb_park pk;           /* deadline, spin budget, segment checks */
	uint64_t next_live;          /* when to check the liveness of others */
	int exact;                   /* consumer: has parked or checked liveness,
	                                wants end of stream from head itself */
};

static inline void sb_q_wait_start(struct sb_q_wait *w, const shmbus_queue_t *q,
                                   int64_t timeout_ns)
{
	uint64_t now = sb_park_start(&w->pk, &q->ch, timeout_ns, q->policy, q->spin_ns);

	w->started = 1;
	w->next_live = now + (uint64_t)q->ch.bus->liveness_ns;
}

/* How long a park may sleep before the next liveness check (the park
 * also stops at the deadline and the end of a slice). */
static inline int64_t sb_q_live_ns(const struct sb_q_wait *w, uint64_t now)
{
	return w->next_live > now ? (int64_t)(w->next_live - now) : 1;
}

/* 1 if seq h may be written under gate: h - slots < gate. Written without
 * the subtraction that would wrap when the gate has passed h (another
 * producer's claims were consumed since h was read). */
static inline int sb_q_fits(uint64_t h, uint64_t gate, uint64_t slots)
{
	return h < gate || h - gate < slots;
}

/* Wake every sleeping consumer (producer) and ring the bus's bell (a wait
 * set's message/end (space) members), after a seq_cst change. */
void sb_q_wake_consumers(struct sb_q_view *v);
void sb_q_wake_producers(struct sb_q_view *v);

/* A waiter about to sleep asks to be woken once its condition may hold:
 * *w (prod_need: the gate a producer needs; cons_need: the seq a consumer
 * waits for) keeps the lowest request until a wake-up resets it to
 * UINT64_MAX. Also used on segments made before cons_need existed, where
 * it reads 0: every publication then wakes, as it always did. */
static inline void sb_q_want(_Atomic uint64_t *w, uint64_t need)
{
	/* seq_cst: if the value read predates a wake-up's reset, the event
	 * load the sleeper made before us predates that wake-up's event
	 * change too (the reset comes first), so its futex wait returns at
	 * once; otherwise the waker's later seq_cst load sees this value or a
	 * lower one. */
	uint64_t cur = atomic_load_explicit(w, memory_order_seq_cst);

	/* seq_cst: the request is made before the sleeper re-checks its
	 * condition; with the waker's change then its loads of the waiter
	 * count and the request, it forms the store-load pair that keeps a
	 * wake-up from being lost. */
	while (need < cur &&
	       !atomic_compare_exchange_weak_explicit(w, &cur, need,
	                                              memory_order_seq_cst, memory_order_seq_cst))
		;
}

/* After a seq_cst change that may raise the gate (a hold dropped, a skipped
 * seq passed), wake sleeping producers if the releasing group's cursor has
 * reached the lowest request: the release that lets a producer through is
 * made by a group whose cursor is then at or past the request. */
static inline void sb_q_release_wake(struct sb_q_view *v, _Atomic uint64_t *cursor)
{
	struct sb_q_ctl *ctl = v->ctl;
	uint64_t need;

	/* Wait sets look for space themselves (sb_queue_ready). */
	sb_bell_ring(v->bus, v->index);
	/* seq_cst: the load half of the store-load pair with wait_space
	 * (prod_waiters, prod_need, then the gate's cursor and hold loads). */
	if (atomic_load_explicit(&ctl->prod_waiters, memory_order_seq_cst) == 0)
		return;
	/* seq_cst: the request before the cursor (see wait_space). */
	need = atomic_load_explicit(&ctl->prod_need, memory_order_seq_cst);
	if (atomic_load_explicit(cursor, memory_order_seq_cst) >= need)
		sb_q_wake_producers(v);
}

/* After seq_cst publications up to seq last (word last+1), wake sleeping
 * consumers if one may be waiting for one of them: a sleeper waits for
 * its group's cursor c and asked for c in cons_need; a publication below
 * the lowest request helps nobody (cursors never move back). */
static inline void sb_q_signal_consumers(struct sb_q_view *v, uint64_t last)
{
	struct sb_q_ctl *ctl = v->ctl;

	/* Wait sets decide for themselves which group the message serves. */
	sb_bell_ring(v->bus, v->index);
	/* seq_cst: the load half of the store-load pair with wait_data (its
	 * count increment and request, then its re-check of the slot). */
	if (atomic_load_explicit(&ctl->cons_waiters, memory_order_seq_cst) == 0)
		return;
	/* seq_cst: the request after the count (see sb_q_want). */
	if (last >= atomic_load_explicit(&ctl->cons_need, memory_order_seq_cst))
		sb_q_wake_consumers(v);
}

/* Publish seq (word = seq+1, | SB_Q_SKIP for no message) and wake sleeping
 * consumers if one waits for it. */
static inline void sb_q_publish(struct sb_q_view *v, struct sb_q_slot *s, uint64_t word)
{
	/* seq_cst: publishes the message (pairs with the acquire loads of
	 * published by consumers) and, with the seq_cst loads of cons_waiters
	 * and cons_need, forms the store-load pair wait_data relies on: either
	 * we see its count and request or it sees this word before sleeping. */
	SB_STEP("queue.publish.published");
	atomic_store_explicit(&s->published, word, memory_order_seq_cst);
	sb_q_signal_consumers(v, (word & SB_Q_SEQ) - 1);
}

/* The gate: the lowest sequence some gating group has not released (head if
 * no group gates). *blocker gets the group that sets it (-1: none), *epoch
 * the epoch the computation is valid for. */
uint64_t sb_q_gate(struct sb_q_view *v, int32_t *blocker, uint64_t *epoch);
/* The same with scratch pos[] of max_groups entries of the caller's (a
 * wait set's, which may look while the handle's owner uses v->pos). */
uint64_t sb_q_gate_with(struct sb_q_view *v, uint64_t *pos, int32_t *blocker,
                        uint64_t *epoch);

/* Publish the skip of a claim whose wait failed (queue_produce.c). */
int sb_q_pay_owed(shmbus_queue_t *q, int64_t timeout_ns, struct sb_q_wait *w);

/* Non-zero if the liveness checks of group gi are due -- nobody blocked on
 * it ran them for liveness_ns -- and this caller now owns the round: 2 if
 * the previous round ran less than 2 x liveness_ns ago (the group has kept
 * someone waiting for a liveness timeout at least), else 1. The time is
 * kept in the group, not in one call, so that callers that wait in calls
 * shorter than the liveness timeout, or poll, still run them. */
int sb_q_live_due(struct sb_q_view *v, int32_t gi, uint64_t now, int64_t liveness_ns);

/* Liveness repairs, called by blocked peers and gc. */
int sb_q_skip_abandoned(struct sb_q_view *v, uint64_t seq);
/* With cells: member m of group g (cursor at c) passes a dead claim at c
 * by the rule of tests/model/vqueue.pml. 1 if it published a SKIP. */
int sb_q_skip_dead_claim(struct sb_q_view *v, struct sb_q_member *m, struct sb_q_group *g,
                         uint64_t c);
/* With cells: a caller that is not a member of group gi (a blocked
 * producer, gc) passes a dead claim at its cursor by the same rule, with a
 * member record of the group borrowed for the call. Takes the bus mutex;
 * 1 if it published a SKIP. */
int sb_q_pass_dead_claim(struct sb_q_view *v, int32_t gi, uint64_t token);
uint32_t sb_q_reap_members(struct sb_q_view *v, int32_t group, uint32_t *orphaned);
uint32_t sb_q_reap_producers(struct sb_q_view *v);
/* Stop a group with no live member (and not DURABLE) from gating. Takes
 * the bus mutex; 1 if detached. */
int sb_q_maybe_detach(struct sb_q_view *v, int32_t group);
/* Members of group (live ones returned, all in *total if not NULL). */
uint32_t sb_q_live_members(struct sb_q_view *v, uint32_t group, uint32_t *total);
/* Under the bus mutex, at join: a detached group gates again; returns how
 * many messages it lost while detached. */
uint64_t sb_q_reactivate(struct sb_q_view *v, uint32_t gi);
/* Under the bus mutex: free the orphan records of group gi whose hold lies
 * below seq `below` (UINT64_MAX: all of them); how many. */
uint32_t sb_q_drop_orphans(struct sb_q_view *v, uint32_t gi, uint64_t below);
/* Under the bus mutex: a member record of group gi for token; its index
 * or SHMBUS_ENOSPC. */
int sb_q_add_member(struct sb_q_view *v, uint32_t gi, uint64_t token);

#endif /* SHMBUS_QUEUE_H */

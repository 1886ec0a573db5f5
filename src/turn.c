/*
 * turn.c -- turn channels: control handed round N registered parties in
 * order, with futex wake-ups, surviving the death of a party.
 *
 * Protocol. A table of party slots (token per slot, claimed by CAS) and one
 * word, turn, naming the party whose turn it is (0 at creation). acquire
 * waits until turn names the caller, counting itself in `waiters` while it
 * may sleep; release stores the next registered slot after the caller
 * (wrapping) and wakes every sleeper when the count is not zero. (A flag
 * cleared by the releaser lost wake-ups: a waiter that raised it after the
 * releaser's CAS had its flag cleared and slept unannounced. A party killed
 * asleep leaves the count raised: later releases then each cost a
 * FUTEX_WAKE, never a lost turn.) A waiter that sleeps a whole liveness timeout checks
 * the party whose turn it is: an empty slot or a dead process is
 * unregistered and skipped by CAS.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "sigbus.h"
#include "sync.h"

#define SB_TURN_MAGIC 0x4e525554u  /* "TURN" */
#define SB_TURN_DEFAULT 16u
#define SB_TURN_MAX 4096u

struct sb_turn_ctl {
	_Atomic uint32_t turn;     /* party whose turn it is */
	_Atomic uint32_t waiters;  /* parties that may sleep on turn */
	_Atomic uint32_t nparties; /* slots ever registered: 1 + highest index */
	uint32_t max;
	uint32_t magic;
	uint8_t pad[SB_LINE - 20];
	/* followed by max party tokens (_Atomic uint64_t) */
};
_Static_assert(sizeof(struct sb_turn_ctl) == SB_LINE, "turn control is a line");

struct shmbus_turn {
	struct sb_chan ch;
	struct sb_turn_ctl *c;
	_Atomic uint64_t *slot;
	uint32_t max;
	uint32_t party;
	uint64_t token;
	int registered, holding;
	int policy;                /* shmbus_wait_policy_t, from the options */
	int64_t spin_ns;
};
_Static_assert(offsetof(struct shmbus_turn, ch) == 0, "wait sets find the channel first");

static int turn_plan(struct sb_params *p, uint64_t *area)
{
	if (p->param[0] == 0)
		p->param[0] = SB_TURN_DEFAULT;
	if (p->param[0] > SB_TURN_MAX)
		return sb_err(SHMBUS_EINVAL, "turn with %llu parties: the limit is %u",
		              (unsigned long long)p->param[0], SB_TURN_MAX);
	return sb_plain_plan(p, sizeof(struct sb_turn_ctl) + p->param[0] * 8, area);
}

static int turn_init(uint8_t *area, uint64_t size, const struct sb_params *p)
{
	struct sb_turn_ctl *c = (struct sb_turn_ctl *)area;

	(void)size;
	c->max = (uint32_t)p->param[0];
	c->magic = SB_TURN_MAGIC;
	return 0;
}

static int turn_check(const uint8_t *area, uint64_t size, const struct sb_params *p)
{
	const struct sb_turn_ctl *c = (const struct sb_turn_ctl *)area;

	if (p->param[0] == 0 || p->param[0] > SB_TURN_MAX)
		return sb_err(SHMBUS_ECORRUPT, "turn with %llu parties",
		              (unsigned long long)p->param[0]);
	if (sb_check_magic(area, size, sizeof(*c) + p->param[0] * 8,
	                offsetof(struct sb_turn_ctl, magic), SB_TURN_MAGIC))
		return SHMBUS_ECORRUPT;
	if (c->max != p->param[0])
		return sb_err(SHMBUS_ECORRUPT, "turn control says %u parties, the directory %llu",
		              c->max, (unsigned long long)p->param[0]);
	return 0;
}

/* The next registered slot after `from` (wrapping), or from itself. */
static uint32_t turn_next(_Atomic uint64_t *slot, uint32_t n, uint32_t from)
{
	uint32_t k;

	for (k = 1; k <= n; k++) {
		uint32_t j = (from + k) % n;

		/* relaxed: a registration is a single word. */
		if (atomic_load_explicit(&slot[j], memory_order_relaxed) != 0)
			return j;
	}
	return from;
}

static uint32_t turn_count(struct sb_turn_ctl *c, uint32_t max)
{
	/* relaxed: a monotonic maximum, clamped to the local max. */
	uint32_t n = atomic_load_explicit(&c->nparties, memory_order_relaxed);

	return n > max ? max : n;
}

/* Hand the turn from party t to the next one and wake the sleepers. */
static void turn_pass(const struct sb_chan *ch, struct sb_turn_ctl *c,
                      _Atomic uint64_t *slot, uint32_t max, uint32_t t)
{
	uint32_t n = turn_count(c, max);
	uint32_t next = n ? turn_next(slot, n, t) : t;

	/* seq_cst: releases what party t did in its turn (pairs with the
	 * acquire load in acquire) and, with the load of waiters, forms the
	 * store-load pair with a waiter's announce-then-read. Fails
	 * harmlessly if someone already moved the turn on. */
	SB_STEP("turn.turn_pass.turn");
	if (next != t &&
	    atomic_compare_exchange_strong_explicit(&c->turn, &t, next, memory_order_seq_cst,
	                                            memory_order_relaxed)) {
		sb_park_wake(&c->waiters, &c->turn, INT_MAX);
		sb_chan_ring(ch);
	}
}

/* Skip party t if its slot is empty or its process is dead. */
static void turn_skip_dead(const struct sb_chan *ch, struct sb_turn_ctl *c,
                           _Atomic uint64_t *slot, uint32_t max, uint32_t t)
{
	/* relaxed: a registration is a single word; the CAS decides. */
	uint64_t tok = atomic_load_explicit(&slot[t], memory_order_relaxed);

	if (tok != 0 && sb_token_alive(ch->bus, tok))
		return;
	SB_STEP("turn.turn_skip_dead.tok");
	if (tok != 0)    /* relaxed: unregisters the dead; a CAS, so a new party is kept */
		atomic_compare_exchange_strong_explicit(&slot[t], &tok, 0, memory_order_relaxed,
		                                        memory_order_relaxed);
	turn_pass(ch, c, slot, max, t);
}

static int turn_gc(struct sb_chan *ch, uint32_t *reaped)
{
	struct sb_turn_ctl *c = (struct sb_turn_ctl *)ch->area;
	_Atomic uint64_t *slot = (_Atomic uint64_t *)(ch->area + sizeof(*c));
	uint32_t max = (uint32_t)ch->p.param[0], i, t;

	*reaped = 0;
	for (i = 0; i < max; i++) {
		/* relaxed: a registration is a single word; the CAS decides. */
		uint64_t tok = atomic_load_explicit(&slot[i], memory_order_relaxed);

		SB_STEP("turn.turn_gc.tok");
		if (tok != 0 && !sb_token_alive(ch->bus, tok) &&
		    atomic_compare_exchange_strong_explicit(&slot[i], &tok, 0,
		                                            memory_order_relaxed,
		                                            memory_order_relaxed))
			(*reaped)++;
	}
	/* relaxed: turn_pass's CAS decides. */
	t = atomic_load_explicit(&c->turn, memory_order_relaxed);
	if (t < max && atomic_load_explicit(&slot[t], memory_order_relaxed) == 0)
		turn_pass(ch, c, slot, max, t);
	return 0;
}

static void turn_info(struct sb_chan *ch, shmbus_channel_info_t *info)
{
	struct sb_turn_ctl *c = (struct sb_turn_ctl *)ch->area;

	/* relaxed: a snapshot for display. */
	info->seq = atomic_load_explicit(&c->turn, memory_order_relaxed);
	info->capacity = ch->p.param[0];
}

const struct sb_kind_ops sb_turn_ops = {
	.plan = turn_plan,
	.init = turn_init,
	.check = turn_check,
	.gc = turn_gc,
	.info = turn_info,
};

void shmbus_turn_opts_init(shmbus_turn_opts_t *opts)
{
	sb_sync_opts_init(opts, sizeof(*opts));
}

static void turn_opts_init(void *opts)
{
	shmbus_turn_opts_init(opts);
}

static int turn_opts_check(void *opts, const char *name, struct sb_params *want)
{
	const shmbus_turn_opts_t *o = opts;

	if (o->max_parties > SB_TURN_MAX)
		return sb_err(SHMBUS_EINVAL, "turn '%s': %u parties, the limit is %u", name,
		              o->max_parties, SB_TURN_MAX);
	want->param[0] = o->max_parties;  /* 0: the default, 16 (turn_plan) */
	return sb_sync_opts_check(opts, name, want);
}

int shmbus_turn_open(shmbus_bus_t *bus, const char *name, const shmbus_turn_opts_t *opts,
                     shmbus_turn_t **out)
{
	shmbus_turn_t *t;
	int r;

	if (!bus || !out)
		return sb_err(SHMBUS_EINVAL, "shmbus_turn_open: NULL argument");
	*out = NULL;
	if (!(t = calloc(1, sizeof(*t))))
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	if ((r = sb_sync_open(bus, name, SHMBUS_KIND_TURN, turn_opts_check, turn_opts_init, opts,
	                      &t->ch, &t->policy, &t->spin_ns)) != 0) {
		free(t);
		return r;
	}
	t->c = (struct sb_turn_ctl *)t->ch.area;
	t->slot = (_Atomic uint64_t *)(t->ch.area + sizeof(struct sb_turn_ctl));
	t->max = (uint32_t)t->ch.p.param[0];
	t->token = sb_self_token();
	*out = t;
	return 0;
}

int shmbus_turn_close(shmbus_turn_t *t)
{
	if (!t)
		return 0;
	if (t->registered) {
		uint64_t tok = t->token;

		/* relaxed: the slot is ours; the pass below publishes. */
		SB_STEP("turn.turn_close.tok");
		atomic_compare_exchange_strong_explicit(&t->slot[t->party], &tok, 0,
		                                        memory_order_relaxed,
		                                        memory_order_relaxed);
		turn_pass(&t->ch, t->c, t->slot, t->max, t->party);
	}
	free(t);
	return 0;
}

int shmbus_turn_register(shmbus_turn_t *t, uint32_t *party)
{
	uint32_t i, n;

	if (!t)
		return sb_err(SHMBUS_EINVAL, "turn is NULL");
	if (t->registered) {
		if (party)
			*party = t->party;
		return 0;
	}
	for (i = 0; i < t->max; i++) {
		/* relaxed: a hint; the claiming CAS decides. */
		uint64_t tok = atomic_load_explicit(&t->slot[i], memory_order_relaxed);

		if (tok != 0 && sb_token_alive(t->ch.bus, tok))
			continue;
		/* acq_rel: claims the slot; a racing registrant loses the CAS. */
		SB_STEP("turn.turn_register.tok");
		if (atomic_compare_exchange_strong_explicit(&t->slot[i], &tok, t->token,
		                                            memory_order_acq_rel,
		                                            memory_order_relaxed))
			break;
	}
	if (i == t->max)
		return sb_err(SHMBUS_ENOSPC, "turn '%s': all %u parties are registered",
		              t->ch.name, t->max);
	n = atomic_load_explicit(&t->c->nparties, memory_order_relaxed);
	/* relaxed: a monotonic maximum; readers clamp it to max. */
	SB_STEP("turn.turn_register.nparties");
	while (n < i + 1 &&
	       !atomic_compare_exchange_weak_explicit(&t->c->nparties, &n, i + 1,
	                                              memory_order_relaxed,
	                                              memory_order_relaxed))
		;
	t->party = i;
	t->registered = 1;
	if (party)
		*party = i;
	return 0;
}

/* A turn read from pages lost to a truncation is no turn. */
static int turn_taken(shmbus_turn_t *t)
{
	if (sb_map_damaged(t->ch.bus->base))
		return sb_chan_damage_err(&t->ch);
	t->holding = 1;
	return 0;
}

int shmbus_turn_acquire(shmbus_turn_t *t, int64_t timeout_ns)
{
	int64_t live = t ? t->ch.bus->liveness_ns : 0;
	struct sb_park p;
	uint32_t cur;
	int r, rc;

	if (!t)
		return sb_err(SHMBUS_EINVAL, "turn is NULL");
	if (!t->registered)
		return sb_err(SHMBUS_ESTATE, "turn '%s': register before acquire", t->ch.name);
	if (t->holding)
		return sb_err(SHMBUS_ESTATE, "turn '%s': already acquired", t->ch.name);
	/* acquire: pairs with the seq_cst CAS in turn_pass. Our turn already
	 * costs no clock read. */
	if (atomic_load_explicit(&t->c->turn, memory_order_acquire) == t->party)
		return turn_taken(t);
	sb_park_start(&p, &t->ch, timeout_ns, t->policy, t->spin_ns);
	sb_park_liveness(&p, live);
	for (;;) {
		/* acquire: pairs with the seq_cst CAS in turn_pass. */
		cur = atomic_load_explicit(&t->c->turn, memory_order_acquire);
		if (cur == t->party)
			return turn_taken(t);
		/* Out of time: the park below still looks for dead parties
		 * once (a sleep of 0 ns times out at once). */
		r = sb_park_spin(&p);
		if (r == 0 || r == SHMBUS_ETIMEDOUT)
			break;
		if (r < 0)
			return r;
		/* A spinner that never parks skips a dead party once per
		 * liveness timeout, as a sleeper does. */
		if (r == SB_PARK_LIVE && cur < t->max)
			turn_skip_dead(&t->ch, t->c, t->slot, t->max, cur);
	}
	for (;;) {
		sb_park_prepare(&t->c->waiters);
		/* seq_cst: the re-check; pairs with turn_pass's CAS and its load
		 * of waiters. */
		cur = atomic_load_explicit(&t->c->turn, memory_order_seq_cst);
		r = cur != t->party ? sb_park_sleep(&p, &t->c->turn, cur, live) : 0;
		/* Truncated, overwritten or deleted while we slept. */
		rc = sb_park_cancel(&p, &t->c->waiters);
		if (rc)
			return rc;
		/* acquire: pairs with the seq_cst CAS in turn_pass. */
		cur = atomic_load_explicit(&t->c->turn, memory_order_acquire);
		if (cur == t->party)
			return turn_taken(t);
		if (cur >= t->max)
			return sb_err(SHMBUS_ECORRUPT, "turn '%s' names party %u of %u",
			              t->ch.name, cur, t->max);
		if (r == SHMBUS_EINTR)
			return sb_err(r, "interrupted while waiting for a turn on '%s'",
			              t->ch.name);
		if (r == SHMBUS_ETIMEDOUT) {
			turn_skip_dead(&t->ch, t->c, t->slot, t->max, cur);
			/* The skip may have passed the turn to us: a call
			 * whose time is up (timeout 0) still takes it.
			 * acquire: pairs with the seq_cst CAS in turn_pass. */
			if (atomic_load_explicit(&t->c->turn, memory_order_acquire) == t->party)
				return turn_taken(t);
		} else if (r < 0)
			return r;
		if (sb_park_left(&p) == 0)
			return sb_err(SHMBUS_ETIMEDOUT, "turn '%s': party %u still has the turn",
			              t->ch.name, cur);
	}
}

int shmbus_turn_release(shmbus_turn_t *t)
{
	if (!t)
		return sb_err(SHMBUS_EINVAL, "turn is NULL");
	if (!t->holding)
		return sb_err(SHMBUS_ESTATE, "turn '%s': release without acquire", t->ch.name);
	t->holding = 0;
	turn_pass(&t->ch, t->c, t->slot, t->max, t->party);
	return 0;
}

/* ---- readiness, for wait sets (waitset.c) --------------------------- */

int sb_turn_party(shmbus_turn_t *t, uint32_t *party)
{
	*party = t->party;
	return t->registered ? 0 : SHMBUS_ESTATE;
}

int sb_turn_ready(shmbus_turn_t *t, uint32_t party, int live)
{
	/* seq_cst: the re-check half of the store-load pair with turn_pass
	 * (its CAS, then its load of the bell's `sets`). */
	uint32_t cur = atomic_load_explicit(&t->c->turn, memory_order_seq_cst);
	uint64_t tok;

	if (cur == party || cur >= t->max)
		return 1;              /* ours, or garbage: acquire reports it */
	if (!live)
		return 0;
	/* relaxed: a registration is a single word. An empty slot or a dead
	 * holder is skipped by the next acquire. */
	tok = atomic_load_explicit(&t->slot[cur], memory_order_relaxed);
	return tok == 0 || !sb_token_alive(t->ch.bus, tok);
}

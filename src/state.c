/*
 * state.c -- state channels: the latest value of a fixed-size typed array,
 * one writer (or several taking turns), any number of readers, never a torn
 * read.
 *
 * Protocol (a multi-buffered seqlock). The area holds a control block and
 * K value buffers (K = nbuf, 2..8), each with its own sequence word:
 *
 *   pub_seq     the sequence number s of the latest complete value (0: none).
 *               Written only by the writer.
 *   buf[i].seq  2s+1 while value s is being written into buffer i = s % K,
 *               2s once it is complete.
 *   writer      token (peers.c) of the process holding the writer
 *               role; taken by CAS from 0 or from a dead token. On a
 *               multi-writer channel (param[1] == SHMBUS_WRITERS_MANY) it
 *               is held only for the length of one write: a turn.
 *   waiters     number of readers asleep (or about to sleep) on pub_seq.
 *
 * Small values share cache lines with pub_seq or their sequence word (see
 * layout()), so a new 8-byte value reaches a reader in one line transfer.
 *
 * The writer of value s = pub_seq + 1 marks buf[s % K] odd, copies, marks it
 * even, then publishes pub_seq = s and, only if waiters != 0, wakes the
 * sleepers. It never touches the buffer of the value readers are most likely
 * reading (pub_seq % K), so readers retry only when the writer laps them by
 * K-1 whole values during one copy. A reader loads pub_seq, checks that
 * buf[s % K].seq == 2s, copies, and re-checks the sequence word; a mismatch
 * means retry. A writer killed mid-write leaves its buffer odd and pub_seq
 * naming the previous, complete value; the next writer overwrites the odd
 * buffer. Readers never block the writer.
 *
 * Several writers (SHMBUS_WRITERS_MANY, recorded in the directory entry so
 * every opener agrees): each write takes the writer word from 0 (or from a
 * dead token) for its own duration and gives it back after publishing, so
 * writes are exclusive, each value is pub_seq + 1 of the one before (seq
 * numbers stay monotonic and count every write), and the last write wins.
 * The data path is the single-writer one unchanged; a writer killed inside
 * its turn is exactly the single-writer crash above, taken over by the next
 * writer that finds the token dead. A writer waits for a live holder's turn
 * at most 10 liveness timeouts (SHMBUS_EBUSY after that: a stopped holder).
 */
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "sigbus.h"

#define SB_STATE_MAGIC 0x53544154u /* "STAT" */
#define SB_STATE_CTL 256u

struct sb_state_ctl {
	_Atomic uint64_t pub_seq;
	/* Small values live here, in pub_seq's own line (see layout()). */
	uint8_t inline_bufs[SB_LINE - 8];
	_Atomic uint64_t writer;
	uint8_t pad1[SB_LINE - 8];
	_Atomic uint32_t waiters;
	uint8_t pad2[SB_LINE - 4];
	/* immutable after creation */
	uint32_t magic;
	uint32_t nbuf;
	uint64_t value_size;
	uint64_t stride;
	uint64_t buf_base;
	uint64_t data_off;
	uint8_t pad3[SB_LINE - 40];
};
_Static_assert(sizeof(struct sb_state_ctl) == SB_STATE_CTL, "state control is 4 lines");

/* A buffer starts with its sequence word; its data follows at data_off. */
struct sb_state_buf {
	_Atomic uint64_t seq;
};

/* Where the K buffers go. Every buffer a reader touches costs a cache-line
 * transfer when the writer has changed it, so:
 *  - compact: tiny values (8 + K x (8 + value) <= 64, e.g. 8 bytes with
 *    K = 3) live inside pub_seq's own line: a new value reaches a reader in
 *    one line transfer, like a bare shared counter;
 *  - inline: values up to 56 bytes share their buffer's line with its
 *    sequence word;
 *  - otherwise each buffer is a sequence line followed by the data, padded
 *    to whole lines so buffers never share a line. */
struct sb_layout {
	uint64_t buf_base, stride, data_off, area;
};

static int layout(uint64_t value_size, uint64_t nbuf, struct sb_layout *l)
{
	uint64_t v8 = SB_ALIGN(value_size, 8);

	if (value_size <= SB_LINE && 8 + nbuf * (8 + v8) <= SB_LINE) {
		l->buf_base = 8;
		l->stride = 8 + v8;
		l->data_off = 8;
		l->area = SB_STATE_CTL;
		return 0;
	}
	if (value_size <= SB_LINE - 8) {
		l->stride = SB_LINE;
		l->data_off = 8;
	} else {
		l->stride = SB_LINE + SB_ALIGN(value_size, SB_LINE);
		l->data_off = SB_LINE;
	}
	l->buf_base = SB_STATE_CTL;
	if (__builtin_mul_overflow(l->stride, nbuf, &l->area) ||
	    __builtin_add_overflow(l->area, SB_STATE_CTL, &l->area))
		return sb_err(SHMBUS_ETOOBIG, "state value too large");
	return 0;
}

struct shmbus_state {
	struct sb_chan ch;
	struct sb_state_ctl *ctl;
	uint8_t *bufs;             /* area + buf_base */
	uint64_t size, stride, data_off;
	uint32_t nbuf;
	int policy;
	int64_t spin_ns;
	uint64_t token;
	int is_writer;             /* single: holds the role; many: holds a turn */
	int many;                  /* SHMBUS_WRITERS_MANY, from the directory */
	uint64_t writing;          /* seq of a write_begin not yet committed */
};
_Static_assert(offsetof(struct shmbus_state, ch) == 0, "wait sets find the channel first");

static int state_plan(struct sb_params *p, uint64_t *area)
{
	struct sb_layout l;
	uint64_t bytes;
	int dflt = p->param[0] == 0, r;

	if (dflt)
		p->param[0] = 3;
	if (p->param[0] < 2 || p->param[0] > 8)
		return sb_err(SHMBUS_EINVAL, "state nbuf is %llu; allowed 2..8",
		              (unsigned long long)p->param[0]);
	if (p->param[1] == 0)
		p->param[1] = SHMBUS_WRITERS_ONE;
	if (p->param[1] != SHMBUS_WRITERS_ONE && p->param[1] != SHMBUS_WRITERS_MANY)
		return sb_err(SHMBUS_EINVAL, "state writers is %llu; use SHMBUS_WRITERS_ONE or _MANY",
		              (unsigned long long)p->param[1]);
	if (sb_shape_bytes(p->dtype, p->ndim, p->shape, &bytes) != 0)
		return SHMBUS_EINVAL;
	p->value_size = bytes;
	if ((r = layout(bytes, p->param[0], &l)) != 0)
		return r;
	/* nbuf left to its default follows the bus: 2 buffers when 3 do not
	 * fit in the heap still free. */
	if (dflt && l.area > p->room) {
		p->param[0] = 2;
		if ((r = layout(bytes, p->param[0], &l)) != 0)
			return r;
	}
	*area = l.area;
	return 0;
}

static int state_init(uint8_t *area, uint64_t size, const struct sb_params *p)
{
	struct sb_state_ctl *ctl = (struct sb_state_ctl *)area;
	struct sb_layout l;

	(void)size;
	if (layout(p->value_size, p->param[0], &l) != 0)
		return SHMBUS_ETOOBIG;
	ctl->magic = SB_STATE_MAGIC;
	ctl->nbuf = (uint32_t)p->param[0];
	ctl->value_size = p->value_size;
	ctl->stride = l.stride;
	ctl->buf_base = l.buf_base;
	ctl->data_off = l.data_off;
	return 0;
}

static int state_check(const uint8_t *area, uint64_t size, const struct sb_params *p)
{
	const struct sb_state_ctl *ctl = (const struct sb_state_ctl *)area;
	struct sb_layout l;

	/* param[1] 0: a channel made before the option existed: one writer */
	if (size < SB_STATE_CTL || p->param[0] < 2 || p->param[0] > 8 ||
	    p->param[1] > SHMBUS_WRITERS_MANY || layout(p->value_size, p->param[0], &l) != 0)
		return sb_err(SHMBUS_ECORRUPT, "state area too small or bad nbuf");
	if (ctl->magic != SB_STATE_MAGIC || ctl->nbuf != p->param[0] ||
	    ctl->value_size != p->value_size || ctl->stride != l.stride ||
	    ctl->buf_base != l.buf_base || ctl->data_off != l.data_off)
		return sb_err(SHMBUS_ECORRUPT, "state control block disagrees with the directory");
	if (l.area > size)
		return sb_err(SHMBUS_ECORRUPT, "state buffers overrun the area");
	return 0;
}

static int state_gc(struct sb_chan *ch, uint32_t *reaped)
{
	struct sb_state_ctl *ctl = (struct sb_state_ctl *)ch->area;
	/* relaxed: a token is self-contained; the CAS settles races. */
	uint64_t w = atomic_load_explicit(&ctl->writer, memory_order_relaxed);

	*reaped = 0;
	/* relaxed: a dead writer published nothing more; a new writer's
	 * claim CAS orders itself. */
	SB_STEP("state.state_gc.writer");
	if (w != 0 && !sb_token_alive(ch->bus, w) &&
	    atomic_compare_exchange_strong_explicit(&ctl->writer, &w, 0,
	                                            memory_order_relaxed,
	                                            memory_order_relaxed))
		*reaped = 1;
	return 0;
}

static void state_info(struct sb_chan *ch, shmbus_channel_info_t *info)
{
	struct sb_state_ctl *ctl = (struct sb_state_ctl *)ch->area;

	/* relaxed: a snapshot for display. */
	info->seq = atomic_load_explicit(&ctl->pub_seq, memory_order_relaxed);
	info->capacity = ch->p.param[0];
	if (ch->p.param[1] == SHMBUS_WRITERS_MANY)
		info->flags |= SHMBUS_CHANNEL_MANY_WRITERS;
}

const struct sb_kind_ops sb_state_ops = {
	.plan = state_plan,
	.init = state_init,
	.check = state_check,
	.gc = state_gc,
	.info = state_info,
};

/* ---- open / close --------------------------------------------------- */

void shmbus_state_opts_init(shmbus_state_opts_t *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->size_of = sizeof(*opts);
	opts->dtype = SHMBUS_FLOAT64;
	opts->create = 1;
}

static void state_opts_init(void *opts)
{
	shmbus_state_opts_init(opts);
}

static int state_opts_check(void *opts, const char *name, struct sb_params *want)
{
	const shmbus_state_opts_t *o = opts;
	int r;

	if (o->reserved_)
		return sb_err(SHMBUS_EINVAL, "state '%s' options: reserved_ is %u, not 0", name,
		              o->reserved_);
	if ((r = sb_wait_opts_check("state", name, o->wait_policy, o->spin_ns)) != 0)
		return r;
	if (o->ndim > SHMBUS_MAX_DIMS)
		return sb_err(SHMBUS_EINVAL, "state '%s': %u dimensions, the limit is %d",
		              name, o->ndim, SHMBUS_MAX_DIMS);
	if (o->writers < SHMBUS_WRITERS_DEFAULT || o->writers > SHMBUS_WRITERS_MANY)
		return sb_err(SHMBUS_EINVAL, "state '%s': writers %d; use SHMBUS_WRITERS_ONE or _MANY",
		              name, o->writers);
	want->dtype = o->dtype;
	want->ndim = o->ndim;
	memcpy(want->shape, o->shape, sizeof(want->shape));
	if (o->create && o->ndim == 0) {  /* a scalar */
		want->ndim = 1;
		want->shape[0] = 1;
	}
	if (want->ndim != 0) {
		uint64_t bytes;

		if (!shmbus_dtype_name(o->dtype))
			return sb_err(SHMBUS_EINVAL, "state '%s': invalid dtype %d", name, o->dtype);
		r = sb_shape_bytes(want->dtype, want->ndim, want->shape, &bytes);
		if (r)
			return sb_err(r, "state '%s': %s", name, shmbus_last_error());
		want->value_size = bytes;
	}
	want->param[0] = o->nbuf;
	want->param[1] = (uint64_t)o->writers;   /* 0: as the channel is */
	return 0;
}

/* 1.0's layout, the smallest size_of accepted. */
#define SB_STATE_OPTS_1_0 72u
_Static_assert(sizeof(shmbus_state_opts_t) == SB_STATE_OPTS_1_0, "1.0 is the layout now");

static const struct sb_open_desc state_desc = {
	.kind = SHMBUS_KIND_STATE,
	.size = sizeof(shmbus_state_opts_t),
	.size_1_0 = SB_STATE_OPTS_1_0,
	.create_off = offsetof(shmbus_state_opts_t, create),
	.init = state_opts_init,
	.check = state_opts_check,
};

int shmbus_state_open(shmbus_bus_t *bus, const char *name,
                      const shmbus_state_opts_t *opts, shmbus_state_t **out)
{
	shmbus_state_opts_t o;
	shmbus_state_t *st;
	int r;

	if (!bus || !out)
		return sb_err(SHMBUS_EINVAL, "shmbus_state_open: NULL argument");
	*out = NULL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	shmbus_state_opts_init(&o);
	r = sb_kind_open(bus, name, &state_desc, opts, &o, &st->ch);
	if (r == SHMBUS_ETYPE && o.writers) {
		shmbus_channel_info_t ci;

		memset(&ci, 0, sizeof(ci));
		ci.size_of = sizeof(ci);
		if (shmbus_channel_info(bus, name, &ci) == 0 && ci.kind == SHMBUS_KIND_STATE &&
		    !(ci.flags & SHMBUS_CHANNEL_MANY_WRITERS) != (o.writers == SHMBUS_WRITERS_ONE))
			r = sb_err(SHMBUS_ETYPE, "state '%s' exists with %s, asked for %s", name,
			           ci.flags & SHMBUS_CHANNEL_MANY_WRITERS ? "many writers" : "one writer",
			           o.writers == SHMBUS_WRITERS_MANY ? "many writers" : "one writer");
		else
			r = SHMBUS_ETYPE;
	}
	if (r) {
		free(st);
		return r;
	}
	st->ctl = (struct sb_state_ctl *)st->ch.area;
	{
		struct sb_layout l;

		/* Recomputed locally from validated params (state_check agreed
		 * with the shared copy), never taken from the segment. */
		layout(st->ch.p.value_size, st->ch.p.param[0], &l);
		st->bufs = st->ch.area + l.buf_base;
		st->stride = l.stride;
		st->data_off = l.data_off;
	}
	st->size = st->ch.p.value_size;
	st->nbuf = (uint32_t)st->ch.p.param[0];
	/* from the validated directory copy: every opener agrees */
	st->many = st->ch.p.param[1] == SHMBUS_WRITERS_MANY;
	st->policy = o.wait_policy;
	st->spin_ns = o.spin_ns ? o.spin_ns : SB_DEFAULT_SPIN_NS;
	st->token = bus->token ? bus->token : sb_self_token();
	*out = st;
	return 0;
}

int shmbus_state_close(shmbus_state_t *st)
{
	if (!st)
		return 0;
	shmbus_state_release_writer(st);
	free(st);
	return 0;
}

size_t shmbus_state_size(const shmbus_state_t *st)
{
	return st ? (size_t)st->size : 0;
}

int shmbus_state_info(const shmbus_state_t *st, shmbus_channel_info_t *info)
{
	if (!st || !info)
		return sb_err(SHMBUS_EINVAL, "shmbus_state_info: NULL argument");
	return shmbus_channel_info(st->ch.bus, st->ch.name, info);
}

int shmbus_state_set_wait(shmbus_state_t *st, int policy, int64_t spin_ns)
{
	if (!st || policy < 0 || policy > SHMBUS_WAIT_PARK || spin_ns < 0)
		return sb_err(SHMBUS_EINVAL, "wait policy %d / spin_ns %lld invalid", policy,
		              (long long)spin_ns);
	st->policy = policy;
	st->spin_ns = spin_ns ? spin_ns : SB_DEFAULT_SPIN_NS;
	return 0;
}

/* ---- writing -------------------------------------------------------- */

/* Multi-writer: take the writer word for one write. A live holder (another
 * process, or another handle of this one: threads take turns too) is
 * waited for (spin, then yield, then short sleeps: a turn lasts one copy)
 * up to 10 x the bus's liveness timeout (2 s by default: generous, so that
 * a holder preempted on a loaded machine does not make another writer fail;
 * only a stopped one should); a dead one (killed inside its turn) is
 * replaced at once. */
#define SB_TURN_WAITS 10

static int take_turn(shmbus_state_t *st)
{
	uint64_t cur, t0 = 0, me;
	unsigned i;

	/* A handle inherited through fork writes under the child's own token,
	 * so the child's death inside a turn is noticed. */
	if (sb_inherited(st->token))
		st->token = sb_self_token();
	me = st->token;
	for (i = 0;; i++) {
		cur = 0;
		/* acquire: pairs with the release in end_turn (and in
		 * shmbus_state_release_writer): the previous holder's buffer
		 * and pub_seq stores happen before our load of pub_seq. */
		if (atomic_compare_exchange_strong_explicit(&st->ctl->writer, &cur, me,
		                                            memory_order_acquire,
		                                            memory_order_relaxed))
			break;
		if (i < 64) {
			sb_cpu_relax();
			continue;
		}
		/* a liveness check asks the kernel (fcntl): every 16th round only */
		if ((i & 15) == 0 && !sb_token_alive(st->ch.bus, cur)) {
			/* acquire: as above. A dead holder orders nothing; its
			 * stores were complete when it died, which we learned
			 * through the kernel (its OFD lock freed) before this CAS. An odd
			 * buffer it left is rewritten by our value pub_seq + 1. */
			if (atomic_compare_exchange_strong_explicit(&st->ctl->writer, &cur, me,
			                                            memory_order_acquire,
			                                            memory_order_relaxed))
				break;
			continue;
		}
		if (!t0)
			t0 = sb_now_ns();
		else if (sb_now_ns() - t0 > SB_TURN_WAITS * (uint64_t)st->ch.bus->liveness_ns)
			return sb_err(SHMBUS_EBUSY,
			              "state '%s': writer pid %u has been inside one write for over %lld ms (stopped?)",
			              st->ch.name, sb_token_pid(cur),
			              (long long)(SB_TURN_WAITS * st->ch.bus->liveness_ns / 1000000));
		if (i < 256) {
			sched_yield();
		} else {
			struct timespec ts = { 0, 50000 };

			nanosleep(&ts, NULL);
		}
	}
	st->is_writer = 1;
	return 0;
}

/* Multi-writer: give the turn back after publishing. */
static void end_turn(shmbus_state_t *st)
{
	uint64_t me = st->token;

	/* release: our value and pub_seq happen before the next holder's
	 * acquire CAS in take_turn. A CAS, not a store: only our own token is
	 * cleared. */
	atomic_compare_exchange_strong_explicit(&st->ctl->writer, &me, 0,
	                                        memory_order_release, memory_order_relaxed);
	st->is_writer = 0;
}

static int claim_writer(shmbus_state_t *st)
{
	/* acquire: pairs with the release in shmbus_state_release_writer, so
	 * a new writer starts after the old one's last publication. */
	uint64_t cur = atomic_load_explicit(&st->ctl->writer, memory_order_acquire);

	if (cur == st->token) {
		st->is_writer = 1;
		return 0;
	}
	if (cur != 0 && sb_token_alive(st->ch.bus, cur))
		return sb_err(SHMBUS_EBUSY,
		              "state '%s' is being written by pid %u; one writer at a time",
		              st->ch.name, sb_token_pid(cur));
	/* acq_rel: takes the role from nobody or from a dead writer; a racing
	 * claimant loses the CAS and sees the winner's token. From a dead
	 * writer this CAS orders nothing of its writes (its token was stored
	 * by its own claim, before them): its last publication reaches us
	 * through begin()'s acquire load of pub_seq, and what it wrote after
	 * that (an odd mark, part of a copy) is ordered only by its death,
	 * which sb_token_alive saw through the kernel after the exit; begin()
	 * rewrites that buffer whole, odd mark first. */
	SB_STEP("state.claim_writer.writer");
	if (!atomic_compare_exchange_strong_explicit(&st->ctl->writer, &cur, st->token,
	                                             memory_order_acq_rel,
	                                             memory_order_acquire))
		return sb_err(SHMBUS_EBUSY, "state '%s' was just taken by writer pid %u",
		              st->ch.name, sb_token_pid(cur));
	st->is_writer = 1;
	return 0;
}

int shmbus_state_release_writer(shmbus_state_t *st)
{
	uint64_t me;

	if (!st)
		return sb_err(SHMBUS_EINVAL, "state is NULL");
	if (!st->is_writer)
		return 0;
	if (sb_inherited(st->token)) {
		st->is_writer = 0;
		st->writing = 0;
		return 0;
	}
	me = st->token;
	/* release: our publications happen before the next writer's claim. */
	SB_STEP("state.state_release_writer.writer");
	atomic_compare_exchange_strong_explicit(&st->ctl->writer, &me, 0,
	                                        memory_order_release, memory_order_relaxed);
	st->is_writer = 0;
	st->writing = 0;
	return 0;
}

/* The buffer of value seq; one division per operation, from local copies
 * of nbuf and stride, so any seq read from the segment stays in bounds. */
static struct sb_state_buf *buf_of(shmbus_state_t *st, uint64_t seq)
{
	return (struct sb_state_buf *)(st->bufs + (seq % st->nbuf) * st->stride);
}

static uint8_t *data_of(shmbus_state_t *st, struct sb_state_buf *b)
{
	return (uint8_t *)b + st->data_off;
}

static int begin(shmbus_state_t *st, uint64_t *seq, struct sb_state_buf **bp)
{
	struct sb_state_buf *b;
	uint64_t s;
	int r;

	if (!st->is_writer && (r = st->many ? take_turn(st) : claim_writer(st)) != 0)
		return r;
	/* acquire: pairs with the seq_cst (release) store in publish() of
	 * the last writer to publish, so its buffers are behind us even when
	 * it died holding the role (claim_writer's CAS orders nothing of a
	 * dead writer's). */
	s = atomic_load_explicit(&st->ctl->pub_seq, memory_order_acquire) + 1;
	/* relaxed + release fence: the odd mark is ordered before every data
	 * store below; a reader whose copy saw any of them sees the mark on
	 * its re-check (pairs with the acquire fence in read_once). */
	b = buf_of(st, s);
	SB_STEP("state.begin.seq");
	atomic_store_explicit(&b->seq, 2 * s + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	*seq = s;
	*bp = b;
	return 0;
}

static void publish(shmbus_state_t *st, uint64_t s, struct sb_state_buf *b)
{
	/* release: the value's bytes are complete before the even mark; pairs
	 * with the acquire load of buf->seq in read_once. */
	SB_STEP("state.publish.seq");
	atomic_store_explicit(&b->seq, 2 * s, memory_order_release);
	/* seq_cst: publishes s (pairs with the acquire load of pub_seq by
	 * readers) and, with the seq_cst load of waiters below, forms the
	 * store-load pair that shmbus_state_wait relies on: either we see its
	 * waiter count or it sees our new pub_seq before sleeping (wait.c). */
	SB_STEP("state.publish.pub_seq");
	atomic_store_explicit(&st->ctl->pub_seq, s, memory_order_seq_cst);
	sb_park_wake(&st->ctl->waiters, sb_futex_low(&st->ctl->pub_seq), INT_MAX);
	sb_chan_ring(&st->ch);
}

int shmbus_state_write(shmbus_state_t *st, const void *value, size_t len)
{
	struct sb_state_buf *b;
	uint64_t s;
	int r;

	if (!st || (!value && len))
		return sb_err(SHMBUS_EINVAL, "shmbus_state_write: NULL argument");
	if (len != st->size)
		return sb_err(SHMBUS_EINVAL, "state '%s' holds %llu-byte values (%s x %llu); got %zu bytes",
		              st->ch.name, (unsigned long long)st->size,
		              shmbus_dtype_name(st->ch.p.dtype),
		              (unsigned long long)(st->size / shmbus_dtype_size(st->ch.p.dtype)),
		              len);
	if (st->writing)
		return sb_err(SHMBUS_ESTATE, "state '%s': write_begin is not committed", st->ch.name);
	r = begin(st, &s, &b);
	if (r)
		return r;
	SB_STEP("state.write.copy");
	sb_racy_copy(data_of(st, b), value, len);
	publish(st, s, b);
	if (st->many)
		end_turn(st);
	if (sb_map_damaged(st->ch.bus->base))
		return sb_err(SHMBUS_ECORRUPT, "state '%s': bus '%s' was truncated while mapped",
		              st->ch.name, st->ch.bus->name);
	return 0;
}

int shmbus_state_write_begin(shmbus_state_t *st, void **ptr)
{
	struct sb_state_buf *b;
	uint64_t s;
	int r;

	if (!st || !ptr)
		return sb_err(SHMBUS_EINVAL, "shmbus_state_write_begin: NULL argument");
	if (st->writing)
		return sb_err(SHMBUS_ESTATE, "state '%s': write_begin called twice", st->ch.name);
	r = begin(st, &s, &b);
	if (r)
		return r;
	st->writing = s;
	*ptr = data_of(st, b);
	return 0;
}

int shmbus_state_write_commit(shmbus_state_t *st)
{
	if (!st)
		return sb_err(SHMBUS_EINVAL, "state is NULL");
	if (!st->writing)
		return sb_err(SHMBUS_ESTATE, "state '%s': commit without write_begin", st->ch.name);
	publish(st, st->writing, buf_of(st, st->writing));
	st->writing = 0;
	if (st->many)
		end_turn(st);
	return 0;
}

/* ---- reading -------------------------------------------------------- */

uint64_t shmbus_state_seq(const shmbus_state_t *st)
{
	/* acquire: pairs with publish(); a caller may then read the value. */
	return st ? atomic_load_explicit(&st->ctl->pub_seq, memory_order_acquire) : 0;
}

/* One attempt: 0 done, 1 raced with the writer, SHMBUS_ENODATA. */
static int read_once(shmbus_state_t *st, void *buf, uint64_t *seq)
{
	/* acquire: pairs with the seq_cst store in publish(). */
	uint64_t s = atomic_load_explicit(&st->ctl->pub_seq, memory_order_acquire);
	struct sb_state_buf *b;

	if (s == 0)
		return SHMBUS_ENODATA;
	b = buf_of(st, s);
	/* acquire: pairs with the release store of the even mark in publish(),
	 * so the bytes we copy are at least value s. */
	if (atomic_load_explicit(&b->seq, memory_order_acquire) != 2 * s)
		return 1;
	sb_racy_copy(buf, data_of(st, b), st->size);
	/* acquire fence: orders the copy before the re-check; pairs with the
	 * release fence in begin(). */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&b->seq, memory_order_relaxed) != 2 * s)
		return 1;
	/* After the fence: a copy that read pages lost to a truncation
	 * (zeros, see sigbus.c) is refused. */
	if (sb_map_damaged(st->ch.bus->base))
		return SHMBUS_ECORRUPT;
	*seq = s;
	return 0;
}

int shmbus_state_read(shmbus_state_t *st, void *buf, size_t len, uint64_t *seq)
{
	uint64_t s = 0, start = 0;
	unsigned tries;
	int r;

	if (!st || !buf)
		return sb_err(SHMBUS_EINVAL, "shmbus_state_read: NULL argument");
	if (len < st->size)
		return sb_err(SHMBUS_ETOOBIG, "state '%s' values are %llu bytes; buffer has %zu",
		              st->ch.name, (unsigned long long)st->size, len);
	for (tries = 0;; tries++) {
		r = read_once(st, buf, &s);
		if (r <= 0)
			break;
		/* A writer lapping us on every try is either much faster than
		 * our copy or a corrupt segment: bound the time, not the tries. */
		if ((tries & 63) == 63) {
			if (!start)
				start = sb_now_ns();
			else if (sb_now_ns() - start > 1000000000ull)
				return sb_err(SHMBUS_EAGAIN,
				              "state '%s': the writer overwrote every value during the copy for 1 s",
				              st->ch.name);
		}
		sb_cpu_relax();
	}
	if (r == SHMBUS_ENODATA && sb_map_damaged(st->ch.bus->base))
		r = SHMBUS_ECORRUPT;
	if (r == SHMBUS_ECORRUPT)
		return sb_err(r, "state '%s': bus '%s' was truncated while mapped", st->ch.name,
		              st->ch.bus->name);
	if (r == SHMBUS_ENODATA)
		return sb_err(r, "state '%s' has not been written yet", st->ch.name);
	if (seq)
		*seq = s;
	return 0;
}

int shmbus_state_read_begin(shmbus_state_t *st, const void **ptr, uint64_t *seq)
{
	uint64_t s;
	unsigned tries;

	if (!st || !ptr || !seq)
		return sb_err(SHMBUS_EINVAL, "shmbus_state_read_begin: NULL argument");
	if (sb_map_damaged(st->ch.bus->base))
		return sb_chan_damage_err(&st->ch);
	for (tries = 0; tries < 1000000; tries++) {
		/* acquire: pairs with the seq_cst store in publish(). */
		s = atomic_load_explicit(&st->ctl->pub_seq, memory_order_acquire);
		if (s == 0)
			return sb_err(SHMBUS_ENODATA, "state '%s' has not been written yet",
			              st->ch.name);
		/* acquire: pairs with the even-mark release in publish(). */
		struct sb_state_buf *b = buf_of(st, s);

		if (atomic_load_explicit(&b->seq, memory_order_acquire) == 2 * s) {
			*ptr = data_of(st, b);
			*seq = s;
			return 0;
		}
		sb_cpu_relax();
	}
	return sb_err(SHMBUS_EAGAIN, "state '%s': no stable value found", st->ch.name);
}

int shmbus_state_read_validate(shmbus_state_t *st, uint64_t seq)
{
	if (!st || seq == 0)
		return sb_err(SHMBUS_EINVAL, "shmbus_state_read_validate: bad argument");
	/* acquire fence: the caller's reads of the value are ordered before
	 * the re-check; pairs with the release fence in begin(). */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&buf_of(st, seq)->seq, memory_order_relaxed) != 2 * seq)
		return SHMBUS_EAGAIN;
	if (sb_map_damaged(st->ch.bus->base))
		return sb_err(SHMBUS_ECORRUPT, "state '%s': bus '%s' was truncated while mapped",
		              st->ch.name, st->ch.bus->name);
	return 0;
}

/* ---- waiting -------------------------------------------------------- */

static int wait_err(shmbus_state_t *st, int r, uint64_t newer_than)
{
	if (r == SHMBUS_ETIMEDOUT)
		return sb_err(r, "no value newer than %llu on state '%s'",
		              (unsigned long long)newer_than, st->ch.name);
	if (r == SHMBUS_EINTR)
		return sb_err(r, "interrupted while waiting on state '%s'", st->ch.name);
	return r;
}

int shmbus_state_wait(shmbus_state_t *st, uint64_t newer_than, int64_t timeout_ns,
                      uint64_t *seq)
{
	_Atomic uint32_t *word;
	struct sb_park p;
	uint64_t s;
	int r, rc;

	if (!st)
		return sb_err(SHMBUS_EINVAL, "state is NULL");
	if (!seq)
		seq = &s;
	/* acquire: pairs with the store in publish(). News already there
	 * costs no clock read. */
	s = atomic_load_explicit(&st->ctl->pub_seq, memory_order_acquire);
	if (s > newer_than) {
		*seq = s;
		return 0;
	}
	sb_park_start(&p, &st->ch, timeout_ns, st->policy, st->spin_ns);
	for (;;) {
		/* acquire: pairs with the store in publish(). */
		s = atomic_load_explicit(&st->ctl->pub_seq, memory_order_acquire);
		if (s > newer_than) {
			*seq = s;
			return 0;
		}
		r = sb_park_spin(&p);
		if (r < 0)
			return wait_err(st, r, newer_than);
		if (r == 0)
			break;
	}
	word = sb_futex_low(&st->ctl->pub_seq);
	for (;;) {
		sb_park_prepare(&st->ctl->waiters);
		/* seq_cst: the re-check after announcing the sleeper; pairs
		 * with the seq_cst store/load pair in publish(). */
		s = atomic_load_explicit(&st->ctl->pub_seq, memory_order_seq_cst);
		/* A writer killed between publishing and FUTEX_WAKE leaves us
		 * asleep on a word that already changed under a value we never
		 * saw (tests/model/state.pml, `nowake`): sleep at most one
		 * liveness timeout, then re-check pub_seq. */
		r = s <= newer_than ? sb_park_sleep(&p, word, (uint32_t)s, st->ch.bus->liveness_ns)
		                    : 0;
		/* Truncated, overwritten or deleted while we slept: no value
		 * from lost pages is reported as new. */
		rc = sb_park_cancel(&p, &st->ctl->waiters);
		if (rc)
			return rc;
		/* acquire: pairs with the store in publish(). */
		s = atomic_load_explicit(&st->ctl->pub_seq, memory_order_acquire);
		if (s > newer_than) {
			*seq = s;
			return 0;
		}
		if (r != 0 && r != SHMBUS_ETIMEDOUT)
			return wait_err(st, r, newer_than);
		if (sb_park_left(&p) == 0)
			return wait_err(st, SHMBUS_ETIMEDOUT, newer_than);
	}
}

/* ---- readiness, for wait sets (waitset.c) --------------------------- */

int sb_state_ready(shmbus_state_t *st, uint64_t mark, uint64_t *seq)
{
	/* seq_cst: the re-check half of the store-load pair with publish()
	 * (its pub_seq store, then its load of the bell's `sets`). */
	*seq = atomic_load_explicit(&st->ctl->pub_seq, memory_order_seq_cst);
	return *seq > mark;
}

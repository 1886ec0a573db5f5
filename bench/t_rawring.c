/*
 * t_rawring.c -- the ceiling: a minimal single-producer single-consumer
 * byte ring in shared memory, both sides spinning.
 *
 * Nothing can move a message between processes with less work than this:
 * no system call, no sleep, one copy in and one copy out. Every other
 * transport is measured against it.
 *
 * Protocol. A ring is `cap` bytes (a power of two) after a header holding
 * two positions, each alone on its cache line so that the producer's writes
 * to one never evict the consumer's copy of the other:
 *   head  written only by the producer: bytes published so far;
 *   tail  written only by the consumer: bytes consumed so far.
 * head - tail is the fill level; both only grow (64-bit, never wrap).
 * A record at position p (offset p & (cap - 1)) is an 8-byte length and
 * the payload, padded to 8 bytes. A record never wraps around the end of
 * the buffer: when it would not fit, the producer writes a PAD length at
 * the offset and starts the record at offset 0; the consumer, seeing PAD,
 * skips to the next lap. That keeps every payload contiguous, which the
 * zero-copy calls need (a pointer straight into the ring).
 *
 * Each side keeps a private copy of the other side's position and rereads
 * the shared one only when its copy says the ring is full (producer) or
 * empty (consumer), so in steady state each message costs one store to a
 * line the other side rarely reads.
 *
 * Two rings per setup, one per direction, for ping-pong.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define REC_HDR 8u
#define REC_PAD UINT64_MAX

struct ring {
	_Alignas(BENCH_CACHELINE) _Atomic uint64_t head;
	char pad0[BENCH_CACHELINE - sizeof(uint64_t)];
	_Alignas(BENCH_CACHELINE) _Atomic uint64_t tail;
	char pad1[BENCH_CACHELINE - sizeof(uint64_t)];
	_Alignas(BENCH_CACHELINE) uint64_t cap;
	char pad2[BENCH_CACHELINE - sizeof(uint64_t)];
	_Alignas(BENCH_CACHELINE) unsigned char data[];
};
_Static_assert(offsetof(struct ring, tail) == BENCH_CACHELINE, "tail on its own line");
_Static_assert(offsetof(struct ring, data) == 3 * BENCH_CACHELINE, "data after the header");

struct shared {
	struct ring *ring[2];   /* ring[d] carries messages from role d */
	size_t map_len;
};

/* This process's view: its private copies of the other side's position. */
struct local {
	struct ring *tx, *rx;
	uint64_t tx_head;       /* our own head (we are its only writer) */
	uint64_t tx_tail_seen;  /* consumer's tail, last time we looked */
	uint64_t rx_tail;       /* our own tail */
	uint64_t rx_head_seen;  /* producer's head, last time we looked */
	uint64_t rx_rec;        /* size of the record recv_peek() handed out */
};

static size_t rec_size(size_t len)
{
	return REC_HDR + BENCH_ALIGN_UP(len, 8);
}

static int rr_setup(struct tctx *ctx, size_t max_msg)
{
	/* Room for at least four of the largest record keeps the producer a few
	 * messages ahead; 256 KiB keeps small messages from bouncing off a full
	 * ring all the time while staying inside the L2 caches. */
	size_t cap = 256 * 1024;
	while (cap < 4 * rec_size(max_msg))
		cap *= 2;
	size_t one = BENCH_ALIGN_UP(sizeof(struct ring) + cap, 4096);
	struct shared *sh = calloc(1, sizeof *sh);
	if (!sh)
		return bench_fail(ctx, "out of memory");
	sh->map_len = 2 * one;
	unsigned char *m = bench_map_shared(sh->map_len);
	if (!m) {
		free(sh);
		return bench_fail(ctx, "mmap %zu bytes failed", 2 * one);
	}
	for (int d = 0; d < 2; d++) {
		sh->ring[d] = (struct ring *)(m + d * one);
		sh->ring[d]->cap = cap;
	}
	ctx->shared = sh;
	return 0;
}

static int rr_open(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	struct local *l = calloc(1, sizeof *l);
	if (!l)
		return bench_fail(ctx, "out of memory");
	bench_prefault(sh->ring[0], sh->map_len);
	l->tx = sh->ring[ctx->role];
	l->rx = sh->ring[!ctx->role];
	/* A setup is reused across runs: pick up where the last pair of
	 * children left the positions (both rings are drained by then). */
	l->tx_head = atomic_load_explicit(&l->tx->head, memory_order_relaxed);
	l->tx_tail_seen = atomic_load_explicit(&l->tx->tail, memory_order_relaxed);
	l->rx_tail = atomic_load_explicit(&l->rx->tail, memory_order_relaxed);
	l->rx_head_seen = atomic_load_explicit(&l->rx->head, memory_order_relaxed);
	ctx->local = l;
	return 0;
}

/* Waits for room for a contiguous record of `need` bytes and returns the
 * offset of its header; writes a PAD record first if the record would run
 * past the end. */
static uint64_t rr_claim(struct local *l, uint64_t need)
{
	struct ring *r = l->tx;
	uint64_t cap = r->cap;
	uint64_t off = l->tx_head & (cap - 1);
	uint64_t skip = cap - off < need ? cap - off : 0;
	while (cap - (l->tx_head - l->tx_tail_seen) < skip + need) {
		/* acquire: the consumer has finished reading the bytes it gives
		 * back; pairs with the release store of tail in rr_consume(). */
		l->tx_tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
		bench_relax();
	}
	if (skip) {
		memcpy(r->data + off, &(uint64_t){REC_PAD}, REC_HDR);
		l->tx_head += skip;
		off = 0;
	}
	return off;
}

static void rr_publish(struct local *l, uint64_t off, size_t len)
{
	struct ring *r = l->tx;
	uint64_t len64 = len;
	memcpy(r->data + off, &len64, REC_HDR);
	l->tx_head += rec_size(len);
	/* release: publishes the header, the payload and any PAD before it;
	 * pairs with the acquire load of head in rr_next(). */
	atomic_store_explicit(&r->head, l->tx_head, memory_order_release);
}

static int rr_send(struct tctx *ctx, const void *buf, size_t len)
{
	struct local *l = ctx->local;
	uint64_t off = rr_claim(l, rec_size(len));
	memcpy(l->tx->data + off + REC_HDR, buf, len);
	rr_publish(l, off, len);
	return 0;
}

/* Waits for a record and returns the offset of its header, skipping PAD. */
static uint64_t rr_next(struct local *l, uint64_t *len)
{
	struct ring *r = l->rx;
	uint64_t cap = r->cap;
	for (;;) {
		while (l->rx_head_seen == l->rx_tail) {
			/* acquire: the records up to head are fully written;
			 * pairs with the release store in rr_publish(). */
			l->rx_head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
			if (l->rx_head_seen == l->rx_tail)
				bench_relax();
		}
		uint64_t off = l->rx_tail & (cap - 1);
		memcpy(len, r->data + off, REC_HDR);
		if (*len != REC_PAD)
			return off;
		l->rx_tail += cap - off;
	}
}

static void rr_consume(struct local *l, uint64_t rec)
{
	l->rx_tail += rec;
	/* release: we are done reading the record, the producer may reuse its
	 * bytes; pairs with the acquire load of tail in rr_claim(). Publishing
	 * in batches was tried: no measurable gain here, so the ring stays
	 * minimal. */
	atomic_store_explicit(&l->rx->tail, l->rx_tail, memory_order_release);
}

static int rr_recv(struct tctx *ctx, void *buf, size_t cap, size_t *len)
{
	struct local *l = ctx->local;
	uint64_t n;
	uint64_t off = rr_next(l, &n);
	if (n > cap)
		return bench_fail(ctx, "message of %llu bytes > buffer of %zu",
				  (unsigned long long)n, cap);
	memcpy(buf, l->rx->data + off + REC_HDR, n);
	rr_consume(l, rec_size(n));
	*len = n;
	return 0;
}

static void *rr_reserve(struct tctx *ctx, size_t len)
{
	struct local *l = ctx->local;
	/* After rr_claim() the record starts at tx_head's offset (past any PAD
	 * it wrote), which is what rr_commit() recomputes. */
	uint64_t off = rr_claim(l, rec_size(len));
	return l->tx->data + off + REC_HDR;
}

static int rr_commit(struct tctx *ctx, size_t len)
{
	struct local *l = ctx->local;
	rr_publish(l, l->tx_head & (l->tx->cap - 1), len);
	return 0;
}

static const void *rr_peek(struct tctx *ctx, size_t *len)
{
	struct local *l = ctx->local;
	uint64_t n;
	uint64_t off = rr_next(l, &n);
	l->rx_rec = rec_size(n);
	*len = n;
	return l->rx->data + off + REC_HDR;
}

static int rr_release(struct tctx *ctx)
{
	struct local *l = ctx->local;
	rr_consume(l, l->rx_rec);
	return 0;
}

static void rr_close(struct tctx *ctx)
{
	free(ctx->local);
	ctx->local = NULL;
}

static void rr_teardown(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	if (!sh)
		return;
	bench_unmap(sh->ring[0], sh->map_len);
	free(sh);
	ctx->shared = NULL;
}

const struct transport t_rawring = {
	.name = "rawring",
	.what = "SPSC byte ring in shared memory, both sides spin (the ceiling)",
	.setup = rr_setup,
	.open = rr_open,
	.send = rr_send,
	.recv = rr_recv,
	.send_reserve = rr_reserve,
	.send_commit = rr_commit,
	.recv_peek = rr_peek,
	.recv_release = rr_release,
	.close = rr_close,
	.teardown = rr_teardown,
};

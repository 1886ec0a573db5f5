/*
 * t_rawring.c -- the ceiling: a minimal single-producer single-consumer
 * byte ring in shared memory, both sides spinning.
 *
 * Nothing can move a message between processes with less work than this:
 * no system call, no sleep, one copy in and one copy out. Every other
 * transport is measured against it.
 *
 * Protocol. A ring is `cap` bytes (a power of two) after a header holding
 * the consumer's position, alone on its cache line:
 *   tail  written only by the consumer: bytes consumed so far (64-bit,
 *         never wraps).
 * A record at position p (offset p & (cap - 1)) is an 8-byte stamp and the
 * payload, padded to 8 bytes (for rings of messages over 1 KiB the stamp
 * has the record's first line to itself). The stamp publishes the record: the low 24
 * bits are the payload length (or PAD), the high 40 bits p's low 40 bits
 * plus one, so a stamp left from an earlier lap never matches. The
 * consumer waits on the stamp of the record it wants, in the line it is
 * about to read anyway, and there is no shared head index: a message
 * costs the consumer the lines of the record and nothing else. A record
 * never wraps around the end of the buffer: when it would not fit, the
 * producer writes a PAD stamp at the offset and starts the record at
 * offset 0; the consumer, seeing PAD, skips to the next lap. That keeps
 * every payload contiguous, which the zero-copy calls need (a pointer
 * straight into the ring).
 *
 * The producer keeps a private copy of tail and rereads the shared one only
 * when its copy says the ring is full, so in steady state each message
 * costs one store to a line the other side rarely reads.
 *
 * Two rings per setup, one per direction, for ping-pong.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define HDR_SMALL 8u                     /* stamp, then the payload */
#define HDR_LARGE 64u                    /* stamp alone on the record's first line */
#define SMALL_MAX 1024u                  /* largest max_msg with the small header */
#define REC_PAD 0xffffffu                 /* length field of a PAD stamp */
#define LEN_BITS 24u

struct ring {
	_Alignas(BENCH_CACHELINE) _Atomic uint64_t tail;
	char pad0[BENCH_CACHELINE - sizeof(uint64_t)];
	_Alignas(BENCH_CACHELINE) uint64_t cap;
	uint64_t hdr;           /* bytes before a payload (HDR_SMALL or HDR_LARGE) */
	char pad1[BENCH_CACHELINE - 2 * sizeof(uint64_t)];
	_Alignas(BENCH_CACHELINE) unsigned char data[];
};
_Static_assert(offsetof(struct ring, cap) == BENCH_CACHELINE, "tail alone on its line");
_Static_assert(offsetof(struct ring, data) == 2 * BENCH_CACHELINE, "data after the header");

struct shared {
	struct ring *ring[2];   /* ring[d] carries messages from role d */
	size_t map_len;
};

/* This process's view: its private copy of the other side's position. */
struct local {
	struct ring *tx, *rx;
	uint64_t tx_head;       /* our own position (private: no shared head) */
	uint64_t tx_tail_seen;  /* consumer's tail, last time we looked */
	uint64_t rx_tail;       /* our own tail */
	uint64_t rx_tail_pub;   /* the tail last stored for the producer */
	uint64_t rx_rec;        /* size of the record recv_peek() handed out */
};

static size_t rec_size(uint64_t hdr, size_t len)
{
	return hdr + BENCH_ALIGN_UP(len, 8);
}

static uint64_t stamp(uint64_t pos, uint64_t len)
{
	return ((pos + 1) << LEN_BITS) | len;
}

static _Atomic uint64_t *stamp_at(struct ring *r, uint64_t off)
{
	return (_Atomic uint64_t *)(void *)(r->data + off);
}

static int rr_setup(struct tctx *ctx, size_t max_msg)
{
	/* Room for at least four of the largest record keeps the producer a few
	 * messages ahead; 256 KiB keeps small messages from bouncing off a full
	 * ring all the time while staying inside the L2 caches. */
	size_t cap = 256 * 1024;
	/* Small payloads share the stamp's line, so a message is one line
	 * (or two); a large one starts on the next line, so that the consumer
	 * waiting on the stamp does not pull the line away from the producer
	 * while it copies the payload's first bytes. */
	uint64_t hdr = max_msg <= SMALL_MAX ? HDR_SMALL : HDR_LARGE;
	while (cap < 4 * rec_size(hdr, max_msg))
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
		sh->ring[d]->hdr = hdr;
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
	l->tx_head = atomic_load_explicit(&l->tx->tail, memory_order_relaxed);
	l->tx_tail_seen = l->tx_head;
	l->rx_tail = atomic_load_explicit(&l->rx->tail, memory_order_relaxed);
	l->rx_tail_pub = l->rx_tail;
	ctx->local = l;
	return 0;
}

/* Waits for room for a contiguous record of `need` bytes and returns the
 * offset of its stamp; writes a PAD record first if the record would run
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
		/* A full ring: rereading tail at every pause would take its line
		 * from the consumer before each of its stores; a round of pauses
		 * lets it free a batch first. */
		if (cap - (l->tx_head - l->tx_tail_seen) < skip + need)
			for (int i = 0; i < 32; i++)
				bench_relax();
	}
	if (skip) {
		/* release: as a record's stamp (rr_publish). */
		atomic_store_explicit(stamp_at(r, off), stamp(l->tx_head, REC_PAD),
				      memory_order_release);
		l->tx_head += skip;
		off = 0;
	}
	return off;
}

static void rr_publish(struct local *l, uint64_t off, size_t len)
{
	/* release: publishes the payload written before it; pairs with the
	 * acquire load of the stamp in rr_next(). */
	atomic_store_explicit(stamp_at(l->tx, off), stamp(l->tx_head, len), memory_order_release);
	l->tx_head += rec_size(l->tx->hdr, len);
}

static int rr_send(struct tctx *ctx, const void *buf, size_t len)
{
	struct local *l = ctx->local;
	uint64_t off = rr_claim(l, rec_size(l->tx->hdr, len));
	memcpy(l->tx->data + off + l->tx->hdr, buf, len);
	rr_publish(l, off, len);
	return 0;
}

/* Gives the bytes consumed so far back to the producer. The consumer does
 * so every sixteenth of the ring and before it waits, not after every
 * record: a full ring's producer polls tail, and a store per record would
 * fetch the line back from it each time. */
static void publish_tail(struct local *l)
{
	l->rx_tail_pub = l->rx_tail;
	/* release: we are done reading the records before tail, the producer
	 * may reuse their bytes; pairs with the acquire load in rr_claim(). */
	atomic_store_explicit(&l->rx->tail, l->rx_tail, memory_order_release);
}

/* Waits for a record and returns the offset of its stamp, skipping PAD. */
static uint64_t rr_next(struct local *l, uint64_t *len)
{
	struct ring *r = l->rx;
	uint64_t cap = r->cap;
	for (;;) {
		uint64_t off = l->rx_tail & (cap - 1), want = stamp(l->rx_tail, 0), st;
		/* acquire: the payload before the stamp is written; pairs with
		 * the release store in rr_publish() (or of a PAD in rr_claim()). */
		while (((st = atomic_load_explicit(stamp_at(r, off), memory_order_acquire)) >>
			LEN_BITS) != want >> LEN_BITS) {
			if (l->rx_tail_pub != l->rx_tail)
				publish_tail(l);
			bench_relax();
		}
		*len = st & REC_PAD;
		if (*len != REC_PAD)
			return off;
		l->rx_tail += cap - off;
	}
}

static void rr_consume(struct local *l, uint64_t rec)
{
	l->rx_tail += rec;
	if (l->rx_tail - l->rx_tail_pub >= l->rx->cap / 16)
		publish_tail(l);
}

static int rr_recv(struct tctx *ctx, void *buf, size_t cap, size_t *len)
{
	struct local *l = ctx->local;
	uint64_t n;
	uint64_t off = rr_next(l, &n);
	if (n > cap)
		return bench_fail(ctx, "message of %llu bytes > buffer of %zu",
				  (unsigned long long)n, cap);
	memcpy(buf, l->rx->data + off + l->rx->hdr, n);
	rr_consume(l, rec_size(l->rx->hdr, n));
	*len = n;
	return 0;
}

static void *rr_reserve(struct tctx *ctx, size_t len)
{
	struct local *l = ctx->local;
	/* After rr_claim() the record starts at tx_head's offset (past any PAD
	 * it wrote), which is what rr_commit() recomputes. */
	uint64_t off = rr_claim(l, rec_size(l->tx->hdr, len));
	return l->tx->data + off + l->tx->hdr;
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
	l->rx_rec = rec_size(l->rx->hdr, n);
	*len = n;
	return l->rx->data + off + l->rx->hdr;
}

static int rr_release(struct tctx *ctx)
{
	struct local *l = ctx->local;
	rr_consume(l, l->rx_rec);
	return 0;
}

static void rr_close(struct tctx *ctx)
{
	struct local *l = ctx->local;

	/* The next run's pair starts from the tail stored here. */
	if (l && l->rx_tail_pub != l->rx_tail)
		publish_tail(l);
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

/*
 * t_rawline.c -- the latency ceiling: a one-slot mailbox in a single cache
 * line, both sides spinning.
 *
 * A round trip through this transport is two transfers of one cache line
 * between the cores and nothing else, so its ping-pong figure is the
 * smallest round trip the machine can do; anything a real transport adds
 * on top is its own cost.
 *
 * Protocol. One line holds `state`, the length, and up to 56 bytes of
 * payload inline; a larger payload goes through a separate buffer. State:
 *   0  empty: whoever wants to send may fill the slot;
 *   1  holds a message from role 0, only role 1 may take it;
 *   2  holds a message from role 1, only role 0 may take it.
 * The sender writes the payload, then stores 1 or 2 (release); the receiver
 * waits for its value (acquire), copies out, then stores 0 (release). Only
 * one message is ever in flight, which is all ping-pong needs; one-way
 * streaming works too but at one message per two line transfers.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define INLINE_MAX 56u

struct line {
	_Alignas(BENCH_CACHELINE) _Atomic uint32_t state;
	uint32_t len;
	unsigned char inl[INLINE_MAX];
};
_Static_assert(sizeof(struct line) == BENCH_CACHELINE, "the mailbox is one line");

struct shared {
	struct line *line;
	unsigned char *big;     /* payloads over INLINE_MAX; NULL if none fit */
	size_t map_len;
};

static int rl_setup(struct tctx *ctx, size_t max_msg)
{
	struct shared *sh = calloc(1, sizeof *sh);
	if (!sh)
		return bench_fail(ctx, "out of memory");
	sh->map_len = 4096 + (max_msg > INLINE_MAX ? BENCH_ALIGN_UP(max_msg, 4096) : 0);
	unsigned char *m = bench_map_shared(sh->map_len);
	if (!m) {
		bench_fail(ctx, "mmap %zu bytes failed", sh->map_len);
		free(sh);
		return -1;
	}
	sh->line = (struct line *)m;
	sh->big = max_msg > INLINE_MAX ? m + 4096 : NULL;
	ctx->shared = sh;
	return 0;
}

static int rl_open(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	bench_prefault(sh->line, sh->map_len);
	return 0;
}

static int rl_send(struct tctx *ctx, const void *buf, size_t len)
{
	struct shared *sh = ctx->shared;
	struct line *ln = sh->line;
	/* acquire: the receiver has finished copying the previous message out;
	 * pairs with the release store of 0 in rl_recv(). */
	while (atomic_load_explicit(&ln->state, memory_order_acquire) != 0)
		bench_relax();
	ln->len = (uint32_t)len;
	memcpy(len <= INLINE_MAX ? ln->inl : sh->big, buf, len);
	/* release: publishes len and payload; pairs with the acquire load in
	 * rl_recv(). */
	atomic_store_explicit(&ln->state, (uint32_t)ctx->role + 1, memory_order_release);
	return 0;
}

static int rl_recv(struct tctx *ctx, void *buf, size_t cap, size_t *len)
{
	struct shared *sh = ctx->shared;
	struct line *ln = sh->line;
	uint32_t want = ctx->role == 0 ? 2 : 1;
	/* acquire: len and payload are written; pairs with the release store
	 * in rl_send(). */
	while (atomic_load_explicit(&ln->state, memory_order_acquire) != want)
		bench_relax();
	size_t n = ln->len;
	if (n > cap)
		return bench_fail(ctx, "message of %zu bytes > buffer of %zu", n, cap);
	memcpy(buf, n <= INLINE_MAX ? ln->inl : sh->big, n);
	*len = n;
	/* release: the slot and the big buffer are free again; pairs with the
	 * acquire load in rl_send(). */
	atomic_store_explicit(&ln->state, 0, memory_order_release);
	return 0;
}

static void rl_close(struct tctx *ctx)
{
	(void)ctx;
}

static void rl_teardown(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	if (!sh)
		return;
	bench_unmap(sh->line, sh->map_len);
	free(sh);
	ctx->shared = NULL;
}

const struct transport t_rawline = {
	.name = "rawline",
	.what = "one-slot mailbox in one cache line, both sides spin (latency ceiling)",
	.setup = rl_setup,
	.open = rl_open,
	.send = rl_send,
	.recv = rl_recv,
	.close = rl_close,
	.teardown = rl_teardown,
};

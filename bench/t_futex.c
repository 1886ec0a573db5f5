/*
 * t_futex.c -- the cost of a bare futex wake-up: a one-slot mailbox per
 * direction where a waiting side always goes to sleep, never spins.
 *
 * This is the reference for any transport that parks a reader in the
 * kernel: a round trip here is two cross-CPU wake-ups and almost nothing
 * else, so a parked reader can at best match it.
 *
 * Protocol, per direction: a mailbox holds `full` (the futex word: 0 empty,
 * 1 full), `waiters` (how many processes are asleep or about to sleep on
 * `full`), the length, and a payload buffer. The sender waits for full == 0,
 * writes the payload, stores full = 1 and wakes; the receiver waits for
 * full == 1, copies out, stores full = 0 and wakes.
 *
 * Waiting: announce in `waiters`, re-check `full`, then FUTEX_WAIT on the
 * value just seen. Posting: store `full`, then FUTEX_WAKE only if `waiters`
 * is non-zero. Both pairs are sequentially consistent, so either the poster
 * sees the waiter's announcement and wakes it, or the waiter sees the new
 * value and does not sleep; and FUTEX_WAIT itself refuses to sleep if the
 * word already changed. The futexes are process-shared (no _PRIVATE flag):
 * the two processes have different address spaces.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

struct box {
	_Alignas(BENCH_CACHELINE) _Atomic uint32_t full;
	_Atomic uint32_t waiters;
	uint32_t len;
};

struct shared {
	struct box *box[2];     /* box[d] carries messages from role d */
	unsigned char *payload[2];
	size_t map_len;
};

static void fx_wait_while(struct box *b, uint32_t val)
{
	/* acquire: once full != val, the poster's writes of len and payload
	 * are visible; pairs with the seq_cst store in fx_post(). */
	while (atomic_load_explicit(&b->full, memory_order_acquire) == val) {
		/* seq_cst: announce before re-checking; pairs with the seq_cst
		 * store of full and load of waiters in fx_post(). */
		atomic_fetch_add_explicit(&b->waiters, 1, memory_order_seq_cst);
		if (atomic_load_explicit(&b->full, memory_order_seq_cst) == val)
			syscall(SYS_futex, &b->full, FUTEX_WAIT, val, NULL, NULL, 0);
		atomic_fetch_sub_explicit(&b->waiters, 1, memory_order_relaxed);
	}
}

static void fx_post(struct box *b, uint32_t val)
{
	/* seq_cst: publishes the payload (release) and is ordered before the
	 * load of waiters; pairs with fx_wait_while(). */
	atomic_store_explicit(&b->full, val, memory_order_seq_cst);
	if (atomic_load_explicit(&b->waiters, memory_order_seq_cst))
		syscall(SYS_futex, &b->full, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static int fx_setup(struct tctx *ctx, size_t max_msg)
{
	struct shared *sh = calloc(1, sizeof *sh);
	if (!sh)
		return bench_fail(ctx, "out of memory");
	size_t pay = BENCH_ALIGN_UP(max_msg, 4096);
	sh->map_len = 4096 + 2 * pay;
	unsigned char *m = bench_map_shared(sh->map_len);
	if (!m) {
		bench_fail(ctx, "mmap %zu bytes failed", sh->map_len);
		free(sh);
		return -1;
	}
	for (int d = 0; d < 2; d++) {
		sh->box[d] = (struct box *)(m + d * BENCH_CACHELINE);
		sh->payload[d] = m + 4096 + d * pay;
	}
	ctx->shared = sh;
	return 0;
}

static int fx_open(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	bench_prefault(sh->box[0], sh->map_len);
	return 0;
}

static int fx_send(struct tctx *ctx, const void *buf, size_t len)
{
	struct shared *sh = ctx->shared;
	struct box *b = sh->box[ctx->role];
	fx_wait_while(b, 1);
	b->len = (uint32_t)len;
	memcpy(sh->payload[ctx->role], buf, len);
	fx_post(b, 1);
	return 0;
}

static int fx_recv(struct tctx *ctx, void *buf, size_t cap, size_t *len)
{
	struct shared *sh = ctx->shared;
	int from = !ctx->role;
	struct box *b = sh->box[from];
	fx_wait_while(b, 0);
	size_t n = b->len;
	if (n > cap)
		return bench_fail(ctx, "message of %zu bytes > buffer of %zu", n, cap);
	memcpy(buf, sh->payload[from], n);
	*len = n;
	fx_post(b, 0);
	return 0;
}

static void fx_close(struct tctx *ctx)
{
	(void)ctx;
}

static void fx_teardown(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	if (!sh)
		return;
	bench_unmap(sh->box[0], sh->map_len);
	free(sh);
	ctx->shared = NULL;
}

const struct transport t_futex = {
	.name = "futex",
	.what = "one-slot mailbox per direction, the waiter always sleeps on a futex",
	.setup = fx_setup,
	.open = fx_open,
	.send = fx_send,
	.recv = fx_recv,
	.close = fx_close,
	.teardown = fx_teardown,
};

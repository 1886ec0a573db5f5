/*
 * t_pipe.c -- two anonymous pipes, one per direction, with length-prefixed
 * messages (fdstream.c). The pipes keep their default 64 KiB capacity, as
 * a program that does not tune them would.
 *
 * setup() makes the pipes before fork(); each child keeps the write end of
 * its own direction and the read end of the other.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "fdstream.h"

struct shared {
	int fd[2][2];           /* fd[d] is the pipe carrying messages from role d */
};

static int pp_setup(struct tctx *ctx, size_t max_msg)
{
	(void)max_msg;
	struct shared *sh = calloc(1, sizeof *sh);
	if (!sh)
		return bench_fail(ctx, "out of memory");
	if (pipe(sh->fd[0]) || pipe(sh->fd[1])) {
		int e = errno;
		free(sh);
		return bench_fail(ctx, "pipe: %s", strerror(e));
	}
	ctx->shared = sh;
	return 0;
}

static int pp_open(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	struct fdreader *r = calloc(1, sizeof *r);
	if (!r)
		return bench_fail(ctx, "out of memory");
	r->fd = sh->fd[!ctx->role][0];
	ctx->local = r;
	return 0;
}

static int pp_send(struct tctx *ctx, const void *buf, size_t len)
{
	struct shared *sh = ctx->shared;
	return fds_send(ctx, sh->fd[ctx->role][1], buf, len);
}

static int pp_recv(struct tctx *ctx, void *buf, size_t cap, size_t *len)
{
	return fds_recv(ctx, ctx->local, buf, cap, len);
}

static void pp_close(struct tctx *ctx)
{
	free(ctx->local);
	ctx->local = NULL;
}

static void pp_teardown(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	if (!sh)
		return;
	for (int d = 0; d < 2; d++) {
		close(sh->fd[d][0]);
		close(sh->fd[d][1]);
	}
	free(sh);
	ctx->shared = NULL;
}

const struct transport t_pipe = {
	.name = "pipe",
	.what = "two anonymous pipes, 4-byte length prefix, buffered reader",
	.setup = pp_setup,
	.open = pp_open,
	.send = pp_send,
	.recv = pp_recv,
	.close = pp_close,
	.teardown = pp_teardown,
};

/*
 * t_unix.c -- a Unix domain stream socket pair, with length-prefixed
 * messages (fdstream.c).
 *
 * A stream socket rather than SOCK_SEQPACKET: a datagram must fit in the
 * socket's send buffer (about 200 KiB by default), so 1 MiB messages would
 * need raised system limits. One socketpair() carries both directions;
 * role 0 uses one end, role 1 the other.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "fdstream.h"

struct shared {
	int sv[2];              /* sv[r] is role r's end */
};

static int ux_setup(struct tctx *ctx, size_t max_msg)
{
	(void)max_msg;
	struct shared *sh = calloc(1, sizeof *sh);
	if (!sh)
		return bench_fail(ctx, "out of memory");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sh->sv)) {
		int e = errno;
		free(sh);
		return bench_fail(ctx, "socketpair: %s", strerror(e));
	}
	ctx->shared = sh;
	return 0;
}

static int ux_open(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	struct fdreader *r = calloc(1, sizeof *r);
	if (!r)
		return bench_fail(ctx, "out of memory");
	r->fd = sh->sv[ctx->role];
	ctx->local = r;
	return 0;
}

static int ux_send(struct tctx *ctx, const void *buf, size_t len)
{
	struct shared *sh = ctx->shared;
	return fds_send(ctx, sh->sv[ctx->role], buf, len);
}

static int ux_recv(struct tctx *ctx, void *buf, size_t cap, size_t *len)
{
	return fds_recv(ctx, ctx->local, buf, cap, len);
}

static void ux_close(struct tctx *ctx)
{
	free(ctx->local);
	ctx->local = NULL;
}

static void ux_teardown(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	if (!sh)
		return;
	close(sh->sv[0]);
	close(sh->sv[1]);
	free(sh);
	ctx->shared = NULL;
}

const struct transport t_unix = {
	.name = "unix",
	.what = "Unix domain SOCK_STREAM socketpair, 4-byte length prefix, buffered reader",
	.setup = ux_setup,
	.open = ux_open,
	.send = ux_send,
	.recv = ux_recv,
	.close = ux_close,
	.teardown = ux_teardown,
};

/*
 * t_zmq.c -- a ZeroMQ PAIR socket over ipc:// (a Unix socket in /tmp).
 *
 * A ZeroMQ context owns threads, which do not survive fork(), so setup()
 * only picks the endpoint name and each child makes its own context in
 * open(): role 1 binds, role 0 connects. One PAIR socket carries both
 * directions. open() ends with a hello/ack exchange so that the
 * connection is up before the timed part starts. Sends block at the
 * default high-water mark (1000 messages), so nothing is dropped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bench.h"

struct shared {
	char path[96];
	char endpoint[112];
};

struct local {
	void *zctx;
	void *sock;
};

static int zm_setup(struct tctx *ctx, size_t max_msg)
{
	(void)max_msg;
	struct shared *sh = calloc(1, sizeof *sh);
	if (!sh)
		return bench_fail(ctx, "out of memory");
	snprintf(sh->path, sizeof sh->path, "/tmp/%s.zmq", ctx->tag);
	snprintf(sh->endpoint, sizeof sh->endpoint, "ipc://%s", sh->path);
	unlink(sh->path);
	ctx->shared = sh;
	return 0;
}

static int zm_open(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	struct local *l = calloc(1, sizeof *l);
	if (!l)
		return bench_fail(ctx, "out of memory");
	ctx->local = l;
	l->zctx = zmq_ctx_new();
	if (!l->zctx)
		return bench_fail(ctx, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
	l->sock = zmq_socket(l->zctx, ZMQ_PAIR);
	if (!l->sock)
		return bench_fail(ctx, "zmq_socket: %s", zmq_strerror(zmq_errno()));
	/* Bounded linger: close() must not hang if the peer is gone; and a
	 * short reconnect interval, because the connecting side may try
	 * before the other has bound. */
	int linger = 1000, ivl = 10;
	zmq_setsockopt(l->sock, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(l->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
	int rc = ctx->role ? zmq_bind(l->sock, sh->endpoint) : zmq_connect(l->sock, sh->endpoint);
	if (rc)
		return bench_fail(ctx, "zmq_%s %s: %s", ctx->role ? "bind" : "connect",
				  sh->endpoint, zmq_strerror(zmq_errno()));
	char b[4];
	if (ctx->role == 0) {
		if (zmq_send(l->sock, "hi", 2, 0) != 2 || zmq_recv(l->sock, b, sizeof b, 0) != 2)
			return bench_fail(ctx, "zmq handshake: %s", zmq_strerror(zmq_errno()));
	} else {
		if (zmq_recv(l->sock, b, sizeof b, 0) != 2 || zmq_send(l->sock, "ok", 2, 0) != 2)
			return bench_fail(ctx, "zmq handshake: %s", zmq_strerror(zmq_errno()));
	}
	return 0;
}

static int zm_send(struct tctx *ctx, const void *buf, size_t len)
{
	struct local *l = ctx->local;
	while (zmq_send(l->sock, buf, len, 0) < 0) {
		if (zmq_errno() != EINTR)
			return bench_fail(ctx, "zmq_send: %s", zmq_strerror(zmq_errno()));
	}
	return 0;
}

static int zm_recv(struct tctx *ctx, void *buf, size_t cap, size_t *len)
{
	struct local *l = ctx->local;
	int n;
	while ((n = zmq_recv(l->sock, buf, cap, 0)) < 0) {
		if (zmq_errno() != EINTR)
			return bench_fail(ctx, "zmq_recv: %s", zmq_strerror(zmq_errno()));
	}
	if ((size_t)n > cap)
		return bench_fail(ctx, "message of %d bytes > buffer of %zu", n, cap);
	*len = (size_t)n;
	return 0;
}

static void zm_close(struct tctx *ctx)
{
	struct local *l = ctx->local;
	if (!l)
		return;
	if (l->sock)
		zmq_close(l->sock);
	if (l->zctx)
		zmq_ctx_term(l->zctx);
	free(l);
	ctx->local = NULL;
}

static void zm_teardown(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	if (!sh)
		return;
	unlink(sh->path);
	free(sh);
	ctx->shared = NULL;
}

const struct transport t_zmq = {
	.name = "zmq",
	.what = "ZeroMQ PAIR socket over ipc:// in /tmp",
	.setup = zm_setup,
	.open = zm_open,
	.send = zm_send,
	.recv = zm_recv,
	.close = zm_close,
	.teardown = zm_teardown,
};

/*
 * t_mq.c -- POSIX message queues, one per direction.
 *
 * The kernel caps a queue's message size at /proc/sys/fs/mqueue/msgsize_max
 * (8 KiB by default) and its depth at /proc/sys/fs/mqueue/msg_max (10);
 * a privileged process may exceed them, but the figures would then describe
 * a tuned system, so sizes over the limit are skipped with a note. The
 * queues are made in setup() and their descriptors inherited across fork().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct shared {
	mqd_t q[2];             /* q[d] carries messages from role d */
	char name[2][64];
};

static long read_limit(const char *path, long dflt)
{
	FILE *f = fopen(path, "r");
	long v = dflt;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = dflt;
		fclose(f);
	}
	return v;
}

static int mq_setup_(struct tctx *ctx, size_t max_msg)
{
	long size_max = read_limit("/proc/sys/fs/mqueue/msgsize_max", 8192);
	long depth_max = read_limit("/proc/sys/fs/mqueue/msg_max", 10);
	if ((long)max_msg > size_max)
		return bench_skip(ctx, "message size %zu > /proc/sys/fs/mqueue/msgsize_max (%ld)",
				  max_msg, size_max);
	struct shared *sh = calloc(1, sizeof *sh);
	if (!sh)
		return bench_fail(ctx, "out of memory");
	struct mq_attr attr = { .mq_maxmsg = depth_max, .mq_msgsize = (long)max_msg };
	for (int d = 0; d < 2; d++) {
		snprintf(sh->name[d], sizeof sh->name[d], "/%s-%d", ctx->tag, d);
		sh->q[d] = mq_open(sh->name[d], O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
		if (sh->q[d] == (mqd_t)-1) {
			int e = errno;
			if (d == 1) {
				mq_close(sh->q[0]);
				mq_unlink(sh->name[0]);
			}
			free(sh);
			return bench_fail(ctx, "mq_open %s (depth %ld, size %zu): %s",
					  ctx->tag, depth_max, max_msg, strerror(e));
		}
	}
	ctx->shared = sh;
	return 0;
}

static int mq_open_(struct tctx *ctx)
{
	(void)ctx;
	return 0;
}

static int mq_send_(struct tctx *ctx, const void *buf, size_t len)
{
	struct shared *sh = ctx->shared;
	while (mq_send(sh->q[ctx->role], buf, len, 0)) {
		if (errno != EINTR)
			return bench_fail(ctx, "mq_send: %s", strerror(errno));
	}
	return 0;
}

static int mq_recv_(struct tctx *ctx, void *buf, size_t cap, size_t *len)
{
	struct shared *sh = ctx->shared;
	ssize_t n;
	while ((n = mq_receive(sh->q[!ctx->role], buf, cap, NULL)) < 0) {
		if (errno != EINTR)
			return bench_fail(ctx, "mq_receive: %s", strerror(errno));
	}
	*len = (size_t)n;
	return 0;
}

static void mq_close_(struct tctx *ctx)
{
	(void)ctx;
}

static void mq_teardown_(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	if (!sh)
		return;
	for (int d = 0; d < 2; d++) {
		mq_close(sh->q[d]);
		mq_unlink(sh->name[d]);
	}
	free(sh);
	ctx->shared = NULL;
}

const struct transport t_mq = {
	.name = "mq",
	.what = "POSIX message queues, one per direction (system size limits apply)",
	.setup = mq_setup_,
	.open = mq_open_,
	.send = mq_send_,
	.recv = mq_recv_,
	.close = mq_close_,
	.teardown = mq_teardown_,
};

/*
 * fdstream.c -- length-prefixed messages over a byte stream.
 *
 * The writer sends header and payload in one writev() so a message is one
 * system call. The reader keeps a 64 KiB buffer: a read() takes whatever
 * is there (often many small messages at once) and recv hands them out one
 * by one. A payload larger than what is buffered is read straight into the
 * caller's buffer, so big messages are copied once, not twice.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fdstream.h"

int fds_send(struct tctx *ctx, int fd, const void *buf, size_t len)
{
	uint32_t hdr = (uint32_t)len;
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof hdr },
		{ .iov_base = (void *)buf, .iov_len = len },
	};
	struct iovec *v = iov;
	int cnt = 2;
	while (cnt > 0) {
		ssize_t n = writev(fd, v, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return bench_fail(ctx, "writev: %s", strerror(errno));
		}
		while (cnt > 0 && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++;
			cnt--;
		}
		if (cnt > 0) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Reads into dst until it holds `want` bytes; false on EOF or error. */
static int read_full(struct tctx *ctx, int fd, unsigned char *dst, size_t want)
{
	size_t got = 0;
	while (got < want) {
		ssize_t n = read(fd, dst + got, want - got);
		if (n > 0) {
			got += (size_t)n;
		} else if (n == 0) {
			return bench_fail(ctx, "read: end of stream");
		} else if (errno != EINTR) {
			return bench_fail(ctx, "read: %s", strerror(errno));
		}
	}
	return 0;
}

/* Makes at least `need` bytes available in r->buf[pos, end). */
static int fill(struct tctx *ctx, struct fdreader *r, size_t need)
{
	if (r->end - r->pos >= need)
		return 0;
	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->end - r->pos);
		r->end -= r->pos;
		r->pos = 0;
	}
	while (r->end < need) {
		ssize_t n = read(r->fd, r->buf + r->end, sizeof r->buf - r->end);
		if (n > 0) {
			r->end += (size_t)n;
		} else if (n == 0) {
			return bench_fail(ctx, "read: end of stream");
		} else if (errno != EINTR) {
			return bench_fail(ctx, "read: %s", strerror(errno));
		}
	}
	return 0;
}

int fds_recv(struct tctx *ctx, struct fdreader *r, void *buf, size_t cap, size_t *len)
{
	uint32_t hdr;
	if (fill(ctx, r, sizeof hdr))
		return -1;
	memcpy(&hdr, r->buf + r->pos, sizeof hdr);
	r->pos += sizeof hdr;
	if (hdr > cap)
		return bench_fail(ctx, "message of %u bytes > buffer of %zu", hdr, cap);
	size_t have = r->end - r->pos;
	if (hdr <= sizeof r->buf && have < hdr && fill(ctx, r, hdr))
		return -1;
	have = r->end - r->pos;
	size_t take = have < hdr ? have : hdr;
	memcpy(buf, r->buf + r->pos, take);
	r->pos += take;
	if (take < hdr && read_full(ctx, r->fd, (unsigned char *)buf + take, hdr - take))
		return -1;
	*len = hdr;
	return 0;
}

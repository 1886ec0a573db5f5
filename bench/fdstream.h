/*
 * fdstream.h -- messages over a byte-stream file descriptor (pipe, Unix
 * stream socket): a 4-byte length before each message, and a buffered
 * reader so that small messages cost one read() per batch, not two per
 * message. Used by t_pipe.c and t_unix.c.
 */
#ifndef IPCBENCH_FDSTREAM_H
#define IPCBENCH_FDSTREAM_H

#include <stddef.h>

#include "bench.h"

struct fdreader {
	int fd;
	size_t pos, end;        /* unread bytes are buf[pos, end) */
	unsigned char buf[64 * 1024];
};

/* Writes one message with a single writev(); retries short writes. */
int fds_send(struct tctx *ctx, int fd, const void *buf, size_t len);
/* Reads one message; blocks until it is complete. */
int fds_recv(struct tctx *ctx, struct fdreader *r, void *buf, size_t cap, size_t *len);

#endif

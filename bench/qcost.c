/*
 * qcost.c -- what one queue operation costs with nobody else around: one
 * process, one producer handle and one consumer handle on the same queue,
 * each message put and then got back at once, so that every call finds
 * what it needs (no waiting, no cache line moving between CPUs).
 *
 * This is the floor under every cross-process figure: a 64-byte message
 * cannot stream faster between two processes than one process can put and
 * get it. Run it under `valgrind --tool=callgrind` to see where the
 * instructions go (the counts are exact and repeatable, unlike times on a
 * shared VM):
 *
 *   valgrind --tool=callgrind bench/qcost --count 100000 && callgrind_annotate ...
 *
 * For comparison it also runs the same loop on a minimal in-process ring
 * (the protocol of bench/t_rawring.c: a length word and the payload).
 *
 *   qcost [--count N] [--size BYTES]
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shmbus.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "qcost: %s: %s (%s)\n", what, shmbus_strerror(rc), shmbus_last_error());
	exit(1);
}

/* The raw ring, reduced to one process: head and tail on their own lines. */
struct ring {
	_Alignas(64) _Atomic uint64_t head;
	_Alignas(64) _Atomic uint64_t tail;
	_Alignas(64) unsigned char data[1 << 18];
};

static __attribute__((noinline)) void raw_put(struct ring *r, const void *m, uint64_t len)
{
	uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint64_t off = h & (sizeof r->data - 1);
	/* acquire: pairs with the release of tail in raw_get (room check). */
	while (h - atomic_load_explicit(&r->tail, memory_order_acquire) > sizeof r->data - 8 - len)
		;
	memcpy(r->data + off, &len, 8);
	memcpy(r->data + off + 8, m, len);
	/* release: publishes the record; pairs with the acquire in raw_get. */
	atomic_store_explicit(&r->head, h + 8 + ((len + 7) & ~7ull), memory_order_release);
}

static __attribute__((noinline)) uint64_t raw_get(struct ring *r, void *buf)
{
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed), len;
	uint64_t off = t & (sizeof r->data - 1);
	/* acquire: the record is written; pairs with the release in raw_put. */
	while (atomic_load_explicit(&r->head, memory_order_acquire) == t)
		;
	memcpy(&len, r->data + off, 8);
	memcpy(buf, r->data + off + 8, len);
	/* release: the bytes may be reused; pairs with the acquire in raw_put. */
	atomic_store_explicit(&r->tail, t + 8 + ((len + 7) & ~7ull), memory_order_release);
	return len;
}

int main(int argc, char **argv)
{
	uint64_t count = 2000000;
	size_t size = 64;
	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--count") && a + 1 < argc)
			count = strtoull(argv[++a], NULL, 10);
		else if (!strcmp(argv[a], "--size") && a + 1 < argc)
			size = strtoul(argv[++a], NULL, 10);
		else {
			printf("usage: qcost [--count N] [--size BYTES]\n");
			return strcmp(argv[a], "--help") ? 2 : 0;
		}
	}
	if (size < 8 || size > 65536)
		size = 64;

	char name[64];
	snprintf(name, sizeof name, "qcost-%d", (int)getpid());
	shmbus_bus_opts_t bo;
	shmbus_bus_opts_init(&bo);
	bo.size = 64ull << 20;
	shmbus_bus_t *bus;
	int rc;
	if ((rc = shmbus_bus_create(name, &bo, &bus)))
		die("create", rc);
	shmbus_queue_opts_t qo;
	shmbus_queue_opts_init(&qo);
	qo.slots = 2048;
	qo.max_msg = size;
	shmbus_queue_t *p, *c;
	if ((rc = shmbus_queue_open(bus, "q", &qo, &p)) || (rc = shmbus_queue_open(bus, "q", &qo, &c)))
		die("open", rc);
	if ((rc = shmbus_queue_join(c, "g", SHMBUS_GROUP_EARLIEST)))
		die("join", rc);

	unsigned char *msg = calloc(1, size), *buf = calloc(1, size);
	struct ring *r = aligned_alloc(64, sizeof *r);
	if (!msg || !buf || !r)
		return 1;
	memset(r, 0, sizeof *r);
	size_t len;
	uint64_t t0, t1, sum = 0;

	printf("qcost: %zu-byte messages, %llu each, one process (ns per message, put + get)\n", size,
	       (unsigned long long)count);

	t0 = now_ns();
	for (uint64_t i = 0; i < count; i++) {
		memcpy(msg, &i, 8);
		raw_put(r, msg, size);
		sum += raw_get(r, buf);
	}
	t1 = now_ns();
	printf("  raw ring put + get              %8.1f\n", (double)(t1 - t0) / (double)count);

	t0 = now_ns();
	for (uint64_t i = 0; i < count; i++) {
		memcpy(msg, &i, 8);
		if ((rc = shmbus_queue_put(p, msg, size, 0)))
			die("put", rc);
		if ((rc = shmbus_queue_get(c, buf, size, &len, NULL, 0)))
			die("get", rc);
		sum += len;
	}
	t1 = now_ns();
	printf("  shmbus put + get                %8.1f\n", (double)(t1 - t0) / (double)count);

	t0 = now_ns();
	for (uint64_t i = 0; i < count; i++) {
		void *w;
		shmbus_msg_t m;
		if ((rc = shmbus_queue_reserve(p, size, &w, 0)))
			die("reserve", rc);
		memcpy(w, &i, 8);
		if ((rc = shmbus_queue_commit(p, size)))
			die("commit", rc);
		if ((rc = shmbus_queue_peek(c, &m, 0)))
			die("peek", rc);
		sum += m.len;
		if ((rc = shmbus_queue_release(c)))
			die("release", rc);
	}
	t1 = now_ns();
	printf("  shmbus reserve/commit + peek/release %3.1f\n", (double)(t1 - t0) / (double)count);

	enum { B = 32 };
	const void *msgs[B];
	size_t lens[B], caps[B], got, done;
	void *bufs[B];
	unsigned char *many = calloc(B, size);
	if (!many)
		return 1;
	for (int i = 0; i < B; i++) {
		msgs[i] = msg;
		lens[i] = caps[i] = size;
		bufs[i] = many + (size_t)i * size;
	}
	t0 = now_ns();
	for (uint64_t i = 0; i < count; i += B) {
		if ((rc = shmbus_queue_put_many(p, msgs, lens, B, 0, &done)))
			die("put_many", rc);
		if ((rc = shmbus_queue_get_many(c, bufs, caps, lens, NULL, B, 0, &got)))
			die("get_many", rc);
		sum += got;
	}
	t1 = now_ns();
	printf("  shmbus put_many + get_many (%d) %8.1f\n", B, (double)(t1 - t0) / (double)count);

	shmbus_queue_close(p);
	shmbus_queue_close(c);
	shmbus_bus_close(bus);
	shmbus_bus_unlink(name);
	free(msg);
	free(buf);
	free(many);
	free(r);
	return sum == 0;
}

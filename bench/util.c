/*
 * util.c -- small helpers shared by the transports: error notes and shared
 * memory that outlives fork().
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>

#include "bench.h"

int bench_fail(struct tctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx->note, sizeof ctx->note, fmt, ap);
	va_end(ap);
	return -1;
}

int bench_skip(struct tctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctx->note, sizeof ctx->note, fmt, ap);
	va_end(ap);
	return BENCH_SKIP;
}

void bench_strf(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
}

void *bench_map_shared(size_t len)
{
	/* MAP_SHARED|MAP_ANONYMOUS made before fork() is the same memory in
	 * parent and children; MAP_POPULATE takes the page faults now rather
	 * than inside the first timed run. */
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void bench_prefault(void *p, size_t len)
{
	/* fork() does not copy the page tables of shared mappings, so a child
	 * would otherwise take a fault on the first touch of every page, inside
	 * the timed part (on a VM, several microseconds each: 64 MiB cost
	 * ~0.1 s). MADV_POPULATE_WRITE maps the pages without touching their
	 * contents (_READ for a read-only mapping); before Linux 5.14, reading
	 * each page does most of it. */
#ifdef MADV_POPULATE_WRITE
	if (madvise(p, len, MADV_POPULATE_WRITE) == 0 || madvise(p, len, MADV_POPULATE_READ) == 0)
		return;
#endif
	for (size_t i = 0; i < len; i += 4096)
		(void)*(volatile const unsigned char *)((const unsigned char *)p + i);
}

void bench_unmap(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

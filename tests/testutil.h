/*
 * testutil.h -- the few helpers every test program shares. Each test is a
 * small program that prints what it checks and exits 0 on pass, 1 on fail,
 * naming the values that differed.
 */
#ifndef SHMBUS_TESTUTIL_H
#define SHMBUS_TESTUTIL_H

#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmbus.h"

#define FAIL(...) do { \
	fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

/* The call must return 0. */
#define OK(call) do { int r_ = (call); if (r_ != 0) \
	FAIL("%s returned %d (%s): %s", #call, r_, shmbus_strerror(r_), \
	     shmbus_last_error()); } while (0)

/* The call must return exactly code. */
#define EXPECT_CODE(call, code) do { int r_ = (call); if (r_ != (code)) \
	FAIL("%s returned %d (%s), expected %d (%s); detail: %s", #call, r_, \
	     shmbus_strerror(r_), (int)(code), shmbus_strerror(code), \
	     shmbus_last_error()); } while (0)

#define CHECK(cond, ...) do { if (!(cond)) FAIL(__VA_ARGS__); } while (0)

/* A bus name unique to this process and purpose. */
static inline const char *test_bus_name(const char *tag)
{
	static char buf[8][64];
	static int n;
	char *b = buf[n++ & 7];

	snprintf(b, 64, "t-%s-%d", tag, (int)getpid());
	return b;
}

static inline uint64_t test_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* FNV-1a over bytes: values carry their own checksum in tests. */
static inline uint64_t test_hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull;

	while (n--)
		h = (h ^ *s++) * 1099511628211ull;
	return h;
}

/* Seconds a stress test runs; SHMBUS_TEST_SCALE scales it (CI sets < 1). */
static inline double test_scale(void)
{
	const char *s = getenv("SHMBUS_TEST_SCALE");
	double v = s ? atof(s) : 1.0;

	return v > 0 ? v : 1.0;
}

/* A failure in one of several forked processes: the first to fail records
 * its reason in shared memory for the parent to print; each exits 1. */
static inline void test_fail_shared(atomic_int *failed, char *why, size_t cap,
                                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static inline void test_fail_shared(atomic_int *failed, char *why, size_t cap,
                                    const char *fmt, ...)
{
	va_list ap;
	int expect = 0;

	if (atomic_compare_exchange_strong(failed, &expect, 1)) {
		va_start(ap, fmt);
		vsnprintf(why, cap, fmt, ap);
		va_end(ap);
	}
	_exit(1);
}

/* At exit after a failed check: kill and reap the children still running
 * (pids[i] <= 0: none). */
static inline void test_kill_children(const pid_t *pids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (pids[i] > 0 && waitpid(pids[i], NULL, WNOHANG) == 0) {
			kill(pids[i], SIGKILL);
			waitpid(pids[i], NULL, 0);
		}
}

/* Open (or create) a one-dimensional state channel of len elements of
 * dtype, with the default options otherwise. */
static inline int test_state_1d(shmbus_bus_t *b, const char *name, int dtype, uint64_t len,
                                shmbus_state_t **st)
{
	shmbus_state_opts_t o;

	shmbus_state_opts_init(&o);
	o.dtype = dtype;
	o.ndim = 1;
	o.shape[0] = len;
	return shmbus_state_open(b, name, &o, st);
}

/* A dict update function: the int64 value (0 when absent) plus one. */
static inline int test_dict_inc(const void *old, size_t oldlen, void *out, size_t cap,
                                size_t *outlen, void *arg)
{
	int64_t v = 0;

	(void)arg;
	if (old && oldlen == sizeof(v))
		memcpy(&v, old, sizeof(v));
	v++;
	if (cap < sizeof(v))
		return SHMBUS_ETOOBIG;
	memcpy(out, &v, sizeof(v));
	*outlen = sizeof(v);
	return 0;
}

#endif

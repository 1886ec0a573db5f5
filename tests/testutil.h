/*
 * testutil.h -- the few helpers every test program shares. Each test is a
 * small program that prints what it checks and exits 0 on pass, 1 on fail,
 * naming the values that differed.
 */
#ifndef SHMBUS_TESTUTIL_H
#define SHMBUS_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#include <sanitizer/common_interface_defs.h>
#define TEST_SANITIZED 1
#endif

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

/* Options of type T for one call: size_of set, the members named, every
 * other member 0 -- name create when it matters (0 means "must exist"),
 * e.g. shmbus_sem_open(b, "s", T_OPTS(shmbus_sem_opts_t, .create = 1,
 * .initial = 3), &s). Tests that read as a newcomer's code use
 * shmbus_KIND_opts_init instead (test_outsider.c, test_opts.c). */
#define T_OPTS(T, ...) (&(T){.size_of = sizeof(T), __VA_ARGS__})

/*
 * Nothing left behind, whatever way a test ends. Every bus a test makes is
 * named "t-<tag>-<pid>..." after the process that names it
 * (test_bus_name), so /dev/shm/shmbus-t-*-<pid> belongs to that process.
 * When a test process ends -- returning from main, exit() from a failed
 * CHECK, SIGTERM from the suite's timeout, SIGINT, abort(), a crash, a
 * sanitizer report -- test_cleanup_all kills the children it has not
 * reaped (workers that would loop on the bus for ever) and removes what
 * is left in /dev/shm under its own pid, saying so on stderr (so a test
 * that forgets its unlink still shows). A forked child has its own pid:
 * its exit never touches the buses its parent named. Installed before
 * main by a constructor; a test that sets its own handler for one of
 * these signals keeps it.
 */
static inline int test_shm_owned(const char *n, const char *pidtag, size_t pl)
{
	const char *p;

	if (strncmp(n, "shmbus-t-", 9) != 0)
		return 0;
	for (p = n + 8; (p = strstr(p, pidtag)) != NULL; p++)
		if (p[pl] == '\0' || p[pl] == '-' || p[pl] == '.')
			return 1;
	return 0;
}

/* Async-signal-safe: raw getdents64 and unlinkat, no stdio, no malloc. */
static inline void test_cleanup_shm(void)
{
	char buf[4096] __attribute__((aligned(8))), pidtag[24], tmp[16];
	int fd, n, pos, len = 0, pl = 0;
	long pid = (long)getpid();

	do
		tmp[len++] = (char)('0' + pid % 10);
	while ((pid /= 10) > 0 && len < 15);
	pidtag[pl++] = '-';
	while (len > 0)
		pidtag[pl++] = tmp[--len];
	pidtag[pl] = '\0';
	fd = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	while ((n = (int)syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0)
		for (pos = 0; pos < n;) {
			struct { uint64_t ino; int64_t off; unsigned short reclen;
			         unsigned char type; char name[]; } *de = (void *)(buf + pos);

			if (test_shm_owned(de->name, pidtag, (size_t)pl) &&
			    unlinkat(fd, de->name, 0) == 0) {
				static const char m1[] = "testutil: removed /dev/shm/";
				static const char m2[] = " left by this test\n";

				if (write(2, m1, sizeof(m1) - 1) < 0 ||
				    write(2, de->name, strlen(de->name)) < 0 ||
				    write(2, m2, sizeof(m2) - 1) < 0)
					break;
			}
			pos += de->reclen;
		}
	close(fd);
}

/* The parent pid in /proc/<name>/stat (0 if unreadable), AS-safe. */
static inline long test_ppid_of(const char *name)
{
	char path[64] = "/proc/", buf[512];
	const char *p;
	long v = 0;
	size_t i = 6, j;
	ssize_t n;
	int fd;

	for (j = 0; name[j] && i < 50; j++)
		path[i++] = name[j];
	memcpy(path + i, "/stat", 6);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* "pid (comm) state ppid ...": comm may hold anything, so from the
	 * last ')'. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2] || p[3] != ' ')
		return 0;
	for (p += 4; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (*p - '0');
	return v;
}

/* Kill (SIGKILL) every child of this process still there: a test that
 * fails in the middle leaves no worker looping on a bus for ever. A child
 * already waited for is gone from /proc; a zombie takes no harm. */
static inline void test_kill_own_children(void)
{
	char buf[4096] __attribute__((aligned(8)));
	long me = (long)getpid();
	int fd, n, pos;

	fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	while ((n = (int)syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0)
		for (pos = 0; pos < n;) {
			struct { uint64_t ino; int64_t off; unsigned short reclen;
			         unsigned char type; char name[]; } *de = (void *)(buf + pos);
			long pid = 0;
			const char *c;

			for (c = de->name; *c >= '0' && *c <= '9'; c++)
				pid = pid * 10 + (*c - '0');
			if (*c == '\0' && pid > 0 && pid != me && test_ppid_of(de->name) == me)
				kill((pid_t)pid, SIGKILL);
			pos += de->reclen;
		}
	close(fd);
}

static inline void test_cleanup_all(void)
{
	test_kill_own_children();
	test_cleanup_shm();
}

static inline void test_cleanup_signal(int sig)
{
	test_cleanup_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

__attribute__((constructor)) static void test_cleanup_install(void)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGABRT, SIGALRM,
#ifndef TEST_SANITIZED
	                           /* a sanitizer owns the fault signals */
	                           SIGSEGV, SIGFPE, SIGILL,
#endif
	};
	size_t i;

	atexit(test_cleanup_all);
#ifdef TEST_SANITIZED
	__sanitizer_set_death_callback(test_cleanup_all);
#endif
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction sa, old;

		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
			memset(&sa, 0, sizeof(sa));
			sa.sa_handler = test_cleanup_signal;
			sa.sa_flags = SA_RESETHAND;
			sigaction(sigs[i], &sa, NULL);
		}
	}
}

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

/* One byte over a pipe between a test and its children: test_say exits
 * the process if it cannot be written; test_hear returns it, or 0 at end
 * of file (the other side died). */
static inline void test_say(int fd, char ch)
{
	if (write(fd, &ch, 1) != 1)
		_exit(1);
}

static inline char test_hear(int fd)
{
	char ch = 0;
	ssize_t n;

	do
		n = read(fd, &ch, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 ? ch : 0;
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

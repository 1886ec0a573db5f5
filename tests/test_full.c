/*
 * test_full.c -- a full /dev/shm or disk gives SHMBUS_ENOSPC, never SIGBUS.
 *
 * In a private mount namespace (unshare(CLONE_NEWNS); root only, else
 * SKIP) a 1 MiB tmpfs is mounted over /dev/shm, and another over a scratch
 * directory for `file:` buses. On each:
 *   - a 4 MiB bus: SHMBUS_ENOSPC, a message naming the bus and "No space
 *     left on device", nothing left behind (no bus, no temporary file);
 *   - a 640 KiB bus fits; a second one does not: the same;
 *   - the rest of the filesystem is then filled to the last byte by
 *     another file, and every byte of a state channel that takes most of
 *     the first bus is written and read back: the bus's pages were
 *     reserved at creation (posix_fallocate), so no page fault can find
 *     the filesystem full (that would be SIGBUS).
 * Every case runs in a child; a signal fails the test.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "testutil.h"

#define BIG (4u << 20)
#define FITS (640u << 10)

static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	CHECK(d, "opendir %s", dir);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void create_expect_full(const char *name, uint64_t size, const char *dir, int left)
{
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;

	shmbus_bus_opts_init(&o);
	o.size = size;
	EXPECT_CODE(shmbus_bus_create(name, &o, &b), SHMBUS_ENOSPC);
	CHECK(strstr(shmbus_last_error(), "No space left on device") &&
	      strstr(shmbus_last_error(), strchr(name, ':') ? strrchr(name, '/') + 1 : name),
	      "message names the bus and the cause: %s", shmbus_last_error());
	CHECK(entries(dir) == left, "%d files left in %s, expected %d", entries(dir), dir, left);
}

/* Fill the filesystem of dir to the last byte with another file. */
static uint64_t fill(const char *dir)
{
	char path[256], buf[4096];
	uint64_t total = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/filler", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	memset(buf, 0xab, sizeof(buf));
	while ((n = write(fd, buf, sizeof(buf))) > 0)
		total += (uint64_t)n;
	CHECK(n < 0 && errno == ENOSPC, "filler stopped with %s", strerror(errno));
	close(fd);
	return total;
}

/* The whole case on one filesystem: bus names `first` and `second` live
 * in dir, a fresh 1 MiB tmpfs. */
static void full_case(const char *dir, const char *first, const char *second)
{
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;
	shmbus_state_t *st;
	shmbus_state_opts_t so;
	uint64_t *v, *back, seq, filled;
	size_t n, i;
	int round;

	create_expect_full(first, BIG, dir, 0);
	shmbus_bus_opts_init(&o);
	o.size = FITS;
	OK(shmbus_bus_create(first, &o, &b));
	create_expect_full(second, FITS, dir, 1);

	filled = fill(dir);
	/* Most of the heap in one state channel of two buffers. */
	shmbus_state_opts_init(&so);
	so.dtype = SHMBUS_UINT64;
	so.ndim = 1;
	so.shape[0] = n = (FITS - (64u << 10)) / 2 / 8;
	so.nbuf = 2;
	OK(shmbus_state_open(b, "all", &so, &st));
	v = malloc(n * 8);
	back = malloc(n * 8);
	CHECK(v && back, "malloc");
	for (round = 0; round < 3; round++) {
		for (i = 0; i < n; i++)
			v[i] = i * 2654435761u + (uint64_t)round;
		OK(shmbus_state_write(st, v, n * 8));
		OK(shmbus_state_read(st, back, n * 8, &seq));
		CHECK(!memcmp(v, back, n * 8), "round %d: value read back differs", round);
	}
	free(v);
	free(back);
	shmbus_state_close(st);
	OK(shmbus_bus_close(b));
	printf("  %s: %u KiB bus ENOSPC, second bus ENOSPC, nothing left; %llu KiB filler, then %zu KiB written x3 into the first bus without SIGBUS\n",
	       dir, BIG >> 10, (unsigned long long)(filled >> 10), n * 8 >> 10);
}

static int run_child(void (*fn)(void))
{
	int status;
	pid_t pid = fork();

	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		fn();
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	if (WIFSIGNALED(status))
		FAIL("child killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	return WEXITSTATUS(status);
}

static char scratch[64];

static void in_namespace(void)
{
	char first[128], second[128];

	if (unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		_exit(77);
	if (mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=1m") != 0 ||
	    mount("tmpfs", scratch, "tmpfs", 0, "size=1m") != 0) {
		fprintf(stderr, "mount tmpfs: %s\n", strerror(errno));
		_exit(77);
	}
	full_case("/dev/shm", "t-full-a", "t-full-b");
	snprintf(first, sizeof(first), "file:%s/a.bus", scratch);
	snprintf(second, sizeof(second), "file:%s/b.bus", scratch);
	full_case(scratch, first, second);
}

static void cleanup(void)
{
	rmdir(scratch);
}

int main(void)
{
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("test_full\n");
	snprintf(scratch, sizeof(scratch), "/tmp/shmbus-full-%d", (int)getpid());
	CHECK(mkdir(scratch, 0700) == 0, "mkdir %s: %s", scratch, strerror(errno));
	atexit(cleanup);
	r = run_child(in_namespace);
	rmdir(scratch);
	if (r == 77) {
		printf("SKIP: no private mount namespace here (needs root or CAP_SYS_ADMIN)\n");
		return 0;
	}
	CHECK(r == 0, "child failed (exit %d)", r);
	printf("test_full: all passed\n");
	return 0;
}

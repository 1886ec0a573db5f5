/*
 * test_segment.c -- buses: create, open, open-or-create, close, unlink,
 * validation of names and options, and refusal of segments that are too
 * small, truncated, of another version, foreign or overwritten with random
 * bytes (DESIGN.md promises 4, 5, 6).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "testutil.h"

static char path_buf[256];

static const char *shm_path(const char *name)
{
	snprintf(path_buf, sizeof(path_buf), "/dev/shm/shmbus-%s", name);
	return path_buf;
}

static void test_create_open_close_unlink(void)
{
	const char *name = test_bus_name("seg");
	shmbus_bus_t *a, *b;
	shmbus_bus_info_t info = {.size_of = sizeof(info)};
	struct stat st;

	OK(shmbus_bus_create(name, NULL, &a));
	EXPECT_CODE(shmbus_bus_create(name, NULL, &b), SHMBUS_EEXIST);
	CHECK(strstr(shmbus_last_error(), name), "EEXIST message names the bus: %s",
	      shmbus_last_error());
	OK(shmbus_bus_open(name, NULL, &b));
	OK(shmbus_bus_info(b, &info));
	CHECK(info.size == 16u << 20, "default size 16 MiB, got %llu",
	      (unsigned long long)info.size);
	CHECK(info.peers == 2 && info.live_peers == 2, "two peers, got %u/%u", info.peers,
	      info.live_peers);
	CHECK(stat(shm_path(name), &st) == 0 && (st.st_mode & 0777) == 0600,
	      "mode 0600, got %o", st.st_mode & 0777);
	OK(shmbus_bus_close(b));
	OK(shmbus_bus_info(a, &info));
	CHECK(info.peers == 1, "one peer after close, got %u", info.peers);
	OK(shmbus_bus_close(a));
	OK(shmbus_bus_unlink(name));
	EXPECT_CODE(shmbus_bus_open(name, NULL, &a), SHMBUS_ENOENT);
	EXPECT_CODE(shmbus_bus_unlink(name), SHMBUS_ENOENT);
	CHECK(access(shm_path(name), F_OK) != 0, "nothing left in /dev/shm");
}

static void test_open_or_create_race(void)
{
	const char *name = test_bus_name("race");
	int i, created_total = 0, status;
	int fds[2];

	CHECK(pipe(fds) == 0, "pipe");
	for (i = 0; i < 8; i++) {
		if (fork() == 0) {
			shmbus_bus_t *b;
			int created = 0;
			char c;

			if (shmbus_bus_open_or_create(name, NULL, &b, &created) != 0)
				_exit(2);
			c = (char)('0' + created);
			if (write(fds[1], &c, 1) != 1)
				_exit(3);
			shmbus_bus_close(b);
			_exit(0);
		}
	}
	close(fds[1]);
	for (i = 0; i < 8; i++) {
		char c;

		CHECK(read(fds[0], &c, 1) == 1, "child %d reported", i);
		created_total += c - '0';
	}
	while (wait(&status) > 0)
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	close(fds[0]);
	CHECK(created_total == 1, "exactly one creator among 8 racers, got %d", created_total);
	OK(shmbus_bus_unlink(name));
}

static void test_bad_names_and_options(void)
{
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;
	char longname[100];

	EXPECT_CODE(shmbus_bus_create("", NULL, &b), SHMBUS_EINVAL);
	EXPECT_CODE(shmbus_bus_create("a/b", NULL, &b), SHMBUS_EINVAL);
	CHECK(strstr(shmbus_last_error(), "0x2f"), "message names the bad char: %s",
	      shmbus_last_error());
	EXPECT_CODE(shmbus_bus_create(".hidden", NULL, &b), SHMBUS_EINVAL);
	EXPECT_CODE(shmbus_bus_create(NULL, NULL, &b), SHMBUS_EINVAL);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	EXPECT_CODE(shmbus_bus_create(longname, NULL, &b), SHMBUS_EINVAL);
	EXPECT_CODE(shmbus_bus_create("file:", NULL, &b), SHMBUS_EINVAL);
	shmbus_bus_opts_init(&o);
	o.size = 1000;
	EXPECT_CODE(shmbus_bus_create(test_bus_name("small"), &o, &b), SHMBUS_EINVAL);
	CHECK(strstr(shmbus_last_error(), "too small"), "says too small: %s", shmbus_last_error());
	shmbus_bus_opts_init(&o);
	o.max_channels = 100000;
	EXPECT_CODE(shmbus_bus_create(test_bus_name("big"), &o, &b), SHMBUS_EINVAL);
	o.size_of = 3;
	EXPECT_CODE(shmbus_bus_create(test_bus_name("sz"), &o, &b), SHMBUS_EINVAL);
}

/* Write bytes over a region of an existing segment file. */
static void scribble(const char *path, off_t off, const void *p, size_t n)
{
	int fd = open(path, O_RDWR);

	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	CHECK(pwrite(fd, p, n, off) == (ssize_t)n, "pwrite");
	close(fd);
}

static void test_refuses_bad_segments(void)
{
	const char *name = test_bus_name("bad");
	shmbus_bus_t *b;
	unsigned char junk[4096];
	uint32_t v;
	int fd, i, round;

	/* Not a shmbus segment at all. */
	fd = open(shm_path(name), O_RDWR | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0, "create foreign file");
	CHECK(write(fd, "hello", 5) == 5, "write");
	close(fd);
	EXPECT_CODE(shmbus_bus_open(name, NULL, &b), SHMBUS_ECORRUPT);
	CHECK(strstr(shmbus_last_error(), "smaller than a header"), "%s", shmbus_last_error());
	unlink(shm_path(name));

	/* Truncated after creation. */
	OK(shmbus_bus_create(name, NULL, &b));
	OK(shmbus_bus_close(b));
	CHECK(truncate(shm_path(name), 1 << 20) == 0, "truncate");
	EXPECT_CODE(shmbus_bus_open(name, NULL, &b), SHMBUS_ECORRUPT);
	CHECK(strstr(shmbus_last_error(), "truncated"), "%s", shmbus_last_error());
	unlink(shm_path(name));

	/* Another ABI version. */
	OK(shmbus_bus_create(name, NULL, &b));
	OK(shmbus_bus_close(b));
	v = 99;
	scribble(shm_path(name), 8, &v, sizeof(v));
	EXPECT_CODE(shmbus_bus_open(name, NULL, &b), SHMBUS_EVERSION);
	CHECK(strstr(shmbus_last_error(), "99"), "names the version: %s", shmbus_last_error());
	unlink(shm_path(name));

	/* Header fields overwritten with random bytes, many times: always an
	 * error or (if the damage missed every checked field) a valid bus. */
	srand(1234);
	for (round = 0; round < 200; round++) {
		int r;

		OK(shmbus_bus_create(name, NULL, &b));
		OK(shmbus_bus_close(b));
		for (i = 0; i < (int)sizeof(junk); i++)
			junk[i] = (unsigned char)rand();
		/* Magic kept on odd rounds, so the deeper checks run too. */
		if (round & 1)
			scribble(shm_path(name), 16 + (round % 7) * 8, junk, 8 + (size_t)(round % 96));
		else
			scribble(shm_path(name), 0, junk, 256);
		r = shmbus_bus_open(name, NULL, &b);
		if (r == 0)
			shmbus_bus_close(b);
		else
			CHECK(r == SHMBUS_ECORRUPT || r == SHMBUS_EVERSION,
			      "round %d: got %d (%s)", round, r, shmbus_last_error());
		unlink(shm_path(name));
	}
}

static void test_file_bus_and_symlink(void)
{
	char name[160], link_name[160], target[128];
	shmbus_bus_t *b;

	snprintf(target, sizeof(target), "/tmp/shmbus-test-%d.bus", (int)getpid());
	snprintf(name, sizeof(name), "file:%s", target);
	unlink(target);
	OK(shmbus_bus_create(name, NULL, &b));
	OK(shmbus_bus_close(b));
	OK(shmbus_bus_open(name, NULL, &b));
	OK(shmbus_bus_close(b));
	snprintf(link_name, sizeof(link_name), "file:/tmp/shmbus-test-%d.link", (int)getpid());
	unlink(link_name + 5);
	CHECK(symlink(target, link_name + 5) == 0, "symlink");
	EXPECT_CODE(shmbus_bus_open(link_name, NULL, &b), SHMBUS_EPERM);
	CHECK(strstr(shmbus_last_error(), "symbolic link"), "%s", shmbus_last_error());
	unlink(link_name + 5);
	OK(shmbus_bus_unlink(name));
}

static void test_enospc_at_create(void)
{
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;
	char name[128];

	/* A file bus on a tiny tmpfs is not available unprivileged; instead
	 * ask for more than any /dev/shm holds. */
	shmbus_bus_opts_init(&o);
	o.size = 1ull << 50;
	snprintf(name, sizeof(name), "%s", test_bus_name("huge"));
	{
		int r = shmbus_bus_create(name, &o, &b);

		CHECK(r == SHMBUS_ENOSPC || r == SHMBUS_ESYS || r == SHMBUS_EINVAL,
		      "1 PiB bus refused at create, got %d (%s)", r, shmbus_last_error());
	}
	CHECK(access(shm_path(name), F_OK) != 0, "nothing left behind after a failed create");
}

/* State letter of /proc/PID/stat (field 3), or 0. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

static void *sleeper(void *arg)
{
	(void)arg;
	sleep(30);
	return NULL;
}

/* A peer that died but was not reaped by its parent yet (a zombie) is
 * dead: what it held can be taken over while the parent is still busy,
 * perhaps blocked waiting for it. A process whose main thread ended with
 * pthread_exit also looks like a zombie but lives on in its threads. */
static void test_zombie_peer_is_dead(void)
{
	const char *name = test_bus_name("zomb");
	shmbus_bus_t *a;
	shmbus_bus_info_t info = {.size_of = sizeof(info)};
	pid_t dead, threaded;
	int i, st;

	OK(shmbus_bus_create(name, NULL, &a));
	dead = fork();
	CHECK(dead >= 0, "fork");
	if (dead == 0) {
		shmbus_bus_t *b;

		_exit(shmbus_bus_open(name, NULL, &b) == 0 ? 0 : 2);   /* never closes */
	}
	threaded = fork();
	CHECK(threaded >= 0, "fork");
	if (threaded == 0) {
		shmbus_bus_t *b;
		pthread_t t;

		if (shmbus_bus_open(name, NULL, &b) != 0 ||
		    pthread_create(&t, NULL, sleeper, NULL) != 0)
			_exit(2);
		pthread_exit(NULL);                                    /* main thread only */
	}
	for (i = 0; i < 500 && (proc_state(dead) != 'Z' || proc_state(threaded) != 'Z'); i++)
		usleep(10000);
	CHECK(proc_state(dead) == 'Z' && proc_state(threaded) == 'Z',
	      "both children look like zombies (%c, %c)", proc_state(dead), proc_state(threaded));
	OK(shmbus_bus_info(a, &info));
	CHECK(info.peers == 3 && info.live_peers == 2,
	      "3 peers, 2 live (us and the threaded one), got %u/%u", info.peers, info.live_peers);
	kill(threaded, SIGKILL);
	CHECK(waitpid(dead, &st, 0) == dead && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "zombie child opened the bus (status 0x%x)", st);
	CHECK(waitpid(threaded, &st, 0) == threaded, "threaded child reaped");
	OK(shmbus_bus_close(a));
	OK(shmbus_bus_unlink(name));
}

/* A table full of dead peers and several processes opening at once: each
 * reaps, and one that finds the dead already reaped by another must still
 * find the freed slots (it used to give up with "peer table full"). */
static void test_concurrent_open_over_dead_peers(void)
{
	const char *name = test_bus_name("reap");
	shmbus_bus_opts_t o;
	shmbus_bus_t *a;
	int round, k, st, failures = 0, rounds = 40 * test_scale(), gate[2];
	pid_t pids[4];

	shmbus_bus_opts_init(&o);
	o.max_peers = 8;
	OK(shmbus_bus_create(name, &o, &a));
	for (round = 0; round < rounds; round++) {
		/* Fill the 7 free slots with peers that die without closing. */
		for (k = 0; k < 7; k++) {
			pid_t p = fork();
			shmbus_bus_t *b;

			CHECK(p >= 0, "fork");
			if (p == 0)
				_exit(shmbus_bus_open(name, NULL, &b) == 0 ? 0 : 2);
			CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "round %d: filler %d could not open (status 0x%x)", round, k, st);
		}
		/* Four openers released at once (a pipe closed under them),
		 * each needing a reaped slot. */
		CHECK(pipe(gate) == 0, "pipe");
		for (k = 0; k < 4; k++) {
			pids[k] = fork();
			CHECK(pids[k] >= 0, "fork");
			if (pids[k] == 0) {
				shmbus_bus_t *b;
				char c;
				int r;

				close(gate[1]);
				while (read(gate[0], &c, 1) < 0 && errno == EINTR)
					;
				r = shmbus_bus_open(name, NULL, &b);

				if (r != 0)
					fprintf(stderr, "opener: %s\n", shmbus_last_error());
				_exit(r == 0 ? 0 : 3);
			}
		}
		close(gate[0]);
		close(gate[1]);
		for (k = 0; k < 4; k++) {
			CHECK(waitpid(pids[k], &st, 0) == pids[k] && WIFEXITED(st), "opener reaped");
			failures += WEXITSTATUS(st) != 0;
		}
	}
	CHECK(failures == 0, "%d of %d concurrent opens over dead peers failed", failures,
	      4 * rounds);
	OK(shmbus_bus_close(a));
	OK(shmbus_bus_unlink(name));
}

int main(void)
{
	test_create_open_close_unlink();
	test_open_or_create_race();
	test_bad_names_and_options();
	test_refuses_bad_segments();
	test_file_bus_and_symlink();
	test_enospc_at_create();
	test_zombie_peer_is_dead();
	test_concurrent_open_over_dead_peers();
	printf("test_segment: ok\n");
	return 0;
}

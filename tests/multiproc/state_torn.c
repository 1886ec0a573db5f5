/*
 * state_torn.c -- promise 1: no torn reads, ever, for any value size.
 *
 * A writer process publishes values of 8 B, 4 KiB, 1 MiB and 16 MiB as
 * fast as it can; every value is a pattern derived from its own sequence
 * number, so a reader can tell a whole value from a mix of two. Reader
 * processes (on the other core) read continuously and check every word and
 * that sequence numbers never go backwards. Runs with nbuf 2 (the tightest
 * setting) and the default 3.
 */
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

#include "testutil.h"

static const char *bus_name;

static uint64_t word_of(uint64_t seq, uint64_t i)
{
	return seq * 0x9E3779B97F4A7C15ull + i;
}

static void fill(uint64_t *v, size_t words, uint64_t x)
{
	size_t i;

	if (words == 1) {  /* 8 bytes: 32-bit tag + its own 32-bit check */
		v[0] = (x << 32) | (uint32_t)(word_of(x, 7) >> 32);
		return;
	}
	v[0] = x;
	for (i = 1; i < words; i++)
		v[i] = word_of(x, i);
}

/* Returns the value's tag or aborts the process naming the damage. */
static uint64_t verify(const uint64_t *v, size_t words, uint64_t seq)
{
	size_t i;

	if (words == 1) {
		uint64_t x = v[0] >> 32;

		if ((uint32_t)v[0] != (uint32_t)(word_of(x, 7) >> 32))
			FAIL("torn 8-byte value at seq %llu: %016llx", (unsigned long long)seq,
			     (unsigned long long)v[0]);
		return x;
	}
	for (i = 1; i < words; i++)
		if (v[i] != word_of(v[0], i))
			FAIL("torn %zu-byte value at seq %llu: word %zu is %016llx, expected %016llx for tag %llu",
			     words * 8, (unsigned long long)seq, i, (unsigned long long)v[i],
			     (unsigned long long)word_of(v[0], i), (unsigned long long)v[0]);
	return v[0];
}

static shmbus_state_t *open_chan(shmbus_bus_t *b, const char *name, size_t bytes, uint32_t nbuf)
{
	shmbus_state_opts_t o;
	shmbus_state_t *st;

	shmbus_state_opts_init(&o);
	o.dtype = SHMBUS_UINT64;
	o.ndim = 1;
	o.shape[0] = bytes / 8;
	o.nbuf = nbuf;
	OK(shmbus_state_open(b, name, &o, &st));
	return st;
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void reader(const char *chan, size_t bytes, uint32_t nbuf, double seconds, int fd)
{
	shmbus_bus_t *b;
	shmbus_state_t *st;
	uint64_t *buf = malloc(bytes), seq, last = 0, reads = 0, t_end;
	char line[64];

	pin(1);
	OK(shmbus_bus_open(bus_name, NULL, &b));
	st = open_chan(b, chan, bytes, nbuf);
	t_end = test_now_ns() + (uint64_t)(seconds * 1e9);
	/* Past the end the writer has stopped, so a reader that the writer
	 * kept lapping (16 MiB on a loaded machine) gets its whole value
	 * then; a reader that still gets none within 30 s fails. */
	while (test_now_ns() < t_end || (reads == 0 && test_now_ns() < t_end + 30000000000ull)) {
		int r = shmbus_state_read(st, buf, bytes, &seq);

		if (r == SHMBUS_ENODATA)
			continue;
		if (r)
			FAIL("read: %s", shmbus_last_error());
		verify(buf, bytes / 8, seq);
		CHECK(seq >= last, "seq went backwards: %llu after %llu", (unsigned long long)seq,
		      (unsigned long long)last);
		last = seq;
		reads++;
	}
	snprintf(line, sizeof(line), "%llu %llu\n", (unsigned long long)reads,
	         (unsigned long long)last);
	if (write(fd, line, strlen(line)) < 0)
		_exit(3);
	_exit(0);
}

static void run(size_t bytes, uint32_t nbuf, double seconds)
{
	char chan[32];
	shmbus_bus_t *b;
	shmbus_state_t *st;
	uint64_t *v = malloc(bytes), x = 0, t_end;
	int fds[2], i, status, nreaders = 2;
	pid_t pids[2];

	snprintf(chan, sizeof(chan), "v%zu-%u", bytes, nbuf);
	OK(shmbus_bus_open(bus_name, NULL, &b));
	st = open_chan(b, chan, bytes, nbuf);
	CHECK(pipe(fds) == 0, "pipe");
	for (i = 0; i < nreaders; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			reader(chan, bytes, nbuf, seconds, fds[1]);
	}
	pin(0);
	t_end = test_now_ns() + (uint64_t)(seconds * 1e9);
	while (test_now_ns() < t_end) {
		fill(v, bytes / 8, ++x);
		OK(shmbus_state_write(st, v, bytes));
	}
	for (i = 0; i < nreaders; i++) {
		CHECK(waitpid(pids[i], &status, 0) == pids[i], "waitpid");
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "reader %d of %zu-byte values failed (status %d)", i, bytes, status);
	}
	{
		char out[256] = {0};
		ssize_t n = read(fds[0], out, sizeof(out) - 1);
		unsigned long long r1 = 0, s1 = 0, r2 = 0, s2 = 0;

		CHECK(n > 0 && sscanf(out, "%llu %llu %llu %llu", &r1, &s1, &r2, &s2) == 4,
		      "reader reports: '%s'", out);
		CHECK(r1 > 0 && r2 > 0, "both readers read whole values (%llu, %llu)", r1, r2);
		printf("  %8zu B nbuf %u: %llu writes, reads %llu + %llu, all whole\n", bytes, nbuf,
		       (unsigned long long)x, r1, r2);
	}
	close(fds[0]);
	close(fds[1]);
	shmbus_state_close(st);
	shmbus_bus_close(b);
	free(v);
}

int main(void)
{
	static const size_t sizes[] = {8, 4096, 1u << 20, 16u << 20};
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;
	double secs = 0.6 * test_scale();
	size_t i;

	bus_name = test_bus_name("torn");
	shmbus_bus_opts_init(&o);
	o.size = 160ull << 20;
	OK(shmbus_bus_create(bus_name, &o, &b));
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		run(sizes[i], 2, secs);
		run(sizes[i], 3, secs);
	}
	shmbus_bus_close(b);
	OK(shmbus_bus_unlink(bus_name));
	printf("state_torn: ok\n");
	return 0;
}

/*
 * state_kill_writer.c -- promise 3 for state channels: a writer killed with
 * SIGKILL at any point (here: mostly in the middle of copying a 1 MiB
 * value) leaves the last complete value readable, and a new writer can take
 * over at once.
 *
 * Each round forks a writer that publishes patterned values in a loop, lets
 * it run a random 0-3 ms, kills it, then checks from this process that the
 * value read is whole and its sequence did not go back, and that a fresh
 * writer process gets the role and publishes the next sequence number.
 */
#include <signal.h>
#include <sys/wait.h>

#include "testutil.h"

#define BYTES (1u << 20)

static const char *bus_name;

static uint64_t word_of(uint64_t tag, uint64_t i)
{
	return tag * 0x9E3779B97F4A7C15ull + i;
}

static shmbus_state_t *open_chan(shmbus_bus_t *b)
{
	shmbus_state_t *st;

	OK(test_state_1d(b, "v", SHMBUS_UINT64, BYTES / 8, &st));
	return st;
}

static void writer(int ready_fd, uint64_t tag0, int once)
{
	shmbus_bus_t *b;
	shmbus_state_t *st;
	uint64_t *v = malloc(BYTES), tag = tag0;
	size_t i;
	char c = 'r';
	int r;

	if (shmbus_bus_open(bus_name, NULL, &b))
		_exit(10);
	st = open_chan(b);
	for (;;) {
		void *p;

		v[0] = ++tag;
		for (i = 1; i < BYTES / 8; i++)
			v[i] = word_of(tag, i);
		/* Alternate copying and zero-copy writes so kills land in both. */
		if (tag & 1) {
			r = shmbus_state_write(st, v, BYTES);
		} else {
			r = shmbus_state_write_begin(st, &p);
			if (!r) {
				memcpy(p, v, BYTES);
				r = shmbus_state_write_commit(st);
			}
		}
		if (r)
			_exit(r == SHMBUS_EBUSY ? 11 : 12);
		if (ready_fd >= 0) {
			if (write(ready_fd, &c, 1) != 1)
				_exit(13);
			close(ready_fd);
			ready_fd = -1;
		}
		if (once)
			_exit(0);
	}
}

int main(void)
{
	int rounds = (int)(150 * test_scale()), round, status, fds[2];
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;
	shmbus_state_t *st;
	uint64_t *buf = malloc(BYTES), seq, last_seq = 0, i;
	pid_t pid;
	char c;

	if (rounds < 20)
		rounds = 20;
	bus_name = test_bus_name("killw");
	shmbus_bus_opts_init(&o);
	o.size = 32ull << 20;
	OK(shmbus_bus_create(bus_name, &o, &b));
	st = open_chan(b);
	srand((unsigned)getpid());
	for (round = 0; round < rounds; round++) {
		CHECK(pipe(fds) == 0, "pipe");
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			writer(fds[1], (uint64_t)round << 32, 0);
		}
		close(fds[1]);
		/* Wait for its first complete value, then kill it mid-stream. */
		CHECK(read(fds[0], &c, 1) == 1, "round %d: writer published nothing", round);
		close(fds[0]);
		usleep((useconds_t)(rand() % 3000));
		kill(pid, SIGKILL);
		CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status),
		      "round %d: writer was killed (status %d)", round, status);
		OK(shmbus_state_read(st, buf, BYTES, &seq));
		for (i = 1; i < BYTES / 8; i++)
			CHECK(buf[i] == word_of(buf[0], i),
			      "round %d: value at seq %llu is torn at word %llu", round,
			      (unsigned long long)seq, (unsigned long long)i);
		CHECK(seq > last_seq, "round %d: seq %llu not after %llu", round,
		      (unsigned long long)seq, (unsigned long long)last_seq);
		last_seq = seq;
	}
	/* A new writer takes over right after the last kill. */
	pid = fork();
	if (pid == 0)
		writer(-1, 1ull << 60, 1);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "a new writer took over after the kill (status %d)", status);
	OK(shmbus_state_read(st, buf, BYTES, &seq));
	CHECK(seq == last_seq + 1 && buf[0] == (1ull << 60) + 1,
	      "new writer's value published as seq %llu (got seq %llu, tag %llx)",
	      (unsigned long long)(last_seq + 1), (unsigned long long)seq,
	      (unsigned long long)buf[0]);
	printf("  %d writers killed mid-stream; every read whole, seq monotonic, takeover ok\n",
	       rounds);
	shmbus_state_close(st);
	shmbus_bus_close(b);
	free(buf);
	OK(shmbus_bus_unlink(bus_name));
	printf("state_kill_writer: ok\n");
	return 0;
}

/*
 * waitset_kill_ringer.c -- a writer killed with SIGKILL after publishing a
 * value and before ringing the bus's bell does not leave a wait set asleep
 * on that value: the set finds it at its next full look, within a slice
 * (250 ms; asserted < 3 s for a loaded 2-CPU machine), and the set keeps
 * working: the next write, by another process, wakes it through the bell.
 *
 * The kill point is exact, not luck: the writer process traces the steps
 * of one write (the kill-point hook, tests/faultinject.h) to learn the
 * number of the step "waitset.ring.head" (the ring's claim, after the
 * value is published), then arms the hook to SIGKILL itself just before
 * that step of its next write. The parent checks that the writer died of
 * SIGKILL at exactly that step, while the parent waits in the set.
 *
 * Also: a producer killed between reserve and commit (it says it has
 * reserved, then the parent kills it) leaves the consumer's next seq
 * claimed and never published; a message put after it by another process
 * rings, but the member (waiting for the dead seq) is not ready then. The
 * set's full look reports the member while a claim stays unpublished, so
 * the consumer's loop of wait + get(timeout 0) reaches the get that skips
 * the dead producer's seq (after the liveness timeout) and receives the
 * message, within 3 s (the promise is one liveness timeout, 200 ms, plus a
 * slice). The same for space: the only consumer of a full ring, killed
 * while it holds a message, does not leave a producer's set asleep for
 * ever; its loop of wait + put(timeout 0) gets the message in. And a lock
 * or a turn whose holder is killed holding it is reported at the next full
 * look: the lock's own call then says SHMBUS_EOWNERDEAD, the turn's takes
 * it. Through the set's fd too: the fd's thread finds the dead holder,
 * and the wait(0) the program makes when the fd polls readable reports
 * the lock (it must not lose what the thread saw).
 */
#include <poll.h>
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "faultinject.h"
#include "testutil.h"

#define SECOND 1000000000ll
#define NAMES 256

static const char *bus_name;
static const char **names;      /* shared with the writer: its trace */

static void put(shmbus_state_t *st, double v)
{
	OK(shmbus_state_write(st, &v, sizeof(v)));
}

static void writer(int to_parent, int from_parent)
{
	shmbus_bus_t *b;
	shmbus_state_t *st;
	long n, i, ring = 0;
	char c;

	OK(shmbus_bus_open(bus_name, NULL, &b));
	OK(shmbus_state_open(b, "a", NULL, &st));
	put(st, 1);                     /* takes the writer role */
	sb_fault_arm(0, 0);             /* count only */
	sb_fault_trace(names, NAMES);
	put(st, 2);
	n = sb_fault_steps();
	sb_fault_trace(NULL, 0);
	for (i = 0; i < n && i < NAMES; i++)
		if (strcmp(names[i], "waitset.ring.head") == 0)
			ring = i + 1;
	if (ring == 0)
		_exit(20);              /* the write did not ring: no set seen */
	if (write(to_parent, &ring, sizeof(ring)) != sizeof(ring) ||
	    read(from_parent, &c, 1) != 1)
		_exit(21);
	usleep(50000);                  /* the parent is asleep in its wait */
	memset(names, 0, NAMES * sizeof(*names));
	sb_fault_arm(ring, SIGKILL);
	sb_fault_trace(names, NAMES);
	put(st, 3);                     /* dies before its ring */
	_exit(22);
}

static void other_writer(void)
{
	shmbus_bus_t *b;
	shmbus_state_t *st;

	OK(shmbus_bus_open(bus_name, NULL, &b));
	OK(shmbus_state_open(b, "b", NULL, &st));
	put(st, 7);
	_exit(0);
}

/* Wait until tag's state has reached seq (reports of earlier values are
 * taken on the way). */
static uint64_t wait_for(shmbus_waitset_t *ws, shmbus_state_t *st, uint64_t tag, uint64_t seq)
{
	uint64_t t0 = test_now_ns(), tags[4];
	size_t n, i;

	for (;;) {
		OK(shmbus_waitset_wait(ws, 20 * SECOND, tags, 4, &n));
		for (i = 0; i < n; i++)
			CHECK(tags[i] == tag, "tag %llu reported, waiting for %llu",
			      (unsigned long long)tags[i], (unsigned long long)tag);
		if (shmbus_state_seq(st) >= seq)
			return test_now_ns() - t0;
	}
}

static void dead_producer(int to_parent)
{
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	void *p;

	OK(shmbus_bus_open(bus_name, NULL, &b));
	OK(shmbus_queue_open(b, "q", NULL, &q));
	OK(shmbus_queue_reserve(q, 8, &p, 0));
	if (write(to_parent, "r", 1) != 1)
		_exit(21);
	pause();                        /* killed here, between reserve and commit */
	_exit(22);
}

static void live_producer(void)
{
	shmbus_bus_t *b;
	shmbus_queue_t *q;

	OK(shmbus_bus_open(bus_name, NULL, &b));
	OK(shmbus_queue_open(b, "q", NULL, &q));
	OK(shmbus_queue_put(q, "after", 5, 0));
	_exit(0);
}

static void test_dead_claim(shmbus_bus_t *bus)
{
	shmbus_waitset_t *ws;
	shmbus_queue_t *q;
	uint64_t t0, el, tags[4];
	int fds[2], status, r = SHMBUS_EAGAIN;
	char buf[16];
	size_t n, len = 0;
	pid_t pid, pid2;

	OK(shmbus_queue_open(bus, "q", NULL, &q));
	OK(shmbus_queue_join(q, "g", 0));
	OK(shmbus_waitset_new(&ws));
	OK(shmbus_waitset_add_queue(ws, q, SHMBUS_ON_MESSAGE, 5));
	CHECK(pipe(fds) == 0, "pipe");
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0)
		dead_producer(fds[1]);
	close(fds[1]);
	CHECK(read(fds[0], buf, 1) == 1, "the producer failed to reserve");
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status), "producer not killed");
	pid2 = fork();
	CHECK(pid2 >= 0, "fork");
	if (pid2 == 0)
		live_producer();
	CHECK(waitpid(pid2, &status, 0) == pid2 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the second producer failed");
	t0 = test_now_ns();
	while (r == SHMBUS_EAGAIN) {
		CHECK(test_now_ns() - t0 < 20 * SECOND, "no message after 20 s");
		OK(shmbus_waitset_wait(ws, 20 * SECOND, tags, 4, &n));
		CHECK(n == 1 && tags[0] == 5, "%zu tags reported", n);
		r = shmbus_queue_get(q, buf, sizeof(buf), &len, NULL, 0);
	}
	el = test_now_ns() - t0;
	OK(r);
	CHECK(len == 5 && memcmp(buf, "after", 5) == 0, "got %zu bytes", len);
	CHECK(el < 3 * SECOND, "the message behind a dead producer's claim took %llu ms",
	      (unsigned long long)(el / 1000000));
	OK(shmbus_waitset_free(ws));
	shmbus_queue_close(q);
	printf("ok  a producer killed between reserve and commit: the set's loop gets the next message in %llu ms\n",
	       (unsigned long long)(el / 1000000));
}

static void dead_consumer(int to_parent)
{
	shmbus_msg_t m;
	shmbus_bus_t *b;
	shmbus_queue_t *q;

	OK(shmbus_bus_open(bus_name, NULL, &b));
	OK(shmbus_queue_open(b, "qf", NULL, &q));
	OK(shmbus_queue_join(q, "g", 0));
	OK(shmbus_queue_peek(q, &m, 10 * SECOND));
	if (write(to_parent, "p", 1) != 1)
		_exit(21);
	pause();                        /* killed here, holding message 0 */
	_exit(22);
}

static void test_dead_consumer(shmbus_bus_t *bus)
{
	shmbus_queue_opts_t qo;
	shmbus_waitset_t *ws;
	shmbus_queue_t *q;
	uint64_t t0, el, tags[4];
	int fds[2], status, r = SHMBUS_EAGAIN;
	char c;
	size_t n;
	pid_t pid;

	shmbus_queue_opts_init(&qo);
	qo.slots = 2;
	OK(shmbus_queue_open(bus, "qf", &qo, &q));
	CHECK(pipe(fds) == 0, "pipe");
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0)
		dead_consumer(fds[1]);
	close(fds[1]);
	/* The child's group gates from its join: fill the ring behind it. */
	OK(shmbus_queue_wait_groups(q, 1, 10 * SECOND));
	OK(shmbus_queue_put(q, "m0", 2, 0));
	CHECK(read(fds[0], &c, 1) == 1, "the consumer failed to peek");
	OK(shmbus_queue_put(q, "m1", 2, 0));
	EXPECT_CODE(shmbus_queue_put(q, "m2", 2, 0), SHMBUS_EAGAIN);
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status), "consumer not killed");
	OK(shmbus_waitset_new(&ws));
	OK(shmbus_waitset_add_queue(ws, q, SHMBUS_ON_SPACE, 6));
	t0 = test_now_ns();
	while (r == SHMBUS_EAGAIN) {
		CHECK(test_now_ns() - t0 < 20 * SECOND, "no space after 20 s");
		OK(shmbus_waitset_wait(ws, 20 * SECOND, tags, 4, &n));
		CHECK(n == 1 && tags[0] == 6, "%zu tags reported", n);
		r = shmbus_queue_put(q, "m2", 2, 0);
	}
	el = test_now_ns() - t0;
	OK(r);
	CHECK(el < 3 * SECOND, "space behind a dead consumer took %llu ms",
	      (unsigned long long)(el / 1000000));
	OK(shmbus_waitset_free(ws));
	shmbus_queue_close(q);
	printf("ok  the only consumer killed holding a message: the producer's loop puts in %llu ms\n",
	       (unsigned long long)(el / 1000000));
}

static void dead_holder(int to_parent)
{
	shmbus_bus_t *b;
	shmbus_lock_t *l;
	shmbus_turn_t *t;
	uint32_t party;

	OK(shmbus_bus_open(bus_name, NULL, &b));
	OK(shmbus_lock_open(b, "l", T_OPTS(shmbus_lock_opts_t, .create = 0), &l));
	OK(shmbus_lock_lock(l, 0));
	OK(shmbus_turn_open(b, "t", T_OPTS(shmbus_turn_opts_t, .create = 0, .max_parties = 2), &t));
	OK(shmbus_turn_register(t, &party));
	OK(shmbus_turn_acquire(t, 0));
	if (write(to_parent, "h", 1) != 1)
		_exit(21);
	pause();                        /* killed here, holding both */
	_exit(22);
}

static void test_dead_holder(shmbus_bus_t *bus)
{
	shmbus_waitset_t *ws;
	shmbus_lock_t *l;
	shmbus_turn_t *t;
	uint64_t t0, el, tags[4];
	int fds[2], status, got_lock = 0, got_turn = 0;
	uint32_t party;
	size_t n, i;
	char c;
	pid_t pid;

	OK(shmbus_lock_open(bus, "l", NULL, &l));
	OK(shmbus_turn_open(bus, "t", T_OPTS(shmbus_turn_opts_t, .create = 1, .max_parties = 2), &t));
	CHECK(pipe(fds) == 0, "pipe");
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0)
		dead_holder(fds[1]);
	close(fds[1]);
	CHECK(read(fds[0], &c, 1) == 1, "the holder failed");
	OK(shmbus_turn_register(t, &party));
	OK(shmbus_waitset_new(&ws));
	OK(shmbus_waitset_add_lock(ws, l, 8));
	OK(shmbus_waitset_add_turn(ws, t, 9));
	EXPECT_CODE(shmbus_waitset_wait(ws, 0, tags, 4, &n), SHMBUS_ETIMEDOUT);
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status), "holder not killed");
	t0 = test_now_ns();
	while (!got_lock || !got_turn) {
		CHECK(test_now_ns() - t0 < 20 * SECOND, "lock %d turn %d after 20 s", got_lock,
		      got_turn);
		OK(shmbus_waitset_wait(ws, 20 * SECOND, tags, 4, &n));
		for (i = 0; i < n; i++) {
			if (tags[i] == 8 && !got_lock) {
				EXPECT_CODE(shmbus_lock_lock(l, 0), SHMBUS_EOWNERDEAD);
				OK(shmbus_waitset_remove(ws, 8));
				got_lock = 1;
			} else if (tags[i] == 9 && !got_turn) {
				OK(shmbus_turn_acquire(t, 0));
				OK(shmbus_waitset_remove(ws, 9));
				got_turn = 1;
			} else
				FAIL("tag %llu reported", (unsigned long long)tags[i]);
		}
	}
	el = test_now_ns() - t0;
	CHECK(el < 3 * SECOND, "a dead holder's lock and turn took %llu ms",
	      (unsigned long long)(el / 1000000));
	OK(shmbus_lock_consistent(l));
	OK(shmbus_lock_unlock(l));
	OK(shmbus_turn_release(t));
	OK(shmbus_waitset_free(ws));
	shmbus_lock_close(l);
	shmbus_turn_close(t);
	printf("ok  a lock and a turn whose holder was killed: reported and taken in %llu ms\n",
	       (unsigned long long)(el / 1000000));
}

static void test_dead_holder_fd(shmbus_bus_t *bus)
{
	shmbus_waitset_t *ws;
	shmbus_lock_t *l;
	struct pollfd pfd;
	uint64_t t0, el, tags[4];
	int fds[2], status, k;
	size_t n;
	char c;
	pid_t pid;

	OK(shmbus_lock_open(bus, "l2", NULL, &l));
	CHECK(pipe(fds) == 0, "pipe");
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		shmbus_bus_t *b;
		shmbus_lock_t *cl;

		OK(shmbus_bus_open(bus_name, NULL, &b));
		OK(shmbus_lock_open(b, "l2", T_OPTS(shmbus_lock_opts_t, .create = 0), &cl));
		OK(shmbus_lock_lock(cl, 0));
		if (write(fds[1], "h", 1) != 1)
			_exit(21);
		pause();                /* killed here, holding the lock */
		_exit(22);
	}
	close(fds[1]);
	CHECK(read(fds[0], &c, 1) == 1, "the holder failed");
	OK(shmbus_waitset_new(&ws));
	OK(shmbus_waitset_add_lock(ws, l, 10));
	OK(shmbus_waitset_fd(ws, &pfd.fd));
	pfd.events = POLLIN;
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status), "holder not killed");
	t0 = test_now_ns();
	do
		k = poll(&pfd, 1, 10000);
	while (k < 0 && errno == EINTR);
	CHECK(k == 1, "the fd did not poll readable within 10 s of the holder's death");
	OK(shmbus_waitset_wait(ws, 0, tags, 4, &n));
	CHECK(n == 1 && tags[0] == 10, "wait(0) after the fd: %zu tags", n);
	el = test_now_ns() - t0;
	EXPECT_CODE(shmbus_lock_lock(l, 0), SHMBUS_EOWNERDEAD);
	CHECK(el < 3 * SECOND, "took %llu ms", (unsigned long long)(el / 1000000));
	OK(shmbus_lock_consistent(l));
	OK(shmbus_lock_unlock(l));
	OK(shmbus_waitset_free(ws));
	shmbus_lock_close(l);
	printf("ok  a lock whose holder was killed, through the fd: readable and reported in %llu ms\n",
	       (unsigned long long)(el / 1000000));
}

int main(void)
{
	shmbus_waitset_t *ws;
	shmbus_state_t *a, *b;
	shmbus_bus_t *bus;
	int up[2], down[2], status;
	uint64_t el;
	long ring;
	pid_t pid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	names = mmap(NULL, NAMES * sizeof(*names), PROT_READ | PROT_WRITE,
	             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(names != MAP_FAILED, "mmap");
	bus_name = test_bus_name("wskill");
	OK(shmbus_bus_create(bus_name, NULL, &bus));
	OK(shmbus_state_open(bus, "a", NULL, &a));
	OK(shmbus_state_open(bus, "b", NULL, &b));
	OK(shmbus_waitset_new(&ws));
	OK(shmbus_waitset_add_state(ws, a, 0, 1));
	OK(shmbus_waitset_add_state(ws, b, 0, 2));

	CHECK(pipe(up) == 0 && pipe(down) == 0, "pipe");
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0)
		writer(up[1], down[0]);
	close(up[1]);
	CHECK(read(up[0], &ring, sizeof(ring)) == sizeof(ring), "the writer failed early");
	wait_for(ws, a, 1, 2);          /* values 1 and 2, rung as usual */
	CHECK(write(down[1], "g", 1) == 1, "pipe");
	el = wait_for(ws, a, 1, 3);     /* value 3: published, never rung */
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	      "the writer was not killed (status %d)", status);
	CHECK(names[ring - 1] && strcmp(names[ring - 1], "waitset.ring.head") == 0,
	      "the writer died at step %ld '%s', not before its ring", ring,
	      names[ring - 1] ? names[ring - 1] : "?");
	CHECK(el < 3 * SECOND, "the value of the writer killed before its ring took %llu ms",
	      (unsigned long long)(el / 1000000));
	printf("ok  a writer killed between publishing and ringing: value seen in %llu ms\n",
	       (unsigned long long)(el / 1000000));

	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0)
		other_writer();
	el = wait_for(ws, b, 2, 1);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the second writer failed");
	printf("ok  the set keeps working: the next write by another process wakes it (%llu ms)\n",
	       (unsigned long long)(el / 1000000));

	OK(shmbus_waitset_free(ws));
	shmbus_state_close(a);
	shmbus_state_close(b);
	test_dead_claim(bus);
	test_dead_consumer(bus);
	test_dead_holder(bus);
	test_dead_holder_fd(bus);
	shmbus_bus_close(bus);
	OK(shmbus_bus_unlink(bus_name));
	printf("waitset_kill_ringer: ok\n");
	return 0;
}

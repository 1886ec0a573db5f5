/*
 * test_queue_wait_groups.c -- who receives a queue's messages: with no
 * consumer group a queue never blocks its producer and overwrites the
 * oldest message once the ring turns over (as the header says), and a
 * producer that waits for its consumers with shmbus_queue_wait_groups
 * loses nothing, even when they start after it.
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

#include "testutil.h"

#define SLOTS 8
#define COUNT 200                    /* 25 rings' worth: needs the consumers */
#define TIMEOUT 10000000000ll        /* generous: a loaded 2-CPU machine */

static const char *bus_name;
static pid_t kids[2] = {-1, -1};
static pid_t parent;

static void cleanup(void)
{
	if (getpid() != parent)
		return;
	test_kill_children(kids, 2);
	if (bus_name)
		shmbus_bus_unlink(bus_name);
}

static shmbus_queue_t *open_q(shmbus_bus_t *bus, const char *name)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q;

	shmbus_queue_opts_init(&o);
	o.slots = SLOTS;
	o.max_msg = 8;
	OK(shmbus_queue_open(bus, name, &o, &q));
	return q;
}

/* A queue nobody consumes: puts never wait, the ring keeps the last SLOTS
 * messages and a group that joins later at EARLIEST starts with those. */
static void test_no_group_overwrites(shmbus_bus_t *bus)
{
	shmbus_queue_t *p = open_q(bus, "nogroup"), *c;
	uint64_t v, got;
	size_t len;

	EXPECT_CODE(shmbus_queue_wait_groups(p, 1, 0), SHMBUS_EAGAIN);
	for (v = 0; v < 3 * SLOTS; v++)
		OK(shmbus_queue_put(p, &v, sizeof(v), 0));
	c = open_q(bus, "nogroup");
	OK(shmbus_queue_join(c, "late", SHMBUS_GROUP_EARLIEST));
	OK(shmbus_queue_get(c, &got, sizeof(got), &len, NULL, 0));
	CHECK(got == 2 * SLOTS, "the oldest message left is %llu, expected %d (the rest overwritten)",
	      (unsigned long long)got, 2 * SLOTS);
	OK(shmbus_queue_wait_groups(p, 1, 0));
	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(p));
	printf("ok no_group_overwrites\n");
}

static void test_arguments_and_timeouts(shmbus_bus_t *bus)
{
	shmbus_queue_t *p = open_q(bus, "args");
	uint64_t t0;

	OK(shmbus_queue_wait_groups(p, 0, 0));
	EXPECT_CODE(shmbus_queue_wait_groups(NULL, 1, 0), SHMBUS_EINVAL);
	/* 16 groups by default: 17 would never come. */
	EXPECT_CODE(shmbus_queue_wait_groups(p, 17, 0), SHMBUS_EINVAL);
	EXPECT_CODE(shmbus_queue_wait_groups(p, 1, 0), SHMBUS_EAGAIN);
	t0 = test_now_ns();
	EXPECT_CODE(shmbus_queue_wait_groups(p, 1, 100000000ll), SHMBUS_ETIMEDOUT);
	CHECK(test_now_ns() - t0 >= 100000000ull, "timed out after %llu ns, before 100 ms",
	      (unsigned long long)(test_now_ns() - t0));
	CHECK(strstr(shmbus_last_error(), "0 consumer groups") != NULL,
	      "the detail says how many groups there are: %s", shmbus_last_error());
	OK(shmbus_queue_close(p));
	printf("ok arguments_and_timeouts\n");
}

/* A consumer process that starts late: sleeps, joins its group, gets every
 * message in order. Exit 0 if all came. */
static void consumer(const char *group, int delay_ms)
{
	shmbus_bus_t *bus;
	shmbus_queue_t *q;
	uint64_t v, want;
	size_t len;
	int r;

	usleep((useconds_t)delay_ms * 1000);
	if (shmbus_bus_open(bus_name, NULL, &bus) != 0)
		_exit(2);
	q = open_q(bus, "work");
	if (shmbus_queue_join(q, group, 0) != 0)
		_exit(2);
	for (want = 0; want < COUNT; want++) {
		r = shmbus_queue_get(q, &v, sizeof(v), &len, NULL, TIMEOUT);
		if (r != 0 || len != sizeof(v) || v != want) {
			fprintf(stderr, "consumer %s: message %llu: r=%d len=%zu v=%llu (%s)\n", group,
			        (unsigned long long)want, r, len, (unsigned long long)v,
			        shmbus_last_error());
			_exit(1);
		}
	}
	_exit(0);
}

static void test_producer_waits_for_late_consumers(shmbus_bus_t *bus)
{
	static const char *const groups[2] = {"a", "b"};
	shmbus_queue_t *p = open_q(bus, "work");
	uint64_t t0, waited, v;
	int i, st;

	t0 = test_now_ns();
	for (i = 0; i < 2; i++) {
		kids[i] = fork();
		CHECK(kids[i] >= 0, "fork: %s", strerror(errno));
		if (kids[i] == 0)
			consumer(groups[i], 200 + 200 * i);
	}
	OK(shmbus_queue_wait_groups(p, 2, TIMEOUT));
	waited = test_now_ns() - t0;
	/* The second consumer joins 400 ms after the fork at the earliest. */
	CHECK(waited >= 400000000ull, "wait_groups returned after %llu ms, before the second join",
	      (unsigned long long)(waited / 1000000));
	for (v = 0; v < COUNT; v++)
		OK(shmbus_queue_put(p, &v, sizeof(v), TIMEOUT));
	for (i = 0; i < 2; i++) {
		CHECK(waitpid(kids[i], &st, 0) == kids[i], "waitpid");
		kids[i] = -1;
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "consumer of group '%s' did not get all %d messages (status 0x%x)", groups[i],
		      COUNT, st);
	}
	OK(shmbus_queue_close(p));
	printf("ok producer_waits_for_late_consumers (waited %llu ms; %d messages through %d slots "
	       "to both groups)\n", (unsigned long long)(waited / 1000000), COUNT, SLOTS);
}

/* Groups whose members are gone and that a blocked producer detached do
 * not count: nobody receives through them any more. */
static void test_detached_group_does_not_count(shmbus_bus_t *bus)
{
	shmbus_queue_t *p = open_q(bus, "work");
	uint64_t v = 0;
	int i;

	/* Both groups of the previous test persist, their members exited. */
	OK(shmbus_queue_wait_groups(p, 2, 0));
	OK(shmbus_bus_set_liveness(bus, 20000000ll));
	for (i = 0; i < 2 * SLOTS; i++)
		OK(shmbus_queue_put(p, &v, sizeof(v), TIMEOUT));
	EXPECT_CODE(shmbus_queue_wait_groups(p, 1, 0), SHMBUS_EAGAIN);
	OK(shmbus_bus_set_liveness(bus, 200000000ll));
	OK(shmbus_queue_close(p));
	printf("ok detached_group_does_not_count\n");
}

int main(void)
{
	shmbus_bus_opts_t bo;
	shmbus_bus_t *bus;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parent = getpid();
	atexit(cleanup);
	bus_name = test_bus_name("qwaitgroups");
	shmbus_bus_opts_init(&bo);
	bo.size = 1ull << 20;
	OK(shmbus_bus_create(bus_name, &bo, &bus));
	test_no_group_overwrites(bus);
	test_arguments_and_timeouts(bus);
	test_producer_waits_for_late_consumers(bus);
	test_detached_group_does_not_count(bus);
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(bus_name));
	bus_name = NULL;
	printf("PASS test_queue_wait_groups\n");
	return 0;
}

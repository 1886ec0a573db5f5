/*
 * test_queue.c -- queue channels in one process (plus a few short-lived
 * children for the crash cases): sizes and their validation, try and
 * timeout variants, reserve/commit/abort, peek/release, get with a small
 * buffer, batches, end of stream, group start positions, a consumer that
 * waits before any producer exists, durable resume, overtaken groups,
 * redelivery of a message whose holder died, a producer that died between
 * reserve and commit, and info.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "testutil.h"
/* White-box: the hostile-contents test writes the queue's shared words. */
#include "queue.h"

static shmbus_bus_t *bus;
static char busname[64];

static shmbus_queue_t *open_q(const char *name, uint32_t slots, uint64_t max_msg)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q;

	shmbus_queue_opts_init(&o);
	o.slots = slots;
	o.max_msg = max_msg;
	OK(shmbus_queue_open(bus, name, &o, &q));
	return q;
}

static shmbus_queue_t *member(const char *name, const char *group, uint32_t flags)
{
	shmbus_queue_t *q = open_q(name, 0, 0);

	OK(shmbus_queue_join(q, group, flags));
	return q;
}

static void put_u64(shmbus_queue_t *q, uint64_t v)
{
	OK(shmbus_queue_put(q, &v, sizeof(v), 0));
}

static uint64_t get_u64(shmbus_queue_t *q, int64_t timeout, uint32_t *flags)
{
	uint64_t v = 0;
	size_t len = 0;

	OK(shmbus_queue_get(q, &v, sizeof(v), &len, flags, timeout));
	CHECK(len == sizeof(v), "got %zu bytes, expected 8", len);
	return v;
}

static void test_sizes_and_validation(void)
{
	shmbus_queue_opts_t o;
	shmbus_queue_info_t info = {.size_of = sizeof(info)};
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)};
	shmbus_queue_t *q, *q2;
	char big[5000] = {0};

	q = open_q("sz", 100, 4096);
	OK(shmbus_queue_info(q, &info, NULL, 0));
	CHECK(info.slots == 128, "100 slots round up to 128, got %u", info.slots);
	CHECK(info.max_msg == 4096, "max_msg %llu", (unsigned long long)info.max_msg);
	OK(shmbus_channel_info(bus, "sz", &ci));
	CHECK(ci.kind == SHMBUS_KIND_QUEUE && ci.capacity == 128 && ci.value_size == 4096,
	      "channel info kind %d capacity %llu value_size %llu", ci.kind,
	      (unsigned long long)ci.capacity, (unsigned long long)ci.value_size);
	EXPECT_CODE(shmbus_queue_put(q, big, sizeof(big), 0), SHMBUS_ETOOBIG);
	CHECK(strstr(shmbus_last_error(), "5000") && strstr(shmbus_last_error(), "4096"),
	      "ETOOBIG names both sizes: %s", shmbus_last_error());
	{
		void *p;

		EXPECT_CODE(shmbus_queue_reserve(q, 4097, &p, 0), SHMBUS_ETOOBIG);
	}
	OK(shmbus_queue_put(q, big, 4096, 0));       /* exactly max_msg is fine */
	OK(shmbus_queue_put(q, NULL, 0, 0));         /* and so is empty */
	/* Reopening with other parameters names the parameter. */
	shmbus_queue_opts_init(&o);
	o.slots = 256;
	EXPECT_CODE(shmbus_queue_open(bus, "sz", &o, &q2), SHMBUS_ETYPE);
	CHECK(strstr(shmbus_last_error(), "slots") && strstr(shmbus_last_error(), "128"),
	      "%s", shmbus_last_error());
	o.slots = 120;  /* rounds to the same 128 */
	OK(shmbus_queue_open(bus, "sz", &o, &q2));
	OK(shmbus_queue_close(q2));
	shmbus_queue_opts_init(&o);
	o.max_msg = 100;
	EXPECT_CODE(shmbus_queue_open(bus, "sz", &o, &q2), SHMBUS_ETYPE);
	CHECK(strstr(shmbus_last_error(), "max_msg"), "%s", shmbus_last_error());
	/* Limits. */
	shmbus_queue_opts_init(&o);
	o.slots = (1u << 24) + 1;
	EXPECT_CODE(shmbus_queue_open(bus, "lim", &o, &q2), SHMBUS_EINVAL);
	CHECK(strstr(shmbus_last_error(), "slots"), "%s", shmbus_last_error());
	shmbus_queue_opts_init(&o);
	o.max_msg = (1ull << 30) + 1;
	EXPECT_CODE(shmbus_queue_open(bus, "lim", &o, &q2), SHMBUS_EINVAL);
	CHECK(strstr(shmbus_last_error(), "max_msg"), "%s", shmbus_last_error());
	shmbus_queue_opts_init(&o);
	o.max_groups = 5000;
	EXPECT_CODE(shmbus_queue_open(bus, "lim", &o, &q2), SHMBUS_EINVAL);
	shmbus_queue_opts_init(&o);
	o.slots = 1u << 20;
	o.max_msg = 1u << 20;   /* 1 TiB of slots: no room in a 16 MiB bus */
	EXPECT_CODE(shmbus_queue_open(bus, "lim", &o, &q2), SHMBUS_ENOSPC);
	shmbus_queue_opts_init(&o);
	o.create = 0;
	EXPECT_CODE(shmbus_queue_open(bus, "absent", &o, &q2), SHMBUS_ENOENT);
	EXPECT_CODE(shmbus_queue_open(bus, "bad name", NULL, &q2), SHMBUS_EINVAL);
	o.size_of = 3;
	EXPECT_CODE(shmbus_queue_open(bus, "x", &o, &q2), SHMBUS_EINVAL);
	/* A state of the same name is another kind. */
	{
		shmbus_state_t *st;

		OK(shmbus_state_open(bus, "kind", NULL, &st));
		EXPECT_CODE(shmbus_queue_open(bus, "kind", NULL, &q2), SHMBUS_ETYPE);
		OK(shmbus_state_close(st));
	}
	OK(shmbus_queue_close(q));
	printf("ok sizes_and_validation\n");
}

static void test_try_and_timeouts(void)
{
	shmbus_queue_t *p = open_q("try", 4, 64), *c = member("try", "g", 0);
	uint64_t t0;
	int i;

	EXPECT_CODE(shmbus_queue_get(c, NULL, 0, NULL, NULL, 0), SHMBUS_EAGAIN);
	t0 = test_now_ns();
	EXPECT_CODE(shmbus_queue_get(c, NULL, 0, NULL, NULL, 30000000), SHMBUS_ETIMEDOUT);
	CHECK(test_now_ns() - t0 >= 25000000, "empty get waited %llu ns",
	      (unsigned long long)(test_now_ns() - t0));
	for (i = 0; i < 4; i++)
		put_u64(p, (uint64_t)i);
	EXPECT_CODE(shmbus_queue_put(p, &i, sizeof(i), 0), SHMBUS_EAGAIN);
	CHECK(strstr(shmbus_last_error(), "full") && strstr(shmbus_last_error(), "'g'"),
	      "full names the group: %s", shmbus_last_error());
	t0 = test_now_ns();
	EXPECT_CODE(shmbus_queue_put(p, &i, sizeof(i), 30000000), SHMBUS_ETIMEDOUT);
	CHECK(test_now_ns() - t0 >= 25000000, "full put waited %llu ns",
	      (unsigned long long)(test_now_ns() - t0));
	CHECK(get_u64(c, 0, NULL) == 0, "first message");
	put_u64(p, 4);         /* one slot free again */
	for (i = 1; i <= 4; i++)
		CHECK(get_u64(c, 0, NULL) == (uint64_t)i, "message %d in order", i);
	EXPECT_CODE(shmbus_queue_get(c, NULL, 0, NULL, NULL, 0), SHMBUS_EAGAIN);
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(c));
	printf("ok try_and_timeouts\n");
}

static void test_reserve_commit_abort(void)
{
	shmbus_queue_t *p = open_q("rca", 8, 256), *c = member("rca", "g", 0);
	shmbus_msg_t m;
	void *ptr, *ptr2;

	EXPECT_CODE(shmbus_queue_commit(p, 0), SHMBUS_ESTATE);
	EXPECT_CODE(shmbus_queue_abort(p), SHMBUS_ESTATE);
	OK(shmbus_queue_reserve(p, 200, &ptr, 0));
	EXPECT_CODE(shmbus_queue_reserve(p, 10, &ptr2, 0), SHMBUS_ESTATE);
	EXPECT_CODE(shmbus_queue_put(p, "x", 1, 0), SHMBUS_ESTATE);
	memset(ptr, 'a', 200);
	EXPECT_CODE(shmbus_queue_commit(p, 201), SHMBUS_EINVAL);
	OK(shmbus_queue_commit(p, 150));       /* shortened */
	OK(shmbus_queue_reserve(p, 10, &ptr, 0));
	memcpy(ptr, "aborted!!", 10);
	OK(shmbus_queue_abort(p));
	OK(shmbus_queue_reserve(p, 5, &ptr, 0));
	memcpy(ptr, "third", 5);
	OK(shmbus_queue_commit(p, 5));
	OK(shmbus_queue_peek(c, &m, 0));
	CHECK(m.len == 150 && m.seq == 0 && ((const char *)m.data)[149] == 'a', "first: len %zu seq %llu",
	      m.len, (unsigned long long)m.seq);
	OK(shmbus_queue_release(c));
	OK(shmbus_queue_peek(c, &m, 0));
	CHECK(m.len == 5 && m.seq == 2 && memcmp(m.data, "third", 5) == 0,
	      "the aborted seq 1 is skipped: got seq %llu len %zu", (unsigned long long)m.seq, m.len);
	OK(shmbus_queue_release(c));
	EXPECT_CODE(shmbus_queue_get(c, NULL, 0, NULL, NULL, 0), SHMBUS_EAGAIN);
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(c));
	printf("ok reserve_commit_abort\n");
}

static void test_peek_release_and_small_buffer(void)
{
	shmbus_queue_t *p = open_q("pk", 8, 1024), *c = member("pk", "g", 0);
	char msg[300], buf[512];
	shmbus_msg_t m;
	size_t len = 0;
	uint32_t flags = 99;

	memset(msg, 'z', sizeof(msg));
	EXPECT_CODE(shmbus_queue_release(c), SHMBUS_ESTATE);
	OK(shmbus_queue_put(p, "hello", 5, 0));
	OK(shmbus_queue_put(p, msg, sizeof(msg), 0));
	OK(shmbus_queue_peek(c, &m, 0));
	CHECK(m.len == 5 && memcmp(m.data, "hello", 5) == 0 && m.flags == 0, "peek hello");
	EXPECT_CODE(shmbus_queue_peek(c, &m, 0), SHMBUS_ESTATE);
	EXPECT_CODE(shmbus_queue_get(c, buf, sizeof(buf), &len, NULL, 0), SHMBUS_ESTATE);
	OK(shmbus_queue_release(c));
	/* Too small a buffer: ETOOBIG with the length, and the message stays. */
	EXPECT_CODE(shmbus_queue_get(c, buf, 100, &len, &flags, 0), SHMBUS_ETOOBIG);
	CHECK(len == 300, "ETOOBIG reports the length: %zu", len);
	CHECK(strstr(shmbus_last_error(), "300") && strstr(shmbus_last_error(), "100"),
	      "names both sizes: %s", shmbus_last_error());
	EXPECT_CODE(shmbus_queue_get(c, buf, 299, &len, &flags, 0), SHMBUS_ETOOBIG);
	OK(shmbus_queue_get(c, buf, sizeof(buf), &len, &flags, 0));
	CHECK(len == 300 && memcmp(buf, msg, 300) == 0 && flags == 0, "then a big buffer gets it");
	EXPECT_CODE(shmbus_queue_get(c, buf, sizeof(buf), &len, &flags, 0), SHMBUS_EAGAIN);
	/* A kept message can also be peeked. */
	OK(shmbus_queue_put(p, msg, 200, 0));
	EXPECT_CODE(shmbus_queue_get(c, buf, 10, &len, NULL, 0), SHMBUS_ETOOBIG);
	OK(shmbus_queue_peek(c, &m, 0));
	CHECK(m.len == 200 && m.seq == 2, "kept message peeked: len %zu seq %llu", m.len,
	      (unsigned long long)m.seq);
	OK(shmbus_queue_release(c));
	/* Consuming before join. */
	{
		shmbus_queue_t *nj = open_q("pk", 0, 0);

		EXPECT_CODE(shmbus_queue_peek(nj, &m, 0), SHMBUS_ESTATE);
		CHECK(strstr(shmbus_last_error(), "join"), "%s", shmbus_last_error());
		OK(shmbus_queue_join(nj, "g", 0));
		OK(shmbus_queue_join(nj, "g", 0));  /* same group again: fine */
		EXPECT_CODE(shmbus_queue_join(nj, "other", 0), SHMBUS_ESTATE);
		EXPECT_CODE(shmbus_queue_join(nj, "bad name", 0), SHMBUS_EINVAL);
		OK(shmbus_queue_close(nj));
	}
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(c));
	printf("ok peek_release_and_small_buffer\n");
}

static void test_batches(void)
{
	shmbus_queue_t *p = open_q("batch", 16, 64), *c = member("batch", "g", 0);
	uint64_t vals[40], outv[40];
	const void *msgs[40];
	size_t lens[40], caps[40], olens[40], done, got, total = 0;
	void *bufs[40];
	int i;

	for (i = 0; i < 40; i++) {
		vals[i] = 1000 + (uint64_t)i;
		msgs[i] = &vals[i];
		lens[i] = 8;
		bufs[i] = &outv[i];
		caps[i] = 8;
	}
	/* 40 into 16 slots with a zero timeout: 16 go in. */
	EXPECT_CODE(shmbus_queue_put_many(p, msgs, lens, 40, 0, &done), SHMBUS_EAGAIN);
	CHECK(done == 16, "put_many into 16 free slots: %zu", done);
	OK(shmbus_queue_get_many(c, bufs, caps, olens, NULL, 10, 0, &got));
	CHECK(got == 10, "get_many 10: %zu", got);
	total = got;
	OK(shmbus_queue_put_many(p, msgs + 16, lens + 16, 10, 0, &done));
	CHECK(done == 10, "put_many 10: %zu", done);
	OK(shmbus_queue_get_many(c, bufs + total, caps, olens, NULL, 40, 0, &got));
	CHECK(got == 16, "get_many drains 16: %zu", got);
	total += got;
	for (i = 0; i < (int)total; i++)
		CHECK(outv[i] == 1000 + (uint64_t)i, "batch order: [%d] = %llu", i,
		      (unsigned long long)outv[i]);
	EXPECT_CODE(shmbus_queue_get_many(c, bufs, caps, olens, NULL, 4, 0, &got), SHMBUS_EAGAIN);
	CHECK(got == 0, "nothing left");
	/* A batch stops before a message too big for its buffer; the next
	 * call reports it. */
	OK(shmbus_queue_put(p, vals, 8, 0));
	OK(shmbus_queue_put(p, vals, 16, 0));
	OK(shmbus_queue_get_many(c, bufs, caps, olens, NULL, 2, 0, &got));
	CHECK(got == 1, "stops before the 16-byte message: %zu", got);
	EXPECT_CODE(shmbus_queue_get_many(c, bufs, caps, olens, NULL, 2, 0, &got), SHMBUS_ETOOBIG);
	CHECK(olens[0] == 16, "its length: %zu", olens[0]);
	OK(shmbus_queue_release(c));
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(c));
	printf("ok batches\n");
}

static void test_shut_drain_closed(void)
{
	shmbus_queue_t *p = open_q("shut", 8, 64), *c = member("shut", "g", 0), *c2;
	void *ptr;
	int i;

	for (i = 0; i < 3; i++)
		put_u64(p, (uint64_t)i);
	OK(shmbus_queue_reserve(p, 8, &ptr, 0));   /* claimed before the shut */
	CHECK(!shmbus_queue_is_shut(c), "not shut yet");
	OK(shmbus_queue_shut(p));
	CHECK(shmbus_queue_is_shut(c), "shut");
	EXPECT_CODE(shmbus_queue_put(p, &i, sizeof(i), 0), SHMBUS_ESTATE);  /* reservation open */
	*(uint64_t *)ptr = 3;
	OK(shmbus_queue_commit(p, 8));             /* ... still completes */
	EXPECT_CODE(shmbus_queue_put(p, &i, sizeof(i), 0), SHMBUS_ECLOSED);
	EXPECT_CODE(shmbus_queue_reserve(p, 8, &ptr, SHMBUS_FOREVER), SHMBUS_ECLOSED);
	for (i = 0; i < 4; i++)
		CHECK(get_u64(c, 0, NULL) == (uint64_t)i, "drain %d", i);
	EXPECT_CODE(shmbus_queue_get(c, NULL, 0, NULL, NULL, SHMBUS_FOREVER), SHMBUS_ECLOSED);
	EXPECT_CODE(shmbus_queue_get(c, NULL, 0, NULL, NULL, 0), SHMBUS_ECLOSED);
	/* A group that joins after the shut drains what is retained, too. */
	c2 = member("shut", "late", SHMBUS_GROUP_EARLIEST);
	for (i = 0; i < 4; i++)
		CHECK(get_u64(c2, 0, NULL) == (uint64_t)i, "late drain %d", i);
	EXPECT_CODE(shmbus_queue_get(c2, NULL, 0, NULL, NULL, 1000000), SHMBUS_ECLOSED);
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(c2));
	printf("ok shut_drain_closed\n");
}

static void test_group_start_positions(void)
{
	shmbus_queue_t *p = open_q("gs", 8, 64), *a, *b, *e, *n;
	int i;

	/* No group yet: 12 messages into 8 slots; nothing gates, the ring keeps
	 * the newest 8. */
	for (i = 0; i < 12; i++)
		put_u64(p, (uint64_t)i);
	e = member("gs", "early", SHMBUS_GROUP_EARLIEST);
	n = member("gs", "late", SHMBUS_GROUP_LATEST);
	/* 'early' holds the whole ring: full until it takes one. */
	EXPECT_CODE(shmbus_queue_put(p, &i, sizeof(i), 0), SHMBUS_EAGAIN);
	CHECK(get_u64(e, 0, NULL) == 4, "EARLIEST starts at the oldest retained, seq 4");
	put_u64(p, 12);
	for (i = 5; i <= 12; i++)
		CHECK(get_u64(e, 0, NULL) == (uint64_t)i, "EARLIEST gets the oldest retained (%d)", i);
	CHECK(get_u64(n, 0, NULL) == 12, "LATEST gets only what came after");
	EXPECT_CODE(shmbus_queue_get(n, NULL, 0, NULL, NULL, 0), SHMBUS_EAGAIN);
	/* Groups are independent: each sees every message. */
	a = member("gs", "a", 0);
	b = member("gs", "b", 0);
	for (i = 13; i < 16; i++)
		put_u64(p, (uint64_t)i);
	for (i = 13; i < 16; i++) {
		CHECK(get_u64(a, 0, NULL) == (uint64_t)i, "group a %d", i);
		CHECK(get_u64(b, 0, NULL) == (uint64_t)i, "group b %d", i);
		CHECK(get_u64(e, 0, NULL) == (uint64_t)i, "group early %d", i);
		CHECK(get_u64(n, 0, NULL) == (uint64_t)i, "group late %d", i);
	}
	OK(shmbus_queue_close(a));
	OK(shmbus_queue_close(b));
	OK(shmbus_queue_close(e));
	OK(shmbus_queue_close(n));
	OK(shmbus_queue_close(p));
	printf("ok group_start_positions\n");
}

static void test_work_group_shares(void)
{
	shmbus_queue_t *p = open_q("wq", 32, 64), *m1 = member("wq", "w", 0),
	               *m2 = member("wq", "w", 0);
	int seen[20] = {0}, i;

	for (i = 0; i < 20; i++)
		put_u64(p, (uint64_t)i);
	for (i = 0; i < 20; i++) {
		uint64_t v = get_u64(i & 1 ? m1 : m2, 0, NULL);

		CHECK(v < 20, "value %llu", (unsigned long long)v);
		seen[v]++;
	}
	for (i = 0; i < 20; i++)
		CHECK(seen[i] == 1, "message %d delivered %d times in the group", i, seen[i]);
	EXPECT_CODE(shmbus_queue_get(m1, NULL, 0, NULL, NULL, 0), SHMBUS_EAGAIN);
	EXPECT_CODE(shmbus_queue_get(m2, NULL, 0, NULL, NULL, 0), SHMBUS_EAGAIN);
	OK(shmbus_queue_close(m1));
	OK(shmbus_queue_close(m2));
	OK(shmbus_queue_close(p));
	printf("ok work_group_shares\n");
}

/* The consumer waits (parked on the futex) before any producer exists; a
 * child process then creates nothing but puts. */
static void test_consumer_before_producer(void)
{
	shmbus_queue_t *c = member("early", "g", 0);
	uint64_t t0;
	pid_t pid;
	int st, i;

	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		shmbus_bus_t *b;
		shmbus_queue_t *p;

		usleep(100000);
		if (shmbus_bus_open(busname, NULL, &b) || shmbus_queue_open(b, "early", NULL, &p))
			_exit(2);
		for (i = 0; i < 3; i++) {
			uint64_t v = 42 + (uint64_t)i;

			if (shmbus_queue_put(p, &v, sizeof(v), SHMBUS_FOREVER))
				_exit(3);
		}
		shmbus_queue_close(p);
		shmbus_bus_close(b);
		_exit(0);
	}
	t0 = test_now_ns();
	CHECK(get_u64(c, 5000000000ll, NULL) == 42, "first value from the late producer");
	CHECK(test_now_ns() - t0 >= 50000000, "it did wait");
	CHECK(get_u64(c, 5000000000ll, NULL) == 43, "second");
	CHECK(get_u64(c, 5000000000ll, NULL) == 44, "third");
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "producer child status %d", st);
	OK(shmbus_queue_close(c));
	printf("ok consumer_before_producer\n");
}

static void test_durable_resume(void)
{
	shmbus_queue_t *p = open_q("dur", 16, 64), *c;
	int i;

	c = member("dur", "g", 0);
	for (i = 0; i < 10; i++)
		put_u64(p, (uint64_t)i);
	for (i = 0; i < 3; i++)
		CHECK(get_u64(c, 0, NULL) == (uint64_t)i, "before restart %d", i);
	OK(shmbus_queue_close(c));
	for (i = 10; i < 12; i++)   /* produced while nobody is attached */
		put_u64(p, (uint64_t)i);
	c = member("dur", "g", SHMBUS_GROUP_LATEST);  /* flags do not move an existing group */
	for (i = 3; i < 12; i++)
		CHECK(get_u64(c, 0, NULL) == (uint64_t)i, "resumed where the group stood: %d", i);
	EXPECT_CODE(shmbus_queue_get(c, NULL, 0, NULL, NULL, 0), SHMBUS_EAGAIN);
	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(p));
	printf("ok durable_resume\n");
}

/* A group nobody will use again is dropped: it stops gating at once (a
 * DURABLE group otherwise gates for ever), a live member refuses the drop,
 * the held messages of its dead members go with it (a group created later
 * in the same record must not adopt them), and its name starts afresh. */
static void test_drop_group(void)
{
	shmbus_queue_t *p = open_q("drop", 8, 64), *fast, *d, *x;
	shmbus_queue_info_t info = {.size_of = sizeof(info)};
	shmbus_group_info_t gi[4];
	shmbus_msg_t msg;
	uint32_t flags = 0;
	uint64_t v;
	pid_t pid;
	int i, st;

	fast = member("drop", "fast", 0);
	d = member("drop", "keep", SHMBUS_GROUP_DURABLE);
	for (i = 0; i < 8; i++)
		put_u64(p, (uint64_t)i);
	for (i = 0; i < 8; i++)
		CHECK(get_u64(fast, 0, NULL) == (uint64_t)i, "fast %d", i);
	OK(shmbus_queue_peek(d, &msg, 0));
	CHECK(msg.seq == 0, "keep holds seq 0, got %llu", (unsigned long long)msg.seq);
	/* Refused: unknown group, a live member (this handle's own group, or
	 * another handle's). */
	EXPECT_CODE(shmbus_queue_drop_group(p, "nope"), SHMBUS_ENOENT);
	EXPECT_CODE(shmbus_queue_drop_group(p, "bad name!"), SHMBUS_EINVAL);
	EXPECT_CODE(shmbus_queue_drop_group(d, "keep"), SHMBUS_EBUSY);
	EXPECT_CODE(shmbus_queue_drop_group(p, "keep"), SHMBUS_EBUSY);
	CHECK(strstr(shmbus_last_error(), "1 live member"), "says why: %s", shmbus_last_error());
	/* Closed while holding seq 0: the record stays, an orphan, and keeps
	 * the ring full. */
	OK(shmbus_queue_close(d));
	v = 8;
	EXPECT_CODE(shmbus_queue_put(p, &v, sizeof(v), 0), SHMBUS_EAGAIN);
	CHECK(strstr(shmbus_last_error(), "'keep'"), "keep blocks: %s", shmbus_last_error());
	/* A member in another process dies holding nothing: reaped by the drop. */
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		shmbus_bus_t *b;
		shmbus_queue_t *q;

		if (shmbus_bus_open(busname, NULL, &b) || shmbus_queue_open(b, "drop", NULL, &q) ||
		    shmbus_queue_join(q, "keep", 0))
			_exit(2);
		_exit(0);   /* dies a member */
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "child joined (status %d)", st);
	OK(shmbus_queue_drop_group(p, "keep"));
	OK(shmbus_queue_info(p, &info, gi, 4));
	CHECK(info.groups == 1 && strcmp(gi[0].name, "fast") == 0, "only 'fast' is left: %u groups",
	      info.groups);
	/* No longer gating: the ring has room at once. */
	for (i = 8; i < 16; i++)
		put_u64(p, (uint64_t)i);
	for (i = 8; i < 16; i++)
		CHECK(get_u64(fast, 0, NULL) == (uint64_t)i, "fast %d", i);
	EXPECT_CODE(shmbus_queue_drop_group(p, "keep"), SHMBUS_ENOENT);
	/* A group made now takes the freed record: the dropped group's orphan
	 * (holding seq 0) must be gone, or its hold would gate the new group
	 * and the put below would find the ring full. The old name comes back
	 * as a new group, at the newest message. */
	x = member("drop", "other", 0);
	d = member("drop", "keep", 0);
	put_u64(p, 16);
	CHECK(get_u64(d, 0, &flags) == 16 && flags == 0, "new 'keep' starts at the newest (flags %u)",
	      flags);
	CHECK(get_u64(x, 0, &flags) == 16 && flags == 0, "'other' gets 16, unflagged (flags %u)", flags);
	EXPECT_CODE(shmbus_queue_get(x, NULL, 0, NULL, NULL, 0), SHMBUS_EAGAIN);
	CHECK(get_u64(fast, 0, NULL) == 16, "fast 16");
	OK(shmbus_queue_close(x));
	OK(shmbus_queue_close(d));
	OK(shmbus_queue_close(fast));
	OK(shmbus_queue_close(p));
	printf("ok drop_group\n");
}

/* A group with no member stops gating after the liveness timeout and is
 * told how much it lost when a member comes back; a DURABLE one keeps
 * gating. */
static void test_detached_and_durable_groups(void)
{
	shmbus_queue_t *p = open_q("det", 8, 64), *c, *d, *fast;
	uint64_t v, t0;
	size_t len;
	int i, r;

	OK(shmbus_bus_set_liveness(bus, 30000000));  /* 30 ms */
	fast = member("det", "fast", 0);
	c = member("det", "gone", 0);
	d = member("det", "keep", SHMBUS_GROUP_DURABLE);
	for (i = 0; i < 4; i++)
		put_u64(p, (uint64_t)i);
	for (i = 0; i < 2; i++) {
		CHECK(get_u64(c, 0, NULL) == (uint64_t)i, "gone %d", i);
		CHECK(get_u64(d, 0, NULL) == (uint64_t)i, "keep %d", i);
	}
	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(d));
	for (i = 0; i < 4; i++)
		CHECK(get_u64(fast, 0, NULL) == (uint64_t)i, "fast %d", i);
	/* Ring: 8 slots, 'gone' and 'keep' stand at 2: room up to seq 9. */
	for (i = 4; i < 10; i++)
		put_u64(p, (uint64_t)i);
	/* Full: before the liveness timeout, the first group that stands at
	 * seq 2 blocks a try. */
	v = 10;
	EXPECT_CODE(shmbus_queue_put(p, &v, sizeof(v), 0), SHMBUS_EAGAIN);
	CHECK(strstr(shmbus_last_error(), "'gone'"), "names the first blocking group: %s",
	      shmbus_last_error());
	/* A timed put passes 'gone' (no live member) after the liveness
	 * timeout, but the durable group blocks it to the end. */
	t0 = test_now_ns();
	EXPECT_CODE(shmbus_queue_put(p, &v, sizeof(v), 150000000), SHMBUS_ETIMEDOUT);
	CHECK(test_now_ns() - t0 >= 140000000, "waited the timeout");
	CHECK(strstr(shmbus_last_error(), "'keep'"), "names the durable group: %s", shmbus_last_error());
	/* Its member comes back and reads on: space again. */
	d = member("det", "keep", 0);
	for (i = 2; i < 10; i++)
		CHECK(get_u64(d, 0, NULL) == (uint64_t)i, "keep resumed %d", i);
	for (i = 4; i < 10; i++)
		CHECK(get_u64(fast, 0, NULL) == (uint64_t)i, "fast %d", i);
	/* Now only 'gone' gates, and it stopped gating. */
	for (i = 10; i < 30; i++) {
		v = (uint64_t)i;
		OK(shmbus_queue_put(p, &v, sizeof(v), 2000000000ll));
		CHECK(get_u64(fast, 0, NULL) == (uint64_t)i, "fast %d", i);
		CHECK(get_u64(d, 0, NULL) == (uint64_t)i, "keep %d", i);
	}
	/* 'gone' kept its cursor; when a member comes back it is told how many
	 * messages were overwritten, then reads on in order from the oldest
	 * retained, up to the newest. */
	{
		shmbus_queue_info_t info = {.size_of = sizeof(info)};
		shmbus_group_info_t gi[3];
		unsigned long long lost = 0;
		const char *e;

		OK(shmbus_queue_info(p, &info, gi, 3));
		CHECK(strcmp(gi[1].name, "gone") == 0 && gi[1].cursor == 2,
		      "the dead group keeps its cursor: %s at %llu", gi[1].name,
		      (unsigned long long)gi[1].cursor);
		c = member("det", "gone", 0);
		r = shmbus_queue_get(c, &v, sizeof(v), &len, NULL, 0);
		CHECK(r == SHMBUS_ELAPPED, "rejoined group learns it was overtaken: %d (%s)", r,
		      shmbus_last_error());
		e = strstr(shmbus_last_error(), "member: ");
		CHECK(e && sscanf(e, "member: %llu", &lost) == 1, "count in: %s", shmbus_last_error());
		v = get_u64(c, 0, NULL);
		CHECK(v == 2 + lost && v >= 30 - 8, "resumes at seq 2 + %llu lost, got %llu", lost,
		      (unsigned long long)v);
		for (i = (int)v + 1; i < 30; i++)
			CHECK(get_u64(c, 0, NULL) == (uint64_t)i, "gone resumed %d", i);
		EXPECT_CODE(shmbus_queue_get(c, NULL, 0, NULL, NULL, 0), SHMBUS_EAGAIN);
		OK(shmbus_queue_close(c));
	}
	OK(shmbus_queue_close(fast));
	OK(shmbus_queue_close(d));
	OK(shmbus_queue_close(p));
	OK(shmbus_bus_set_liveness(bus, 200000000));
	printf("ok detached_and_durable_groups\n");
}

static void test_info(void)
{
	shmbus_queue_t *p = open_q("inf", 16, 64), *a = member("inf", "a", 0),
	               *b1 = member("inf", "b", 0), *b2 = member("inf", "b", 0);
	shmbus_queue_info_t info = {.size_of = sizeof(info)};
	shmbus_group_info_t g[4];
	int i;

	for (i = 0; i < 10; i++)
		put_u64(p, (uint64_t)i);
	for (i = 0; i < 7; i++)
		get_u64(a, 0, NULL);
	for (i = 0; i < 2; i++)
		get_u64(b1, 0, NULL);
	OK(shmbus_queue_info(p, &info, g, 4));
	CHECK(info.head == 10 && info.slots == 16 && info.groups == 2 && info.producers == 1 &&
	      info.shut == 0, "head %llu slots %u groups %u producers %u shut %d",
	      (unsigned long long)info.head, info.slots, info.groups, info.producers, info.shut);
	CHECK(info.depth == 8, "depth = head - slowest group = 8, got %llu",
	      (unsigned long long)info.depth);
	CHECK(strcmp(g[0].name, "a") == 0 && g[0].cursor == 7 && g[0].lag == 3 &&
	      g[0].members == 1 && g[0].live_members == 1,
	      "group a: %s cursor %llu lag %llu members %u live %u", g[0].name,
	      (unsigned long long)g[0].cursor, (unsigned long long)g[0].lag, g[0].members,
	      g[0].live_members);
	CHECK(strcmp(g[1].name, "b") == 0 && g[1].cursor == 2 && g[1].lag == 8 &&
	      g[1].members == 2 && g[1].live_members == 2, "group b: cursor %llu lag %llu members %u",
	      (unsigned long long)g[1].cursor, (unsigned long long)g[1].lag, g[1].members);
	OK(shmbus_queue_info(p, &info, NULL, 0));
	CHECK(info.groups == 2, "count without the array");
	OK(shmbus_queue_shut(p));
	OK(shmbus_queue_info(a, &info, g, 1));
	CHECK(info.shut == 1, "shut shows");
	EXPECT_CODE(shmbus_queue_info(p, NULL, NULL, 0), SHMBUS_EINVAL);
	OK(shmbus_queue_close(a));
	OK(shmbus_queue_close(b1));
	OK(shmbus_queue_close(b2));
	OK(shmbus_queue_close(p));
	printf("ok info\n");
}

/* A message handed out and not released is delivered again, flagged, when
 * its holder closes or dies; other members of the group get it. */
static void test_redelivery(void)
{
	shmbus_queue_t *p = open_q("rd", 8, 64), *m1 = member("rd", "w", 0), *m2;
	shmbus_msg_t msg;
	uint32_t flags = 0;
	pid_t pid;
	int st;

	OK(shmbus_bus_set_liveness(bus, 30000000));
	put_u64(p, 7);
	put_u64(p, 8);
	OK(shmbus_queue_peek(m1, &msg, 0));
	CHECK(msg.seq == 0 && msg.flags == 0, "first delivery not flagged");
	OK(shmbus_queue_close(m1));   /* without release */
	m2 = member("rd", "w", 0);
	CHECK(get_u64(m2, 0, &flags) == 7 && flags == SHMBUS_MSG_REDELIVERED,
	      "redelivered after close, flags %u", flags);
	CHECK(get_u64(m2, 0, &flags) == 8 && flags == 0, "then the next, unflagged");
	/* A child process takes a message and dies holding it. */
	put_u64(p, 9);
	put_u64(p, 10);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		shmbus_bus_t *b;
		shmbus_queue_t *q;

		if (shmbus_bus_open(busname, NULL, &b) || shmbus_queue_open(b, "rd", NULL, &q) ||
		    shmbus_queue_join(q, "w", 0) || shmbus_queue_peek(q, &msg, 0))
			_exit(2);
		_exit(*(const uint64_t *)msg.data == 9 ? 0 : 3);   /* dies holding 9 */
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "child took message 9 (status %d)", st);
	CHECK(get_u64(m2, 0, &flags) == 10 && flags == 0, "10 goes on");
	/* The dead holder is noticed after the liveness timeout. */
	CHECK(get_u64(m2, 2000000000ll, &flags) == 9 && flags == SHMBUS_MSG_REDELIVERED,
	      "9 redelivered from the dead child, flags %u", flags);
	EXPECT_CODE(shmbus_queue_get(m2, NULL, 0, NULL, NULL, 0), SHMBUS_EAGAIN);
	/* get_many reports the flag per message. */
	{
		shmbus_queue_t *m3 = member("rd", "w", 0);
		uint64_t v[3] = {0};
		void *bufs[3] = {&v[0], &v[1], &v[2]};
		size_t caps[3] = {8, 8, 8}, lens[3], got;
		uint32_t fl[3] = {7, 7, 7};

		put_u64(p, 11);
		put_u64(p, 12);
		OK(shmbus_queue_peek(m3, &msg, 0));
		OK(shmbus_queue_close(m3));   /* holding 11 */
		OK(shmbus_queue_get_many(m2, bufs, caps, lens, fl, 3, 0, &got));
		CHECK(got == 2 && v[0] == 11 && fl[0] == SHMBUS_MSG_REDELIVERED && v[1] == 12 &&
		      fl[1] == 0, "get_many: got %zu: %llu (flags %u), %llu (flags %u)", got,
		      (unsigned long long)v[0], fl[0], (unsigned long long)v[1], fl[1]);
	}
	OK(shmbus_queue_close(m2));
	OK(shmbus_queue_close(p));
	OK(shmbus_bus_set_liveness(bus, 200000000));
	printf("ok redelivery\n");
}

/* A producer that dies between reserve and commit does not stall the
 * consumers beyond the liveness timeout. */
static void test_dead_producer_skipped(void)
{
	shmbus_queue_t *p = open_q("dp", 8, 64), *c = member("dp", "g", 0);
	uint32_t reaped = 0;
	uint64_t t0;
	pid_t pid;
	int st;

	OK(shmbus_bus_set_liveness(bus, 30000000));
	put_u64(p, 1);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		shmbus_bus_t *b;
		shmbus_queue_t *q;
		void *ptr;

		if (shmbus_bus_open(busname, NULL, &b) || shmbus_queue_open(b, "dp", NULL, &q) ||
		    shmbus_queue_reserve(q, 8, &ptr, 0))
			_exit(2);
		memset(ptr, 0xee, 8);
		_exit(0);   /* dies with seq 1 claimed and never committed */
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "child status %d", st);
	put_u64(p, 3);
	CHECK(get_u64(c, 0, NULL) == 1, "first");
	t0 = test_now_ns();
	CHECK(get_u64(c, 2000000000ll, NULL) == 3, "the dead producer's seq is skipped");
	CHECK(test_now_ns() - t0 < 1000000000ull, "within a few liveness timeouts: %llu ns",
	      (unsigned long long)(test_now_ns() - t0));
	OK(shmbus_bus_gc(bus, &reaped));
	CHECK(reaped >= 1, "gc freed the dead producer's record (%u)", reaped);
	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(p));
	OK(shmbus_bus_set_liveness(bus, 200000000));
	printf("ok dead_producer_skipped\n");
}

/* A get of a ready message takes it by the copying path (no hold) in every
 * build, ThreadSanitizer's included, so that its run of threads_mpmc
 * checks the path the other builds use. White-box: a marker in the
 * member's hold word survives a copying take; the hold path overwrites it
 * and clears it at release. */
static void test_copying_take_in_every_build(void)
{
	shmbus_queue_t *p = open_q("ct", 8, 64), *c = member("ct", "g", 0);
	struct sb_q_member *m = &c->v.members[c->member];
	uint64_t marker = 1;    /* seq 0 held: the message itself, gating nothing more */
	uint64_t vals[2] = {0, 0}, held;
	void *bufs[2] = {&vals[0], &vals[1]};
	size_t caps[2] = {8, 8}, lens[2], got = 0;
	int i;

	for (i = 0; i < 3; i++)
		put_u64(p, 7 + (uint64_t)i);
	atomic_store(&m->held, marker);
	CHECK(get_u64(c, 0, NULL) == 7, "get: the first message");
	held = atomic_load(&m->held);
	CHECK(held == marker, "get took the message through a hold (held word %#llx), not by copying",
	      (unsigned long long)held);
	OK(shmbus_queue_get_many(c, bufs, caps, lens, NULL, 2, 0, &got));
	CHECK(got == 2 && vals[0] == 8 && vals[1] == 9, "get_many: %zu messages %llu %llu", got,
	      (unsigned long long)vals[0], (unsigned long long)vals[1]);
	held = atomic_load(&m->held);
	CHECK(held == marker, "get_many took messages through a hold (held word %#llx)",
	      (unsigned long long)held);
	atomic_store(&m->held, 0);
	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(p));
	printf("ok copying_take_in_every_build\n");
}

/* Threads of one process, each with its own handle: 2 producers, a
 * broadcast group of one member and a work group of two. Every message
 * reaches each group exactly once, in per-producer order per member (the
 * ThreadSanitizer run of this program checks the memory ordering). */
#define MT_PRODUCERS 2
#ifdef SB_TSAN
#define MT_PER 5000             /* ThreadSanitizer runs this 10-20x slower */
#else
#define MT_PER 20000
#endif

struct mt_consumer {
	const char *group;
	uint32_t count;
	int err;
	atomic_uchar *seen;     /* [producer][seq], shared by the group */
};

static void *mt_produce(void *arg)
{
	uintptr_t id = (uintptr_t)arg;
	shmbus_queue_t *q;
	uint64_t i, msg[3];

	if (shmbus_queue_open(bus, "mt", NULL, &q))
		return (void *)1;
	for (i = 0; i < MT_PER; i++) {
		msg[0] = id;
		msg[1] = i;
		msg[2] = test_hash(msg, 16);
		/* Lengths 16 or 24: the checksum word is sometimes absent. */
		if (shmbus_queue_put(q, msg, i & 1 ? 24 : 16, 10000000000ll))
			return (void *)2;
	}
	shmbus_queue_close(q);
	return NULL;
}

static void *mt_consume(void *arg)
{
	struct mt_consumer *c = arg;
	uint64_t msg[3], next[MT_PRODUCERS] = {0};
	shmbus_queue_t *q;
	size_t len;
	int r;

	if (shmbus_queue_open(bus, "mt", NULL, &q) || shmbus_queue_join(q, c->group, 0)) {
		c->err = 1;
		return NULL;
	}
	for (;;) {
		r = shmbus_queue_get(q, msg, sizeof(msg), &len, NULL, 10000000000ll);
		if (r == SHMBUS_ECLOSED)
			break;
		if (r || (len != 16 && len != 24) || msg[0] >= MT_PRODUCERS || msg[1] >= MT_PER ||
		    len != (msg[1] & 1 ? 24u : 16u) || (len == 24 && msg[2] != test_hash(msg, 16)) ||
		    msg[1] < next[msg[0]]) {
			fprintf(stderr, "group %s: r %d len %zu producer %llu seq %llu (next %llu)\n",
			        c->group, r, len, (unsigned long long)msg[0],
			        (unsigned long long)msg[1],
			        (unsigned long long)(msg[0] < MT_PRODUCERS ? next[msg[0]] : 0));
			c->err = 2;
			break;
		}
		next[msg[0]] = msg[1] + 1;
		atomic_fetch_add(&c->seen[msg[0] * MT_PER + msg[1]], 1);
		c->count++;
	}
	shmbus_queue_close(q);
	return NULL;
}

static void test_threads_mpmc(void)
{
	static atomic_uchar seen_b[MT_PRODUCERS * MT_PER], seen_w[MT_PRODUCERS * MT_PER];
	struct mt_consumer cons[3] = {{"bcast", 0, 0, seen_b}, {"work", 0, 0, seen_w},
	                              {"work", 0, 0, seen_w}};
	pthread_t pt[MT_PRODUCERS], ct[3];
	shmbus_queue_t *q;
	void *ret;
	uintptr_t i;
	uint64_t t0 = test_now_ns();

	q = open_q("mt", 64, 64);
	for (i = 0; i < 3; i++)
		CHECK(pthread_create(&ct[i], NULL, mt_consume, &cons[i]) == 0, "thread");
	/* The groups exist before the first message (else LATEST skips some). */
	for (;;) {
		shmbus_queue_info_t info = {.size_of = sizeof(info)};

		OK(shmbus_queue_info(q, &info, NULL, 0));
		if (info.groups == 2)
			break;
		usleep(1000);
	}
	for (i = 0; i < MT_PRODUCERS; i++)
		CHECK(pthread_create(&pt[i], NULL, mt_produce, (void *)i) == 0, "thread");
	for (i = 0; i < MT_PRODUCERS; i++) {
		pthread_join(pt[i], &ret);
		CHECK(ret == NULL, "producer %d failed: %d", (int)i, (int)(uintptr_t)ret);
	}
	OK(shmbus_queue_shut(q));
	for (i = 0; i < 3; i++) {
		pthread_join(ct[i], NULL);
		CHECK(cons[i].err == 0, "consumer %d (group %s) failed: %d", (int)i, cons[i].group,
		      cons[i].err);
	}
	CHECK(cons[0].count == MT_PRODUCERS * MT_PER, "broadcast got %u of %u", cons[0].count,
	      MT_PRODUCERS * MT_PER);
	CHECK(cons[1].count + cons[2].count == MT_PRODUCERS * MT_PER,
	      "work group got %u + %u of %u", cons[1].count, cons[2].count, MT_PRODUCERS * MT_PER);
	for (i = 0; i < MT_PRODUCERS * MT_PER; i++)
		CHECK(seen_b[i] == 1 && seen_w[i] == 1, "message %d/%d seen %d times by bcast, %d by work",
		      (int)(i / MT_PER), (int)(i % MT_PER), seen_b[i], seen_w[i]);
	OK(shmbus_queue_close(q));
	printf("ok threads_mpmc (%d msgs x 2 groups, %.0f msgs/s per group; work split %u/%u)\n",
	       MT_PRODUCERS * MT_PER,
	       MT_PRODUCERS * MT_PER / ((double)(test_now_ns() - t0) / 1e9), cons[1].count,
	       cons[2].count);
}

/* Promise 4 for queues: shared words a hostile or broken peer wrote give an
 * error code or a bounded wait, never a crash, an endless loop or a read
 * outside the channel. */
static void test_hostile_words(void)
{
	shmbus_queue_t *p = open_q("hw", 8, 64), *c = member("hw", "g", 0);
	struct sb_q_view *v = &c->v;
	struct sb_q_group *g = &v->groups[c->group];
	struct sb_q_slot *sl;
	uint64_t val, t0, saved;
	size_t len;

	/* A length beyond max_msg. */
	put_u64(p, 1);
	sl = sb_q_slot(v, 0);
	sl->len = 1u << 30;
	EXPECT_CODE(shmbus_queue_get(c, &val, sizeof(val), &len, NULL, 0), SHMBUS_ECORRUPT);
	CHECK(strstr(shmbus_last_error(), "max_msg"), "%s", shmbus_last_error());
	/* A cursor past the head. */
	saved = atomic_load(&g->cursor);
	atomic_store(&g->cursor, 1000);
	EXPECT_CODE(shmbus_queue_get(c, &val, sizeof(val), &len, NULL, 0), SHMBUS_ECORRUPT);
	CHECK(strstr(shmbus_last_error(), "past the head"), "%s", shmbus_last_error());
	atomic_store(&g->cursor, saved);
	/* A slot word naming a later seq than the cursor, with no floor. */
	put_u64(p, 2);
	sl = sb_q_slot(v, saved);
	val = atomic_load(&sl->published);
	atomic_store(&sl->published, saved + 1 + 8 * 5);
	EXPECT_CODE(shmbus_queue_get(c, &val, sizeof(val), &len, NULL, 0), SHMBUS_ECORRUPT);
	atomic_store(&sl->published, saved + 1);
	CHECK(get_u64(c, 0, NULL) == 2, "the queue works again once the word is repaired");
	/* Member records naming groups that do not exist, holds far away:
	 * producers and gc skip them. */
	atomic_store(&v->members[5].group, 999999);
	atomic_store(&v->members[5].held, 12345);
	atomic_store(&v->members[5].token, 1);   /* pid 1, wrong start time: dead */
	if (atomic_load(&v->ctl->members_hi) < 6)
		atomic_store(&v->ctl->members_hi, 6);
	put_u64(p, 3);
	CHECK(get_u64(c, 0, NULL) == 3, "a garbage member record does not gate");
	/* An orphans hint with no orphan behind it: a timed get still times
	 * out (it does not spin for ever) and the hint is repaired. */
	atomic_store(&g->orphans, 1000000);
	t0 = test_now_ns();
	EXPECT_CODE(shmbus_queue_get(c, &val, sizeof(val), &len, NULL, 20000000), SHMBUS_ETIMEDOUT);
	CHECK(test_now_ns() - t0 < 2000000000ull, "bounded: %llu ns",
	      (unsigned long long)(test_now_ns() - t0));
	CHECK(atomic_load(&g->orphans) == 0, "hint reset, now %lld", (long long)atomic_load(&g->orphans));
	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(p));
	printf("ok hostile_words\n");
}

/* A publication wakes consumers only if a sleeper may wait for it: the
 * sleeper's request (cons_need, the seq its group's cursor waits for) is
 * at or below the seq published; a wake-up resets the request, so the puts
 * after it make no FUTEX_WAKE until a sleeper asks again. White-box: a
 * sleeper is simulated by its count and request; then a real parked
 * consumer is woken by the put it waits for. */
struct park_arg {
	shmbus_queue_t *c;
	uint64_t val;
	int rc;
};

static void *park_get(void *a)
{
	struct park_arg *pa = a;
	size_t len = 0;

	pa->rc = shmbus_queue_get(pa->c, &pa->val, sizeof(pa->val), &len, NULL, 10000000000ll);
	return NULL;
}

static void test_consumer_wake_need(void)
{
	shmbus_queue_t *p = open_q("wn", 64, 64), *c = member("wn", "g", 0);
	struct sb_q_ctl *ctl = c->v.ctl;
	const void *msgs[2];
	size_t lens[2], done, i;
	uint64_t h, one = 1, t0;
	uint32_t ev;
	struct park_arg pa = {c, 0, -1};
	pthread_t th;
	int woke;

	CHECK(atomic_load(&ctl->cons_need) == UINT64_MAX, "fresh queue: request %llu",
	      (unsigned long long)atomic_load(&ctl->cons_need));
	put_u64(p, 0);
	CHECK(get_u64(c, 0, NULL) == 0, "first message");
	h = atomic_load(&ctl->head) & SB_Q_SEQ;
	/* A simulated sleeper waiting for seq h+2. */
	atomic_fetch_add(&ctl->cons_waiters, 1);
	atomic_store(&ctl->cons_need, h + 2);
	ev = atomic_load(&ctl->cons_event);
	put_u64(p, 1);
	put_u64(p, 2);
	CHECK(atomic_load(&ctl->cons_event) == ev, "puts of seqs %llu, %llu below the request %llu woke (event %u -> %u)",
	      (unsigned long long)h, (unsigned long long)h + 1, (unsigned long long)h + 2, ev,
	      atomic_load(&ctl->cons_event));
	put_u64(p, 3);
	CHECK(atomic_load(&ctl->cons_event) != ev, "the put of the requested seq %llu did not wake",
	      (unsigned long long)h + 2);
	CHECK(atomic_load(&ctl->cons_need) == UINT64_MAX, "request not reset by the wake-up: %llu",
	      (unsigned long long)atomic_load(&ctl->cons_need));
	ev = atomic_load(&ctl->cons_event);
	put_u64(p, 4);
	CHECK(atomic_load(&ctl->cons_event) == ev, "a put after the wake-up woke again");
	/* put_many: one check per batch, against its highest seq. */
	atomic_store(&ctl->cons_need, h + 7);
	for (i = 0; i < 2; i++) {
		msgs[i] = &one;
		lens[i] = sizeof(one);
	}
	OK(shmbus_queue_put_many(p, msgs, lens, 2, 0, &done));
	CHECK(atomic_load(&ctl->cons_event) == ev, "a batch below the request woke");
	OK(shmbus_queue_put_many(p, msgs, lens, 2, 0, &done));
	CHECK(atomic_load(&ctl->cons_event) != ev, "a batch reaching the request %llu did not wake",
	      (unsigned long long)h + 7);
	atomic_fetch_sub(&ctl->cons_waiters, 1);
	for (i = 1; i <= 8; i++)
		(void)get_u64(c, 0, NULL);
	/* A real sleeper: parks at once, asks for its cursor's seq, and the
	 * put of that seq wakes it well before its 10 s timeout. */
	OK(shmbus_queue_set_wait(c, SHMBUS_WAIT_PARK, 0));
	CHECK(pthread_create(&th, NULL, park_get, &pa) == 0, "thread");
	t0 = test_now_ns();
	woke = 0;
	while (test_now_ns() - t0 < 5000000000ull) {
		if (atomic_load(&ctl->cons_waiters) > 0 && atomic_load(&ctl->cons_need) != UINT64_MAX) {
			woke = 1;
			break;
		}
		usleep(1000);
	}
	CHECK(woke, "the consumer never parked with a request");
	CHECK(atomic_load(&ctl->cons_need) == h + 8, "parked consumer asked for %llu, its cursor is %llu",
	      (unsigned long long)atomic_load(&ctl->cons_need), (unsigned long long)h + 8);
	put_u64(p, 42);
	CHECK(pthread_join(th, NULL) == 0, "join");
	OK(pa.rc);
	CHECK(pa.val == 42, "parked consumer got %llu", (unsigned long long)pa.val);
	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(p));
	printf("ok consumer_wake_need\n");
}

/* get_many hands each message's hold straight to the next take (one
 * exchange): the batch still gets every message once, in order, and
 * whatever ends it (count reached, nothing more) leaves no hold behind,
 * so a full ring is free again. */
static void test_get_many_handover(void)
{
	shmbus_queue_t *p = open_q("gh", 4, 64), *c = member("gh", "g", 0);
	struct sb_q_member *m = &c->v.members[c->member];
	uint64_t vals[6], i;
	void *bufs[6];
	size_t caps[6], lens[6], got;

	for (i = 0; i < 6; i++) {
		bufs[i] = &vals[i];
		caps[i] = sizeof(vals[i]);
	}
	for (i = 0; i < 4; i++)
		put_u64(p, 10 + i);
	EXPECT_CODE(shmbus_queue_put(p, &i, sizeof(i), 0), SHMBUS_EAGAIN);
	/* Count reached. */
	OK(shmbus_queue_get_many(c, bufs, caps, lens, NULL, 3, 0, &got));
	CHECK(got == 3 && vals[0] == 10 && vals[1] == 11 && vals[2] == 12,
	      "got %zu: %llu %llu %llu", got, (unsigned long long)vals[0],
	      (unsigned long long)vals[1], (unsigned long long)vals[2]);
	CHECK(atomic_load(&m->held) == 0 && c->held == 0 && !c->spent,
	      "hold left after a full batch: %llx", (unsigned long long)atomic_load(&m->held));
	/* Nothing more after the first: the ring's 4 slots are free again. */
	OK(shmbus_queue_get_many(c, bufs, caps, lens, NULL, 6, 0, &got));
	CHECK(got == 1 && vals[0] == 13, "got %zu: %llu", got, (unsigned long long)vals[0]);
	CHECK(atomic_load(&m->held) == 0 && c->held == 0 && !c->spent,
	      "hold left after a short batch: %llx", (unsigned long long)atomic_load(&m->held));
	for (i = 0; i < 4; i++)
		put_u64(p, 20 + i);
	/* A buffer too small for the third: it stays held for the next call. */
	caps[2] = 4;
	EXPECT_CODE(shmbus_queue_get_many(c, bufs, caps, lens, NULL, 4, 0, &got), 0);
	CHECK(got == 2 && vals[0] == 20 && vals[1] == 21, "got %zu", got);
	CHECK(c->held == 7 && !c->spent && atomic_load(&m->held) == 7, /* seq 6 */
	      "the too-big message (seq 6) is held: %llu / %llx", (unsigned long long)c->held,
	      (unsigned long long)atomic_load(&m->held));
	caps[2] = sizeof(vals[2]);
	OK(shmbus_queue_get_many(c, bufs + 2, caps + 2, lens + 2, NULL, 4, 0, &got));
	CHECK(got == 2 && vals[2] == 22 && vals[3] == 23, "got %zu: %llu %llu", got,
	      (unsigned long long)vals[2], (unsigned long long)vals[3]);
	CHECK(atomic_load(&m->held) == 0 && c->held == 0, "hold left");
	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(p));
	printf("ok get_many_handover\n");
}

/* End of stream marked in head alone (a shutter that died before copying
 * the mark to ctl->closed, or a library that predates the copy): a try
 * and a blocking get still end the stream, the blocking one once it parks. */
static void test_closed_mark_in_head_only(void)
{
	shmbus_queue_t *p = open_q("headonly", 8, 64), *c = member("headonly", "g", 0);
	struct sb_q_ctl *ctl = c->v.ctl;
	uint64_t h;

	put_u64(p, 7);
	put_u64(p, 8);
	h = atomic_fetch_or(&ctl->head, SB_Q_CLOSED);
	CHECK(atomic_load(&ctl->closed) == 0, "closed copy untouched");
	CHECK(get_u64(c, 0, NULL) == 7 && get_u64(c, SHMBUS_FOREVER, NULL) == 8, "drain");
	EXPECT_CODE(shmbus_queue_get(c, NULL, 0, NULL, NULL, 0), SHMBUS_ECLOSED);
	EXPECT_CODE(shmbus_queue_get(c, NULL, 0, NULL, NULL, 2000000000ll), SHMBUS_ECLOSED);
	/* The API's shut makes the copy, naming where head ended. */
	atomic_store(&ctl->head, h);
	OK(shmbus_queue_shut(p));
	CHECK(atomic_load(&ctl->closed) == (h | SB_Q_CLOSED), "closed copy %llx, head %llx",
	      (unsigned long long)atomic_load(&ctl->closed), (unsigned long long)h);
	EXPECT_CODE(shmbus_queue_get(c, NULL, 0, NULL, NULL, SHMBUS_FOREVER), SHMBUS_ECLOSED);
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(c));
	printf("ok closed_mark_in_head_only\n");
}

/* Small slots are packed at 16 bytes; a queue made with a line per slot
 * (segments of earlier versions) still opens and carries messages. */
static void test_slot_layouts(void)
{
	shmbus_queue_t *p, *c, *n;
	uint8_t out[64], in[64];
	size_t len;
	int i, j;

	sb_q_make_line_stride = 1;
	p = open_q("lines", 8, 64);
	sb_q_make_line_stride = 0;
	n = open_q("packed", 8, 64);
	CHECK(p->v.ctl->stride == 128 && p->v.stride == 128, "line layout stride %llu",
	      (unsigned long long)p->v.ctl->stride);
	CHECK(n->v.ctl->stride == 80 && n->v.stride == 80, "packed stride %llu",
	      (unsigned long long)n->v.ctl->stride);
	c = member("lines", "g", 0);
	CHECK(c->v.stride == 128, "reopened line layout uses stride %llu",
	      (unsigned long long)c->v.stride);
	for (i = 0; i < 20; i++) {     /* wraps the 8-slot ring twice */
		for (j = 0; j < 64; j++)
			out[j] = (uint8_t)(i * 31 + j);
		OK(shmbus_queue_put(p, out, (size_t)(1 + i * 3), 0));
		OK(shmbus_queue_get(c, in, sizeof(in), &len, NULL, 0));
		CHECK(len == (size_t)(1 + i * 3) && memcmp(in, out, len) == 0, "message %d", i);
	}
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(n));
	printf("ok slot_layouts\n");
}

static pid_t parent;

/* A failed check exits: the bus goes with it (not from forked children). */
static void cleanup(void)
{
	if (getpid() == parent && busname[0])
		shmbus_bus_unlink(busname);
}

int main(void)
{
	shmbus_bus_opts_t bo;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parent = getpid();
	atexit(cleanup);
	snprintf(busname, sizeof(busname), "%s", test_bus_name("queue"));
	shmbus_bus_opts_init(&bo);
	OK(shmbus_bus_create(busname, &bo, &bus));
	test_sizes_and_validation();
	test_try_and_timeouts();
	test_reserve_commit_abort();
	test_peek_release_and_small_buffer();
	test_batches();
	test_shut_drain_closed();
	test_group_start_positions();
	test_work_group_shares();
	test_consumer_before_producer();
	test_durable_resume();
	test_detached_and_durable_groups();
	test_drop_group();
	test_info();
	test_redelivery();
	test_dead_producer_skipped();
	test_copying_take_in_every_build();
	test_threads_mpmc();
	test_hostile_words();
	test_consumer_wake_need();
	test_get_many_handover();
	test_closed_mark_in_head_only();
	test_slot_layouts();
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(busname));
	busname[0] = '\0';
	printf("PASS test_queue\n");
	return 0;
}

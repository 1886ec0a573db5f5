/*
 * test_outsider_cells.c -- the promises docs/queue.md ("Cells"),
 * docs/cli.md, README.md and include/shmbus.h make about queues of cells
 * (shmbus_queue_opts_t.cell_bytes), checked the way a program using only
 * the public header would: options and errors, what info counts, reserve
 * and commit, peek, put_many/get_many, pads at the ring's end (also a
 * message of the whole ring), a group at EARLIEST, end of stream, and
 * messages of 0 bytes to max_msg between several producer and consumer
 * processes -- two broadcast groups and a work group of two -- also with a
 * producer killed between reserve and commit.
 *
 * Each message says who made it: byte 0 the producer, bytes 1..4 its
 * index, the rest a pattern of both; a consumer rebuilds the message it
 * expects next from that producer and compares every byte. A message of 0
 * bytes carries nothing, so only producer 0 sends them. The logs of the
 * groups (seq, length, hash) are compared at the end: both broadcast
 * groups got the same stream, and the work group's two members together
 * got exactly that stream, each message once.
 */
#include "testutil.h"

#include <stddef.h>
#include <sys/mman.h>

#define CELL     64u
#define SEC      1000000000ll
#define TMO      (60 * SEC)     /* every blocking call: generous, never expected */

/* ------------------------------------------------------------------ */
/* messages                                                             */
/* ------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The cells a message of len bytes takes: max(1, ceil(len / cell)). */
static uint64_t cells_of(size_t len, uint64_t cell)
{
	return len == 0 ? 1 : (len + cell - 1) / cell;
}

enum { NPROD = 3, VICTIM = 3, NVICTIM = 7 };
/* the victim producer's committed messages, then its dead reservation */
static const size_t victim_lens[NVICTIM] = {5, 100, 1000, 64, 65, 3000, 7};
#define VICTIM_RESERVE 300      /* 5 cells of 64 B, 38 of 8 */

/* The length of message i of producer p (n messages, max_msg at most):
 * 0..16, 17..64, 65..512, 513..4096 bytes and, now and then, up to
 * max_msg; message n/2 of every producer is max_msg (a whole ring in
 * the multi-process runs) and message n/3 of producer 0 is empty. */
static size_t msg_len(unsigned p, uint32_t i, uint32_t n, size_t max_msg)
{
	uint64_t r = mix64((uint64_t)p << 32 | i);
	unsigned c = (unsigned)(r % 100);
	size_t len;

	if (p == VICTIM)
		return victim_lens[i];
	r >>= 8;
	if (i == n / 2)
		return max_msg;
	if (i == n / 3)
		len = 0;
	else if (c < 30)
		len = r % 17;
	else if (c < 60)
		len = 17 + r % 48;
	else if (c < 85)
		len = 65 + r % 448;
	else if (c < 97)
		len = 513 + r % 3584;
	else
		len = max_msg > 4096 ? 4097 + r % (max_msg - 4096) : max_msg;
	if (len == 0 && p != 0)
		len = 1;
	return len < max_msg ? len : max_msg;
}

static void msg_fill(unsigned p, uint32_t i, unsigned char *b, size_t len)
{
	uint64_t r = mix64(((uint64_t)p << 32 | i) ^ 0xa5a5a5a5ull);
	size_t k;

	for (k = 0; k < len; k++) {
		if (k == 0)
			b[k] = (unsigned char)p;
		else if (k <= 4)
			b[k] = (unsigned char)(i >> (8 * (k - 1)));
		else {
			if ((k & 7) == 0)
				r = mix64(r + k);
			b[k] = (unsigned char)(r >> ((k & 7) * 8));
		}
	}
}

static shmbus_queue_t *open_cells(shmbus_bus_t *b, const char *name, uint32_t slots,
                                  uint64_t cell, uint64_t max_msg)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q;

	shmbus_queue_opts_init(&o);
	o.slots = slots;
	o.cell_bytes = cell;
	o.max_msg = max_msg;
	OK(shmbus_queue_open(b, name, &o, &q));
	return q;
}

static void put_one(shmbus_queue_t *q, unsigned p, uint32_t i, size_t len, int64_t tmo, int expect)
{
	static unsigned char buf[1 << 16];

	CHECK(len <= sizeof(buf), "test buffer");
	msg_fill(p, i, buf, len);
	EXPECT_CODE(shmbus_queue_put(q, buf, len, tmo), expect);
}

/* peek the next message: it must be (p, i) of len bytes at seq */
static void peek_expect(shmbus_queue_t *q, unsigned p, uint32_t i, size_t len, uint64_t seq)
{
	static unsigned char want[1 << 16];
	shmbus_msg_t m;

	OK(shmbus_queue_peek(q, &m, 5 * SEC));
	msg_fill(p, i, want, len);
	CHECK(m.len == len, "message %u/%u: len %zu, expected %zu", p, i, m.len, len);
	CHECK(m.seq == seq, "message %u/%u: seq %llu, expected %llu", p, i,
	      (unsigned long long)m.seq, (unsigned long long)seq);
	CHECK(len == 0 || memcmp(m.data, want, len) == 0, "message %u/%u: bytes differ", p, i);
	CHECK(m.flags == 0, "message %u/%u: flags 0x%x", p, i, m.flags);
	OK(shmbus_queue_release(q));
}

static void qinfo(shmbus_queue_t *q, shmbus_queue_info_t *qi, shmbus_group_info_t *g, size_t cap)
{
	memset(qi, 0, sizeof(*qi));
	qi->size_of = sizeof(*qi);
	OK(shmbus_queue_info(q, qi, g, cap));
}

/* ------------------------------------------------------------------ */
/* 1. options, errors, what info says                                   */
/* ------------------------------------------------------------------ */

static void test_options(void)
{
	const char *name = test_bus_name("oc-opt");
	shmbus_bus_t *bus;
	shmbus_queue_t *q, *q2, *s, *a, *b;
	shmbus_queue_opts_t o;
	shmbus_queue_info_t qi;
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)}, ca = {.size_of = sizeof(ca)},
	                      cb = {.size_of = sizeof(cb)};
	size_t small;

	OK(shmbus_bus_create(name, NULL, &bus));
	shmbus_queue_opts_init(&o);
	o.slots = 64;
	/* "a multiple of 8, at most 1 GiB" */
	o.cell_bytes = 12;
	EXPECT_CODE(shmbus_queue_open(bus, "bad", &o, &q), SHMBUS_EINVAL);
	o.cell_bytes = 4;
	EXPECT_CODE(shmbus_queue_open(bus, "bad", &o, &q), SHMBUS_EINVAL);
	o.cell_bytes = 65;
	EXPECT_CODE(shmbus_queue_open(bus, "bad", &o, &q), SHMBUS_EINVAL);
	o.cell_bytes = (1ull << 30) + 8;
	EXPECT_CODE(shmbus_queue_open(bus, "bad", &o, &q), SHMBUS_EINVAL);
	/* "max_msg may be anything up to slots x cell_bytes" */
	o.cell_bytes = CELL;
	o.max_msg = 64 * CELL + 1;
	EXPECT_CODE(shmbus_queue_open(bus, "bad", &o, &q), SHMBUS_EINVAL);

	/* at most 1 GiB: 1 GiB itself is valid (too big for this bus) */
	o.max_msg = 0;
	o.slots = 2;
	o.cell_bytes = 1ull << 30;
	EXPECT_CODE(shmbus_queue_open(bus, "bad", &o, &q), SHMBUS_ENOSPC);
	/* the ring is the rounded slots: 100 -> 128 cells, max_msg up to 128 x 64 */
	o.slots = 100;
	o.cell_bytes = CELL;
	o.max_msg = 128 * CELL;
	OK(shmbus_queue_open(bus, "r", &o, &q));
	qinfo(q, &qi, NULL, 0);
	CHECK(qi.slots == 128 && qi.max_msg == 128 * CELL, "100 slots: %u, max_msg %llu", qi.slots,
	      (unsigned long long)qi.max_msg);
	OK(shmbus_queue_close(q));
	o.slots = 64;

	/* 0 means the whole ring */
	q = open_cells(bus, "c", 64, CELL, 0);
	qinfo(q, &qi, NULL, 0);
	CHECK(qi.cell_bytes == CELL && qi.slots == 64 && qi.max_msg == 64 * CELL,
	      "info: cell_bytes %llu slots %u max_msg %llu", (unsigned long long)qi.cell_bytes,
	      qi.slots, (unsigned long long)qi.max_msg);
	CHECK(qi.head == 0 && qi.depth == 0 && qi.shut == 0, "fresh: head %llu depth %llu",
	      (unsigned long long)qi.head, (unsigned long long)qi.depth);
	OK(shmbus_channel_info(bus, "c", &ci));
	CHECK(ci.kind == SHMBUS_KIND_QUEUE && ci.cell_bytes == CELL && ci.capacity == 64 &&
	      ci.value_size == 64 * CELL, "channel_info: kind %d cell_bytes %llu capacity %llu "
	      "value_size %llu", ci.kind, (unsigned long long)ci.cell_bytes,
	      (unsigned long long)ci.capacity, (unsigned long long)ci.value_size);
	{
		shmbus_channel_info_t list[4] = {{.size_of = sizeof(list[0])}};
		size_t cnt = 0, j;

		OK(shmbus_channel_list(bus, list, 4, &cnt));
		for (j = 0; j < cnt && strcmp(list[j].name, "c") != 0; j++)
			;
		CHECK(j < cnt && list[j].cell_bytes == CELL && list[j].capacity == 64,
		      "channel_list: queue 'c' with cell_bytes %llu", j < cnt ?
		      (unsigned long long)list[j].cell_bytes : 0ull);
	}
	/* "A caller whose size_of ends before it does not get it" */
	small = offsetof(shmbus_queue_info_t, cell_bytes);
	memset(&qi, 0, sizeof(qi));
	qi.size_of = (uint32_t)small;
	qi.cell_bytes = 0xdeadull;
	OK(shmbus_queue_info(q, &qi, NULL, 0));
	CHECK(qi.cell_bytes == 0xdeadull && qi.size_of <= small && qi.slots == 64,
	      "short info: cell_bytes %llu size_of %u", (unsigned long long)qi.cell_bytes, qi.size_of);

	/* "an opener that names another cell size gets SHMBUS_ETYPE" */
	o.max_msg = 0;
	o.cell_bytes = 128;
	EXPECT_CODE(shmbus_queue_open(bus, "c", &o, &q2), SHMBUS_ETYPE);
	CHECK(strstr(shmbus_last_error(), "64") && strstr(shmbus_last_error(), "128"),
	      "ETYPE detail does not name both cell sizes: '%s'", shmbus_last_error());
	o.create = 0;
	EXPECT_CODE(shmbus_queue_open(bus, "c", &o, &q2), SHMBUS_ETYPE);
	/* "each ... that opts sets (non-zero) must match": 0 opens it as it is */
	o.cell_bytes = 0;
	o.slots = 0;
	OK(shmbus_queue_open(bus, "c", &o, &q2));
	qinfo(q2, &qi, NULL, 0);
	CHECK(qi.cell_bytes == CELL && qi.slots == 64, "opened with 0: cell_bytes %llu",
	      (unsigned long long)qi.cell_bytes);
	OK(shmbus_queue_close(q2));
	o.create = 1;
	o.cell_bytes = CELL;
	o.slots = 64;
	OK(shmbus_queue_open(bus, "c", &o, &q2));
	OK(shmbus_queue_close(q2));

	/* a queue of slots says 0, and refuses an opener naming cells */
	OK(shmbus_queue_open(bus, "s", NULL, &s));
	qinfo(s, &qi, NULL, 0);
	CHECK(qi.cell_bytes == 0, "slots: cell_bytes %llu", (unsigned long long)qi.cell_bytes);
	OK(shmbus_channel_info(bus, "s", &ci));
	CHECK(ci.cell_bytes == 0, "slots: channel cell_bytes %llu", (unsigned long long)ci.cell_bytes);
	o.slots = 0;
	o.cell_bytes = CELL;
	EXPECT_CODE(shmbus_queue_open(bus, "s", &o, &q2), SHMBUS_ETYPE);

	/* "the ring's memory is slots x (16 + cell_bytes) bytes": two queues
	 * that differ only in the cell size differ by slots x the difference,
	 * and a ring of 1024 cells of 64 B for messages of 64 KiB is far below
	 * 1024 slots of 64 KiB */
	a = open_cells(bus, "a", 256, 64, 8192);
	b = open_cells(bus, "b", 256, 128, 8192);
	OK(shmbus_channel_info(bus, "a", &ca));
	OK(shmbus_channel_info(bus, "b", &cb));
	CHECK(ca.area_size >= 256 * (16 + 64) && cb.area_size >= 256 * (16 + 128),
	      "area %llu / %llu below the ring", (unsigned long long)ca.area_size,
	      (unsigned long long)cb.area_size);
	CHECK(cb.area_size - ca.area_size == 256 * 64, "area of 256 cells of 128 B minus 64 B: "
	      "%llu, expected %u", (unsigned long long)(cb.area_size - ca.area_size), 256 * 64);
	OK(shmbus_queue_close(a));
	OK(shmbus_queue_close(b));
	a = open_cells(bus, "big", 1024, 64, 65536);
	OK(shmbus_channel_info(bus, "big", &ca));
	CHECK(ca.area_size < 1024ull * (16 + 64) + 65536, "1024 cells of 64 B take %llu bytes",
	      (unsigned long long)ca.area_size);
	OK(shmbus_queue_close(a));

	OK(shmbus_queue_close(s));
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(name));
	printf("  options, errors and info of a queue of cells: ok\n");
}

/* ------------------------------------------------------------------ */
/* 2. one process: sizes, counting in cells, reserve/commit, peek, pads */
/* ------------------------------------------------------------------ */

static void test_one_process(void)
{
	const char *name = test_bus_name("oc-one");
	shmbus_bus_t *bus;
	shmbus_queue_t *q, *c, *q1k;
	shmbus_queue_info_t qi;
	shmbus_group_info_t g[2];
	static const size_t lens[] = {0, 64, 65, 200, 8};
	static unsigned char buf[8192], bufs[6][4096], big[64 * CELL];
	static const size_t many[] = {0, 63, 64, 65, 1000, 4096};
	const void *msgs[6];
	void *bptr[6], *ptr;
	size_t mlens[6], caps[6], got, done, len, i;
	uint32_t flags[6], fl;
	uint64_t h, pad;

	OK(shmbus_bus_create(name, NULL, &bus));
	q = open_cells(bus, "q", 64, CELL, 0);          /* a 4 KiB ring, max_msg 4096 */
	c = open_cells(bus, "q", 64, CELL, 0);
	OK(shmbus_queue_join(c, "g", SHMBUS_GROUP_LATEST));

	/* longer than max_msg: SHMBUS_ETOOBIG, for put and reserve */
	put_one(q, 9, 0, 64 * CELL + 1, 0, SHMBUS_ETOOBIG);
	/* "longer ones refused naming both sizes" */
	CHECK(strstr(shmbus_last_error(), "4097") && strstr(shmbus_last_error(), "4096"),
	      "ETOOBIG detail does not name 4097 and 4096: '%s'", shmbus_last_error());
	EXPECT_CODE(shmbus_queue_reserve(q, 64 * CELL + 1, &ptr, 0), SHMBUS_ETOOBIG);
	q1k = open_cells(bus, "q1k", 64, CELL, 1000);
	OK(shmbus_queue_join(q1k, "g", 0));
	put_one(q1k, 9, 1, 1001, 0, SHMBUS_ETOOBIG);
	put_one(q1k, 9, 2, 1000, 0, 0);
	peek_expect(q1k, 9, 2, 1000, 0);
	OK(shmbus_queue_close(q1k));

	/* head, depth, cursor and lag count cells */
	for (i = 0, h = 0; i < 5; i++) {
		put_one(q, 1, (uint32_t)i, lens[i], 0, 0);
		h += cells_of(lens[i], CELL);
	}
	qinfo(q, &qi, g, 2);
	CHECK(qi.head == h && h == 9, "head %llu after 1+1+2+4+1 cells", (unsigned long long)qi.head);
	CHECK(qi.depth == 9 && qi.groups == 1 && g[0].cursor == 0 && g[0].lag == 9,
	      "depth %llu cursor %llu lag %llu", (unsigned long long)qi.depth,
	      (unsigned long long)g[0].cursor, (unsigned long long)g[0].lag);
	peek_expect(c, 1, 0, 0, 0);
	peek_expect(c, 1, 1, 64, 1);
	qinfo(q, &qi, g, 2);
	CHECK(g[0].cursor == 2 && g[0].lag == 7 && qi.depth == 7, "after two: cursor %llu lag %llu "
	      "depth %llu", (unsigned long long)g[0].cursor, (unsigned long long)g[0].lag,
	      (unsigned long long)qi.depth);
	/* a small buffer: ETOOBIG with the length, the message stays */
	EXPECT_CODE(shmbus_queue_get(c, buf, 10, &len, &fl, 0), SHMBUS_ETOOBIG);
	CHECK(len == 65, "ETOOBIG len %zu", len);
	OK(shmbus_queue_get(c, buf, sizeof(buf), &len, &fl, 0));
	msg_fill(1, 2, big, 65);
	CHECK(len == 65 && !memcmp(buf, big, 65) && fl == 0, "65 bytes: len %zu", len);
	qinfo(q, &qi, g, 2);
	CHECK(g[0].cursor == 4 && g[0].lag == 5, "after 65 B: cursor %llu lag %llu",
	      (unsigned long long)g[0].cursor, (unsigned long long)g[0].lag);
	peek_expect(c, 1, 3, 200, 4);
	peek_expect(c, 1, 4, 8, 8);
	qinfo(q, &qi, g, 2);
	CHECK(g[0].cursor == 9 && g[0].lag == 0 && qi.depth == 0, "drained: cursor %llu lag %llu "
	      "depth %llu", (unsigned long long)g[0].cursor, (unsigned long long)g[0].lag,
	      (unsigned long long)qi.depth);
	EXPECT_CODE(shmbus_queue_get(c, buf, sizeof(buf), &len, NULL, 0), SHMBUS_EAGAIN);

	/* reserve(200) takes 4 cells; commit(70) publishes 70 bytes in them */
	OK(shmbus_queue_reserve(q, 200, &ptr, TMO));
	msg_fill(2, 0, ptr, 200);
	EXPECT_CODE(shmbus_queue_put(q, "x", 1, 0), SHMBUS_ESTATE);
	EXPECT_CODE(shmbus_queue_commit(q, 201), SHMBUS_EINVAL);
	OK(shmbus_queue_commit(q, 70));
	EXPECT_CODE(shmbus_queue_commit(q, 0), SHMBUS_ESTATE);
	h += 4;
	qinfo(q, &qi, NULL, 0);
	CHECK(qi.head == h, "head %llu after reserve(200), expected %llu",
	      (unsigned long long)qi.head, (unsigned long long)h);
	peek_expect(c, 2, 0, 70, h - 4);
	/* abort: 5 cells skipped, the next message follows them */
	OK(shmbus_queue_reserve(q, 300, &ptr, TMO));
	OK(shmbus_queue_abort(q));
	EXPECT_CODE(shmbus_queue_abort(q), SHMBUS_ESTATE);
	put_one(q, 2, 1, 5, 0, 0);
	h += 5;
	peek_expect(c, 2, 1, 5, h);
	h += 1;
	EXPECT_CODE(shmbus_queue_release(c), SHMBUS_ESTATE);
	/* reserve(0), commit(0): one cell, an empty message */
	OK(shmbus_queue_reserve(q, 0, &ptr, TMO));
	OK(shmbus_queue_commit(q, 0));
	peek_expect(c, 2, 2, 0, h);
	h += 1;

	/* put_many and get_many with sizes from 0 to max_msg */
	for (i = 0; i < 6; i++) {
		msg_fill(3, (uint32_t)i, bufs[i], many[i]);
		msgs[i] = bufs[i];
		mlens[i] = many[i];
	}
	OK(shmbus_queue_put_many(q, msgs, mlens, 5, TMO, &done));
	CHECK(done == 5, "put_many done %zu", done);
	for (i = 0; i < 5; i++)
		h += cells_of(many[i], CELL);
	qinfo(q, &qi, NULL, 0);
	CHECK(qi.head == h, "head %llu after put_many, expected %llu", (unsigned long long)qi.head,
	      (unsigned long long)h);
	{
		static unsigned char in[6][4096];

		for (i = 0; i < 6; i++) {
			bptr[i] = in[i];
			caps[i] = sizeof(in[i]);
		}
		OK(shmbus_queue_get_many(c, bptr, caps, mlens, flags, 6, 5 * SEC, &got));
		CHECK(got == 5, "get_many got %zu of 5", got);
		for (i = 0; i < 5; i++)
			CHECK(mlens[i] == many[i] && !memcmp(in[i], bufs[i], many[i]) && flags[i] == 0,
			      "get_many message %zu: len %zu, expected %zu", i, mlens[i], many[i]);
	}

	/* the whole ring in one message (max_msg = 64 cells) where a pad is
	 * needed first: "the pad is claimed alone and the message from the
	 * ring's start afterwards"; a try claims the pad and finds no room
	 * ("also on a try that then finds no room"), the consumer passes the
	 * pad, and the next try goes in at the ring's start */
	CHECK(h % 64 != 0, "test setup: head %llu at the ring's start", (unsigned long long)h);
	pad = 64 - h % 64;
	msg_fill(4, 0, big, sizeof(big));
	EXPECT_CODE(shmbus_queue_put(q, big, sizeof(big), 0), SHMBUS_EAGAIN);
	qinfo(q, &qi, NULL, 0);
	CHECK(qi.head == h + pad, "head %llu after the try, expected the pad to %llu",
	      (unsigned long long)qi.head, (unsigned long long)(h + pad));
	EXPECT_CODE(shmbus_queue_get(c, buf, sizeof(buf), &len, NULL, 0), SHMBUS_EAGAIN);
	qinfo(q, &qi, g, 2);
	CHECK(g[0].cursor == h + pad, "cursor %llu did not pass the pad to %llu",
	      (unsigned long long)g[0].cursor, (unsigned long long)(h + pad));
	h += pad;
	OK(shmbus_queue_put(q, big, sizeof(big), 0));
	peek_expect(c, 4, 0, sizeof(big), h);
	h += 64;
	/* a message of 40 cells where 24 remain: pad and message together
	 * fill the ring, both claimed at once */
	put_one(q, 4, 1, 24 * CELL, 0, 0);
	peek_expect(c, 4, 1, 24 * CELL, h);
	h += 24;
	put_one(q, 4, 2, 16 * CELL, 0, 0);       /* the next one starts at 40 */
	peek_expect(c, 4, 2, 16 * CELL, h);
	h += 16;
	CHECK(h % 64 == 40, "setup: at %llu", (unsigned long long)(h % 64));
	put_one(q, 4, 3, 40 * CELL, 0, 0);
	peek_expect(c, 4, 3, 40 * CELL, h + 24);
	h += 64;
	qinfo(q, &qi, g, 2);
	CHECK(qi.head == h && g[0].cursor == h && qi.depth == 0, "after the wraps: head %llu "
	      "cursor %llu depth %llu, expected %llu", (unsigned long long)qi.head,
	      (unsigned long long)g[0].cursor, (unsigned long long)qi.depth, (unsigned long long)h);

	/* full: 60 cells held by the group, a 5-cell message does not fit;
	 * a try gives EAGAIN, a timed call ETIMEDOUT, for put and reserve */
	put_one(q, 4, 7, 24 * CELL, 0, 0);       /* to the ring's end */
	peek_expect(c, 4, 7, 24 * CELL, h);
	h += 24;
	CHECK(h % 64 == 0, "setup: at %llu", (unsigned long long)(h % 64));
	put_one(q, 4, 4, 60 * CELL, 0, 0);
	put_one(q, 4, 5, 5 * CELL, 0, SHMBUS_EAGAIN);
	EXPECT_CODE(shmbus_queue_reserve(q, 5 * CELL, &ptr, 0), SHMBUS_EAGAIN);
	put_one(q, 4, 5, 5 * CELL, SEC / 10, SHMBUS_ETIMEDOUT);
	EXPECT_CODE(shmbus_queue_reserve(q, 5 * CELL, &ptr, SEC / 10), SHMBUS_ETIMEDOUT);
	put_one(q, 4, 6, 4 * CELL, 0, 0);        /* 4 cells still fit */
	peek_expect(c, 4, 4, 60 * CELL, h);
	peek_expect(c, 4, 6, 4 * CELL, h + 60);
	h += 64;
	put_one(q, 4, 5, 5 * CELL, 0, 0);
	peek_expect(c, 4, 5, 5 * CELL, h);

	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(name));
	printf("  one process: sizes, cells counted, reserve/commit/abort, pads, whole ring: ok\n");
}

/* ------------------------------------------------------------------ */
/* 3. a group at EARLIEST starts at the oldest record, never inside one */
/* ------------------------------------------------------------------ */

static void test_earliest(void)
{
	const char *name = test_bus_name("oc-early");
	enum { R = 32, MAXM = 64 };
	shmbus_bus_t *bus;
	shmbus_queue_t *q, *e, *l;
	shmbus_queue_info_t qi;
	shmbus_group_info_t g[2];
	uint64_t start[MAXM], k[MAXM], pos = 0, first = 0;
	size_t len[MAXM];
	int n = 0, i, j, inside = 0;

	OK(shmbus_bus_create(name, NULL, &bus));
	q = open_cells(bus, "q", R, CELL, 0);
	/* no group: the producer never waits and overwrites; records of 1 to
	 * 11 cells, with pads where one would cross the ring's end, until a
	 * lap before the head falls strictly inside a message's record */
	for (;;) {
		uint64_t r = mix64((uint64_t)n * 7919);

		CHECK(n < MAXM, "setup: no record straddles a lap before the head");
		len[n] = (size_t)((r % 11) * CELL + 1 + (r >> 8) % CELL);
		k[n] = cells_of(len[n], CELL);
		if (pos % R + k[n] > R)
			pos += R - pos % R;              /* the pad */
		start[n] = pos;
		pos += k[n];
		put_one(q, 5, (uint32_t)n, len[n], 0, 0);
		n++;
		if (pos < 3 * R)
			continue;
		for (i = 0, inside = 0; i < n; i++)
			if (start[i] < pos - R && pos - R < start[i] + k[i])
				inside = 1;
		if (inside)
			break;
	}
	qinfo(q, &qi, NULL, 0);
	CHECK(qi.head == pos, "head %llu, expected %llu with pads before records crossing the end",
	      (unsigned long long)qi.head, (unsigned long long)pos);
	for (i = 0; i < n && start[i] < pos - R; i++)
		;
	first = (uint64_t)i;
	e = open_cells(bus, "q", R, CELL, 0);
	OK(shmbus_queue_join(e, "early", SHMBUS_GROUP_EARLIEST));
	l = open_cells(bus, "q", R, CELL, 0);
	OK(shmbus_queue_join(l, "late", SHMBUS_GROUP_LATEST));
	qinfo(q, &qi, g, 2);
	for (j = 0; j < 2 && strcmp(g[j].name, "early") != 0; j++)
		;
	CHECK(j < 2 && g[j].cursor >= pos - R && g[j].cursor <= start[first] &&
	      g[j].lag == pos - g[j].cursor, "EARLIEST group: cursor %llu lag %llu, a lap before "
	      "the head is %llu, first whole record at %llu", (unsigned long long)g[j].cursor,
	      (unsigned long long)g[j].lag, (unsigned long long)(pos - R),
	      (unsigned long long)start[first]);
	for (i = (int)first; i < n; i++)
		peek_expect(e, 5, (uint32_t)i, len[i], start[i]);
	{
		shmbus_msg_t m;

		EXPECT_CODE(shmbus_queue_peek(e, &m, 0), SHMBUS_EAGAIN);
		EXPECT_CODE(shmbus_queue_peek(l, &m, 0), SHMBUS_EAGAIN);
	}
	put_one(q, 5, (uint32_t)n, 3 * CELL, 0, 0);
	if (pos % R + 3 > R)
		pos += R - pos % R;
	peek_expect(e, 5, (uint32_t)n, 3 * CELL, pos);
	peek_expect(l, 5, (uint32_t)n, 3 * CELL, pos);

	OK(shmbus_queue_close(l));
	OK(shmbus_queue_close(e));
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(name));
	printf("  EARLIEST: starts at seq %llu, the first record at or past %llu (%d messages, "
	       "%d of them still in the ring): ok\n", (unsigned long long)start[first],
	       (unsigned long long)(pos - R), n, n - (int)first);
}

/* "Starts are recognised ...: a cell whose word is its own seq + 1 starts
 * a record ..., and so does a seq a producer's intent names (a claim not
 * yet published)": a lap before the head is a reservation not committed
 * yet; the group joined at EARLIEST starts there and gets it once it is
 * committed, then the rest */
static void test_earliest_at_claim(void)
{
	const char *name = test_bus_name("oc-early2");
	enum { R = 32 };
	shmbus_bus_t *bus;
	shmbus_queue_t *a, *b, *e;
	shmbus_queue_info_t qi;
	shmbus_group_info_t g[1];
	shmbus_msg_t m;
	void *ptr;
	uint32_t i;

	OK(shmbus_bus_create(name, NULL, &bus));
	a = open_cells(bus, "q", R, CELL, 0);
	b = open_cells(bus, "q", R, CELL, 0);
	for (i = 0; i < 5; i++)                         /* seqs 0..19 */
		put_one(b, 6, i, 4 * CELL, 0, 0);
	OK(shmbus_queue_reserve(a, 4 * CELL, &ptr, 0)); /* seqs 20..23 */
	msg_fill(6, 5, ptr, 4 * CELL);
	for (i = 6; i < 13; i++)                        /* seqs 24..51 */
		put_one(b, 6, i, 4 * CELL, 0, 0);
	qinfo(b, &qi, NULL, 0);
	CHECK(qi.head == 52, "head %llu", (unsigned long long)qi.head);
	e = open_cells(bus, "q", R, CELL, 0);
	OK(shmbus_queue_join(e, "early", SHMBUS_GROUP_EARLIEST));
	qinfo(b, &qi, g, 1);
	CHECK(g[0].cursor == 20, "EARLIEST at an unpublished claim a lap back: cursor %llu, "
	      "expected 20", (unsigned long long)g[0].cursor);
	EXPECT_CODE(shmbus_queue_peek(e, &m, 0), SHMBUS_EAGAIN);
	OK(shmbus_queue_commit(a, 4 * CELL));
	for (i = 5; i < 13; i++)
		peek_expect(e, 6, i, 4 * CELL, 4 * i);
	EXPECT_CODE(shmbus_queue_peek(e, &m, 0), SHMBUS_EAGAIN);
	OK(shmbus_queue_close(e));
	OK(shmbus_queue_close(b));
	OK(shmbus_queue_close(a));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(name));
	printf("  EARLIEST where a lap back is a claim not yet committed: starts there: ok\n");
}

/* 8-byte cells (the smallest), slots rounded up to a power of two, the
 * default ring */
static void test_small_cells(void)
{
	const char *name = test_bus_name("oc-c8");
	shmbus_bus_t *bus;
	shmbus_queue_t *q, *c, *d;
	shmbus_queue_info_t qi;
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)};
	uint64_t h = 0;
	uint32_t i;

	OK(shmbus_bus_create(name, NULL, &bus));
	/* "Ring slots, rounded up to a power of two" */
	q = open_cells(bus, "q", 100, 8, 0);
	qinfo(q, &qi, NULL, 0);
	CHECK(qi.slots == 128 && qi.cell_bytes == 8 && qi.max_msg == 128 * 8,
	      "100 slots of 8 B: slots %u max_msg %llu", qi.slots, (unsigned long long)qi.max_msg);
	c = open_cells(bus, "q", 0, 8, 0);
	OK(shmbus_queue_join(c, "g", 0));
	for (i = 0; i < 400; i++) {
		size_t len = (size_t)(mix64(i) % 120);

		if (i % 50 == 49)
			len = 1024;             /* the whole ring */
		if (h % 128 + cells_of(len, 8) > 128) {
			uint64_t pad = 128 - h % 128;

			if (pad + cells_of(len, 8) > 128) {
				/* the pad alone; the consumer passes it */
				shmbus_msg_t m;

				put_one(q, 7, i, len, 0, SHMBUS_EAGAIN);
				EXPECT_CODE(shmbus_queue_peek(c, &m, 0), SHMBUS_EAGAIN);
			}
			h += pad;
		}
		put_one(q, 7, i, len, 0, 0);
		peek_expect(c, 7, i, len, h);
		h += cells_of(len, 8);
	}
	qinfo(q, &qi, NULL, 0);
	CHECK(qi.head == h, "head %llu, expected %llu", (unsigned long long)qi.head,
	      (unsigned long long)h);
	/* the default ring follows the bus (1024 when it fits) */
	d = open_cells(bus, "d", 0, 8, 0);
	OK(shmbus_channel_info(bus, "d", &ci));
	qinfo(d, &qi, NULL, 0);
	CHECK(qi.slots > 0 && (qi.slots & (qi.slots - 1)) == 0 && ci.capacity == qi.slots &&
	      qi.max_msg == (uint64_t)qi.slots * 8, "default ring: %u cells, capacity %llu, "
	      "max_msg %llu", qi.slots, (unsigned long long)ci.capacity,
	      (unsigned long long)qi.max_msg);
	OK(shmbus_queue_close(d));
	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(name));
	printf("  8-byte cells: 400 messages of 0..1024 bytes with pads, slots rounded: ok\n");
}

/* "a hold on a record's first seq protects all its cells": a work member
 * holds a message of 10 cells while the other member takes what follows
 * and a producer fills the ring; the held bytes stay as they were, and the
 * producer waits for the release */
static void test_hold_protects(void)
{
	const char *name = test_bus_name("oc-hold");
	shmbus_bus_t *bus;
	shmbus_queue_t *q, *a, *b;
	shmbus_msg_t m;
	unsigned char want[10 * CELL], buf[CELL];
	size_t len;
	uint32_t i;

	OK(shmbus_bus_create(name, NULL, &bus));
	q = open_cells(bus, "q", 64, CELL, 0);
	a = open_cells(bus, "q", 64, CELL, 0);
	b = open_cells(bus, "q", 64, CELL, 0);
	OK(shmbus_queue_join(a, "w", 0));
	OK(shmbus_queue_join(b, "w", 0));
	put_one(q, 8, 0, 10 * CELL, 0, 0);      /* seqs 0..9 */
	for (i = 1; i <= 3; i++)
		put_one(q, 8, i, CELL, 0, 0);    /* 10, 11, 12 */
	OK(shmbus_queue_peek(a, &m, 5 * SEC));
	CHECK(m.seq == 0 && m.len == 10 * CELL, "a: seq %llu len %zu", (unsigned long long)m.seq, m.len);
	for (i = 1; i <= 3; i++) {
		OK(shmbus_queue_get(b, buf, sizeof(buf), &len, NULL, 5 * SEC));
		CHECK(len == CELL && buf[0] == 8 && buf[1] == i, "b: message %u", i);
	}
	for (i = 4; i < 4 + 51; i++)            /* 13..63: the rest of the ring */
		put_one(q, 8, i, CELL - 8, 0, 0);
	put_one(q, 8, 99, 1, 0, SHMBUS_EAGAIN);  /* seq 64 is the held cell 0 */
	put_one(q, 8, 99, 1, SEC / 5, SHMBUS_ETIMEDOUT);
	msg_fill(8, 0, want, sizeof(want));
	CHECK(!memcmp(m.data, want, sizeof(want)), "the held message changed under its hold");
	OK(shmbus_queue_release(a));
	put_one(q, 8, 99, 1, 0, 0);
	OK(shmbus_queue_close(b));
	OK(shmbus_queue_close(a));
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(name));
	printf("  a held record of 10 cells stays intact while the ring fills: ok\n");
}

/* "A dead producer's ... A producer blocked by a group for the liveness
 * timeout, and shmbus_bus_gc, pass a dead claim at a group's cursor by the
 * same rule (a DURABLE group with no live member has nobody else to do
 * it) ... The group's cursor stays where it was; its next member passes
 * the SKIP at once." The member joins with a liveness timeout of 60 s: it
 * cannot have passed the claim itself within the 10 s it waits. */
static void test_dead_claim_durable(int by_gc)
{
	const char *name = test_bus_name(by_gc ? "oc-dgc" : "oc-dprod");
	shmbus_bus_t *bus;
	shmbus_queue_t *q, *j;
	shmbus_queue_info_t qi;
	shmbus_group_info_t g[1];
	uint32_t reaped = 0, i;
	uint64_t t;
	pid_t p;
	int pfd[2];

	OK(shmbus_bus_create(name, NULL, &bus));
	q = open_cells(bus, "q", 64, CELL, 0);
	/* a DURABLE group whose only member waits on it for longer than the
	 * liveness timeout (so the group's checks were just run: the next
	 * member, with a liveness timeout of 60 s, does not run them again
	 * for a minute), then leaves */
	{
		shmbus_msg_t m;

		j = open_cells(bus, "q", 64, CELL, 0);
		OK(shmbus_queue_join(j, "d", SHMBUS_GROUP_DURABLE));
		EXPECT_CODE(shmbus_queue_peek(j, &m, SEC / 2), SHMBUS_ETIMEDOUT);
		OK(shmbus_queue_close(j));
	}
	/* a producer dies between reserve and commit at the group's cursor */
	CHECK(pipe(pfd) == 0, "pipe");
	p = fork();
	CHECK(p >= 0, "fork");
	if (p == 0) {
		shmbus_bus_t *cb;
		shmbus_queue_t *cq;
		void *ptr;

		close(pfd[0]);
		if (shmbus_bus_open(name, NULL, &cb) || shmbus_queue_open(cb, "q", NULL, &cq) ||
		    shmbus_queue_reserve(cq, 5 * CELL, &ptr, TMO))
			_exit(1);
		test_say(pfd[1], 'R');
		for (;;)
			pause();
	}
	close(pfd[1]);
	CHECK(test_hear(pfd[0]) == 'R', "the victim failed before its reservation");
	close(pfd[0]);
	CHECK(kill(p, SIGKILL) == 0 && waitpid(p, NULL, 0) == p, "kill");
	/* messages behind the dead claim: 5..8, 9..10, then to the ring's end */
	put_one(q, 10, 0, 4 * CELL, 0, 0);
	put_one(q, 10, 1, 2 * CELL, 0, 0);
	for (i = 2; i < 2 + 53; i++)
		put_one(q, 10, i, 1, 0, 0);      /* 11..63 */
	if (by_gc)
		OK(shmbus_bus_gc(bus, &reaped));
	else    /* blocked by the group for more than the liveness timeout */
		put_one(q, 10, 99, 1, 2 * SEC, SHMBUS_ETIMEDOUT);
	qinfo(q, &qi, g, 1);
	CHECK(g[0].cursor == 0, "the group's cursor moved to %llu", (unsigned long long)g[0].cursor);
	OK(shmbus_bus_set_liveness(bus, 60 * SEC));
	j = open_cells(bus, "q", 64, CELL, 0);
	OK(shmbus_queue_join(j, "d", 0));
	t = test_now_ns();
	peek_expect(j, 10, 0, 4 * CELL, 5);
	CHECK(test_now_ns() - t < 30 * (uint64_t)SEC, "the member waited %.1f s at the dead claim",
	      (test_now_ns() - t) / 1e9);
	peek_expect(j, 10, 1, 2 * CELL, 9);
	for (i = 2; i < 2 + 53; i++)
		peek_expect(j, 10, i, 1, 9 + i);
	OK(shmbus_queue_close(j));
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(name));
	printf("  a dead claim at a DURABLE group's cursor with no member, passed by %s: ok "
	       "(%.3f s)\n", by_gc ? "shmbus_bus_gc" : "a blocked producer", (test_now_ns() - t) / 1e9);
}

/* A detached group: "A producer blocked by a detached group raises its
 * floor ... to the first record start at or past that ... A member that
 * rejoins gets SHMBUS_ELAPPED once, then whole records." */
static void test_detached(void)
{
	const char *name = test_bus_name("oc-det");
	shmbus_bus_t *bus;
	shmbus_queue_t *q, *j;
	shmbus_msg_t m;
	unsigned char want[1 << 12];
	uint32_t i, n = 0, last = 0, got = 0;
	pid_t p;
	int status, r;

	OK(shmbus_bus_create(name, NULL, &bus));
	q = open_cells(bus, "q", 64, CELL, 0);
	p = fork();
	CHECK(p >= 0, "fork");
	if (p == 0) {   /* a broadcast group whose member leaves */
		shmbus_bus_t *cb;
		shmbus_queue_t *cq;

		if (shmbus_bus_open(name, NULL, &cb) || shmbus_queue_open(cb, "q", NULL, &cq) ||
		    shmbus_queue_join(cq, "gone", 0))
			_exit(1);
		shmbus_queue_close(cq);
		shmbus_bus_close(cb);
		_exit(0);
	}
	CHECK(waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "member child failed");
	/* records of 1 to 9 cells, 6 laps: the group stops gating after the
	 * liveness timeout (each put may wait 30 s, far more than needed) */
	for (n = 0; n < 120; n++) {
		size_t len = (size_t)(mix64(n + 77) % (9 * CELL)) + 1;

		put_one(q, 11, n, len, 30 * SEC, 0);
	}
	j = open_cells(bus, "q", 64, CELL, 0);
	OK(shmbus_queue_join(j, "gone", 0));
	r = shmbus_queue_peek(j, &m, 5 * SEC);
	CHECK(r == SHMBUS_ELAPPED, "the rejoined member's first peek: %s, expected SHMBUS_ELAPPED",
	      shmbus_errname(r));
	for (;;) {
		r = shmbus_queue_peek(j, &m, 0);
		if (r == SHMBUS_EAGAIN)
			break;
		CHECK(r == 0, "after ELAPPED: %s (%s)", shmbus_errname(r), shmbus_last_error());
		CHECK(m.len >= 5 && ((const unsigned char *)m.data)[0] == 11, "not a whole record: "
		      "len %zu at seq %llu", m.len, (unsigned long long)m.seq);
		memcpy(&i, (const unsigned char *)m.data + 1, 4);
		CHECK(i < n && (got == 0 || i == last + 1), "message %u after %u", i, last);
		CHECK(m.len == (size_t)(mix64(i + 77) % (9 * CELL)) + 1, "message %u: len %zu", i, m.len);
		msg_fill(11, i, want, m.len);
		CHECK(!memcmp(m.data, want, m.len), "message %u: bytes differ", i);
		last = i;
		got++;
		OK(shmbus_queue_release(j));
	}
	CHECK(got > 0 && last == n - 1, "after ELAPPED: %u messages, the last %u of %u", got, last, n);
	OK(shmbus_queue_close(j));
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(name));
	printf("  a detached group: ELAPPED once, then %u whole records up to the last: ok\n", got);
}

/* get_many with a buffer too small for the second message: "only when no
 * message was taken (after one, the call returns 0 and the next call
 * reports the error)", and the message "stays queued for a larger buffer" */
static void test_small_buffers(void)
{
	const char *name = test_bus_name("oc-small");
	shmbus_bus_t *bus;
	shmbus_queue_t *q, *c;
	unsigned char b0[64], b1[64], big[1024], want[1024];
	void *bufs[2] = {b0, b1};
	size_t caps[2] = {sizeof(b0), sizeof(b1)}, lens[2] = {0, 0}, got = 0, len;

	OK(shmbus_bus_create(name, NULL, &bus));
	q = open_cells(bus, "q", 64, CELL, 0);
	c = open_cells(bus, "q", 64, CELL, 0);
	OK(shmbus_queue_join(c, "g", 0));
	put_one(q, 12, 0, 10, 0, 0);
	put_one(q, 12, 1, 500, 0, 0);
	put_one(q, 12, 2, 20, 0, 0);
	OK(shmbus_queue_get_many(c, bufs, caps, lens, NULL, 2, 5 * SEC, &got));
	msg_fill(12, 0, want, 10);
	CHECK(got == 1 && lens[0] == 10 && !memcmp(b0, want, 10), "get_many: got %zu", got);
	EXPECT_CODE(shmbus_queue_get_many(c, bufs, caps, lens, NULL, 2, 5 * SEC, &got), SHMBUS_ETOOBIG);
	CHECK(got == 0, "get_many ETOOBIG: got %zu", got);
	OK(shmbus_queue_get(c, big, sizeof(big), &len, NULL, 5 * SEC));
	msg_fill(12, 1, want, 500);
	CHECK(len == 500 && !memcmp(big, want, 500), "after ETOOBIG: len %zu", len);
	peek_expect(c, 12, 2, 20, 1 + 8);
	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(name));
	printf("  get_many with a small buffer: what fits, then ETOOBIG, the message kept: ok\n");
}

/* A work member that closes, or is killed, while it holds a record of
 * several cells (peek): "it is delivered again, flagged", whole. */
static void test_redelivery(void)
{
	const char *name = test_bus_name("oc-redeliver");
	shmbus_bus_t *bus;
	shmbus_queue_t *q, *a, *b;
	shmbus_msg_t m;
	unsigned char want[20 * CELL];
	int pfd[2];
	pid_t p;

	OK(shmbus_bus_create(name, NULL, &bus));
	q = open_cells(bus, "q", 64, CELL, 0);
	b = open_cells(bus, "q", 64, CELL, 0);
	OK(shmbus_queue_join(b, "w", 0));
	put_one(q, 13, 0, 20 * CELL - 3, 0, 0); /* seqs 0..19 */
	put_one(q, 13, 1, 7 * CELL, 0, 0);      /* 20..26 */
	put_one(q, 13, 2, 3, 0, 0);             /* 27 */

	/* closed while holding */
	a = open_cells(bus, "q", 64, CELL, 0);
	OK(shmbus_queue_join(a, "w", 0));
	OK(shmbus_queue_peek(a, &m, 5 * SEC));
	CHECK(m.seq == 0, "a: seq %llu", (unsigned long long)m.seq);
	OK(shmbus_queue_close(a));
	OK(shmbus_queue_peek(b, &m, 5 * SEC));
	msg_fill(13, 0, want, 20 * CELL - 3);
	CHECK(m.seq == 0 && m.len == 20 * CELL - 3 && (m.flags & SHMBUS_MSG_REDELIVERED) &&
	      !memcmp(m.data, want, m.len), "after a close while holding: seq %llu len %zu flags 0x%x",
	      (unsigned long long)m.seq, m.len, m.flags);
	OK(shmbus_queue_release(b));

	/* killed while holding */
	CHECK(pipe(pfd) == 0, "pipe");
	p = fork();
	CHECK(p >= 0, "fork");
	if (p == 0) {
		shmbus_bus_t *cb;
		shmbus_queue_t *cq;
		shmbus_msg_t cm;

		close(pfd[0]);
		if (shmbus_bus_open(name, NULL, &cb) || shmbus_queue_open(cb, "q", NULL, &cq) ||
		    shmbus_queue_join(cq, "w", 0) || shmbus_queue_peek(cq, &cm, TMO) || cm.seq != 20)
			_exit(1);
		test_say(pfd[1], 'P');
		for (;;)
			pause();
	}
	close(pfd[1]);
	CHECK(test_hear(pfd[0]) == 'P', "the member child failed before its peek");
	close(pfd[0]);
	CHECK(kill(p, SIGKILL) == 0 && waitpid(p, NULL, 0) == p, "kill");
	/* the next message comes first or after; the held one comes flagged
	 * (within a liveness timeout: 30 s allowed) */
	{
		int seen20 = 0, seen27 = 0, k;

		for (k = 0; k < 2; k++) {
			OK(shmbus_queue_peek(b, &m, 30 * SEC));
			if (m.seq == 20) {
				msg_fill(13, 1, want, 7 * CELL);
				CHECK(m.len == 7 * CELL && (m.flags & SHMBUS_MSG_REDELIVERED) &&
				      !memcmp(m.data, want, m.len), "redelivered after a kill: len %zu "
				      "flags 0x%x", m.len, m.flags);
				seen20 = 1;
			} else {
				CHECK(m.seq == 27 && m.len == 3 && !(m.flags & SHMBUS_MSG_REDELIVERED),
				      "seq %llu len %zu flags 0x%x", (unsigned long long)m.seq, m.len, m.flags);
				seen27 = 1;
			}
			OK(shmbus_queue_release(b));
		}
		CHECK(seen20 && seen27, "seen 20: %d, 27: %d", seen20, seen27);
		EXPECT_CODE(shmbus_queue_peek(b, &m, 0), SHMBUS_EAGAIN);
	}
	OK(shmbus_queue_close(b));
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(name));
	printf("  a work member closed or killed holding a record of cells: redelivered whole, "
	       "flagged: ok\n");
}

/* ------------------------------------------------------------------ */
/* 4. end of stream                                                     */
/* ------------------------------------------------------------------ */

static void test_shut(void)
{
	const char *name = test_bus_name("oc-shut");
	shmbus_bus_t *bus;
	shmbus_queue_t *q, *c, *late, *q2;
	shmbus_queue_info_t qi;
	shmbus_msg_t m;
	void *ptr;
	uint64_t s = 0, seqs[8];
	static const size_t lens[] = {0, 1, 130, 700, 64};
	unsigned char buf[16];
	size_t len;
	int i;

	OK(shmbus_bus_create(name, NULL, &bus));
	q = open_cells(bus, "q", 64, CELL, 0);
	c = open_cells(bus, "q", 64, CELL, 0);
	OK(shmbus_queue_join(c, "g", 0));
	for (i = 0; i < 5; i++) {
		put_one(q, 0, (uint32_t)i, lens[i], 0, 0);
		seqs[i] = s;
		s += cells_of(lens[i], CELL);
	}
	/* a reservation made before the shut still commits */
	OK(shmbus_queue_reserve(q, 500, &ptr, TMO));
	msg_fill(0, 5, ptr, 500);
	seqs[5] = s;
	s += cells_of(500, CELL);
	OK(shmbus_queue_shut(q));
	CHECK(shmbus_queue_is_shut(c), "is_shut false after shut");
	q2 = open_cells(bus, "q", 64, CELL, 0);
	put_one(q2, 0, 6, 10, 0, SHMBUS_ECLOSED);
	EXPECT_CODE(shmbus_queue_reserve(q2, 10, &ptr, 0), SHMBUS_ECLOSED);
	OK(shmbus_queue_close(q2));
	OK(shmbus_queue_commit(q, 400));
	for (i = 0; i < 5; i++)
		peek_expect(c, 0, (uint32_t)i, lens[i], seqs[i]);
	/* the committed reservation: 400 bytes of what was written */
	OK(shmbus_queue_peek(c, &m, 5 * SEC));
	{
		unsigned char want[500];

		msg_fill(0, 5, want, 500);
		CHECK(m.len == 400 && m.seq == seqs[5] && !memcmp(m.data, want, 400),
		      "reserved before shut: len %zu seq %llu", m.len, (unsigned long long)m.seq);
	}
	OK(shmbus_queue_release(c));
	EXPECT_CODE(shmbus_queue_get(c, buf, sizeof(buf), &len, NULL, 5 * SEC), SHMBUS_ECLOSED);
	EXPECT_CODE(shmbus_queue_peek(c, &m, 0), SHMBUS_ECLOSED);
	/* "A group created after the shut with SHMBUS_GROUP_EARLIEST drains
	 * what the ring still holds" */
	late = open_cells(bus, "q", 64, CELL, 0);
	OK(shmbus_queue_join(late, "late", SHMBUS_GROUP_EARLIEST));
	for (i = 0; i < 5; i++)
		peek_expect(late, 0, (uint32_t)i, lens[i], seqs[i]);
	OK(shmbus_queue_peek(late, &m, 5 * SEC));
	CHECK(m.len == 400 && m.seq == seqs[5], "late group: len %zu", m.len);
	OK(shmbus_queue_release(late));
	EXPECT_CODE(shmbus_queue_peek(late, &m, 5 * SEC), SHMBUS_ECLOSED);
	qinfo(q, &qi, NULL, 0);
	CHECK(qi.shut && qi.depth == 0, "info after: shut %d depth %llu", qi.shut,
	      (unsigned long long)qi.depth);
	OK(shmbus_queue_close(late));
	OK(shmbus_queue_close(c));
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(name));
	printf("  end of stream: drained, a reservation before the shut commits, a late "
	       "EARLIEST group drains: ok\n");
}

/* ------------------------------------------------------------------ */
/* 5. processes: 3 producers (+ a victim) x 2 broadcast groups + a work */
/*    group of two                                                      */
/* ------------------------------------------------------------------ */

enum { NCONS = 4 };
#define RING_BYTES 16384u     /* the multi-process rings: 256 cells of 64 B, 2048 of 8 B */
enum { C_GET, C_PEEK };

struct logent {
	uint64_t seq;           /* UINT64_MAX: not known (a copying get) */
	uint32_t len;
	uint32_t hash;
};

struct shared {
	atomic_int failed;
	char why[512];
	atomic_int ready;
	uint32_t n;             /* messages per producer */
	uint32_t nvictim;       /* committed messages of the victim */
	size_t max_msg;
	uint64_t cell;           /* bytes per cell of this run */
	uint64_t count[NCONS];
	uint64_t t_first_other[NCONS];  /* first message of producers 0..2 */
	uint64_t seq_first_other[NCONS];
	uint64_t maxlog;
	struct logent log[];    /* NCONS x maxlog */
};

static struct shared *sh;
static const char *const cons_group[NCONS] = {"b1", "b2", "w", "w"};

#define CFAIL(...) test_fail_shared(&sh->failed, sh->why, sizeof(sh->why), __VA_ARGS__)

static shmbus_queue_t *child_queue(const char *busname, shmbus_bus_t **bus)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q;
	int r;

	if ((r = shmbus_bus_open(busname, NULL, bus)) != 0)
		CFAIL("child %d: bus_open: %s", (int)getpid(), shmbus_last_error());
	shmbus_queue_opts_init(&o);
	o.create = 0;
	o.cell_bytes = sh->cell;
	if ((r = shmbus_queue_open(*bus, "q", &o, &q)) != 0)
		CFAIL("child %d: queue_open: %s", (int)getpid(), shmbus_last_error());
	return q;
}

/* check one delivered message against the one expected next from its
 * producer (the whole stream for a broadcast member, a subsequence for a
 * work member) */
static void consume_one(int ci, const unsigned char *data, size_t len, uint64_t seq,
                        uint32_t flags, uint32_t next[], unsigned char *want)
{
	unsigned p = len == 0 ? 0 : data[0];
	uint32_t i, limit;
	struct logent *le;

	if (flags != 0)
		CFAIL("consumer %d: flags 0x%x", ci, flags);
	if (p > VICTIM)
		CFAIL("consumer %d: message of %zu bytes from producer %u", ci, len, p);
	limit = p == VICTIM ? sh->nvictim : sh->n;
	i = next[p];
	if (ci >= 2) {
		/* a work member: the next of this producer it gets is at or
		 * after its last one; find it by its index bytes when it has
		 * them (a short one: the next of this length) */
		if (len >= 5)
			memcpy(&i, data + 1, 4);
		else
			for (; i < limit; i++) {
				if (msg_len(p, i, sh->n, sh->max_msg) != len)
					continue;
				msg_fill(p, i, want, len);
				if (!len || !memcmp(data, want, len))
					break;
			}
		if (i < next[p])
			CFAIL("consumer %d: producer %u message %u after %u", ci, p, i, next[p]);
	}
	if (i >= limit)
		CFAIL("consumer %d: producer %u message %u of %u (len %zu)", ci, p, i, limit, len);
	if (msg_len(p, i, sh->n, sh->max_msg) != len)
		CFAIL("consumer %d: producer %u message %u: len %zu, expected %zu (seq %llu)", ci, p,
		      i, len, msg_len(p, i, sh->n, sh->max_msg), (unsigned long long)seq);
	msg_fill(p, i, want, len);
	if (len && memcmp(data, want, len) != 0)
		CFAIL("consumer %d: producer %u message %u (%zu bytes): bytes differ", ci, p, i, len);
	next[p] = i + 1;
	if (p != VICTIM && sh->t_first_other[ci] == 0) {
		sh->t_first_other[ci] = test_now_ns();
		sh->seq_first_other[ci] = seq;
	}
	if (sh->count[ci] >= sh->maxlog)
		CFAIL("consumer %d: more than %llu messages", ci, (unsigned long long)sh->maxlog);
	le = &sh->log[(uint64_t)ci * sh->maxlog + sh->count[ci]++];
	le->seq = seq;
	le->len = (uint32_t)len;
	le->hash = (uint32_t)test_hash(data, len);
}

static void consumer(const char *busname, int ci, int how)
{
	shmbus_bus_t *bus;
	shmbus_queue_t *q = child_queue(busname, &bus);
	uint32_t next[VICTIM + 1] = {0};
	unsigned char *want = malloc(sh->max_msg + 1), *bufs[8];
	size_t caps[8], lens[8], got, len, k;
	uint32_t flags[8], fl;
	int r, round = 0;

	if (!want)
		CFAIL("malloc");
	for (k = 0; k < 8; k++) {
		bufs[k] = malloc(sh->max_msg);
		caps[k] = sh->max_msg;
		if (!bufs[k])
			CFAIL("malloc");
	}
	if ((r = shmbus_queue_join(q, cons_group[ci], 0)) != 0)
		CFAIL("consumer %d: join: %s", ci, shmbus_last_error());
	atomic_fetch_add(&sh->ready, 1);
	for (;; round++) {
		if (how == C_PEEK) {
			shmbus_msg_t m;

			r = shmbus_queue_peek(q, &m, TMO);
			if (r == SHMBUS_ECLOSED)
				break;
			if (r != 0)
				CFAIL("consumer %d: peek: %s (%s)", ci, shmbus_errname(r), shmbus_last_error());
			consume_one(ci, m.data, m.len, m.seq, m.flags, next, want);
			if ((r = shmbus_queue_release(q)) != 0)
				CFAIL("consumer %d: release: %s", ci, shmbus_errname(r));
		} else if (round & 1) {
			r = shmbus_queue_get_many(q, (void *const *)bufs, caps, lens, flags, 8, TMO, &got);
			if (r == SHMBUS_ECLOSED)
				break;
			if (r != 0 || got == 0 || got > 8)
				CFAIL("consumer %d: get_many: %s, got %zu (%s)", ci, shmbus_errname(r), got,
				      shmbus_last_error());
			for (k = 0; k < got; k++)
				consume_one(ci, bufs[k], lens[k], UINT64_MAX, flags[k], next, want);
		} else {
			r = shmbus_queue_get(q, bufs[0], caps[0], &len, &fl, TMO);
			if (r == SHMBUS_ECLOSED)
				break;
			if (r != 0)
				CFAIL("consumer %d: get: %s (%s)", ci, shmbus_errname(r), shmbus_last_error());
			consume_one(ci, bufs[0], len, UINT64_MAX, fl, next, want);
		}
	}
	/* a broadcast member got every message of every producer by the end */
	if (ci < 2)
		for (k = 0; k <= VICTIM; k++)
			if (next[k] != (k == VICTIM ? sh->nvictim : sh->n))
				CFAIL("consumer %d (group %s): end of stream after %u of producer %zu's "
				      "messages", ci, cons_group[ci], next[k], k);
	_exit(0);
}

static void producer(const char *busname, unsigned p)
{
	shmbus_bus_t *bus;
	shmbus_queue_t *q = child_queue(busname, &bus);
	unsigned char *b[4];
	const void *msgs[4];
	size_t lens[4], done, k, extra;
	uint32_t i, nb;
	void *ptr;
	int r;

	for (k = 0; k < 4; k++)
		if (!(b[k] = malloc(sh->max_msg)))
			CFAIL("malloc");
	for (i = 0; i < sh->n; i += nb) {
		size_t len = msg_len(p, i, sh->n, sh->max_msg);

		nb = 1;
		switch (mix64(i ^ (uint64_t)p << 40) % 6) {
		case 0:         /* reserve more than it commits */
			extra = (mix64(i) % 200);
			if (len + extra > sh->max_msg)
				extra = sh->max_msg - len;
			if ((r = shmbus_queue_reserve(q, len + extra, &ptr, TMO)) != 0)
				CFAIL("producer %u: reserve(%zu): %s (%s)", p, len + extra,
				      shmbus_errname(r), shmbus_last_error());
			memset(ptr, 0xee, len + extra);
			msg_fill(p, i, ptr, len);
			if ((r = shmbus_queue_commit(q, len)) != 0)
				CFAIL("producer %u: commit: %s", p, shmbus_errname(r));
			break;
		case 1:         /* a batch of up to 4 */
			done = 0;
			for (nb = 0; nb < 4 && i + nb < sh->n; nb++) {
				lens[nb] = msg_len(p, i + nb, sh->n, sh->max_msg);
				msg_fill(p, i + nb, b[nb], lens[nb]);
				msgs[nb] = b[nb];
			}
			if ((r = shmbus_queue_put_many(q, msgs, lens, nb, TMO, &done)) != 0 || done != nb)
				CFAIL("producer %u: put_many: %s, %zu of %u (%s)", p, shmbus_errname(r),
				      done, nb, shmbus_last_error());
			break;
		default:
			msg_fill(p, i, b[0], len);
			if ((r = shmbus_queue_put(q, b[0], len, TMO)) != 0)
				CFAIL("producer %u: put(%zu): %s (%s)", p, len, shmbus_errname(r),
				      shmbus_last_error());
		}
	}
	_exit(0);
}

/* commits its messages, reserves, tells the parent, and waits to be killed */
static void victim(const char *busname, int fd)
{
	shmbus_bus_t *bus;
	shmbus_queue_t *q = child_queue(busname, &bus);
	unsigned char b[4096];
	void *ptr;
	uint32_t i;
	int r;

	for (i = 0; i < sh->nvictim; i++) {
		msg_fill(VICTIM, i, b, victim_lens[i]);
		if ((r = shmbus_queue_put(q, b, victim_lens[i], TMO)) != 0)
			CFAIL("victim: put: %s", shmbus_errname(r));
	}
	if ((r = shmbus_queue_reserve(q, VICTIM_RESERVE, &ptr, TMO)) != 0)
		CFAIL("victim: reserve: %s", shmbus_errname(r));
	memset(ptr, 0x77, VICTIM_RESERVE);
	test_say(fd, 'R');
	for (;;)
		pause();
}

static pid_t spawn(void (*fn)(const char *, int, int), const char *busname, int a, int b)
{
	pid_t p = fork();

	CHECK(p >= 0, "fork");
	if (p == 0)
		fn(busname, a, b);
	return p;
}

static void run_consumer(const char *busname, int ci, int how) { consumer(busname, ci, how); }
static void run_producer(const char *busname, int p, int unused) { (void)unused; producer(busname, (unsigned)p); }

static void wait_exit(pid_t pid, const char *what, uint64_t deadline)
{
	int status;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		CHECK(r == 0, "waitpid %s", what);
		if (test_now_ns() > deadline)
			FAIL("%s (pid %d) still running after the deadline; %s", what, (int)pid,
			     atomic_load(&sh->failed) ? sh->why : "no failure recorded");
		usleep(10000);
	}
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s (pid %d) failed (status 0x%x): %s",
	      what, (int)pid, status, atomic_load(&sh->failed) ? sh->why : "no reason recorded");
}

static void run_procs(int with_victim, uint64_t cell)
{
	const char *name = test_bus_name(with_victim ? "oc-kill" : "oc-mp");
	uint32_t ring = (uint32_t)(RING_BYTES / cell);
	uint32_t n = (uint32_t)(6000 * test_scale());
	shmbus_bus_t *bus;
	shmbus_queue_t *q;
	shmbus_queue_info_t qi;
	shmbus_group_info_t g[4];
	pid_t cons[NCONS], prod[NPROD], vic = 0;
	uint64_t t0 = test_now_ns(), t_kill = 0, total, maxlog, deadline, k, a, b, end_victim = 0;
	size_t shsize;
	struct logent *L[NCONS];
	int i, pfd[2];
	char buf[64];

	if (n < 300)
		n = 300;
	if (n > 20000)
		n = 20000;
	total = (uint64_t)n * NPROD + (with_victim ? NVICTIM : 0);
	maxlog = total + 16;
	shsize = sizeof(struct shared) + NCONS * maxlog * sizeof(struct logent);
	sh = mmap(NULL, shsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap");
	sh->n = n;
	sh->nvictim = with_victim ? NVICTIM : 0;
	sh->maxlog = maxlog;
	sh->cell = cell;

	OK(shmbus_bus_create(name, NULL, &bus));
	q = open_cells(bus, "q", ring, cell, 0);
	qinfo(q, &qi, NULL, 0);
	CHECK(qi.max_msg == RING_BYTES && qi.slots == ring && qi.cell_bytes == cell, "max_msg %llu", (unsigned long long)qi.max_msg);
	sh->max_msg = (size_t)qi.max_msg;

	cons[0] = spawn(run_consumer, name, 0, C_GET);
	cons[1] = spawn(run_consumer, name, 1, C_PEEK);
	cons[2] = spawn(run_consumer, name, 2, C_PEEK);
	cons[3] = spawn(run_consumer, name, 3, C_PEEK);
	deadline = test_now_ns() + 60 * SEC;
	while (atomic_load(&sh->ready) < NCONS) {
		CHECK(!atomic_load(&sh->failed), "consumer failed: %s", sh->why);
		CHECK(test_now_ns() < deadline, "consumers did not join within 60 s");
		usleep(1000);
	}
	OK(shmbus_queue_wait_groups(q, 3, TMO));

	if (with_victim) {
		CHECK(pipe(pfd) == 0, "pipe");
		vic = fork();
		CHECK(vic >= 0, "fork");
		if (vic == 0) {
			close(pfd[0]);
			victim(name, pfd[1]);
		}
		close(pfd[1]);
		CHECK(test_hear(pfd[0]) == 'R', "the victim died before its reservation: %s",
		      atomic_load(&sh->failed) ? sh->why : "?");
		close(pfd[0]);
		/* it is between reserve and commit now, and stays there */
		CHECK(kill(vic, SIGKILL) == 0, "kill");
		CHECK(waitpid(vic, NULL, 0) == vic, "waitpid victim");
		t_kill = test_now_ns();
		for (k = 0; k < NVICTIM; k++)
			end_victim += cells_of(victim_lens[k], cell);
		qinfo(q, &qi, NULL, 0);
		CHECK(qi.head == end_victim + cells_of(VICTIM_RESERVE, cell),
		      "head %llu after the victim, expected %llu", (unsigned long long)qi.head,
		      (unsigned long long)(end_victim + cells_of(VICTIM_RESERVE, cell)));
	}
	for (i = 0; i < NPROD; i++)
		prod[i] = spawn(run_producer, name, i, 0);
	deadline = test_now_ns() + 300 * SEC;
	for (i = 0; i < NPROD; i++) {
		snprintf(buf, sizeof(buf), "producer %d", i);
		wait_exit(prod[i], buf, deadline);
	}
	OK(shmbus_queue_shut(q));
	for (i = 0; i < NCONS; i++) {
		snprintf(buf, sizeof(buf), "consumer %d (%s)", i, cons_group[i]);
		wait_exit(cons[i], buf, deadline);
	}

	/* both broadcast groups: every message (checked by each), the same
	 * stream; the work group's two members: exactly that stream between
	 * them, each in order */
	for (i = 0; i < NCONS; i++)
		L[i] = &sh->log[(uint64_t)i * maxlog];
	CHECK(sh->count[0] == total && sh->count[1] == total, "broadcast groups got %llu and %llu "
	      "of %llu", (unsigned long long)sh->count[0], (unsigned long long)sh->count[1],
	      (unsigned long long)total);
	CHECK(sh->count[2] + sh->count[3] == total, "work group got %llu + %llu of %llu",
	      (unsigned long long)sh->count[2], (unsigned long long)sh->count[3],
	      (unsigned long long)total);
	for (k = 0; k < total; k++) {
		CHECK(L[0][k].len == L[1][k].len && L[0][k].hash == L[1][k].hash,
		      "broadcast groups differ at message %llu", (unsigned long long)k);
		CHECK(k == 0 || L[1][k].seq > L[1][k - 1].seq, "b2: seq %llu after %llu",
		      (unsigned long long)L[1][k].seq, (unsigned long long)L[1][k - 1].seq);
	}
	for (k = 0, a = 0, b = 0; k < total; k++) {
		struct logent *w;

		if (a < sh->count[2] && (b >= sh->count[3] || L[2][a].seq < L[3][b].seq))
			w = &L[2][a++];
		else {
			CHECK(b < sh->count[3], "work logs end early");
			w = &L[3][b++];
		}
		CHECK(w->seq == L[1][k].seq && w->len == L[1][k].len && w->hash == L[1][k].hash,
		      "work group: message %llu (seq %llu) is not the broadcast group's (seq %llu)",
		      (unsigned long long)k, (unsigned long long)w->seq,
		      (unsigned long long)L[1][k].seq);
	}
	for (a = 1; a < sh->count[2]; a++)
		CHECK(L[2][a].seq > L[2][a - 1].seq, "work member 1 out of order");
	for (b = 1; b < sh->count[3]; b++)
		CHECK(L[3][b].seq > L[3][b - 1].seq, "work member 2 out of order");
	CHECK(sh->count[2] > 0 && sh->count[3] > 0, "one work member got nothing (%llu, %llu)",
	      (unsigned long long)sh->count[2], (unsigned long long)sh->count[3]);

	qinfo(q, &qi, g, 4);
	CHECK(qi.shut && qi.groups == 3 && qi.depth == 0 && qi.cell_bytes == cell,
	      "info at the end: shut %d groups %u depth %llu", qi.shut, qi.groups,
	      (unsigned long long)qi.depth);
	for (i = 0; i < 3; i++)
		CHECK(g[i].cursor == qi.head && g[i].lag == 0, "group %s: cursor %llu lag %llu, head "
		      "%llu", g[i].name, (unsigned long long)g[i].cursor, (unsigned long long)g[i].lag,
		      (unsigned long long)qi.head);

	if (with_victim) {
		uint64_t wmin, worst = 0;

		/* every group passed the dead reservation as one record of its
		 * 5 cells, within a liveness timeout (200 ms by default;
		 * asserted at 5 s for a loaded 2-CPU machine) */
		for (i = 0; i < NCONS; i++)
			if (sh->t_first_other[i] && i != 0)
				CHECK(sh->seq_first_other[i] >= end_victim + cells_of(VICTIM_RESERVE, cell),
				      "consumer %d: first message after the dead claim at seq %llu",
				      i, (unsigned long long)sh->seq_first_other[i]);
		CHECK(sh->seq_first_other[1] == end_victim + cells_of(VICTIM_RESERVE, cell),
		      "b2: first message after the dead claim at seq %llu, expected %llu",
		      (unsigned long long)sh->seq_first_other[1],
		      (unsigned long long)(end_victim + cells_of(VICTIM_RESERVE, cell)));
		wmin = UINT64_MAX;
		for (i = 2; i < NCONS; i++)
			if (sh->t_first_other[i] && sh->t_first_other[i] < wmin)
				wmin = sh->t_first_other[i];
		{
			uint64_t d[3] = {sh->t_first_other[0] - t_kill, sh->t_first_other[1] - t_kill,
			                 wmin - t_kill};

			for (i = 0; i < 3; i++) {
				CHECK(d[i] < 5 * (uint64_t)SEC, "group %d passed the dead claim %.3f s after "
				      "the kill", i, d[i] / 1e9);
				if (d[i] > worst)
					worst = d[i];
			}
		}
		printf("  producer killed between reserve and commit: every group passed its %llu cells "
		       "(at most %.3f s after the kill)\n",
		       (unsigned long long)cells_of(VICTIM_RESERVE, cell), worst / 1e9);
	}
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(name));
	printf("  %d producer processes%s x groups b1, b2 and w (2 members), %u cells of %llu B: "
	       "%llu messages of 0..%zu bytes, exactly once per group, in order, intact (%.2f s)\n",
	       NPROD, with_victim ? " + a killed one" : "", ring, (unsigned long long)cell,
	       (unsigned long long)total, sh->max_msg,
	       (test_now_ns() - t0) / 1e9);
	munmap(sh, shsize);
	sh = NULL;
}

int main(void)
{
	alarm(900);     /* a hang anywhere ends the test (and the cleanup runs) */
	setvbuf(stdout, NULL, _IONBF, 0);
	test_options();
	test_one_process();
	test_earliest();
	test_earliest_at_claim();
	test_small_cells();
	test_hold_protects();
	test_dead_claim_durable(1);
	test_dead_claim_durable(0);
	test_detached();
	test_small_buffers();
	test_redelivery();
	test_shut();
	run_procs(0, 64);
	run_procs(1, 64);
	run_procs(0, 8);
	run_procs(1, 8);
	printf("test_outsider_cells: all passed\n");
	return 0;
}

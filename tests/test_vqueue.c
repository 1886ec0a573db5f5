/*
 * test_vqueue.c -- queues with cells (shmbus_queue_opts_t.cell_bytes):
 * one ring carries 8-byte and ring/2-sized messages side by side, each
 * taking the whole cells it needs (docs/queue.md "Cells"; the protocol is
 * tests/model/vqueue.pml).
 *
 * Each test is one promise:
 *   mixed_sizes_exactly_once_per_group  2 producers (processes) send 8 B,
 *       64 B, 100 B, 4 KiB, 64 KiB and ring/2 messages interleaved; two
 *       broadcast groups and a work group of two members (processes) get
 *       every message exactly once per group, in order per producer, with
 *       their bytes intact; the ring wrapped with pads (head > the cells
 *       the messages took);
 *   big_message_at_wrap  a message of more than half the ring, at a
 *       position where it would wrap, goes through (its pad is claimed
 *       alone: flaw 1 of vqueue.pml), and head says where it went;
 *   reserve_commit_abort_peek_many  a reservation takes the cells asked
 *       for, a shorter commit delivers the bytes committed; abort passes its
 *       cells; peek points at a record's contiguous cells; a too-small
 *       buffer gets ETOOBIG and the message stays; put_many / get_many;
 *   killed_producer_claim_is_passed  a producer killed (kill-point hook)
 *       after publishing its pad and before writing its message, and one
 *       killed between reserve and commit, leave no wedge: both groups
 *       pass the dead claims after the liveness timeout and get every
 *       message of the live producer;
 *   live_claim_is_not_skipped  a producer stopped between its claim and
 *       its copy is waited for, through ten liveness timeouts, never
 *       skipped; continued, its message arrives;
 *   redelivery_of_a_record  a member killed holding a 5-cell record: a
 *       member of its group gets it again, whole and flagged;
 *   mixed_stream_memory  90% 64 B / 10% 64 KiB in a 4 MiB ring holds
 *       about ten times the messages of a 1.0 ring of the same memory
 *       sized for 64 KiB;
 *   dead_claim_behind_durable_group  a dead claim at the cursor of a
 *       DURABLE group with no member is passed by a blocked producer, and
 *       by gc, by the members' rule: the member that joins later gets the
 *       messages behind it at once;
 *   detached_floor_on_record_starts  a detached group's floor moves by
 *       what the producer needs plus a quarter ring, to a record start: a
 *       rejoining member gets SHMBUS_ELAPPED once, then whole records;
 *   earliest_with_cells  a group at EARLIEST starts at the oldest record
 *       still in the ring when a lap ago falls inside one; a corrupt
 *       length there gives SHMBUS_ECORRUPT;
 *   earliest_in_flow  groups joined at EARLIEST while a producer laps the
 *       ring get whole messages in order from their start;
 *   hostile_record_length  a record length that would cross the ring's
 *       end gives SHMBUS_ECORRUPT, never a read outside the ring;
 *   info_says_cells  shmbus_queue_info and shmbus_channel_info give the
 *       cell size of a queue of cells (0 for a queue of slots), depth in
 *       cells; a caller's older struct that ends before cell_bytes gets
 *       nothing written past its size_of.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "testutil.h"
#include "faultinject.h"
#include "queue.h"

#define CELL 64u
#define LIVENESS_NS 50000000ll          /* 50 ms */
#define LONG_NS 20000000000ll           /* 20 s: generous for a loaded 2-CPU machine */
#define GET_NS 5000000000ll             /* >> the liveness timeout */

static const char *bus_name;
static shmbus_bus_t *bus;
static pid_t parent;

/* ---- messages: their bytes follow from (producer, index) ------------- */

static uint64_t cells_of(size_t n)
{
	return n <= CELL ? 1 : (n + CELL - 1) / CELL;
}

static void fill(uint8_t *b, size_t n, uint32_t p, uint32_t i)
{
	uint64_t x = (uint64_t)p << 32 | i;
	size_t j;

	for (j = 0; j < n; j++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		b[j] = (uint8_t)(x >> 56);
	}
	if (n >= 8) {
		memcpy(b, &p, 4);
		memcpy(b + 4, &i, 4);
	}
}

/* 0 if b holds message (p, i) of n bytes, whole. */
static int check_msg(const uint8_t *b, size_t n, uint32_t p, uint32_t i, uint8_t *scratch)
{
	fill(scratch, n, p, i);
	return memcmp(b, scratch, n);
}

static shmbus_queue_t *open_cells(const char *name, uint32_t slots, uint64_t max_msg)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q;

	shmbus_queue_opts_init(&o);
	o.slots = slots;
	o.max_msg = max_msg;
	o.cell_bytes = CELL;
	OK(shmbus_queue_open(bus, name, &o, &q));
	return q;
}

static shmbus_queue_t *join(const char *name, const char *group)
{
	shmbus_queue_t *q = open_cells(name, 0, 0);

	OK(shmbus_queue_join(q, group, 0));
	return q;
}

static uint64_t head_of(shmbus_queue_t *q)
{
	shmbus_queue_info_t info = {.size_of = sizeof(info)};

	OK(shmbus_queue_info(q, &info, NULL, 0));
	return info.head;
}

static void get_exact(shmbus_queue_t *q, void *buf, size_t cap, uint32_t p, uint32_t i,
                      size_t n, const char *what)
{
	static uint8_t scratch[1 << 20];
	size_t len = 0;
	int r = shmbus_queue_get(q, buf, cap, &len, NULL, GET_NS);

	CHECK(r == 0, "%s: get: %s: %s", what, shmbus_strerror(r), shmbus_last_error());
	CHECK(len == n && check_msg(buf, n, p, i, scratch) == 0,
	      "%s: got %zu bytes, expected message (%u, %u) of %zu bytes, intact", what, len, p, i, n);
}

/* ---- mixed sizes across processes ------------------------------------ */

#define MX_SLOTS 4096u                  /* 256 KiB of cells */
#define MX_RING ((size_t)MX_SLOTS * CELL)
#define MX_PRODS 2
#define MX_MAX 600
#define MX_CONS 4                       /* bc1, bc2, work x 2 */
static const size_t mx_sizes[] = {8, 64, 100, 4096, 65536, MX_RING / 2};
#define MX_NS (sizeof(mx_sizes) / sizeof(mx_sizes[0]))

struct mx_shared {
	atomic_int failed;
	char why[256];
	/* deliveries per consumer group (0 bc1, 1 bc2, 2 work) */
	atomic_uint got[3][MX_PRODS][MX_MAX];
	atomic_uint per_member[MX_CONS];
};

static struct mx_shared *mx;

static size_t mx_size(uint32_t p, uint32_t i)
{
	return mx_sizes[(i + 3 * p) % MX_NS];
}

#define MX_FAIL(...) test_fail_shared(&mx->failed, mx->why, sizeof(mx->why), __VA_ARGS__)

static void mx_producer(uint32_t p, uint32_t n)
{
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	uint8_t *buf = malloc(MX_RING / 2);
	uint32_t i;
	int r;

	if (!buf || shmbus_bus_open(bus_name, NULL, &b) != 0 ||
	    (q = NULL, shmbus_queue_open(b, "mx", NULL, &q)) != 0)
		MX_FAIL("producer %u: open: %s", p, shmbus_last_error());
	for (i = 0; i < n; i++) {
		size_t len = mx_size(p, i);

		fill(buf, len, p, i);
		r = shmbus_queue_put(q, buf, len, LONG_NS);
		if (r)
			MX_FAIL("producer %u: put %u (%zu bytes): %s: %s", p, i, len, shmbus_strerror(r),
			        shmbus_last_error());
	}
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	free(buf);
	_exit(0);
}

static void mx_consumer(int who, const char *group)
{
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	uint8_t *buf = malloc(MX_RING / 2), *scratch = malloc(MX_RING / 2);
	int64_t last[MX_PRODS] = {-1, -1};
	int gi = who < 2 ? who : 2, r;

	if (!buf || !scratch || shmbus_bus_open(bus_name, NULL, &b) != 0 ||
	    (q = NULL, shmbus_queue_open(b, "mx", NULL, &q)) != 0 || shmbus_queue_join(q, group, 0) != 0)
		MX_FAIL("consumer %d: open/join: %s", who, shmbus_last_error());
	/* Joined: the parent starts the producers once every member is in. */
	atomic_fetch_add(&mx->per_member[who], 0);
	for (;;) {
		size_t len = 0;
		uint32_t p, i;

		r = shmbus_queue_get(q, buf, MX_RING / 2, &len, NULL, LONG_NS);
		if (r == SHMBUS_ECLOSED)
			break;
		if (r)
			MX_FAIL("consumer %d (%s): get: %s: %s", who, group, shmbus_strerror(r),
			        shmbus_last_error());
		if (len < 8)
			MX_FAIL("consumer %d: a message of %zu bytes", who, len);
		memcpy(&p, buf, 4);
		memcpy(&i, buf + 4, 4);
		if (p >= MX_PRODS || i >= MX_MAX || len != mx_size(p, i) ||
		    check_msg(buf, len, p, i, scratch) != 0)
			MX_FAIL("consumer %d (%s): message (%u, %u) of %zu bytes is not intact", who,
			        group, p, i, len);
		if ((int64_t)i <= last[p])
			MX_FAIL("consumer %d (%s): producer %u's message %u after its %lld", who, group,
			        p, i, (long long)last[p]);
		last[p] = i;
		atomic_fetch_add(&mx->got[gi][p][i], 1);
		atomic_fetch_add(&mx->per_member[who], 1);
	}
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	_exit(0);
}

static void test_mixed_sizes_exactly_once_per_group(void)
{
	static const char *const groups[MX_CONS] = {"bc1", "bc2", "work", "work"};
	pid_t kids[MX_PRODS + MX_CONS];
	shmbus_queue_t *q;
	uint32_t n = (uint32_t)(300 * test_scale()), p, i, g;
	uint64_t cells = 0, h;
	int k, st;

	if (n < 60)
		n = 60;
	if (n > MX_MAX)
		n = MX_MAX;
	mx = mmap(NULL, sizeof(*mx), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(mx != MAP_FAILED, "mmap: %s", strerror(errno));
	q = open_cells("mx", MX_SLOTS, MX_RING / 2);
	for (k = 0; k < MX_CONS; k++) {
		kids[MX_PRODS + k] = fork();
		CHECK(kids[MX_PRODS + k] >= 0, "fork: %s", strerror(errno));
		if (kids[MX_PRODS + k] == 0)
			mx_consumer(k, groups[k]);
	}
	/* Every group in before the first message (3 groups, all READY). */
	OK(shmbus_queue_wait_groups(q, 3, LONG_NS));
	/* ... and every member of the work group: both join before a put. */
	for (;;) {
		shmbus_group_info_t gi[3];
		shmbus_queue_info_t info = {.size_of = sizeof(info)};
		uint32_t members = 0;

		OK(shmbus_queue_info(q, &info, gi, 3));
		for (g = 0; g < info.groups && g < 3; g++)
			if (strcmp(gi[g].name, "work") == 0)
				members = gi[g].live_members;
		if (members == 2)
			break;
		usleep(1000);
	}
	for (p = 0; p < MX_PRODS; p++) {
		kids[p] = fork();
		CHECK(kids[p] >= 0, "fork: %s", strerror(errno));
		if (kids[p] == 0)
			mx_producer(p, n);
	}
	for (p = 0; p < MX_PRODS; p++) {
		CHECK(waitpid(kids[p], &st, 0) == kids[p] && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "producer %u ended with status %#x: %s", p, st, mx->why);
		kids[p] = -1;
	}
	OK(shmbus_queue_shut(q));
	for (k = 0; k < MX_CONS; k++) {
		CHECK(waitpid(kids[MX_PRODS + k], &st, 0) == kids[MX_PRODS + k] && WIFEXITED(st) &&
		      WEXITSTATUS(st) == 0, "consumer %d ended with status %#x: %s", k, st, mx->why);
		kids[MX_PRODS + k] = -1;
	}
	for (g = 0; g < 3; g++)
		for (p = 0; p < MX_PRODS; p++)
			for (i = 0; i < n; i++)
				CHECK(atomic_load(&mx->got[g][p][i]) == 1,
				      "group %s got producer %u's message %u %u times", groups[g], p, i,
				      atomic_load(&mx->got[g][p][i]));
	for (p = 0; p < MX_PRODS; p++)
		for (i = 0; i < n; i++)
			cells += cells_of(mx_size(p, i));
	h = head_of(q);
	/* Every seq is a message's cell or a pad's: the difference is the
	 * pads the wraps took. */
	CHECK(h > cells, "head %llu, the messages took %llu cells: no pad at any wrap",
	      (unsigned long long)h, (unsigned long long)cells);
	CHECK(h - cells < (uint64_t)(h / MX_SLOTS + 1) * MX_SLOTS,
	      "head %llu, messages %llu cells: more pad than one per lap", (unsigned long long)h,
	      (unsigned long long)cells);
	printf("ok mixed_sizes_exactly_once_per_group: %u messages x 2 producers, 3 groups "
	       "(work split %u/%u), %llu cells of messages, %llu of pads over %llu laps\n", n,
	       atomic_load(&mx->per_member[2]), atomic_load(&mx->per_member[3]),
	       (unsigned long long)cells, (unsigned long long)(h - cells),
	       (unsigned long long)(h / MX_SLOTS));
	OK(shmbus_queue_close(q));
	munmap(mx, sizeof(*mx));
}

/* ---- a message of more than half the ring at a wrap ------------------ */

struct taker {
	shmbus_queue_t *q;
	size_t n;
	uint32_t p, i;
	int r;
	uint8_t buf[64 * CELL];
};

static void *take_thread(void *arg)
{
	struct taker *t = arg;
	size_t len = 0;

	t->r = shmbus_queue_get(t->q, t->buf, sizeof(t->buf), &len, NULL, LONG_NS);
	if (t->r == 0 && len != t->n)
		t->r = -1000;
	return NULL;
}

static void test_big_message_at_wrap(void)
{
	shmbus_queue_t *p = open_cells("big", 64, 64 * CELL), *c = join("big", "g");
	static uint8_t msg[64 * CELL], out[64 * CELL];
	struct taker *t = calloc(1, sizeof(*t));
	pthread_t th;
	size_t big = 60 * CELL - 10;            /* 60 cells of a 64-cell ring */

	CHECK(t, "calloc");
	fill(msg, 10 * CELL, 0, 0);
	OK(shmbus_queue_put(p, msg, 10 * CELL, 0));
	get_exact(c, out, sizeof(out), 0, 0, 10 * CELL, "first message");
	/* At seq 10, 60 cells would wrap: a pad of 54 and the message (114
	 * seqs) exceed the ring; the pad is claimed alone, then the message
	 * at seq 64 once the group passed the pad: the taker thread. */
	t->q = c;
	t->n = big;
	CHECK(pthread_create(&th, NULL, take_thread, t) == 0, "pthread_create");
	fill(msg, big, 0, 1);
	OK(shmbus_queue_put(p, msg, big, LONG_NS));
	CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	CHECK(t->r == 0, "taker: %d (%s): %s", t->r, shmbus_strerror(t->r), shmbus_last_error());
	CHECK(check_msg(t->buf, big, 0, 1, out) == 0, "the big message arrived damaged");
	CHECK(head_of(p) == 64 + 60, "head %llu after a pad of 54 and 60 cells at 64, expected 124",
	      (unsigned long long)head_of(p));
	/* 10 cells at 124 (60 of the lap): a pad of 4, the message at 128. */
	fill(msg, 10 * CELL, 0, 2);
	OK(shmbus_queue_put(p, msg, 10 * CELL, 0));
	get_exact(c, out, sizeof(out), 0, 2, 10 * CELL, "10 cells after a joint pad");
	CHECK(head_of(p) == 138, "head %llu, expected 138", (unsigned long long)head_of(p));
	/* A try at 138: the pad alone (54 cells) is claimed, then no room
	 * for the message until the group passed the pad. */
	fill(msg, big, 0, 3);
	EXPECT_CODE(shmbus_queue_put(p, msg, big, 0), SHMBUS_EAGAIN);
	CHECK(head_of(p) == 192, "head %llu: the pad to the ring's end (54 cells) was not claimed",
	      (unsigned long long)head_of(p));
	EXPECT_CODE(shmbus_queue_get(c, out, sizeof(out), NULL, NULL, 0), SHMBUS_EAGAIN);
	OK(shmbus_queue_put(p, msg, big, 0));
	get_exact(c, out, sizeof(out), 0, 3, big, "big message after a pad claimed alone");
	CHECK(head_of(p) == 252, "head %llu, expected 252", (unsigned long long)head_of(p));
	printf("ok big_message_at_wrap: 60 of 64 cells at seq 10 went to seq 64, its pad claimed alone\n");
	free(t);
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(c));
}

/* ---- reserve/commit, abort, peek, too small, many --------------------- */

static void test_reserve_commit_abort_peek_many(void)
{
	shmbus_queue_t *p = open_cells("rc", 256, 0), *c = join("rc", "g");
	static uint8_t msg[8192], out[8192];
	static const size_t many[4] = {8, 64, 65, 8000};
	const void *msgs[4];
	void *bufs[4], *ptr;
	size_t lens[4], caps[4], got, len, done;
	uint64_t h0 = head_of(p);
	shmbus_msg_t m;
	int i;

	/* Reserve 1000 bytes (16 cells), commit 100: 16 seqs taken. */
	OK(shmbus_queue_reserve(p, 1000, &ptr, 0));
	fill(ptr, 100, 1, 0);
	OK(shmbus_queue_commit(p, 100));
	CHECK(head_of(p) == h0 + 16, "head %llu after a reservation of 16 cells, expected %llu",
	      (unsigned long long)head_of(p), (unsigned long long)(h0 + 16));
	get_exact(c, out, sizeof(out), 1, 0, 100, "committed 100 of 1000 reserved");
	/* An abort passes its 30 cells; the next message follows it. */
	OK(shmbus_queue_reserve(p, 30 * CELL, &ptr, 0));
	OK(shmbus_queue_abort(p));
	fill(msg, 8, 1, 1);
	OK(shmbus_queue_put(p, msg, 8, 0));
	get_exact(c, out, sizeof(out), 1, 1, 8, "after an aborted reservation of 30 cells");
	CHECK(head_of(p) == h0 + 47, "head %llu, expected %llu", (unsigned long long)head_of(p),
	      (unsigned long long)(h0 + 47));
	/* Peek: a pointer to the record's contiguous cells. */
	fill(msg, 4096, 1, 2);
	OK(shmbus_queue_put(p, msg, 4096, 0));
	OK(shmbus_queue_peek(c, &m, 0));
	CHECK(m.len == 4096 && check_msg(m.data, 4096, 1, 2, out) == 0 && m.seq == h0 + 47,
	      "peek: %zu bytes at seq %llu", m.len, (unsigned long long)m.seq);
	OK(shmbus_queue_release(c));
	/* Too small a buffer: ETOOBIG with the length, the message stays. */
	fill(msg, 300, 1, 3);
	OK(shmbus_queue_put(p, msg, 300, 0));
	EXPECT_CODE(shmbus_queue_get(c, out, 100, &len, NULL, 0), SHMBUS_ETOOBIG);
	CHECK(len == 300, "ETOOBIG reported %zu bytes, expected 300", len);
	get_exact(c, out, sizeof(out), 1, 3, 300, "after ETOOBIG");
	/* put_many / get_many of mixed sizes. */
	for (i = 0; i < 4; i++) {
		static uint8_t mb[4][8192];

		lens[i] = many[i];
		fill(mb[i], lens[i], 2, (uint32_t)i);
		msgs[i] = mb[i];
	}
	OK(shmbus_queue_put_many(p, msgs, lens, 4, 0, &done));
	CHECK(done == 4, "put_many: %zu done", done);
	for (i = 0; i < 4; i++) {
		bufs[i] = malloc(8192);
		caps[i] = 8192;
	}
	OK(shmbus_queue_get_many(c, bufs, caps, lens, NULL, 4, 0, &got));
	CHECK(got == 4, "get_many: %zu of 4", got);
	for (i = 0; i < 4; i++) {
		CHECK(lens[i] == many[i] &&
		      check_msg(bufs[i], lens[i], 2, (uint32_t)i, out) == 0,
		      "get_many: message %d of %zu bytes", i, lens[i]);
		free(bufs[i]);
	}
	/* A message larger than max_msg (the whole ring here: 256 cells). */
	EXPECT_CODE(shmbus_queue_put(p, msg, 256 * CELL + 1, 0), SHMBUS_ETOOBIG);
	printf("ok reserve_commit_abort_peek_many\n");
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(c));
}

/* ---- a producer killed in its claim ---------------------------------- */

#define TRACE 8
struct kp_shared {
	const char *trace[TRACE];
	char why[256];
};

static struct kp_shared *kp;

/* A child producer: one 8-byte put (seq 50), then, told to, either a put
 * of 20 cells killed by the hook at queue.put.copy (its pad published, its
 * message not), or a reservation of 20 cells that it holds until killed. */
static void kp_child(int to_parent, int from_parent, int reserve)
{
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	static uint8_t msg[20 * CELL];
	void *ptr;
	int r;

	if (shmbus_bus_open(bus_name, NULL, &b) != 0 || shmbus_bus_set_liveness(b, LIVENESS_NS) ||
	    shmbus_queue_open(b, "kp", NULL, &q) != 0)
		_exit(2);
	fill(msg, 8, 9, 0);
	if (shmbus_queue_put(q, msg, 8, LONG_NS) != 0)
		_exit(3);
	test_say(to_parent, 'p');
	if (test_hear(from_parent) != 'g')
		_exit(4);
	fill(msg, sizeof(msg), 9, 1);
	if (reserve) {
		r = shmbus_queue_reserve(q, sizeof(msg), &ptr, LONG_NS);
		if (r)
			_exit(5);
		memcpy(ptr, msg, sizeof(msg));
		test_say(to_parent, 'r');
		for (;;)
			pause();
	}
	sb_fault_trace(kp->trace, TRACE);
	sb_fault_arm(5, SIGKILL);
	r = shmbus_queue_put(q, msg, sizeof(msg), LONG_NS);
	snprintf(kp->why, sizeof(kp->why), "the armed put returned %d", r);
	_exit(6);
}

static void kp_round(int reserve)
{
	shmbus_queue_t *p = open_cells("kp", 64, 64 * CELL);
	shmbus_queue_t *g1 = join("kp", "g1"), *g2 = join("kp", "g2");
	static uint8_t msg[64 * CELL], out[64 * CELL];
	uint64_t h0, t0;
	int p2c[2], c2p[2], st;
	pid_t kid;
	uint32_t i;

	memset(kp, 0, sizeof(*kp));
	OK(shmbus_bus_set_liveness(bus, LIVENESS_NS));
	/* 50 cells in and taken: the child's 8 bytes go to seq 50. */
	h0 = head_of(p);
	CHECK(h0 == 0, "a fresh queue's head is %llu", (unsigned long long)h0);
	fill(msg, 50 * CELL, 0, 0);
	OK(shmbus_queue_put(p, msg, 50 * CELL, 0));
	get_exact(g1, out, sizeof(out), 0, 0, 50 * CELL, "g1 first");
	get_exact(g2, out, sizeof(out), 0, 0, 50 * CELL, "g2 first");
	CHECK(pipe(p2c) == 0 && pipe(c2p) == 0, "pipe: %s", strerror(errno));
	kid = fork();
	CHECK(kid >= 0, "fork: %s", strerror(errno));
	if (kid == 0)
		kp_child(c2p[1], p2c[0], reserve);
	CHECK(test_hear(c2p[0]) == 'p', "the child did not put its first message");
	get_exact(g1, out, sizeof(out), 9, 0, 8, "g1: the child's first message");
	get_exact(g2, out, sizeof(out), 9, 0, 8, "g2: the child's first message");
	/* Its next claim at 51: a pad of 13 (51..63) and 20 cells at 64. */
	test_say(p2c[1], 'g');
	if (reserve) {
		CHECK(test_hear(c2p[0]) == 'r', "the child did not reserve");
		CHECK(head_of(p) == 84, "head %llu after the child's reservation, expected 84",
		      (unsigned long long)head_of(p));
		CHECK(kill(kid, SIGKILL) == 0, "kill: %s", strerror(errno));
	}
	CHECK(waitpid(kid, &st, 0) == kid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	      "the child was not killed in its put (status %#x): %s", st, kp->why);
	if (!reserve)
		CHECK(kp->trace[3] && kp->trace[4] &&
		      strcmp(kp->trace[3], "queue.publish.published") == 0 &&
		      strcmp(kp->trace[4], "queue.put.copy") == 0,
		      "the child died at steps %s, %s; expected queue.publish.published (its pad), queue.put.copy",
		      kp->trace[3] ? kp->trace[3] : "-", kp->trace[4] ? kp->trace[4] : "-");
	CHECK(head_of(p) == 84, "head %llu after the dead claim, expected 84",
	      (unsigned long long)head_of(p));
	/* A live producer goes on after the dead claim. */
	for (i = 0; i < 3; i++) {
		fill(msg, 8 + 100 * i, 1, i);
		OK(shmbus_queue_put(p, msg, 8 + 100 * i, 0));
	}
	t0 = test_now_ns();
	for (i = 0; i < 3; i++) {
		get_exact(g1, out, sizeof(out), 1, i, 8 + 100 * i, "g1 past the dead claim");
		get_exact(g2, out, sizeof(out), 1, i, 8 + 100 * i, "g2 past the dead claim");
	}
	EXPECT_CODE(shmbus_queue_get(g1, out, sizeof(out), NULL, NULL, 0), SHMBUS_EAGAIN);
	EXPECT_CODE(shmbus_queue_get(g2, out, sizeof(out), NULL, NULL, 0), SHMBUS_EAGAIN);
	printf("ok killed_producer_claim_is_passed (%s): both groups passed it in %.0f ms\n",
	       reserve ? "between reserve and commit" : "pad published, message not",
	       (test_now_ns() - t0) / 1e6);
	close(p2c[0]);
	close(p2c[1]);
	close(c2p[0]);
	close(c2p[1]);
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(g1));
	OK(shmbus_queue_close(g2));
	OK(shmbus_channel_delete(bus, "kp"));
}

/* A live producer's claim is never skipped: a child stopped (SIGSTOP, by
 * the hook) between its claim and the copy of a 3-cell message keeps the
 * group waiting, through many liveness timeouts; continued, it delivers. */
static void lv_child(int to_parent)
{
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	static uint8_t msg[3 * CELL];
	int r;

	if (shmbus_bus_open(bus_name, NULL, &b) != 0 || shmbus_bus_set_liveness(b, LIVENESS_NS) ||
	    shmbus_queue_open(b, "lv", NULL, &q) != 0)
		_exit(2);
	fill(msg, 8, 7, 0);
	if (shmbus_queue_put(q, msg, 8, LONG_NS) != 0)
		_exit(3);
	test_say(to_parent, 'p');
	fill(msg, sizeof(msg), 7, 1);
	sb_fault_trace(kp->trace, TRACE);
	/* intent_len, intent, head, then put.copy: stopped before the copy */
	sb_fault_arm(4, SIGSTOP);
	r = shmbus_queue_put(q, msg, sizeof(msg), LONG_NS);
	sb_fault_disarm();
	_exit(r == 0 ? 0 : 4);
}

static void test_live_claim_is_not_skipped(void)
{
	shmbus_queue_t *p = open_cells("lv", 64, 64 * CELL), *c = join("lv", "g");
	static uint8_t msg[64 * CELL], out[64 * CELL];
	int c2p[2], st, r;
	uint64_t t0;
	pid_t kid;

	memset(kp, 0, sizeof(*kp));
	OK(shmbus_bus_set_liveness(bus, LIVENESS_NS));
	CHECK(pipe(c2p) == 0, "pipe: %s", strerror(errno));
	kid = fork();
	CHECK(kid >= 0, "fork: %s", strerror(errno));
	if (kid == 0)
		lv_child(c2p[1]);
	CHECK(test_hear(c2p[0]) == 'p', "the child did not put its first message");
	get_exact(c, out, sizeof(out), 7, 0, 8, "the child's first message");
	CHECK(waitpid(kid, &st, WUNTRACED) == kid && WIFSTOPPED(st),
	      "the child did not stop in its put (status %#x)", st);
	CHECK(kp->trace[2] && kp->trace[3] && strcmp(kp->trace[2], "queue.claim.head") == 0 &&
	      strcmp(kp->trace[3], "queue.put.copy") == 0,
	      "the child stopped at steps %s, %s; expected queue.claim.head, queue.put.copy",
	      kp->trace[2] ? kp->trace[2] : "-", kp->trace[3] ? kp->trace[3] : "-");
	CHECK(head_of(p) == 4, "head %llu after the child's claim of 3 cells at 1, expected 4",
	      (unsigned long long)head_of(p));
	fill(msg, 8, 1, 0);
	OK(shmbus_queue_put(p, msg, 8, 0));
	/* 500 ms: ten liveness timeouts; the claim's owner lives. */
	t0 = test_now_ns();
	r = shmbus_queue_get(c, out, sizeof(out), NULL, NULL, 500000000ll);
	CHECK(r == SHMBUS_ETIMEDOUT, "a get past a live producer's claim returned %d (%s) after %.0f ms",
	      r, shmbus_strerror(r), (test_now_ns() - t0) / 1e6);
	CHECK(kill(kid, SIGCONT) == 0, "kill: %s", strerror(errno));
	get_exact(c, out, sizeof(out), 7, 1, 3 * CELL, "the stopped producer's message");
	get_exact(c, out, sizeof(out), 1, 0, 8, "the message after it");
	CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the child ended with status %#x", st);
	printf("ok live_claim_is_not_skipped\n");
	close(c2p[0]);
	close(c2p[1]);
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(c));
	OK(shmbus_channel_delete(bus, "lv"));
}

/* A member killed holding a record of 5 cells (peeked, not released):
 * another member of its group gets it again, whole, flagged, then the
 * next record. */
static void rd_child(int to_parent)
{
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	shmbus_msg_t m;

	if (shmbus_bus_open(bus_name, NULL, &b) != 0 || shmbus_bus_set_liveness(b, LIVENESS_NS) ||
	    shmbus_queue_open(b, "rd", NULL, &q) != 0 || shmbus_queue_join(q, "w", 0) != 0 ||
	    shmbus_queue_peek(q, &m, LONG_NS) != 0)
		_exit(2);
	test_say(to_parent, m.len == 5 * CELL - 3 ? 'h' : 'x');
	for (;;)
		pause();
}

static void test_redelivery_of_a_record(void)
{
	shmbus_queue_t *p = open_cells("rd", 64, 0), *c = join("rd", "w");
	static uint8_t msg[64 * CELL], out[64 * CELL];
	uint32_t flags = 0;
	size_t len = 0;
	int c2p[2], st;
	pid_t kid;

	OK(shmbus_bus_set_liveness(bus, LIVENESS_NS));
	fill(msg, 5 * CELL - 3, 4, 0);
	OK(shmbus_queue_put(p, msg, 5 * CELL - 3, 0));
	fill(msg, 100, 4, 1);
	OK(shmbus_queue_put(p, msg, 100, 0));
	CHECK(pipe(c2p) == 0, "pipe: %s", strerror(errno));
	kid = fork();
	CHECK(kid >= 0, "fork: %s", strerror(errno));
	if (kid == 0)
		rd_child(c2p[1]);
	CHECK(test_hear(c2p[0]) == 'h', "the child did not hold the 5-cell record");
	CHECK(kill(kid, SIGKILL) == 0 && waitpid(kid, &st, 0) == kid, "kill: %s", strerror(errno));
	/* The next record is ours at once; the dead member's comes again. */
	get_exact(c, out, sizeof(out), 4, 1, 100, "the record after the held one");
	OK(shmbus_queue_get(c, out, sizeof(out), &len, &flags, GET_NS));
	CHECK(len == 5 * CELL - 3 && check_msg(out, len, 4, 0, msg) == 0 &&
	      (flags & SHMBUS_MSG_REDELIVERED), "redelivery: %zu bytes, flags %#x", len, flags);
	EXPECT_CODE(shmbus_queue_get(c, out, sizeof(out), NULL, NULL, 0), SHMBUS_EAGAIN);
	printf("ok redelivery_of_a_record: 5 cells held by a killed member, delivered again, flagged\n");
	close(c2p[0]);
	close(c2p[1]);
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(c));
	OK(shmbus_channel_delete(bus, "rd"));
}

static void test_killed_producer_claim_is_passed(void)
{
	kp = mmap(NULL, sizeof(*kp), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(kp != MAP_FAILED, "mmap: %s", strerror(errno));
	kp_round(0);
	kp_round(1);
	test_live_claim_is_not_skipped();
	test_redelivery_of_a_record();
	munmap(kp, sizeof(*kp));
}

/* ---- dead claims behind a group with no member ----------------------- */

/* A child that reserves 3 cells of queue `name` (seqs 0..2) and holds them
 * until it is killed. */
static void dc_child(const char *name, int to_parent)
{
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	void *ptr;

	if (shmbus_bus_open(bus_name, NULL, &b) != 0 || shmbus_queue_open(b, name, NULL, &q) != 0)
		_exit(2);
	if (shmbus_queue_reserve(q, 3 * CELL, &ptr, LONG_NS) != 0)
		_exit(3);
	memset(ptr, 0xee, 3 * CELL);
	test_say(to_parent, 'r');
	for (;;)
		pause();
}

/* A DURABLE group whose only member left, and a producer killed between
 * reserve and commit at the group's cursor (seqs 0..2 of 16 cells). The
 * group's members are not there to pass the dead claim, so the blocked
 * producer (by_gc 0: a put polling a full ring) or gc (by_gc 1) does, by
 * the members' rule: a member that joins later gets the next message at
 * once, with a liveness timeout of 60 s it could not have waited out
 * (by_gc 0: the producer's poll ran the group's liveness round, so the
 * member's own checks are a liveness timeout away); gc publishes the
 * skip, with the claim's length, in the record's first cell (by_gc 1,
 * looked at through the segment, since the member would run its own
 * round at once). */
static void dead_claim_round(int by_gc)
{
	const char *name = by_gc ? "dg" : "dp";
	shmbus_queue_t *p = open_cells(name, 16, 0), *d = open_cells(name, 0, 0);
	static uint8_t msg[16 * CELL], out[16 * CELL];
	struct sb_q_slot *sl;
	uint64_t t0, w;
	uint32_t i, reaped = 0;
	int c2p[2], st, r;
	pid_t kid;

	OK(shmbus_bus_set_liveness(bus, 60000000000ll));
	OK(shmbus_queue_join(d, "d", SHMBUS_GROUP_DURABLE));
	OK(shmbus_queue_close(d));
	CHECK(pipe(c2p) == 0, "pipe: %s", strerror(errno));
	kid = fork();
	CHECK(kid >= 0, "fork: %s", strerror(errno));
	if (kid == 0)
		dc_child(name, c2p[1]);
	CHECK(test_hear(c2p[0]) == 'r', "the child did not reserve");
	CHECK(kill(kid, SIGKILL) == 0, "kill: %s", strerror(errno));
	CHECK(waitpid(kid, &st, 0) == kid && WIFSIGNALED(st), "the child ended with %#x", st);
	CHECK(head_of(p) == 3, "head %llu after the child's reservation, expected 3",
	      (unsigned long long)head_of(p));
	/* 13 messages of a cell fill the ring behind the group's cursor (0). */
	for (i = 0; i < 13; i++) {
		fill(msg, 8, 1, i);
		OK(shmbus_queue_put(p, msg, 8, 0));
	}
	sl = sb_q_slot(&p->v, 0);
	if (by_gc) {
		OK(shmbus_bus_gc(bus, &reaped));
		/* acquire: the word, then its length. */
		w = atomic_load_explicit(&sl->published, memory_order_acquire);
		CHECK(w == (1 | SB_Q_SKIP) && sl->flags == 3,
		      "after gc the dead claim's first cell has word %#llx, length %u; expected a SKIP of 3",
		      (unsigned long long)w, sl->flags);
	} else {
		fill(msg, 8, 1, 13);
		EXPECT_CODE(shmbus_queue_put(p, msg, 8, 0), SHMBUS_EAGAIN);
	}
	d = open_cells(name, 0, 0);
	OK(shmbus_queue_join(d, "d", SHMBUS_GROUP_DURABLE));
	t0 = test_now_ns();
	for (i = 0; i < 13; i++) {
		size_t len = 0;

		r = shmbus_queue_get(d, out, sizeof(out), &len, NULL, GET_NS);
		CHECK(r == 0, "%s: get %u behind the dead claim: %s (%s) after %.0f ms",
		      by_gc ? "gc" : "producer", i, shmbus_strerror(r), shmbus_last_error(),
		      (test_now_ns() - t0) / 1e6);
		CHECK(len == 8 && check_msg(out, 8, 1, i, msg) == 0, "message %u: %zu bytes, not intact", i, len);
	}
	printf("ok dead_claim_behind_durable_group (passed by %s): the member got 13 messages in %.0f ms\n",
	       by_gc ? "gc" : "a blocked producer", (test_now_ns() - t0) / 1e6);
	OK(shmbus_bus_set_liveness(bus, LIVENESS_NS));
	close(c2p[0]);
	close(c2p[1]);
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(d));
	OK(shmbus_channel_delete(bus, name));
}

static void test_dead_claim_behind_durable_group(void)
{
	dead_claim_round(0);
	dead_claim_round(1);
}

/* ---- a detached group's floor ---------------------------------------- */

/* A group whose only member left (not DURABLE) stops gating once it has
 * blocked a producer for the liveness timeout; the producer raises the
 * group's floor to let itself pass, as with slots by what it needs plus a
 * quarter ring, and with cells only to a record's first seq. Records of 1
 * to 5 cells, so that a floor at a lap ago plus a quarter ring mostly
 * falls inside one. The producer puts until the put that needs seq 64 (the
 * group's cursor is 0 in a ring of 64 cells); that put waits for the
 * detach and raises the floor, and is the last. A member that rejoins gets
 * SHMBUS_ELAPPED once, then whole records in order up to the last: those
 * in the three quarters of the ring the floor left, at least 44 cells of
 * records of at most 5 cells (a floor at the head, as before, would leave
 * it the last message only). */
static size_t df_len(uint32_t i)
{
	return (i % 5 + 1) * CELL - 8;
}

static void test_detached_floor_on_record_starts(void)
{
	shmbus_queue_t *p = open_cells("df", 64, 0), *m = join("df", "g");
	static uint8_t msg[64 * CELL], out[64 * CELL];
	uint64_t h, k, pad;
	uint32_t i, n, first = UINT32_MAX, got = 0;
	size_t len;
	int r;

	OK(shmbus_bus_set_liveness(bus, LIVENESS_NS));
	OK(shmbus_queue_close(m));
	for (i = 0;; i++) {
		h = head_of(p);
		k = cells_of(df_len(i));
		pad = (h % 64) + k > 64 ? 64 - h % 64 : 0;
		fill(msg, df_len(i), 2, i);
		if (h + pad + k - 1 >= 64) {
			OK(shmbus_queue_put(p, msg, df_len(i), LONG_NS));
			break;
		}
		OK(shmbus_queue_put(p, msg, df_len(i), 0));
	}
	n = i + 1;
	m = join("df", "g");
	r = shmbus_queue_get(m, out, sizeof(out), &len, NULL, 0);
	CHECK(r == SHMBUS_ELAPPED, "the rejoined member's first get returned %d (%s), expected SHMBUS_ELAPPED",
	      r, shmbus_strerror(r));
	for (;;) {
		r = shmbus_queue_get(m, out, sizeof(out), &len, NULL, 0);
		if (r == SHMBUS_EAGAIN)
			break;
		CHECK(r == 0, "get %u after the rejoin: %d (%s: %s)", got, r, shmbus_strerror(r),
		      shmbus_last_error());
		if (first == UINT32_MAX)
			first = (uint32_t)(((uint32_t *)out)[1]);
		i = first + got;
		CHECK(i < n && len == df_len(i) && check_msg(out, len, 2, i, msg) == 0,
		      "after the rejoin, get %u: %zu bytes, not message %u of %zu bytes, intact", got,
		      len, i, i < n ? df_len(i) : 0);
		got++;
	}
	CHECK(got && first + got == n, "the rejoined member got messages %u..%u of 0..%u",
	      first, first + got - 1, n - 1);
	CHECK(first > 0 && got >= 44 / 5, "the rejoined member got %u messages (%u..%u): the floor went too far",
	      got, first, n - 1);
	printf("ok detached_floor_on_record_starts: %u messages put, the rejoined member lost %u, got %u whole\n",
	       n, first, got);
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(m));
	OK(shmbus_channel_delete(bus, "df"));
}

/* ---- a group at EARLIEST --------------------------------------------- */

/* SHMBUS_GROUP_EARLIEST on a queue of cells starts at the oldest record
 * still in the ring, never inside one: 41 records of 1 to 5 cells (with
 * pads) through a ring of 16 cells, then a group at EARLIEST gets, whole
 * and in order, every message whose first seq is at or past a lap before
 * the head (computed from the documented layout: k cells, a pad where a
 * record would wrap), then what is put after it. Then a record's length
 * rewritten to 0 or past the ring's end at that start makes a join at
 * EARLIEST fail with SHMBUS_ECORRUPT (no loop, no crash, no group left
 * behind), and one at LATEST still works. */
/* 1 to 5 cells, in an order that puts a lap ago inside a record. */
static size_t ea_len(uint32_t i)
{
	return ((i * 3) % 7 % 5 + 1) * CELL - 8;
}

static void test_earliest_with_cells(void)
{
	shmbus_queue_t *p = open_cells("ea", 16, 0), *e, *l;
	static uint8_t msg[16 * CELL], out[16 * CELL];
	uint64_t h = 0, k, start[41], lo;
	uint32_t i, n = 41, want = UINT32_MAX, got = 0;
	struct sb_q_slot *sl;
	uint32_t saved;
	size_t len;
	int r;

	for (i = 0; i < n; i++) {
		k = cells_of(ea_len(i));
		if (h % 16 + k > 16)
			h += 16 - h % 16;
		start[i] = h;
		h += k;
		fill(msg, ea_len(i), 3, i);
		OK(shmbus_queue_put(p, msg, ea_len(i), 0));
	}
	CHECK(head_of(p) == h, "head %llu, the layout says %llu", (unsigned long long)head_of(p),
	      (unsigned long long)h);
	lo = h - 16;
	for (i = 0; i < n && want == UINT32_MAX; i++)
		if (start[i] >= lo)
			want = i;
	CHECK(want != UINT32_MAX && start[want] != lo,
	      "the test wants a lap ago (%llu) inside a record", (unsigned long long)lo);
	/* Hostile lengths at the oldest record's first cell. */
	sl = sb_q_slot(&p->v, start[want]);
	saved = sl->flags;
	e = open_cells("ea", 0, 0);
	sl->flags = 0;
	EXPECT_CODE(shmbus_queue_join(e, "early", SHMBUS_GROUP_EARLIEST), SHMBUS_ECORRUPT);
	sl->flags = (uint32_t)(17 - start[want] % 16);
	EXPECT_CODE(shmbus_queue_join(e, "early", SHMBUS_GROUP_EARLIEST), SHMBUS_ECORRUPT);
	sl->flags = saved;
	l = join("ea", "late");
	EXPECT_CODE(shmbus_queue_get(l, out, sizeof(out), NULL, NULL, 0), SHMBUS_EAGAIN);
	OK(shmbus_queue_join(e, "early", SHMBUS_GROUP_EARLIEST));
	for (i = want; i < n; i++) {
		r = shmbus_queue_get(e, out, sizeof(out), &len, NULL, 0);
		CHECK(r == 0 && len == ea_len(i) && check_msg(out, len, 3, i, msg) == 0,
		      "EARLIEST: get %u returned %d (%s), %zu bytes; expected message %u of %zu bytes, intact",
		      got, r, shmbus_strerror(r), len, i, ea_len(i));
		got++;
	}
	EXPECT_CODE(shmbus_queue_get(e, out, sizeof(out), NULL, NULL, 0), SHMBUS_EAGAIN);
	fill(msg, ea_len(n), 3, n);
	OK(shmbus_queue_put(p, msg, ea_len(n), 0));
	get_exact(e, out, sizeof(out), 3, n, ea_len(n), "EARLIEST, a message put after the join");
	get_exact(l, out, sizeof(out), 3, n, ea_len(n), "LATEST, a message put after the join");
	printf("ok earliest_with_cells: a lap ago is seq %llu, inside a record; the group started at %llu and got messages %u..%u\n",
	       (unsigned long long)lo, (unsigned long long)start[want], want, n);
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(e));
	OK(shmbus_queue_close(l));
	OK(shmbus_channel_delete(bus, "ea"));
}

/* Groups at EARLIEST joined while a producer (a child process) keeps
 * writing records of 1 to 5 cells into a ring of 64 with no other group
 * (so it laps freely until a group gates it): each group's first message
 * is whole, and the next ones follow it one by one, whole. A start read
 * from a cell being rewritten, or inside a record, would show as a torn
 * message, a gap or SHMBUS_ECORRUPT. The child stops once the parent has
 * checked its groups. */
#define EF_GROUPS 20
#define EF_TAKE 40

static void ef_child(_Atomic int *stop)
{
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	static uint8_t msg[5 * CELL];
	uint32_t i;
	int r;

	/* Ends with the parent, also when a check fails there. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(1);
	if (shmbus_bus_open(bus_name, NULL, &b) != 0 || shmbus_bus_set_liveness(b, LIVENESS_NS) ||
	    shmbus_queue_open(b, "ef", NULL, &q) != 0)
		_exit(2);
	for (i = 0; !atomic_load(stop); i++) {
		fill(msg, ea_len(i), 4, i);
		r = shmbus_queue_put(q, msg, ea_len(i), LONG_NS);
		if (r)
			_exit(3);
	}
	_exit(0);
}

static void test_earliest_in_flow(void)
{
	shmbus_queue_t *p = open_cells("ef", 64, 0), *e;
	static uint8_t out[64 * CELL], scratch[64 * CELL];
	_Atomic int *stop = mmap(NULL, sizeof(*stop), PROT_READ | PROT_WRITE,
	                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint32_t gi, j, first = 0, idx;
	char name[32];
	size_t len;
	pid_t kid;
	int st, r;

	CHECK(stop != MAP_FAILED, "mmap: %s", strerror(errno));
	atomic_store(stop, 0);
	OK(shmbus_bus_set_liveness(bus, LIVENESS_NS));
	kid = fork();
	CHECK(kid >= 0, "fork: %s", strerror(errno));
	if (kid == 0)
		ef_child(stop);
	while (head_of(p) < 1000)
		usleep(1000);
	for (gi = 0; gi < EF_GROUPS; gi++) {
		snprintf(name, sizeof(name), "e%u", gi);
		e = open_cells("ef", 0, 0);
		OK(shmbus_queue_join(e, name, SHMBUS_GROUP_EARLIEST));
		for (j = 0; j < EF_TAKE; j++) {
			len = 0;
			r = shmbus_queue_get(e, out, sizeof(out), &len, NULL, GET_NS);
			CHECK(r == 0 && len >= 8, "group %s, get %u: %d (%s: %s), %zu bytes", name, j, r,
			      shmbus_strerror(r), shmbus_last_error(), len);
			memcpy(&idx, out + 4, 4);
			if (j == 0)
				first = idx;
			CHECK(idx == first + j && len == ea_len(idx) &&
			      check_msg(out, len, 4, idx, scratch) == 0,
			      "group %s, get %u: message %u of %zu bytes, expected %u, whole", name, j, idx,
			      len, first + j);
		}
		OK(shmbus_queue_close(e));
		OK(shmbus_queue_drop_group(p, name));
	}
	atomic_store(stop, 1);
	CHECK(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the producer ended with status %#x", st);
	printf("ok earliest_in_flow: %u groups joined at EARLIEST in flow, %u whole messages each in order\n",
	       EF_GROUPS, EF_TAKE);
	munmap(stop, sizeof(*stop));
	OK(shmbus_queue_close(p));
	OK(shmbus_channel_delete(bus, "ef"));
}

/* ---- memory ---------------------------------------------------------- */

static void test_mixed_stream_memory(void)
{
	/* 4 MiB of cells; 1.0 would need 64 KiB slots: 64 of them. */
	shmbus_queue_t *p = open_cells("mem", 65536, 65536), *c = join("mem", "g");
	static uint8_t msg[65536], out[65536];
	uint32_t n = 0, i;
	int r;

	for (;;) {
		size_t len = n % 10 == 9 ? 65536 : 64;

		fill(msg, len, 3, n);
		r = shmbus_queue_put(p, msg, len, 0);
		if (r == SHMBUS_EAGAIN)
			break;
		CHECK(r == 0, "put %u: %s: %s", n, shmbus_strerror(r), shmbus_last_error());
		n++;
	}
	/* 4 MiB / (0.9 x 64 + 0.1 x 65536 bytes) = 634 messages. */
	CHECK(n >= 600, "a 4 MiB ring of 64-byte cells held %u messages of the mixed stream; "
	      "expected about 634 (1.0: 64)", n);
	for (i = 0; i < n; i++)
		get_exact(c, out, sizeof(out), 3, i, i % 10 == 9 ? 65536 : 64, "draining the stream");
	printf("ok mixed_stream_memory: a 4 MiB ring held %u messages (90%% 64 B, 10%% 64 KiB); "
	       "a 1.0 ring of 4 MiB holds 64\n", n);
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(c));
	OK(shmbus_channel_delete(bus, "mem"));
}

/* ---- hostile --------------------------------------------------------- */

static void test_hostile_record_length(void)
{
	shmbus_queue_t *p = open_cells("hl", 16, 0), *c = join("hl", "g");
	uint8_t msg[256] = {0}, out[2048];
	struct sb_q_slot *sl;
	shmbus_msg_t m;

	OK(shmbus_queue_put(p, msg, 200, 0));      /* 4 cells at seq 0 */
	sl = sb_q_slot(&c->v, 0);
	sl->flags = 17;                             /* past the ring's end */
	EXPECT_CODE(shmbus_queue_get(c, out, sizeof(out), NULL, NULL, 0), SHMBUS_ECORRUPT);
	EXPECT_CODE(shmbus_queue_peek(c, &m, 0), SHMBUS_ECORRUPT);
	sl->flags = 2;                              /* 128 bytes for a 200-byte length */
	EXPECT_CODE(shmbus_queue_get(c, out, sizeof(out), NULL, NULL, 0), SHMBUS_ECORRUPT);
	CHECK(strstr(shmbus_last_error(), "bytes"), "%s", shmbus_last_error());
	printf("ok hostile_record_length\n");
	OK(shmbus_queue_close(p));
	OK(shmbus_queue_close(c));
}

static void test_options(void)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q;

	shmbus_queue_opts_init(&o);
	o.cell_bytes = 12;
	EXPECT_CODE(shmbus_queue_open(bus, "opt", &o, &q), SHMBUS_EINVAL);
	o.cell_bytes = 64;
	o.slots = 16;
	o.max_msg = 16 * 64 + 1;
	EXPECT_CODE(shmbus_queue_open(bus, "opt", &o, &q), SHMBUS_EINVAL);
	o.max_msg = 0;
	OK(shmbus_queue_open(bus, "opt", &o, &q));
	CHECK(q->v.max_msg == 16 * 64, "max_msg %llu, expected the ring's 1024",
	      (unsigned long long)q->v.max_msg);
	OK(shmbus_queue_close(q));
	/* Another cell size is another layout. */
	o.cell_bytes = 128;
	EXPECT_CODE(shmbus_queue_open(bus, "opt", &o, &q), SHMBUS_ETYPE);
	/* cell_bytes is part of 1.0's layout: a struct without it (48
	 * bytes), or one cutting it (52), is refused, never read in part. */
	o.size_of = 48;
	EXPECT_CODE(shmbus_queue_open(bus, "opt", &o, &q), SHMBUS_EINVAL);
	o.size_of = 52;
	EXPECT_CODE(shmbus_queue_open(bus, "opt", &o, &q), SHMBUS_EINVAL);
	printf("ok options\n");
}

static void test_info_says_cells(void)
{
	shmbus_queue_info_t qi = {.size_of = sizeof(qi)};
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)};
	uint8_t buf[sizeof(qi) + 64], msg[100] = {0};
	uint32_t old = offsetof(shmbus_queue_info_t, cell_bytes), so;
	shmbus_queue_t *q = open_cells("info-cells", 16, 0), *s;
	shmbus_queue_opts_t o;
	size_t i;

	OK(shmbus_queue_join(q, "g", 0));
	OK(shmbus_queue_put(q, msg, sizeof(msg), 0));     /* 2 cells of 64 */
	OK(shmbus_queue_info(q, &qi, NULL, 0));
	CHECK(qi.cell_bytes == CELL && qi.slots == 16 && qi.max_msg == 16 * CELL &&
	      qi.head == 2 && qi.depth == 2,
	      "queue info of 16 cells of %u B after a 100 B message: cell_bytes %llu slots %u "
	      "max_msg %llu head %llu depth %llu", CELL, (unsigned long long)qi.cell_bytes,
	      qi.slots, (unsigned long long)qi.max_msg, (unsigned long long)qi.head,
	      (unsigned long long)qi.depth);
	OK(shmbus_channel_info(bus, "info-cells", &ci));
	CHECK(ci.cell_bytes == CELL && ci.capacity == 16 && ci.value_size == 16 * CELL,
	      "channel info: cell_bytes %llu capacity %llu value_size %llu",
	      (unsigned long long)ci.cell_bytes, (unsigned long long)ci.capacity,
	      (unsigned long long)ci.value_size);

	/* A caller built before cell_bytes: nothing past its struct. */
	memset(buf, 0xa5, sizeof(buf));
	memcpy(buf, &old, sizeof(old));
	OK(shmbus_queue_info(q, (shmbus_queue_info_t *)(void *)buf, NULL, 0));
	memcpy(&so, buf, sizeof(so));
	CHECK(so == old, "older queue info struct: size_of %u, asked %u", so, old);
	for (i = old; i < sizeof(buf); i++)
		CHECK(buf[i] == 0xa5, "older queue info struct of %u B: byte %zu written", old, i);
	OK(shmbus_queue_close(q));

	/* A queue of slots says 0. */
	shmbus_queue_opts_init(&o);
	o.slots = 16;
	OK(shmbus_queue_open(bus, "info-slots", &o, &s));
	memset(&qi, 0xff, sizeof(qi));
	qi.size_of = sizeof(qi);
	OK(shmbus_queue_info(s, &qi, NULL, 0));
	CHECK(qi.cell_bytes == 0 && qi.max_msg == 4096, "queue of slots: cell_bytes %llu max_msg %llu",
	      (unsigned long long)qi.cell_bytes, (unsigned long long)qi.max_msg);
	memset(&ci, 0xff, sizeof(ci));
	ci.size_of = sizeof(ci);
	OK(shmbus_channel_info(bus, "info-slots", &ci));
	CHECK(ci.cell_bytes == 0, "channel info of a queue of slots: cell_bytes %llu",
	      (unsigned long long)ci.cell_bytes);
	OK(shmbus_queue_close(s));
	printf("ok info_says_cells\n");
}

static void cleanup(void)
{
	if (getpid() == parent && bus_name)
		shmbus_bus_unlink(bus_name);
}

int main(void)
{
	shmbus_bus_opts_t bo;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parent = getpid();
	bus_name = test_bus_name("vqueue");
	atexit(cleanup);
	shmbus_bus_opts_init(&bo);
	bo.size = 64ull << 20;
	OK(shmbus_bus_create(bus_name, &bo, &bus));
	test_options();
	test_info_says_cells();
	test_hostile_record_length();
	test_reserve_commit_abort_peek_many();
	test_big_message_at_wrap();
	test_killed_producer_claim_is_passed();
	test_dead_claim_behind_durable_group();
	test_detached_floor_on_record_starts();
	test_earliest_with_cells();
	test_earliest_in_flow();
	test_mixed_stream_memory();
	test_mixed_sizes_exactly_once_per_group();
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(bus_name));
	bus_name = NULL;
	printf("PASS test_vqueue\n");
	return 0;
}

/*
 * queue_exact.c -- promise 2: queues lose, duplicate, reorder or corrupt
 * nothing, with any number of producers, groups and members, under full
 * rings and slow consumers.
 *
 * P producer processes x G groups x M members per group, all forked. Every
 * message carries its producer id, a per-producer sequence number, its
 * length (varied, 24 bytes .. max_msg) and a checksum over all of it; its
 * body is derived from (producer, seq), so any mix-up shows. Producers use
 * put, reserve/commit (with an abort now and then) and put_many; members
 * use get, peek/release and get_many. Members check every message and that
 * the per-producer sequence they see only increases, and tick a shared
 * table [group][producer][seq]; afterwards every cell must be exactly 1.
 *
 * Scenarios: 3x3x3 and 1x5x1 on a 1024-slot ring, 3x3x3 on a 4-slot ring,
 * and slow consumers behind a fast producer, shut while messages are still
 * queued. Members always join (and block, parked) before any producer
 * exists. SHMBUS_TEST_SCALE scales the message counts (5 x 10^5 messages
 * at 1).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"

#define MAX_MSG 256
#define HDR 24                  /* producer u32, len u32, seq u64, sum u64 */
#define TIMEOUT (20000000000ll) /* any single wait longer than this is a hang */

struct shared {
	atomic_int joined;
	atomic_int failed;
	char why[512];
	atomic_ulong got[64];       /* per consumer */
	atomic_ulong sent[16];      /* per producer */
	atomic_uchar seen[];        /* [group][producer][seq] */
};

struct scenario {
	const char *name;
	int producers, groups, members;
	uint32_t slots;
	uint64_t per_producer;
	int slow;                   /* consumers pause now and then */
};

static const char *bus_name;
static struct shared *sh;
static const struct scenario *sc;
static pid_t pids[80];
static int npids;

#define fail_shared(...) test_fail_shared(&sh->failed, sh->why, sizeof(sh->why), __VA_ARGS__)

static uint32_t msg_len(uint32_t p, uint64_t s)
{
	return HDR + (uint32_t)(test_hash(&s, 8) ^ p) % (MAX_MSG - HDR + 1);
}

static void fill(uint8_t *m, uint32_t p, uint64_t s)
{
	uint32_t len = msg_len(p, s), i;
	uint64_t sum;

	memcpy(m, &p, 4);
	memcpy(m + 4, &len, 4);
	memcpy(m + 8, &s, 8);
	for (i = HDR; i < len; i++)
		m[i] = (uint8_t)(s * 31 + p * 7 + i);
	memset(m + 16, 0, 8);
	sum = test_hash(m, len);
	memcpy(m + 16, &sum, 8);
}

/* Check one message; returns its producer and seq. */
static void check(const uint8_t *m, size_t len, int who, uint32_t *pp, uint64_t *sp)
{
	uint8_t copy[MAX_MSG];
	uint32_t p, l;
	uint64_t s, sum, want;

	if (len < HDR || len > MAX_MSG)
		fail_shared("consumer %d: message of %zu bytes", who, len);
	memcpy(&p, m, 4);
	memcpy(&l, m + 4, 4);
	memcpy(&s, m + 8, 8);
	memcpy(&sum, m + 16, 8);
	memcpy(copy, m, len);
	memset(copy + 16, 0, 8);
	want = test_hash(copy, len);
	if (l != len || sum != want || p >= (uint32_t)sc->producers || s >= sc->per_producer ||
	    l != msg_len(p, s))
		fail_shared("consumer %d: corrupt message: len %zu (says %u) producer %u seq %llu sum %llx want %llx",
		            who, len, l, p, (unsigned long long)s, (unsigned long long)sum,
		            (unsigned long long)want);
	*pp = p;
	*sp = s;
}

static void note(int who, int group, uint64_t *next, const uint8_t *m, size_t len)
{
	uint32_t p;
	uint64_t s;

	check(m, len, who, &p, &s);
	if (s < next[p])
		fail_shared("consumer %d (group %d): producer %u seq %llu after seq %llu: out of order",
		            who, group, p, (unsigned long long)s, (unsigned long long)(next[p] - 1));
	next[p] = s + 1;
	atomic_fetch_add_explicit(&sh->seen[((uint64_t)group * (uint64_t)sc->producers + p) *
	                                    sc->per_producer + s],
	                          1, memory_order_relaxed);
	atomic_fetch_add_explicit(&sh->got[who], 1, memory_order_relaxed);
}

static void consumer(int who, int group)
{
	uint8_t bufs[8][MAX_MSG];
	void *bp[8];
	size_t caps[8], lens[8], got, n = 0, i;
	uint64_t next[16] = {0};
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	shmbus_msg_t msg;
	char gname[16];
	int r, mode = who % 3;

	for (i = 0; i < 8; i++) {
		bp[i] = bufs[i];
		caps[i] = MAX_MSG;
	}
	snprintf(gname, sizeof(gname), "g%d", group);
	if (shmbus_bus_open(bus_name, NULL, &b) || shmbus_queue_open(b, "q", NULL, &q) ||
	    shmbus_queue_join(q, gname, 0))
		fail_shared("consumer %d: open/join: %s", who, shmbus_last_error());
	atomic_fetch_add(&sh->joined, 1);
	for (;;) {
		if (mode == 0) {
			r = shmbus_queue_get(q, bufs[0], MAX_MSG, &lens[0], NULL, TIMEOUT);
			if (r == 0)
				note(who, group, next, bufs[0], lens[0]);
		} else if (mode == 1) {
			r = shmbus_queue_peek(q, &msg, TIMEOUT);
			if (r == 0) {
				note(who, group, next, msg.data, msg.len);
				r = shmbus_queue_release(q);
			}
		} else {
			r = shmbus_queue_get_many(q, bp, caps, lens, NULL, 8, TIMEOUT, &got);
			for (i = 0; r == 0 && i < got; i++)
				note(who, group, next, bufs[i], lens[i]);
		}
		if (r == SHMBUS_ECLOSED)
			break;
		if (r)
			fail_shared("consumer %d (group %d): %s: %s", who, group, shmbus_strerror(r),
			            shmbus_last_error());
		if (sc->slow && ++n % 4 == 0)
			usleep(1000);
	}
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	_exit(0);
}

static void producer(uint32_t p)
{
	uint8_t bufs[16][MAX_MSG];
	const void *mp[16];
	size_t lens[16], done;
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	uint64_t s = 0;
	void *ptr;
	int r = 0, mode = (int)p % 3, k;

	if (shmbus_bus_open(bus_name, NULL, &b) || shmbus_queue_open(b, "q", NULL, &q))
		fail_shared("producer %u: open: %s", p, shmbus_last_error());
	while (s < sc->per_producer) {
		if (mode == 0) {
			fill(bufs[0], p, s);
			r = shmbus_queue_put(q, bufs[0], msg_len(p, s), TIMEOUT);
			s += r == 0;
		} else if (mode == 1) {
			if (s % 97 == 5) {   /* an aborted reservation is never seen */
				r = shmbus_queue_reserve(q, MAX_MSG, &ptr, TIMEOUT);
				if (r == 0) {
					memset(ptr, 0xa5, MAX_MSG);
					r = shmbus_queue_abort(q);
				}
				if (r)
					break;
			}
			r = shmbus_queue_reserve(q, MAX_MSG, &ptr, TIMEOUT);
			if (r == 0) {
				fill(ptr, p, s);
				r = shmbus_queue_commit(q, msg_len(p, s));
			}
			s += r == 0;
		} else {
			for (k = 0; k < 16 && s + (uint64_t)k < sc->per_producer; k++) {
				fill(bufs[k], p, s + (uint64_t)k);
				mp[k] = bufs[k];
				lens[k] = msg_len(p, s + (uint64_t)k);
			}
			r = shmbus_queue_put_many(q, mp, lens, (size_t)k, TIMEOUT, &done);
			s += done;
		}
		if (r)
			break;
	}
	atomic_store(&sh->sent[p], s);
	if (r)
		fail_shared("producer %u at seq %llu: %s: %s", p, (unsigned long long)s,
		            shmbus_strerror(r), shmbus_last_error());
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	_exit(0);
}

static void run(const struct scenario *s)
{
	uint64_t cells = (uint64_t)s->groups * (uint64_t)s->producers * s->per_producer, i;
	size_t size = sizeof(struct shared) + cells;
	int n = 0, g, m, p, st, c, bad = 0;
	shmbus_bus_opts_t bo;
	shmbus_queue_opts_t qo;
	shmbus_queue_info_t info = {.size_of = sizeof(info)};
	shmbus_bus_t *bus;
	shmbus_queue_t *q;
	uint64_t t0, t1, missing = 0, dup = 0, delivered = 0;

	sc = s;
	sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap %zu", size);
	bus_name = test_bus_name("qexact");
	shmbus_bus_opts_init(&bo);
	bo.size = 8ull << 20;
	OK(shmbus_bus_create(bus_name, &bo, &bus));
	OK(shmbus_bus_set_liveness(bus, 2000000000ll));
	shmbus_queue_opts_init(&qo);
	qo.slots = s->slots;
	qo.max_msg = MAX_MSG;
	OK(shmbus_queue_open(bus, "q", &qo, &q));
	fflush(stdout);
	/* Members first: they join and park before any producer exists. */
	for (g = 0; g < s->groups; g++)
		for (m = 0; m < s->members; m++) {
			pids[n] = fork();
			CHECK(pids[n] >= 0, "fork");
			if (pids[n] == 0)
				consumer(n, g);
			npids = ++n;
		}
	while (atomic_load(&sh->joined) < n && !atomic_load(&sh->failed))
		usleep(1000);
	usleep(50000);
	t0 = test_now_ns();
	for (p = 0; p < s->producers; p++) {
		pids[n] = fork();
		CHECK(pids[n] >= 0, "fork");
		if (pids[n] == 0)
			producer((uint32_t)p);
		npids = ++n;
	}
	/* Shut as soon as every producer has put its last message: slow
	 * consumers are then still a ring behind. */
	for (p = 0; p < s->producers && !atomic_load(&sh->failed); )
		if (atomic_load(&sh->sent[p]) == s->per_producer)
			p++;
		else
			usleep(200);
	OK(shmbus_queue_info(q, &info, NULL, 0));
	OK(shmbus_queue_shut(q));
	for (i = (uint64_t)(n - s->producers); i < (uint64_t)n; i++) {
		CHECK(waitpid(pids[i], &st, 0) == pids[i], "waitpid");
		bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	for (i = 0; i < (uint64_t)(n - s->producers); i++) {
		CHECK(waitpid(pids[i], &st, 0) == pids[i], "waitpid");
		bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	t1 = test_now_ns();
	CHECK(!bad && !atomic_load(&sh->failed), "%s: a process failed: %s", s->name, sh->why);
	for (i = 0; i < cells; i++) {
		c = sh->seen[i];
		delivered += (uint64_t)c;
		if (c == 0 && missing++ < 5)
			fprintf(stderr, "%s: group %llu lost producer %llu seq %llu\n", s->name,
			        (unsigned long long)(i / s->per_producer / (uint64_t)s->producers),
			        (unsigned long long)(i / s->per_producer % (uint64_t)s->producers),
			        (unsigned long long)(i % s->per_producer));
		if (c > 1 && dup++ < 5)
			fprintf(stderr, "%s: cell %llu delivered %d times\n", s->name,
			        (unsigned long long)i, c);
	}
	CHECK(missing == 0 && dup == 0, "%s: %llu lost, %llu duplicated of %llu", s->name,
	      (unsigned long long)missing, (unsigned long long)dup, (unsigned long long)cells);
	if (s->slow)
		CHECK(info.depth >= s->slots / 2, "%s: a fast producer fills the ring; shut with it still full (depth %llu of %u)",
		      s->name, (unsigned long long)info.depth, s->slots);
	printf("ok %s: %d producers x %d groups x %d members, %u slots: %llu messages, %llu deliveries, %.2f s (%.0f deliveries/s), depth %llu at shut\n",
	       s->name, s->producers, s->groups, s->members, s->slots,
	       (unsigned long long)(s->per_producer * (uint64_t)s->producers),
	       (unsigned long long)delivered, (double)(t1 - t0) / 1e9,
	       (double)delivered / ((double)(t1 - t0) / 1e9), (unsigned long long)info.depth);
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(bus_name));
	munmap(sh, size);
}

static pid_t parent;

/* A failing check exits: the children and the bus go with it. */
static void cleanup(void)
{
	if (getpid() != parent)
		return;
	test_kill_children(pids, (size_t)npids);
	if (bus_name)
		shmbus_bus_unlink(bus_name);
}

int main(void)
{
	double k = test_scale();
	/* 5 x 10^5 messages in all at scale 1 (about 10 s on a busy 2-core
	 * machine); SHMBUS_TEST_SCALE=2 makes it 10^6. */
	struct scenario all[] = {
		{"3x3x3", 3, 3, 3, 1024, (uint64_t)(100000 * k), 0},
		{"1x5x1", 1, 5, 1, 1024, (uint64_t)(150000 * k), 0},
		{"3x3x3-ring4", 3, 3, 3, 4, (uint64_t)(15000 * k), 0},
		{"slow-consumers", 1, 2, 2, 64, (uint64_t)(5000 * k), 1},
	};
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parent = getpid();
	atexit(cleanup);
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		run(&all[i]);
	printf("PASS queue_exact\n");
	return 0;
}

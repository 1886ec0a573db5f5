/*
 * queue_join_race.c -- promise 2 while groups come and go: a group created
 * while producers are in full flow sees, from its start on, every message
 * of every producer, whole and in order (a producer that claimed a slot
 * with a gate computed before the group existed must not overwrite what
 * the group is to read).
 *
 * Two producer processes put without pause into a 16-slot ring, half of
 * their puts with a 1 ms timeout (so some claims find a new group in the
 * way, give up, and owe a skip). A steady group "base" reads everything
 * and checks that each producer's sequence arrives complete from 0. A
 * joiner process creates a new group every round, alternately starting at
 * the oldest retained message (EARLIEST) and at the newest (LATEST), reads
 * 200 messages and checks that each producer's sequence is gap-free and
 * whole from the first message it saw, then leaves (the group, without a
 * member, stops gating after the liveness timeout).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"

#define NPROD 2
#define MSG 48
#define LIVENESS_NS 20000000ll
#define TIMEOUT (20000000000ll)

struct shared {
	atomic_int stop;
	atomic_int failed;
	atomic_ulong sent[NPROD];
	atomic_ulong timeouts[NPROD];
	atomic_ulong base_got;
	char why[512];
};

static const char *bus_name;
static struct shared *sh;

#define fail_shared(...) test_fail_shared(&sh->failed, sh->why, sizeof(sh->why), __VA_ARGS__)

static void fill(uint64_t *m, uint64_t p, uint64_t s)
{
	size_t i;

	m[0] = p;
	m[1] = s;
	for (i = 2; i < MSG / 8 - 1; i++)
		m[i] = s * 0x9E3779B97F4A7C15ull + p + i;
	m[MSG / 8 - 1] = test_hash(m, MSG - 8);
}

static shmbus_queue_t *open_queue(shmbus_bus_t **b)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q;

	shmbus_queue_opts_init(&o);
	o.slots = 16;
	o.max_msg = MSG;
	o.max_groups = 1024;
	if (shmbus_bus_open(bus_name, NULL, b) || shmbus_bus_set_liveness(*b, LIVENESS_NS) ||
	    shmbus_queue_open(*b, "q", &o, &q))
		fail_shared("open: %s", shmbus_last_error());
	return q;
}

static void producer(uint64_t p)
{
	uint64_t m[MSG / 8], s = 0, n = 0;
	shmbus_bus_t *b;
	shmbus_queue_t *q = open_queue(&b);
	int r;

	while (!atomic_load(&sh->stop)) {
		fill(m, p, s);
		r = shmbus_queue_put(q, m, MSG, n++ % 2 ? 1000000 : TIMEOUT);
		if (r == 0)
			atomic_store(&sh->sent[p], ++s);
		else if (r == SHMBUS_ETIMEDOUT)
			atomic_fetch_add(&sh->timeouts[p], 1);
		else
			fail_shared("producer %llu: %s: %s", (unsigned long long)p, shmbus_strerror(r),
			            shmbus_last_error());
	}
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	_exit(0);
}

/* Read n messages (0: until end of stream) as a member of group; every
 * producer's sequence must be gap-free from the first one seen (from 0
 * when from_zero). */
static void reader(const char *group, uint32_t flags, uint64_t n, int from_zero, atomic_ulong *count)
{
	uint64_t m[MSG / 8], next[NPROD], got = 0;
	shmbus_bus_t *b;
	shmbus_queue_t *q = open_queue(&b);
	size_t len;
	int r, i;

	for (i = 0; i < NPROD; i++)
		next[i] = from_zero ? 0 : UINT64_MAX;
	if (shmbus_queue_join(q, group, flags))
		fail_shared("join %s: %s", group, shmbus_last_error());
	while (n == 0 || got < n) {
		r = shmbus_queue_get(q, m, sizeof(m), &len, NULL, TIMEOUT);
		if (r == SHMBUS_ECLOSED && n == 0)
			break;
		if (r)
			fail_shared("group %s after %llu messages: %s: %s", group,
			            (unsigned long long)got, shmbus_strerror(r), shmbus_last_error());
		if (len != MSG || m[0] >= NPROD || m[MSG / 8 - 1] != test_hash(m, MSG - 8))
			fail_shared("group %s: corrupt message (len %zu, producer %llu, seq %llu)", group,
			            len, (unsigned long long)m[0], (unsigned long long)m[1]);
		if (next[m[0]] != UINT64_MAX && m[1] != next[m[0]])
			fail_shared("group %s: producer %llu seq %llu, expected %llu (after %llu messages)",
			            group, (unsigned long long)m[0], (unsigned long long)m[1],
			            (unsigned long long)next[m[0]], (unsigned long long)got);
		next[m[0]] = m[1] + 1;
		got++;
		if (count)
			atomic_store(count, got);
	}
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	_exit(0);
}

static pid_t parent, kids[NPROD + 2];

/* A failing check exits: the children and the bus go with it. */
static void cleanup(void)
{
	if (getpid() != parent)
		return;
	atomic_store(&sh->stop, 1);
	test_kill_children(kids, NPROD + 2);
	if (bus_name)
		shmbus_bus_unlink(bus_name);
}

int main(void)
{
	int rounds = (int)(60 * test_scale()), i, st, p;
	pid_t prod[NPROD], base, j;
	shmbus_bus_opts_t bo;
	shmbus_bus_t *bus;
	shmbus_queue_t *q;
	shmbus_queue_opts_t o;
	char gname[32];
	uint64_t t0 = test_now_ns();

	if (rounds > 1000)
		rounds = 1000;
	setvbuf(stdout, NULL, _IOLBF, 0);
	parent = getpid();
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap");
	bus_name = test_bus_name("qjoin");
	shmbus_bus_opts_init(&bo);
	bo.size = 4ull << 20;
	OK(shmbus_bus_create(bus_name, &bo, &bus));
	atexit(cleanup);
	shmbus_queue_opts_init(&o);
	o.slots = 16;
	o.max_msg = MSG;
	o.max_groups = 1024;
	OK(shmbus_queue_open(bus, "q", &o, &q));
	kids[NPROD] = base = fork();
	CHECK(base >= 0, "fork");
	if (base == 0)
		reader("base", 0, 0, 1, &sh->base_got);
	while (atomic_load(&sh->base_got) == 0) {
		shmbus_queue_info_t info = {.size_of = sizeof(info)};

		OK(shmbus_queue_info(q, &info, NULL, 0));
		if (info.groups == 1)
			break;
		usleep(1000);
	}
	for (p = 0; p < NPROD; p++) {
		kids[p] = prod[p] = fork();
		CHECK(prod[p] >= 0, "fork");
		if (prod[p] == 0)
			producer((uint64_t)p);
	}
	for (i = 0; i < rounds && !atomic_load(&sh->failed); i++) {
		snprintf(gname, sizeof(gname), "j%d", i);
		kids[NPROD + 1] = j = fork();
		CHECK(j >= 0, "fork");
		if (j == 0)
			reader(gname, i % 2 ? SHMBUS_GROUP_LATEST : SHMBUS_GROUP_EARLIEST, 200, 0, NULL);
		CHECK(waitpid(j, &st, 0) == j && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "joiner %d (%s): status %d: %s", i, i % 2 ? "LATEST" : "EARLIEST", st, sh->why);
	}
	atomic_store(&sh->stop, 1);
	for (p = 0; p < NPROD; p++)
		CHECK(waitpid(prod[p], &st, 0) == prod[p] && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "producer %d: status %d: %s", p, st, sh->why);
	OK(shmbus_queue_shut(q));
	CHECK(waitpid(base, &st, 0) == base && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "base group: status %d: %s", st, sh->why);
	CHECK(atomic_load(&sh->base_got) == atomic_load(&sh->sent[0]) + atomic_load(&sh->sent[1]),
	      "base group got %lu of %lu + %lu", atomic_load(&sh->base_got),
	      atomic_load(&sh->sent[0]), atomic_load(&sh->sent[1]));
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(bus_name));
	printf("ok queue_join_race: %d groups joined in flow (EARLIEST and LATEST), %lu + %lu messages, %lu + %lu timed-out puts, %.1f s\n",
	       rounds, atomic_load(&sh->sent[0]), atomic_load(&sh->sent[1]),
	       atomic_load(&sh->timeouts[0]), atomic_load(&sh->timeouts[1]),
	       (double)(test_now_ns() - t0) / 1e9);
	printf("PASS queue_join_race\n");
	return 0;
}

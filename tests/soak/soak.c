/*
 * soak.c -- a bounded mixed workload with periodic kills and restarts,
 * checking totals at the end (promises 1, 2, 3, 6 over minutes, not
 * rounds).
 *
 * Processes, all on one bus, each restarted when killed:
 *   writer      publishes a 2 KiB patterned state value in a loop
 *   reader x2   read it and check every value is whole (never killed by
 *               the value: a torn read is reported through the shared
 *               page and fails the run)
 *   producer x2 put messages with unique ids from a shared counter; an id
 *               is marked committed once put returned
 *   member x3   group "work" shares the stream; each delivery is marked
 *               (plain or redelivered)
 *   bc          group "bc" (never killed) sees every message
 *   locker x2   under one lock: a[0]++, pause, a[1]++ (repairs after
 *               EOWNERDEAD)
 * The supervisor kills a random restartable process every SOAK_KILL_MS
 * (default 150 ms) and restarts it. At the end: producers stop, the queue
 * is shut, members drain to end of stream, and every committed id must
 * have reached "work" and "bc"; unflagged duplicates, torn values and an
 * inconsistent lock counter fail; gc must leave only the supervisor, and
 * the bus is removed.
 *
 *   soak [SECONDS]     (default: $SOAK_SECONDS or 60)
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"

#define MAX_ID (1u << 23)
#define WORDS 256
#define LIVENESS_NS 20000000ll

enum { P_WRITER, P_READER1, P_READER2, P_PROD1, P_PROD2, P_MEM1, P_MEM2, P_MEM3, P_BC,
       P_LOCK1, P_LOCK2, NPROC };
static const char *const pname[NPROC] = {"writer", "reader", "reader", "producer", "producer",
	"member", "member", "member", "bc", "locker", "locker"};

struct shared {
	atomic_int failed;
	char why[256];
	atomic_int stop_producing;
	atomic_uint next_id;
	atomic_ullong reads, writes, locks, kills[NPROC];
	atomic_uchar committed[MAX_ID];
	atomic_uchar work[MAX_ID];      /* 1 plain, 2 flagged, |4 plain twice */
	atomic_uchar bc[MAX_ID];
};

static struct shared *sh;
static const char *bus_name;

static void fail(const char *fmt, uint64_t a, uint64_t b)
{
	if (atomic_exchange(&sh->failed, 1) == 0)
		snprintf(sh->why, sizeof(sh->why), fmt, (unsigned long long)a,
		         (unsigned long long)b);
	_exit(1);
}

static shmbus_bus_t *attach(void)
{
	shmbus_bus_t *b;

	if (shmbus_bus_open(bus_name, NULL, &b) != 0)
		fail("attach failed (%llu %llu)", 0, 0);
	shmbus_bus_set_liveness(b, LIVENESS_NS);
	return b;
}

static shmbus_state_t *state(shmbus_bus_t *b)
{
	shmbus_state_t *st;

	if (test_state_1d(b, "s", SHMBUS_UINT64, WORDS, &st) != 0)
		fail("state open (%llu %llu)", 0, 0);
	return st;
}

static shmbus_queue_t *queue(shmbus_bus_t *b)
{
	shmbus_queue_opts_t qo;
	shmbus_queue_t *q;

	shmbus_queue_opts_init(&qo);
	qo.slots = 256;
	qo.max_msg = 256;
	if (shmbus_queue_open(b, "q", &qo, &q) != 0)
		fail("queue open (%llu %llu)", 0, 0);
	return q;
}

static uint64_t word_of(uint64_t tag, uint64_t i)
{
	return tag * 0x9E3779B97F4A7C15ull + i;
}

static void run_writer(void)
{
	shmbus_state_t *st = state(attach());
	uint64_t v[WORDS], tag = (uint64_t)getpid() << 24, i;

	for (;;) {
		v[0] = ++tag;
		for (i = 1; i < WORDS; i++)
			v[i] = word_of(tag, i);
		if (shmbus_state_write(st, v, sizeof(v)) == 0)
			atomic_fetch_add(&sh->writes, 1);
		else
			usleep(1000);   /* the old writer's role not yet free */
	}
}

static void run_reader(void)
{
	shmbus_state_t *st = state(attach());
	uint64_t v[WORDS], seq, last = 0, i;

	for (;;) {
		int r = shmbus_state_read(st, v, sizeof(v), &seq);

		if (r == SHMBUS_ENODATA) {
			usleep(1000);
			continue;
		}
		if (r != 0)
			fail("state read error %llu (%llu)", (uint64_t)-r, 0);
		for (i = 1; i < WORDS; i++)
			if (v[i] != word_of(v[0], i))
				fail("torn state value at seq %llu word %llu", seq, i);
		if (seq < last)
			fail("state seq went back %llu < %llu", seq, last);
		last = seq;
		atomic_fetch_add(&sh->reads, 1);
	}
}

struct msg {
	uint32_t id, len;
	uint64_t check;
	uint8_t body[64];
};

static void run_producer(void)
{
	shmbus_queue_t *q = queue(attach());
	struct msg m;
	int r;

	while (!atomic_load(&sh->stop_producing)) {
		m.id = atomic_fetch_add(&sh->next_id, 1);
		if (m.id >= MAX_ID)
			break;
		m.len = 16 + m.id % 64;
		memset(m.body, (int)m.id, sizeof(m.body));
		m.check = test_hash(m.body, m.len - 16) ^ m.id;
		r = shmbus_queue_put(q, &m, m.len, 2000000000ll);
		if (r == 0)
			atomic_store(&sh->committed[m.id], 1);
		else if (r == SHMBUS_ECLOSED)
			break;
		else if (r != SHMBUS_ETIMEDOUT)
			fail("put error %llu (%llu)", (uint64_t)-r, 0);
	}
	pause();
	_exit(0);
}

/* peek, mark, release: a member killed before its release has the message
 * redelivered, so a mark is never missing for a consumed message. */
static void run_member(const char *group, atomic_uchar *marks)
{
	shmbus_queue_t *q = queue(attach());
	const struct msg *m;
	shmbus_msg_t mm;
	int r;

	if (shmbus_queue_join(q, group, SHMBUS_GROUP_EARLIEST) != 0)
		fail("join failed (%llu %llu)", 0, 0);
	for (;;) {
		r = shmbus_queue_peek(q, &mm, 2000000000ll);
		if (r == SHMBUS_ECLOSED)
			_exit(0);
		if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_ELAPPED)
			continue;
		if (r != 0)
			fail("peek error %llu (%llu)", (uint64_t)-r, 0);
		m = mm.data;
		if (mm.len < 16 || mm.len != m->len || m->id >= MAX_ID ||
		    m->check != (test_hash(m->body, m->len - 16) ^ m->id))
			fail("corrupt message id %llu len %llu", m->id, mm.len);
		if (mm.flags & SHMBUS_MSG_REDELIVERED)
			atomic_fetch_or(&marks[m->id], 2);
		else if (atomic_fetch_or(&marks[m->id], 1) & 1)
			fail("message %llu delivered twice without the flag (%llu)", m->id, 0);
		if (shmbus_queue_release(q) != 0)
			fail("release failed (%llu %llu)", 0, 0);
	}
}

static void run_locker(void)
{
	shmbus_bus_t *b = attach();
	shmbus_lock_t *l;
	shmbus_array_t *a;
	int64_t x, y;
	int r;

	if (shmbus_lock_open(b, "lk", NULL, &l) != 0 ||
	    shmbus_array_open(b, "a", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 2, .create = 1), &a) != 0)
		fail("lock open (%llu %llu)", 0, 0);
	for (;;) {
		r = shmbus_lock_lock(l, 5000000000ll);
		if (r != 0 && r != SHMBUS_EOWNERDEAD)
			fail("lock error %llu (%llu)", (uint64_t)-r, 0);
		shmbus_array_get(a, 0, &x);
		shmbus_array_get(a, 1, &y);
		if (r == SHMBUS_EOWNERDEAD) {
			if (x != y && x != y + 1)
				fail("lock counters %llu/%llu after owner death", (uint64_t)x, (uint64_t)y);
			shmbus_array_set(a, 1, &x);
			shmbus_lock_consistent(l);
		} else if (x != y) {
			fail("lock counters %llu/%llu", (uint64_t)x, (uint64_t)y);
		}
		shmbus_array_add_i64(a, 0, 1, NULL);
		usleep(50);
		shmbus_array_add_i64(a, 1, 1, NULL);
		shmbus_lock_unlock(l);
		atomic_fetch_add(&sh->locks, 1);
	}
}

static pid_t start(int k)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	switch (k) {
	case P_WRITER: run_writer(); break;
	case P_READER1: case P_READER2: run_reader(); break;
	case P_PROD1: case P_PROD2: run_producer(); break;
	case P_MEM1: case P_MEM2: case P_MEM3: run_member("work", sh->work); break;
	case P_BC: run_member("bc", sh->bc); break;
	default: run_locker(); break;
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *env = getenv("SOAK_SECONDS");
	double secs = argc > 1 ? atof(argv[1]) : env ? atof(env) : 60;
	const char *km = getenv("SOAK_KILL_MS");
	int kill_ms = km ? atoi(km) : 150, k, status;
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	shmbus_bus_info_t bi = {.size_of = sizeof(bi)};
	pid_t pids[NPROC];
	uint64_t end, kills = 0, committed = 0, lost_work = 0, lost_bc = 0, flagged = 0, i;
	uint32_t reaped;

	setvbuf(stdout, NULL, _IOLBF, 0);
	bus_name = test_bus_name("soak");
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap");
	shmbus_bus_opts_init(&o);
	o.size = 16 << 20;
	OK(shmbus_bus_create(bus_name, &o, &b));
	OK(shmbus_bus_set_liveness(b, LIVENESS_NS));
	q = queue(b);
	/* Create both groups before any message, so each sees everything. */
	{
		shmbus_queue_t *g;

		g = queue(b);
		OK(shmbus_queue_join(g, "work", SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE));
		shmbus_queue_close(g);
		g = queue(b);
		OK(shmbus_queue_join(g, "bc", SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE));
		shmbus_queue_close(g);
	}
	fflush(stdout);
	for (k = 0; k < NPROC; k++)
		pids[k] = start(k);
	srand((unsigned)getpid());
	printf("soak: %.0f s, a kill every %d ms\n", secs, kill_ms);
	end = test_now_ns() + (uint64_t)(secs * 1e9);
	while (test_now_ns() < end && !atomic_load(&sh->failed)) {
		usleep((useconds_t)kill_ms * 1000);
		/* Any process but "bc" (which must see everything). */
		do
			k = rand() % NPROC;
		while (k == P_BC);
		kill(pids[k], SIGKILL);
		waitpid(pids[k], &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			break;
		atomic_fetch_add(&sh->kills[k], 1);
		kills++;
		pids[k] = start(k);
	}
	/* Wind down: stop producing, end the stream, let members drain. */
	atomic_store(&sh->stop_producing, 1);
	for (k = P_PROD1; k <= P_PROD2; k++) {
		kill(pids[k], SIGKILL);
		waitpid(pids[k], &status, 0);
	}
	OK(shmbus_queue_shut(q));
	for (k = P_MEM1; k <= P_BC; k++) {
		uint64_t t0 = test_now_ns();

		while (waitpid(pids[k], &status, WNOHANG) == 0) {
			CHECK(test_now_ns() - t0 < 60000000000ull, "%s did not drain within 60 s",
			      pname[k]);
			usleep(10000);
		}
		CHECK(!atomic_load(&sh->failed), "%s", sh->why);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s exit status 0x%x",
		      pname[k], status);
	}
	for (k = 0; k < NPROC; k++) {
		if (k >= P_PROD1 && k <= P_BC)
			continue;
		kill(pids[k], SIGKILL);
		waitpid(pids[k], &status, 0);
	}
	CHECK(!atomic_load(&sh->failed), "%s", sh->why);
	for (i = 0; i < MAX_ID && i < atomic_load(&sh->next_id); i++) {
		if (!atomic_load(&sh->committed[i]))
			continue;
		committed++;
		lost_work += !atomic_load(&sh->work[i]);
		lost_bc += !atomic_load(&sh->bc[i]);
		flagged += (atomic_load(&sh->work[i]) & 2) != 0;
	}
	printf("  %llu kills; %llu state writes, %llu whole reads; %llu lock rounds\n",
	       (unsigned long long)kills, (unsigned long long)atomic_load(&sh->writes),
	       (unsigned long long)atomic_load(&sh->reads),
	       (unsigned long long)atomic_load(&sh->locks));
	printf("  %llu messages committed; work: %llu lost, %llu redelivered; bc: %llu lost\n",
	       (unsigned long long)committed, (unsigned long long)lost_work,
	       (unsigned long long)flagged, (unsigned long long)lost_bc);
	CHECK(lost_work == 0 && lost_bc == 0, "committed messages lost: work %llu, bc %llu",
	      (unsigned long long)lost_work, (unsigned long long)lost_bc);
	CHECK(committed > 0 && atomic_load(&sh->reads) > 0 && atomic_load(&sh->locks) > 0,
	      "every part made progress");
	OK(shmbus_bus_gc(b, &reaped));
	OK(shmbus_bus_info(b, &bi));
	CHECK(bi.peers == 1, "after gc: %u peers, want only the supervisor", bi.peers);
	shmbus_queue_close(q);
	OK(shmbus_bus_close(b));
	OK(shmbus_bus_unlink(bus_name));
	printf("soak: ok\n");
	return 0;
}

/*
 * test_sync.c -- lock, event, semaphore and turn channels within one
 * process (threads) and with short-lived children: exclusion, the
 * owner-died protocol, wake-ups that are never lost, strict turn order,
 * timeouts, misuse codes and hostile contents.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/wait.h>

#include "testutil.h"
#include "internal.h"
#include "testarea.h"

static const char *bus_name;
static shmbus_bus_t *bus;

#define THREADS 4

static uint8_t *area_of(const char *name)
{
	return test_area_of(bus, name);
}

/* ---- lock ----------------------------------------------------------- */

static long plain_counter;
static int lock_iters;

static void *lock_worker(void *arg)
{
	shmbus_lock_t *l;
	int i;

	(void)arg;
	OK(shmbus_lock_open(bus, "L", T_OPTS(shmbus_lock_opts_t, .create = 0), &l));
	for (i = 0; i < lock_iters; i++) {
		OK(shmbus_lock_lock(l, 10000000000ll));
		plain_counter++;        /* a data race unless the lock excludes */
		OK(shmbus_lock_unlock(l));
	}
	shmbus_lock_close(l);
	return NULL;
}

static void test_lock_excludes_threads(void)
{
	pthread_t th[THREADS];
	shmbus_lock_t *l, *l2;
	int i;

	lock_iters = (int)(20000 * test_scale());
	OK(shmbus_lock_open(bus, "L", NULL, &l));
	OK(shmbus_lock_open(bus, "L", T_OPTS(shmbus_lock_opts_t, .create = 0), &l2));
	OK(shmbus_lock_lock(l, 0));
	EXPECT_CODE(shmbus_lock_lock(l, 0), SHMBUS_ESTATE);
	EXPECT_CODE(shmbus_lock_lock(l2, 0), SHMBUS_ETIMEDOUT);
	EXPECT_CODE(shmbus_lock_lock(l2, 20000000), SHMBUS_ETIMEDOUT);
	EXPECT_CODE(shmbus_lock_unlock(l2), SHMBUS_ESTATE);
	EXPECT_CODE(shmbus_lock_consistent(l), SHMBUS_ESTATE);
	OK(shmbus_lock_unlock(l));
	OK(shmbus_lock_lock(l2, 0));
	OK(shmbus_lock_unlock(l2));
	shmbus_lock_close(l2);
	for (i = 0; i < THREADS; i++)
		CHECK(pthread_create(&th[i], NULL, lock_worker, NULL) == 0, "pthread_create");
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	CHECK(plain_counter == (long)THREADS * lock_iters,
	      "counter under the lock is %ld, expected %ld", plain_counter,
	      (long)THREADS * lock_iters);
	shmbus_lock_close(l);
	printf("  lock: %d threads x %d increments exact\n", THREADS, lock_iters);
}

/* A child takes the lock and dies holding it. */
static void die_holding(const char *name)
{
	pid_t pid = (fflush(stdout), fork());
	int status;

	if (pid == 0) {
		shmbus_bus_t *b;
		shmbus_lock_t *l;

		int r = shmbus_bus_open(bus_name, NULL, &b);

		if (!r)
			r = shmbus_lock_open(b, name, T_OPTS(shmbus_lock_opts_t, .create = 0), &l);
		if (!r)
			r = shmbus_lock_lock(l, 1000000000);
		if (r && r != SHMBUS_EOWNERDEAD) {
			fprintf(stderr, "child: %s\n", shmbus_last_error());
			_exit(2);
		}
		_exit(0);               /* exits without unlocking */
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "child took the lock (status %d)", status);
}

static void test_owner_died(void)
{
	shmbus_lock_t *l;
	uint32_t reaped = 0;
	uint64_t t0;

	OK(shmbus_bus_set_liveness(bus, 20000000));
	OK(shmbus_lock_open(bus, "D", NULL, &l));
	/* Repaired: EOWNERDEAD, consistent, then the lock is healthy. */
	die_holding("D");
	t0 = test_now_ns();
	EXPECT_CODE(shmbus_lock_lock(l, 5000000000ll), SHMBUS_EOWNERDEAD);
	CHECK(test_now_ns() - t0 < 3000000000ull, "dead holder detected in %llu ms",
	      (unsigned long long)((test_now_ns() - t0) / 1000000));
	OK(shmbus_lock_consistent(l));
	OK(shmbus_lock_unlock(l));
	OK(shmbus_lock_lock(l, 0));
	OK(shmbus_lock_unlock(l));
	/* Reaped by gc first: the next locker still has to repair. */
	die_holding("D");
	OK(shmbus_bus_gc(bus, &reaped));
	CHECK(reaped >= 1, "gc reaped %u, expected the dead lock holder", reaped);
	EXPECT_CODE(shmbus_lock_lock(l, 0), SHMBUS_EOWNERDEAD);
	/* Unlocked unrepaired: unrecoverable from then on. */
	OK(shmbus_lock_unlock(l));
	EXPECT_CODE(shmbus_lock_lock(l, 0), SHMBUS_ENOTRECOVERABLE);
	EXPECT_CODE(shmbus_lock_lock(l, 1000000), SHMBUS_ENOTRECOVERABLE);
	shmbus_lock_close(l);
	/* A dying repairer passes EOWNERDEAD on. */
	OK(shmbus_lock_open(bus, "D2", NULL, &l));
	die_holding("D2");
	die_holding("D2");      /* its child gets EOWNERDEAD, which counts as taken */
	EXPECT_CODE(shmbus_lock_lock(l, 5000000000ll), SHMBUS_EOWNERDEAD);
	OK(shmbus_lock_consistent(l));
	OK(shmbus_lock_unlock(l));
	shmbus_lock_close(l);
	OK(shmbus_bus_set_liveness(bus, 200000000));
	printf("  lock: owner death detected, repair protocol, unrecoverable after no repair\n");
}

/* A waiter killed in its sleep leaves no trace: after the next unlock no
 * later unlock has anyone to wake (a stale count of sleepers would make
 * every unlock a system call for good). */
static void test_dead_waiter_leaves_nothing(void)
{
	shmbus_lock_t *l;
	_Atomic uint32_t *contended;
	uint64_t t0;
	pid_t pid;
	int status;

	OK(shmbus_lock_open(bus, "W", NULL, &l));
	contended = (_Atomic uint32_t *)(area_of("W") + 8);
	OK(shmbus_lock_lock(l, 0));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		shmbus_bus_t *b;
		shmbus_lock_t *c;

		if (shmbus_bus_open(bus_name, NULL, &b) || shmbus_lock_open(b, "W", T_OPTS(shmbus_lock_opts_t, .create = 0), &c))
			_exit(2);
		shmbus_lock_lock(c, 30000000000ll);    /* sleeps until killed */
		_exit(3);
	}
	t0 = test_now_ns();
	while ((atomic_load(contended) & 1) == 0)
		CHECK(test_now_ns() - t0 < 10000000000ull, "the child never went to sleep");
	usleep(10000);
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status), "child killed (%d)", status);
	OK(shmbus_lock_unlock(l));
	CHECK((atomic_load(contended) & 1) == 0, "unlock cleared the sleeper flag");
	OK(shmbus_lock_lock(l, 0));
	OK(shmbus_lock_unlock(l));
	CHECK((atomic_load(contended) & 1) == 0, "no sleeper recorded after the dead one");
	shmbus_lock_close(l);
	printf("  lock: a waiter killed asleep leaves nothing to wake\n");
}

/* ---- event ---------------------------------------------------------- */

static _Atomic int event_woken;

static void *event_waiter(void *arg)
{
	shmbus_event_t *e;
	int r;

	(void)arg;
	OK(shmbus_event_open(bus, "E", T_OPTS(shmbus_event_opts_t, .create = 0), &e));
	r = shmbus_event_wait(e, 10000000000ll);
	CHECK(r == 0, "waiter got %d (%s)", r, shmbus_strerror(r));
	atomic_fetch_add(&event_woken, 1);
	shmbus_event_close(e);
	return NULL;
}

static void wait_event_waiters(unsigned n)
{
	shmbus_channel_info_t info = {.size_of = sizeof(info)};
	uint64_t t0 = test_now_ns();

	for (;;) {
		OK(shmbus_channel_info(bus, "E", &info));
		if (info.capacity >= n)
			return;
		CHECK(test_now_ns() - t0 < 30000000000ull, "only %llu of %u waiters announced",
		      (unsigned long long)info.capacity, n);
		usleep(1000);
	}
}

static void test_event(void)
{
	pthread_t th[THREADS];
	shmbus_event_t *e;
	int i, round;

	OK(shmbus_event_open(bus, "E", NULL, &e));
	CHECK(!shmbus_event_is_set(e), "new event is clear");
	EXPECT_CODE(shmbus_event_wait(e, 0), SHMBUS_ETIMEDOUT);
	EXPECT_CODE(shmbus_event_wait(e, 10000000), SHMBUS_ETIMEDOUT);
	OK(shmbus_event_set(e));
	OK(shmbus_event_set(e));
	CHECK(shmbus_event_is_set(e), "event is set");
	OK(shmbus_event_wait(e, 0));
	OK(shmbus_event_clear(e));
	CHECK(shmbus_event_is_set(e) == 0, "event cleared");
	/* A set followed at once by a clear still releases every waiter. */
	for (round = 0; round < 20; round++) {
		atomic_store(&event_woken, 0);
		for (i = 0; i < THREADS; i++)
			CHECK(pthread_create(&th[i], NULL, event_waiter, NULL) == 0, "create");
		/* Pulse only once every waiter is announced (asleep or about
		 * to be): a thread that only starts after the clear would
		 * rightly wait for the next set. */
		wait_event_waiters(THREADS);
		OK(shmbus_event_set(e));
		OK(shmbus_event_clear(e));
		for (i = 0; i < THREADS; i++)
			pthread_join(th[i], NULL);
		CHECK(atomic_load(&event_woken) == THREADS, "round %d: %d of %d waiters woken",
		      round, atomic_load(&event_woken), THREADS);
	}
	shmbus_event_close(e);
	printf("  event: set/clear/is_set, timeouts, a set+clear pulse wakes all %d waiters\n",
	       THREADS);
}

/* ---- semaphore ------------------------------------------------------ */

static int sem_iters;
static _Atomic long sem_taken;

static void *sem_consumer(void *arg)
{
	shmbus_sem_t *s;
	int i;

	(void)arg;
	OK(shmbus_sem_open(bus, "S", T_OPTS(shmbus_sem_opts_t, .create = 0), &s));
	for (i = 0; i < sem_iters; i++) {
		OK(shmbus_sem_wait(s, 10000000000ll));
		atomic_fetch_add(&sem_taken, 1);
	}
	shmbus_sem_close(s);
	return NULL;
}

static void *sem_producer(void *arg)
{
	shmbus_sem_t *s;
	int i;

	(void)arg;
	OK(shmbus_sem_open(bus, "S", T_OPTS(shmbus_sem_opts_t, .create = 0), &s));
	for (i = 0; i < sem_iters; i++)
		OK(shmbus_sem_post(s));
	shmbus_sem_close(s);
	return NULL;
}

static void test_sem(void)
{
	pthread_t th[THREADS];
	shmbus_sem_t *s, *s2;
	uint32_t v;
	int i;

	OK(shmbus_sem_open(bus, "S", T_OPTS(shmbus_sem_opts_t, .create = 1, .initial = 2), &s));
	OK(shmbus_sem_open(bus, "S", T_OPTS(shmbus_sem_opts_t, .create = 1, .initial = 7), &s2));   /* initial ignored: exists */
	OK(shmbus_sem_value(s2, &v));
	CHECK(v == 2, "initial value 2 kept, got %u", v);
	OK(shmbus_sem_wait(s, 0));
	OK(shmbus_sem_wait(s2, 0));
	EXPECT_CODE(shmbus_sem_wait(s, 0), SHMBUS_ETIMEDOUT);
	EXPECT_CODE(shmbus_sem_wait(s, 10000000), SHMBUS_ETIMEDOUT);
	shmbus_sem_close(s2);
	EXPECT_CODE(shmbus_sem_open(bus, "S-none", T_OPTS(shmbus_sem_opts_t, .create = 0), &s2), SHMBUS_ENOENT);
	sem_iters = (int)(50000 * test_scale());
	for (i = 0; i < THREADS; i++)
		CHECK(pthread_create(&th[i], NULL, i & 1 ? sem_producer : sem_consumer, NULL) == 0,
		      "create");
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	OK(shmbus_sem_value(s, &v));
	CHECK(atomic_load(&sem_taken) == (long)(THREADS / 2) * sem_iters && v == 0,
	      "taken %ld (expected %ld), value left %u (expected 0)", atomic_load(&sem_taken),
	      (long)(THREADS / 2) * sem_iters, v);
	shmbus_sem_close(s);
	printf("  semaphore: %d posts and waits across threads, none lost\n",
	       (THREADS / 2) * sem_iters);
}

/* Many rounds of: several waiters asleep, then as many posts in a burst.
 * Every waiter must get its unit (a lost wake-up leaves one asleep with a
 * unit left over, and it times out). */
static void *sem_once(void *arg)
{
	shmbus_sem_t *s;
	int r;

	OK(shmbus_sem_open(bus, "S2", T_OPTS(shmbus_sem_opts_t, .create = 0), &s));
	r = shmbus_sem_wait(s, 10000000000ll);
	*(int *)arg = r;
	shmbus_sem_close(s);
	return NULL;
}

static void test_sem_burst(void)
{
	int rounds = (int)(200 * test_scale()), round, i, res[THREADS];
	pthread_t th[THREADS];
	shmbus_sem_t *s;
	uint32_t v;

	if (rounds < 20)
		rounds = 20;
	OK(shmbus_sem_open(bus, "S2", NULL, &s));
	for (round = 0; round < rounds; round++) {
		uint64_t t0 = test_now_ns();

		for (i = 0; i < THREADS; i++)
			CHECK(pthread_create(&th[i], NULL, sem_once, &res[i]) == 0, "create");
		if (round & 1)
			usleep(2000);   /* let them fall asleep; else race the posts */
		for (i = 0; i < THREADS; i++)
			OK(shmbus_sem_post(s));
		for (i = 0; i < THREADS; i++) {
			pthread_join(th[i], NULL);
			CHECK(res[i] == 0, "round %d: waiter %d got %d", round, i, res[i]);
		}
		/* A waiter whose wake-up was lost sleeps until its 10 s timeout,
		 * then still finds its unit: only the time tells. */
		CHECK(test_now_ns() - t0 < 5000000000ull, "round %d took %.1f s: a lost wake-up",
		      round, (test_now_ns() - t0) / 1e9);
	}
	OK(shmbus_sem_value(s, &v));
	CHECK(v == 0, "units left over: %u", v);
	shmbus_sem_close(s);
	printf("  semaphore: %d bursts of %d posts to %d waiters, every waiter woken\n", rounds,
	       THREADS, THREADS);
}

/* ---- turn ----------------------------------------------------------- */

static int turn_rounds;
static int *turn_log;
static int turn_pos;            /* written only by the party holding the turn */

static void *turn_party(void *arg)
{
	shmbus_turn_t *t = arg;
	uint32_t me;
	int i;

	OK(shmbus_turn_register(t, &me));
	for (i = 0; i < turn_rounds; i++) {
		OK(shmbus_turn_acquire(t, 10000000000ll));
		turn_log[turn_pos++] = (int)me;
		OK(shmbus_turn_release(t));
	}
	return NULL;
}

static void test_turn_order(void)
{
	shmbus_turn_t *t[3];
	pthread_t th[3];
	uint32_t p;
	int i;

	turn_rounds = (int)(1000 * test_scale());
	turn_log = calloc((size_t)turn_rounds * 3, sizeof(int));
	for (i = 0; i < 3; i++)
		OK(shmbus_turn_open(bus, "T", T_OPTS(shmbus_turn_opts_t, .create = 1, .max_parties = 8), &t[i]));
	EXPECT_CODE(shmbus_turn_acquire(t[0], 0), SHMBUS_ESTATE);
	/* Register in order so that party k is thread k. */
	for (i = 0; i < 3; i++) {
		OK(shmbus_turn_register(t[i], &p));
		CHECK(p == (uint32_t)i, "party %u registered as %d", p, i);
	}
	EXPECT_CODE(shmbus_turn_release(t[1]), SHMBUS_ESTATE);
	EXPECT_CODE(shmbus_turn_acquire(t[1], 10000000), SHMBUS_ETIMEDOUT);
	for (i = 2; i >= 0; i--)   /* start the last party first */
		CHECK(pthread_create(&th[i], NULL, turn_party, t[i]) == 0, "create");
	for (i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	CHECK(turn_pos == 3 * turn_rounds, "%d turns logged, expected %d", turn_pos,
	      3 * turn_rounds);
	for (i = 0; i < turn_pos; i++)
		CHECK(turn_log[i] == i % 3, "turn %d went to party %d, expected %d", i,
		      turn_log[i], i % 3);
	for (i = 0; i < 3; i++)
		shmbus_turn_close(t[i]);
	free(turn_log);
	printf("  turn: 3 parties x %d turns in strict order\n", turn_rounds);
}

static void test_turn_skips_dead(void)
{
	shmbus_turn_t *t;
	uint32_t p;
	pid_t pid;
	int status;
	uint64_t t0;

	OK(shmbus_bus_set_liveness(bus, 20000000));
	OK(shmbus_turn_open(bus, "T2", T_OPTS(shmbus_turn_opts_t, .create = 1, .max_parties = 4), &t));
	OK(shmbus_turn_register(t, &p));
	CHECK(p == 0, "first party is 0, got %u", p);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		shmbus_bus_t *b;
		shmbus_turn_t *c;

		if (shmbus_bus_open(bus_name, NULL, &b) || shmbus_turn_open(b, "T2", T_OPTS(shmbus_turn_opts_t, .create = 0), &c) ||
		    shmbus_turn_register(c, &p) || p != 1)
			_exit(2);
		_exit(0);               /* dies registered */
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "child registered as party 1 (status %d)", status);
	OK(shmbus_turn_acquire(t, 0));
	OK(shmbus_turn_release(t));     /* hands the turn to dead party 1 */
	t0 = test_now_ns();
	OK(shmbus_turn_acquire(t, 5000000000ll));
	CHECK(test_now_ns() - t0 < 3000000000ull, "dead party skipped after %llu ms",
	      (unsigned long long)((test_now_ns() - t0) / 1000000));
	OK(shmbus_turn_release(t));     /* only party left: keeps it */
	OK(shmbus_turn_acquire(t, 0));
	OK(shmbus_turn_release(t));
	shmbus_turn_close(t);
	OK(shmbus_bus_set_liveness(bus, 200000000));
	printf("  turn: a dead party's turn is skipped\n");
}

/* ---- kinds, names, hostile contents --------------------------------- */

static void test_kinds_and_corruption(void)
{
	shmbus_channel_info_t info = {.size_of = sizeof(info)};
	shmbus_lock_t *l;
	shmbus_event_t *e;
	shmbus_turn_t *t;
	uint32_t p;

	EXPECT_CODE(shmbus_event_open(bus, "L", NULL, &e), SHMBUS_ETYPE);
	EXPECT_CODE(shmbus_lock_open(bus, "nolock", T_OPTS(shmbus_lock_opts_t, .create = 0), &l), SHMBUS_ENOENT);
	EXPECT_CODE(shmbus_lock_open(bus, "bad/name", NULL, &l), SHMBUS_EINVAL);
	EXPECT_CODE(shmbus_turn_open(bus, "Tbig", T_OPTS(shmbus_turn_opts_t, .create = 1, .max_parties = 100000), &t), SHMBUS_EINVAL);
	OK(shmbus_channel_info(bus, "T", &info));
	CHECK(info.kind == SHMBUS_KIND_TURN && info.capacity == 8, "turn info: kind %d cap %llu",
	      info.kind, (unsigned long long)info.capacity);
	OK(shmbus_lock_open(bus, "X", NULL, &l));
	OK(shmbus_turn_open(bus, "XT", T_OPTS(shmbus_turn_opts_t, .create = 1, .max_parties = 2), &t));
	OK(shmbus_turn_register(t, &p));
	/* The turn word (first of the area) names party 999 of 2. */
	*(uint32_t *)area_of("XT") = 999;
	EXPECT_CODE(shmbus_turn_acquire(t, 100000000), SHMBUS_ECORRUPT);
	/* The lock's magic (after its 64-byte lock line) is overwritten. */
	shmbus_lock_close(l);
	*(uint32_t *)(area_of("X") + 64) = 0xdeadbeef;
	EXPECT_CODE(shmbus_lock_open(bus, "X", T_OPTS(shmbus_lock_opts_t, .create = 0), &l), SHMBUS_ECORRUPT);
	/* A lock word holding garbage health is refused, not trusted. */
	OK(shmbus_lock_open(bus, "L", T_OPTS(shmbus_lock_opts_t, .create = 0), &l));
	*(uint32_t *)(area_of("L") + 12) = 77;
	EXPECT_CODE(shmbus_lock_lock(l, 0), SHMBUS_ENOTRECOVERABLE);
	shmbus_lock_close(l);
	shmbus_turn_close(t);
	printf("  kinds checked; hostile turn word, magic and health give error codes\n");
}

int main(void)
{
	bus_name = test_bus_name("sync");
	OK(shmbus_bus_create(bus_name, NULL, &bus));
	test_lock_excludes_threads();
	test_owner_died();
	test_dead_waiter_leaves_nothing();
	test_event();
	test_sem();
	test_sem_burst();
	test_turn_order();
	test_turn_skips_dead();
	test_kinds_and_corruption();
	shmbus_bus_close(bus);
	OK(shmbus_bus_unlink(bus_name));
	printf("test_sync: ok\n");
	return 0;
}

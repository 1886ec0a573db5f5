/*
 * sync_exact.c -- N processes hammering the same sync objects get exact
 * results: a plain (non-atomic) counter incremented under a lock channel,
 * another under a semaphore of 1, and a turn channel that hands control
 * round-robin, each process logging its party number in its turn: the log
 * must read 0,1,..,N-1,0,1,.. with no gap or repeat. The counters live in
 * an anonymous shared mapping outside the bus, so only the sync objects
 * can make them exact.
 */
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"

#define PROCS 4
#define MAX_WAIT_NS 5000000000ull

struct shared {
	long lock_counter;
	long sem_counter;
	long turn_pos;
	int log[];
};

static const char *bus_name;

static void child(struct shared *sh, int iters, int turns)
{
	shmbus_bus_t *b;
	shmbus_lock_t *l;
	shmbus_sem_t *s, *r;
	shmbus_turn_t *t;
	shmbus_event_t *go;
	uint32_t me;
	int i;

	OK(shmbus_bus_open(bus_name, NULL, &b));
	OK(shmbus_lock_open(b, "L", T_OPTS(shmbus_lock_opts_t, .create = 0), &l));
	OK(shmbus_sem_open(b, "S", T_OPTS(shmbus_sem_opts_t, .create = 0), &s));
	OK(shmbus_turn_open(b, "T", T_OPTS(shmbus_turn_opts_t, .create = 0), &t));
	OK(shmbus_event_open(b, "go", T_OPTS(shmbus_event_opts_t, .create = 0), &go));
	OK(shmbus_turn_register(t, &me));
	OK(shmbus_sem_open(b, "ready", T_OPTS(shmbus_sem_opts_t, .create = 0), &r));
	OK(shmbus_sem_post(r));
	shmbus_sem_close(r);
	OK(shmbus_event_wait(go, 10000000000ll));
	for (i = 0; i < iters; i++) {
		uint64_t t0 = test_now_ns(), t1;

		OK(shmbus_lock_lock(l, 10000000000ll));
		t1 = test_now_ns();
		sh->lock_counter++;
		OK(shmbus_lock_unlock(l));
		OK(shmbus_sem_wait(s, 10000000000ll));
		sh->sem_counter++;
		OK(shmbus_sem_post(s));
		/* A lost wake-up shows as a wait that ends only with its
		 * liveness slice (lock) or its whole timeout (semaphore), and
		 * then succeeds: bound each wait (generously: the machine may
		 * be loaded). */
		CHECK(t1 - t0 < MAX_WAIT_NS, "party %u: lock_lock took %.1f s", me, (t1 - t0) / 1e9);
		CHECK(test_now_ns() - t1 < MAX_WAIT_NS, "party %u: unlock + sem_wait took %.1f s", me,
		      (test_now_ns() - t1) / 1e9);
	}
	for (i = 0; i < turns; i++) {
		OK(shmbus_turn_acquire(t, 10000000000ll));
		sh->log[sh->turn_pos++] = (int)me;
		OK(shmbus_turn_release(t));
	}
	shmbus_turn_close(t);
	shmbus_event_close(go);
	shmbus_sem_close(s);
	shmbus_lock_close(l);
	shmbus_bus_close(b);
	_exit(0);
}

int main(void)
{
	int iters = (int)(20000 * test_scale()), turns = (int)(2000 * test_scale());
	shmbus_bus_t *b;
	shmbus_lock_t *l;
	shmbus_sem_t *s, *ready;
	shmbus_turn_t *t;
	shmbus_event_t *go;
	struct shared *sh;
	int i, status;
	uint64_t t0, dt;
	pid_t pids[PROCS];

	bus_name = test_bus_name("syncx");
	OK(shmbus_bus_create(bus_name, NULL, &b));
	OK(shmbus_lock_open(b, "L", NULL, &l));
	OK(shmbus_sem_open(b, "S", T_OPTS(shmbus_sem_opts_t, .create = 1, .initial = 1), &s));
	OK(shmbus_turn_open(b, "T", T_OPTS(shmbus_turn_opts_t, .create = 1, .max_parties = PROCS), &t));
	OK(shmbus_event_open(b, "go", NULL, &go));
	OK(shmbus_sem_open(b, "ready", NULL, &ready));
	sh = mmap(NULL, sizeof(*sh) + sizeof(int) * (size_t)turns * PROCS,
	          PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap");
	for (i = 0; i < PROCS; i++) {
		fflush(stdout);
		pids[i] = fork();
		if (pids[i] == 0)
			child(sh, iters, turns);
	}
	/* Parties register in any order; the log is checked against the
	 * registration order, which is what a turn promises. Start only when
	 * all have registered. */
	for (i = 0; i < PROCS; i++)
		OK(shmbus_sem_wait(ready, 10000000000ll));
	t0 = test_now_ns();
	OK(shmbus_event_set(go));
	for (i = 0; i < PROCS; i++)
		CHECK(waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0, "child %d status %d", i, status);
	dt = test_now_ns() - t0;
	CHECK(sh->lock_counter == (long)PROCS * iters, "lock counter %ld, expected %ld",
	      sh->lock_counter, (long)PROCS * iters);
	CHECK(sh->sem_counter == (long)PROCS * iters, "semaphore counter %ld, expected %ld",
	      sh->sem_counter, (long)PROCS * iters);
	CHECK(sh->turn_pos == (long)PROCS * turns, "turn log has %ld entries, expected %ld",
	      sh->turn_pos, (long)PROCS * turns);
	for (i = 0; i < PROCS * turns; i++)
		CHECK(sh->log[i] == i % PROCS, "turn %d went to party %d, expected %d", i,
		      sh->log[i], i % PROCS);
	printf("  %d processes: %d lock + %d semaphore increments exact, %d turns in order (%.2f s)\n",
	       PROCS, PROCS * iters, PROCS * iters, PROCS * turns, dt / 1e9);
	shmbus_turn_close(t);
	shmbus_event_close(go);
	shmbus_sem_close(s);
	shmbus_sem_close(ready);
	shmbus_lock_close(l);
	shmbus_bus_close(b);
	OK(shmbus_bus_unlink(bus_name));
	printf("sync_exact: ok\n");
	return 0;
}

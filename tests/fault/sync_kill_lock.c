/*
 * sync_kill_lock.c -- promise 3 for locks and turns: a process killed with
 * SIGKILL while holding a lock channel (often in the middle of the
 * critical section it guards) blocks nobody for longer than the liveness
 * timeout; the next locker gets SHMBUS_EOWNERDEAD, repairs and goes on,
 * and a survivor process keeps working throughout. The guarded data is
 * two counters that are equal outside the critical section; a locker
 * given EOWNERDEAD repairs them, one given 0 must find them equal.
 *
 * Every other holder stops itself (SIGSTOP) half-way through the guarded
 * update and is killed there, so at least that many takeovers must see
 * EOWNERDEAD; the others die by the kill-point hook (tests/faultinject.h)
 * just before their Nth shared-memory step counted from before they open
 * the bus, N = 1, 2, 3, ... over those rounds: inside bus open, lock open,
 * lock and unlock, while the survivor contends. Each kill point inside
 * lock and unlock is also enumerated alone by tests/fault/killpoints.c.
 *
 * Then the same for a turn (every victim by the hook): a party killed while
 * it registers, acquires or releases is skipped, and the survivors' turns
 * go on in order.
 */
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"
#include "faultinject.h"

struct shared {
	volatile long a, b;        /* guarded by the lock: equal when unlocked */
	_Atomic long ownerdead;    /* EOWNERDEAD results seen */
	_Atomic long survivor_ops;
	_Atomic int stop;
	_Atomic int turn_last;     /* last party that logged a turn */
	_Atomic long turn_bad;
	_Atomic long turns;
	_Atomic int holder;        /* pid inside the critical section, or 0 */
	_Atomic int stop_in_cs;    /* pid to stop itself inside the critical section */
};

static const char *bus_name;
static struct shared *sh;

static void locker(int survivor)
{
	shmbus_bus_t *b;
	shmbus_lock_t *l;
	volatile unsigned spin;

	OK(shmbus_bus_open(bus_name, NULL, &b));
	OK(shmbus_bus_set_liveness(b, 20000000));
	OK(shmbus_lock_open(b, "L", T_OPTS(shmbus_lock_opts_t, .create = 0), &l));
	while (!atomic_load(&sh->stop)) {
		int r = shmbus_lock_lock(l, 10000000000ll);

		if (r == SHMBUS_EOWNERDEAD) {
			atomic_fetch_add(&sh->ownerdead, 1);
			sh->b = sh->a;         /* repair */
			OK(shmbus_lock_consistent(l));
		} else if (r != 0) {
			FAIL("lock: %d (%s): %s", r, shmbus_strerror(r), shmbus_last_error());
		} else if (sh->a != sh->b) {
			FAIL("lock taken cleanly but the guarded counters differ: %ld vs %ld", sh->a,
			     sh->b);
		}
		sh->a++;
		atomic_store(&sh->holder, (int)getpid());
		/* Chosen to die holding the lock: stop here (half-way through
		 * the guarded update) for the parent's SIGKILL. */
		if (atomic_load(&sh->stop_in_cs) == (int)getpid())
			raise(SIGSTOP);
		for (spin = 0; spin < 20000; spin++)
			;
		atomic_store(&sh->holder, 0);
		sh->b++;
		OK(shmbus_lock_unlock(l));
		if (survivor)
			atomic_fetch_add(&sh->survivor_ops, 1);
	}
	_exit(0);
}

static void party(int survivor)
{
	shmbus_bus_t *b;
	shmbus_turn_t *t;
	uint32_t me;

	OK(shmbus_bus_open(bus_name, NULL, &b));
	OK(shmbus_bus_set_liveness(b, 20000000));
	OK(shmbus_turn_open(b, "T", T_OPTS(shmbus_turn_opts_t, .create = 0), &t));
	OK(shmbus_turn_register(t, &me));
	while (!atomic_load(&sh->stop)) {
		int r = shmbus_turn_acquire(t, 200000000);

		if (r == SHMBUS_ETIMEDOUT && atomic_load(&sh->stop))
			break;
		if (r)
			FAIL("turn: %d (%s): %s", r, shmbus_strerror(r), shmbus_last_error());
		atomic_store(&sh->turn_last, (int)me);
		atomic_fetch_add(&sh->turns, 1);
		OK(shmbus_turn_release(t));
	}
	if (survivor)
		shmbus_turn_close(t);
	_exit(0);
}

static int hook_kills;

static void run_kills(void (*fn)(int), int rounds, const char *what)
{
	pid_t surv, v;
	int round, status, k = 0, stop;
	long before;
	uint64_t t0;

	atomic_store(&sh->stop, 0);
	fflush(stdout);
	surv = fork();
	if (surv == 0)
		fn(1);
	for (round = 0; round < rounds; round++) {
		stop = fn == locker && round % 2 == 0;
		fflush(stdout);
		v = fork();
		if (v == 0) {
			/* Every other round, the locker stops itself inside the
			 * critical section and is killed there (no timing); the
			 * others die at their Nth step. */
			if (stop)
				atomic_store(&sh->stop_in_cs, (int)getpid());
			else
				sb_fault_arm(k + 1, SIGKILL);
			fn(0);
		}
		if (stop) {
			CHECK(waitpid(v, &status, WUNTRACED) == v && WIFSTOPPED(status),
			      "%s round %d: the victim did not stop in the critical section (status %d)",
			      what, round, status);
			kill(v, SIGKILL);
			CHECK(waitpid(v, &status, 0) == v && WIFSIGNALED(status),
			      "%s round %d: victim killed (status %d)", what, round, status);
		} else {
			/* It loops until stopped: it reaches step k + 1 (a few
			 * calls; 20 s only catches a hang). */
			t0 = test_now_ns();
			while (waitpid(v, &status, WNOHANG) != v) {
				if (test_now_ns() - t0 > 20000000000ull) {
					kill(v, SIGKILL);
					FAIL("%s round %d: the victim never reached step %d", what,
					     round, k + 1);
				}
				usleep(200);
			}
			CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
			      "%s round %d: victim not killed at step %d (status %d)", what, round,
			      k + 1, status);
			k++;
			hook_kills++;
		}
	}
	/* The survivor still makes progress after the last kill: it needs
	 * one liveness timeout (20 ms); 10 s is for a loaded machine. */
	before = fn == locker ? atomic_load(&sh->survivor_ops) : atomic_load(&sh->turns);
	t0 = test_now_ns();
	while ((fn == locker ? atomic_load(&sh->survivor_ops) : atomic_load(&sh->turns)) == before &&
	       test_now_ns() - t0 < 10000000000ull)
		usleep(1000);
	CHECK((fn == locker ? atomic_load(&sh->survivor_ops) : atomic_load(&sh->turns)) > before,
	      "%s: the survivor made no progress in 10 s after the kills", what);
	atomic_store(&sh->stop, 1);
	CHECK(waitpid(surv, &status, 0) == surv && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "%s: survivor exit status %d", what, status);
}

int main(void)
{
	int rounds = (int)(40 * test_scale());
	shmbus_bus_t *b;
	shmbus_lock_t *l;
	shmbus_turn_t *t;
	int r;

	if (rounds < 20)
		rounds = 20;
	bus_name = test_bus_name("killl");
	OK(shmbus_bus_create(bus_name, NULL, &b));
	OK(shmbus_bus_set_liveness(b, 20000000));
	OK(shmbus_lock_open(b, "L", NULL, &l));
	OK(shmbus_turn_open(b, "T", T_OPTS(shmbus_turn_opts_t, .create = 1, .max_parties = 256), &t));
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap");

	run_kills(locker, rounds, "lock");
	r = shmbus_lock_lock(l, 5000000000ll);
	CHECK(r == 0 || r == SHMBUS_EOWNERDEAD, "final lock: %d", r);
	if (r == SHMBUS_EOWNERDEAD) {
		sh->b = sh->a;
		OK(shmbus_lock_consistent(l));
	}
	CHECK(sh->a == sh->b, "guarded counters differ at the end: %ld vs %ld", sh->a, sh->b);
	OK(shmbus_lock_unlock(l));
	CHECK(atomic_load(&sh->ownerdead) >= rounds / 2,
	      "%ld EOWNERDEAD takeovers for %d holders killed inside the critical section",
	      atomic_load(&sh->ownerdead), rounds / 2);
	printf("  lock: %d holders killed (%d at steps 1..%d), %ld EOWNERDEAD takeovers repaired, %ld survivor ops, %ld increments consistent\n",
	       rounds, hook_kills, hook_kills, atomic_load(&sh->ownerdead),
	       atomic_load(&sh->survivor_ops), sh->a);
	hook_kills = 0;

	run_kills(party, rounds / 2, "turn");
	printf("  turn: %d parties killed at steps 1..%d, %ld turns, survivor kept its turns\n",
	       rounds / 2, hook_kills, atomic_load(&sh->turns));
	shmbus_turn_close(t);
	shmbus_lock_close(l);
	shmbus_bus_close(b);
	OK(shmbus_bus_unlink(bus_name));
	printf("sync_kill_lock: ok\n");
	return 0;
}

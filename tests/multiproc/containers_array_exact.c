/*
 * containers_array_exact.c -- N processes hammering the same elements of
 * array channels get exact totals: int64 and int32 fetch-adds, float64
 * adds (CAS loops; 0.25 steps are exact in binary), and a CAS increment
 * loop written by hand, all on elements that share cache lines.
 */
#include <sys/wait.h>

#include "testutil.h"

#define PROCS 4
#define ELEMS 8

static const char *bus_name;

static void child(int iters)
{
	shmbus_bus_t *b;
	shmbus_array_t *i64, *i32, *f64;
	shmbus_event_t *go;
	int i;

	OK(shmbus_bus_open(bus_name, NULL, &b));
	OK(shmbus_array_open(b, "i64", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = ELEMS, .create = 0), &i64));
	OK(shmbus_array_open(b, "i32", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT32, .length = ELEMS, .create = 0), &i32));
	OK(shmbus_array_open(b, "f64", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_FLOAT64, .length = ELEMS, .create = 0), &f64));
	OK(shmbus_event_open(b, "go", T_OPTS(shmbus_event_opts_t, .create = 0), &go));
	OK(shmbus_event_wait(go, 10000000000ll));
	for (i = 0; i < iters; i++) {
		uint64_t k = (uint64_t)i % ELEMS;
		int64_t e = 0;

		OK(shmbus_array_add_i64(i64, k, 3, NULL));
		OK(shmbus_array_add_i64(i32, k, -1, NULL));
		OK(shmbus_array_add_f64(f64, k, 0.25, NULL));
		while (shmbus_array_cas_i64(i64, ELEMS - 1 - k, &e, e + 1) != 0)
			;
	}
	_exit(0);
}

int main(void)
{
	int iters = (int)(200000 * test_scale()), i, status;
	shmbus_bus_t *b;
	shmbus_array_t *i64, *i32, *f64;
	shmbus_event_t *go;
	int64_t s64 = 0, s32 = 0, v;
	int32_t v32;
	double sf = 0, f;
	uint64_t t0, dt;
	pid_t pids[PROCS];

	bus_name = test_bus_name("arrx");
	OK(shmbus_bus_create(bus_name, NULL, &b));
	OK(shmbus_array_open(b, "i64", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = ELEMS, .create = 1), &i64));
	OK(shmbus_array_open(b, "i32", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT32, .length = ELEMS, .create = 1), &i32));
	OK(shmbus_array_open(b, "f64", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_FLOAT64, .length = ELEMS, .create = 1), &f64));
	OK(shmbus_event_open(b, "go", NULL, &go));
	for (i = 0; i < PROCS; i++) {
		fflush(stdout);
		pids[i] = fork();
		if (pids[i] == 0)
			child(iters);
	}
	usleep(50000);
	t0 = test_now_ns();
	OK(shmbus_event_set(go));
	for (i = 0; i < PROCS; i++)
		CHECK(waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0, "child %d status %d", i, status);
	dt = test_now_ns() - t0;
	for (i = 0; i < ELEMS; i++) {
		OK(shmbus_array_get(i64, (uint64_t)i, &v));
		OK(shmbus_array_get(i32, (uint64_t)i, &v32));
		OK(shmbus_array_get(f64, (uint64_t)i, &f));
		s64 += v;
		s32 += v32;
		sf += f;
	}
	/* Each iteration adds 3 and one CAS increment to i64. */
	CHECK(s64 == 4ll * PROCS * iters, "int64 total %lld, expected %lld", (long long)s64,
	      4ll * PROCS * iters);
	CHECK(s32 == -(int64_t)PROCS * iters, "int32 total %lld, expected %lld",
	      (long long)s32, -(long long)PROCS * iters);
	CHECK(sf == 0.25 * PROCS * iters, "float64 total %.2f, expected %.2f", sf,
	      0.25 * PROCS * iters);
	printf("  %d processes x %d iterations (4 atomic ops each): exact; %.1f M ops/s overall\n",
	       PROCS, iters, 4.0 * PROCS * iters / (dt / 1e9) / 1e6);
	shmbus_array_close(i64);
	shmbus_array_close(i32);
	shmbus_array_close(f64);
	shmbus_event_close(go);
	shmbus_bus_close(b);
	OK(shmbus_bus_unlink(bus_name));
	printf("containers_array_exact: ok\n");
	return 0;
}

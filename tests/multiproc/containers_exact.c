/*
 * containers_exact.c -- N processes hammering the same dict keys and list
 * elements get exact totals: every process adds 1 to four shared dict
 * counters and 0.5 to three shared list elements through update, appends
 * its own numbered items to the list, and churns private dict keys (set,
 * overwrite, delete) so the heap's blocks are freed and reused under
 * contention. At the end: counters and sums exact, every appended item
 * present exactly once and in its process's order, and both containers
 * validate block by block.
 */
#include <sys/wait.h>

#include "testutil.h"

#define PROCS 4

static const char *bus_name;

static int add_f(const void *old, size_t oldlen, void *out, size_t cap, size_t *outlen,
                 void *arg)
{
	double v = 0;

	(void)arg;
	if (old && oldlen == sizeof(v))
		memcpy(&v, old, sizeof(v));
	v += 0.5;
	if (cap < sizeof(v))
		return SHMBUS_ETOOBIG;
	memcpy(out, &v, sizeof(v));
	*outlen = sizeof(v);
	return 0;
}

static void child(int id, int iters)
{
	shmbus_bus_t *b;
	shmbus_dict_t *d;
	shmbus_list_t *l;
	shmbus_event_t *go;
	char key[32], val[64];
	int i;

	OK(shmbus_bus_open(bus_name, NULL, &b));
	OK(shmbus_dict_open(b, "d", T_OPTS(shmbus_dict_opts_t, .create = 0), &d));
	OK(shmbus_list_open(b, "l", T_OPTS(shmbus_list_opts_t, .create = 0), &l));
	OK(shmbus_event_open(b, "go", T_OPTS(shmbus_event_opts_t, .create = 0), &go));
	OK(shmbus_event_wait(go, 10000000000ll));
	memset(val, id, sizeof(val));
	for (i = 0; i < iters; i++) {
		int64_t item = (int64_t)id << 32 | i;
		int kn;

		OK(shmbus_dict_update(d, key, (size_t)snprintf(key, sizeof(key), "c%d", i % 4),
		                      test_dict_inc, NULL));
		OK(shmbus_list_update(l, i % 3, add_f, NULL));
		OK(shmbus_list_append(l, &item, sizeof(item)));
		kn = snprintf(key, sizeof(key), "p%d-%d", id, i % 16);
		OK(shmbus_dict_set(d, key, (size_t)kn, val, (size_t)(i % 60)));
		if (i % 3 == 0)
			OK(shmbus_dict_del(d, key, (size_t)kn));
	}
	shmbus_event_close(go);
	shmbus_list_close(l);
	shmbus_dict_close(d);
	shmbus_bus_close(b);
	_exit(0);
}

int main(void)
{
	int iters = (int)(10000 * test_scale()), i, status, next[PROCS] = {0};
	shmbus_bus_t *b;
	shmbus_dict_t *d;
	shmbus_list_t *l;
	shmbus_event_t *go;
	shmbus_bus_opts_t o;
	double z = 0, s = 0, f;
	int64_t c, total = 0;
	uint64_t len, t0, dt;
	size_t n;
	pid_t pids[PROCS];

	bus_name = test_bus_name("contx");
	shmbus_bus_opts_init(&o);
	o.size = 32ull << 20;
	OK(shmbus_bus_create(bus_name, &o, &b));
	OK(shmbus_dict_open(b, "d", T_OPTS(shmbus_dict_opts_t, .create = 1, .area_bytes = 1u << 20), &d));
	OK(shmbus_list_open(b, "l", T_OPTS(shmbus_list_opts_t, .create = 1, .area_bytes = 8u << 20), &l));
	OK(shmbus_event_open(b, "go", NULL, &go));
	for (i = 0; i < 3; i++)
		OK(shmbus_list_append(l, &z, sizeof(z)));
	for (i = 0; i < PROCS; i++) {
		fflush(stdout);
		pids[i] = fork();
		if (pids[i] == 0)
			child(i, iters);
	}
	usleep(50000);
	t0 = test_now_ns();
	OK(shmbus_event_set(go));
	for (i = 0; i < PROCS; i++)
		CHECK(waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0, "child %d status %d", i, status);
	dt = test_now_ns() - t0;
	for (i = 0; i < 4; i++) {
		char key[8];

		OK(shmbus_dict_get(d, key, (size_t)snprintf(key, sizeof(key), "c%d", i), &c,
		                   sizeof(c), &n));
		total += c;
	}
	CHECK(total == (int64_t)PROCS * iters, "dict counters total %lld, expected %lld",
	      (long long)total, (long long)PROCS * iters);
	for (i = 0; i < 3; i++) {
		OK(shmbus_list_get(l, i, &f, sizeof(f), &n));
		s += f;
	}
	CHECK(s == 0.5 * PROCS * iters, "list element sum %.1f, expected %.1f", s,
	      0.5 * PROCS * iters);
	OK(shmbus_list_len(l, &len));
	CHECK(len == 3 + (uint64_t)PROCS * iters, "list has %llu elements, expected %llu",
	      (unsigned long long)len, 3 + (unsigned long long)PROCS * iters);
	for (i = 3; i < (int)len; i++) {
		int64_t item;
		int id, seq;

		OK(shmbus_list_get(l, i, &item, sizeof(item), &n));
		id = (int)(item >> 32);
		seq = (int)(uint32_t)item;
		CHECK(n == sizeof(item) && id >= 0 && id < PROCS && seq == next[id],
		      "element %d is item %d of process %d, expected item %d", i, seq, id,
		      id >= 0 && id < PROCS ? next[id] : -1);
		next[id]++;
	}
	OK(shmbus_dict_validate(d));
	OK(shmbus_list_validate(l));
	printf("  %d processes x %d iterations (5 container ops each): exact; %.0f k ops/s overall\n",
	       PROCS, iters, 5.0 * PROCS * iters / (dt / 1e9) / 1e3);
	shmbus_event_close(go);
	shmbus_list_close(l);
	shmbus_dict_close(d);
	shmbus_bus_close(b);
	OK(shmbus_bus_unlink(bus_name));
	printf("containers_exact: ok\n");
	return 0;
}

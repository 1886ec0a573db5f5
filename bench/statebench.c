/*
 * statebench.c -- how close a state channel comes to the hardware, measured
 * against baselines run in the same program, on the same machine, now.
 *
 *   (a) raw limit: two processes ping-pong a counter through one shared
 *       cache line with spinning atomics (round trip / 2 = one way)
 *   (b) a state write seen by a spinning reader in the other process:
 *       ping-pong over two state channels, policy SPIN
 *   (c) the same with parked readers (policy PARK), against a bare futex
 *       ping-pong where both sides sleep every time
 *   (d) uncontended writes/s and reads/s at 8 B, 4 KiB, 1 MiB
 *   (e) a 16 MiB value written and read, against memcpy of 16 MiB
 *
 * The two processes are pinned to CPU 0 and CPU 1. Latencies are medians
 * and tails of per-round-trip clock readings. The latency runs are split
 * into BLOCKS interleaved blocks (raw, two-line raw, state spin, futex,
 * state park, then again), because this VM moves its vCPUs and the cost of
 * a cache-line transfer changes from minute to minute: each figure is the
 * median over blocks, and each ratio is the median of the per-block ratios,
 * so a baseline and what it is compared with come from the same seconds.
 * --json FILE writes the figures.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmbus.h"
#include "small.h"

#define BLOCKS 5

static int quick;
static char shm_name[80];

/* Ctrl+C or a kill: remove the bus (the 128 MiB object would stay). */
static void on_signal(int sig)
{
	(void)sig;
	if (shm_name[0])
		shm_unlink(shm_name);
	_exit(130);
}





static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct lat { double p50, p99, p999; };

static struct lat summarize(uint64_t *v, size_t n)
{
	struct lat l;

	qsort(v, n, sizeof(*v), cmp_u64);
	l.p50 = (double)v[n / 2];
	l.p99 = (double)v[(size_t)((double)n * 0.99)];
	l.p999 = (double)v[(size_t)((double)n * 0.999)];
	return l;
}

/* Per-percentile median over the blocks. */
static struct lat med_lat(const struct lat *v)
{
	double a[BLOCKS], b[BLOCKS], c[BLOCKS];
	struct lat l;
	int i;

	for (i = 0; i < BLOCKS; i++) {
		a[i] = v[i].p50;
		b[i] = v[i].p99;
		c[i] = v[i].p999;
	}
	l.p50 = median(a, BLOCKS);
	l.p99 = median(b, BLOCKS);
	l.p999 = median(c, BLOCKS);
	return l;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "statebench: %s: %s (%s)\n", what, shmbus_strerror(r), shmbus_last_error());
	if (shm_name[0])
		shm_unlink(shm_name);
	exit(1);
}

/* ---- (a) raw cache line ------------------------------------------------ */

struct line { _Atomic uint64_t v; char pad[56]; };

/* lines = 1: ping and pong in one word; lines = 2: each direction has its
 * own cache line, as two state channels have. */
static struct lat raw_pingpong(size_t rounds, int lines)
{
	struct line *l = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	_Atomic uint64_t *ping = &l[0].v, *pong = lines == 1 ? &l[0].v : &l[1].v;
	uint64_t *rtt = malloc(rounds * sizeof(*rtt)), i;
	pid_t pid;

	atomic_store(ping, 0);
	atomic_store(pong, 0);
	pid = fork();
	if (pid == 0) {
		pin(1);
		for (i = 0; i < rounds; i++) {
			/* acquire/release: the ping and pong counters alternate. */
			while (atomic_load_explicit(ping, memory_order_acquire) != 2 * i + 1)
				__builtin_ia32_pause();
			atomic_store_explicit(pong, 2 * i + 2, memory_order_release);
		}
		_exit(0);
	}
	pin(0);
	for (i = 0; i < rounds; i++) {
		uint64_t t0 = now_ns();

		atomic_store_explicit(ping, 2 * i + 1, memory_order_release);
		while (atomic_load_explicit(pong, memory_order_acquire) != 2 * i + 2)
			__builtin_ia32_pause();
		rtt[i] = now_ns() - t0;
	}
	waitpid(pid, NULL, 0);
	munmap(l, 4096);
	{
		struct lat r = summarize(rtt, rounds);

		free(rtt);
		return r;
	}
}

/* ---- bare futex ping-pong (both sides sleep every time) ---------------- */

static struct lat futex_pingpong(size_t rounds)
{
	_Atomic uint32_t *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t *rtt = malloc(rounds * sizeof(*rtt)), i;
	pid_t pid;

	atomic_store(w, 0);
	pid = fork();
	if (pid == 0) {
		pin(1);
		for (i = 0; i < rounds; i++) {
			uint32_t v;

			while ((v = atomic_load(w)) != 2 * i + 1)
				syscall(SYS_futex, w, FUTEX_WAIT, v, NULL, NULL, 0);
			atomic_store(w, (uint32_t)(2 * i + 2));
			syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
		}
		_exit(0);
	}
	pin(0);
	for (i = 0; i < rounds; i++) {
		uint64_t t0 = now_ns();
		uint32_t v;

		atomic_store(w, (uint32_t)(2 * i + 1));
		syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
		while ((v = atomic_load(w)) != 2 * i + 2)
			syscall(SYS_futex, w, FUTEX_WAIT, v, NULL, NULL, 0);
		rtt[i] = now_ns() - t0;
	}
	waitpid(pid, NULL, 0);
	{
		struct lat r = summarize(rtt, rounds);

		free(rtt);
		return r;
	}
}

/* ---- (b), (c) state ping-pong ----------------------------------------- */

static shmbus_state_t *open_state(shmbus_bus_t *bus, const char *name, size_t bytes, int policy)
{
	shmbus_state_opts_t o;
	shmbus_state_t *st;
	int r;

	shmbus_state_opts_init(&o);
	o.dtype = SHMBUS_UINT8;
	o.ndim = 1;
	o.shape[0] = bytes;
	o.wait_policy = policy;
	if ((r = shmbus_state_open(bus, name, &o, &st)))
		die(name, r);
	return st;
}

static struct lat state_pingpong(const char *bus_name, size_t rounds, int policy)
{
	char ping_name[32], pong_name[32];
	uint64_t *rtt = malloc(rounds * sizeof(*rtt)), i, seq = 0, v = 0;
	shmbus_bus_t *bus;
	shmbus_state_t *ping, *pong;
	pid_t pid;
	int r;

	static int calls;

	/* Fresh channels for every run: the sequence numbers start at 0. */
	calls++;
	snprintf(ping_name, sizeof(ping_name), "ping%d-%d", policy, calls);
	snprintf(pong_name, sizeof(pong_name), "pong%d-%d", policy, calls);
	pid = fork();
	if (pid == 0) {
		pin(1);
		if ((r = shmbus_bus_open(bus_name, NULL, &bus)))
			die("open", r);
		ping = open_state(bus, ping_name, 8, policy);
		pong = open_state(bus, pong_name, 8, policy);
		for (i = 0; i < rounds; i++) {
			if ((r = shmbus_state_wait(ping, seq, 5000000000ll, &seq)))
				die("child wait", r);
			shmbus_state_read(ping, &v, 8, NULL);
			if ((r = shmbus_state_write(pong, &v, 8)))
				die("child write", r);
		}
		_exit(0);
	}
	pin(0);
	if ((r = shmbus_bus_open(bus_name, NULL, &bus)))
		die("open", r);
	ping = open_state(bus, ping_name, 8, policy);
	pong = open_state(bus, pong_name, 8, policy);
	for (i = 0; i < rounds; i++) {
		uint64_t t0 = now_ns();

		v = i;
		if ((r = shmbus_state_write(ping, &v, 8)))
			die("write", r);
		if ((r = shmbus_state_wait(pong, i, 5000000000ll, &seq)))
			die("wait", r);
		rtt[i] = now_ns() - t0;
	}
	waitpid(pid, NULL, 0);
	shmbus_state_close(ping);
	shmbus_state_close(pong);
	shmbus_bus_close(bus);
	{
		struct lat l = summarize(rtt, rounds);

		free(rtt);
		return l;
	}
}

/* ---- (d), (e) uncontended -------------------------------------------- */

static double ops_per_s(shmbus_state_t *st, size_t bytes, int do_write, double secs)
{
	void *buf = calloc(1, bytes);
	uint64_t n = 0, t0 = now_ns(), t1, seq;
	int r;

	do {
		for (int k = 0; k < 64; k++) {
			r = do_write ? shmbus_state_write(st, buf, bytes)
			             : shmbus_state_read(st, buf, bytes, &seq);
			if (r)
				die("uncontended", r);
		}
		n += 64;
		t1 = now_ns();
	} while ((double)(t1 - t0) < secs * 1e9);
	free(buf);
	return (double)n / ((double)(t1 - t0) / 1e9);
}

static double memcpy_per_s(size_t bytes, double secs)
{
	char *a = malloc(bytes), *b = malloc(bytes);
	uint64_t n = 0, t0 = now_ns(), t1;

	memset(a, 1, bytes);
	memset(b, 2, bytes);
	do {
		memcpy(b, a, bytes);
		__asm__ __volatile__("" : : "r"(b) : "memory");
		n++;
		t1 = now_ns();
	} while ((double)(t1 - t0) < secs * 1e9);
	free(a);
	free(b);
	return (double)n / ((double)(t1 - t0) / 1e9);
}

int main(int argc, char **argv)
{
	const char *json = NULL;
	char bus_name[64];
	shmbus_bus_opts_t bo;
	shmbus_bus_t *bus;
	size_t rounds;
	struct lat raw, raw2, spin, park, futex;
	struct lat braw[BLOCKS], braw2[BLOCKS], bspin[BLOCKS], bpark[BLOCKS], bfutex[BLOCKS];
	double rs[BLOCKS], rs2[BLOCKS], rr2[BLOCKS], rp[BLOCKS];
	double spin_raw, spin_raw2, raw2_raw, park_futex;
	int b;
	static const size_t sizes[] = {8, 4096, 1u << 20};
	double w[3], rd[3], big_w, big_r, big_memcpy, secs;
	FILE *f;
	int a, i, r;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--quick"))
			quick = 1;
		else if (!strcmp(argv[a], "--json") && a + 1 < argc)
			json = argv[++a];
		else {
			printf("usage: statebench [--quick] [--json FILE]\n"
			       "State-channel latency and throughput against raw baselines in the same run.\n");
			return strcmp(argv[a], "--help") ? 2 : 0;
		}
	}
	rounds = quick ? 20000 : 200000;
	secs = quick ? 0.2 : 1.0;
	snprintf(bus_name, sizeof(bus_name), "statebench-%d", (int)getpid());
	shmbus_bus_opts_init(&bo);
	bo.size = 128ull << 20;
	snprintf(shm_name, sizeof(shm_name), "/shmbus-%s", bus_name);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if ((r = shmbus_bus_create(bus_name, &bo, &bus)))
		die("create", r);

	for (b = 0; b < BLOCKS; b++) {
		braw[b] = raw_pingpong(rounds / BLOCKS, 1);
		braw2[b] = raw_pingpong(rounds / BLOCKS, 2);
		bspin[b] = state_pingpong(bus_name, rounds / BLOCKS, SHMBUS_WAIT_SPIN);
		bfutex[b] = futex_pingpong(rounds / 10 / BLOCKS);
		bpark[b] = state_pingpong(bus_name, rounds / 10 / BLOCKS, SHMBUS_WAIT_PARK);
	}
	raw = med_lat(braw);
	raw2 = med_lat(braw2);
	spin = med_lat(bspin);
	futex = med_lat(bfutex);
	park = med_lat(bpark);
	for (b = 0; b < BLOCKS; b++) {
		rs[b] = bspin[b].p50 / braw[b].p50;
		rs2[b] = bspin[b].p50 / braw2[b].p50;
		rr2[b] = braw2[b].p50 / braw[b].p50;
		rp[b] = bpark[b].p50 / bfutex[b].p50;
	}
	spin_raw = median(rs, BLOCKS);
	spin_raw2 = median(rs2, BLOCKS);
	raw2_raw = median(rr2, BLOCKS);
	park_futex = median(rp, BLOCKS);

	pin(0);
	for (i = 0; i < 3; i++) {
		char name[32];
		shmbus_state_t *st;

		snprintf(name, sizeof(name), "u%zu", sizes[i]);
		st = open_state(bus, name, sizes[i], SHMBUS_WAIT_SPIN_PARK);
		w[i] = ops_per_s(st, sizes[i], 1, secs);
		rd[i] = ops_per_s(st, sizes[i], 0, secs);
		shmbus_state_close(st);
	}
	{
		shmbus_state_t *st = open_state(bus, "big", 16u << 20, SHMBUS_WAIT_SPIN_PARK);

		big_w = ops_per_s(st, 16u << 20, 1, secs);
		big_r = ops_per_s(st, 16u << 20, 0, secs);
		big_memcpy = memcpy_per_s(16u << 20, secs);
		shmbus_state_close(st);
	}
	shmbus_bus_close(bus);
	shmbus_bus_unlink(bus_name);

	printf("state channel latency, one way = round trip / 2 (ns), %zu round trips in %d interleaved blocks;\n"
	       "figures are medians over blocks, ratios the median of per-block ratios\n", rounds, BLOCKS);
	printf("  %-34s %8s %8s %8s %10s\n", "", "p50", "p99", "p99.9", "p50 ratio");
	printf("  %-34s %8.0f %8.0f %8.0f %10s\n", "(a) raw cache line, spinning", raw.p50 / 2,
	       raw.p99 / 2, raw.p999 / 2, "1.00");
	printf("  %-34s %8.0f %8.0f %8.0f %9.2fx\n", "    raw, one line per direction",
	       raw2.p50 / 2, raw2.p99 / 2, raw2.p999 / 2, raw2_raw);
	printf("  %-34s %8.0f %8.0f %8.0f %9.2fx (target <= 1.5x); %.2fx the two-line raw\n",
	       "(b) state, spinning reader", spin.p50 / 2, spin.p99 / 2, spin.p999 / 2,
	       spin_raw, spin_raw2);
	printf("  %-34s %8.0f %8.0f %8.0f %10s\n", "    bare futex, both sleep", futex.p50 / 2,
	       futex.p99 / 2, futex.p999 / 2, "1.00");
	printf("  %-34s %8.0f %8.0f %8.0f %9.2fx (target <= 1.1x)\n", "(c) state, parked reader",
	       park.p50 / 2, park.p99 / 2, park.p999 / 2, park_futex);
	printf("uncontended, one process (M ops/s)\n");
	for (i = 0; i < 3; i++)
		printf("  %8zu B   write %8.2f   read %8.2f\n", sizes[i], w[i] / 1e6, rd[i] / 1e6);
	printf("16 MiB value: write %.0f/s (%.1f GB/s) = %.2fx memcpy, read %.0f/s (%.1f GB/s) = %.2fx memcpy (%.1f GB/s); target >= 0.70x\n",
	       big_w, big_w * 16.0 * 1048576 / 1e9, big_w / big_memcpy, big_r,
	       big_r * 16.0 * 1048576 / 1e9, big_r / big_memcpy, big_memcpy * 16.0 * 1048576 / 1e9);
	if (json && (f = fopen(json, "w"))) {
		fprintf(f, "{\"rounds\": %zu,\n \"raw_oneway_ns\": [%.0f, %.0f, %.0f],\n"
		           " \"raw2_oneway_ns\": [%.0f, %.0f, %.0f],\n"
		           " \"state_spin_oneway_ns\": [%.0f, %.0f, %.0f],\n"
		           " \"futex_oneway_ns\": [%.0f, %.0f, %.0f],\n"
		           " \"state_park_oneway_ns\": [%.0f, %.0f, %.0f],\n"
		           " \"spin_over_raw_p50\": %.3f, \"park_over_futex_p50\": %.3f,\n"
		           " \"write_ops\": [%.0f, %.0f, %.0f], \"read_ops\": [%.0f, %.0f, %.0f],\n"
		           " \"big_write_over_memcpy\": %.3f, \"big_read_over_memcpy\": %.3f, \"memcpy_16MiB_GBps\": %.2f}\n",
		        rounds, raw.p50 / 2, raw.p99 / 2, raw.p999 / 2, raw2.p50 / 2, raw2.p99 / 2,
		        raw2.p999 / 2, spin.p50 / 2, spin.p99 / 2,
		        spin.p999 / 2, futex.p50 / 2, futex.p99 / 2, futex.p999 / 2, park.p50 / 2,
		        park.p99 / 2, park.p999 / 2, spin_raw, park_futex, w[0],
		        w[1], w[2], rd[0], rd[1], rd[2], big_w / big_memcpy, big_r / big_memcpy,
		        big_memcpy * 16.0 * 1048576 / 1e9);
		fclose(f);
	}
	return 0;
}

/*
 * queuebench.c -- shmbus queue figures that a two-process harness cannot
 * take: many producers and consumer groups at once, and the reference for
 * large frames.
 *
 *   mpmc     P producer processes x G consumer groups of M members each,
 *            one queue. Every producer puts N messages of S bytes (its
 *            index and a per-producer sequence at both ends); the last
 *            producer to finish shuts the queue; every member gets until
 *            end of stream and checks each message. Figures: messages put
 *            per second (P x N / elapsed, elapsed from the start barrier
 *            to the last member seeing end of stream) and messages
 *            delivered per second (x G). Checks: each group got exactly
 *            P x N messages, and in a group of one member every producer's
 *            sequence arrives in order without a gap.
 *            Single calls (put/get) and batch calls (put_many/get_many).
 *   write    the producer's own writing of a frame, in one process: memcpy
 *            of S bytes into one of 8 rotating S-byte buffers (as a ring of
 *            8 slots would be written), frames/s. A zero-copy frame stream
 *            (ipcbench's oneway-zc at 8 MiB) cannot beat it; the closer it
 *            comes, the less the transport adds.
 *
 * With more processes than CPUs, a spinning waiter steals its peer's CPU:
 * the queues use the default spin-then-park policy, and processes are
 * spread over the online CPUs round robin (producers first, then members).
 *
 *   queuebench [--quick] [--json FILE] [--runs R]
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmbus.h"

#define MAXP 8
#define MAXG 8
#define MAXM 8
#define TIMEOUT_NS (30ll * 1000000000ll)

struct ctl {
	_Atomic uint32_t ready;         /* children at the start barrier */
	_Atomic uint32_t go;
	_Atomic uint32_t producers_done;
	_Atomic uint64_t t_start;
	_Atomic uint64_t t_end;         /* latest end-of-stream seen */
	_Atomic uint64_t got[MAXG];     /* messages per group */
	_Atomic uint32_t failed;
	char err[512];
};

static struct ctl *ctl;
/* Tuning knobs from the command line (see usage). */
static int opt_policy = SHMBUS_WAIT_SPIN_PARK, opt_pin = 1;
static int64_t opt_spin_ns;
static uint32_t opt_slots;
static const char *opt_only;
static int opt_cpus[MAXP + MAXG * MAXM], opt_ncpus;

struct cfg {
	const char *name;
	int producers, groups, members, batch;
	size_t size;
	uint64_t n;                     /* messages per producer */
	uint32_t slots;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pin(int k)
{
	if (!opt_pin)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	if (opt_ncpus)
		k = opt_cpus[k % opt_ncpus];
	CPU_SET(k % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
	sched_setaffinity(0, sizeof set, &set);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;
	uint32_t zero = 0;
	/* Only the first failure writes its text. */
	if (atomic_compare_exchange_strong(&ctl->failed, &zero, 1)) {
		va_start(ap, fmt);
		vsnprintf(ctl->err, sizeof ctl->err, fmt, ap);
		va_end(ap);
	}
	_exit(1);
}

static void sbfail(const char *what, int rc)
{
	fail("%s: %s (%s)", what, shmbus_strerror(rc), shmbus_last_error());
}

static void start_barrier(int total)
{
	atomic_fetch_add(&ctl->ready, 1);
	while (!atomic_load(&ctl->go)) {
		if (atomic_load(&ctl->failed))
			_exit(1);
		if (atomic_load(&ctl->ready) == (uint32_t)total) {
			atomic_store(&ctl->t_start, now_ns());
			atomic_store(&ctl->go, 1);
		}
		sched_yield();
	}
}

static shmbus_queue_t *open_queue(const char *bus_name, const struct cfg *c, shmbus_bus_t **bus)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q;
	int rc;

	if ((rc = shmbus_bus_open(bus_name, NULL, bus)))
		sbfail("shmbus_bus_open", rc);
	shmbus_queue_opts_init(&o);
	o.slots = opt_slots ? opt_slots : c->slots;
	o.wait_policy = opt_policy;
	o.spin_ns = opt_spin_ns;
	o.max_msg = c->size;
	o.max_groups = MAXG;
	o.max_members = MAXG * MAXM;
	o.max_producers = MAXP;
	if ((rc = shmbus_queue_open(*bus, "q", &o, &q)))
		sbfail("shmbus_queue_open", rc);
	return q;
}

static void producer(const char *bus_name, const struct cfg *c, int id, int total)
{
	shmbus_bus_t *bus;
	shmbus_queue_t *q = open_queue(bus_name, c, &bus);
	enum { B = 64 };
	unsigned char *buf = calloc(B, c->size);
	const void *msgs[B];
	size_t lens[B];
	int rc;

	if (!buf)
		fail("out of memory");
	for (int i = 0; i < B; i++) {
		msgs[i] = buf + (size_t)i * c->size;
		lens[i] = c->size;
		memset(buf + (size_t)i * c->size, 0x5a, c->size);
	}
	start_barrier(total);
	for (uint64_t s = 0; s < c->n;) {
		size_t k = c->batch > 1 ? (size_t)c->batch : 1, done = 0;
		if (k > B)
			k = B;
		if (k > c->n - s)
			k = (size_t)(c->n - s);
		for (size_t i = 0; i < k; i++) {
			uint64_t tag = (uint64_t)id << 48 | (s + i);
			unsigned char *m = buf + i * c->size;
			memcpy(m, &tag, 8);
			memcpy(m + c->size - 8, &tag, 8);
		}
		if (k == 1)
			rc = shmbus_queue_put(q, buf, c->size, TIMEOUT_NS), done = rc ? 0 : 1;
		else
			rc = shmbus_queue_put_many(q, msgs, lens, k, TIMEOUT_NS, &done);
		if (rc)
			sbfail("put", rc);
		s += done;
	}
	/* The last producer to finish marks the end of the stream. */
	if (atomic_fetch_add(&ctl->producers_done, 1) + 1 == (uint32_t)c->producers &&
	    (rc = shmbus_queue_shut(q)))
		sbfail("shmbus_queue_shut", rc);
	shmbus_queue_close(q);
	shmbus_bus_close(bus);
	free(buf);
	_exit(0);
}

static void member(const char *bus_name, const struct cfg *c, int g, int total)
{
	shmbus_bus_t *bus;
	shmbus_queue_t *q = open_queue(bus_name, c, &bus);
	char gname[16];
	enum { B = 64 };
	unsigned char *buf = malloc(B * c->size);
	void *bufs[B];
	size_t caps[B], lens[B];
	uint64_t next[MAXP] = { 0 }, got = 0;
	int rc;

	if (!buf)
		fail("out of memory");
	for (int i = 0; i < B; i++) {
		bufs[i] = buf + (size_t)i * c->size;
		caps[i] = c->size;
	}
	snprintf(gname, sizeof gname, "g%d", g);
	if ((rc = shmbus_queue_join(q, gname, SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE)))
		sbfail("shmbus_queue_join", rc);
	start_barrier(total);
	for (;;) {
		size_t n = 0;
		if (c->batch > 1) {
			rc = shmbus_queue_get_many(q, bufs, caps, lens, NULL, (size_t)(c->batch < B ? c->batch : B),
						   TIMEOUT_NS, &n);
		} else {
			rc = shmbus_queue_get(q, buf, c->size, &lens[0], NULL, TIMEOUT_NS);
			n = rc ? 0 : 1;
		}
		for (size_t i = 0; i < n; i++) {
			const unsigned char *m = buf + i * c->size;
			uint64_t head, tail;
			memcpy(&head, m, 8);
			memcpy(&tail, m + c->size - 8, 8);
			unsigned p = (unsigned)(head >> 48);
			uint64_t s = head & ((1ull << 48) - 1);
			if (lens[i] != c->size || head != tail || p >= (unsigned)c->producers)
				fail("group g%d: bad message: length %zu, head %llx, tail %llx", g, lens[i],
				     (unsigned long long)head, (unsigned long long)tail);
			if (c->members == 1 && s != next[p])
				fail("group g%d: producer %u sent #%llu next, got #%llu", g, p,
				     (unsigned long long)next[p], (unsigned long long)s);
			next[p] = s + 1;
		}
		got += n;
		if (rc == SHMBUS_ECLOSED)
			break;
		if (rc)
			sbfail("get", rc);
	}
	uint64_t t = now_ns(), prev = atomic_load(&ctl->t_end);
	while (t > prev && !atomic_compare_exchange_weak(&ctl->t_end, &prev, t))
		;
	atomic_fetch_add(&ctl->got[g], got);
	shmbus_queue_close(q);
	shmbus_bus_close(bus);
	free(buf);
	_exit(0);
}

struct mpmc_res {
	double put_rate, deliver_rate;
	char err[600];
};

static int mpmc_once(const struct cfg *c, struct mpmc_res *res)
{
	char bus_name[64];
	shmbus_bus_opts_t bo;
	shmbus_bus_t *bus;
	shmbus_queue_t *q;
	pid_t pids[MAXP + MAXG * MAXM];
	int np = 0, rc, total = c->producers + c->groups * c->members;

	memset(ctl, 0, sizeof *ctl);
	memset(res, 0, sizeof *res);
	snprintf(bus_name, sizeof bus_name, "queuebench-%d", (int)getpid());
	shmbus_bus_unlink(bus_name);
	shmbus_bus_opts_init(&bo);
	bo.size = ((uint64_t)(opt_slots ? opt_slots : c->slots) * (c->size + 128) + (4u << 20) + 0xfffff) & ~0xfffffull;
	if ((rc = shmbus_bus_create(bus_name, &bo, &bus))) {
		snprintf(res->err, sizeof res->err, "create bus: %s (%s)", shmbus_strerror(rc),
			 shmbus_last_error());
		return -1;
	}
	shmbus_bus_close(bus);
	/* The groups exist before any producer starts, so nothing is missed. */
	{
		shmbus_bus_t *b;
		fflush(NULL);
		pid_t p = fork();
		if (p == 0) {
			/* A handle belongs to one group: one handle per group. */
			for (int g = 0; g < c->groups; g++) {
				char gname[16];
				q = open_queue(bus_name, c, &b);
				snprintf(gname, sizeof gname, "g%d", g);
				if ((rc = shmbus_queue_join(q, gname, SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE)))
					sbfail("join", rc);
				shmbus_queue_close(q);
				shmbus_bus_close(b);
			}
			_exit(0);
		}
		int st;
		waitpid(p, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			snprintf(res->err, sizeof res->err, "creating the groups: %s", ctl->err);
			shmbus_bus_unlink(bus_name);
			return -1;
		}
	}
	fflush(NULL);
	int k = 0;
	for (int i = 0; i < c->producers; i++, k++) {
		pid_t p = fork();
		if (p == 0) {
			pin(k);
			producer(bus_name, c, i, total);
		}
		pids[np++] = p;
	}
	for (int g = 0; g < c->groups; g++)
		for (int m = 0; m < c->members; m++, k++) {
			pid_t p = fork();
			if (p == 0) {
				pin(k);
				member(bus_name, c, g, total);
			}
			pids[np++] = p;
		}
	int bad = 0;
	for (int i = 0; i < np; i++) {
		int st;
		if (pids[i] <= 0 || waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st)) {
			if (!bad++)
				for (int j = 0; j < np; j++)
					if (pids[j] > 0 && j != i)
						kill(pids[j], SIGKILL);
		}
	}
	shmbus_bus_unlink(bus_name);
	if (bad) {
		snprintf(res->err, sizeof res->err, "%s", ctl->err[0] ? ctl->err : "a child died");
		return -1;
	}
	for (int g = 0; g < c->groups; g++)
		if (ctl->got[g] != (uint64_t)c->producers * c->n) {
			snprintf(res->err, sizeof res->err, "group g%d got %llu messages, expected %llu", g,
				 (unsigned long long)ctl->got[g],
				 (unsigned long long)c->producers * c->n);
			return -1;
		}
	double dt = (double)(ctl->t_end - ctl->t_start) / 1e9;
	res->put_rate = (double)c->producers * (double)c->n / dt;
	res->deliver_rate = res->put_rate * c->groups;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Frames/s of memcpy into 8 rotating buffers of size bytes. */
static double write_rate(size_t size, double secs)
{
	unsigned char *src = malloc(size), *dst = mmap(NULL, 8 * size, PROT_READ | PROT_WRITE,
							MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (!src || dst == MAP_FAILED)
		return -1;
	memset(src, 0x33, size);
	memset(dst, 0, 8 * size);
	uint64_t n = 0, t0 = now_ns(), t;
	do {
		memcpy(dst + (n % 8) * size, src, size);
		n++;
		t = now_ns();
	} while (t - t0 < (uint64_t)(secs * 1e9));
	munmap(dst, 8 * size);
	free(src);
	return (double)n * 1e9 / (double)(t - t0);
}

int main(int argc, char **argv)
{
	int quick = 0, runs = 0;
	const char *json = NULL;

	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--quick"))
			quick = 1;
		else if (!strcmp(argv[a], "--json") && a + 1 < argc)
			json = argv[++a];
		else if (!strcmp(argv[a], "--runs") && a + 1 < argc)
			runs = atoi(argv[++a]);
		else if (!strcmp(argv[a], "--policy") && a + 1 < argc)
			opt_policy = atoi(argv[++a]);
		else if (!strcmp(argv[a], "--spin-ns") && a + 1 < argc)
			opt_spin_ns = atoll(argv[++a]);
		else if (!strcmp(argv[a], "--slots") && a + 1 < argc)
			opt_slots = (uint32_t)atoi(argv[++a]);
		else if (!strcmp(argv[a], "--cpus") && a + 1 < argc) {
			char *tok, *save = NULL;
			for (tok = strtok_r(argv[++a], ",", &save); tok && opt_ncpus < MAXP + MAXG * MAXM;
			     tok = strtok_r(NULL, ",", &save))
				opt_cpus[opt_ncpus++] = atoi(tok);
		} else if (!strcmp(argv[a], "--no-pin"))
			opt_pin = 0;
		else if (!strcmp(argv[a], "--only") && a + 1 < argc)
			opt_only = argv[++a];
		else {
			printf("usage: queuebench [--quick] [--runs R] [--json FILE] [--only SUBSTRING]\n"
			       "                  [--policy 0|1|2] [--spin-ns NS] [--slots N] [--no-pin]\n"
			       "                  [--cpus A,B,...]\n"
			       "Many producers and consumer groups on one shmbus queue; frame-writing reference.\n"
			       "Policy 0 spin-then-park (default), 1 spin, 2 park; spin-ns 0 = the library default;\n"
			       "slots 0 = 2048; --no-pin leaves placement to the scheduler; --cpus gives the CPU of\n"
			       "each process in turn (producers, then members), default round robin.\n");
			return strcmp(argv[a], "--help") ? 2 : 0;
		}
	}
	if (runs < 1 || runs > 15)
		runs = quick ? 1 : 5;
	uint64_t n = quick ? 100000 : 2000000;
	struct cfg cfgs[] = {
		{ "1 producer, 1 group", 1, 1, 1, 1, 64, n, 2048 },
		{ "2 producers, 2 groups", 2, 2, 1, 1, 64, n, 2048 },
		{ "2 producers, 2 groups, batches of 32", 2, 2, 1, 32, 64, n, 2048 },
		{ "2 producers, 1 group of 2 (work queue)", 2, 1, 2, 1, 64, n, 2048 },
		{ "1 producer, 5 groups (broadcast)", 1, 5, 1, 1, 64, n / 2, 2048 },
	};
	enum { NCFG = sizeof cfgs / sizeof cfgs[0] };
	double put[NCFG], del[NCFG], spread[NCFG];
	int ok[NCFG];

	ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED)
		return 2;
	printf("queuebench: shmbus queue, %zu-byte messages, %ld CPUs, median of %d run%s\n", cfgs[0].size,
	       sysconf(_SC_NPROCESSORS_ONLN), runs, runs == 1 ? "" : "s");
	printf("  %-40s %14s %16s %7s\n", "", "put msgs/s", "delivered msgs/s", "spread");
	int failed = 0;
	for (int i = 0; i < NCFG; i++) {
		double r[16], d[16];
		struct mpmc_res res;
		ok[i] = 1;
		if (opt_only && !strstr(cfgs[i].name, opt_only)) {
			ok[i] = 0;
			continue;
		}
		for (int k = 0; k < runs; k++) {
			if (mpmc_once(&cfgs[i], &res)) {
				printf("  %-40s FAILED: %s\n", cfgs[i].name, res.err);
				ok[i] = 0;
				failed = 1;
				break;
			}
			r[k] = res.put_rate;
			d[k] = res.deliver_rate;
		}
		if (!ok[i])
			continue;
		qsort(r, (size_t)runs, sizeof *r, cmp_double);
		qsort(d, (size_t)runs, sizeof *d, cmp_double);
		put[i] = r[runs / 2];
		del[i] = d[runs / 2];
		spread[i] = (r[runs - 1] - r[0]) / put[i];
		printf("  %-40s %13.2fM %15.2fM %6.0f%%\n", cfgs[i].name, put[i] / 1e6, del[i] / 1e6,
		       spread[i] * 100);
		fflush(stdout);
	}
	static const size_t wsizes[] = { 64, 4096, 1u << 20, 8u << 20 };
	double wr[4];
	printf("producer's own writing, one process: memcpy into 8 rotating buffers\n");
	for (int i = 0; i < 4; i++) {
		wr[i] = write_rate(wsizes[i], quick ? 0.05 : 0.5);
		printf("  %8zu B  %12.0f writes/s  %6.2f GB/s\n", wsizes[i], wr[i], wr[i] * (double)wsizes[i] / 1e9);
	}
	if (json) {
		FILE *f = fopen(json, "w");
		if (!f) {
			perror(json);
			return 2;
		}
		fprintf(f, "{\"tool\": \"queuebench\", \"runs\": %d, \"quick\": %s, \"size\": %zu,\n \"mpmc\": [\n",
			runs, quick ? "true" : "false", cfgs[0].size);
		for (int i = 0; i < NCFG; i++) {
			fprintf(f, "  {\"name\": \"%s\", \"producers\": %d, \"groups\": %d, \"members\": %d, "
				   "\"batch\": %d, \"messages_per_producer\": %llu, ",
				cfgs[i].name, cfgs[i].producers, cfgs[i].groups, cfgs[i].members, cfgs[i].batch,
				(unsigned long long)cfgs[i].n);
			if (ok[i])
				fprintf(f, "\"status\": \"ok\", \"put_msgs_per_s\": %.0f, \"delivered_msgs_per_s\": %.0f, "
					   "\"spread\": %.3f}", put[i], del[i], spread[i]);
			else
				fprintf(f, "\"status\": \"failed\"}");
			fprintf(f, "%s\n", i + 1 < NCFG ? "," : "");
		}
		fprintf(f, " ],\n \"write\": [");
		for (int i = 0; i < 4; i++)
			fprintf(f, "%s{\"size\": %zu, \"writes_per_s\": %.1f}", i ? ", " : "", wsizes[i], wr[i]);
		fprintf(f, "]}\n");
		fclose(f);
	}
	return failed;
}

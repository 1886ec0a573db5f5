/*
 * waitbench.c -- what waiting through a wait set costs, against baselines
 * run in the same program, on the same machine, now.
 *
 *   (1) wake-up latency: a state ping-pong between two processes, each
 *       side waiting on the other's channel through a wait set of one
 *       member, against shmbus_state_wait on the same channels;
 *   (2) the wait set's fd in an epoll loop (epoll_wait, then
 *       shmbus_waitset_wait with timeout 0), against a bare eventfd
 *       ping-pong where each side sleeps in epoll_wait on an eventfd;
 *   (3) a wait set of 1,000 state channels of which one is active,
 *       against a set of 1.
 *
 * Two processes, pinned to CPU 0 and CPU 1, do round trips; each figure is
 * a round-trip time (one wake-up each way). Both sides use the wait policy
 * given (--policy park, the default: every wake-up goes through the
 * kernel; or spin-park: the library default, spin 50 us then sleep). The
 * runs are split into BLOCKS interleaved blocks (every variant once, then
 * again), because this VM's vCPUs move and a wake-up costs differently
 * from minute to minute: each figure is the median over blocks of the
 * block's p50 (p99), and each ratio the median of the per-block ratios, so
 * a baseline and what it is compared with come from the same seconds.
 *
 *   waitbench [--quick] [--policy park|spin-park] [--json FILE]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmbus.h"
#include "small.h"

#define BLOCKS 5
#define IDLE 999                /* idle members of the big set */

enum { V_STATE, V_WS, V_EFD, V_WSFD, V_SET1, V_SET1000, V__COUNT };
static const char *const vname[V__COUNT] = {
	"state_wait", "waitset(1)", "eventfd+epoll", "waitset fd+epoll",
	"waitset(1)", "waitset(1000)",
};

struct shared {
	_Atomic uint32_t ready;
	_Atomic uint32_t failed;
	char err[400];
	uint64_t ns[];          /* round trips of the current run */
};

static struct shared *sh;
static char bus_name[64];
static int policy = SHMBUS_WAIT_PARK;
static uint64_t rounds = 20000, warm = 2000;

static void on_signal(int sig)
{
	(void)sig;
	if (bus_name[0])
		shmbus_bus_unlink(bus_name);
	_exit(130);
}



static void die(const char *what, int r)
{
	snprintf(sh->err, sizeof(sh->err), "%s: %s (%s)", what, shmbus_strerror(r),
	         shmbus_last_error());
	atomic_store(&sh->failed, 1);
	_exit(1);
}

/* One side of a run: the channels, and how it waits. */
struct side {
	shmbus_bus_t *bus;
	shmbus_state_t *in, *out, *idle[IDLE];
	shmbus_waitset_t *ws;
	int ep, efd_in, efd_out;
	uint64_t last;
};

static shmbus_state_t *open_state(shmbus_bus_t *bus, const char *name)
{
	shmbus_state_opts_t o;
	shmbus_state_t *st;
	int r;

	shmbus_state_opts_init(&o);
	o.dtype = SHMBUS_UINT64;
	o.wait_policy = policy;
	r = shmbus_state_open(bus, name, &o, &st);
	if (r)
		die(name, r);
	return st;
}

static void side_open(struct side *s, int v, int role, int efd[2])
{
	char name[32];
	int r, i, fd;

	memset(s, 0, sizeof(*s));
	s->ep = -1;
	if (v == V_EFD) {
		struct epoll_event ev = {.events = EPOLLIN};

		s->efd_in = efd[role];
		s->efd_out = efd[!role];
		s->ep = epoll_create1(0);
		epoll_ctl(s->ep, EPOLL_CTL_ADD, s->efd_in, &ev);
		return;
	}
	r = shmbus_bus_open(bus_name, NULL, &s->bus);
	if (r)
		die("open bus", r);
	s->in = open_state(s->bus, role ? "ping" : "pong");
	s->out = open_state(s->bus, role ? "pong" : "ping");
	s->last = shmbus_state_seq(s->in);
	if (v == V_STATE)
		return;
	r = shmbus_waitset_new(&s->ws);
	if (!r)
		r = shmbus_waitset_set_wait(s->ws, policy, 0);
	if (!r)
		r = shmbus_waitset_add_state(s->ws, s->in, s->last, 0);
	for (i = 0; !r && v == V_SET1000 && i < IDLE; i++) {
		snprintf(name, sizeof(name), "idle%d.%d", role, i);
		s->idle[i] = open_state(s->bus, name);
		r = shmbus_waitset_add_state(s->ws, s->idle[i], shmbus_state_seq(s->idle[i]),
		                             (uint64_t)i + 1);
	}
	if (r)
		die("wait set", r);
	if (v == V_WSFD) {
		struct epoll_event ev = {.events = EPOLLIN};

		r = shmbus_waitset_fd(s->ws, &fd);
		if (r)
			die("waitset_fd", r);
		s->ep = epoll_create1(0);
		epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
	}
}

static void side_close(struct side *s)
{
	int i;

	if (s->ws)
		shmbus_waitset_free(s->ws);
	for (i = 0; i < IDLE; i++)
		shmbus_state_close(s->idle[i]);
	shmbus_state_close(s->in);
	shmbus_state_close(s->out);
	if (s->bus)
		shmbus_bus_close(s->bus);
	if (s->ep >= 0)
		close(s->ep);
}

/* Wait for the other side's next value; returns it. */
static uint64_t side_wait(struct side *s, int v)
{
	struct epoll_event ev;
	uint64_t tags[4], val, seq;
	size_t n;
	int r;

	if (v == V_EFD) {
		while (epoll_wait(s->ep, &ev, 1, -1) != 1)
			;
		if (read(s->efd_in, &val, sizeof(val)) != sizeof(val))
			die("eventfd read", SHMBUS_ESYS);
		return val;
	}
	for (;;) {
		if (v == V_STATE) {
			r = shmbus_state_wait(s->in, s->last, SHMBUS_FOREVER, &seq);
		} else {
			if (v == V_WSFD)
				while (epoll_wait(s->ep, &ev, 1, -1) != 1)
					;
			r = shmbus_waitset_wait(s->ws, v == V_WSFD ? 0 : SHMBUS_FOREVER, tags, 4, &n);
			if (r == SHMBUS_ETIMEDOUT)
				continue;       /* the fd was readable for nothing */
		}
		if (r)
			die("wait", r);
		r = shmbus_state_read(s->in, &val, sizeof(val), &seq);
		if (r)
			die("read", r);
		if (seq > s->last) {
			s->last = seq;
			return val;
		}
	}
}

static void side_send(struct side *s, int v, uint64_t val)
{
	int r;

	if (v == V_EFD) {
		if (write(s->efd_out, &val, sizeof(val)) != sizeof(val))
			die("eventfd write", SHMBUS_ESYS);
		return;
	}
	r = shmbus_state_write(s->out, &val, sizeof(val));
	if (r)
		die("write", r);
}

static void role_main(int v, int role, int efd[2])
{
	struct side s;
	uint64_t i, t0, got;

	pin(role);
	side_open(&s, v, role, efd);
	atomic_fetch_add(&sh->ready, 1);
	while (atomic_load(&sh->ready) < 2)
		;
	if (role == 0) {
		for (i = 1; i <= warm + rounds; i++) {
			t0 = now_ns();
			side_send(&s, v, i);
			got = side_wait(&s, v);
			if (i > warm)
				sh->ns[i - warm - 1] = now_ns() - t0;
			if (got != i) {
				snprintf(sh->err, sizeof(sh->err), "%s: round %llu came back as %llu",
				         vname[v], (unsigned long long)i, (unsigned long long)got);
				atomic_store(&sh->failed, 1);
				_exit(1);
			}
		}
	} else {
		for (i = 1; i <= warm + rounds; i++)
			side_send(&s, v, side_wait(&s, v));
	}
	side_close(&s);
	_exit(0);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}


/* One run of variant v: p50 and p99 of the round trips, in ns. */
static int run(int v, double *p50, double *p99)
{
	pid_t kid[2];
	int efd[2], i, st, bad = 0;

	efd[0] = eventfd(0, 0);
	efd[1] = eventfd(0, 0);
	atomic_store(&sh->ready, 0);
	for (i = 0; i < 2; i++) {
		kid[i] = fork();
		if (kid[i] == 0)
			role_main(v, i, efd);
	}
	for (i = 0; i < 2; i++) {
		if (waitpid(kid[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
			bad = 1;
			kill(kid[!i], SIGKILL);
		}
	}
	close(efd[0]);
	close(efd[1]);
	if (bad || atomic_load(&sh->failed)) {
		fprintf(stderr, "waitbench: %s failed: %s\n", vname[v], sh->err);
		return -1;
	}
	qsort(sh->ns, rounds, sizeof(uint64_t), cmp_u64);
	*p50 = (double)sh->ns[rounds / 2];
	*p99 = (double)sh->ns[rounds * 99 / 100];
	return 0;
}


int main(int argc, char **argv)
{
	static const int pairs[3][2] = {{V_STATE, V_WS}, {V_EFD, V_WSFD}, {V_SET1, V_SET1000}};
	static const char *const what[3] = {
		"(1) wake-up: wait set of 1 vs state_wait",
		"(2) fd in epoll vs bare eventfd in epoll",
		"(3) set of 1000 (1 active) vs set of 1",
	};
	static const double target[3] = {1.2, 1.5, 2.0};
	double p50[V__COUNT][BLOCKS], p99[V__COUNT][BLOCKS];
	double r50[3][BLOCKS], r99[3][BLOCKS], m50[V__COUNT], m99[V__COUNT];
	double q50[3], q99[3];
	const char *json = NULL;
	shmbus_bus_opts_t bo;
	shmbus_bus_t *bus;
	FILE *f;
	int b, v, k, i, r;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			rounds = 2000;
			warm = 200;
		} else if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "spin-park") && strcmp(argv[i], "park")) {
				fprintf(stderr, "waitbench: --policy is park or spin-park, not '%s'\n", argv[i]);
				return 2;
			}
			policy = strcmp(argv[i], "spin-park") == 0 ? SHMBUS_WAIT_SPIN_PARK : SHMBUS_WAIT_PARK;
		} else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
			json = argv[++i];
		} else {
			int help = strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
			fprintf(help ? stdout : stderr,
			        "usage: waitbench [--quick] [--policy park|spin-park] [--json FILE]\n");
			if (help)
				printf("Wake-ups through a wait set against shmbus_state_wait, the wait set's fd\n"
				       "in epoll against a bare eventfd, a set of 1,000 channels against a set\n"
				       "of 1: round trips between two pinned processes, medians over\n"
				       "interleaved blocks (docs/benchmarks.md).\n"
				       "  --quick          a smoke run (figures meaningless)\n"
				       "  --policy P       park (default: every wake-up through the kernel) or\n"
				       "                   spin-park (the library default)\n"
				       "  --json FILE      the figures, as JSON\n");
			return help ? 0 : 2;
		}
	}
	sh = mmap(NULL, sizeof(*sh) + rounds * sizeof(uint64_t), PROT_READ | PROT_WRITE,
	          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return perror("mmap"), 1;
	snprintf(bus_name, sizeof(bus_name), "waitbench-%d", (int)getpid());
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	shmbus_bus_opts_init(&bo);
	bo.max_channels = 2 * IDLE + 16;
	bo.size = 32 << 20;
	r = shmbus_bus_create(bus_name, &bo, &bus);
	if (r) {
		fprintf(stderr, "waitbench: %s (%s)\n", shmbus_strerror(r), shmbus_last_error());
		return 1;
	}
	printf("waitbench: %llu round trips per run (after %llu warm-up), %d interleaved blocks, policy %s, CPUs 0 and 1\n",
	       (unsigned long long)rounds, (unsigned long long)warm, BLOCKS,
	       policy == SHMBUS_WAIT_PARK ? "park" : "spin-park");
	for (b = 0; b < BLOCKS; b++)
		for (v = 0; v < V__COUNT; v++)
			if (run(v, &p50[v][b], &p99[v][b])) {
				shmbus_bus_close(bus);
				shmbus_bus_unlink(bus_name);
				return 1;
			}
	shmbus_bus_close(bus);
	shmbus_bus_unlink(bus_name);
	for (k = 0; k < 3; k++)
		for (b = 0; b < BLOCKS; b++) {
			r50[k][b] = p50[pairs[k][1]][b] / p50[pairs[k][0]][b];
			r99[k][b] = p99[pairs[k][1]][b] / p99[pairs[k][0]][b];
		}
	for (v = 0; v < V__COUNT; v++) {
		m50[v] = median(p50[v], BLOCKS);
		m99[v] = median(p99[v], BLOCKS);
	}
	for (k = 0; k < 3; k++) {
		q50[k] = median(r50[k], BLOCKS);
		q99[k] = median(r99[k], BLOCKS);
	}
	printf("\n%-44s %16s %16s %9s %9s %8s\n", "", "baseline p50/p99", "measured p50/p99",
	       "p50 ratio", "p99 ratio", "target");
	for (k = 0; k < 3; k++) {
		int a = pairs[k][0], m = pairs[k][1];

		printf("%-44s %7.1f/%7.1f %7.1f/%7.1f %8.2fx %8.2fx %6.1fx %s\n", what[k],
		       m50[a] / 1e3, m99[a] / 1e3, m50[m] / 1e3, m99[m] / 1e3, q50[k], q99[k],
		       target[k], q50[k] <= target[k] ? "met" : "NOT MET");
	}
	printf("(round trips in us; ratios are medians of per-block ratios)\n");
	if (json && (f = fopen(json, "w"))) {
		fprintf(f, "{\"policy\": \"%s\", \"rounds\": %llu, \"blocks\": %d, \"variants\": {",
		        policy == SHMBUS_WAIT_PARK ? "park" : "spin-park",
		        (unsigned long long)rounds, BLOCKS);
		for (v = 0; v < V__COUNT; v++)
			fprintf(f, "%s\"%d %s\": {\"p50_ns\": %.0f, \"p99_ns\": %.0f}", v ? ", " : "",
			        v, vname[v], m50[v], m99[v]);
		fprintf(f, "}, \"ratios\": [");
		for (k = 0; k < 3; k++)
			fprintf(f, "%s{\"what\": \"%s\", \"p50\": %.3f, \"p99\": %.3f, \"target\": %.1f}",
			        k ? ", " : "", what[k], q50[k], q99[k], target[k]);
		fprintf(f, "]}\n");
		fclose(f);
	}
	return 0;
}

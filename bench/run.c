/*
 * run.c -- one measurement run: two child processes, pinned to two CPUs,
 * moving messages through a transport.
 *
 * The parent forks role 0 (producer or pinger) and role 1 (consumer or
 * ponger), then sleeps in sigtimedwait() until they exit, so it takes no
 * CPU from them. Each child opens the transport, meets the other at a
 * start barrier, does its part, meets it again at an end barrier (so that
 * nobody closes a channel the other is still reading), closes and exits.
 * Results and error texts come back through a control block in shared
 * memory. A child that finds a wrong message writes what it expected and
 * what it got and exits non-zero; the parent then kills the other child
 * (which may be blocked forever on a dead peer) and reports the failure.
 *
 * Every message carries its sequence number in its first 8 bytes and, if
 * it is 16 bytes or more, in its last 8: a lost, repeated, reordered,
 * truncated or torn message shows as a mismatch. A sequence number of
 * all ones ends the run.
 *
 * One-way runs are time-boxed: the producer sends for the warm-up plus the
 * run's budget (it reads the clock about every 50 us, see struct ticker),
 * then sends the end marker. The consumer, reading the clock as often,
 * starts counting at the first message after the warm-up (a fifth of the
 * budget: page faults, cold caches and lazy library setup stay out of the
 * figure) and stops at the end marker; messages / elapsed is the rate (if
 * the end marker comes inside the warm-up, the count starts at the start
 * barrier instead). Ping-pong runs
 * do a fixed number of warm-up round trips, then time each one with
 * CLOCK_MONOTONIC until the budget or the sample limit is reached.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define SEQ_END UINT64_MAX

struct ctl {
	/* Barrier counters: each child adds 1 and waits for 2. */
	_Alignas(BENCH_CACHELINE) _Atomic uint32_t ready;
	_Alignas(BENCH_CACHELINE) _Atomic uint32_t done;
	/* The cache line of run_line_rtt(): odd values go from role 0 to role
	 * 1, even values back. */
	_Alignas(BENCH_CACHELINE) _Atomic uint32_t line;
	/* Set by a child that gave up, so the other stops waiting at a barrier. */
	_Atomic uint32_t abort;
	uint64_t count;
	uint64_t t_first, t_last;
	char err[2][600];
};

static struct ctl *ctl;
static uint64_t *samples;
static uint64_t samples_cap;
static volatile pid_t kids[2];
static volatile uint64_t sink;  /* keeps the zero-copy reads from being optimised away */

const char *const test_names[TEST__COUNT] = { "oneway", "oneway-zc", "pingpong" };

int run_init(uint64_t pp_max)
{
	ctl = bench_map_shared(BENCH_ALIGN_UP(sizeof *ctl, 4096));
	samples_cap = pp_max;
	samples = bench_map_shared(BENCH_ALIGN_UP(pp_max * sizeof *samples, 4096));
	return ctl && samples ? 0 : -1;
}

const uint64_t *run_samples(void)
{
	return samples;
}

void run_kill_children(void)
{
	for (int i = 0; i < 2; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
}

static void child_err(int role, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void child_err(int role, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctl->err[role], sizeof ctl->err[role], fmt, ap);
	va_end(ap);
	/* release: the error text is written before anyone acts on abort;
	 * pairs with the acquire load in barrier(). */
	atomic_store_explicit(&ctl->abort, 1, memory_order_release);
}

/* Meets the other child. Spins for a while (both sit on their own CPU),
 * then naps, because the other may take long to open (a daemon's discovery
 * loop) and that daemon needs a CPU too. -1 if the other gave up. */
static int barrier(_Atomic uint32_t *cnt)
{
	/* acq_rel: our arrival is visible before we look for the other's;
	 * pairs with the same increment in the other child. */
	atomic_fetch_add_explicit(cnt, 1, memory_order_acq_rel);
	for (unsigned i = 0;; i++) {
		/* acquire: once both arrived, everything the other did before
		 * arriving (opening its end) is visible. */
		if (atomic_load_explicit(cnt, memory_order_acquire) >= 2)
			return 0;
		if (atomic_load_explicit(&ctl->abort, memory_order_acquire))
			return -1;
		if (i < 100000)
			bench_relax();
		else
			nanosleep(&(struct timespec){ .tv_nsec = 50000 }, NULL);
	}
}

/* Decides when a streaming loop reads the clock: about every 50 us,
 * whatever the message rate, so that the reads cost nothing measurable at
 * 40 M messages/s and a slow transport still stops on time. The stride
 * (messages between reads) doubles while reads come faster than that and
 * halves when they come slower. */
struct ticker {
	uint64_t stride, left, last;
};

static int tick(struct ticker *t, uint64_t *now)
{
	if (--t->left)
		return 0;
	*now = bench_now_ns();
	uint64_t gap = *now - t->last;
	if (gap < 50000 && t->stride < (1u << 20))
		t->stride *= 2;
	else if (gap > 200000 && t->stride > 1)
		t->stride /= 2;
	t->last = *now;
	t->left = t->stride;
	return 1;
}

static void put_seq(unsigned char *b, size_t n, uint64_t seq)
{
	memcpy(b, &seq, 8);
	if (n >= 16)
		memcpy(b + n - 8, &seq, 8);
}

/* 0 if the message is the one expected, else writes the difference. */
static int check(int role, const unsigned char *m, size_t len, size_t want, uint64_t expect)
{
	uint64_t head, tail;
	memcpy(&head, m, 8);
	tail = head;
	if (len >= 16 && len == want)
		memcpy(&tail, m + len - 8, 8);
	if (len == want && head == expect && tail == expect)
		return 0;
	child_err(role, "wrong message #%llu: length %zu (expected %zu), sequence %llu "
		  "at the start and %llu at the end (expected %llu)",
		  (unsigned long long)expect, len, want, (unsigned long long)head,
		  (unsigned long long)tail, (unsigned long long)expect);
	return -1;
}

static unsigned char *pattern(size_t n)
{
	unsigned char *b = aligned_alloc(64, BENCH_ALIGN_UP(n, 64));
	if (b)
		for (size_t i = 0; i < n; i++)
			b[i] = (unsigned char)(i * 131 + 7);
	return b;
}

static int send_one(struct tctx *ctx, int zc, const unsigned char *src, size_t n)
{
	if (!zc)
		return ctx->t->send(ctx, src, n);
	/* Zero-copy: the payload is produced in place (here: copied from a
	 * source buffer, standing for whatever makes the data). */
	void *p = ctx->t->send_reserve(ctx, n);
	if (!p)
		return -1;
	memcpy(p, src, n);
	return ctx->t->send_commit(ctx, n);
}

static int producer(struct tctx *ctx, const struct run_cfg *cfg, int zc)
{
	size_t n = cfg->size;
	unsigned char *src = pattern(n);
	if (!src) {
		child_err(0, "out of memory");
		return -1;
	}
	uint64_t seq = 0, now;
	if (barrier(&ctl->ready))
		return -1;
	struct ticker tk = { .stride = 1, .left = 1, .last = bench_now_ns() };
	uint64_t deadline = tk.last + cfg->budget_ns + cfg->budget_ns / 5;
	for (;; seq++) {
		put_seq(src, n, seq);
		if (send_one(ctx, zc, src, n)) {
			child_err(0, "send #%llu: %s", (unsigned long long)seq, ctx->note);
			return -1;
		}
		if (tick(&tk, &now) && now >= deadline)
			break;
	}
	put_seq(src, n, SEQ_END);
	if (send_one(ctx, zc, src, n)) {
		child_err(0, "send end marker: %s", ctx->note);
		return -1;
	}
	free(src);
	return 0;
}

/* Reads the payload in place, as a consumer of a zero-copy message would. */
static uint64_t fold(const unsigned char *m, size_t n)
{
	uint64_t x = 0, w;
	for (size_t i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, m + i, 8);
		x ^= w;
	}
	return x;
}

static int consumer(struct tctx *ctx, const struct run_cfg *cfg, int zc)
{
	size_t n = cfg->size, len = 0;
	unsigned char *buf = pattern(n);
	if (!buf) {
		child_err(1, "out of memory");
		return -1;
	}
	uint64_t expect = 0, base = 0, t_first = 0, x = 0, now;
	if (barrier(&ctl->ready))
		return -1;
	struct ticker tk = { .stride = 1, .left = 1, .last = bench_now_ns() };
	uint64_t t_start = tk.last, warm_until = tk.last + cfg->budget_ns / 5;
	for (;;) {
		const unsigned char *m = buf;
		if (zc ? !(m = ctx->t->recv_peek(ctx, &len)) : ctx->t->recv(ctx, buf, n, &len) != 0) {
			child_err(1, "recv #%llu: %s", (unsigned long long)expect, ctx->note);
			return -1;
		}
		if (!t_first && tick(&tk, &now) && now >= warm_until) {
			t_first = now;
			base = expect;
		}
		uint64_t head;
		memcpy(&head, m, 8);
		if (head == SEQ_END && len == n) {
			ctl->t_last = bench_now_ns();
			if (zc)
				ctx->t->recv_release(ctx);
			break;
		}
		if (check(1, m, len, n, expect))
			return -1;
		if (zc) {
			x ^= fold(m, len);
			if (ctx->t->recv_release(ctx)) {
				child_err(1, "release #%llu: %s", (unsigned long long)expect, ctx->note);
				return -1;
			}
		}
		expect++;
	}
	sink = x;
	if (!t_first || expect == base) {
		/* The run ended inside the warm-up: a message takes longer than
		 * the run, or we were descheduled for most of it (a loaded
		 * machine, short --quick runs). Count from the start barrier
		 * rather than fail; the figure then includes the warm-up. */
		t_first = t_start;
		base = 0;
		if (!expect) {
			child_err(1, "no message arrived before the end marker");
			return -1;
		}
	}
	ctl->t_first = t_first;
	ctl->count = expect - base;
	free(buf);
	return 0;
}

static int pinger(struct tctx *ctx, const struct run_cfg *cfg)
{
	size_t n = cfg->size, len;
	unsigned char *out = pattern(n), *in = pattern(n);
	if (!out || !in) {
		child_err(0, "out of memory");
		return -1;
	}
	uint64_t k = 0, start = 0, max = cfg->pp_max < samples_cap ? cfg->pp_max : samples_cap;
	if (barrier(&ctl->ready))
		return -1;
	for (uint64_t i = 0;; i++) {
		put_seq(out, n, i);
		uint64_t t0 = bench_now_ns();
		if (ctx->t->send(ctx, out, n) || ctx->t->recv(ctx, in, n, &len)) {
			child_err(0, "round trip #%llu: %s", (unsigned long long)i, ctx->note);
			return -1;
		}
		uint64_t t1 = bench_now_ns();
		if (check(0, in, len, n, i))
			return -1;
		if (i < cfg->pp_warmup)
			continue;
		if (k == 0)
			start = t0;
		samples[k++] = t1 - t0;
		if (k == max || t1 - start >= cfg->budget_ns)
			break;
	}
	put_seq(out, n, SEQ_END);
	if (ctx->t->send(ctx, out, n)) {
		child_err(0, "send end marker: %s", ctx->note);
		return -1;
	}
	ctl->count = k;
	free(out);
	free(in);
	return 0;
}

static int ponger(struct tctx *ctx, const struct run_cfg *cfg)
{
	size_t n = cfg->size, len;
	unsigned char *buf = pattern(n);
	if (!buf) {
		child_err(1, "out of memory");
		return -1;
	}
	if (barrier(&ctl->ready))
		return -1;
	for (uint64_t i = 0;; i++) {
		if (ctx->t->recv(ctx, buf, n, &len)) {
			child_err(1, "recv #%llu: %s", (unsigned long long)i, ctx->note);
			return -1;
		}
		uint64_t head;
		memcpy(&head, buf, 8);
		if (head == SEQ_END)
			break;
		if (check(1, buf, len, n, i))
			return -1;
		if (ctx->t->send(ctx, buf, len)) {
			child_err(1, "send #%llu: %s", (unsigned long long)i, ctx->note);
			return -1;
		}
	}
	free(buf);
	return 0;
}

static int pin(int role, int cpu);

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void child(int role, struct tctx *ctx, const struct run_cfg *cfg)
{
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	kids[0] = kids[1] = 0;

	if (pin(role, cfg->cpu[role]))
		_exit(1);
	ctx->role = role;
	if (ctx->t->open(ctx)) {
		child_err(role, "open: %s", ctx->note);
		_exit(1);
	}
	int rc;
	if (cfg->test == TEST_PINGPONG)
		rc = role ? ponger(ctx, cfg) : pinger(ctx, cfg);
	else
		rc = role ? consumer(ctx, cfg, cfg->test == TEST_ZEROCOPY)
			  : producer(ctx, cfg, cfg->test == TEST_ZEROCOPY);
	/* On failure, do not close: the peer may still be inside the channel
	 * and the parent is about to kill it anyway. */
	if (rc || barrier(&ctl->done))
		_exit(1);
	ctx->t->close(ctx);
	/* exit(), not _exit(): a library's static destructors may clean up
	 * (iceoryx removes its runtime's socket files); stdio was flushed
	 * before fork() and the parent registers no atexit handlers. */
	exit(0);
}

static int pin(int role, int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) == 0)
		return 0;
	child_err(role, "cannot pin to CPU %d: %s", cpu, strerror(errno));
	return -1;
}

double run_line_rtt(const int cpu[2], double *mean)
{
	/* BLOCKS blocks of ROUNDS round trips; the pinger times each block.
	 * The median block is what the hardware allows; the mean also counts
	 * the blocks in which a process was preempted, so mean >> median says
	 * something else is running on our CPUs. */
	enum { BLOCKS = 200, ROUNDS = 1000 };
	memset(ctl, 0, sizeof *ctl);
	fflush(NULL);
	pid_t pid[2];
	for (int role = 0; role < 2; role++) {
		pid[role] = fork();
		if (pid[role] < 0)
			return -1;
		if (pid[role])
			continue;
		if (pin(role, cpu[role]) || barrier(&ctl->ready))
			_exit(1);
		for (uint32_t b = 0; b < BLOCKS; b++) {
			uint64_t t0 = bench_now_ns();
			for (uint32_t k = 0; k < ROUNDS; k++) {
				uint32_t i = b * ROUNDS + k;
				uint32_t ping = 2 * i + 1, pong = 2 * i + 2;
				/* release/acquire: a bare hand-off of the line,
				 * nothing else is published; each store pairs
				 * with the other side's spinning load. */
				if (role == 0) {
					atomic_store_explicit(&ctl->line, ping, memory_order_release);
					while (atomic_load_explicit(&ctl->line, memory_order_acquire) != pong)
						bench_relax();
				} else {
					while (atomic_load_explicit(&ctl->line, memory_order_acquire) != ping)
						bench_relax();
					atomic_store_explicit(&ctl->line, pong, memory_order_release);
				}
			}
			if (role == 0)
				samples[b] = bench_now_ns() - t0;
		}
		_exit(0);
	}
	int ok = 1;
	for (int role = 0; role < 2; role++) {
		int st;
		ok &= waitpid(pid[role], &st, 0) == pid[role] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	if (!ok || samples_cap < BLOCKS)
		return -1;
	uint64_t sum = 0, v[BLOCKS];
	for (int b = 0; b < BLOCKS; b++)
		sum += v[b] = samples[b];
	qsort(v, BLOCKS, sizeof *v, cmp_u64);
	if (mean)
		*mean = (double)sum / ((double)BLOCKS * ROUNDS);
	return (double)v[BLOCKS / 2] / ROUNDS;
}

static void describe(int st, char *buf, size_t cap)
{
	if (WIFEXITED(st))
		snprintf(buf, cap, "exit status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(buf, cap, "status 0x%x", st);
}

int run_once(struct tctx *ctx, const struct run_cfg *cfg, struct run_res *res)
{
	memset(ctl, 0, sizeof *ctl);
	memset(res, 0, sizeof *res);
	sigset_t chld, old;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old);
	fflush(NULL);
	for (int role = 0; role < 2; role++) {
		pid_t p = fork();
		if (p == 0)
			child(role, ctx, cfg);
		if (p < 0) {
			snprintf(res->err, sizeof res->err, "fork: %s", strerror(errno));
			run_kill_children();
			break;
		}
		kids[role] = p;
	}

	int status[2] = { 0, 0 }, alive = (kids[0] > 0) + (kids[1] > 0), failed = -1;
	uint64_t deadline = bench_now_ns() + (uint64_t)cfg->timeout_s * 1000000000u;
	int timed_out = 0;
	while (alive) {
		for (int i = 0; i < 2; i++) {
			if (kids[i] > 0 && waitpid(kids[i], &status[i], WNOHANG) == kids[i]) {
				kids[i] = 0;
				alive--;
				if (!(WIFEXITED(status[i]) && WEXITSTATUS(status[i]) == 0) && failed < 0) {
					failed = i;
					run_kill_children();
				}
			}
		}
		if (!alive)
			break;
		uint64_t now = bench_now_ns();
		if (now >= deadline) {
			timed_out = 1;
			run_kill_children();
			deadline = now + 5000000000u;
			continue;
		}
		uint64_t left = deadline - now;
		struct timespec ts = { .tv_sec = (time_t)(left / 1000000000u),
				       .tv_nsec = (long)(left % 1000000000u) };
		sigtimedwait(&chld, NULL, &ts);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);

	if (res->err[0])
		return -1;
	if (timed_out || failed >= 0) {
		char how[96] = "";
		int who = failed >= 0 ? failed : 0;
		if (failed >= 0)
			describe(status[failed], how, sizeof how);
		const char *role = who ? "consumer/ponger" : "producer/pinger";
		if (ctl->err[0][0] || ctl->err[1][0])
			bench_strf(res->err, sizeof res->err, "%s%s%s%s%s",
				 timed_out ? "timed out; " : "",
				 ctl->err[0][0] ? "producer/pinger: " : "", ctl->err[0],
				 ctl->err[1][0] ? (ctl->err[0][0] ? "; consumer/ponger: " : "consumer/ponger: ") : "",
				 ctl->err[1]);
		else if (timed_out)
			snprintf(res->err, sizeof res->err, "timed out after %u s (a side is stuck)",
				 cfg->timeout_s);
		else
			snprintf(res->err, sizeof res->err, "%s died: %s", role, how);
		return -1;
	}
	res->count = ctl->count;
	if (cfg->test != TEST_PINGPONG) {
		uint64_t dt = ctl->t_last - ctl->t_first;
		if (ctl->count == 0 || dt == 0) {
			snprintf(res->err, sizeof res->err, "no messages arrived in the run");
			return -1;
		}
		res->rate = (double)ctl->count * 1e9 / (double)dt;
	} else if (ctl->count == 0) {
		snprintf(res->err, sizeof res->err, "no round trips recorded");
		return -1;
	}
	return 0;
}

/*
 * mixbench.c -- a mixed stream of variable-length messages between two
 * processes: what a queue of cells does with it, against a queue of slots
 * and a bare ring.
 *
 * The stream. Message i is 64 KiB when i % 10 == 9 and 64 bytes otherwise
 * (90% small, 10% large, in a fixed pattern). Each message carries its
 * sequence number and length {seq, len} in its first 16 bytes and again in
 * its last 16. The consumer checks every message: the sequence number it
 * expects next, the length the pattern gives that number, both ends alike;
 * a message lost, duplicated, reordered or torn stops the run with the
 * values that differed, and so does a count at the end of stream other
 * than what the producer sent.
 *
 * Contenders, one producer process pinned to CPU 0 and one consumer pinned
 * to CPU 1 (--cpus), a fresh ring for every run:
 *   cells     a shmbus queue of cells: 65536 cells of 64 B (4 MiB of
 *             payload; ring memory 65536 x (16 + 64) B = 5 MiB), max_msg
 *             64 KiB; shmbus_queue_put / shmbus_queue_get.
 *   cells-zc  the same queue, zero-copy: reserve, memcpy from a source
 *             buffer (standing for whatever makes the data), commit; peek,
 *             read the payload in place, release (as ipcbench's oneway-zc).
 *   slots     a shmbus queue of slots of 64 KiB: 4 MiB / 64 KiB = 64 slots
 *             (a power of two, which the library rounds slots up to);
 *             put / get.
 *   rawring   the ceiling: a single-producer single-consumer byte ring of
 *             4 MiB in shared memory, both sides spinning, one copy in and
 *             one copy out (bench/mixring.h: bench/t_rawring.c's protocol,
 *             copied, with a 4 MiB ring, a header per record that follows
 *             its length, and an END record).
 * The shmbus queues use the default wait policy (spin 50 us, then park on
 * a futex), as ipcbench's "shmbus"; --spin makes them busy-spin like the
 * raw ring.
 *
 * A run. Both children open their end and map in every page of it, meet at
 * a barrier, then the producer sends for 1.2 x --time seconds and ends the
 * stream (shmbus_queue_shut; the END record). The first 0.2 x --time is a
 * warm-up: the window opens when the producer passes it, and closes when
 * the consumer has the end of stream; the figures are the messages the
 * producer sent in the window, and their payload bytes (from the pattern),
 * over its length: messages/s and MB/s (10^6 payload bytes). The window
 * is anchored on the producer so that a consumer descheduled for a while
 * cannot shrink it to the time it takes to drain a full ring. What the
 * ring held when it opened (at most 4 MiB) is delivered in the window but
 * not counted: a figure is low by at most 4 MiB over the bytes its window
 * carried (under 1% once a run moves 400 MiB).
 * Rounds: for r in 1..R every contender runs once, so that a slow spell of
 * a shared machine falls on all of them alike; a figure is the median of
 * its R runs, and is also given divided by the raw ring's median. The
 * parent kills both children when one fails or the watchdog alarm rings,
 * and each child dies with the parent (PR_SET_PDEATHSIG).
 *
 * Memory (no timing, one process). For each shmbus layout, with a group
 * joined and nobody reading, put the same stream with timeout 0 until
 * SHMBUS_EAGAIN: the messages the ring holds at once, the ring bytes per
 * message held, and how many 64 KiB slots (and bytes) a queue of slots
 * would need to hold as many. Ring memory: slots x (16 + cell_bytes) for
 * cells, the documented layout (shmbus.h, shmbus_queue_opts_t); for slots,
 * measured: shmbus_channel_info's area_size of a queue of 128 slots minus
 * that of the same queue with 64, shown beside docs/queue.md's layout (the
 * slot word's line, then max_msg bytes; the same difference is shown for
 * cells too, as a check).
 *
 *   mixbench [--quick] [--runs R] [--time SECONDS] [--only NAME,...]
 *            [--json FILE] [--spin] [--cpus A,B]
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
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mixring.h"
#include "shmbus.h"

#define SMALL 64u
#define LARGE 65536u
#define PERIOD 10u                      /* message i is LARGE when i % PERIOD == PERIOD - 1 */
#define RING_BYTES MIXRING_BYTES        /* payload bytes of every ring: 4 MiB */
#define CELL 64u
#define CELLS (RING_BYTES / CELL)       /* 65536 */
#define SLOTS (RING_BYTES / LARGE)      /* 64 */
#define TIMEOUT_NS (30ll * 1000000000ll)
#define LINE 64
#define MAX_RUNS 31
#define GROUP "g"

_Static_assert((SLOTS & (SLOTS - 1)) == 0, "slots: a power of two, as the library keeps them");
_Static_assert((CELLS & (CELLS - 1)) == 0, "cells: a power of two, as the library keeps them");

enum contender { C_CELLS, C_CELLS_ZC, C_SLOTS, C_RAW, NC };

static const char *const names[NC] = { "cells", "cells-zc", "slots", "rawring" };
static const char *const rings[NC] = {
	"65536 cells x 64 B, put/get",
	"65536 cells x 64 B, reserve/peek",
	"64 slots x 64 KiB, put/get",
	"4 MiB byte ring, spinning",
};

static size_t msg_len(uint64_t i)
{
	return i % PERIOD == PERIOD - 1 ? LARGE : SMALL;
}

/* Payload bytes of messages 0 .. n-1. */
static uint64_t stream_bytes(uint64_t n)
{
	return n / PERIOD * ((PERIOD - 1) * SMALL + LARGE) + (n % PERIOD) * SMALL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the parent's control block, shared with the children ------------ */

struct ctl {
	_Atomic uint32_t ready;         /* children at the start barrier */
	_Atomic uint32_t abort;         /* a child gave up */
	/* The window: from the producer's warm-up end (t_first, when it
	 * was about to send #w_seq) to the consumer's end of stream. */
	uint64_t sent;                  /* producer: messages sent */
	uint64_t t_start, t_first, w_seq;  /* producer: barrier, window start */
	uint64_t total, t_end;          /* consumer: messages received, end of stream */
	char err[2][400];               /* per role, why it failed */
};

static struct ctl *ctl;
static pid_t parent_pid;

/* What a run needs; the parent sets it before the fork. */
static struct {
	enum contender c;
	uint64_t budget_ns;
	int cpu[2];
	int policy;
	char bus[SHMBUS_NAME_MAX + 1];
	struct mixring *ring;
	size_t ring_map;
} run;

static void child_err(int role, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void child_err(int role, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ctl->err[role], sizeof ctl->err[role], fmt, ap);
	va_end(ap);
	/* release: the text is written before anyone acts on abort; pairs
	 * with the acquire load in barrier(). */
	atomic_store_explicit(&ctl->abort, 1, memory_order_release);
}

/* snprintf() at the end of what buf holds; cut short when full. */
static void append(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t cap, const char *fmt, ...)
{
	size_t k = strlen(buf);
	va_list ap;

	if (k + 1 >= cap)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + k, cap - k, fmt, ap);
	va_end(ap);
}

static int sb_err(int role, const char *what, int rc)
{
	child_err(role, "%s: %s (%s)", what, shmbus_strerror(rc), shmbus_last_error());
	return -1;
}

/* Meets the other child; -1 if it gave up. */
static int barrier(void)
{
	/* acq_rel: our arrival is seen after our end is open; pairs with the
	 * same increment in the other child. */
	atomic_fetch_add_explicit(&ctl->ready, 1, memory_order_acq_rel);
	for (unsigned i = 0;; i++) {
		/* acquire: once both arrived, what the other did before is seen. */
		if (atomic_load_explicit(&ctl->ready, memory_order_acquire) >= 2)
			return 0;
		if (atomic_load_explicit(&ctl->abort, memory_order_acquire))
			return -1;
		if (i < 100000)
			mixring_relax();
		else
			nanosleep(&(struct timespec){ .tv_nsec = 50000 }, NULL);
	}
}

/* fork() does not copy the page tables of shared mappings: map the pages
 * in before the timed part (bench/util.c's bench_prefault). */
static void prefault(void *p, size_t len)
{
#ifdef MADV_POPULATE_WRITE
	if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
		return;
#endif
	for (size_t i = 0; i < len; i += 4096)
		(void)*(volatile const unsigned char *)((const unsigned char *)p + i);
}

/* Maps in every page of the bus's segment, found in /proc/self/maps. */
static void prefault_bus(const char *bus)
{
	char want[96], line[512];
	snprintf(want, sizeof want, "/dev/shm/shmbus-%s\n", bus);
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		int path = 0;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &path) == 2 && path &&
		    strcmp(line + path, want) == 0)
			prefault((void *)lo, hi - lo);
	}
	fclose(f);
}

/* One side's end of a contender. */
struct end {
	enum contender c;
	shmbus_bus_t *bus;
	shmbus_queue_t *q;
	int held;               /* a peeked message not yet released */
	struct mixring_tx tx;   /* the raw ring's producer */
	struct mixring_rx rx;   /* the raw ring's consumer */
};

/* ---- one side's end, for every contender ------------------------------ */

static void queue_opts(shmbus_queue_opts_t *o, enum contender c, int create)
{
	shmbus_queue_opts_init(o);
	o->slots = c == C_SLOTS ? SLOTS : CELLS;
	o->cell_bytes = c == C_SLOTS ? 0 : CELL;
	o->max_msg = LARGE;
	o->max_groups = 2;
	o->max_members = 4;
	o->max_producers = 2;
	o->create = create;
	o->wait_policy = run.policy;
}

static int end_open(struct end *e, int role)
{
	shmbus_queue_opts_t o;
	int rc;

	memset(e, 0, sizeof *e);
	e->c = run.c;
	if (e->c == C_RAW) {
		e->tx.r = e->rx.r = run.ring;
		prefault(run.ring, run.ring_map);
		return 0;
	}
	if ((rc = shmbus_bus_open(run.bus, NULL, &e->bus)))
		return sb_err(role, "shmbus_bus_open", rc);
	queue_opts(&o, e->c, 0);
	if ((rc = shmbus_queue_open(e->bus, "q", &o, &e->q)))
		return sb_err(role, "shmbus_queue_open", rc);
	if (role && (rc = shmbus_queue_join(e->q, GROUP, SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE)))
		return sb_err(role, "shmbus_queue_join", rc);
	prefault_bus(run.bus);
	return 0;
}

static void end_close(struct end *e)
{
	if (e->held)
		shmbus_queue_release(e->q);
	shmbus_queue_close(e->q);
	shmbus_bus_close(e->bus);
}

static int send_one(struct end *e, const unsigned char *src, size_t len)
{
	void *p;
	int rc;

	switch (e->c) {
	case C_RAW:
		mixring_send(&e->tx, src, len);
		return 0;
	case C_CELLS_ZC:
		if ((rc = shmbus_queue_reserve(e->q, len, &p, TIMEOUT_NS)))
			return sb_err(0, "shmbus_queue_reserve", rc);
		memcpy(p, src, len);
		if ((rc = shmbus_queue_commit(e->q, len)))
			return sb_err(0, "shmbus_queue_commit", rc);
		return 0;
	default:
		if ((rc = shmbus_queue_put(e->q, src, len, TIMEOUT_NS)))
			return sb_err(0, "shmbus_queue_put", rc);
		return 0;
	}
}

static int end_stream(struct end *e)
{
	int rc;

	if (e->c == C_RAW) {
		mixring_send(&e->tx, NULL, MIXRING_END);
		return 0;
	}
	return (rc = shmbus_queue_shut(e->q)) ? sb_err(0, "shmbus_queue_shut", rc) : 0;
}

/* The next message: in buf (copying) or in place (*m); 1 at the end of the
 * stream, -1 on failure. */
static int recv_one(struct end *e, unsigned char *buf, const unsigned char **m, size_t *len)
{
	shmbus_msg_t msg;
	uint32_t flags = 0;
	uint64_t n;
	int rc;

	switch (e->c) {
	case C_RAW: {
		const unsigned char *p = mixring_next(&e->rx, &n);
		if (n == MIXRING_END) {
			mixring_consume(&e->rx, n);
			return 1;
		}
		if (n > LARGE) {
			child_err(1, "raw ring: a record of %llu bytes", (unsigned long long)n);
			return -1;
		}
		memcpy(buf, p, n);
		mixring_consume(&e->rx, n);
		*m = buf;
		*len = n;
		return 0;
	}
	case C_CELLS_ZC:
		rc = shmbus_queue_peek(e->q, &msg, TIMEOUT_NS);
		if (rc == SHMBUS_ECLOSED)
			return 1;
		if (rc)
			return sb_err(1, "shmbus_queue_peek", rc);
		e->held = 1;
		*m = msg.data;
		*len = msg.len;
		flags = msg.flags;
		break;
	default:
		rc = shmbus_queue_get(e->q, buf, LARGE, len, &flags, TIMEOUT_NS);
		if (rc == SHMBUS_ECLOSED)
			return 1;
		if (rc)
			return sb_err(1, "shmbus_queue_get", rc);
		*m = buf;
		break;
	}
	if (flags & SHMBUS_MSG_REDELIVERED) {
		child_err(1, "a message flagged redelivered (nobody died)");
		return -1;
	}
	return 0;
}

static int release_one(struct end *e)
{
	int rc;

	if (!e->held)
		return 0;
	e->held = 0;
	return (rc = shmbus_queue_release(e->q)) ? sb_err(1, "shmbus_queue_release", rc) : 0;
}

/* ---- the two children ------------------------------------------------- */

static void mark(unsigned char *b, size_t len, uint64_t seq)
{
	uint64_t w[2] = { seq, len };
	memcpy(b, w, 16);
	memcpy(b + len - 16, w, 16);
}

/* 0 if m is message #expect, whole; else says how it differs. */
static int check(const unsigned char *m, size_t len, uint64_t expect)
{
	size_t want = msg_len(expect);
	uint64_t h[2] = { 0, 0 }, t[2] = { 0, 0 };
	const char *what;

	if (len >= 16) {
		memcpy(h, m, 16);
		memcpy(t, m + len - 16, 16);
	}
	if (len == want && h[0] == expect && h[1] == want && t[0] == expect && t[1] == want)
		return 0;
	if (len < 16 || h[0] != t[0] || h[1] != t[1] || h[1] != len)
		what = "torn or wrong length";
	else if (h[0] > expect)
		what = "lost (or reordered)";
	else
		what = "duplicated (or reordered)";
	child_err(1, "message #%llu %s: got %zu bytes (expected %zu), {seq %llu, len %llu} at the start, "
		  "{seq %llu, len %llu} at the end", (unsigned long long)expect, what, len, want,
		  (unsigned long long)h[0], (unsigned long long)h[1], (unsigned long long)t[0],
		  (unsigned long long)t[1]);
	return -1;
}

static unsigned char *pattern(void)
{
	unsigned char *b = aligned_alloc(LINE, LARGE);
	if (b)
		for (size_t i = 0; i < LARGE; i++)
			b[i] = (unsigned char)(i * 131 + 7);
	return b;
}

static int producer(struct end *e)
{
	unsigned char *src = pattern();
	uint64_t seq, now;

	if (!src) {
		child_err(0, "out of memory");
		return -1;
	}
	if (barrier())
		return -1;
	uint64_t t0 = now_ns(), warm_until = t0 + run.budget_ns / 5;
	uint64_t deadline = t0 + run.budget_ns + run.budget_ns / 5;
	ctl->t_start = t0;
	for (seq = 0;; seq++) {
		size_t len = msg_len(seq);
		mark(src, len, seq);
		if (send_one(e, src, len)) {
			append(ctl->err[0], sizeof ctl->err[0], " (message #%llu, %zu bytes)",
			       (unsigned long long)seq, len);
			return -1;
		}
		/* A clock read every 16 messages: about 1.6 large copies apart. */
		if (seq % 16 != 15)
			continue;
		now = now_ns();
		if (!ctl->w_seq && now >= warm_until) {
			ctl->w_seq = seq + 1;
			ctl->t_first = now;
		}
		if (now >= deadline)
			break;
	}
	ctl->sent = seq + 1;
	free(src);
	return end_stream(e);
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

static volatile uint64_t sink;

static int consumer(struct end *e)
{
	unsigned char *buf = pattern();
	uint64_t expect, x = 0;

	if (!buf) {
		child_err(1, "out of memory");
		return -1;
	}
	if (barrier())
		return -1;
	for (expect = 0;; expect++) {
		const unsigned char *m;
		size_t len;
		int r = recv_one(e, buf, &m, &len);
		if (r > 0)
			break;
		if (r < 0 || check(m, len, expect))
			return -1;
		if (e->c == C_CELLS_ZC)
			x ^= fold(m, len);
		if (release_one(e))
			return -1;
	}
	ctl->t_end = now_ns();
	ctl->total = expect;
	sink = x;
	free(buf);
	return 0;
}

static void child(int role)
{
	struct end e;
	cpu_set_t set;
	int rc;

	/* Die with the parent: no child outlives a killed mixbench. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent_pid)
		_exit(1);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	CPU_ZERO(&set);
	CPU_SET(run.cpu[role], &set);
	if (sched_setaffinity(0, sizeof set, &set)) {
		child_err(role, "cannot pin to CPU %d: %s", run.cpu[role], strerror(errno));
		_exit(1);
	}
	rc = end_open(&e, role);
	if (!rc)
		rc = role ? consumer(&e) : producer(&e);
	end_close(&e);
	_exit(rc ? 1 : 0);
}

/* ---- the parent: one run --------------------------------------------- */

static volatile pid_t kids[2];
static volatile sig_atomic_t timed_out;
static char bus_path[96];       /* /dev/shm file of the bus, for the signal handler */

static void kill_kids(void)
{
	for (int i = 0; i < 2; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
}

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
	kill_kids();
}

/* Ctrl+C or a kill: no child and no bus left behind. */
static void on_signal(int sig)
{
	(void)sig;
	kill_kids();
	if (bus_path[0])
		unlink(bus_path);
	_exit(130);
}

struct run_res {
	double secs, msgs_per_s, mb_per_s;
	uint64_t sent, counted, bytes;
	char err[900];
};

static int make_bus(const char *name, uint64_t size, shmbus_bus_t **bus, char *err, size_t cap)
{
	shmbus_bus_opts_t bo;
	int rc;

	shmbus_bus_opts_init(&bo);
	bo.size = size;
	shmbus_bus_unlink(name); /* a leftover of a killed run with our pid */
	snprintf(bus_path, sizeof bus_path, "/dev/shm/shmbus-%s", name);
	if ((rc = shmbus_bus_create(name, &bo, bus))) {
		snprintf(err, cap, "shmbus_bus_create %s: %s (%s)", name, shmbus_strerror(rc), shmbus_last_error());
		bus_path[0] = 0;
		return -1;
	}
	return 0;
}

/* The bus and its queue, with the consumer's group made before any child
 * starts, so that nothing the producer puts before the consumer joins is
 * missed. */
static int setup(enum contender c, char *err, size_t cap)
{
	shmbus_queue_opts_t o;
	shmbus_bus_t *bus;
	shmbus_queue_t *q;
	int rc;

	if (c == C_RAW) {
		run.ring_map = sizeof(struct mixring) + RING_BYTES;
		run.ring = mmap(NULL, run.ring_map, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (run.ring == MAP_FAILED) {
			run.ring = NULL;
			snprintf(err, cap, "mmap %zu bytes: %s", run.ring_map, strerror(errno));
			return -1;
		}
		return 0;
	}
	snprintf(run.bus, sizeof run.bus, "mixbench-%d", (int)getpid());
	/* The ring (5 MiB of cells or 4.2 MB of slots) and the bus's own
	 * records, with room to spare. */
	if (make_bus(run.bus, 16u << 20, &bus, err, cap))
		return -1;
	queue_opts(&o, c, 1);
	if ((rc = shmbus_queue_open(bus, "q", &o, &q)) == 0) {
		rc = shmbus_queue_join(q, GROUP, SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE);
		if (rc)
			snprintf(err, cap, "shmbus_queue_join: %s (%s)", shmbus_strerror(rc), shmbus_last_error());
		shmbus_queue_close(q);
	} else {
		snprintf(err, cap, "shmbus_queue_open: %s (%s)", shmbus_strerror(rc), shmbus_last_error());
	}
	shmbus_bus_close(bus);
	if (rc) {
		shmbus_bus_unlink(run.bus);
		bus_path[0] = 0;
		return -1;
	}
	return 0;
}

static void teardown(enum contender c)
{
	if (c == C_RAW) {
		if (run.ring)
			munmap(run.ring, run.ring_map);
		run.ring = NULL;
		return;
	}
	shmbus_bus_unlink(run.bus);
	bus_path[0] = 0;
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

static int run_once(enum contender c, unsigned timeout_s, struct run_res *res)
{
	int status[2] = { 0, 0 }, failed = -1, alive = 0;

	memset(ctl, 0, sizeof *ctl);
	memset(res, 0, sizeof *res);
	run.c = c;
	if (setup(c, res->err, sizeof res->err))
		return -1;
	timed_out = 0;
	fflush(NULL);
	for (int role = 0; role < 2; role++) {
		pid_t p = fork();
		if (p == 0)
			child(role);
		if (p < 0) {
			snprintf(res->err, sizeof res->err, "fork: %s", strerror(errno));
			kill_kids();
			break;
		}
		kids[role] = p;
		alive++;
	}
	/* The watchdog: a side stuck (or a peer that never comes) is killed. */
	alarm(timeout_s);
	while (alive) {
		int st;
		pid_t p = waitpid(-1, &st, 0);
		if (p < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (p != kids[i])
				continue;
			kids[i] = 0;
			status[i] = st;
			alive--;
			if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0) && failed < 0) {
				failed = i;
				kill_kids();
			}
		}
	}
	alarm(0);
	teardown(c);
	if (res->err[0])
		return -1;
	if (timed_out || failed >= 0) {
		char how[96] = "";
		if (timed_out)
			append(res->err, sizeof res->err, "timed out after %u s, both killed; ", timeout_s);
		if (ctl->err[0][0])
			append(res->err, sizeof res->err, "producer: %s; ", ctl->err[0]);
		if (ctl->err[1][0])
			append(res->err, sizeof res->err, "consumer: %s; ", ctl->err[1]);
		if (failed >= 0 && !timed_out) {
			describe(status[failed], how, sizeof how);
			append(res->err, sizeof res->err, "the %s ended first (%s)", failed ? "consumer" : "producer",
			       how);
		}
		size_t k = strlen(res->err);
		if (k >= 2 && !strcmp(res->err + k - 2, "; "))
			res->err[k - 2] = 0;
		return -1;
	}
	if (ctl->total != ctl->sent) {
		snprintf(res->err, sizeof res->err, "the consumer got %llu messages, the producer sent %llu",
			 (unsigned long long)ctl->total, (unsigned long long)ctl->sent);
		return -1;
	}
	res->sent = ctl->sent;
	if (ctl->w_seq >= ctl->sent) {
		/* No message after the warm-up (one put took the whole run: a
		 * loaded machine): count from the barrier rather than fail. */
		ctl->w_seq = 0;
		ctl->t_first = ctl->t_start;
	}
	res->counted = ctl->sent - ctl->w_seq;
	res->bytes = stream_bytes(ctl->sent) - stream_bytes(ctl->w_seq);
	res->secs = (double)(ctl->t_end - ctl->t_first) / 1e9;
	if (res->secs <= 0) {
		snprintf(res->err, sizeof res->err, "an empty window (%llu sent)", (unsigned long long)ctl->sent);
		return -1;
	}
	res->msgs_per_s = (double)res->counted / res->secs;
	res->mb_per_s = (double)res->bytes / 1e6 / res->secs;
	return 0;
}

/* ---- memory: messages a ring holds ------------------------------------ */

struct mem_res {
	int ok;
	uint64_t slots, cell_bytes;
	uint64_t ring_doc;      /* ring bytes from the documented layout */
	uint64_t ring_area;     /* area_size(2 x slots) - area_size(slots) */
	uint64_t ring;          /* the one used: doc for cells, area for slots */
	uint64_t held, payload; /* messages in flight, their payload bytes */
	uint64_t depth;         /* shmbus_queue_info: seqs (cells) in flight */
	double per_msg;         /* ring bytes per message held */
	uint64_t slot_stride;   /* a 64 KiB slot's bytes (measured) */
	char err[600];
};

static int queue_area(shmbus_bus_t *bus, const char *name, uint32_t slots, uint64_t cell_bytes,
		      uint64_t *area, char *err, size_t cap)
{
	shmbus_queue_opts_t o;
	shmbus_channel_info_t ci;
	shmbus_queue_t *q;
	int rc;

	queue_opts(&o, cell_bytes ? C_CELLS : C_SLOTS, 1);
	o.slots = slots;
	if ((rc = shmbus_queue_open(bus, name, &o, &q))) {
		snprintf(err, cap, "shmbus_queue_open %s: %s (%s)", name, shmbus_strerror(rc), shmbus_last_error());
		return -1;
	}
	shmbus_queue_close(q);
	memset(&ci, 0, sizeof ci);
	ci.size_of = sizeof ci;
	if ((rc = shmbus_channel_info(bus, name, &ci))) {
		snprintf(err, cap, "shmbus_channel_info %s: %s (%s)", name, shmbus_strerror(rc), shmbus_last_error());
		return -1;
	}
	if (ci.capacity != slots || ci.cell_bytes != cell_bytes) {
		snprintf(err, cap, "queue %s: capacity %llu, cell_bytes %llu; asked %u, %llu", name,
			 (unsigned long long)ci.capacity, (unsigned long long)ci.cell_bytes, slots,
			 (unsigned long long)cell_bytes);
		return -1;
	}
	*area = ci.area_size;
	return 0;
}

static int fill(shmbus_bus_t *bus, int cells, struct mem_res *m)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *prod = NULL, *cons = NULL;
	shmbus_queue_info_t qi;
	unsigned char *src = pattern();
	int rc = 0;

	if (!src) {
		snprintf(m->err, sizeof m->err, "out of memory");
		return -1;
	}
	queue_opts(&o, cells ? C_CELLS : C_SLOTS, 1);
	/* The consumer's handle joins and never reads; its member is alive,
	 * so the group gates the producer. */
	if ((rc = shmbus_queue_open(bus, "q", &o, &cons)) || (rc = shmbus_queue_join(cons, GROUP, 0)) ||
	    (rc = shmbus_queue_open(bus, "q", &o, &prod))) {
		snprintf(m->err, sizeof m->err, "open and join: %s (%s)", shmbus_strerror(rc), shmbus_last_error());
		goto out;
	}
	for (;;) {
		size_t len = msg_len(m->held);
		mark(src, len, m->held);
		rc = shmbus_queue_put(prod, src, len, 0);
		if (rc == SHMBUS_EAGAIN)
			break;
		if (rc) {
			snprintf(m->err, sizeof m->err, "put #%llu: %s (%s)", (unsigned long long)m->held,
				 shmbus_strerror(rc), shmbus_last_error());
			goto out;
		}
		m->payload += len;
		if (++m->held > (uint64_t)CELLS) {
			snprintf(m->err, sizeof m->err, "%llu messages went in and the ring is not full",
				 (unsigned long long)m->held);
			rc = -1;
			goto out;
		}
	}
	memset(&qi, 0, sizeof qi);
	qi.size_of = sizeof qi;
	if ((rc = shmbus_queue_info(prod, &qi, NULL, 0))) {
		snprintf(m->err, sizeof m->err, "shmbus_queue_info: %s", shmbus_strerror(rc));
		goto out;
	}
	m->depth = qi.depth;
	/* Everything put is there to be read, in order, whole. */
	for (uint64_t i = 0; i < m->held; i++) {
		shmbus_msg_t msg;
		if ((rc = shmbus_queue_peek(cons, &msg, 0))) {
			snprintf(m->err, sizeof m->err, "reading back #%llu of %llu: %s", (unsigned long long)i,
				 (unsigned long long)m->held, shmbus_strerror(rc));
			goto out;
		}
		uint64_t h[2], t[2];
		memcpy(h, msg.data, 16);
		memcpy(t, (const unsigned char *)msg.data + msg.len - 16, 16);
		shmbus_queue_release(cons);
		if (msg.len != msg_len(i) || h[0] != i || t[0] != i || h[1] != msg.len || t[1] != msg.len) {
			snprintf(m->err, sizeof m->err, "reading back #%llu: %zu bytes, seq %llu/%llu",
				 (unsigned long long)i, msg.len, (unsigned long long)h[0], (unsigned long long)t[0]);
			rc = -1;
			goto out;
		}
	}
out:
	shmbus_queue_close(prod);
	shmbus_queue_close(cons);
	free(src);
	return rc ? -1 : 0;
}

static int mem_figure(int cells, struct mem_res *m)
{
	char name[SHMBUS_NAME_MAX + 1];
	shmbus_bus_t *bus;
	uint64_t a1 = 0, a2 = 0;
	int rc;

	memset(m, 0, sizeof *m);
	m->slots = cells ? CELLS : SLOTS;
	m->cell_bytes = cells ? CELL : 0;
	m->ring_doc = cells ? (uint64_t)CELLS * (16 + CELL) : (uint64_t)SLOTS * (LINE + LARGE);
	snprintf(name, sizeof name, "mixbench-%d-m", (int)getpid());
	/* Three queues: the one filled, and one of twice the slots for
	 * area_size's difference (15.7 MB of cells at most). */
	if (make_bus(name, 32u << 20, &bus, m->err, sizeof m->err))
		return -1;
	rc = queue_area(bus, "q", (uint32_t)m->slots, m->cell_bytes, &a1, m->err, sizeof m->err);
	if (!rc)
		rc = queue_area(bus, "q2", (uint32_t)m->slots * 2, m->cell_bytes, &a2, m->err, sizeof m->err);
	if (!rc)
		rc = fill(bus, cells, m);
	shmbus_bus_close(bus);
	shmbus_bus_unlink(name);
	bus_path[0] = 0;
	if (rc)
		return -1;
	m->ring_area = a2 - a1;
	m->ring = cells ? m->ring_doc : m->ring_area;
	m->per_msg = (double)m->ring / (double)m->held;
	m->ok = 1;
	return 0;
}

/* ---- the report -------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_RUNS];
	memcpy(s, v, (size_t)n * sizeof *s);
	qsort(s, (size_t)n, sizeof *s, cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static uint64_t pow2_up(uint64_t x)
{
	uint64_t p = 1;
	while (p < x)
		p <<= 1;
	return p;
}

/* Whether NAME is in the comma-separated list (NULL: everything). */
static int selected(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; p && *p;) {
		const char *q = strchr(p, ',');
		size_t k = q ? (size_t)(q - p) : strlen(p);
		if (k == n && !strncmp(p, name, n))
			return 1;
		p = q ? q + 1 : NULL;
	}
	return !list;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mixbench [--quick] [--runs R] [--time SECONDS] [--only NAME,...]\n"
		"                [--json FILE] [--spin] [--cpus A,B]\n"
		"A mixed stream (message i is 64 KiB when i %% 10 == 9, else 64 B; each checked\n"
		"by the consumer) from a producer on CPU A to a consumer on CPU B, through:\n"
		"  cells      shmbus queue of 65536 cells of 64 B, max_msg 64 KiB, put/get\n"
		"  cells-zc   the same, reserve/commit and peek/release\n"
		"  slots      shmbus queue of 64 slots of 64 KiB (4 MiB of payload), put/get\n"
		"  rawring    a bare 4 MiB SPSC byte ring, both sides spinning (the ceiling)\n"
		"and, without timing, how many messages each shmbus ring holds (memory).\n"
		"  --quick        a smoke run of a few seconds (3 runs of 0.1 s)\n"
		"  --runs R       rounds, each running every contender once (default 5, max %d);\n"
		"                 figures are medians over the rounds\n"
		"  --time S       seconds of stream per run, after a warm-up of S/5 (default 0.5)\n"
		"  --only LIST    some of cells,cells-zc,slots,rawring,memory (comma-separated)\n"
		"  --json FILE    every raw figure, as JSON\n"
		"  --spin         shmbus queues busy-spin (default: spin 50 us, then park)\n"
		"  --cpus A,B     the producer's and the consumer's CPU (default 0,1)\n",
		MAX_RUNS);
}

struct opts {
	int quick, runs, spin;
	double secs;
	const char *json, *only;
};

/* Everything measured, for the table and the JSON. */
struct figures {
	int on[NC], ok[NC], mem_on, failed;
	struct run_res res[NC][MAX_RUNS];
	double med_m[NC], med_b[NC], spread[NC];
	struct mem_res mem[2];  /* cells, slots */
};

static int bad_arg(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "mixbench: %s %s: %s\n", opt, val, want);
	return 2;
}

/* -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof *o);
	run.cpu[0] = 0;
	run.cpu[1] = 1;
	for (int a = 1; a < argc; a++) {
		const char *k = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
		if (!strcmp(k, "--quick"))
			o->quick = 1;
		else if (!strcmp(k, "--spin"))
			o->spin = 1;
		else if (!strcmp(k, "--help") || !strcmp(k, "-h")) {
			usage(stdout);
			return 0;
		} else if (v && !strcmp(k, "--json"))
			o->json = argv[++a];
		else if (v && !strcmp(k, "--only"))
			o->only = argv[++a];
		else if (v && !strcmp(k, "--runs")) {
			if ((o->runs = atoi(argv[++a])) < 1 || o->runs > MAX_RUNS)
				return bad_arg(k, v, "1 to 31 rounds");
		} else if (v && !strcmp(k, "--time")) {
			o->secs = atof(argv[++a]);
			if (!(o->secs > 0 && o->secs <= 600))
				return bad_arg(k, v, "more than 0, at most 600 seconds");
		} else if (v && !strcmp(k, "--cpus")) {
			if (sscanf(argv[++a], "%d,%d", &run.cpu[0], &run.cpu[1]) != 2)
				return bad_arg(k, v, "two CPU numbers, A,B");
		} else {
			usage(stderr);
			return 2;
		}
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (run.cpu[0] < 0 || run.cpu[1] < 0 || run.cpu[0] >= ncpu || run.cpu[1] >= ncpu) {
		fprintf(stderr, "mixbench: --cpus %d,%d but %ld CPUs online\n", run.cpu[0], run.cpu[1], ncpu);
		return 2;
	}
	for (const char *p = o->only; p && *p;) {
		const char *q = strchr(p, ',');
		size_t k = q ? (size_t)(q - p) : strlen(p);
		int known = k == 6 && !strncmp(p, "memory", 6);
		for (int c = 0; c < NC; c++)
			known |= k == strlen(names[c]) && !strncmp(p, names[c], k);
		if (!known) {
			fprintf(stderr, "mixbench: --only: unknown name '%.*s' (cells, cells-zc, slots, rawring, memory)\n",
				(int)k, p);
			return 2;
		}
		p = q ? q + 1 : NULL;
	}
	if (!o->runs)
		o->runs = o->quick ? 3 : 5;
	if (!o->secs)
		o->secs = o->quick ? 0.1 : 0.5;
	return -1;
}

/* Rounds of every contender once, then the medians and the table. */
static void contenders(const struct opts *o, struct figures *fg)
{
	/* A run takes 1.2 x secs plus its opening; a stuck one is killed. */
	unsigned timeout_s = (unsigned)(o->secs * 1.2) + 60;
	int any = 0;

	for (int c = 0; c < NC; c++)
		any |= fg->on[c] = fg->ok[c] = selected(o->only, names[c]);
	if (!any)
		return;
	printf("  %d round%s of %.2f s per contender (after %.2f s of warm-up), medians; "
	       "shmbus wait policy %s\n", o->runs, o->runs == 1 ? "" : "s", o->secs, o->secs / 5,
	       o->spin ? "spin" : "spin-then-park");
	fflush(stdout);
	for (int r = 0; r < o->runs; r++)
		for (int c = 0; c < NC; c++) {
			if (!fg->ok[c] || !run_once((enum contender)c, timeout_s, &fg->res[c][r]))
				continue;
			printf("  %-9s FAILED (round %d): %s\n", names[c], r + 1, fg->res[c][r].err);
			fflush(stdout);
			fg->ok[c] = 0;
			fg->failed = 1;
		}
	for (int c = 0; c < NC; c++) {
		double m[MAX_RUNS], b[MAX_RUNS];
		if (!fg->ok[c])
			continue;
		for (int r = 0; r < o->runs; r++) {
			m[r] = fg->res[c][r].msgs_per_s;
			b[r] = fg->res[c][r].mb_per_s;
		}
		fg->med_m[c] = median(m, o->runs);
		fg->med_b[c] = median(b, o->runs);
		qsort(m, (size_t)o->runs, sizeof *m, cmp_double);
		fg->spread[c] = (m[o->runs - 1] - m[0]) / fg->med_m[c];
	}
	for (int c = 0; c < NC && !(any = fg->ok[c]); c++)
		;
	if (!any)
		return;
	printf("  %-9s %-34s %11s %9s %9s %9s %7s\n", "", "ring", "msgs/s", "MB/s", "msgs/raw", "MB/raw",
	       "spread");
	for (int c = 0; c < NC; c++) {
		if (!fg->ok[c])
			continue;
		printf("  %-9s %-34s %10.3fM %9.1f", names[c], rings[c], fg->med_m[c] / 1e6, fg->med_b[c]);
		if (fg->ok[C_RAW])
			printf(" %9.3f %9.3f", fg->med_m[c] / fg->med_m[C_RAW], fg->med_b[c] / fg->med_b[C_RAW]);
		else
			printf(" %9s %9s", "-", "-");
		printf(" %6.0f%%\n", fg->spread[c] * 100);
	}
}

/* The memory figures of both layouts, and their table. */
static void memory(const struct opts *o, struct figures *fg)
{
	static const char *const lay[2] = { "cells", "slots" };
	struct mem_res *mem = fg->mem;

	if (!(fg->mem_on = selected(o->only, "memory")))
		return;
	printf("memory: how many messages of the stream a ring holds, a group joined, nobody reading\n"
	       "  (put with timeout 0 until SHMBUS_EAGAIN)\n");
	for (int k = 0; k < 2; k++)
		if (mem_figure(!k, &mem[k])) {
			printf("  %-6s FAILED: %s\n", lay[k], mem[k].err);
			fg->failed = 1;
		}
	/* A 64 KiB slot's bytes, measured: what a queue of slots holding as
	 * many messages as each layout held would take. */
	uint64_t stride = mem[1].ok ? mem[1].ring_area / SLOTS : 0;
	printf("  %-6s %11s %6s %13s %11s %21s %13s\n", "layout", "ring bytes", "held", "payload held",
	       "ring B/msg", "slots for as many", "their bytes");
	for (int k = 0; k < 2; k++) {
		struct mem_res *m = &mem[k];
		char slots[48];
		if (!m->ok)
			continue;
		m->slot_stride = stride;
		snprintf(slots, sizeof slots, "%llu (pow2 %llu)", (unsigned long long)m->held,
			 (unsigned long long)pow2_up(m->held));
		printf("  %-6s %11llu %6llu %13llu %11.0f %21s %13llu\n", lay[k], (unsigned long long)m->ring,
		       (unsigned long long)m->held, (unsigned long long)m->payload, m->per_msg, slots,
		       (unsigned long long)(m->held * stride));
	}
	if (mem[0].ok)
		printf("  cells' ring bytes: slots x (16 + cell_bytes) (shmbus.h) = %llu; area_size of %llu cells "
		       "less that of %llu = %llu%s\n", (unsigned long long)mem[0].ring_doc,
		       (unsigned long long)mem[0].slots * 2, (unsigned long long)mem[0].slots,
		       (unsigned long long)mem[0].ring_area,
		       mem[0].ring_doc == mem[0].ring_area ? " (they agree)" : " (they DIFFER)");
	if (mem[1].ok)
		printf("  slots' ring bytes: area_size of %llu slots less that of %llu = %llu; docs/queue.md's "
		       "layout, slots x (64 + max_msg) = %llu%s\n", (unsigned long long)mem[1].slots * 2,
		       (unsigned long long)mem[1].slots, (unsigned long long)mem[1].ring_area,
		       (unsigned long long)mem[1].ring_doc,
		       mem[1].ring_doc == mem[1].ring_area ? " (they agree)" : " (they DIFFER)");
}

/* s as a JSON string. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++)
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	fputc('"', f);
}

static void json_contender(FILE *f, const struct opts *o, const struct figures *fg, int c)
{
	fprintf(f, "\n  {\"name\": \"%s\", \"ring\": \"%s\", \"status\": \"%s\"", names[c], rings[c],
		fg->ok[c] ? "ok" : "failed");
	if (!fg->ok[c]) {
		/* The run that failed is the last one with an error. */
		for (int r = o->runs - 1; r >= 0; r--)
			if (fg->res[c][r].err[0]) {
				fprintf(f, ", \"round\": %d, \"error\": ", r + 1);
				json_str(f, fg->res[c][r].err);
				break;
			}
		fprintf(f, "}");
		return;
	}
	fprintf(f, ", \"median_msgs_per_s\": %.1f, \"median_mb_per_s\": %.3f, \"spread\": %.4f", fg->med_m[c],
		fg->med_b[c], fg->spread[c]);
	if (fg->ok[C_RAW])
		fprintf(f, ", \"msgs_over_rawring\": %.4f, \"mb_over_rawring\": %.4f",
			fg->med_m[c] / fg->med_m[C_RAW], fg->med_b[c] / fg->med_b[C_RAW]);
	fprintf(f, ",\n   \"runs\": [");
	for (int r = 0; r < o->runs; r++) {
		const struct run_res *x = &fg->res[c][r];
		fprintf(f, "%s{\"sent\": %llu, \"counted\": %llu, \"bytes\": %llu, \"seconds\": %.6f, "
			   "\"msgs_per_s\": %.1f, \"mb_per_s\": %.3f}", r ? ", " : "", (unsigned long long)x->sent,
			(unsigned long long)x->counted, (unsigned long long)x->bytes, x->secs, x->msgs_per_s,
			x->mb_per_s);
	}
	fprintf(f, "]}");
}

static void json_memory(FILE *f, const struct mem_res *m, const char *layout)
{
	fprintf(f, "\n  {\"layout\": \"%s\", \"status\": \"%s\"", layout, m->ok ? "ok" : "failed");
	if (!m->ok) {
		fprintf(f, ", \"error\": ");
		json_str(f, m->err);
		fprintf(f, "}");
		return;
	}
	fprintf(f, ", \"slots\": %llu, \"cell_bytes\": %llu, \"max_msg\": %u, \"ring_bytes\": %llu, "
		   "\"ring_bytes_documented\": %llu, \"ring_bytes_area_size\": %llu, \"held\": %llu, "
		   "\"held_payload_bytes\": %llu, \"depth_seqs\": %llu, \"ring_bytes_per_msg\": %.2f, "
		   "\"slot_bytes\": %llu, \"slot_ring_slots\": %llu, \"slot_ring_slots_pow2\": %llu, "
		   "\"slot_ring_bytes\": %llu}",
		(unsigned long long)m->slots, (unsigned long long)m->cell_bytes, LARGE, (unsigned long long)m->ring,
		(unsigned long long)m->ring_doc, (unsigned long long)m->ring_area, (unsigned long long)m->held,
		(unsigned long long)m->payload, (unsigned long long)m->depth, m->per_msg,
		(unsigned long long)m->slot_stride, (unsigned long long)m->held,
		(unsigned long long)pow2_up(m->held), (unsigned long long)(m->held * m->slot_stride));
}

static int write_json(const struct opts *o, const struct figures *fg)
{
	FILE *f = fopen(o->json, "w");
	int first = 1;

	if (!f) {
		fprintf(stderr, "mixbench: %s: %s\n", o->json, strerror(errno));
		return -1;
	}
	fprintf(f, "{\"tool\": \"mixbench\", \"quick\": %s, \"runs\": %d, \"time_s\": %.3f, "
		   "\"cpus\": [%d, %d], \"policy\": \"%s\",\n"
		   " \"stream\": {\"small\": %u, \"large\": %u, \"large_every\": %u},\n \"contenders\": [",
		o->quick ? "true" : "false", o->runs, o->secs, run.cpu[0], run.cpu[1],
		o->spin ? "spin" : "spin-park", SMALL, LARGE, PERIOD);
	for (int c = 0; c < NC; c++) {
		if (!fg->on[c])
			continue;
		fprintf(f, "%s", first ? "" : ",");
		json_contender(f, o, fg, c);
		first = 0;
	}
	fprintf(f, "\n ],\n \"memory\": [");
	for (int k = 0; fg->mem_on && k < 2; k++) {
		fprintf(f, "%s", k ? "," : "");
		json_memory(f, &fg->mem[k], k ? "slots" : "cells");
	}
	fprintf(f, "\n ]}\n");
	return fclose(f) ? -1 : 0;
}

int main(int argc, char **argv)
{
	static struct figures fg;
	struct opts o;
	struct sigaction sa;
	int rc = parse_args(argc, argv, &o);

	if (rc >= 0)
		return rc;
	run.budget_ns = (uint64_t)(o.secs * 1e9);
	run.policy = o.spin ? SHMBUS_WAIT_SPIN : SHMBUS_WAIT_SPIN_PARK;
	parent_pid = getpid();
	ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED) {
		perror("mixbench: mmap");
		return 2;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	printf("mixbench: 90%% 64 B + 10%% 64 KiB messages (#i is 64 KiB when i %% 10 == 9), "
	       "CPU %d -> CPU %d\n", run.cpu[0], run.cpu[1]);
	contenders(&o, &fg);
	memory(&o, &fg);
	if (o.json && write_json(&o, &fg))
		return 2;
	if (fg.failed)
		fprintf(stderr, "mixbench: FAILED (see above)\n");
	return fg.failed;
}

/*
 * fanout.c -- one producer, G broadcast consumer groups: what each more
 * group costs the producer, shmbus and iceoryx side by side.
 *
 * For G in 1, 4, 16, 64 (--groups), one producer process sends N messages
 * of 64 bytes (its sequence number at both ends) and G consumer processes
 * each receive every one of them:
 *
 *   shmbus   one queue (4096 slots, max_groups 64, default spin-then-park
 *            wait policy) on a fresh bus; group "g<i>" of one member per
 *            consumer. The groups are created (durable, EARLIEST) before
 *            the producer starts, so nothing is missed; the producer
 *            shmbus_queue_put()s N messages, then shmbus_queue_shut()s;
 *            each member shmbus_queue_get()s until SHMBUS_ECLOSED.
 *   iceoryx  one publisher (C binding, WAIT_FOR_CONSUMER) and G
 *            subscribers (queue of 256, BLOCK_PRODUCER: lossless), each
 *            process its own runtime. A subscriber sleeps in a WaitSet
 *            (attached to its HAS_DATA state) when nothing is queued, as a
 *            shmbus member parks. The length travels in a user header; the
 *            end of the stream is one more message whose sequence is all
 *            ones. We start our own iox-roudi (memory configuration below)
 *            unless IPCBENCH_ROUDI_EXTERNAL=1; without iceoryx (not built
 *            in, or RouDi does not start) the iceoryx rows are skipped
 *            with a note.
 *
 * Every consumer checks that each message is exactly the next sequence
 * number, whole (both ends agree) and 64 bytes long; a lost, repeated,
 * reordered or torn message, a dead child or the watchdog (--timeout)
 * fails the whole program: every child is killed, the bus unlinked, RouDi
 * stopped.
 *
 * Figures of one run:
 *   producer CPU per put   CLOCK_PROCESS_CPUTIME_ID of the producer around
 *                          its put loop, / N. It includes whatever the
 *                          producer does while the ring (or a subscriber
 *                          queue) is full: spinning, parking, waking;
 *   producer wall per put  the same loop by CLOCK_MONOTONIC, / N;
 *   delivered msgs/s       N x G / (last consumer done - start barrier);
 *   CPU ratio              producer CPU per put at G / at the smallest G
 *                          of the same round and system (the goal for
 *                          shmbus: at most 2x at 64 groups).
 * Rounds interleave: round r runs every (system, G) once, so the figures
 * compared come from the same minutes; the table shows the median over
 * rounds and [min..max], --json FILE every raw figure.
 *
 * The producer runs on CPU 0 and the consumers round robin from CPU 1
 * (--no-pin leaves placement to the scheduler); RouDi is not pinned.
 * Nothing is prefaulted: N is large enough that the first pass over the
 * ring or the chunk pool does not count.
 *
 *   fanout [--quick] [--runs R] [--n N] [--groups 1,4,16,64]
 *          [--only shmbus|iceoryx] [--json FILE] [--timeout S] [--no-pin]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmbus.h"

#ifdef BENCH_HAVE_ICEORYX
#include <iceoryx_binding_c/chunk.h>
#include <iceoryx_binding_c/log.h>
#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/subscriber.h>
#include <iceoryx_binding_c/wait_set.h>
#endif

#define MAXG 64
#define MAXRUNS 15
#define MSG 64
#define SLOTS 4096
#define END_SEQ UINT64_MAX      /* iceoryx: the end-of-stream message */
#define TIMEOUT_NS (30ll * 1000000000ll)

enum { SYS_SHMBUS, SYS_ICEORYX, NSYS };
static const char *const sys_name[NSYS] = { "shmbus", "iceoryx" };

/* Shared by the parent and the children of one run (MAP_SHARED). */
/* Every atomic here is seq_cst (the C default): each is a counter or flag
 * set once per run by one side and read by the other, and seq_cst makes
 * what was written before it visible with it. Pairings are named at each
 * use. */
struct ctl {
	_Atomic uint32_t ready;         /* children at the start barrier */
	_Atomic uint32_t go;            /* futex word: 1 = start */
	_Atomic uint32_t done;          /* consumers that saw the end */
	_Atomic uint32_t failed;
	_Atomic uint64_t t_end;         /* latest end of stream seen */
	uint64_t t_start;               /* written by the parent before go */
	uint64_t cpu_ns, wall_ns;       /* the producer's put loop */
	_Atomic uint64_t got[MAXG];     /* messages per consumer */
	char err[512];
};

struct fig {
	int ok;
	uint64_t cpu_ns, wall_ns, elapsed_ns;
};

static struct ctl *ctl;
static int opt_pin = 1;
static uint64_t opt_n;

/* The children of the run in progress, for the watchdog and ^C. */
static volatile pid_t kids[MAXG + 1];
static volatile sig_atomic_t nkids, timed_out, interrupted;
static char bus_name[64];

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static void sleep_us(long us)
{
	nanosleep(&(struct timespec){ .tv_sec = us / 1000000, .tv_nsec = us % 1000000 * 1000 }, NULL);
}

static void pin(int k)
{
	if (!opt_pin)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(k % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
	sched_setaffinity(0, sizeof set, &set);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	uint32_t zero = 0;
	/* Only the first failure writes its text: the CAS from 0 elects one
	 * writer; the parent reads err after every child has exited (waitpid
	 * orders it), never while it may be written. */
	if (atomic_compare_exchange_strong(&ctl->failed, &zero, 1)) {
		va_start(ap, fmt);
		vsnprintf(ctl->err, sizeof ctl->err, fmt, ap);
		va_end(ap);
	}
	_exit(1);
}

static void sbfail(const char *what, int rc) __attribute__((noreturn));
static void sbfail(const char *what, int rc)
{
	fail("%s: %s (%s)", what, shmbus_strerror(rc), shmbus_last_error());
}

/* Children: count in, then sleep on the go word until the parent, which
 * saw everyone in, sets it. */
static void start_barrier(void)
{
	/* ready counts us in (read by the parent's loop, which then stores
	 * t_start and go); the load of go pairs with that store, so t_start
	 * is set once go is seen. */
	atomic_fetch_add(&ctl->ready, 1);
	while (!atomic_load(&ctl->go)) {
		struct timespec ts = { .tv_sec = 1 };
		syscall(SYS_futex, &ctl->go, FUTEX_WAIT, 0, &ts, NULL, 0);
		if (atomic_load(&ctl->failed))
			_exit(1);
	}
}

static void consumer_done(int i, uint64_t got)
{
	/* t_end only rises (a CAS max); got[i] is stored before done counts
	 * this consumer in, and the parent reads them after its load of done
	 * reaches the number of consumers (pairs with this fetch_add). */
	uint64_t t = now_ns(), prev = atomic_load(&ctl->t_end);
	while (t > prev && !atomic_compare_exchange_weak(&ctl->t_end, &prev, t))
		;
	atomic_store(&ctl->got[i], got);
	atomic_fetch_add(&ctl->done, 1);
}

static void fill(unsigned char *m, uint64_t seq)
{
	memcpy(m, &seq, 8);
	memset(m + 8, (int)(seq & 0xff), MSG - 16);
	memcpy(m + MSG - 8, &seq, 8);
}

/* The sequence number of a message, after checking it is whole. */
static uint64_t check(const char *sys, int i, const unsigned char *m, size_t len, uint64_t want)
{
	uint64_t head, tail;
	if (len != MSG)
		fail("%s consumer %d: message #%llu is %zu bytes, not %d", sys, i, (unsigned long long)want, len,
		     MSG);
	memcpy(&head, m, 8);
	memcpy(&tail, m + MSG - 8, 8);
	if (head != tail)
		fail("%s consumer %d: torn message where #%llu was due: head %llu, tail %llu", sys, i,
		     (unsigned long long)want, (unsigned long long)head, (unsigned long long)tail);
	if (head != want && head != END_SEQ)
		fail("%s consumer %d: got #%llu, expected #%llu (lost, repeated or reordered)", sys, i,
		     (unsigned long long)head, (unsigned long long)want);
	return head;
}

/* ---------------------------------------------------------------------- */
/* shmbus                                                                 */
/* ---------------------------------------------------------------------- */

static shmbus_queue_t *sb_open(shmbus_bus_t **bus)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q;
	int rc;

	if ((rc = shmbus_bus_open(bus_name, NULL, bus)))
		sbfail("shmbus_bus_open", rc);
	shmbus_queue_opts_init(&o);
	o.slots = SLOTS;
	o.max_msg = MSG;
	o.max_groups = MAXG;
	o.max_members = 2 * MAXG;
	o.max_producers = 4;
	o.wait_policy = SHMBUS_WAIT_SPIN_PARK;
	if ((rc = shmbus_queue_open(*bus, "q", &o, &q)))
		sbfail("shmbus_queue_open", rc);
	return q;
}

static void sb_producer(int groups)
{
	shmbus_bus_t *bus;
	shmbus_queue_t *q = sb_open(&bus);
	unsigned char m[MSG];
	int rc;

	if ((rc = shmbus_queue_wait_groups(q, (uint32_t)groups, TIMEOUT_NS)))
		sbfail("shmbus_queue_wait_groups", rc);
	start_barrier();
	uint64_t c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), w0 = now_ns();
	for (uint64_t s = 0; s < opt_n; s++) {
		fill(m, s);
		if ((rc = shmbus_queue_put(q, m, MSG, TIMEOUT_NS)))
			sbfail("shmbus_queue_put", rc);
	}
	ctl->wall_ns = now_ns() - w0;
	ctl->cpu_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
	if ((rc = shmbus_queue_shut(q)))
		sbfail("shmbus_queue_shut", rc);
	shmbus_queue_close(q);
	shmbus_bus_close(bus);
	_exit(0);
}

static void sb_member(int i)
{
	shmbus_bus_t *bus;
	shmbus_queue_t *q = sb_open(&bus);
	unsigned char m[MSG];
	char gname[16];
	uint64_t next = 0;
	size_t len;
	int rc;

	snprintf(gname, sizeof gname, "g%d", i);
	if ((rc = shmbus_queue_join(q, gname, SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE)))
		sbfail("shmbus_queue_join", rc);
	start_barrier();
	while (!(rc = shmbus_queue_get(q, m, sizeof m, &len, NULL, TIMEOUT_NS))) {
		if (check("shmbus", i, m, len, next) == END_SEQ)
			fail("shmbus consumer %d: a message of all-ones sequence", i);
		next++;
	}
	if (rc != SHMBUS_ECLOSED)
		sbfail("shmbus_queue_get", rc);
	consumer_done(i, next);
	shmbus_queue_close(q);
	shmbus_bus_close(bus);
	_exit(0);
}

/* A fresh bus with the queue and its G durable groups, made in a child
 * (the parent keeps no bus handle across its forks). */
static int sb_prepare(int groups, char *err, size_t cap)
{
	shmbus_bus_opts_t bo;
	shmbus_bus_t *bus;
	int rc, st;

	shmbus_bus_unlink(bus_name);
	shmbus_bus_opts_init(&bo);
	bo.size = ((uint64_t)SLOTS * (MSG + 128) + (4u << 20) + 0xfffff) & ~0xfffffull;
	bo.max_peers = 2 * MAXG + 8;    /* G members, the producer, the group maker */
	if ((rc = shmbus_bus_create(bus_name, &bo, &bus))) {
		snprintf(err, cap, "shmbus_bus_create: %s (%s)", shmbus_strerror(rc), shmbus_last_error());
		return -1;
	}
	shmbus_bus_close(bus);
	fflush(NULL);
	pid_t p = fork();
	if (p == 0) {
		/* A handle belongs to one group: one handle per group. */
		for (int g = 0; g < groups; g++) {
			char gname[16];
			shmbus_queue_t *q = sb_open(&bus);
			snprintf(gname, sizeof gname, "g%d", g);
			if ((rc = shmbus_queue_join(q, gname, SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE)))
				sbfail("shmbus_queue_join", rc);
			shmbus_queue_close(q);
			shmbus_bus_close(bus);
		}
		_exit(0);
	}
	kids[0] = p;
	nkids = p > 0;
	while (p > 0 && (rc = waitpid(p, &st, 0)) < 0 && errno == EINTR)
		;
	nkids = 0;
	if (p < 0 || rc != p || !WIFEXITED(st) || WEXITSTATUS(st)) {
		snprintf(err, cap, "creating the groups: %s",
			 ctl->err[0] ? ctl->err : timed_out ? "watchdog" : "the child died");
		shmbus_bus_unlink(bus_name);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* iceoryx                                                                */
/* ---------------------------------------------------------------------- */

#ifdef BENCH_HAVE_ICEORYX
/* One chunk is shared by every subscriber queue it is in, so the chunks
 * alive are at most one queue's worth (256) plus those loaned and held;
 * the pool has that for 64 separate queues all the same. */
static const char roudi_config[] =
	"[general]\nversion = 1\n\n[[segment]]\n\n"
	"[[segment.mempool]]\nsize = 256\ncount = 16640\n";
#define IOX_QUEUE 256
#endif

static pid_t roudi_pid = -1;
static char cfg_path[64], log_path[64], iox_note[300];
static int iox_ok;
static char iox_instance[32];   /* the service instance of this run */

static void roudi_stop(void)
{
	if (roudi_pid > 0) {
		kill(roudi_pid, SIGTERM);
		for (int i = 0; i < 300 && roudi_pid > 0; i++) {
			if (waitpid(roudi_pid, NULL, WNOHANG) == roudi_pid)
				roudi_pid = -1;
			else
				sleep_us(10000);
		}
		if (roudi_pid > 0) {
			kill(roudi_pid, SIGKILL);
			waitpid(roudi_pid, NULL, 0);
			roudi_pid = -1;
		}
	}
	if (cfg_path[0])
		unlink(cfg_path);
	if (log_path[0])
		unlink(log_path);
	cfg_path[0] = log_path[0] = 0;
}

#ifdef BENCH_HAVE_ICEORYX
static int log_says_ready(void)
{
	char buf[4096];
	int fd = open(log_path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return strstr(buf, "RouDi is ready for clients") != NULL;
}

/* Starts our iox-roudi; 0 when it is ready, else a note. */
static int roudi_start(void)
{
	const char *ext = getenv("IPCBENCH_ROUDI_EXTERNAL");
	if (ext && !strcmp(ext, "1"))
		return 0;
	snprintf(cfg_path, sizeof cfg_path, "/tmp/fanout-%d-roudi.toml", (int)getpid());
	snprintf(log_path, sizeof log_path, "/tmp/fanout-%d-roudi.log", (int)getpid());
	FILE *f = fopen(cfg_path, "w");
	if (!f || fputs(roudi_config, f) < 0 || fclose(f)) {
		snprintf(iox_note, sizeof iox_note, "cannot write %s: %s", cfg_path, strerror(errno));
		return -1;
	}
	fflush(NULL);
	roudi_pid = fork();
	if (roudi_pid < 0) {
		snprintf(iox_note, sizeof iox_note, "fork: %s", strerror(errno));
		return -1;
	}
	if (roudi_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		const char *bin = getenv("IPCBENCH_ROUDI");
		if (!bin)
			bin = "iox-roudi";
		/* -m off: no keep-alive monitoring, which on a loaded machine
		 * may declare a slow process dead and drop its ports. */
		execlp(bin, bin, "-c", cfg_path, "-m", "off", "-l", "warning", (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		int st;
		if (log_says_ready())
			return 0;
		if (waitpid(roudi_pid, &st, WNOHANG) == roudi_pid) {
			roudi_pid = -1;
			snprintf(iox_note, sizeof iox_note,
				 "iox-roudi exited (status %d) before it was ready; is another RouDi running, "
				 "or is it not installed? see %s",
				 WIFEXITED(st) ? WEXITSTATUS(st) : -1, log_path);
			log_path[0] = 0; /* keep the log for the user */
			roudi_stop();
			return -1;
		}
		sleep_us(10000);
	}
	roudi_stop();
	snprintf(iox_note, sizeof iox_note, "iox-roudi did not become ready within 10 s");
	return -1;
}

static void ix_runtime(void)
{
	char name[64];
	snprintf(name, sizeof name, "fanout_%d", (int)getpid());
	iox_set_loglevel(Iceoryx_LogLevel_Error);
	iox_runtime_init(name);
}

static uint64_t *len_header(void *payload)
{
	return iox_chunk_header_to_user_header(iox_chunk_header_from_user_payload(payload));
}

static const uint64_t *len_header_const(const void *payload)
{
	return iox_chunk_header_to_user_header_const(iox_chunk_header_from_user_payload_const(payload));
}

static void ix_publish(iox_pub_t pub, uint64_t seq)
{
	void *p;
	enum iox_AllocationResult r;
	/* The pool is empty only while subscribers still hold chunks. */
	while ((r = iox_pub_loan_aligned_chunk_with_user_header(pub, &p, MSG,
								  IOX_C_CHUNK_DEFAULT_USER_PAYLOAD_ALIGNMENT,
								  sizeof(uint64_t), _Alignof(uint64_t))) ==
	       AllocationResult_RUNNING_OUT_OF_CHUNKS)
		sched_yield();
	if (r != AllocationResult_SUCCESS)
		fail("iox_pub_loan_chunk: result %d", (int)r);
	fill(p, seq);
	*len_header(p) = MSG;
	iox_pub_publish_chunk(pub, p);
}

static void ix_producer(int groups)
{
	iox_pub_storage_t storage;
	iox_pub_options_t po;

	ix_runtime();
	iox_pub_options_init(&po);
	po.historyCapacity = 0;
	po.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
	iox_pub_t pub = iox_pub_init(&storage, "fanout", iox_instance, "msg", &po);
	if (!pub)
		fail("iox_pub_init failed");
	/* The subscribers enter the barrier once subscribed: past it, every
	 * message reaches all of them. */
	start_barrier();
	uint64_t c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), w0 = now_ns();
	for (uint64_t s = 0; s < opt_n; s++)
		ix_publish(pub, s);
	ctl->wall_ns = now_ns() - w0;
	ctl->cpu_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
	ix_publish(pub, END_SEQ);
	/* Stop offering only when every subscriber has drained its queue. */
	while (atomic_load(&ctl->done) < (uint32_t)groups) {
		if (atomic_load(&ctl->failed))
			_exit(1);
		sleep_us(1000);
	}
	iox_pub_deinit(pub);
	iox_runtime_shutdown();
	_exit(0);
}

static void ix_member(int i)
{
	iox_sub_storage_t storage;
	iox_ws_storage_t ws_storage;
	iox_sub_options_t so;
	const void *p;
	uint64_t next = 0;
	int idle = 0;

	ix_runtime();
	iox_sub_options_init(&so);
	so.queueCapacity = IOX_QUEUE;
	so.historyRequest = 0;
	so.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
	iox_sub_t sub = iox_sub_init(&storage, "fanout", iox_instance, "msg", &so);
	if (!sub)
		fail("iceoryx consumer %d: iox_sub_init failed", i);
	iox_ws_t ws = iox_ws_init(&ws_storage);
	enum iox_WaitSetResult wr = iox_ws_attach_subscriber_state(ws, sub, SubscriberState_HAS_DATA, 0, NULL);
	if (wr != WaitSetResult_SUCCESS)
		fail("iceoryx consumer %d: iox_ws_attach_subscriber_state: result %d", i, (int)wr);
	/* Discovery runs in RouDi's loop; poll gently. */
	for (int k = 0; iox_sub_get_subscription_state(sub) != SubscribeState_SUBSCRIBED; k++) {
		if (k == 30000 || atomic_load(&ctl->failed))
			fail("iceoryx consumer %d: not subscribed after 30 s", i);
		sleep_us(1000);
	}
	start_barrier();
	for (;;) {
		enum iox_ChunkReceiveResult r = iox_sub_take_chunk(sub, &p);
		if (r == ChunkReceiveResult_NO_CHUNK_AVAILABLE) {
			iox_notification_info_t info[1];
			uint64_t missed;
			if (iox_ws_timed_wait(ws, (struct timespec){ .tv_sec = 1 }, info, 1, &missed))
				idle = 0;
			else if (atomic_load(&ctl->failed))
				_exit(1);
			else if (++idle == 30)
				fail("iceoryx consumer %d: nothing for 30 s after #%llu", i,
				     (unsigned long long)next);
			continue;
		}
		if (r != ChunkReceiveResult_SUCCESS)
			fail("iceoryx consumer %d: iox_sub_take_chunk: result %d", i, (int)r);
		uint64_t s = check("iceoryx", i, p, (size_t)*len_header_const(p), next);
		iox_sub_release_chunk(sub, p);
		if (s == END_SEQ)
			break;
		next++;
	}
	if (next != opt_n)
		fail("iceoryx consumer %d: end of stream after %llu messages, not %llu", i,
		     (unsigned long long)next, (unsigned long long)opt_n);
	consumer_done(i, next);
	iox_ws_deinit(ws);
	iox_sub_deinit(sub);
	iox_runtime_shutdown();
	_exit(0);
}
#endif

/* A killed iceoryx child leaves its runtime's socket and lock file in
 * /tmp (named after the runtime, see ix_runtime). */
static void ix_remove_runtime_files(pid_t p)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/fanout_%d", (int)p);
	unlink(path);
	snprintf(path, sizeof path, "/tmp/fanout_%d.lock", (int)p);
	unlink(path);
}

/* ---------------------------------------------------------------------- */
/* One run                                                                */
/* ---------------------------------------------------------------------- */

static void kill_kids(void)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
}

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
	kill_kids();
}

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
	kill_kids();
}

static pid_t spawn(int sys, int who, int groups)
{
	fflush(NULL);
	pid_t p = fork();
	if (p != 0)
		return p;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(1);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
	pin(who < 0 ? 0 : 1 + who);
	if (sys == SYS_SHMBUS) {
		if (who < 0)
			sb_producer(groups);
		sb_member(who);
	}
#ifdef BENCH_HAVE_ICEORYX
	if (who < 0)
		ix_producer(groups);
	ix_member(who);
#endif
	_exit(1);
}

/* What went wrong in a failed run, unless already said (a child killed). */
static void run_error(int groups, unsigned timeout_s, char *err, size_t cap)
{
	if (interrupted)
		snprintf(err, cap, "interrupted");
	else if (timed_out)
		snprintf(err, cap, "no end after %u s (watchdog; --timeout): %u of %d consumers done%s%s", timeout_s,
			 atomic_load(&ctl->done), groups, ctl->err[0] ? "; first error: " : "", ctl->err);
	else if (ctl->err[0] && !err[0])
		snprintf(err, cap, "%s", ctl->err);
	else if (!err[0])
		snprintf(err, cap, "a child died");
}

/* One (system, G) run: fork, start, wait, check. 0 or -1 with err set. */
static int run_once(int sys, int groups, int idx, unsigned timeout_s, struct fig *f, char *err, size_t cap)
{
	int total = groups + 1, bad = 0, left;
	pid_t pids[MAXG + 1] = { 0 };
	uint64_t t_go = 0;

	memset(ctl, 0, sizeof *ctl);
	memset(f, 0, sizeof *f);
	nkids = 0;
	timed_out = 0;
	alarm(timeout_s);
	if (sys == SYS_SHMBUS && sb_prepare(groups, err, cap)) {
		alarm(0);
		return -1;
	}
	snprintf(iox_instance, sizeof iox_instance, "run%d", idx);
	/* Consumers first: the producer finds them waiting. */
	for (int i = 0; i <= groups; i++) {
		pid_t p = spawn(sys, i < groups ? i : -1, groups);
		kids[i] = pids[i] = p;
		nkids = i + 1;
		if (p < 0) {
			snprintf(err, cap, "fork: %s", strerror(errno));
			bad = 1;
			kill_kids();
			break;
		}
	}
	left = nkids;
	while (left > 0) {
		int st;
		pid_t p;
		int stopping = bad || timed_out || interrupted;
		if (!t_go && !stopping && atomic_load(&ctl->ready) == (uint32_t)total) {
			ctl->t_start = now_ns();
			t_go = ctl->t_start;
			/* publishes t_start with go; pairs with the children's
			 * load of go in start_barrier() */
			atomic_store(&ctl->go, 1);
			syscall(SYS_futex, &ctl->go, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
		}
		/* Before the start, poll the barrier; after it, sleep in
		 * waitpid until a child ends or the watchdog fires. */
		p = waitpid(-1, &st, t_go || stopping ? 0 : WNOHANG);
		if (p == 0) {
			sleep_us(1000);
			continue;
		}
		if (p < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p == roudi_pid) {
			roudi_pid = -1;
			snprintf(err, cap, "iox-roudi died");
			if (!bad++)
				kill_kids();
			continue;
		}
		int mine = 0;
		for (int i = 0; i < nkids; i++)
			if (kids[i] == p) {
				kids[i] = 0;
				mine = 1;
			}
		if (!mine)
			continue;
		left--;
		if ((!WIFEXITED(st) || WEXITSTATUS(st)) && !bad++) {
			atomic_store(&ctl->failed, 1);
			kill_kids();
			if (WIFSIGNALED(st))
				snprintf(err, cap, "%s %s (pid %d) killed by signal %d", sys_name[sys],
					 p == pids[groups] ? "producer" : "a consumer", (int)p, WTERMSIG(st));
		}
	}
	alarm(0);
	if (sys == SYS_SHMBUS)
		shmbus_bus_unlink(bus_name);
	if (timed_out || interrupted || bad) {
		if (sys == SYS_ICEORYX)
			for (int i = 0; i < total; i++)
				ix_remove_runtime_files(pids[i]);
		run_error(groups, timeout_s, err, cap);
		return -1;
	}
	for (int i = 0; i < groups; i++)
		if (ctl->got[i] != opt_n) {
			snprintf(err, cap, "%s consumer %d got %llu messages, expected %llu", sys_name[sys], i,
				 (unsigned long long)ctl->got[i], (unsigned long long)opt_n);
			return -1;
		}
	f->ok = 1;
	f->cpu_ns = ctl->cpu_ns;
	f->wall_ns = ctl->wall_ns;
	f->elapsed_ns = ctl->t_end - ctl->t_start;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Figures                                                                */
/* ---------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct stat3 {
	double med, min, max;
	int n;
};

static struct stat3 stat3(const double *v, int n)
{
	double s[MAXRUNS];
	struct stat3 r = { 0, 0, 0, n };
	if (!n)
		return r;
	memcpy(s, v, (size_t)n * sizeof *v);
	qsort(s, (size_t)n, sizeof *s, cmp_double);
	r.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	r.min = s[0];
	r.max = s[n - 1];
	return r;
}

enum { F_CPU, F_WALL, F_RATE, F_RATIO, NF };
static const char *const fig_name[NF] = { "producer_cpu_ns_per_put", "producer_wall_ns_per_put",
					  "delivered_msgs_per_s", "cpu_ratio" };

/* Figure k of a run; ratio against run base (the smallest G). */
static double figure(const struct fig *f, const struct fig *base, int groups, int k)
{
	switch (k) {
	case F_CPU:
		return (double)f->cpu_ns / (double)opt_n;
	case F_WALL:
		return (double)f->wall_ns / (double)opt_n;
	case F_RATE:
		return (double)opt_n * groups * 1e9 / (double)f->elapsed_ns;
	default:
		return (double)f->cpu_ns / (double)base->cpu_ns;
	}
}

/* Median, min and max over the rounds of each figure of (system s, G
 * index j); st[k].n = 0 when no round of it succeeded. */
static void summarise(struct fig (*res)[NSYS][MAXG], int runs, int s, int j, int groups, struct stat3 *st)
{
	double v[NF][MAXRUNS];
	int n[NF] = { 0 };
	for (int r = 0; r < runs; r++)
		for (int k = 0; k < NF; k++)
			if (res[r][s][j].ok && (k != F_RATIO || res[r][s][0].ok))
				v[k][n[k]++] = figure(&res[r][s][j], &res[r][s][0], groups, k);
	for (int k = 0; k < NF; k++)
		st[k] = stat3(v[k], n[k]);
}

static int parse_groups(const char *s, int *g, int cap)
{
	char buf[256], *tok, *save = NULL;
	int n = 0;
	snprintf(buf, sizeof buf, "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int v = atoi(tok);
		if (v < 1 || v > MAXG || n == cap)
			return -1;
		g[n++] = v;
	}
	/* Ascending, so that the first is the ratios' base. */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && g[j - 1] > g[j]; j--) {
			int t = g[j];
			g[j] = g[j - 1];
			g[j - 1] = t;
		}
	return n;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: fanout [--quick] [--runs R] [--n N] [--groups 1,4,16,64]\n"
		"              [--only shmbus|iceoryx] [--json FILE] [--timeout S] [--no-pin]\n"
		"One producer process, G broadcast consumer groups of one member (each a process),\n"
		"64-byte messages, every one checked in order: shmbus queue vs iceoryx pub/sub\n"
		"(subscribers sleep in a WaitSet). Figures per G: the producer's CPU and wall time\n"
		"per put, messages delivered per second (N x G / elapsed), and the producer's CPU\n"
		"per put at G / at the smallest G. Round r runs every (system, G) once; the table\n"
		"gives the median over rounds [min..max].\n"
		"  --quick       N = 20000, G in 1,4, one round: a smoke run of a few seconds\n"
		"  --runs R      rounds (default 3, at most %d)\n"
		"  --n N         messages per run (default 200000)\n"
		"  --groups L    the values of G, at most %d each (default 1,4,16,64)\n"
		"  --only S      only shmbus or only iceoryx\n"
		"  --json FILE   every raw figure and the summary (bench/plot_fanout.py draws it)\n"
		"  --timeout S   watchdog of one run: kill everything after S s (default 600)\n"
		"  --no-pin      leave placement to the scheduler (default: producer on CPU 0,\n"
		"                consumers round robin from CPU 1)\n"
		"iceoryx: starts its own iox-roudi unless IPCBENCH_ROUDI_EXTERNAL=1 (binary from\n"
		"IPCBENCH_ROUDI, default iox-roudi); skipped with a note when unavailable.\n",
		MAXRUNS, MAXG);
}

static void write_json(const char *path, int runs, int quick, const int *gs, int ng, const int *want,
		       struct fig (*res)[NSYS][MAXG], int failed)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		return;
	}
	fprintf(f, "{\"tool\": \"fanout\", \"runs\": %d, \"quick\": %s, \"n\": %llu, \"size\": %d, "
		   "\"slots\": %d, \"iceoryx_queue\": %d, \"cpus\": %ld, \"status\": \"%s\",\n",
		runs, quick ? "true" : "false", (unsigned long long)opt_n, MSG, SLOTS, 256,
		sysconf(_SC_NPROCESSORS_ONLN), failed ? "failed" : "ok");
	fprintf(f, " \"groups\": [");
	for (int j = 0; j < ng; j++)
		fprintf(f, "%s%d", j ? ", " : "", gs[j]);
	fprintf(f, "],\n \"skipped\": {");
	if (want[SYS_ICEORYX] && !iox_ok) {
		fprintf(f, "\"iceoryx\": \"");
		for (const char *c = iox_note; *c; c++) {
			if (*c == '"' || *c == '\\')
				fputc('\\', f);
			fputc((unsigned char)*c < 0x20 ? '?' : *c, f);
		}
		fprintf(f, "\"");
	}
	fprintf(f, "},\n \"raw\": [\n");
	int first = 1;
	for (int r = 0; r < runs; r++)
		for (int s = 0; s < NSYS; s++)
			for (int j = 0; j < ng; j++) {
				const struct fig *x = &res[r][s][j];
				if (!x->ok)
					continue;
				fprintf(f, "%s  {\"round\": %d, \"system\": \"%s\", \"groups\": %d, "
					   "\"producer_cpu_ns\": %llu, \"producer_wall_ns\": %llu, "
					   "\"elapsed_ns\": %llu",
					first ? "" : ",\n", r + 1, sys_name[s], gs[j], (unsigned long long)x->cpu_ns,
					(unsigned long long)x->wall_ns, (unsigned long long)x->elapsed_ns);
				for (int k = 0; k < NF; k++)
					if (k != F_RATIO || res[r][s][0].ok)
						fprintf(f, ", \"%s\": %.4g", fig_name[k],
							figure(x, &res[r][s][0], gs[j], k));
				fprintf(f, "}");
				first = 0;
			}
	fprintf(f, "\n ],\n \"summary\": [\n");
	first = 1;
	for (int s = 0; s < NSYS; s++)
		for (int j = 0; j < ng; j++) {
			struct stat3 st[NF];
			summarise(res, runs, s, j, gs[j], st);
			if (!st[F_CPU].n)
				continue;
			fprintf(f, "%s  {\"system\": \"%s\", \"groups\": %d, \"rounds\": %d", first ? "" : ",\n",
				sys_name[s], gs[j], st[F_CPU].n);
			for (int k = 0; k < NF; k++)
				if (st[k].n)
					fprintf(f, ", \"%s\": {\"median\": %.4g, \"min\": %.4g, \"max\": %.4g}",
						fig_name[k], st[k].med, st[k].min, st[k].max);
			fprintf(f, "}");
			first = 0;
		}
	fprintf(f, "\n ]}\n");
	fclose(f);
}

static void print_table(struct fig (*res)[NSYS][MAXG], int runs, const int *gs, int ng, const int *on)
{
	printf("  median over rounds [min..max]; CPU ratio = producer CPU per put at G / at G = %d\n", gs[0]);
	printf("  %-8s %6s %26s %26s %30s %22s\n", "system", "groups", "producer CPU ns/put",
	       "producer wall ns/put", "delivered msgs/s", "CPU ratio");
	for (int s = 0; s < NSYS; s++)
		for (int j = 0; j < ng; j++) {
			struct stat3 st[NF];
			char col[NF][48];
			if (!on[s])
				continue;
			summarise(res, runs, s, j, gs[j], st);
			for (int k = 0; k < NF; k++) {
				if (!st[k].n)
					snprintf(col[k], sizeof col[k], "-");
				else if (k == F_RATE)
					snprintf(col[k], sizeof col[k], "%.3gM [%.3g..%.3g]", st[k].med / 1e6,
						 st[k].min / 1e6, st[k].max / 1e6);
				else if (k == F_RATIO)
					snprintf(col[k], sizeof col[k], "%.2fx [%.2f..%.2f]", st[k].med, st[k].min,
						 st[k].max);
				else
					snprintf(col[k], sizeof col[k], "%.0f [%.0f..%.0f]", st[k].med, st[k].min,
						 st[k].max);
			}
			printf("  %-8s %6d %26s %26s %30s %22s\n", sys_name[s], gs[j], col[F_CPU], col[F_WALL],
			       col[F_RATE], col[F_RATIO]);
		}
}

int main(int argc, char **argv)
{
	int quick = 0, runs = 0, gs[MAXG], ng = 0, want[NSYS] = { 1, 1 }, failed = 0;
	unsigned timeout_s = 600;
	const char *json = NULL, *groups_arg = NULL;
	uint64_t n = 0;

	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--quick"))
			quick = 1;
		else if (!strcmp(argv[a], "--runs") && a + 1 < argc)
			runs = atoi(argv[++a]);
		else if (!strcmp(argv[a], "--n") && a + 1 < argc)
			n = strtoull(argv[++a], NULL, 10);
		else if (!strcmp(argv[a], "--groups") && a + 1 < argc)
			groups_arg = argv[++a];
		else if (!strcmp(argv[a], "--only") && a + 1 < argc) {
			a++;
			want[SYS_SHMBUS] = !strcmp(argv[a], "shmbus");
			want[SYS_ICEORYX] = !strcmp(argv[a], "iceoryx");
			if (!want[SYS_SHMBUS] && !want[SYS_ICEORYX]) {
				usage(stderr);
				return 2;
			}
		} else if (!strcmp(argv[a], "--json") && a + 1 < argc)
			json = argv[++a];
		else if (!strcmp(argv[a], "--timeout") && a + 1 < argc)
			timeout_s = (unsigned)atoi(argv[++a]);
		else if (!strcmp(argv[a], "--no-pin"))
			opt_pin = 0;
		else if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (runs == 0)
		runs = quick ? 1 : 3;
	opt_n = n ? n : quick ? 20000 : 200000;
	ng = parse_groups(groups_arg ? groups_arg : quick ? "1,4" : "1,4,16,64", gs, MAXG);
	if (runs < 1 || runs > MAXRUNS || ng < 1 || timeout_s < 1 || opt_n >= END_SEQ) {
		usage(stderr);
		return 2;
	}

	ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	static struct fig res[MAXRUNS][NSYS][MAXG];
	if (ctl == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_alarm };
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_interrupt;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	snprintf(bus_name, sizeof bus_name, "fanout-%d", (int)getpid());

	if (want[SYS_ICEORYX]) {
#ifdef BENCH_HAVE_ICEORYX
		iox_ok = roudi_start() == 0;
#else
		snprintf(iox_note, sizeof iox_note, "built without the iceoryx C binding");
#endif
		if (!iox_ok)
			printf("note: iceoryx skipped: %s\n", iox_note);
	}
	int on[NSYS] = { want[SYS_SHMBUS], want[SYS_ICEORYX] && iox_ok };

	printf("fanout: 1 producer -> G broadcast groups of 1 member, %d-byte messages, N = %llu, "
	       "%ld CPUs, %d round%s\n",
	       MSG, (unsigned long long)opt_n, sysconf(_SC_NPROCESSORS_ONLN), runs, runs == 1 ? "" : "s");
	fflush(stdout);
	int idx = 0;
	for (int r = 0; r < runs && !failed && !interrupted; r++)
		for (int j = 0; j < ng && !failed && !interrupted; j++)
			for (int k = 0; k < NSYS && !failed && !interrupted; k++) {
				/* Alternate which system goes first in a round. */
				int s = r % 2 ? NSYS - 1 - k : k;
				char err[700] = "";
				if (!on[s])
					continue;
				if (run_once(s, gs[j], idx++, timeout_s, &res[r][s][j], err, sizeof err)) {
					fprintf(stderr, "fanout: FAILED: %s, G = %d, round %d: %s\n", sys_name[s], gs[j],
						r + 1, err);
					failed = 1;
				}
			}

	print_table(res, runs, gs, ng, on);
	if (json)
		write_json(json, runs, quick, gs, ng, want, res, failed);
	roudi_stop();
	shmbus_bus_unlink(bus_name);
	return interrupted ? 130 : failed;
}

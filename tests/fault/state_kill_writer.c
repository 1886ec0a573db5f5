/*
 * state_kill_writer.c -- promise 3 for state channels: a writer stopped or
 * killed with SIGKILL at any point -- at each of its shared-memory steps,
 * or in the middle of copying a 1 MiB value -- leaves the last complete
 * value readable, and a new writer can take over at once.
 *
 * The points are enumerated, not sampled. A victim process takes the
 * writer role (from the previous victim, dead) and runs a fixed script of
 * four 1 MiB writes, copying and zero-copy in turn (both orders). It stops
 * itself (SIGSTOP) at one point of that script:
 *   - before its Nth step (the kill-point hook, tests/faultinject.h), for
 *     every N from 1 until the script completes;
 *   - half-way through a zero-copy fill: after 1/16, 2/16, ... 15/16 of the
 *     bytes, between write_begin and commit, in each zero-copy write;
 *   - inside shmbus_state_write's own copy: the source has an unmapped
 *     page at 1/16, ... 15/16 of the value, so the copy faults there and
 *     the fault handler stops the process (it records the step it was
 *     in: the copy's), in each copying write.
 * While the victim is stopped this process reads: the value is whole and
 * is exactly the last one the victim completed (its seq and tag are known
 * from the steps the victim passed), i.e. a stalled writer blocks no
 * reader and shows nothing half-written. Then SIGKILL, and the same read
 * again. The next victim's first write is the takeover from the dead one
 * (it must get the role at once and publish the next seq); a last, fresh
 * writer checks that once more after the final kill.
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"
#include "faultinject.h"

#define BYTES (1u << 20)
#define WORDS (BYTES / 8)
#define NWRITES 4
#define NFRAC 16                 /* mid-copy points per write: 1/16 .. 15/16 */
#define MAXSTEP 256

enum { AT_STEP, AT_FILL, AT_COPY };
static const char *const mode_name[] = { "step", "zero-copy fill", "library copy" };

struct shared {
	const char *trace[MAXSTEP];  /* names of the victim's steps, in order */
	long passed;                 /* self-stop: steps passed before it */
	const char *last;            /* self-stop: the latest step's name */
};

static struct shared *sh;
static const char *bus_name;
static uint64_t *src;            /* the victim's value, page-aligned */

static uint64_t word_of(uint64_t tag, uint64_t i)
{
	return tag * 0x9E3779B97F4A7C15ull + i;
}

/* Value i (0-based) of round r's script; the bus's first value is tag 0. */
static uint64_t tag_of(int round, int i)
{
	return ((uint64_t)round << 8) | (uint64_t)(i + 1);
}

static int copying(int order, int i)
{
	return ((i + order) & 1) == 0;
}

static shmbus_state_t *open_chan(shmbus_bus_t *b)
{
	shmbus_state_t *st;

	OK(test_state_1d(b, "v", SHMBUS_UINT64, WORDS, &st));
	return st;
}

static void fill(uint64_t *v, uint64_t tag)
{
	uint64_t i;

	v[0] = tag;
	for (i = 1; i < WORDS; i++)
		v[i] = word_of(tag, i);
}

static void stop_here(void)
{
	sh->passed = sb_fault_steps();
	sh->last = sb_fault_last();
	raise(SIGSTOP);
	_exit(14);                       /* only SIGKILL may end us here */
}

static void on_fault(int sig)
{
	(void)sig;
	stop_here();
}

/*
 * The victim: mode AT_STEP stops before step n; AT_FILL stops in write w
 * (zero-copy) after frac/NFRAC of the bytes; AT_COPY makes write w (copying)
 * fault at frac/NFRAC of the value. Exit 0: the script completed.
 */
static void victim(int round, int order, int mode, long n, int w, int frac)
{
	shmbus_bus_t *b;
	shmbus_state_t *st;
	void *p;
	int i, r;

	if (shmbus_bus_open(bus_name, NULL, &b))
		_exit(10);
	st = open_chan(b);
	sb_fault_trace(sh->trace, MAXSTEP);
	sb_fault_arm(mode == AT_STEP ? n : 0, SIGSTOP);
	for (i = 0; i < NWRITES; i++) {
		fill(src, tag_of(round, i));
		if (copying(order, i)) {
			if (mode == AT_COPY && i == w) {
				struct sigaction sa;

				memset(&sa, 0, sizeof(sa));
				sa.sa_handler = on_fault;
				sigaction(SIGSEGV, &sa, NULL);
				if (mprotect((char *)src + (size_t)frac * BYTES / NFRAC, 4096, PROT_NONE))
					_exit(15);
			}
			r = shmbus_state_write(st, src, BYTES);
		} else {
			r = shmbus_state_write_begin(st, &p);
			if (!r && mode == AT_FILL && i == w) {
				memcpy(p, src, (size_t)frac * BYTES / NFRAC);
				stop_here();
			}
			if (!r) {
				memcpy(p, src, BYTES);
				r = shmbus_state_write_commit(st);
			}
		}
		if (r)
			_exit(r == SHMBUS_EBUSY ? 11 : 12);
	}
	_exit(0);
}

static uint64_t *buf;            /* the survivor's read buffer */
static shmbus_state_t *st;
static uint64_t cur_seq, cur_tag;/* the last complete value */

/* The value read is whole and is exactly (seq, tag). */
static void check_value(uint64_t seq, uint64_t tag, const char *when, const char *point)
{
	uint64_t got, i;

	OK(shmbus_state_read(st, buf, BYTES, &got));
	for (i = 1; i < WORDS; i++)
		CHECK(buf[i] == word_of(buf[0], i), "%s, %s: value at seq %llu is torn at word %llu",
		      point, when, (unsigned long long)got, (unsigned long long)i);
	CHECK(got == seq && buf[0] == tag,
	      "%s, %s: read seq %llu tag %llx, want the last complete value, seq %llu tag %llx",
	      point, when, (unsigned long long)got, (unsigned long long)buf[0],
	      (unsigned long long)seq, (unsigned long long)tag);
}

/* One point: the victim stops there, is checked, killed, checked. Returns
 * 1 when the victim completed its script instead (mode AT_STEP, n past
 * its last step). */
static int run_point(int round, int order, int mode, long n, int w, int frac)
{
	char point[160];
	uint64_t seq, tag;
	long passed, i;
	int status, pubs = 0;
	pid_t pid;

	memset(sh, 0, sizeof(*sh));
	if (mode == AT_STEP)
		snprintf(point, sizeof(point), "order %d, step %ld", order, n);
	else
		snprintf(point, sizeof(point), "order %d, write %d, %s at %d/%d", order, w + 1,
		         mode_name[mode], frac, NFRAC);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0)
		victim(round, order, mode, n, w, frac);
	CHECK(waitpid(pid, &status, WUNTRACED) == pid, "waitpid");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		CHECK(mode == AT_STEP, "%s: the victim completed without stopping", point);
		cur_seq += NWRITES;
		cur_tag = tag_of(round, NWRITES - 1);
		check_value(cur_seq, cur_tag, "after a whole script", point);
		return 1;
	}
	CHECK(!WIFEXITED(status) || WEXITSTATUS(status) != 11,
	      "%s: the victim could not take the writer role over from a dead writer", point);
	CHECK(WIFSTOPPED(status), "%s: the victim did not stop there (status 0x%x)", point, status);
	passed = mode == AT_STEP ? n - 1 : sh->passed;
	CHECK(passed >= 0 && passed < MAXSTEP, "%s: %ld steps passed", point, passed);
	for (i = 0; i < passed; i++)
		pubs += sh->trace[i] && strcmp(sh->trace[i], "state.publish.pub_seq") == 0;
	if (mode == AT_STEP)
		snprintf(point + strlen(point), sizeof(point) - strlen(point), " (%s)",
		         sh->trace[n - 1] ? sh->trace[n - 1] : "?");
	/* A self-stop lands inside write w, after its data step began. */
	if (mode != AT_STEP) {
		const char *want = mode == AT_FILL ? "state.begin.seq" : "state.write.copy";

		CHECK(pubs == w && sh->last && strcmp(sh->last, want) == 0,
		      "%s: stopped after %d writes, in step %s; want %d, in %s", point, pubs,
		      sh->last ? sh->last : "none", w, want);
	}
	seq = cur_seq + (uint64_t)pubs;
	tag = pubs ? tag_of(round, pubs - 1) : cur_tag;
	check_value(seq, tag, "the writer stopped there", point);
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	      "%s: the victim was not killed (status 0x%x)", point, status);
	check_value(seq, tag, "the writer killed there", point);
	cur_seq = seq;
	cur_tag = tag;
	return 0;
}

int main(void)
{
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;
	int round = 0, order, mode, w, frac, status, counts[3] = { 0, 0, 0 };
	long n;
	pid_t pid;

	alarm(600);                      /* a hang fails (and cleans up) */
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	src = mmap(NULL, BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	buf = malloc(BYTES);
	CHECK(sh != MAP_FAILED && src != MAP_FAILED && buf, "memory");
	bus_name = test_bus_name("killw");
	shmbus_bus_opts_init(&o);
	o.size = 32ull << 20;
	OK(shmbus_bus_create(bus_name, &o, &b));
	st = open_chan(b);
	/* The first value: tag 0, seq 1; then the role is free. */
	fill(src, 0);
	OK(shmbus_state_write(st, src, BYTES));
	OK(shmbus_state_release_writer(st));
	cur_seq = 1;
	cur_tag = 0;
	for (order = 0; order < 2; order++) {
		for (n = 1; n < MAXSTEP; n++) {
			if (run_point(++round, order, AT_STEP, n, 0, 0))
				break;
			counts[AT_STEP]++;
		}
		CHECK(n < MAXSTEP && counts[AT_STEP] > NWRITES * 3,
		      "order %d: the script took %ld steps", order, n);
		for (mode = AT_FILL; mode <= AT_COPY; mode++)
			for (w = 0; w < NWRITES; w++) {
				if (copying(order, w) != (mode == AT_COPY))
					continue;
				for (frac = 1; frac < NFRAC; frac++) {
					run_point(++round, order, mode, 0, w, frac);
					counts[mode]++;
				}
			}
	}
	/* A fresh writer takes over right after the last kill. */
	pid = fork();
	if (pid == 0) {
		shmbus_bus_t *b2;
		shmbus_state_t *st2;

		if (shmbus_bus_open(bus_name, NULL, &b2))
			_exit(10);
		st2 = open_chan(b2);
		fill(src, 1ull << 60);
		_exit(shmbus_state_write(st2, src, BYTES) == 0 ? 0 : 11);
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "a new writer took over after the kill (status 0x%x)", status);
	check_value(cur_seq + 1, 1ull << 60, "a fresh writer's value", "takeover");
	printf("  %d kill points explored: %d steps, %d mid-fill, %d mid-copy (1 MiB values);\n"
	       "  stopped and then killed at each, every read whole and exactly the last complete value;"
	       " takeover ok\n", counts[0] + counts[1] + counts[2], counts[0], counts[1], counts[2]);
	shmbus_state_close(st);
	shmbus_bus_close(b);
	free(buf);
	OK(shmbus_bus_unlink(bus_name));
	printf("state_kill_writer: ok\n");
	return 0;
}

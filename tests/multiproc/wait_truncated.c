/*
 * wait_truncated.c -- a call blocked on a bus whose file another process
 * truncates, or whose channel another process deletes, returns the error
 * within 1 s; none reports success on lost pages.
 *
 * For each blocking kind (state wait, queue get, peek and put waiting for
 * space, lock, event, semaphore, turn) a child process opens a `file:` bus
 * the parent made and blocks without a timeout (queue calls: 30 s, as in
 * the report). Once the child is asleep, the parent cuts the file to one
 * page with ftruncate. The child must return SHMBUS_ECORRUPT with a message
 * that says "truncated" within 3 s of the cut (the promise is 1 s; the
 * margin is for a loaded 2-CPU machine). A child still blocked after 10 s
 * is killed and the test fails "hung".
 *
 * The same with the channel deleted (shmbus_channel_delete, as `shmbus rm
 * BUS CHANNEL` does): SHMBUS_ENOENT within 3 s; and with the bus header's
 * magic overwritten: SHMBUS_ECORRUPT within 3 s. And the bus file removed
 * (unlink, as `shmbus rm --force BUS` does): the mapping stays valid memory
 * and peers that have it mapped still talk, so the waiter keeps waiting and
 * gets the value written after the removal. The parent writes it only once
 * the waiter has looked at the file after the removal and gone back to
 * sleep, which it learns from the waiter's steps (recorded by the
 * kill-point hook, tests/faultinject.h), not from a sleep.
 *
 * Finally, a dict read on a truncated bus says "truncated", not what the
 * zero pages look like.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "testutil.h"
#include "faultinject.h"
#include "internal.h"

#define SECOND 1000000000ll
#define TRACE_N 4096

enum kind { K_STATE, K_QGET, K_QPEEK, K_QPUT, K_LOCK, K_EVENT, K_SEM, K_TURN, K_NKINDS };
static const char *kind_name[] = {"state wait", "queue get", "queue peek",
                                  "queue put (full)", "lock", "event wait",
                                  "semaphore wait", "turn acquire"};
static const char *chan_name[] = {"s", "q", "q", "q", "l", "e", "m", "t"};

static char path[256], bus_name[300];
static pid_t child_pid;

/* What the child reports back, in memory shared across fork. */
struct report {
	_Atomic int ready;     /* the child is about to block */
	_Atomic int done;
	int rc;
	uint64_t t_done;
	char msg[512];
	/* With trace_steps: the names of the waiter's shared-memory steps,
	 * in order (the kill-point hook's record, tests/faultinject.h). */
	const char *trace[TRACE_N];
};
static struct report *rep;
static int trace_steps;        /* the next waiter records its steps */

static void cleanup(void)
{
	if (child_pid > 0) {
		kill(child_pid, SIGKILL);
		waitpid(child_pid, NULL, 0);
	}
	unlink(path);
}

static void on_signal(int sig)
{
	(void)sig;
	cleanup();
	_exit(1);
}

/* A fresh bus with the channel for kind k, arranged so that the child's
 * call must block. What the parent holds stays open in *keep. */
struct held {
	shmbus_bus_t *b;
	shmbus_state_t *st;
	shmbus_queue_t *q;
	shmbus_lock_t *l;
	shmbus_event_t *e;
	shmbus_sem_t *s;
	shmbus_turn_t *t;
};

static void make_bus(enum kind k, struct held *h)
{
	shmbus_bus_opts_t bo;
	shmbus_queue_opts_t qo;
	uint32_t party;
	int i;

	unlink(path);
	memset(h, 0, sizeof(*h));
	shmbus_bus_opts_init(&bo);
	bo.size = 1 << 20;
	OK(shmbus_bus_create(bus_name, &bo, &h->b));
	switch (k) {
	case K_STATE:
		OK(test_state_1d(h->b, "s", SHMBUS_FLOAT64, 1, &h->st));
		break;
	case K_QGET: case K_QPEEK: case K_QPUT:
		shmbus_queue_opts_init(&qo);
		qo.slots = 4;
		qo.max_msg = 64;
		OK(shmbus_queue_open(h->b, "q", &qo, &h->q));
		if (k == K_QPUT) {
			/* A group that never takes: the ring fills. */
			OK(shmbus_queue_join(h->q, "slow", 0));
			for (i = 0; i < 4; i++)
				OK(shmbus_queue_put(h->q, "x", 1, 0));
		}
		break;
	case K_LOCK:
		OK(shmbus_lock_open(h->b, "l", NULL, &h->l));
		OK(shmbus_lock_lock(h->l, 0));
		break;
	case K_EVENT:
		OK(shmbus_event_open(h->b, "e", NULL, &h->e));
		break;
	case K_SEM:
		OK(shmbus_sem_open(h->b, "m", NULL, &h->s));
		break;
	case K_TURN:
		OK(shmbus_turn_open(h->b, "t", T_OPTS(shmbus_turn_opts_t, .create = 1, .max_parties = 2), &h->t));
		OK(shmbus_turn_register(h->t, &party));
		CHECK(party == 0, "first party is %u", party);
		OK(shmbus_turn_acquire(h->t, 0));
		break;
	default:
		break;
	}
}

static void close_held(struct held *h)
{
	shmbus_state_close(h->st);
	shmbus_queue_close(h->q);
	shmbus_lock_close(h->l);
	shmbus_event_close(h->e);
	shmbus_sem_close(h->s);
	shmbus_turn_close(h->t);
	shmbus_bus_close(h->b);
}

/* The child: open what the parent made, block, report. */
static void waiter(enum kind k)
{
	shmbus_bus_t *b;
	shmbus_state_opts_t so;
	shmbus_queue_opts_t qo;
	shmbus_state_t *st;
	shmbus_queue_t *q;
	shmbus_lock_t *l;
	shmbus_event_t *e;
	shmbus_sem_t *s;
	shmbus_turn_t *t;
	shmbus_msg_t m;
	uint32_t party;
	uint64_t seq = 0;
	char buf[64];
	size_t len;
	int rc = 0;

	if (trace_steps) {
		sb_fault_trace(rep->trace, TRACE_N);
		sb_fault_arm(0, 0);          /* count and record only */
	}
	OK(shmbus_bus_open(bus_name, NULL, &b));
	switch (k) {
	case K_STATE:
		shmbus_state_opts_init(&so);
		so.create = 0;
		OK(shmbus_state_open(b, "s", &so, &st));
		atomic_store(&rep->ready, 1);
		rc = shmbus_state_wait(st, 0, SHMBUS_FOREVER, &seq);
		break;
	case K_QGET: case K_QPEEK: case K_QPUT:
		shmbus_queue_opts_init(&qo);
		qo.create = 0;
		OK(shmbus_queue_open(b, "q", &qo, &q));
		if (k != K_QPUT)
			OK(shmbus_queue_join(q, "work", 0));
		atomic_store(&rep->ready, 1);
		if (k == K_QGET)
			rc = shmbus_queue_get(q, buf, sizeof(buf), &len, NULL, 30 * SECOND);
		else if (k == K_QPEEK)
			rc = shmbus_queue_peek(q, &m, 30 * SECOND);
		else
			rc = shmbus_queue_put(q, "y", 1, 30 * SECOND);
		break;
	case K_LOCK:
		OK(shmbus_lock_open(b, "l", T_OPTS(shmbus_lock_opts_t, .create = 0), &l));
		atomic_store(&rep->ready, 1);
		rc = shmbus_lock_lock(l, SHMBUS_FOREVER);
		break;
	case K_EVENT:
		OK(shmbus_event_open(b, "e", T_OPTS(shmbus_event_opts_t, .create = 0), &e));
		atomic_store(&rep->ready, 1);
		rc = shmbus_event_wait(e, SHMBUS_FOREVER);
		break;
	case K_SEM:
		OK(shmbus_sem_open(b, "m", T_OPTS(shmbus_sem_opts_t, .create = 0), &s));
		atomic_store(&rep->ready, 1);
		rc = shmbus_sem_wait(s, SHMBUS_FOREVER);
		break;
	case K_TURN:
		OK(shmbus_turn_open(b, "t", T_OPTS(shmbus_turn_opts_t, .create = 0, .max_parties = 2), &t));
		OK(shmbus_turn_register(t, &party));
		atomic_store(&rep->ready, 1);
		rc = shmbus_turn_acquire(t, SHMBUS_FOREVER);
		break;
	default:
		break;
	}
	rep->rc = rc;
	rep->t_done = test_now_ns();
	snprintf(rep->msg, sizeof(rep->msg), "%s", rc ? shmbus_last_error() : "");
	atomic_store(&rep->done, 1);
	_exit(0);
}

/* 1 once process pid sleeps (state S in /proc/PID/stat). */
static int asleep(pid_t pid)
{
	char p[64], line[512], *c;
	FILE *f;
	int r = 0;

	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	f = fopen(p, "r");
	if (!f)
		return 0;
	if (fgets(line, sizeof(line), f) && (c = strrchr(line, ')')) && c[1] == ' ')
		r = c[2] == 'S';
	fclose(f);
	return r;
}

static void start_waiter(enum kind k)
{
	uint64_t t0;

	memset(rep, 0, sizeof(*rep));
	child_pid = fork();
	CHECK(child_pid >= 0, "fork: %s", strerror(errno));
	if (child_pid == 0)
		waiter(k);
	t0 = test_now_ns();
	while (!atomic_load(&rep->ready)) {
		CHECK(test_now_ns() - t0 < 10ull * SECOND, "%s: the waiter never got ready",
		      kind_name[k]);
		usleep(1000);
	}
	/* Let it spin out its budget and park; the outcome must not depend
	 * on whether it already sleeps, so this only makes the case the
	 * report describes (a sleeping waiter) the usual one. */
	t0 = test_now_ns();
	while (!asleep(child_pid) && test_now_ns() - t0 < SECOND)
		usleep(1000);
	usleep(50000);
	CHECK(!atomic_load(&rep->done), "%s: the call returned %d before anything happened: %s",
	      kind_name[k], rep->rc, rep->msg);
}

/* Wait for the child's report; fail "hung" after 10 s. Returns the
 * seconds from t_event to its return. */
static double finish_waiter(enum kind k, uint64_t t_event, const char *what)
{
	uint64_t t0 = test_now_ns();
	int status;

	while (!atomic_load(&rep->done)) {
		if (test_now_ns() - t0 > 10ull * SECOND)
			FAIL("%s: still blocked 10 s after the bus was %s (it hung)", kind_name[k],
			     what);
		usleep(2000);
	}
	CHECK(waitpid(child_pid, &status, 0) == child_pid, "waitpid");
	child_pid = 0;
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: waiter exited with status %d",
	      kind_name[k], status);
	return (double)(rep->t_done - t_event) / 1e9;
}

static void test_truncated_while_waiting(enum kind k)
{
	struct held h;
	uint64_t t_cut;
	double dt;

	make_bus(k, &h);
	start_waiter(k);
	t_cut = test_now_ns();
	{
		int fd = open(path, O_RDWR);

		CHECK(fd >= 0 && ftruncate(fd, 4096) == 0, "ftruncate %s: %s", path,
		      strerror(errno));
		close(fd);
	}
	dt = finish_waiter(k, t_cut, "truncated");
	CHECK(rep->rc == SHMBUS_ECORRUPT,
	      "%s on a truncated bus returned %d (%s), expected SHMBUS_ECORRUPT; detail: %s",
	      kind_name[k], rep->rc, shmbus_strerror(rep->rc), rep->msg);
	CHECK(strstr(rep->msg, "truncated"), "%s: the message does not say truncated: %s",
	      kind_name[k], rep->msg);
	CHECK(dt < 3.0, "%s: noticed the truncation after %.2f s (promise: 1 s, allowed 3 s)",
	      kind_name[k], dt);
	printf("  %-16s truncated while blocked: SHMBUS_ECORRUPT after %.2f s\n", kind_name[k], dt);
	close_held(&h);
	unlink(path);
}

static void test_deleted_while_waiting(enum kind k)
{
	struct held h;
	uint64_t t_del;
	double dt;

	make_bus(k, &h);
	start_waiter(k);
	t_del = test_now_ns();
	OK(shmbus_channel_delete(h.b, chan_name[k]));
	dt = finish_waiter(k, t_del, "deleted");
	CHECK(rep->rc == SHMBUS_ENOENT,
	      "%s on a deleted channel returned %d (%s), expected SHMBUS_ENOENT; detail: %s",
	      kind_name[k], rep->rc, shmbus_strerror(rep->rc), rep->msg);
	CHECK(dt < 3.0, "%s: noticed the deletion after %.2f s (promise: 1 s, allowed 3 s)",
	      kind_name[k], dt);
	printf("  %-16s channel deleted while blocked: SHMBUS_ENOENT after %.2f s\n",
	       kind_name[k], dt);
	close_held(&h);
	unlink(path);
}

/* The bus header overwritten (magic destroyed) while a call is blocked. */
static void test_damaged_while_waiting(enum kind k)
{
	static const char junk[8] = "garbage!";
	struct held h;
	uint64_t t_hit;
	double dt;
	int fd;

	make_bus(k, &h);
	start_waiter(k);
	t_hit = test_now_ns();
	fd = open(path, O_RDWR);
	CHECK(fd >= 0 && pwrite(fd, junk, sizeof(junk), 0) == (ssize_t)sizeof(junk),
	      "overwriting the header of %s: %s", path, strerror(errno));
	close(fd);
	dt = finish_waiter(k, t_hit, "overwritten");
	CHECK(rep->rc == SHMBUS_ECORRUPT,
	      "%s on a bus with a destroyed header returned %d (%s), expected SHMBUS_ECORRUPT; detail: %s",
	      kind_name[k], rep->rc, shmbus_strerror(rep->rc), rep->msg);
	CHECK(dt < 3.0, "%s: noticed the damage after %.2f s (promise: 1 s, allowed 3 s)",
	      kind_name[k], dt);
	printf("  %-16s header overwritten while blocked: SHMBUS_ECORRUPT after %.2f s\n",
	       kind_name[k], dt);
	close_held(&h);
	unlink(path);
}

/* The waiter's step i (0-based), or NULL if it has not taken it yet. The
 * hook stores the names in order (plain stores to this shared page). */
static const char *step_name(long i)
{
	return i < TRACE_N ? __atomic_load_n(&rep->trace[i], __ATOMIC_ACQUIRE) : NULL;
}

/* Removing the file leaves the mapping valid: the waiter is still served. */
static void test_removed_bus_still_serves_its_peers(void)
{
	struct held h;
	double v = 42.0;
	uint64_t t_w, t_rm;
	long n0, i;
	int checked = 0;

	make_bus(K_STATE, &h);
	trace_steps = 1;
	start_waiter(K_STATE);
	trace_steps = 0;
	CHECK(unlink(path) == 0, "unlink %s: %s", path, strerror(errno));
	t_rm = test_now_ns();
	/* The waiter looks at the file (fstat) after a slice's sleep, when
	 * its step wait.park_cancel.count is followed by sb_wait_check, at
	 * most SB_WAIT_SLICE_NS apart. So a park_cancel it takes after
	 * t_rm + one slice runs a check that comes after the removal, and
	 * the step it takes next (it sleeps again) says the check found
	 * nothing wrong. Wait for both (10 s: a loaded machine). */
	while (test_now_ns() - t_rm < (uint64_t)SB_WAIT_SLICE_NS)
		usleep(10000);
	for (n0 = 0; step_name(n0); n0++)
		;
	for (i = n0; !checked;) {
		CHECK(!atomic_load(&rep->done),
		      "state wait returned %d when the bus file was removed: %s", rep->rc, rep->msg);
		CHECK(test_now_ns() - t_rm < 10ull * SECOND,
		      "the waiter took no slice after the removal in 10 s (%ld steps, last %s)", i,
		      i ? step_name(i - 1) : "none");
		CHECK(i + 1 < TRACE_N, "the waiter took over %d steps", TRACE_N);
		if (!step_name(i + 1)) {
			usleep(2000);
			continue;
		}
		checked = strcmp(step_name(i), "wait.park_cancel.count") == 0;
		i++;
	}
	CHECK(!atomic_load(&rep->done), "state wait returned %d when the bus file was removed: %s",
	      rep->rc, rep->msg);
	t_w = test_now_ns();
	OK(shmbus_state_write(h.st, &v, sizeof(v)));
	finish_waiter(K_STATE, t_w, "written");
	CHECK(rep->rc == 0, "state wait after removal returned %d (%s): %s", rep->rc,
	      shmbus_strerror(rep->rc), rep->msg);
	printf("  bus file removed while blocked: the waiter looked at the file after the removal (seen %.2f s after it, at its step %ld) and still gets the next value\n",
	       (double)(t_w - t_rm) / 1e9, i);
	close_held(&h);
}

/* A program that closes the library's fd of the bus (a daemon closing every
 * descriptor) and reuses the number for another file: that file's size says
 * nothing about the bus, so a wait still times out normally. */
static void test_fd_reused_by_the_program(void)
{
	struct held h;
	char link[64], target[512];
	uint64_t seq = 0;
	int fd, found = -1, devnull;
	ssize_t n;

	make_bus(K_STATE, &h);
	for (fd = 3; fd < 1024 && found < 0; fd++) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			if (strcmp(target, path) == 0)
				found = fd;
		}
	}
	CHECK(found >= 0, "no descriptor of %s found in /proc/self/fd", path);
	devnull = open("/dev/null", O_RDWR);
	CHECK(devnull >= 0 && dup2(devnull, found) == found, "dup2 over fd %d: %s", found,
	      strerror(errno));
	close(devnull);
	EXPECT_CODE(shmbus_state_wait(h.st, 0, 700000000ll, &seq), SHMBUS_ETIMEDOUT);
	printf("  bus fd replaced by /dev/null behind the library: a wait still times out normally\n");
	close_held(&h);
	unlink(path);
}

/* A dict read on a truncated bus names the truncation. */
static void test_dict_read_after_truncation(void)
{
	shmbus_bus_opts_t bo;
	shmbus_bus_t *b;
	shmbus_dict_t *d;
	char buf[64];
	size_t len;
	pid_t pid;
	int status;

	unlink(path);
	shmbus_bus_opts_init(&bo);
	bo.size = 1 << 20;
	OK(shmbus_bus_create(bus_name, &bo, &b));
	OK(shmbus_dict_open(b, "d", T_OPTS(shmbus_dict_opts_t, .create = 1, .area_bytes = 64 << 10), &d));
	OK(shmbus_dict_set(d, "k", 1, "v", 1));
	shmbus_dict_close(d);
	shmbus_bus_close(b);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		int r;

		alarm(20);
		OK(shmbus_bus_open(bus_name, NULL, &b));
		OK(shmbus_dict_open(b, "d", T_OPTS(shmbus_dict_opts_t, .create = 0), &d));
		CHECK(truncate(path, 4096) == 0, "truncate: %s", strerror(errno));
		r = shmbus_dict_get(d, "k", 1, buf, sizeof(buf), &len);
		CHECK(r == SHMBUS_ECORRUPT && strstr(shmbus_last_error(), "truncated"),
		      "dict get on a truncated bus returned %d (%s): %s", r, shmbus_strerror(r),
		      shmbus_last_error());
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "dict reader ended with status %d", status);
	printf("  dict get on a truncated bus: SHMBUS_ECORRUPT, \"truncated\"\n");
	unlink(path);
}

/* Argument N (optional): only the truncation case of kind N; "dict":
 * only the dict read. */
int main(int argc, char **argv)
{
	int k, only = argc > 1 ? atoi(argv[1]) : -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(path, sizeof(path), "/tmp/shmbus-t-wtrunc-%d", (int)getpid());
	snprintf(bus_name, sizeof(bus_name), "file:%s", path);
	rep = mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(rep != MAP_FAILED, "mmap");
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (argc > 1 && strcmp(argv[1], "dict") == 0) {
		test_dict_read_after_truncation();
		return 0;
	}
	if (only >= 0 && only < K_NKINDS) {
		test_truncated_while_waiting((enum kind)only);
		return 0;
	}
	for (k = 0; k < K_NKINDS; k++)
		test_truncated_while_waiting((enum kind)k);
	for (k = 0; k < K_NKINDS; k++)
		test_deleted_while_waiting((enum kind)k);
	for (k = 0; k < K_NKINDS; k++)
		test_damaged_while_waiting((enum kind)k);
	test_removed_bus_still_serves_its_peers();
	test_fd_reused_by_the_program();
	test_dict_read_after_truncation();
	printf("wait_truncated: ok\n");
	return 0;
}

/*
 * test_pidns.c -- liveness across pid namespaces, pid reuse and fork.
 *
 * Containers that share /dev/shm run in their own pid namespaces: a
 * process that is pid 1 in its container has another pid, or none, in the
 * root namespace. A live peer must never be judged dead from another
 * namespace, and a dead one must still be found dead. Each case starts a
 * holder that opens the bus, takes a state channel's writer role and a
 * lock, holds a queue message (peeked as a member of a group), and keeps
 * writing; a checker then looks at the bus the way another
 * program would (shmbus_bus_info, shmbus_bus_gc, a state write, a lock):
 *
 *   1. holder in a new pid namespace (pid 1 there, /proc remounted, as
 *      `unshare --pid --fork --mount --mount-proc` does), checker in ours;
 *   2. holder in ours, checker in a new pid namespace;
 *   3. holder and checker in two sibling namespaces (both pid 1);
 *   4. a forked child that inherited the holder's handles and outlives it
 *      does not keep the dead holder looking alive;
 * each first while the holder runs (the checker sees a live peer: the write
 * is refused with EBUSY, the lock times out, the held message is not
 * handed out again, gc reaps nothing, the holder's sequence keeps moving),
 * then after SIGKILL (the checker sees a stale bus, takes the writer role,
 * gets the lock with SHMBUS_EOWNERDEAD, gets the held message again flagged
 * SHMBUS_MSG_REDELIVERED, gc reaps the peer slot);
 *   5. pid reuse: in a fresh pid namespace a holder (pid 2) is killed and
 *      ns_last_pid is set so that the next process is pid 2 again; that
 *      process finds the dead holder's writer role and lock free;
 *   6. a creator in another pid namespace, paused just before it publishes
 *      (link is interposed), keeps its temporary file through a listing
 *      here (shmbus_list removes the files of dead creators);
 *   7. the directory mutex (a robust pthread mutex, whose futex word holds
 *      the owner's thread id as its own namespace numbers it) held in one
 *      namespace: a process in another, even one with the same thread id,
 *      waits for it while the holder lives and recovers it after its
 *      SIGKILL.
 *
 * Needs root (or the capabilities for unshare(CLONE_NEWPID | CLONE_NEWNS)
 * and mounting proc); without them it prints SKIP and passes, since there
 * is nothing to test on such a machine.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <dirent.h>

#include "internal.h"   /* sb_bus_lock: to die holding the directory mutex */
#include "testutil.h"

static char self_exe[4096];
static const char *bus_name;
static int pause_at_link;

/* The library's link(2), interposed (the library is linked statically):
 * with pause_at_link, a creator says "at link" and waits for a line on
 * stdin just before it publishes its fully built temporary file. */
int link(const char *from, const char *to)
{
	char c;

	if (pause_at_link) {
		printf("at link\n");
		fflush(stdout);
		while (read(0, &c, 1) < 0 && errno == EINTR)
			;
	}
	return (int)syscall(SYS_linkat, AT_FDCWD, from, AT_FDCWD, to, 0);
}

static void cleanup(void)
{
	if (bus_name)
		shmbus_bus_unlink(bus_name);
}

/* ---- the roles, run in their own processes -------------------------- */

/* Open the bus, take the writer role of "st", the lock "lk", and hold the
 * first message of queue "q" as a member of group "g". */
static void take_roles(const char *name, shmbus_bus_t **b, shmbus_state_t **st,
                       shmbus_lock_t **lk)
{
	shmbus_queue_t *q;
	shmbus_queue_opts_t qo;
	shmbus_msg_t m;
	uint64_t v = 1;

	OK(shmbus_bus_open(name, NULL, b));
	OK(test_state_1d(*b, "st", SHMBUS_UINT64, 1, st));
	OK(shmbus_state_write(*st, &v, sizeof(v)));
	OK(shmbus_lock_open(*b, "lk", T_OPTS(shmbus_lock_opts_t, .create = 0), lk));
	OK(shmbus_lock_lock(*lk, 0));
	shmbus_queue_opts_init(&qo);
	qo.create = 0;
	OK(shmbus_queue_open(*b, "q", &qo, &q));
	OK(shmbus_queue_join(q, "g", 0));
	OK(shmbus_queue_peek(q, &m, 0));
	CHECK(m.len == 2 && !memcmp(m.data, "m1", 2), "holder got the wrong message");
}

/* Hold the roles and keep writing until stdin closes (the test is done)
 * or a SIGKILL. With fork_child, first fork a child that inherits every
 * handle and just waits on stdin too. Prints "ready PID" once holding. */
static int holder(const char *name, int fork_child)
{
	shmbus_bus_t *b;
	shmbus_state_t *st;
	shmbus_lock_t *lk;
	struct pollfd p = { .fd = 0, .events = POLLIN };
	uint64_t v;

	take_roles(name, &b, &st, &lk);
	if (fork_child) {
		pid_t c = fork();

		CHECK(c >= 0, "fork");
		if (c == 0) {
			while (poll(&p, 1, -1) < 0 && errno == EINTR)
				;
			_exit(0);
		}
		printf("child %d\n", (int)c);
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	for (v = 2;; v++) {
		int r = shmbus_state_write(st, &v, sizeof(v));

		if (r)
			FAIL("holder: its write failed with %d (%s): %s; its role was taken",
			     r, shmbus_strerror(r), shmbus_last_error());
		if (poll(&p, 1, 5) > 0)
			return 0;
	}
}

/* Look at the bus from outside; exit status 0 if it is as expected. */
static int checker(const char *name, int expect_alive)
{
	shmbus_bus_opts_t o;
	shmbus_bus_info_t bi = {.size_of = sizeof(bi)};
	shmbus_bus_t *nb, *b;
	shmbus_state_t *st;
	shmbus_lock_t *lk;
	shmbus_queue_t *q;
	shmbus_queue_opts_t qo;
	uint64_t v = 42, seq, seq2;
	uint32_t reaped, flags = 0;
	char buf[16];
	size_t len = 0;
	int r;

	shmbus_queue_opts_init(&qo);
	qo.create = 0;

	shmbus_bus_opts_init(&o);
	o.flags = SHMBUS_BUS_NO_PEER;     /* as `shmbus info` and `shmbus gc` */
	OK(shmbus_bus_open(name, &o, &nb));
	OK(shmbus_bus_info(nb, &bi));
	CHECK(bi.peers == 1 && bi.live_peers == (expect_alive ? 1u : 0u),
	      "info from pid %d: %u peers, %u live; expected 1, %d", (int)getpid(), bi.peers,
	      bi.live_peers, expect_alive);
	if (expect_alive) {
		OK(shmbus_bus_gc(nb, &reaped));
		CHECK(reaped == 0, "gc reaped %u things of a live holder", reaped);
	}
	OK(shmbus_bus_open(name, NULL, &b));
	OK(shmbus_bus_set_liveness(b, 20000000));
	OK(test_state_1d(b, "st", SHMBUS_UINT64, 1, &st));
	OK(shmbus_lock_open(b, "lk", T_OPTS(shmbus_lock_opts_t, .create = 0), &lk));
	r = shmbus_state_write(st, &v, sizeof(v));
	CHECK(r == (expect_alive ? SHMBUS_EBUSY : 0),
	      "state write returned %d (%s), expected %s: %s", r, shmbus_strerror(r),
	      expect_alive ? "EBUSY" : "0", shmbus_last_error());
	/* 300 ms with a 20 ms liveness slice: about 15 checks of the owner. */
	r = shmbus_lock_lock(lk, 300000000);
	CHECK(r == (expect_alive ? SHMBUS_ETIMEDOUT : SHMBUS_EOWNERDEAD),
	      "lock returned %d (%s), expected %s: %s", r, shmbus_strerror(r),
	      expect_alive ? "ETIMEDOUT" : "EOWNERDEAD", shmbus_last_error());
	OK(shmbus_queue_open(b, "q", &qo, &q));
	OK(shmbus_queue_join(q, "g", 0));
	if (expect_alive) {
		/* m1 is the live holder's: we get m2, and then nothing. */
		OK(shmbus_queue_get(q, buf, sizeof(buf), &len, &flags, 300000000));
		CHECK(len == 2 && !memcmp(buf, "m2", 2) && flags == 0,
		      "first get: %.*s flags %u, expected m2", (int)len, buf, flags);
		r = shmbus_queue_get(q, buf, sizeof(buf), &len, &flags, 300000000);
		CHECK(r == SHMBUS_ETIMEDOUT, "second get returned %d (%s): %.*s flags %u; "
		      "the live holder's message was handed out again", r, shmbus_strerror(r),
		      r == 0 ? (int)len : 0, buf, flags);
	} else {
		/* The dead holder's m1 comes again, flagged. */
		OK(shmbus_queue_get(q, buf, sizeof(buf), &len, &flags, 3000000000ll));
		CHECK(len == 2 && !memcmp(buf, "m1", 2) && (flags & SHMBUS_MSG_REDELIVERED),
		      "get after the holder died: %.*s flags %u, expected m1 redelivered",
		      (int)len, buf, flags);
	}
	shmbus_queue_close(q);
	if (expect_alive) {
		/* The holder still works: its sequence moves on. */
		OK(shmbus_state_read(st, &v, sizeof(v), &seq));
		OK(shmbus_state_wait(st, seq, 10000000000ll, &seq2));
		CHECK(seq2 > seq, "holder's sequence stuck at %llu", (unsigned long long)seq);
		OK(shmbus_bus_gc(nb, &reaped));
		CHECK(reaped == 0, "gc reaped %u things of a live holder", reaped);
	} else {
		OK(shmbus_lock_consistent(lk));
		OK(shmbus_lock_unlock(lk));
		OK(shmbus_bus_gc(nb, &reaped));
		CHECK(reaped == 1, "gc reaped %u, expected the dead holder's peer slot", reaped);
	}
	shmbus_lock_close(lk);
	shmbus_state_close(st);
	shmbus_bus_close(b);
	shmbus_bus_close(nb);
	return 0;
}

/* Hold the bus's directory mutex (a robust pthread mutex) until stdin
 * closes or a SIGKILL. */
static int dir_holder(const char *name)
{
	struct pollfd p = { .fd = 0, .events = POLLIN };
	shmbus_bus_t *b;

	OK(shmbus_bus_open(name, NULL, &b));
	OK(sb_bus_lock(b));
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	return 0;
}

/* Open a channel, which takes the directory mutex: refused after the
 * mutex's 2 s timeout while its holder lives, at once once it died. */
static int dir_checker(const char *name, int expect_alive)
{
	shmbus_bus_t *b;
	shmbus_state_t *st;
	int r;

	OK(shmbus_bus_open(name, NULL, &b));
	r = test_state_1d(b, "st", SHMBUS_UINT64, 1, &st);
	CHECK(r == (expect_alive ? SHMBUS_ETIMEDOUT : 0),
	      "channel open returned %d (%s), expected %s: %s", r, shmbus_strerror(r),
	      expect_alive ? "ETIMEDOUT" : "0", shmbus_last_error());
	if (!r)
		shmbus_state_close(st);
	shmbus_bus_close(b);
	return 0;
}

/* Init of a fresh pid namespace: a holder (pid 2) dies holding its roles;
 * the next process gets pid 2 again and must find them free. */
static int reuse(const char *name)
{
	shmbus_bus_t *b;
	shmbus_state_t *st;
	shmbus_lock_t *lk;
	shmbus_peer_info_t pi[4];
	size_t n;
	pid_t h, c;
	char buf[32];
	int fd, status, len, alive;

	h = fork();
	CHECK(h >= 0, "fork");
	if (h == 0) {
		take_roles(name, &b, &st, &lk);
		raise(SIGKILL);
		_exit(1);
	}
	CHECK(waitpid(h, &status, 0) == h && WIFSIGNALED(status), "holder status 0x%x", status);
	fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
	CHECK(fd >= 0, "open ns_last_pid: %s", strerror(errno));
	len = snprintf(buf, sizeof(buf), "%d", (int)h - 1);
	CHECK(write(fd, buf, (size_t)len) == len, "write ns_last_pid: %s", strerror(errno));
	close(fd);
	c = fork();
	CHECK(c >= 0, "fork");
	if (c == 0) {
		uint64_t v = 7;

		CHECK(getpid() == h, "pid %d was not reused (got %d)", (int)h, (int)getpid());
		OK(shmbus_bus_open(name, NULL, &b));
		OK(shmbus_bus_peers(b, pi, 4, &n));
		CHECK(n == 2 && pi[0].pid == (uint32_t)h && pi[1].pid == (uint32_t)h,
		      "expected two peers with pid %d, got %zu", (int)h, n);
		alive = (int)pi[0].alive + (int)pi[1].alive;
		CHECK(alive == 1, "%d of the two pid-%d peers judged alive", alive, (int)h);
		OK(test_state_1d(b, "st", SHMBUS_UINT64, 1, &st));
		OK(shmbus_state_write(st, &v, sizeof(v)));
		OK(shmbus_lock_open(b, "lk", T_OPTS(shmbus_lock_opts_t, .create = 0), &lk));
		EXPECT_CODE(shmbus_lock_lock(lk, 0), SHMBUS_EOWNERDEAD);
		OK(shmbus_lock_consistent(lk));
		OK(shmbus_lock_unlock(lk));
		shmbus_lock_close(lk);
		shmbus_state_close(st);
		shmbus_bus_close(b);
		_exit(0);
	}
	CHECK(waitpid(c, &status, 0) == c, "waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* Init of a fresh pid namespace: create the bus from pid `pid` (a pid
 * that names no process in the test's namespace), pausing before the
 * publishing link. */
static int create_as(const char *name, int pid)
{
	shmbus_bus_t *b;
	char buf[32];
	int fd, len, status;
	pid_t c;

	fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
	CHECK(fd >= 0, "open ns_last_pid: %s", strerror(errno));
	len = snprintf(buf, sizeof(buf), "%d", pid - 1);
	CHECK(write(fd, buf, (size_t)len) == len, "write ns_last_pid: %s", strerror(errno));
	close(fd);
	c = fork();
	CHECK(c >= 0, "fork");
	if (c == 0) {
		CHECK(getpid() == pid, "creator is pid %d, wanted %d", (int)getpid(), pid);
		pause_at_link = 1;
		OK(shmbus_bus_create(name, NULL, &b));
		shmbus_bus_close(b);
		_exit(0);
	}
	CHECK(waitpid(c, &status, 0) == c, "waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* ---- spawning them, in a new pid namespace or not ------------------- */

struct proc {
	pid_t outer;    /* the intermediate (or the process itself) */
	pid_t pid;      /* the process, as our namespace numbers it */
	int in;         /* its stdin (close to end a holder) */
	int out;        /* its stdout */
};

/* Run this program with args in a new process; with new_ns, as pid 1 of a
 * new pid namespace with its own /proc. Returns 0, or 77 if namespaces
 * cannot be made here. */
static int spawn(struct proc *p, int new_ns, char *const args[])
{
	int in[2], out[2], pp[2], status;
	pid_t a;

	CHECK(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 &&
	      pipe2(pp, O_CLOEXEC) == 0, "pipe");
	a = fork();
	CHECK(a >= 0, "fork");
	if (a == 0) {
		pid_t g;

		if (new_ns && unshare(CLONE_NEWPID | CLONE_NEWNS) != 0)
			_exit(77);
		g = fork();
		if (g < 0)
			_exit(1);
		if (g == 0) {
			if (new_ns && (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
			               mount("proc", "/proc", "proc", 0, NULL) != 0)) {
				fprintf(stderr, "mount proc: %s\n", strerror(errno));
				_exit(77);
			}
			dup2(in[0], 0);
			dup2(out[1], 1);
			execv(self_exe, args);
			_exit(1);
		}
		if (write(pp[1], &g, sizeof(g)) != (ssize_t)sizeof(g))
			_exit(1);
		/* Keep no end of the pipes: the process must see EOF on its
		 * stdin when the test ends, whatever way it ends. */
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		close(pp[0]);
		while (waitpid(g, &status, 0) < 0 && errno == EINTR)
			;
		_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	}
	close(in[0]);
	close(out[1]);
	close(pp[1]);
	p->outer = a;
	p->in = in[1];
	p->out = out[0];
	if (read(pp[0], &p->pid, sizeof(p->pid)) != (ssize_t)sizeof(p->pid)) {
		close(pp[0]);
		CHECK(waitpid(a, &status, 0) == a, "waitpid");
		if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
			return 77;
		FAIL("spawn failed (status 0x%x)", status);
	}
	close(pp[0]);
	return 0;
}

/* Wait for the process's exit status (of the process in the namespace).
 * Its stdin stays open if keep_in (a holder's forked child waits on it). */
static int finish(struct proc *p, int keep_in)
{
	int status;

	if (!keep_in)
		close(p->in);
	close(p->out);
	CHECK(waitpid(p->outer, &status, 0) == p->outer, "waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Read the holder's lines up to "ready PID"; returns PID as the holder
 * sees itself, and the pid of its forked child (as we see it: the child
 * is in our namespace only when the holder is) in *child. */
static char *wait_line(struct proc *p, const char *word, char *buf, size_t cap)
{
	struct pollfd pf = { .fd = p->out, .events = POLLIN };
	size_t n = 0;
	char *r;

	while (!(r = memmem(buf, n, word, strlen(word))) ||
	       !memchr(r, '\n', n - (size_t)(r - buf))) {
		ssize_t k;

		CHECK(n < cap - 1, "too much output before '%s'", word);
		CHECK(poll(&pf, 1, 20000) == 1, "no '%s' within 20 s", word);
		k = read(p->out, buf + n, cap - 1 - n);
		CHECK(k > 0, "ended before '%s'", word);
		n += (size_t)k;
	}
	buf[n] = '\0';
	return r;
}

static int wait_ready(struct proc *p, pid_t *child)
{
	char buf[256];
	char *r = wait_line(p, "ready ", buf, sizeof(buf));
	int pid;

	if (child) {
		char *c = strstr(buf, "child ");

		*child = c ? (pid_t)atoi(c + 6) : 0;
	}
	CHECK(sscanf(r, "ready %d", &pid) == 1, "bad line from holder: %s", buf);
	return pid;
}

static int run_checker(int new_ns, int expect_alive)
{
	char *args[] = { self_exe, "check", (char *)bus_name,
		         expect_alive ? "alive" : "dead", NULL };
	struct proc c;

	if (spawn(&c, new_ns, args) == 77)
		return 77;
	return finish(&c, 0);
}

static void make_bus(void);

/* The directory mutex held by a process in one namespace, wanted by one in
 * another; in sibling namespaces both are pid (and thread id) 1, the
 * value the mutex's futex word holds. */
static void dir_case(const char *what, int holder_ns, int checker_ns)
{
	char *hargs[] = { self_exe, "dirlock", (char *)bus_name, NULL };
	char *alive[] = { self_exe, "dircheck", (char *)bus_name, "alive", NULL };
	char *dead[] = { self_exe, "dircheck", (char *)bus_name, "dead", NULL };
	struct proc h, c;
	int inner, r;

	make_bus();
	CHECK(spawn(&h, holder_ns, hargs) == 0, "spawn");
	inner = wait_ready(&h, NULL);
	CHECK(spawn(&c, checker_ns, alive) == 0, "spawn");
	r = finish(&c, 0);
	CHECK(r == 0, "%s: the directory mutex of a live holder was taken (checker exit %d)",
	      what, r);
	CHECK(kill(h.pid, SIGKILL) == 0, "kill: %s", strerror(errno));
	r = finish(&h, 0);
	CHECK(r == 128 + SIGKILL, "%s: holder exit %d", what, r);
	CHECK(spawn(&c, checker_ns, dead) == 0, "spawn");
	r = finish(&c, 0);
	CHECK(r == 0, "%s: the directory mutex of a dead holder was not recovered (checker exit %d)",
	      what, r);
	printf("  directory mutex, %s: waited for the live holder (pid %d there), recovered after its SIGKILL\n",
	       what, inner);
}

static void make_bus(void)
{
	shmbus_bus_t *b;
	shmbus_state_t *st;
	shmbus_lock_t *lk;
	shmbus_queue_t *q;

	shmbus_bus_unlink(bus_name);
	OK(shmbus_bus_create(bus_name, NULL, &b));
	OK(test_state_1d(b, "st", SHMBUS_UINT64, 1, &st));
	OK(shmbus_lock_open(b, "lk", NULL, &lk));
	OK(shmbus_queue_open(b, "q", NULL, &q));
	OK(shmbus_queue_join(q, "g", SHMBUS_GROUP_EARLIEST));
	OK(shmbus_queue_put(q, "m1", 2, 0));
	OK(shmbus_queue_put(q, "m2", 2, 0));
	shmbus_queue_close(q);
	shmbus_lock_close(lk);
	shmbus_state_close(st);
	shmbus_bus_close(b);
}

/* One case: holder (in a new namespace or not), checked alive and then,
 * after its SIGKILL, dead by a checker (in a new namespace or not). */
static int one_case(const char *what, int holder_ns, int checker_ns, int fork_child)
{
	char *args[] = { self_exe, fork_child ? "holdfork" : "hold", (char *)bus_name, NULL };
	struct proc h;
	pid_t child = 0;
	int inner, r;

	make_bus();
	if (spawn(&h, holder_ns, args) == 77)
		return 77;
	inner = wait_ready(&h, &child);
	r = run_checker(checker_ns, 1);
	if (r == 77)
		return 77;
	CHECK(r == 0, "%s: a live holder (pid %d, %d inside) was judged dead (checker exit %d)",
	      what, (int)h.pid, inner, r);
	CHECK(waitpid(h.outer, NULL, WNOHANG) == 0, "%s: the holder stopped", what);
	CHECK(kill(h.pid, SIGKILL) == 0, "kill: %s", strerror(errno));
	r = finish(&h, 1);
	CHECK(r == 128 + SIGKILL, "%s: holder exit %d", what, r);
	if (fork_child)
		CHECK(child > 0 && kill(child, 0) == 0, "%s: the forked child is gone", what);
	r = run_checker(checker_ns, 0);
	CHECK(r == 0, "%s: a dead holder was not judged dead (checker exit %d)", what, r);
	close(h.in);                   /* ends the forked child */
	if (fork_child)
		CHECK(waitpid(child, NULL, 0) == child, "reaping the forked child");
	printf("  %s: alive while it ran (pid %d, %d in its namespace), dead after SIGKILL\n",
	       what, (int)h.pid, inner);
	return 0;
}

static int tmp_files(const char *name, int pid)
{
	char prefix[128], suffix[128];
	struct dirent *e;
	DIR *d = opendir("/dev/shm");
	size_t len, slen;
	int n = 0;

	CHECK(d, "opendir /dev/shm");
	/* shmbus-.tmp-PID-STAMP-NAME (segment.c, tmp_path) */
	snprintf(prefix, sizeof(prefix), "shmbus-.tmp-%d-", pid);
	snprintf(suffix, sizeof(suffix), "-%s", name);
	slen = strlen(suffix);
	while ((e = readdir(d)) != NULL) {
		len = strlen(e->d_name);
		n += !strncmp(e->d_name, prefix, strlen(prefix)) && len > slen &&
		     !strcmp(e->d_name + len - slen, suffix);
	}
	closedir(d);
	return n;
}

static int count_bus(const char *name, void *arg)
{
	(void)name;
	(*(int *)arg)++;
	return 0;
}

/* A creator in another pid namespace, paused just before it publishes:
 * listing the buses here (as `shmbus ls` and `gc` do) must not take its
 * half-built file for an orphan. */
static void creator_in_other_namespace(void)
{
	char buf[256], spid[16];
	char *args[] = { self_exe, "create", (char *)bus_name, spid, NULL };
	struct proc c;
	shmbus_bus_t *b;
	int pid = 0, max = 32768, n = 0, r;
	uint32_t removed = 0;
	FILE *f = fopen("/proc/sys/kernel/pid_max", "r");

	if (f) {
		if (fscanf(f, "%d", &max) != 1)
			max = 32768;
		fclose(f);
	}
	for (pid = max - 2; pid > 300; pid--)
		if (kill(pid, 0) != 0 && errno == ESRCH)
			break;
	snprintf(spid, sizeof(spid), "%d", pid);
	shmbus_bus_unlink(bus_name);
	CHECK(spawn(&c, 1, args) == 0, "spawn");
	wait_line(&c, "at link", buf, sizeof(buf));
	CHECK(tmp_files(bus_name, pid) == 1, "no temporary file of creator pid %d", pid);
	OK(shmbus_list(count_bus, &n));
	CHECK(tmp_files(bus_name, pid) == 1,
	      "listing removed the temporary file of a live creator (pid %d in its namespace)",
	      pid);
	OK(shmbus_gc_temporaries(0, &removed));
	CHECK(tmp_files(bus_name, pid) == 1,
	      "gc removed the temporary file of a live creator (pid %d in its namespace)",
	      pid);
	CHECK(write(c.in, "\n", 1) == 1, "write");
	r = finish(&c, 0);
	CHECK(r == 0, "creator in another namespace failed (exit %d)", r);
	OK(shmbus_bus_open(bus_name, NULL, &b));
	shmbus_bus_close(b);
	printf("  creator in another pid namespace (pid %d there, none here): its temporary file survived a listing and gc\n",
	       pid);
}

int main(int argc, char **argv)
{
	char *args[4];
	struct proc p;
	ssize_t n;
	int r;

	if (argc == 3 && !strcmp(argv[1], "hold"))
		return holder(argv[2], 0);
	if (argc == 3 && !strcmp(argv[1], "holdfork"))
		return holder(argv[2], 1);
	if (argc == 4 && !strcmp(argv[1], "check"))
		return checker(argv[2], !strcmp(argv[3], "alive"));
	if (argc == 3 && !strcmp(argv[1], "reuse"))
		return reuse(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "dirlock"))
		return dir_holder(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "dircheck"))
		return dir_checker(argv[2], !strcmp(argv[3], "alive"));
	if (argc == 4 && !strcmp(argv[1], "create"))
		return create_as(argv[2], atoi(argv[3]));

	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	CHECK(n > 0, "readlink /proc/self/exe");
	self_exe[n] = '\0';
	/* Orphans of our intermediates (a holder's forked child) come to us. */
	CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "PR_SET_CHILD_SUBREAPER");
	bus_name = test_bus_name("pidns");
	atexit(cleanup);
	printf("test_pidns\n");

	r = one_case("holder in a new pid namespace, checker outside", 1, 0, 0);
	if (r == 77) {
		printf("SKIP: cannot create pid and mount namespaces here (needs root or CAP_SYS_ADMIN)\n");
		return 0;
	}
	one_case("holder outside, checker in a new pid namespace", 0, 1, 0);
	one_case("holder and checker in sibling pid namespaces (both pid 1)", 1, 1, 0);
	one_case("forked child outlives its holder", 0, 0, 1);

	make_bus();
	args[0] = self_exe;
	args[1] = "reuse";
	args[2] = (char *)bus_name;
	args[3] = NULL;
	CHECK(spawn(&p, 1, args) == 0, "spawn");
	r = finish(&p, 0);
	CHECK(r == 0, "pid reuse: exit %d", r);
	printf("  pid reuse: a new process with a dead holder's pid did not keep its roles\n");
	creator_in_other_namespace();
	dir_case("holder in a new pid namespace, checker outside", 1, 0);
	dir_case("sibling pid namespaces (both pid 1)", 1, 1);
	printf("test_pidns: all passed\n");
	return 0;
}

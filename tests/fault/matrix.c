/*
 * matrix.c -- the fault matrix (promises 1, 2, 3, 6): every role is killed
 * with SIGKILL at every point of a fixed script, enumerated, and the
 * survivors check that nothing hangs beyond the liveness timeout, no
 * committed data is lost, no value is torn, and that gc leaves nothing
 * behind.
 *
 * Each round forks a victim playing one role. It sets up (opens the bus,
 * the channel), arms the kill-point hook (tests/faultinject.h) and runs its
 * role's script; it dies by SIGKILL just before its Nth shared-memory step.
 * For each role N runs 1, 2, ... until the script completes without
 * reaching N (that round is checked too). Points between steps are placed
 * by the victim itself: a state writer killed part-way through filling a
 * zero-copy value (1/4, 2/4, 3/4) and inside the library's copy of a
 * copying write (the source has an unmapped page at 1/4 or 2/4 of the
 * value: the copy faults there and the victim kills itself); a state reader
 * killed part-way through a zero-copy read and inside its copying read
 * (the destination has the unmapped page). This process (a survivor)
 * then checks:
 *
 *   state writer   the value read is whole and its seq did not go back; a
 *                  waiter blocked in shmbus_state_wait wakes once a new
 *                  writer (we) takes the role and publishes;
 *                  (script: a copying write, a zero-copy write)
 *   state reader   killed mid-read (zero-copy or copying) or inside a
 *                  parked wait: the writer never notices; reads stay whole;
 *                  (script: read_begin/validate, read, a 1 ms parked wait)
 *   bus creator    killed inside shmbus_bus_create or right after: the name
 *                  is absent or a whole bus; a bus left behind is stale (a
 *                  registered peer, none alive): `shmbus ls` says so and
 *                  `shmbus gc` removes it (when the CLI is built next to
 *                  us), else gc + unlink;
 *                  no temporary file survives a listing;
 *                  (script: create, open a state channel, write it)
 *   producer       every message whose put returned is delivered, in order,
 *                  intact; a claimed-but-unpublished slot does not stall the
 *                  consumer beyond the liveness timeout;
 *                  (script: reserve+commit, put, reserve+commit)
 *   group member   killed anywhere from join to release: every message is
 *                  delivered to the surviving member or was recorded by the
 *                  victim; a second copy only ever comes flagged;
 *                  (script: join, then peek, record, release 3 times)
 *   lock holder    killed inside lock, critical section or unlock: the next
 *                  locker gets EOWNERDEAD (or a clean lock) in bounded time
 *                  and repairs;
 *                  (script: lock, add, add, unlock, twice)
 *   dict mutator   killed mid-set/delete: the dict stays walkable, every
 *                  value intact, and usable.
 *                  (script: insert, insert, overwrite, delete, insert)
 *
 * The rounds run on one bus, one after another, so each victim starts from
 * what the earlier ones left. Every blocking call of the survivor is timed
 * against a generous bound (liveness timeout x 10 + 2 s; the machine may
 * be loaded), and so is each victim's run. At the end the dead peers are
 * reaped (gc), the bus is removed, and nothing of ours is left in
 * /dev/shm. One pass explores every point once; further passes repeat
 * them on the bus as the earlier ones left it (dead members and producers
 * reaped, a dict heap with holes) until FAULT_SECONDS (default 15 x
 * SHMBUS_TEST_SCALE) have gone: at least one pass, whatever the load.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"
#include "faultinject.h"

#define LIVENESS_NS 20000000ll          /* 20 ms */
#define BOUND_NS (LIVENESS_NS * 10 + 2000000000ll)
#define VICTIM_NS 20000000000ll         /* a victim's script: a few calls; 20 s is a hang */
#define PAGE 4096
#define WORDS 2048                      /* state value: 16 KiB, 4 pages */
#define MEMBER_MSGS 16
#define MAXSTEP 1024

enum { R_WRITER, R_READER, R_CREATOR, R_PRODUCER, R_MEMBER, R_LOCK, R_DICT, NROLES };
static const char *const role_name[NROLES] = {
	"state writer", "state reader", "bus creator", "producer", "group member",
	"lock holder", "dict mutator",
};

/* Where a victim dies: before its Nth step, or at a place it picks itself
 * (frac: 1/4 .. 3/4 of the value). */
enum { AT_STEP, AT_FILL, AT_COPY, AT_READ };
static const char *const at_name[] = {
	"step", "part-way through a zero-copy fill", "inside the library's copy",
	"part-way through a zero-copy read",
};

struct point {
	int at;
	long n;                          /* AT_STEP: the step */
	int frac;                        /* the others: quarters of the value */
};

struct shared {
	atomic_ullong committed;        /* producer: puts that returned */
	atomic_uchar taken[MEMBER_MSGS];/* member: recorded by the victim */
	char creator_name[64];
	const char *trace[MAXSTEP];     /* the victim's steps, in order */
	const char *self_at;            /* a self-placed death: the latest step */
	int self_killed;
};

static struct shared *sh;
static const char *bus_name;
static int has_queue, has_sync;
static unsigned rounds_of[NROLES], self_of[NROLES];
static double secs_of[NROLES];
static unsigned n_cli_gc, n_stale, n_absent, n_ownerdead, n_redelivered;

static uint64_t word_of(uint64_t tag, uint64_t i)
{
	return tag * 0x9E3779B97F4A7C15ull ^ (i * 0xD6E8FEB86659FD93ull);
}

/* Time a blocking call of the survivor. */
#define TIMED(what, call) ({ uint64_t t0_ = test_now_ns(); int tr_ = (call); \
	uint64_t dt_ = test_now_ns() - t0_; \
	CHECK(dt_ < (uint64_t)BOUND_NS, "%s blocked %.3f s (bound %.3f s)", what, dt_ / 1e9, \
	      BOUND_NS / 1e9); tr_; })

static shmbus_bus_t *victim_bus(void)
{
	shmbus_bus_t *b;

	int r = shmbus_bus_open(bus_name, NULL, &b);

	if (r != 0) {
		fprintf(stderr, "pid %d: open: %s\n", (int)getpid(), shmbus_last_error());
		_exit(20);
	}
	shmbus_bus_set_liveness(b, LIVENESS_NS);
	return b;
}

static shmbus_state_t *open_state(shmbus_bus_t *b)
{
	shmbus_state_t *st;

	OK(test_state_1d(b, "s", SHMBUS_UINT64, WORDS, &st));
	return st;
}

static shmbus_queue_t *open_queue(shmbus_bus_t *b)
{
	shmbus_queue_opts_t qo;
	shmbus_queue_t *q;

	shmbus_queue_opts_init(&qo);
	qo.slots = 64;
	qo.max_msg = 64;
	OK(shmbus_queue_open(b, "q", &qo, &q));
	return q;
}

/* ---- victims ---------------------------------------------------------- */

/* Set up done: from here on the steps count, and the Nth kills. */
static void arm(const struct point *pt)
{
	sb_fault_trace(sh->trace, MAXSTEP);
	sb_fault_arm(pt->at == AT_STEP ? pt->n : 0, SIGKILL);
}

static void die_here(void)
{
	sh->self_at = sb_fault_last();
	sh->self_killed = 1;
	raise(SIGKILL);
	_exit(19);
}

static void on_fault(int sig)
{
	(void)sig;
	die_here();
}

/* A page-aligned value buffer; for AT_COPY its page pt->frac becomes
 * unmapped once filled (hole()), so a copy from or into it faults there,
 * after pt->frac quarters: the head and tail pages stay mapped. */
static uint64_t *value_buf(void)
{
	void *p = mmap(NULL, WORDS * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	               -1, 0);

	if (p == MAP_FAILED)
		_exit(18);
	return p;
}

static void hole(uint64_t *v, const struct point *pt)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sigaction(SIGSEGV, &sa, NULL);
	if (mprotect((char *)v + (size_t)pt->frac * PAGE, PAGE, PROT_NONE))
		_exit(17);
}

static void victim_writer(const struct point *pt)
{
	shmbus_bus_t *b = victim_bus();
	shmbus_state_t *st = open_state(b);
	uint64_t *v = value_buf(), tag = (uint64_t)getpid() << 20, i;
	int k;
	void *p;

	arm(pt);
	for (k = 0; k < 2; k++) {
		tag++;
		v[0] = tag;
		for (i = 1; i < WORDS; i++)
			v[i] = word_of(tag, i);
		if (k == 0) {
			if (pt->at == AT_COPY)
				hole(v, pt);
			if (shmbus_state_write(st, v, WORDS * 8) != 0)
				_exit(21);
		} else {
			if (shmbus_state_write_begin(st, &p) != 0)
				_exit(22);
			for (i = 0; i < WORDS; i++) {
				if (pt->at == AT_FILL && i == (uint64_t)pt->frac * WORDS / 4)
					die_here();
				((volatile uint64_t *)p)[i] = v[i];
			}
			if (shmbus_state_write_commit(st) != 0)
				_exit(23);
		}
	}
	_exit(0);
}

static void check_value(const uint64_t *v, uint64_t seq, int round)
{
	uint64_t i;

	for (i = 1; i < WORDS; i++)
		CHECK(v[i] == word_of(v[0], i), "round %d: value at seq %llu torn at word %llu",
		      round, (unsigned long long)seq, (unsigned long long)i);
}

static void victim_reader(const struct point *pt)
{
	shmbus_bus_t *b = victim_bus();
	shmbus_state_t *st = open_state(b);
	uint64_t *v = value_buf(), seq, i, x = 0;
	const void *p;
	int r;

	shmbus_state_set_wait(st, SHMBUS_WAIT_PARK, 0);
	arm(pt);
	if (shmbus_state_read_begin(st, &p, &seq) != 0)
		_exit(24);
	for (i = 0; i < WORDS; i++) {
		if (pt->at == AT_READ && i == (uint64_t)pt->frac * WORDS / 4)
			die_here();
		x += ((const volatile uint64_t *)p)[i];
	}
	shmbus_state_read_validate(st, seq);
	if (pt->at == AT_COPY)
		hole(v, pt);
	if (shmbus_state_read(st, v, WORDS * 8, &seq) != 0)
		_exit(25);
	for (i = 1; i < WORDS; i++)
		if (v[i] != word_of(v[0], i))
			_exit(26);
	(void)x;
	/* nobody writes meanwhile: a parked wait that times out */
	r = shmbus_state_wait(st, seq, 1000000, &seq);
	_exit(r == 0 || r == SHMBUS_ETIMEDOUT ? 0 : 27);
}

static void victim_creator(const struct point *pt)
{
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;
	shmbus_state_t *st;
	uint64_t *v = value_buf();

	shmbus_bus_opts_init(&o);
	o.size = 8 << 20;
	arm(pt);
	if (shmbus_bus_create(sh->creator_name, &o, &b) != 0)
		_exit(28);
	st = open_state(b);
	if (shmbus_state_write(st, v, WORDS * 8) != 0)
		_exit(29);
	_exit(0);
}

struct qmsg {
	uint32_t pid;
	uint32_t i;
	uint64_t check;
};

static void victim_producer(const struct point *pt)
{
	shmbus_bus_t *b = victim_bus();
	shmbus_queue_t *q = open_queue(b);
	struct qmsg m = {(uint32_t)getpid(), 0, 0};
	void *p;

	arm(pt);
	for (; m.i < 3; m.i++) {
		m.check = test_hash(&m, 8);
		if (m.i & 1) {
			if (shmbus_queue_put(q, &m, sizeof(m), BOUND_NS) != 0)
				_exit(30);
		} else {
			if (shmbus_queue_reserve(q, sizeof(m), &p, BOUND_NS) != 0)
				_exit(31);
			memcpy(p, &m, sizeof(m));
			if (shmbus_queue_commit(q, sizeof(m)) != 0)
				_exit(32);
		}
		atomic_store(&sh->committed, (unsigned long long)m.i + 1);
	}
	_exit(0);
}

static void victim_member(const struct point *pt)
{
	shmbus_bus_t *b = victim_bus();
	shmbus_queue_t *q = open_queue(b);
	shmbus_msg_t m;
	uint32_t id;
	int k;

	arm(pt);
	if (shmbus_queue_join(q, "work", SHMBUS_GROUP_EARLIEST) != 0)
		_exit(33);
	for (k = 0; k < 3; k++) {
		if (shmbus_queue_peek(q, &m, BOUND_NS) != 0)
			_exit(34);
		memcpy(&id, m.data, 4);
		if (id < MEMBER_MSGS)
			atomic_store(&sh->taken[id], 1);
		shmbus_queue_release(q);
	}
	_exit(0);
}

static void victim_lock(const struct point *pt)
{
	shmbus_bus_t *b = victim_bus();
	shmbus_lock_t *l;
	shmbus_array_t *a;
	int r, k;

	OK(shmbus_lock_open(b, "lk", NULL, &l));
	OK(shmbus_array_open(b, "a", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 2, .create = 1), &a));
	arm(pt);
	for (k = 0; k < 2; k++) {
		r = shmbus_lock_lock(l, BOUND_NS);
		if (r == SHMBUS_EOWNERDEAD) {
			int64_t x;

			shmbus_array_get(a, 0, &x);
			shmbus_array_set(a, 1, &x);
			shmbus_lock_consistent(l);
		} else if (r != 0) {
			_exit(35);
		}
		shmbus_array_add_i64(a, 0, 1, NULL);
		shmbus_array_add_i64(a, 1, 1, NULL);
		shmbus_lock_unlock(l);
	}
	_exit(0);
}

struct dval {
	uint64_t k, check;
	uint8_t pad[48];
};

static void victim_dict(const struct point *pt)
{
	/* insert, insert, overwrite, delete, insert (into the freed space) */
	static const char *const keys[] = { "k0", "k1", "k0", "k1", "k2" };
	shmbus_bus_t *b = victim_bus();
	shmbus_dict_t *d;
	struct dval v;
	uint64_t k;

	OK(shmbus_dict_open(b, "d", T_OPTS(shmbus_dict_opts_t, .create = 1, .area_bytes = 1 << 20), &d));
	arm(pt);
	for (k = 0; k < 5; k++) {
		memset(&v, (int)k + 1, sizeof(v));
		v.k = k;
		v.check = test_hash(v.pad, sizeof(v.pad)) ^ k;
		if (k == 3) {
			if (shmbus_dict_del(d, keys[k], 2) != 0)
				_exit(36);
		} else if (shmbus_dict_set(d, keys[k], 2, &v, sizeof(v)) != 0) {
			_exit(37);
		}
	}
	_exit(0);
}

/* ---- survivors' checks ------------------------------------------------ */


static struct {
	shmbus_bus_t *b;
	shmbus_state_t *st;
	shmbus_queue_t *audit, *work, *prod;
	shmbus_lock_t *lk;
	shmbus_array_t *a;
	shmbus_dict_t *d;
	uint64_t last_seq;
} S;

static void check_writer(int round, pid_t waiter)
{
	uint64_t v[WORDS], seq, i;
	int status;

	OK(TIMED("state read", shmbus_state_read(S.st, v, sizeof(v), &seq)));
	check_value(v, seq, round);
	CHECK(seq >= S.last_seq, "round %d: seq %llu after %llu", round,
	      (unsigned long long)seq, (unsigned long long)S.last_seq);
	/* Take over the dead writer's role at once and publish. */
	v[0] = ((uint64_t)round << 40) | 1;
	for (i = 1; i < WORDS; i++)
		v[i] = word_of(v[0], i);
	OK(shmbus_state_write(S.st, v, sizeof(v)));
	OK(shmbus_state_release_writer(S.st));
	S.last_seq = shmbus_state_seq(S.st);
	/* The waiter, blocked since before the kill, sees a newer value. */
	CHECK(waitpid(waiter, &status, 0) == waiter && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 0, "round %d: state waiter failed (status 0x%x)", round,
	      status);
}

static pid_t spawn_waiter(int round)
{
	uint64_t from = shmbus_state_seq(S.st);
	pid_t pid = fork();

	if (pid == 0) {
		shmbus_bus_t *b = victim_bus();
		shmbus_state_t *st = open_state(b);
		uint64_t v[WORDS], seq, t0;
		int r;

		shmbus_state_set_wait(st, SHMBUS_WAIT_PARK, 0);
		/* Sleep through the victim's values until the survivor's
		 * (tagged with the round): a victim killed between publishing
		 * and waking must not leave us asleep past the bound. */
		for (;;) {
			t0 = test_now_ns();
			r = shmbus_state_wait(st, from, BOUND_NS, &seq);
			if (r != 0 || test_now_ns() - t0 >= (uint64_t)BOUND_NS)
				_exit(40);
			if (shmbus_state_read(st, v, sizeof(v), &seq) != 0)
				_exit(41);
			if (v[0] == (((uint64_t)round << 40) | 1))
				_exit(0);
			from = seq;
		}
	}
	return pid;
}

static void check_reader(int round)
{
	uint64_t v[WORDS], seq, i;

	v[0] = ((uint64_t)round << 40) | 2;
	for (i = 1; i < WORDS; i++)
		v[i] = word_of(v[0], i);
	OK(TIMED("state write after a reader died", shmbus_state_write(S.st, v, sizeof(v))));
	OK(shmbus_state_release_writer(S.st));
	OK(shmbus_state_read(S.st, v, sizeof(v), &seq));
	check_value(v, seq, round);
	S.last_seq = seq;
}

static int leftover_tmp(const char *name)
{
	char prefix[96], suffix[96];
	struct dirent *de;
	DIR *dir = opendir("/dev/shm");
	int n = 0;

	snprintf(prefix, sizeof(prefix), "shmbus-%s", name);
	snprintf(suffix, sizeof(suffix), "-%s", name);
	while (dir && (de = readdir(dir)) != NULL) {
		size_t len = strlen(de->d_name), slen = strlen(suffix);

		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
		/* a creation's temporary: shmbus-.tmp-PID-STAMP-NAME */
		else if (strncmp(de->d_name, "shmbus-.tmp-", 12) == 0 && len > slen &&
		         strcmp(de->d_name + len - slen, suffix) == 0)
			n++;
	}
	if (dir)
		closedir(dir);
	return n;
}

static int count_cb(const char *name, void *arg)
{
	(void)name;
	(*(int *)arg)++;
	return 0;
}

/* The CLI next to the test binary (build/shmbus for build/tests/fault/). */
static const char *cli_path(void)
{
	static char path[4200];
	static int done;
	char exe[4096];
	ssize_t n;

	if (!done) {
		done = 1;
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n > 0) {
			char *slash;
			int up;

			exe[n] = '\0';
			for (up = 0; up < 3 && (slash = strrchr(exe, '/')); up++)
				*slash = '\0';
			snprintf(path, sizeof(path), "%s/shmbus", exe);
			if (access(path, X_OK) != 0)
				path[0] = '\0';
		}
	}
	return path[0] ? path : NULL;
}

/* `shmbus ls` marks the bus stale and `shmbus gc NAME` removes it. */
static int cli_sees_stale_and_gcs(const char *name, int round)
{
	const char *cli = cli_path();
	char cmd[4400], line[512];
	int stale = 0;
	FILE *f;

	if (!cli)
		return 0;
	snprintf(cmd, sizeof(cmd), "%s ls 2>&1", cli);
	f = popen(cmd, "r");
	CHECK(f, "popen");
	while (fgets(line, sizeof(line), f))
		if (strstr(line, name) && strstr(line, "stale"))
			stale = 1;
	pclose(f);
	CHECK(stale, "round %d: 'shmbus ls' does not show bus '%s' as stale", round, name);
	snprintf(cmd, sizeof(cmd), "%s gc %s >/dev/null 2>&1", cli, name);
	CHECK(system(cmd) == 0, "round %d: 'shmbus gc %s' failed", round, name);
	return 1;
}

static void check_creator(int round)
{
	shmbus_bus_opts_t o;
	shmbus_bus_info_t bi = {.size_of = sizeof(bi)};
	shmbus_channel_info_t ci[4] = {{.size_of = sizeof(ci[0])}};
	shmbus_bus_t *b;
	size_t n;
	uint32_t reaped;
	int r, listed = 0;

	shmbus_bus_opts_init(&o);
	o.flags = SHMBUS_BUS_NO_PEER;
	r = shmbus_bus_open(sh->creator_name, &o, &b);
	CHECK(r == 0 || r == SHMBUS_ENOENT, "round %d: bus left by a killed creator: %d (%s)",
	      round, r, shmbus_last_error());
	if (r != 0)
		n_absent++;
	if (r == 0) {
		OK(shmbus_bus_info(b, &bi));
		CHECK(bi.live_peers == 0, "round %d: %u live peers on a dead creator's bus", round,
		      bi.live_peers);
		n_stale += bi.peers > 0;
		if (bi.peers > 0 && cli_sees_stale_and_gcs(sh->creator_name, round)) {
			OK(shmbus_bus_close(b));
			CHECK(shmbus_bus_open(sh->creator_name, &o, &b) == SHMBUS_ENOENT,
			      "round %d: stale bus '%s' still there after 'shmbus gc'", round,
			      sh->creator_name);
			n_cli_gc++;
			r = -1;
		}
	}
	if (r == 0) {
		/* Stale when it registered before dying; else idle. */
		OK(shmbus_channel_list(b, ci, 4, &n));
		OK(shmbus_bus_gc(b, &reaped));
		CHECK(reaped >= bi.peers, "round %d: gc reaped %u things, %u dead peers", round, reaped,
		      bi.peers);
		OK(shmbus_bus_info(b, &bi));
		CHECK(bi.peers == 0, "round %d: %u peers after gc", round, bi.peers);
		OK(shmbus_bus_close(b));
		OK(shmbus_bus_unlink(sh->creator_name));
	}
	/* A listing removes nothing; gc removes the temporary file of a
	 * creator that died. */
	OK(shmbus_list(count_cb, &listed));
	OK(shmbus_gc_temporaries(0, NULL));
	CHECK(leftover_tmp(sh->creator_name) == 0, "round %d: files of '%s' left in /dev/shm",
	      round, sh->creator_name);
}

static void check_producer(int round, unsigned long long committed)
{
	struct qmsg m;
	uint32_t flags, pid = 0, next = 0;
	size_t len;
	int r;

	/* Everything committed comes out in order; then the stream ends
	 * within the liveness timeout even if a claim was left open. */
	for (;;) {
		r = TIMED("queue get after a producer died",
		          shmbus_queue_get(S.audit, &m, sizeof(m), &len, &flags,
		                           next < committed ? BOUND_NS : LIVENESS_NS * 5));
		if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_EAGAIN)
			break;
		OK(r);
		CHECK(len == sizeof(m) && m.check == test_hash(&m, 8),
		      "round %d: corrupt message (len %zu)", round, len);
		if (!pid)
			pid = m.pid;
		CHECK(m.pid == pid && m.i == next, "round %d: got %u:%u, expected %u:%u", round,
		      m.pid, m.i, pid, next);
		next++;
	}
	CHECK(next >= committed, "round %d: %llu messages committed, %u delivered", round,
	      committed, next);
}

static void check_member(int round, const uint8_t *got)
{
	int i;

	for (i = 0; i < MEMBER_MSGS; i++)
		CHECK(got[i] || atomic_load(&sh->taken[i]),
		      "round %d: message %d lost (not recorded by the dead member, not redelivered)",
		      round, i);
}

static void check_lock(int round)
{
	int64_t x, y;
	int r = TIMED("lock after its holder died", shmbus_lock_lock(S.lk, BOUND_NS));

	CHECK(r == 0 || r == SHMBUS_EOWNERDEAD, "round %d: lock gave %d (%s)", round, r,
	      shmbus_last_error());
	OK(shmbus_array_get(S.a, 0, &x));
	OK(shmbus_array_get(S.a, 1, &y));
	if (r == SHMBUS_EOWNERDEAD) {
		n_ownerdead++;
		CHECK(x == y || x == y + 1, "round %d: counters %lld/%lld", round, (long long)x,
		      (long long)y);
		OK(shmbus_array_set(S.a, 1, &x));
		OK(shmbus_lock_consistent(S.lk));
	} else {
		CHECK(x == y, "round %d: lock free but counters differ %lld/%lld", round,
		      (long long)x, (long long)y);
	}
	OK(shmbus_lock_unlock(S.lk));
}

static void check_dict(int round)
{
	uint8_t kb[64];
	struct dval v;
	uint64_t cur = 0, len;
	size_t kl, vl;
	int r, n = 0;

	while ((r = TIMED("dict walk", shmbus_dict_next(S.d, &cur, kb, sizeof(kb), &kl, &v,
	                                                  sizeof(v), &vl))) == 0) {
		CHECK(vl == sizeof(v) && v.check == (test_hash(v.pad, sizeof(v.pad)) ^ v.k),
		      "round %d: dict value torn (len %zu)", round, vl);
		n++;
	}
	CHECK(r == SHMBUS_ENOENT, "round %d: dict walk ended with %d (%s)", round, r,
	      shmbus_last_error());
	OK(shmbus_dict_len(S.d, &len));
	CHECK(len == (uint64_t)n, "round %d: dict len %llu, walk saw %d", round,
	      (unsigned long long)len, n);
	memset(&v, 0, sizeof(v));
	v.check = test_hash(v.pad, sizeof(v.pad));
	OK(TIMED("dict set", shmbus_dict_set(S.d, "survivor", 8, &v, sizeof(v))));
}

/* ---- driver ----------------------------------------------------------- */

/* ---- driver ----------------------------------------------------------- */

static void (*const victims[NROLES])(const struct point *) = {
	victim_writer, victim_reader, victim_creator, victim_producer, victim_member,
	victim_lock, victim_dict,
};

/* One round: the victim plays role until pt, then the survivor checks.
 * Returns 1 when the victim completed its script (pt past its last step). */
static int one_round(int round, int role, const struct point *pt)
{
	uint8_t got[MEMBER_MSGS] = {0};
	pid_t pid, waiter = -1;
	uint64_t t0;
	int status, i, done;
	char where[160];

	atomic_store(&sh->committed, 0);
	sh->self_at = NULL;
	sh->self_killed = 0;
	memset(sh->trace, 0, sizeof(sh->trace));
	if (role == R_CREATOR)
		snprintf(sh->creator_name, sizeof(sh->creator_name), "t-mxc-%d-%d", (int)getpid(),
		         round);
	if (role == R_MEMBER) {
		for (i = 0; i < MEMBER_MSGS; i++) {
			uint32_t id = (uint32_t)i;

			atomic_store(&sh->taken[i], 0);
			OK(shmbus_queue_put(S.prod, &id, sizeof(id), BOUND_NS));
		}
	}
	if (role == R_WRITER)
		waiter = spawn_waiter(round);
	fflush(stdout);
	t0 = test_now_ns();
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		victims[role](pt);
		_exit(0);
	}
	/* The victim runs a short script: it ends (killed or done) within
	 * VICTIM_NS, or it hung. */
	while (waitpid(pid, &status, WNOHANG) != pid) {
		if (test_now_ns() - t0 >= (uint64_t)VICTIM_NS) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			FAIL("round %d: %s victim still running after %.1f s (%s %ld)", round,
			     role_name[role], VICTIM_NS / 1e9, at_name[pt->at],
			     pt->at == AT_STEP ? pt->n : (long)pt->frac);
		}
		usleep(200);
	}
	if (pt->at == AT_STEP)
		snprintf(where, sizeof(where), "step %ld (%s)", pt->n,
		         pt->n <= MAXSTEP && sh->trace[pt->n - 1] ? sh->trace[pt->n - 1] : "-");
	else
		snprintf(where, sizeof(where), "%s at %d/4", at_name[pt->at], pt->frac);
	done = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	CHECK(done || (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
	      "round %d: %s victim failed before %s (status 0x%x)", round, role_name[role], where,
	      status);
	CHECK(pt->at == AT_STEP || (!done && sh->self_killed),
	      "round %d: %s victim never got %s", round, role_name[role], where);
	/* The writer's copy faults inside shmbus_state_write's copy. */
	if (pt->at == AT_COPY && role == R_WRITER)
		CHECK(sh->self_at && strcmp(sh->self_at, "state.write.copy") == 0,
		      "round %d: the writer's fault was not in the copy (latest step %s)", round,
		      sh->self_at ? sh->self_at : "none");
	switch (role) {
	case R_WRITER: check_writer(round, waiter); break;
	case R_READER: check_reader(round); break;
	case R_CREATOR: check_creator(round); break;
	case R_PRODUCER: check_producer(round, atomic_load(&sh->committed)); break;
	case R_MEMBER:
		for (;;) {
			uint32_t id, flags;
			size_t len;
			int r = TIMED("member get after a member died",
			              shmbus_queue_get(S.work, &id, sizeof(id), &len, &flags,
			                               LIVENESS_NS * 5));

			if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_EAGAIN)
				break;
			OK(r);
			CHECK(id < MEMBER_MSGS, "round %d: stray id %u", round, id);
			CHECK(!got[id] || (flags & SHMBUS_MSG_REDELIVERED),
			      "round %d: message %u twice without the redelivered flag", round, id);
			got[id] = 1;
			n_redelivered += !!(flags & SHMBUS_MSG_REDELIVERED);
		}
		check_member(round, got);
		break;
	case R_LOCK: check_lock(round); break;
	case R_DICT: check_dict(round); break;
	}
	if (!done || pt->at != AT_STEP) {
		rounds_of[role]++;
		self_of[role] += pt->at != AT_STEP;
	}
	secs_of[role] += (test_now_ns() - t0) / 1e9;
	return done;
}

/* Drain what earlier rounds left in both groups, so "audit" sees only this
 * round's messages and "work" only this round's ids, and neither gates. */
static void drain(void)
{
	uint8_t buf[64];
	size_t len;

	while (shmbus_queue_get(S.audit, buf, sizeof(buf), &len, NULL, 0) == 0)
		;
	while (shmbus_queue_get(S.work, buf, sizeof(buf), &len, NULL, 0) == 0)
		;
}

/* Every point of one role: each step, then the self-placed ones. */
static int one_role(int *round, int role)
{
	struct point pt = { AT_STEP, 0, 0 };
	int n0 = *round, f;

	for (pt.n = 1; pt.n <= MAXSTEP; pt.n++) {
		if (role == R_PRODUCER || role == R_MEMBER)
			drain();
		if (one_round((*round)++, role, &pt))
			break;
	}
	CHECK(pt.n > 1 && pt.n <= MAXSTEP, "%s: script of %ld steps", role_name[role], pt.n - 1);
	if (role == R_WRITER || role == R_READER) {
		for (f = 1; f <= 3; f++) {
			pt.at = role == R_WRITER ? AT_FILL : AT_READ;
			pt.frac = f;
			one_round((*round)++, role, &pt);
		}
		for (f = 1; f <= 2; f++) {
			pt.at = AT_COPY;
			pt.frac = f;
			one_round((*round)++, role, &pt);
		}
	}
	return *round - n0;
}

int main(void)
{
	const char *fs = getenv("FAULT_SECONDS");
	double secs = fs ? atof(fs) : 15 * test_scale();
	shmbus_bus_opts_t o;
	shmbus_bus_info_t bi = {.size_of = sizeof(bi)};
	uint64_t start, end;
	uint32_t reaped;
	int round = 0, role, total = 0, passes = 0, distinct = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	bus_name = test_bus_name("mx");
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap");
	shmbus_bus_opts_init(&o);
	o.size = 32ull << 20;
	o.max_peers = 32;
	OK(shmbus_bus_create(bus_name, &o, &S.b));
	OK(shmbus_bus_set_liveness(S.b, LIVENESS_NS));
	S.st = open_state(S.b);
	{
		uint64_t v[WORDS] = {0};
		uint64_t i;

		for (i = 1; i < WORDS; i++)
			v[i] = word_of(0, i);
		OK(shmbus_state_write(S.st, v, sizeof(v)));
		OK(shmbus_state_release_writer(S.st));
	}
	S.audit = open_queue(S.b);
	has_queue = shmbus_queue_join(S.audit, "audit", SHMBUS_GROUP_EARLIEST) == 0;
	if (has_queue) {
		S.work = open_queue(S.b);
		S.prod = open_queue(S.b);
		OK(shmbus_queue_join(S.work, "work", SHMBUS_GROUP_EARLIEST));
	}
	has_sync = shmbus_lock_open(S.b, "lk", NULL, &S.lk) == 0 &&
	           shmbus_array_open(S.b, "a", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 2, .create = 1), &S.a) == 0 &&
	           shmbus_dict_open(S.b, "d", T_OPTS(shmbus_dict_opts_t, .create = 1, .area_bytes = 1 << 20), &S.d) == 0;
	start = test_now_ns();
	end = start + (uint64_t)(secs * 1e9);
	do {
		for (role = 0; role < NROLES; role++) {
			if ((role == R_PRODUCER || role == R_MEMBER) && !has_queue)
				continue;
			if ((role == R_LOCK || role == R_DICT) && !has_sync)
				continue;
			total += one_role(&round, role);
		}
		if (!passes++)
			for (role = 0; role < NROLES; role++)
				distinct += (int)rounds_of[role];
	} while (test_now_ns() < end);
	for (role = 0; role < NROLES; role++)
		printf("  %-13s killed at %4u points (%u placed by itself) (%.1f s)\n",
		       role_name[role], rounds_of[role], self_of[role], secs_of[role]);
	/* Nothing left behind: dead peers reaped, bus removed. */
	OK(shmbus_bus_gc(S.b, &reaped));
	OK(shmbus_bus_info(S.b, &bi));
	CHECK(bi.peers == 1 && bi.live_peers == 1, "after gc: %u peers (%u live), want only us",
	      bi.peers, bi.live_peers);
	if (S.d)
		shmbus_dict_close(S.d);
	if (S.a)
		shmbus_array_close(S.a);
	if (S.lk)
		shmbus_lock_close(S.lk);
	shmbus_queue_close(S.audit);
	shmbus_queue_close(S.work);
	shmbus_queue_close(S.prod);
	shmbus_state_close(S.st);
	OK(shmbus_bus_close(S.b));
	OK(shmbus_bus_unlink(bus_name));
	CHECK(leftover_tmp(bus_name) == 0, "files of '%s' left in /dev/shm", bus_name);
	printf("  creator: %u stale buses gc'd (%u by 'shmbus ls'/'gc'), %u names absent; locks: %u EOWNERDEAD repairs; "
	       "members: %u redeliveries\n", n_stale, n_cli_gc, n_absent, n_ownerdead, n_redelivered);
	printf("  %d kill points explored, each in %d pass%s (%d rounds, the completed scripts"
	       " included) in %.1f s; gc reaped %u dead peers; nothing left in /dev/shm\n",
	       distinct, passes, passes == 1 ? "" : "es", total, (test_now_ns() - start) / 1e9,
	       reaped);
	printf("matrix: ok\n");
	return 0;
}

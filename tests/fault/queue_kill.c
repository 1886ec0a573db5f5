/*
 * queue_kill.c -- promise 3 for queues: a process killed with SIGKILL at
 * any point does not block the others longer than the liveness timeout,
 * and no committed message is lost; redelivered messages are flagged.
 *
 * Two producers, a work group of three members ("work"), a broadcast group
 * of one member that is never killed ("bc"), and a broadcast group of one
 * member that is killed and left dead for a while ("fragile"). The parent
 * kills, round after round:
 *   - a producer between reserve and commit (it says when it holds a
 *     reservation) or at a random point: the others must go on, the dead
 *     claim is skipped once the producer is known dead;
 *   - a work member while it holds a message (peeked, not released): that
 *     message must come again to another member, flagged REDELIVERED;
 * and respawns the victim. Every message has a unique id, drawn from a
 * shared counter; a producer marks it committed once commit returned.
 * Every few rounds the "fragile" member is killed and kept dead for
 * several liveness timeouts: producers must go on past it (the ring turns
 * over), its group must keep its cursor, and the member that comes back
 * is told (SHMBUS_ELAPPED) that it was overtaken, then reads on.
 *
 * Afterwards, for "work" and "bc": every committed id was delivered, none
 * was delivered twice without the flag, none that was never produced came
 * out; "bc" saw no flag at all (nothing it held died); each id whose
 * holder was killed in "work" came again flagged. Members check every
 * checksum and that unflagged ids of one producer process increase.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"

#define MAX_MSG 128
#define SLOTS 64
#define MAX_ID (1u << 21)
#define NPROD 2
#define NWORK 3
#define LIVENESS_NS 10000000ll       /* 10 ms: a dead peer costs little */
#define TIMEOUT (20000000000ll)

enum { G_WORK, G_BC, G_FRAGILE, NGROUPS };
static const char *const gnames[NGROUPS] = {"work", "bc", "fragile"};

enum { ST_NONE, ST_RESERVED, ST_COMMITTED };

struct shared {
	atomic_int failed;
	char why[512];
	atomic_int stop;                /* producers: stop producing */
	atomic_uint next_id;
	atomic_uint inres[NPROD];       /* id+1 while a reservation is open */
	atomic_uint ready[NPROD + NWORK + 2];
	atomic_uint holding[NWORK];     /* id+1 while a member holds a message */
	atomic_ullong elapsed;          /* ELAPPED results seen by "fragile" */
	atomic_uchar state[MAX_ID];
	atomic_uchar plain[NGROUPS][MAX_ID];   /* unflagged deliveries */
	atomic_uchar flagged[NGROUPS][MAX_ID]; /* redeliveries */
	atomic_uchar must_redeliver[MAX_ID];   /* holder killed while holding */
};

static const char *bus_name;
static struct shared *sh;

#define fail_shared(...) test_fail_shared(&sh->failed, sh->why, sizeof(sh->why), __VA_ARGS__)

/* Message: id u32, producer pid u32, len u32, pad u32, sum u64, body. */
static size_t fill(uint8_t *m, uint32_t id, uint32_t pid)
{
	uint32_t len = 24 + (uint32_t)(test_hash(&id, 4) % (MAX_MSG - 24 + 1)), i, z = 0;
	uint64_t sum;

	memcpy(m, &id, 4);
	memcpy(m + 4, &pid, 4);
	memcpy(m + 8, &len, 4);
	memcpy(m + 12, &z, 4);
	memset(m + 16, 0, 8);
	for (i = 24; i < len; i++)
		m[i] = (uint8_t)(id * 13 + i);
	sum = test_hash(m, len);
	memcpy(m + 16, &sum, 8);
	return len;
}

static uint32_t check(const uint8_t *m, size_t len, const char *who, uint32_t *pid)
{
	uint8_t copy[MAX_MSG];
	uint32_t id, l;
	uint64_t sum;

	if (len < 24 || len > MAX_MSG)
		fail_shared("%s: message of %zu bytes", who, len);
	memcpy(&id, m, 4);
	memcpy(pid, m + 4, 4);
	memcpy(&l, m + 8, 4);
	memcpy(&sum, m + 16, 8);
	memcpy(copy, m, len);
	memset(copy + 16, 0, 8);
	if (l != len || id >= MAX_ID || sum != test_hash(copy, len))
		fail_shared("%s: corrupt message (len %zu, says %u, id %u)", who, len, l, id);
	return id;
}

static shmbus_queue_t *open_queue(shmbus_bus_t **b)
{
	shmbus_queue_opts_t o;
	shmbus_queue_t *q;

	shmbus_queue_opts_init(&o);
	o.slots = SLOTS;
	o.max_msg = MAX_MSG;
	if (shmbus_bus_open(bus_name, NULL, b) || shmbus_bus_set_liveness(*b, LIVENESS_NS) ||
	    shmbus_queue_open(*b, "q", &o, &q))
		fail_shared("open: %s", shmbus_last_error());
	return q;
}

static void producer(int k)
{
	uint8_t buf[MAX_MSG];
	shmbus_bus_t *b;
	shmbus_queue_t *q = open_queue(&b);
	uint32_t id, me = (uint32_t)getpid(), n = 0;
	void *ptr;
	size_t len;
	int r;

	while (!atomic_load(&sh->stop)) {
		id = atomic_fetch_add(&sh->next_id, 1);
		if (id >= MAX_ID)
			break;
		len = fill(buf, id, me);
		atomic_store(&sh->state[id], ST_RESERVED);
		if (n % 4 == 3) {
			/* Copying put: killed anywhere inside it. */
			r = shmbus_queue_put(q, buf, len, TIMEOUT);
		} else {
			r = shmbus_queue_reserve(q, MAX_MSG, &ptr, TIMEOUT);
			if (r == 0) {
				memcpy(ptr, buf, len);
				atomic_store(&sh->inres[k], id + 1);
				if (n % 8 == 0)
					usleep(300);    /* a wide window for the killer */
				r = shmbus_queue_commit(q, len);
				atomic_store(&sh->inres[k], 0);
			}
		}
		if (r == SHMBUS_ECLOSED)
			break;
		if (r)
			fail_shared("producer %d: %s: %s", k, shmbus_strerror(r), shmbus_last_error());
		atomic_store(&sh->state[id], ST_COMMITTED);
		if (++n == 16)
			atomic_store(&sh->ready[k], 1);
	}
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	_exit(0);
}

static void member(int slot, int g, int dawdle)
{
	uint32_t last[64] = {0}, lastpid[64] = {0};
	char who[32];
	shmbus_bus_t *b;
	shmbus_queue_t *q = open_queue(&b);
	shmbus_msg_t m;
	uint32_t id, pid, n = 0;
	int r, i;

	snprintf(who, sizeof(who), "%s member %d", gnames[g], slot);
	if (shmbus_queue_join(q, gnames[g], 0))
		fail_shared("%s: join: %s", who, shmbus_last_error());
	atomic_store(&sh->ready[NPROD + slot], 1);
	for (;;) {
		r = shmbus_queue_peek(q, &m, TIMEOUT);
		if (r == SHMBUS_ECLOSED)
			break;
		if (r == SHMBUS_ELAPPED && g == G_FRAGILE) {
			atomic_fetch_add(&sh->elapsed, 1);
			continue;
		}
		if (r)
			fail_shared("%s: %s: %s", who, shmbus_strerror(r), shmbus_last_error());
		id = check(m.data, m.len, who, &pid);
		if (atomic_load(&sh->state[id]) == ST_NONE)
			fail_shared("%s: id %u was never produced", who, id);
		if (m.flags & SHMBUS_MSG_REDELIVERED) {
			atomic_fetch_add(&sh->flagged[g][id], 1);
		} else {
			/* Unflagged ids of one producer process only increase. */
			for (i = 0; i < 64 && lastpid[i] && lastpid[i] != pid; i++)
				;
			if (i < 64) {
				if (lastpid[i] == pid && id <= last[i])
					fail_shared("%s: id %u of producer %u after id %u", who, id, pid,
					            last[i]);
				lastpid[i] = pid;
				last[i] = id;
			}
			atomic_fetch_add(&sh->plain[g][id], 1);
		}
		if (g == G_WORK) {
			atomic_store(&sh->holding[slot], id + 1);
			if (dawdle && ++n % 4 == 0)
				usleep(200);    /* a wide window for the killer */
			/* Cleared before the release: a kill that finds it set
			 * came before the release. */
			atomic_store(&sh->holding[slot], 0);
		}
		if (shmbus_queue_release(q))
			fail_shared("%s: release: %s", who, shmbus_last_error());
	}
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	_exit(0);
}

/* Process slots: 0..NPROD-1 producers, then the work members, then bc and
 * fragile. */
static pid_t spawn(int slot)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		if (slot < NPROD)
			producer(slot);
		else if (slot < NPROD + NWORK)
			member(slot - NPROD, G_WORK, 1);
		else
			member(slot - NPROD, slot == NPROD + NWORK ? G_BC : G_FRAGILE, 0);
	}
	return pid;
}

static void kill_reap(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid %d", (int)pid);
	CHECK(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0),
	      "victim %d had failed before the kill (status %d): %s", (int)pid, st, sh->why);
}

static void wait_ready(int slot)
{
	uint64_t t0 = test_now_ns();

	while (!atomic_load(&sh->ready[slot])) {
		CHECK(!atomic_load(&sh->failed), "a process failed: %s", sh->why);
		CHECK(test_now_ns() - t0 < 10000000000ull, "process %d never got ready", slot);
		usleep(200);
	}
}

static pid_t pids[NPROD + NWORK + 2];

static void respawn(int slot)
{
	atomic_store(&sh->ready[slot], 0);
	if (slot >= NPROD && slot < NPROD + NWORK)
		atomic_store(&sh->holding[slot - NPROD], 0);
	if (slot < NPROD)
		atomic_store(&sh->inres[slot], 0);
	pids[slot] = spawn(slot);
	wait_ready(slot);
}

/* Kill the fragile member, keep it dead while producers turn the ring
 * over, check its group kept its cursor, bring it back. */
static void fragile_round(shmbus_queue_t *q)
{
	const int slot = NPROD + NWORK + 1;
	shmbus_group_info_t gi[NGROUPS];
	shmbus_queue_info_t info;
	uint64_t cursor, head0, t0;

	kill_reap(pids[slot]);
	OK(shmbus_queue_info(q, &info, gi, NGROUPS));
	CHECK(strcmp(gi[G_FRAGILE].name, "fragile") == 0, "group order: %s", gi[G_FRAGILE].name);
	cursor = gi[G_FRAGILE].cursor;
	head0 = info.head;
	t0 = test_now_ns();
	do {
		usleep(2000);
		OK(shmbus_queue_info(q, &info, gi, NGROUPS));
		CHECK(test_now_ns() - t0 < 10000000000ull,
		      "producers stalled behind the dead member of 'fragile': head %llu, was %llu",
		      (unsigned long long)info.head, (unsigned long long)head0);
	} while (info.head < cursor + 3 * SLOTS);
	CHECK(gi[G_FRAGILE].cursor == cursor, "'fragile' kept its cursor %llu, now %llu",
	      (unsigned long long)cursor, (unsigned long long)gi[G_FRAGILE].cursor);
	respawn(slot);
}

static pid_t parent;

/* A failing check exits: the children and the bus go with it. */
static void cleanup(void)
{
	size_t i;

	if (getpid() != parent)
		return;
	for (i = 0; i < sizeof(pids) / sizeof(pids[0]); i++)
		if (pids[i] > 0 && waitpid(pids[i], NULL, WNOHANG) == 0) {
			kill(pids[i], SIGKILL);
			waitpid(pids[i], NULL, 0);
		}
	if (bus_name)
		shmbus_bus_unlink(bus_name);
}

int main(void)
{
	int rounds = (int)(300 * test_scale()), i, slot, st, redeliver_kills = 0, prod_kills = 0,
	    fragile_rounds = 0;
	shmbus_bus_opts_t bo;
	shmbus_bus_t *bus;
	shmbus_queue_t *q;
	shmbus_queue_opts_t o;
	uint64_t committed = 0, reserved_only = 0, lost = 0, dup = 0, unflagged_redeliver = 0,
	         flagged_total = 0, t0;
	uint32_t id, reaped = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	srand((unsigned)getpid());
	parent = getpid();
	atexit(cleanup);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap");
	bus_name = test_bus_name("qkill");
	shmbus_bus_opts_init(&bo);
	bo.size = 4ull << 20;
	OK(shmbus_bus_create(bus_name, &bo, &bus));
	OK(shmbus_bus_set_liveness(bus, LIVENESS_NS));
	shmbus_queue_opts_init(&o);
	o.slots = SLOTS;
	o.max_msg = MAX_MSG;
	OK(shmbus_queue_open(bus, "q", &o, &q));
	t0 = test_now_ns();
	/* Groups in a known order, before any message. */
	for (slot = NPROD; slot < NPROD + NWORK + 2; slot++)
		respawn(slot);
	for (slot = 0; slot < NPROD; slot++)
		respawn(slot);
	for (i = 0; i < rounds; i++) {
		CHECK(!atomic_load(&sh->failed), "round %d: %s", i, sh->why);
		if (i % 50 == 25) {
			fragile_round(q);
			fragile_rounds++;
			continue;
		}
		if (i % 3 == 2) {
			/* A work member holding a message. */
			int k = rand() % NWORK, tries;
			unsigned h = 0;

			slot = NPROD + k;
			for (tries = 0; tries < 2000 && !(h = atomic_load(&sh->holding[k])); tries++)
				usleep(50);
			kill_reap(pids[slot]);
			/* Still set once it is dead: it died before its release. */
			h = atomic_load(&sh->holding[k]);
			if (h) {
				atomic_store(&sh->must_redeliver[h - 1], 1);
				redeliver_kills++;
			}
		} else {
			/* A producer, mostly between reserve and commit. */
			int k = rand() % NPROD, tries;

			slot = k;
			if (i % 3 == 0)
				for (tries = 0; tries < 2000 && !atomic_load(&sh->inres[k]); tries++)
					usleep(50);
			else
				usleep((useconds_t)(rand() % 1000));
			kill_reap(pids[slot]);
			prod_kills++;
		}
		respawn(slot);
	}
	/* Stop: producers finish, the queue is shut, members drain. */
	atomic_store(&sh->stop, 1);
	for (slot = 0; slot < NPROD; slot++) {
		CHECK(waitpid(pids[slot], &st, 0) == pids[slot], "waitpid");
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "producer %d: status %d: %s", slot, st,
		      sh->why);
	}
	OK(shmbus_queue_shut(q));
	for (slot = NPROD; slot < NPROD + NWORK + 2; slot++) {
		CHECK(waitpid(pids[slot], &st, 0) == pids[slot], "waitpid");
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "member %d: status %d: %s", slot, st,
		      sh->why);
	}
	CHECK(!atomic_load(&sh->failed), "%s", sh->why);
	for (id = 0; id < atomic_load(&sh->next_id) && id < MAX_ID; id++) {
		int s = sh->state[id], g;

		committed += s == ST_COMMITTED;
		reserved_only += s == ST_RESERVED;
		for (g = 0; g < NGROUPS; g++) {
			int p = sh->plain[g][id], f = sh->flagged[g][id];

			flagged_total += (uint64_t)f;
			if (p > 1 && dup++ < 5)
				fprintf(stderr, "group %s: id %u delivered %d times unflagged\n", gnames[g],
				        id, p);
			if (g == G_FRAGILE)
				continue;
			if (s == ST_COMMITTED && p + f == 0 && lost++ < 5)
				fprintf(stderr, "group %s: committed id %u never delivered\n", gnames[g], id);
			if (g == G_BC && f)
				CHECK(0, "group bc: id %u flagged redelivered, but no bc member died", id);
			if (g == G_WORK && sh->must_redeliver[id] && f == 0 &&
			    unflagged_redeliver++ < 5)
				fprintf(stderr, "group work: id %u's holder was killed; delivered %d times, none flagged\n",
				        id, p);
		}
	}
	CHECK(lost == 0 && dup == 0 && unflagged_redeliver == 0,
	      "%llu committed messages lost, %llu unflagged duplicates, %llu redeliveries not flagged",
	      (unsigned long long)lost, (unsigned long long)dup,
	      (unsigned long long)unflagged_redeliver);
	CHECK(redeliver_kills > 0 && prod_kills > 0, "kills: %d holding, %d producers",
	      redeliver_kills, prod_kills);
	CHECK(fragile_rounds == 0 || atomic_load(&sh->elapsed) > 0,
	      "'fragile' came back overtaken %d times, was told %llu times", fragile_rounds,
	      (unsigned long long)atomic_load(&sh->elapsed));
	OK(shmbus_bus_gc(bus, &reaped));
	OK(shmbus_queue_close(q));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(bus_name));
	printf("ok queue_kill: %d rounds in %.1f s: %d producers killed, %d members killed holding a message, %d fragile rounds; %llu committed messages all delivered to work and bc, %llu in-flight at a kill, %llu flagged redeliveries\n",
	       rounds, (double)(test_now_ns() - t0) / 1e9, prod_kills, redeliver_kills,
	       fragile_rounds, (unsigned long long)committed, (unsigned long long)reserved_only,
	       (unsigned long long)flagged_total);
	printf("PASS queue_kill\n");
	return 0;
}

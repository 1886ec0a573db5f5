/*
 * sync_kill_containers.c -- promise 3 for dict and list channels: a
 * process killed with SIGKILL in the middle of a mutation leaves the
 * container consistent. Victims and one survivor hammer one dict and one
 * list: counter updates, set/overwrite/delete of self-checking values
 * (which free and reuse heap blocks and grow the table), appends, pops
 * from both ends (the front rebuilds the offset array) and element
 * updates. After every kill the parent validates both containers block by
 * block and checks every value's pattern; at the end the counters must
 * lie within [increments reported done, that + number of kills]: an
 * operation in flight at a kill is applied entirely or not at all, never
 * twice and never half. A third, tight dict (64 KiB for more than it can
 * hold) keeps its writers merging and splitting free space while they are
 * killed: it too must validate, block by block and against a walk of its
 * heap, with every value whole.
 *
 * No kill is left to timing: each victim arms the kill-point hook
 * (tests/faultinject.h) and dies just before its Nth shared-memory
 * mutation (N varies over the rounds), so every kill lands inside a
 * mutating call. Every individual kill point of each call, the heap merge
 * included, is enumerated by tests/fault/killpoints.c; this test adds the
 * concurrency (a live survivor) around kills at those points.
 */
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"
#include "container.h"
#include "testarea.h"
#include "faultinject.h"

struct shared {
	_Atomic long dict_done;    /* counter increments whose call returned */
	_Atomic long list_done;
	_Atomic long survivor_ops;
	_Atomic int stop;
};

static const char *bus_name;
static struct shared *sh;

/* A value that names its key and length, so any mix-up shows. */
static size_t make_val(char *buf, uint64_t tag, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (char)(tag * 31 + i * 7 + len);
	return len;
}

static int check_val(const char *buf, uint64_t tag, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (buf[i] != (char)(tag * 31 + i * 7 + len))
			return 0;
	return 1;
}

/* kill_at > 0 (a victim): the kill-point hook kills the worker just
 * before its kill_at-th shared-memory mutation after its first operation
 * -- always inside a mutating call, never between two. */
static void worker(int survivor, int ready_fd, int tight_only, long kill_at)
{
	shmbus_bus_t *b;
	shmbus_dict_t *d;
	shmbus_list_t *l;
	shmbus_dict_t *t;
	char key[32], val[300];
	uint64_t x = (uint64_t)(kill_at ? kill_at : getpid()) * 0x9E3779B97F4A7C15ull;

	OK(shmbus_bus_open(bus_name, NULL, &b));
	OK(shmbus_bus_set_liveness(b, 20000000));
	OK(shmbus_dict_open(b, "d", 0, 0, &d));
	OK(shmbus_list_open(b, "l", 0, 0, &l));
	OK(shmbus_dict_open(b, "t", 0, 0, &t));
	while (!atomic_load(&sh->stop)) {
		uint64_t k;
		size_t kn, vl;
		int r;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		k = x % 200;
		kn = (size_t)snprintf(key, sizeof(key), "k%llu", (unsigned long long)k);
		vl = (size_t)(x >> 40) % sizeof(val);
		if (tight_only || (x >> 60) < 5) {
			/* The tight dict: small and large values in an area that
			 * cannot hold them all, so sets keep finding it full and
			 * merging its free space (sb_box_compact) or splitting
			 * large free blocks, while victims are killed. */
			static char tv[9000];
			size_t tl = (x >> 8) & 1 ? 3000 + (size_t)(x >> 16) % 6000
			                          : 20 + (size_t)(x >> 16) % 280;

			kn = (size_t)snprintf(key, sizeof(key), "%c%llu", tl >= 3000 ? 'L' : 's',
			                      (unsigned long long)(tl >= 3000 ? k % 8 : k % 64));
			if ((x >> 56) % 3 == 0) {
				r = shmbus_dict_del(t, key, kn);
				CHECK(r == 0 || r == SHMBUS_ENOENT, "del: %d %s", r, shmbus_last_error());
			} else {
				r = shmbus_dict_set(t, key, kn, tv, make_val(tv, tl, tl));
				CHECK(r == 0 || r == SHMBUS_ENOSPC, "tight set: %d %s", r,
				      shmbus_last_error());
			}
			goto done;
		}
		switch ((x >> 32) % 8) {
		case 0:
			OK(shmbus_dict_update(d, "count", 5, test_dict_inc, NULL));
			atomic_fetch_add(&sh->dict_done, 1);
			break;
		case 1:
			OK(shmbus_list_update(l, 0, test_dict_inc, NULL));
			atomic_fetch_add(&sh->list_done, 1);
			break;
		case 2:
			OK(shmbus_dict_set(d, key, kn, val, make_val(val, k, vl)));
			break;
		case 3: {
			/* A big value: a long copy with the operation half done,
			 * where most kills of a victim land. Into the dict, or as
			 * list element 1 (only that one is ever made big). */
			static char big[200000];
			size_t bl = 100000 + (size_t)(x >> 20) % 100000;
			uint64_t len;

			if ((x >> 3) & 1) {
				kn = (size_t)snprintf(key, sizeof(key), "b%llu",
				                      (unsigned long long)(k % 4));
				OK(shmbus_dict_set(d, key, kn, big, make_val(big, 1000 + k % 4, bl)));
				break;
			}
			OK(shmbus_list_len(l, &len));
			if (len >= 2)
				OK(shmbus_list_set(l, 1, big, make_val(big, bl, bl)));
			break;
		}
		case 4:
			r = shmbus_dict_del(d, key, kn);
			CHECK(r == 0 || r == SHMBUS_ENOENT, "del: %d %s", r, shmbus_last_error());
			break;
		case 5: case 6:
			OK(shmbus_list_append(l, val, make_val(val, vl, vl)));
			break;
		default: {
			uint64_t len;

			/* Pop (never element 0, the counter) down to 200 elements. */
			OK(shmbus_list_len(l, &len));
			while (len-- > 200)
				OK(shmbus_list_pop(l, (x & 1) ? -1 : 1, NULL, 0, NULL));
		}
		}
done:
		if (survivor)
			atomic_fetch_add(&sh->survivor_ops, 1);
		if (ready_fd >= 0) {   /* started: the kill point is armed now */
			CHECK(write(ready_fd, "r", 1) == 1, "ready pipe");
			close(ready_fd);
			ready_fd = -1;
			sb_fault_arm(kill_at, SIGKILL);
		}
	}
	_exit(0);
}

/* Validate both containers and every value in them. */
/* The tight dict: valid, and every value whole (its length is its tag). */
static void check_tight(shmbus_dict_t *t, int round)
{
	static char vb[9000];
	char kb[32];
	uint64_t cur = 0;
	size_t kl, vl;
	int r;

	OK(shmbus_dict_validate(t));
	while ((r = shmbus_dict_next(t, &cur, kb, sizeof(kb) - 1, &kl, vb, sizeof(vb), &vl)) == 0)
		CHECK(check_val(vb, vl, vl), "round %d: tight value (%zu bytes) is damaged", round, vl);
	CHECK(r == SHMBUS_ENOENT, "round %d: tight iteration ended with %d", round, r);
}

static void check_all(shmbus_dict_t *d, shmbus_list_t *l, int round)
{
	char kb[32], vb[300];
	size_t kl, vl;
	uint64_t cur = 0, len, i;
	int r;

	OK(shmbus_dict_validate(d));
	OK(shmbus_list_validate(l));
	while ((r = shmbus_dict_next(d, &cur, kb, sizeof(kb) - 1, &kl, NULL, 0, &vl)) == 0) {
		if (vl <= sizeof(vb) && kl < sizeof(kb)) {
			kb[kl] = '\0';
			/* Re-read the value; a concurrent delete is not damage. */
			r = shmbus_dict_get(d, kb, kl, vb, sizeof(vb), &vl);
			if (r == SHMBUS_ENOENT)
				continue;
			OK(r);
		}
		kb[kl] = '\0';
		if (strcmp(kb, "count") == 0)
			continue;
		if (kb[0] == 'b') {
			static char big[200000];

			r = shmbus_dict_get(d, kb, kl, big, sizeof(big), &vl);
			if (r == SHMBUS_ENOENT)
				continue;
			OK(r);
			CHECK(vl >= 100000 && vl < 200000 &&
			      check_val(big, 1000 + strtoull(kb + 1, NULL, 10), vl),
			      "round %d: big value %s (%zu bytes) is damaged", round, kb, vl);
			continue;
		}
		CHECK(kb[0] == 'k' && check_val(vb, strtoull(kb + 1, NULL, 10), vl),
		      "round %d: dict value of %s (%zu bytes) is damaged", round, kb, vl);
	}
	CHECK(r == SHMBUS_ENOENT, "round %d: iteration ended with %d", round, r);
	OK(shmbus_list_len(l, &len));
	for (i = 1; i < len; i++) {
		static char big[200000];

		/* The survivor keeps popping meanwhile: the list may shrink. */
		if ((r = shmbus_list_get(l, (int64_t)i, big, sizeof(big), &vl)) == SHMBUS_ENOENT)
			break;
		OK(r);
		CHECK(check_val(big, vl, vl), "round %d: list element %llu (%zu bytes) is damaged",
		      round, (unsigned long long)i, vl);
	}
}

int main(void)
{
	int rounds = (int)(60 * test_scale()), round, status;
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;
	shmbus_dict_t *d, *t;
	shmbus_list_t *l;
	struct sb_box *tb;
	int64_t zero = 0, dc = 0, lc = 0;
	size_t n;
	pid_t surv, v;
	uint64_t t0;
	long before;
	int mid_rebuild = 0;
	shmbus_channel_info_t di, li;

	if (rounds < 30)
		rounds = 30;
	bus_name = test_bus_name("killc");
	shmbus_bus_opts_init(&o);
	o.size = 32ull << 20;
	OK(shmbus_bus_create(bus_name, &o, &b));
	OK(shmbus_bus_set_liveness(b, 20000000));
	OK(shmbus_dict_open(b, "d", 1, 4u << 20, &d));
	OK(shmbus_list_open(b, "l", 1, 4u << 20, &l));
	OK(shmbus_dict_open(b, "t", 1, 64u << 10, &t));
	tb = (struct sb_box *)test_area_of(b, "t");
	OK(shmbus_list_append(l, &zero, sizeof(zero)));
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap");
	srand((unsigned)getpid());
	fflush(stdout);
	surv = fork();
	if (surv == 0)
		worker(1, -1, 0, 0);
	for (round = 0; round < rounds; round++) {
		int fds[2];
		char c;

		CHECK(pipe(fds) == 0, "pipe");
		fflush(stdout);
		v = fork();
		if (v == 0) {
			close(fds[0]);
			/* odd rounds: the tight dict only; the kill point
			 * varies over the rounds */
			worker(0, fds[1], round % 2, 20 + (round * 97) % 600);
		}
		close(fds[1]);
		CHECK(read(fds[0], &c, 1) == 1, "round %d: the victim never started", round);
		close(fds[0]);
		/* The victim kills itself at its kill point (bounded: it
		 * mutates on every operation). */
		for (t0 = test_now_ns(); waitpid(v, &status, WNOHANG) == 0; usleep(1000))
			if (test_now_ns() - t0 > 60000000000ull) {
				kill(v, SIGKILL);
				waitpid(v, &status, 0);
				FAIL("round %d: the victim never reached its kill point", round);
			}
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "round %d: victim killed (status %d)", round, status);
		/* The victim died merging free space (unless the survivor
		 * already redid it): for the report. */
		if (__atomic_load_n(&tb->rebuilding, __ATOMIC_RELAXED))
			mid_rebuild++;
		check_all(d, l, round);
		check_tight(t, round);
	}
	before = atomic_load(&sh->survivor_ops);
	usleep(200000);
	CHECK(atomic_load(&sh->survivor_ops) > before, "the survivor stalled after the kills");
	atomic_store(&sh->stop, 1);
	CHECK(waitpid(surv, &status, 0) == surv && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "survivor exit status %d", status);
	check_all(d, l, rounds);
	check_tight(t, rounds);
	CHECK(tb->rebuilds > 0, "the tight dict never merged its free space (the test proved nothing)");
	OK(shmbus_dict_get(d, "count", 5, &dc, sizeof(dc), &n));
	OK(shmbus_list_get(l, 0, &lc, sizeof(lc), &n));
	CHECK(dc >= atomic_load(&sh->dict_done) && dc <= atomic_load(&sh->dict_done) + rounds,
	      "dict counter %lld outside [%ld, %ld]", (long long)dc, atomic_load(&sh->dict_done),
	      atomic_load(&sh->dict_done) + rounds);
	CHECK(lc >= atomic_load(&sh->list_done) && lc <= atomic_load(&sh->list_done) + rounds,
	      "list counter %lld outside [%ld, %ld]", (long long)lc, atomic_load(&sh->list_done),
	      atomic_load(&sh->list_done) + rounds);
	OK(shmbus_channel_info(b, "d", &di));
	OK(shmbus_channel_info(b, "l", &li));
	CHECK(di.flags + li.flags > 0,
	      "no kill landed in the middle of a mutation in %d rounds (the test proved nothing)",
	      rounds);
	printf("  %d mutators killed, %u dict + %u list operations rolled back; containers valid after each; counters %lld/%lld within [done, done+kills]; survivor did %ld ops\n",
	       rounds, di.flags, li.flags, (long long)dc, (long long)lc,
	       atomic_load(&sh->survivor_ops));
	printf("  tight dict (64 KiB): free space merged %llu times, %llu repairs (rollbacks and rebuilds redone), %d victims seen dead in the middle of a merge; valid and whole after each kill\n",
	       (unsigned long long)tb->rebuilds, (unsigned long long)tb->repairs, mid_rebuild);
	shmbus_list_close(l);
	shmbus_dict_close(d);
	shmbus_dict_close(t);
	shmbus_bus_close(b);
	OK(shmbus_bus_unlink(bus_name));
	printf("sync_kill_containers: ok\n");
	return 0;
}

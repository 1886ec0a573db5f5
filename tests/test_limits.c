/*
 * test_limits.c -- resource limits give a clear error or correct behaviour
 * (promise 5): /dev/shm (or a disk) full at create, too many channels,
 * heap full, peer table full, 300 buses open at once, a ring of one slot,
 * messages of exactly the maximum size, 64 consumers sharing one queue
 * group, and a 1 GiB segment.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "testutil.h"

static int child_status(pid_t pid)
{
	int status;

	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	if (WIFSIGNALED(status))
		FAIL("child killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	return WEXITSTATUS(status);
}

/* A file size limit makes the reservation at create fail, as a full
 * filesystem does: SHMBUS_ENOSPC, nothing left behind. */
static void test_full_at_create_rlimit(void)
{
	const char *name = test_bus_name("lfull");
	pid_t pid = fork();

	if (pid == 0) {
		struct rlimit rl = {8 << 20, 8 << 20};
		shmbus_bus_opts_t o;
		shmbus_bus_t *b;
		char path[128];

		signal(SIGXFSZ, SIG_IGN);
		CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0, "setrlimit");
		shmbus_bus_opts_init(&o);
		o.size = 64 << 20;
		EXPECT_CODE(shmbus_bus_create(name, &o, &b), SHMBUS_ENOSPC);
		CHECK(strstr(shmbus_last_error(), "reserving"), "message says what failed: %s",
		      shmbus_last_error());
		snprintf(path, sizeof(path), "/dev/shm/shmbus-%s", name);
		CHECK(access(path, F_OK) != 0, "no bus left after a failed create");
		o.size = 4 << 20;       /* under the limit: fine */
		OK(shmbus_bus_create(name, &o, &b));
		OK(shmbus_bus_close(b));
		OK(shmbus_bus_unlink(name));
		_exit(0);
	}
	CHECK(child_status(pid) == 0, "rlimit child failed");
	printf("  file size limit at create: ENOSPC, nothing left behind\n");
}

/* A real full filesystem: a 2 MiB tmpfs in a private mount namespace (root
 * only; skipped otherwise). */
static void test_full_tmpfs(void)
{
	char dir[64], name[128], name2[128];
	pid_t pid;

	snprintf(dir, sizeof(dir), "/tmp/shmbus-lim-%d", (int)getpid());
	if (mkdir(dir, 0700) != 0)
		FAIL("mkdir %s", dir);
	pid = fork();
	if (pid == 0) {
		shmbus_bus_opts_t o;
		shmbus_bus_t *b;

		if (unshare(CLONE_NEWNS) != 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
		    mount("tmpfs", dir, "tmpfs", 0, "size=2m") != 0)
			_exit(77);
		snprintf(name, sizeof(name), "file:%s/a.bus", dir);
		snprintf(name2, sizeof(name2), "file:%s/b.bus", dir);
		shmbus_bus_opts_init(&o);
		o.size = 1536 << 10;
		OK(shmbus_bus_create(name, &o, &b));
		OK(shmbus_bus_close(b));
		EXPECT_CODE(shmbus_bus_create(name2, &o, &b), SHMBUS_ENOSPC);
		CHECK(access(name2 + 5, F_OK) != 0, "no second bus left behind");
		OK(shmbus_bus_unlink(name));
		OK(shmbus_bus_create(name2, &o, &b));   /* room again */
		OK(shmbus_bus_close(b));
		OK(shmbus_bus_unlink(name2));
		_exit(0);
	}
	{
		int st = child_status(pid);

		rmdir(dir);
		if (st == 77) {
			printf("  (no private tmpfs here: full-filesystem case covered by the rlimit case)\n");
			return;
		}
		CHECK(st == 0, "tmpfs child failed");
	}
	printf("  full 2 MiB tmpfs: second bus ENOSPC at create, none left behind\n");
}

static void test_directory_heap_and_peer_tables_full(void)
{
	const char *name = test_bus_name("ltab");
	shmbus_bus_opts_t o;
	shmbus_state_opts_t so;
	shmbus_bus_t *b, *b2, *b3;
	shmbus_state_t *st[5];
	char cn[16];
	int i;

	shmbus_bus_opts_init(&o);
	o.size = 1 << 20;
	o.max_channels = 4;
	o.max_peers = 2;
	OK(shmbus_bus_create(name, &o, &b));
	shmbus_state_opts_init(&so);
	for (i = 0; i < 4; i++) {
		snprintf(cn, sizeof(cn), "c%d", i);
		OK(shmbus_state_open(b, cn, &so, &st[i]));
	}
	EXPECT_CODE(shmbus_state_open(b, "c4", &so, &st[4]), SHMBUS_ENOSPC);
	CHECK(strstr(shmbus_last_error(), "directory full") && strstr(shmbus_last_error(), "4"),
	      "message names the directory and its size: %s", shmbus_last_error());
	for (i = 0; i < 4; i++)
		shmbus_state_close(st[i]);
	OK(shmbus_channel_delete(b, "c3"));
	/* Heap: one channel bigger than what is left. */
	so.dtype = SHMBUS_BYTES;
	so.ndim = 1;
	so.shape[0] = 2 << 20;
	EXPECT_CODE(shmbus_state_open(b, "huge", &so, &st[0]), SHMBUS_ENOSPC);
	CHECK(strstr(shmbus_last_error(), "larger"), "message says make the bus larger: %s",
	      shmbus_last_error());
	/* Peers: two attached, a third is refused; a dead one is reaped. */
	OK(shmbus_bus_open(name, NULL, &b2));
	EXPECT_CODE(shmbus_bus_open(name, NULL, &b3), SHMBUS_ENOSPC);
	CHECK(strstr(shmbus_last_error(), "peer table full"), "%s", shmbus_last_error());
	OK(shmbus_bus_close(b2));
	{
		pid_t pid = fork();

		if (pid == 0) {
			shmbus_bus_t *bc;

			if (shmbus_bus_open(name, NULL, &bc) != 0)
				_exit(2);
			_exit(0);       /* dies attached */
		}
		CHECK(child_status(pid) == 0, "child attached");
	}
	OK(shmbus_bus_open(name, NULL, &b3));   /* reaps the dead child's slot */
	OK(shmbus_bus_close(b3));
	OK(shmbus_bus_close(b));
	OK(shmbus_bus_unlink(name));
	printf("  directory full, heap full, peer table full: ENOSPC with the limit named; dead peers reaped\n");
}

/* Defaults follow the bus: on a 1 MiB bus, a dict, a list and a queue
 * opened with every size left to its default are created (each taking
 * part of what is free) and usable, an array still fits after them, and a
 * state too large for three buffers in what is left gets two; on a bus of
 * the default size the defaults are the documented ones. */
static void test_defaults_follow_the_bus(void)
{
	const char *name = test_bus_name("ldef");
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;
	shmbus_dict_t *d;
	shmbus_list_t *l;
	shmbus_queue_t *q;
	shmbus_array_t *a;
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)};
	shmbus_bus_info_t bi = {.size_of = sizeof(bi)};
	char buf[16];
	size_t n;
	int64_t v;

	shmbus_bus_opts_init(&o);
	o.size = 1 << 20;
	OK(shmbus_bus_create(name, &o, &b));
	OK(shmbus_dict_open(b, "d", NULL, &d));
	OK(shmbus_list_open(b, "l", NULL, &l));
	OK(shmbus_queue_open(b, "q", NULL, &q));
	OK(shmbus_array_open(b, "a", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 1000, .create = 1), &a));
	/* A state of 2/5 of what is left: three buffers do not fit, two do. */
	{
		shmbus_state_t *st;
		uint8_t *sv, *back;
		uint64_t seq, sz;

		OK(shmbus_bus_info(b, &bi));
		sz = (bi.heap_size - bi.heap_used) * 2 / 5;
		sv = malloc(sz);
		back = malloc(sz);
		CHECK(sv && back, "malloc");
		OK(test_state_1d(b, "s", SHMBUS_UINT8, sz, &st));
		memset(sv, 7, sz);
		OK(shmbus_state_write(st, sv, sz));
		OK(shmbus_state_read(st, back, sz, &seq));
		CHECK(seq == 1 && back[sz - 1] == 7, "state value back: seq %llu",
		      (unsigned long long)seq);
		OK(shmbus_state_close(st));
		free(sv);
		free(back);
	}
	OK(shmbus_dict_set(d, "k", 1, "v", 1));
	OK(shmbus_dict_get(d, "k", 1, buf, sizeof(buf), &n));
	CHECK(n == 1 && buf[0] == 'v', "dict value back: %zu bytes", n);
	OK(shmbus_list_append(l, "x", 1));
	OK(shmbus_queue_put(q, "m", 1, 0));
	OK(shmbus_array_add_i64(a, 999, 5, NULL));
	OK(shmbus_array_get(a, 999, &v));
	CHECK(v == 5, "array element 999 is %lld, expected 5", (long long)v);
	OK(shmbus_channel_info(b, "q", &ci));
	CHECK(ci.capacity >= 16 && ci.capacity < 1024,
	      "default queue on a 1 MiB bus has %llu slots, expected 16..512",
	      (unsigned long long)ci.capacity);
	OK(shmbus_bus_info(b, &bi));
	CHECK(bi.heap_used <= bi.heap_size, "heap used %llu of %llu",
	      (unsigned long long)bi.heap_used, (unsigned long long)bi.heap_size);
	OK(shmbus_channel_info(b, "d", &ci));
	CHECK(ci.area_size <= bi.heap_size / 2 + 64, "default dict took %llu of a %llu-byte heap",
	      (unsigned long long)ci.area_size, (unsigned long long)bi.heap_size);
	shmbus_dict_close(d);
	shmbus_list_close(l);
	shmbus_queue_close(q);
	shmbus_array_close(a);
	OK(shmbus_bus_close(b));
	OK(shmbus_bus_unlink(name));

	OK(shmbus_bus_create(name, NULL, &b));  /* 16 MiB: the documented defaults */
	OK(shmbus_dict_open(b, "d", NULL, &d));
	OK(shmbus_queue_open(b, "q", NULL, &q));
	OK(shmbus_channel_info(b, "d", &ci));
	CHECK(ci.area_size == 1 << 20, "default dict area on a 16 MiB bus: %llu, expected 1 MiB",
	      (unsigned long long)ci.area_size);
	OK(shmbus_channel_info(b, "q", &ci));
	CHECK(ci.capacity == 1024, "default queue on a 16 MiB bus: %llu slots, expected 1024",
	      (unsigned long long)ci.capacity);
	shmbus_dict_close(d);
	shmbus_queue_close(q);
	OK(shmbus_bus_close(b));
	OK(shmbus_bus_unlink(name));
	printf("  defaults follow the bus: dict, list, queue, array and state with defaults on a 1 MiB bus\n");
}

static shmbus_queue_t *open_queue(shmbus_bus_t *b, const char *name, uint32_t slots,
                                  uint64_t max_msg, uint32_t members)
{
	shmbus_queue_opts_t qo;
	shmbus_queue_t *q;

	shmbus_queue_opts_init(&qo);
	qo.slots = slots;
	qo.max_msg = max_msg;
	qo.max_members = members;
	OK(shmbus_queue_open(b, name, &qo, &q));
	return q;
}

static void test_ring_of_one_slot(void)
{
	const char *name = test_bus_name("lone");
	shmbus_bus_t *b;
	shmbus_queue_t *p, *c;
	shmbus_queue_info_t qi = {.size_of = sizeof(qi)};
	uint32_t v, i;
	size_t len;

	OK(shmbus_bus_create(name, NULL, &b));
	p = open_queue(b, "q", 1, 8, 0);
	c = open_queue(b, "q", 0, 0, 0);
	OK(shmbus_queue_info(p, &qi, NULL, 0));
	CHECK(qi.slots == 1, "a 1-slot ring has 1 slot, got %u", qi.slots);
	OK(shmbus_queue_join(c, "g", SHMBUS_GROUP_EARLIEST));
	for (i = 0; i < 1000; i++) {
		OK(shmbus_queue_put(p, &i, sizeof(i), 0));
		EXPECT_CODE(shmbus_queue_put(p, &i, sizeof(i), 0), SHMBUS_EAGAIN);
		OK(shmbus_queue_get(c, &v, sizeof(v), &len, NULL, 0));
		CHECK(len == 4 && v == i, "message %u came back as %u (len %zu)", i, v, len);
		EXPECT_CODE(shmbus_queue_get(c, &v, sizeof(v), &len, NULL, 0), SHMBUS_EAGAIN);
	}
	shmbus_queue_close(c);
	shmbus_queue_close(p);
	OK(shmbus_bus_close(b));
	OK(shmbus_bus_unlink(name));
	printf("  ring of 1 slot: 1000 messages in order, full/empty give EAGAIN\n");
}

static void test_message_exactly_max_size(void)
{
	const char *name = test_bus_name("lmax");
	static uint8_t msg[4097], buf[4097];
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	size_t len, i;
	void *p;

	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7 + 1);
	OK(shmbus_bus_create(name, NULL, &b));
	q = open_queue(b, "q", 4, 4096, 0);
	OK(shmbus_queue_join(q, "g", SHMBUS_GROUP_EARLIEST));
	OK(shmbus_queue_put(q, msg, 4096, 0));
	EXPECT_CODE(shmbus_queue_put(q, msg, 4097, 0), SHMBUS_ETOOBIG);
	CHECK(strstr(shmbus_last_error(), "4097") && strstr(shmbus_last_error(), "4096"),
	      "message names both sizes: %s", shmbus_last_error());
	EXPECT_CODE(shmbus_queue_reserve(q, 4097, &p, 0), SHMBUS_ETOOBIG);
	OK(shmbus_queue_put(q, msg, 0, 0));     /* empty message */
	EXPECT_CODE(shmbus_queue_get(q, buf, 4095, &len, NULL, 0), SHMBUS_ETOOBIG);
	OK(shmbus_queue_get(q, buf, 4096, &len, NULL, 0));
	CHECK(len == 4096 && memcmp(buf, msg, 4096) == 0, "max-size message intact (len %zu)", len);
	OK(shmbus_queue_get(q, buf, 4096, &len, NULL, 0));
	CHECK(len == 0, "empty message has length 0, got %zu", len);
	shmbus_queue_close(q);
	OK(shmbus_bus_close(b));
	OK(shmbus_bus_unlink(name));
	printf("  message of exactly max_msg passes intact; max_msg+1 gives ETOOBIG; empty ok\n");
}

/* 64 consumer processes in one group share N messages: each exactly once. */
#define MEMBERS 64

static void test_64_consumers_one_group(void)
{
	const char *name = test_bus_name("l64");
	uint32_t n = (uint32_t)(5000 * test_scale()), i;
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;
	shmbus_queue_t *p, *extra;
	pid_t pids[MEMBERS];
	int fds[2], k, ready[2];
	uint64_t sum = 0, count = 0, want_sum = 0;
	uint8_t *seen = calloc(n, 1);

	shmbus_bus_opts_init(&o);
	o.max_peers = MEMBERS + 4;
	OK(shmbus_bus_create(name, &o, &b));
	p = open_queue(b, "q", 64, 8, MEMBERS);
	CHECK(pipe(fds) == 0 && pipe(ready) == 0, "pipe");
	for (k = 0; k < MEMBERS; k++) {
		pids[k] = fork();
		if (pids[k] == 0) {
			shmbus_bus_t *cb;
			shmbus_queue_t *c;
			uint32_t v, got[4096];
			size_t len, ng = 0;
			int r;

			close(fds[0]);
			if (shmbus_bus_open(name, NULL, &cb) != 0)
				_exit(2);
			c = open_queue(cb, "q", 0, 0, 0);
			if (shmbus_queue_join(c, "g", SHMBUS_GROUP_EARLIEST) != 0)
				_exit(3);
			if (write(ready[1], "r", 1) != 1)
				_exit(4);
			for (;;) {
				r = shmbus_queue_get(c, &v, sizeof(v), &len, NULL, 5000000000ll);
				if (r == SHMBUS_ECLOSED)
					break;
				if (r != 0 || len != 4)
					_exit(5);
				got[ng++] = v;
				if (ng == 4096) {
					if (write(fds[1], got, ng * 4) != (ssize_t)(ng * 4))
						_exit(6);
					ng = 0;
				}
			}
			if (ng && write(fds[1], got, ng * 4) != (ssize_t)(ng * 4))
				_exit(6);
			shmbus_queue_close(c);
			shmbus_bus_close(cb);
			_exit(0);
		}
	}
	close(fds[1]);
	close(ready[1]);
	for (k = 0; k < MEMBERS; k++) {
		char c;

		CHECK(read(ready[0], &c, 1) == 1, "member %d joined", k);
	}
	close(ready[0]);
	/* The 65th member of a 64-member queue is refused. */
	extra = open_queue(b, "q", 0, 0, 0);
	EXPECT_CODE(shmbus_queue_join(extra, "g", 0), SHMBUS_ENOSPC);
	shmbus_queue_close(extra);
	for (i = 0; i < n; i++) {
		OK(shmbus_queue_put(p, &i, sizeof(i), 10000000000ll));
		want_sum += i;
	}
	OK(shmbus_queue_shut(p));
	{
		uint32_t buf[1024];
		ssize_t r;

		while ((r = read(fds[0], buf, sizeof(buf))) > 0) {
			for (k = 0; k < (int)(r / 4); k++) {
				CHECK(buf[k] < n, "value %u out of range", buf[k]);
				CHECK(!seen[buf[k]], "message %u delivered twice", buf[k]);
				seen[buf[k]] = 1;
				sum += buf[k];
				count++;
			}
		}
	}
	for (k = 0; k < MEMBERS; k++)
		CHECK(child_status(pids[k]) == 0, "member %d failed", k);
	CHECK(count == n && sum == want_sum, "64 members got %llu messages (sum %llu), want %u (sum %llu)",
	      (unsigned long long)count, (unsigned long long)sum, n, (unsigned long long)want_sum);
	shmbus_queue_close(p);
	OK(shmbus_bus_close(b));
	OK(shmbus_bus_unlink(name));
	free(seen);
	printf("  64 consumer processes in one group: %u messages, each exactly once; 65th refused\n", n);
}

static void test_1gib_segment(void)
{
	const char *name = test_bus_name("l1g");
	shmbus_bus_opts_t o;
	shmbus_state_opts_t so;
	shmbus_bus_info_t bi = {.size_of = sizeof(bi)};
	shmbus_bus_t *b;
	shmbus_state_t *st;
	size_t bytes = 64u << 20, i;
	uint64_t *v = malloc(bytes), seq;

	CHECK(v, "malloc");
	shmbus_bus_opts_init(&o);
	o.size = 1ull << 30;
	{
		int r = shmbus_bus_create(name, &o, &b);

		/* A small /dev/shm (containers often have 64 MiB) cannot hold
		 * it: then the promise is a clear ENOSPC at create. */
		if (r == SHMBUS_ENOSPC) {
			CHECK(strstr(shmbus_last_error(), "reserving"), "ENOSPC says what: %s",
			      shmbus_last_error());
			printf("  1 GiB segment: /dev/shm too small here; ENOSPC at create, as promised\n");
			free(v);
			return;
		}
		OK(r);
	}
	OK(shmbus_bus_info(b, &bi));
	CHECK(bi.size == 1ull << 30, "bus is 1 GiB, got %llu", (unsigned long long)bi.size);
	shmbus_state_opts_init(&so);
	so.dtype = SHMBUS_UINT64;
	so.ndim = 2;
	so.shape[0] = 4096;
	so.shape[1] = bytes / 8 / 4096;
	so.nbuf = 3;            /* 3 x 64 MiB in the heap */
	OK(shmbus_state_open(b, "m", &so, &st));
	for (i = 0; i < bytes / 8; i++)
		v[i] = i ^ 0xabcdef;
	OK(shmbus_state_write(st, v, bytes));
	memset(v, 0, bytes);
	OK(shmbus_state_read(st, v, bytes, &seq));
	for (i = 0; i < bytes / 8; i++)
		CHECK(v[i] == (i ^ 0xabcdef), "word %zu of the 64 MiB value", i);
	/* 3 x 512 MiB would not fit in what is left. */
	so.shape[1] *= 8;
	EXPECT_CODE(shmbus_state_open(b, "m2", &so, &st), SHMBUS_ENOSPC);
	shmbus_state_close(st);
	OK(shmbus_bus_close(b));
	OK(shmbus_bus_unlink(name));
	free(v);
	printf("  1 GiB segment: 3 x 64 MiB state buffers, value intact, heap exhaustion reported\n");
}

/* Many buses open at once in one process (more than the 256 mappings the
 * truncation guard tracks): all work, all close, nothing left. */
static void test_many_buses_open(void)
{
	enum { NB = 300 };
	static shmbus_bus_t *bs[NB];
	shmbus_bus_opts_t o;
	shmbus_state_opts_t so;
	shmbus_state_t *st;
	char name[64];
	double v, back;
	uint64_t seq;
	int i;

	shmbus_bus_opts_init(&o);
	o.size = 64 << 10;
	o.max_channels = 2;
	o.max_peers = 2;
	shmbus_state_opts_init(&so);
	for (i = 0; i < NB; i++) {
		snprintf(name, sizeof(name), "t-lmany-%d-%d", (int)getpid(), i);
		OK(shmbus_bus_create(name, &o, &bs[i]));
		OK(shmbus_state_open(bs[i], "x", &so, &st));
		v = i;
		OK(shmbus_state_write(st, &v, sizeof(v)));
		OK(shmbus_state_read(st, &back, sizeof(back), &seq));
		CHECK(back == v, "bus %d read %g", i, back);
		shmbus_state_close(st);
	}
	for (i = 0; i < NB; i++) {
		snprintf(name, sizeof(name), "t-lmany-%d-%d", (int)getpid(), i);
		OK(shmbus_bus_close(bs[i]));
		OK(shmbus_bus_unlink(name));
	}
	printf("  %d buses open at once in one process: all usable, all removed\n", NB);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_full_at_create_rlimit();
	test_full_tmpfs();
	test_directory_heap_and_peer_tables_full();
	test_defaults_follow_the_bus();
	test_many_buses_open();
	test_ring_of_one_slot();
	test_message_exactly_max_size();
	test_64_consumers_one_group();
	test_1gib_segment();
	printf("test_limits: ok\n");
	return 0;
}

/*
 * test_huge_timeouts.c -- a timeout too large to add to the clock
 * (INT64_MAX ns, INT64_MAX - 1, or just enough to pass INT64_MAX) means
 * "wait as long as it takes", like SHMBUS_FOREVER: the call neither times
 * out at once nor overflows its deadline arithmetic (a signed overflow,
 * which the sanitizer build turns into a failure). Each blocking call
 * waits for a thread that supplies what it waits for after 100 ms; an
 * alarm of 60 s stops the program if a call never returns.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>

#include "testutil.h"

#define DELAY_US 100000

static const char *bus_name;
static shmbus_bus_t *bus;

static pid_t parent;

static void cleanup(void)
{
	if (bus_name && getpid() == parent)
		shmbus_bus_unlink(bus_name);
}

/* In the child. SIGALRM: a call never returned; SIGABRT: it aborted. */
static void on_fatal(int sig)
{
	static const char hang[] = "FAIL test_huge_timeouts: a call with a huge timeout never returned\n";
	static const char abrt[] = "FAIL test_huge_timeouts: aborted\n";
	ssize_t n = sig == SIGALRM ? write(2, hang, sizeof(hang) - 1) : write(2, abrt, sizeof(abrt) - 1);

	_exit(n < 0 ? 2 : 1);
}

/* What a helper thread does after DELAY_US. */
enum { DO_PUT, DO_GET, DO_STATE, DO_SEM, DO_JOIN };

struct helper {
	int what;
	pthread_t th;
};

static void *helper_main(void *arg)
{
	struct helper *h = arg;
	shmbus_queue_t *q;
	shmbus_state_t *st;
	shmbus_sem_t *s;
	uint64_t v = 42;
	size_t len;
	int r = -1;

	usleep(DELAY_US);
	switch (h->what) {
	case DO_PUT:
		if ((r = shmbus_queue_open(bus, "q", NULL, &q)) == 0) {
			r = shmbus_queue_put(q, &v, sizeof(v), 0);
			shmbus_queue_close(q);
		}
		break;
	case DO_GET:
		if ((r = shmbus_queue_open(bus, "full", NULL, &q)) == 0) {
			if ((r = shmbus_queue_join(q, "g", 0)) == 0)
				r = shmbus_queue_get(q, &v, sizeof(v), &len, NULL, 0);
			shmbus_queue_close(q);
		}
		break;
	case DO_STATE:
		if ((r = test_state_1d(bus, "s", SHMBUS_UINT64, 1, &st)) == 0) {
			r = shmbus_state_write(st, &v, sizeof(v));
			shmbus_state_close(st);
		}
		break;
	case DO_SEM:
		if ((r = shmbus_sem_open(bus, "sem", NULL, &s)) == 0) {
			r = shmbus_sem_post(s);
			shmbus_sem_close(s);
		}
		break;
	case DO_JOIN:
		if ((r = shmbus_queue_open(bus, "wg", NULL, &q)) == 0) {
			r = shmbus_queue_join(q, "late", 0);
			shmbus_queue_close(q);
		}
		break;
	}
	if (r)
		fprintf(stderr, "helper %d: %d %s\n", h->what, r, shmbus_last_error());
	return (void *)(intptr_t)r;
}

static void helper_start(struct helper *h, int what)
{
	h->what = what;
	CHECK(pthread_create(&h->th, NULL, helper_main, h) == 0, "pthread_create");
}

static void helper_join(struct helper *h)
{
	void *r;

	pthread_join(h->th, &r);
	CHECK(r == NULL, "helper %d failed", h->what);
}

/* The call returned 0, after the helper acted (not at once). */
static void check_waited(const char *what, int64_t timeout, int r, uint64_t t0)
{
	uint64_t dt = test_now_ns() - t0;

	CHECK(r == 0, "%s with timeout %lld returned %d (%s): %s", what, (long long)timeout, r,
	      shmbus_strerror(r), shmbus_last_error());
	CHECK(dt >= DELAY_US * 1000ull * 9 / 10, "%s with timeout %lld returned after %llu us, "
	      "before the helper acted", what, (long long)timeout, (unsigned long long)(dt / 1000));
}

static void one_timeout(int64_t timeout, shmbus_queue_t *cons, shmbus_queue_t *prod_full,
                        shmbus_queue_t *wg)
{
	struct helper h;
	shmbus_state_t *st;
	shmbus_sem_t *s;
	uint64_t v = 0, seq = 0, t0;
	size_t len;
	int r;

	helper_start(&h, DO_PUT);
	t0 = test_now_ns();
	r = shmbus_queue_get(cons, &v, sizeof(v), &len, NULL, timeout);
	helper_join(&h);
	check_waited("queue get on an empty queue", timeout, r, t0);
	CHECK(v == 42, "got %llu", (unsigned long long)v);

	helper_start(&h, DO_GET);
	t0 = test_now_ns();
	r = shmbus_queue_put(prod_full, &v, sizeof(v), timeout);
	helper_join(&h);
	check_waited("queue put on a full ring", timeout, r, t0);

	OK(test_state_1d(bus, "s", SHMBUS_UINT64, 1, &st));
	helper_start(&h, DO_STATE);
	t0 = test_now_ns();
	r = shmbus_state_wait(st, shmbus_state_seq(st), timeout, &seq);
	helper_join(&h);
	check_waited("state wait", timeout, r, t0);
	OK(shmbus_state_close(st));

	OK(shmbus_sem_open(bus, "sem", NULL, &s));
	helper_start(&h, DO_SEM);
	t0 = test_now_ns();
	r = shmbus_sem_wait(s, timeout);
	helper_join(&h);
	check_waited("semaphore wait", timeout, r, t0);
	OK(shmbus_sem_close(s));

	if (wg) {
		helper_start(&h, DO_JOIN);
		t0 = test_now_ns();
		r = shmbus_queue_wait_groups(wg, 1, timeout);
		helper_join(&h);
		check_waited("queue wait_groups", timeout, r, t0);
	}
}

static int run(void)
{
	shmbus_bus_opts_t bo;
	shmbus_queue_opts_t o;
	shmbus_queue_t *cons, *prod_full, *g, *wg;
	int64_t timeouts[3];
	uint64_t v = 1;
	int i;

	signal(SIGALRM, on_fatal);
	signal(SIGABRT, on_fatal);
	alarm(60);
	shmbus_bus_opts_init(&bo);
	bo.size = 1ull << 20;
	OK(shmbus_bus_create(bus_name, &bo, &bus));
	shmbus_queue_opts_init(&o);
	o.slots = 1;
	o.max_msg = 8;
	OK(shmbus_queue_open(bus, "q", &o, &cons));
	OK(shmbus_queue_join(cons, "c", 0));
	/* A one-slot ring, full: its group "g" holds the only message. */
	OK(shmbus_queue_open(bus, "full", &o, &prod_full));
	OK(shmbus_queue_open(bus, "full", &o, &g));
	OK(shmbus_queue_join(g, "g", 0));
	OK(shmbus_queue_open(bus, "wg", &o, &wg));
	timeouts[0] = INT64_MAX;
	timeouts[1] = INT64_MAX - 1;
	/* Just past what the monotonic clock can take (it reads about this
	 * value now, and more by the time the call adds it). */
	timeouts[2] = INT64_MAX - (int64_t)test_now_ns() + 1;
	OK(shmbus_queue_put(prod_full, &v, sizeof(v), 0));
	for (i = 0; i < 3; i++) {
		/* The ring is full here: each round's put fills it again. */
		one_timeout(timeouts[i], cons, prod_full, i == 0 ? wg : NULL);
		printf("ok timeout %lld ns: queue get, queue put, state wait, semaphore wait%s\n",
		       (long long)timeouts[i], i == 0 ? ", wait_groups" : "");
	}
	OK(shmbus_queue_close(wg));
	OK(shmbus_queue_close(g));
	OK(shmbus_queue_close(prod_full));
	OK(shmbus_queue_close(cons));
	OK(shmbus_bus_close(bus));
	return 0;
}

/* The calls run in a child: whatever ends it (a failed check, a hang, the
 * sanitizer runtime stopping the process at an overflow), the parent
 * removes the bus. */
int main(void)
{
	pid_t pid;
	int st;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parent = getpid();
	bus_name = test_bus_name("hugetimeout");
	atexit(cleanup);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0)
		_exit(run());
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the calls failed (status 0x%x)", st);
	OK(shmbus_bus_unlink(bus_name));
	bus_name = NULL;
	printf("PASS test_huge_timeouts\n");
	return 0;
}

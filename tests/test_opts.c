/*
 * test_opts.c -- the 1.0 API's promises about options and filled structs
 * (include/shmbus.h, "Conventions"; docs/design.md, "The 1.0 API"):
 *
 *  - every kind opens with an options struct; NULL means the defaults;
 *    create = 0 on a missing channel is SHMBUS_ENOENT, another kind's
 *    channel SHMBUS_ETYPE; a size_of below the struct, or a larger struct
 *    with a byte this library does not know set, is SHMBUS_EINVAL (zeros
 *    there are fine); each kind's own members take effect;
 *  - structs the library fills are written up to the caller's size_of and
 *    not one byte further;
 *  - the wait_policy of lock, event, semaphore and turn is honoured: a
 *    waiter woken from another process under SHMBUS_WAIT_SPIN burns CPU
 *    and never sleeps, under SHMBUS_WAIT_PARK it sleeps; a spinner still
 *    takes over from a holder that died.
 */
#include "testutil.h"

#include <sys/resource.h>
#include <sys/wait.h>

static shmbus_bus_t *bus;
static char bus_name[64];    /* children open it by this name */

/* ---- one table row per kind: open through void * options ------------ */

struct kind {
	const char *name;
	int kind;
	size_t size;               /* sizeof its options struct */
	size_t create_off;         /* offsetof(..., create) */
	long reserved_off;         /* offsetof(..., reserved_), -1: none */
	void (*init)(void *o);
	/* Open name with o (may be NULL), then close; the open's result. */
	int (*open)(const char *name, const void *o);
	/* Make o able to create the channel (array: a dtype and a length). */
	void (*creatable)(void *o);
};

#define OPENER(k, T, ...)                                                      \
	static void k##_init(void *o) { shmbus_##k##_opts_init(o); }           \
	static int k##_open(const char *name, const void *o)                   \
	{                                                                      \
		T *h;                                                          \
		int r = shmbus_##k##_open(bus, name, o, &h);                   \
		if (r == 0)                                                    \
			shmbus_##k##_close(h);                                 \
		return r;                                                      \
	}
OPENER(lock, shmbus_lock_t)
OPENER(event, shmbus_event_t)
OPENER(sem, shmbus_sem_t)
OPENER(turn, shmbus_turn_t)
OPENER(array, shmbus_array_t)
OPENER(dict, shmbus_dict_t)
OPENER(list, shmbus_list_t)
OPENER(state, shmbus_state_t)
OPENER(queue, shmbus_queue_t)

static void as_is(void *o)
{
	(void)o;
}

static void array_creatable(void *o)
{
	((shmbus_array_opts_t *)o)->length = 4;
}

#define ROW(k, K, has_res, mk)                                                  \
	{#k, K, sizeof(shmbus_##k##_opts_t), offsetof(shmbus_##k##_opts_t, create), \
	 has_res, k##_init, k##_open, mk}
static const struct kind kinds[] = {
	ROW(lock, SHMBUS_KIND_LOCK, (long)offsetof(shmbus_lock_opts_t, reserved_), as_is),
	ROW(event, SHMBUS_KIND_EVENT, (long)offsetof(shmbus_event_opts_t, reserved_), as_is),
	ROW(sem, SHMBUS_KIND_SEMAPHORE, -1, as_is),
	ROW(turn, SHMBUS_KIND_TURN, -1, as_is),
	ROW(array, SHMBUS_KIND_ARRAY, (long)offsetof(shmbus_array_opts_t, reserved_),
	    array_creatable),
	ROW(dict, SHMBUS_KIND_DICT, -1, as_is),
	ROW(list, SHMBUS_KIND_LIST, -1, as_is),
	ROW(state, SHMBUS_KIND_STATE, (long)offsetof(shmbus_state_opts_t, reserved_), as_is),
	ROW(queue, SHMBUS_KIND_QUEUE, (long)offsetof(shmbus_queue_opts_t, reserved_), as_is),
};

static int32_t get_create(const struct kind *k, const void *o)
{
	int32_t c;

	memcpy(&c, (const uint8_t *)o + k->create_off, sizeof(c));
	return c;
}

static void set_create(const struct kind *k, void *o, int32_t c)
{
	memcpy((uint8_t *)o + k->create_off, &c, sizeof(c));
}

static int channel_kind(const char *name)
{
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)};

	OK(shmbus_channel_info(bus, name, &ci));
	return ci.kind;
}

static void test_every_kind_opens_the_same_way(void)
{
	size_t i;

	/* Channels of another kind to open by mistake. */
	OK(lock_open("f-lock", NULL));
	OK(state_open("f-state", NULL));
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const struct kind *k = &kinds[i];
		const char *foreign = k->kind == SHMBUS_KIND_STATE ? "f-lock" : "f-state";
		uint8_t o[256], big[256];
		char name[64];
		uint32_t so;

		/* defaults: size_of set, create 1 */
		memset(o, 0xEE, sizeof(o));
		k->init(o);
		memcpy(&so, o, sizeof(so));
		CHECK(so == k->size, "%s: opts_init sets size_of %u, the struct has %zu", k->name,
		      so, k->size);
		CHECK(get_create(k, o) == 1, "%s: default create is %d", k->name, get_create(k, o));
		CHECK(k->reserved_off < 0 || o[k->reserved_off] == 0, "%s: reserved_ not zeroed",
		      k->name);

		/* NULL: the defaults (an array's default length 0 cannot
		 * create, it opens any existing array) */
		snprintf(name, sizeof(name), "%s-null", k->name);
		if (k->kind == SHMBUS_KIND_ARRAY) {
			EXPECT_CODE(k->open(name, NULL), SHMBUS_ENOENT);
			k->creatable(o);
			OK(k->open(name, o));
		}
		OK(k->open(name, NULL));
		CHECK(channel_kind(name) == k->kind, "%s: NULL opts made kind %d", k->name,
		      channel_kind(name));

		/* create = 0: must exist */
		k->init(o);
		k->creatable(o);
		set_create(k, o, 0);
		snprintf(name, sizeof(name), "%s-missing", k->name);
		EXPECT_CODE(k->open(name, o), SHMBUS_ENOENT);
		set_create(k, o, 2);
		EXPECT_CODE(k->open(name, o), SHMBUS_EINVAL);
		set_create(k, o, 1);
		snprintf(name, sizeof(name), "%s-made", k->name);
		OK(k->open(name, o));
		set_create(k, o, 0);
		OK(k->open(name, o));

		/* another kind's channel */
		EXPECT_CODE(k->open(foreign, o), SHMBUS_ETYPE);

		/* size_of below the struct */
		so = (uint32_t)k->size - 1;
		memcpy(o, &so, sizeof(so));
		EXPECT_CODE(k->open(name, o), SHMBUS_EINVAL);
		so = 0;
		memcpy(o, &so, sizeof(so));
		EXPECT_CODE(k->open(name, o), SHMBUS_EINVAL);

		/* a newer caller's larger struct: unknown bytes must be 0 */
		memset(big, 0, sizeof(big));
		k->init(big);
		k->creatable(big);
		so = (uint32_t)k->size + 16;
		memcpy(big, &so, sizeof(so));
		OK(k->open(name, big));
		big[k->size + 9] = 1;
		EXPECT_CODE(k->open(name, big), SHMBUS_EINVAL);
		CHECK(strstr(shmbus_last_error(), "byte") != NULL,
		      "%s: the refusal does not say which byte: '%s'", k->name,
		      shmbus_last_error());

		/* reserved_ set: a member this library does not know yet */
		if (k->reserved_off >= 0) {
			k->init(o);
			k->creatable(o);
			o[k->reserved_off] = 1;
			EXPECT_CODE(k->open(name, o), SHMBUS_EINVAL);
		}
	}
}

/* ---- each kind's own members ----------------------------------------- */

static void test_members_take_effect(void)
{
	shmbus_sem_opts_t so;
	shmbus_turn_opts_t to;
	shmbus_array_opts_t ao;
	shmbus_dict_opts_t dop;
	shmbus_list_opts_t lo;
	shmbus_channel_info_t ci = {.size_of = sizeof(ci)};
	shmbus_channel_info_t ci2 = {.size_of = sizeof(ci2)};
	shmbus_sem_t *s, *s2;
	shmbus_turn_t *t[4];
	shmbus_array_t *a, *a2;
	shmbus_dict_t *d, *d2;
	shmbus_list_t *l, *l2;
	uint32_t v, party;
	int i;

	/* sem: initial, used only when this call creates it */
	shmbus_sem_opts_init(&so);
	so.initial = 3;
	OK(shmbus_sem_open(bus, "m-sem", &so, &s));
	OK(shmbus_sem_value(s, &v));
	CHECK(v == 3, "semaphore made with initial 3 holds %u", v);
	so.initial = 7;
	OK(shmbus_sem_open(bus, "m-sem", &so, &s2));
	OK(shmbus_sem_value(s2, &v));
	CHECK(v == 3, "reopening with initial 7 changed the count to %u", v);
	shmbus_sem_close(s2);
	so.initial = UINT32_MAX;
	EXPECT_CODE(shmbus_sem_open(bus, "m-sem2", &so, &s2), SHMBUS_EINVAL);
	shmbus_sem_close(s);

	/* turn: max_parties */
	shmbus_turn_opts_init(&to);
	to.max_parties = 3;
	for (i = 0; i < 4; i++)
		OK(shmbus_turn_open(bus, "m-turn", &to, &t[i]));
	OK(shmbus_channel_info(bus, "m-turn", &ci));
	CHECK(ci.capacity == 3, "turn made with max_parties 3 has capacity %llu",
	      (unsigned long long)ci.capacity);
	for (i = 0; i < 3; i++)
		OK(shmbus_turn_register(t[i], &party));
	EXPECT_CODE(shmbus_turn_register(t[3], &party), SHMBUS_ENOSPC);
	for (i = 0; i < 4; i++)
		shmbus_turn_close(t[i]);
	to.max_parties = 4097;
	EXPECT_CODE(shmbus_turn_open(bus, "m-turn2", &to, &t[0]), SHMBUS_EINVAL);

	/* array: dtype and length; an existing one must match, unless
	 * length is 0 (create = 0 and length 0 take it as it is) */
	shmbus_array_opts_init(&ao);
	ao.dtype = SHMBUS_INT16;
	ao.length = 5;
	OK(shmbus_array_open(bus, "m-array", &ao, &a));
	CHECK(shmbus_array_dtype(a) == SHMBUS_INT16 && shmbus_array_length(a) == 5,
	      "array made int16 x 5 is dtype %d length %llu", shmbus_array_dtype(a),
	      (unsigned long long)shmbus_array_length(a));
	ao.dtype = SHMBUS_INT32;
	EXPECT_CODE(shmbus_array_open(bus, "m-array", &ao, &a2), SHMBUS_ETYPE);
	ao.dtype = SHMBUS_INT16;
	ao.length = 6;
	EXPECT_CODE(shmbus_array_open(bus, "m-array", &ao, &a2), SHMBUS_ETYPE);
	shmbus_array_opts_init(&ao);
	ao.create = 0;
	ao.length = 0;
	OK(shmbus_array_open(bus, "m-array", &ao, &a2));
	CHECK(shmbus_array_dtype(a2) == SHMBUS_INT16 && shmbus_array_length(a2) == 5,
	      "length-0 open sees dtype %d length %llu", shmbus_array_dtype(a2),
	      (unsigned long long)shmbus_array_length(a2));
	shmbus_array_close(a2);
	shmbus_array_close(a);
	shmbus_array_opts_init(&ao);
	ao.dtype = 99;
	ao.length = 2;
	EXPECT_CODE(shmbus_array_open(bus, "m-array2", &ao, &a), SHMBUS_EINVAL);

	/* dict and list: area_bytes */
	shmbus_dict_opts_init(&dop);
	dop.area_bytes = 64 << 10;
	OK(shmbus_dict_open(bus, "m-dict-s", &dop, &d));
	dop.area_bytes = 256 << 10;
	OK(shmbus_dict_open(bus, "m-dict-l", &dop, &d2));
	OK(shmbus_channel_info(bus, "m-dict-s", &ci));
	OK(shmbus_channel_info(bus, "m-dict-l", &ci2));
	CHECK(ci.area_size >= (64 << 10) && ci.area_size < (128 << 10) &&
	      ci2.area_size >= (256 << 10) && ci2.area_size < (320 << 10),
	      "dicts of 64 KiB and 256 KiB got %llu and %llu bytes",
	      (unsigned long long)ci.area_size, (unsigned long long)ci2.area_size);
	shmbus_dict_close(d);
	shmbus_dict_close(d2);
	shmbus_list_opts_init(&lo);
	lo.area_bytes = 64 << 10;
	OK(shmbus_list_open(bus, "m-list-s", &lo, &l));
	lo.area_bytes = 256 << 10;
	OK(shmbus_list_open(bus, "m-list-l", &lo, &l2));
	OK(shmbus_channel_info(bus, "m-list-s", &ci));
	OK(shmbus_channel_info(bus, "m-list-l", &ci2));
	CHECK(ci.area_size >= (64 << 10) && ci.area_size < (128 << 10) &&
	      ci2.area_size >= (256 << 10) && ci2.area_size < (320 << 10),
	      "lists of 64 KiB and 256 KiB got %llu and %llu bytes",
	      (unsigned long long)ci.area_size, (unsigned long long)ci2.area_size);
	shmbus_list_close(l);
	shmbus_list_close(l2);
}

/* ---- filled structs stop at the caller's size_of --------------------- */

#define GUARD 0xA5
#define PAD 64

static void check_guard(const uint8_t *buf, size_t from, size_t to, const char *what)
{
	size_t i;

	for (i = from; i < to; i++)
		CHECK(buf[i] == GUARD, "%s: byte %zu past the caller's struct was written (0x%02x)",
		      what, i, buf[i]);
}

static void check_zero(const uint8_t *buf, size_t from, size_t to, const char *what)
{
	size_t i;

	for (i = from; i < to; i++)
		CHECK(buf[i] == 0, "%s: byte %zu past the library's struct is 0x%02x, not 0",
		      what, i, buf[i]);
}

static uint32_t size_of_in(const void *buf)
{
	uint32_t so;

	memcpy(&so, buf, sizeof(so));
	return so;
}

static void set_size_of(void *buf, uint32_t so)
{
	memcpy(buf, &so, sizeof(so));
}

static void test_filled_structs_stop_at_size_of(void)
{
	uint8_t buf[sizeof(shmbus_channel_info_t) * 2 + PAD];
	shmbus_queue_t *q;
	shmbus_bus_info_t bi;
	shmbus_channel_info_t ci;
	shmbus_queue_info_t qi;
	uint32_t old;
	size_t n;

	/* bus info: an older struct that ends before max_channels */
	old = offsetof(shmbus_bus_info_t, max_channels);
	memset(buf, GUARD, sizeof(buf));
	set_size_of(buf, old);
	OK(shmbus_bus_info(bus, (shmbus_bus_info_t *)(void *)buf));
	check_guard(buf, old, sizeof(buf), "shmbus_bus_info");
	CHECK(size_of_in(buf) == old, "bus info: size_of %u, asked %u", size_of_in(buf), old);
	memcpy(&bi, buf, old);
	CHECK(bi.heap_size > 0 && bi.size > bi.heap_size, "bus info: size %llu heap %llu",
	      (unsigned long long)bi.size, (unsigned long long)bi.heap_size);
	/* a newer, larger struct: what the library does not know reads 0 */
	memset(buf, GUARD, sizeof(buf));
	set_size_of(buf, sizeof(bi) + 16);
	OK(shmbus_bus_info(bus, (shmbus_bus_info_t *)(void *)buf));
	CHECK(size_of_in(buf) == sizeof(bi), "bus info: size_of %u, the library's is %zu",
	      size_of_in(buf), sizeof(bi));
	check_zero(buf, sizeof(bi), sizeof(bi) + 16, "shmbus_bus_info (newer caller)");
	check_guard(buf, sizeof(bi) + 16, sizeof(buf), "shmbus_bus_info (newer caller)");
	/* no size_of: refused, nothing written past it */
	memset(buf, GUARD, sizeof(buf));
	set_size_of(buf, 0);
	EXPECT_CODE(shmbus_bus_info(bus, (shmbus_bus_info_t *)(void *)buf), SHMBUS_EINVAL);
	check_guard(buf, 4, sizeof(buf), "shmbus_bus_info (size_of 0)");

	/* channel info: an older struct that ends after the name */
	old = offsetof(shmbus_channel_info_t, dtype);
	memset(buf, GUARD, sizeof(buf));
	set_size_of(buf, old);
	OK(shmbus_channel_info(bus, "f-lock", (shmbus_channel_info_t *)(void *)buf));
	check_guard(buf, old, sizeof(buf), "shmbus_channel_info");
	memcpy(&ci, buf, old);
	CHECK(ci.kind == SHMBUS_KIND_LOCK && strcmp(ci.name, "f-lock") == 0,
	      "channel info: kind %d name '%s'", ci.kind, ci.name);

	/* channel list: infos[0].size_of is every entry's size */
	memset(buf, GUARD, sizeof(buf));
	set_size_of(buf, old);
	OK(shmbus_channel_list(bus, (shmbus_channel_info_t *)(void *)buf, 2, &n));
	CHECK(n > 2, "the bus lists %zu channels", n);
	check_guard(buf, 2 * old, sizeof(buf), "shmbus_channel_list");
	CHECK(size_of_in(buf + old) == old, "second entry: size_of %u", size_of_in(buf + old));
	memcpy(&ci, buf + old, old);
	CHECK(ci.kind > SHMBUS_KIND_NONE && ci.kind < SHMBUS_KIND_COUNT && ci.name[0],
	      "second entry, at the caller's stride: kind %d name '%.64s'", ci.kind, ci.name);

	/* queue info: an older struct that ends before head */
	OK(shmbus_queue_open(bus, "g-queue", NULL, &q));
	OK(shmbus_queue_put(q, "x", 1, 0));
	old = offsetof(shmbus_queue_info_t, head);
	memset(buf, GUARD, sizeof(buf));
	set_size_of(buf, old);
	OK(shmbus_queue_info(q, (shmbus_queue_info_t *)(void *)buf, NULL, 0));
	check_guard(buf, old, sizeof(buf), "shmbus_queue_info");
	memcpy(&qi, buf, old);
	CHECK(qi.slots > 0 && qi.max_msg == 4096, "queue info: slots %u max_msg %llu", qi.slots,
	      (unsigned long long)qi.max_msg);
	shmbus_queue_close(q);
}

/* ---- wait policies, across processes --------------------------------- */

enum { W_LOCK, W_EVENT, W_SEM, W_TURN };
static const char *const wnames[] = {"lock", "event", "semaphore", "turn"};

/* ns of CPU this process used so far. */
/* Voluntary context switches of this process so far: the kernel counts
 * one each time the process blocks (a futex wait, a sleep), never for a
 * sched_yield or a preemption -- so a waiter that never parks adds none,
 * however little CPU a loaded machine gives it. */
static int64_t sleeps_so_far(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_nvcsw;
}

static int64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ll +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ll;
}

struct wresult {
	int rc;
	int64_t cpu_ns;            /* spent inside the blocking call */
	int64_t wall_ns;
	int64_t sleeps;            /* times it blocked in the kernel meanwhile */
};

/* The child: open the channel `name` of kind w with the policy, say it is
 * about to block (one byte on ready), block (10 s at most), report. */
static void waiter(int w, const char *name, int policy, int ready, int res)
{
	struct wresult out;
	shmbus_bus_t *b;
	shmbus_lock_t *l = NULL;
	shmbus_event_t *e = NULL;
	shmbus_sem_t *s = NULL;
	shmbus_turn_t *t = NULL;
	uint64_t t0;
	int64_t c0;
	uint32_t party;
	int r;

	if (shmbus_bus_open(bus_name, NULL, &b))
		_exit(2);
	switch (w) {
	case W_LOCK: {
		shmbus_lock_opts_t o;

		shmbus_lock_opts_init(&o);
		o.create = 0;
		o.wait_policy = policy;
		r = shmbus_lock_open(b, name, &o, &l);
		break;
	}
	case W_EVENT: {
		shmbus_event_opts_t o;

		shmbus_event_opts_init(&o);
		o.create = 0;
		o.wait_policy = policy;
		r = shmbus_event_open(b, name, &o, &e);
		break;
	}
	case W_SEM: {
		shmbus_sem_opts_t o;

		shmbus_sem_opts_init(&o);
		o.create = 0;
		o.wait_policy = policy;
		r = shmbus_sem_open(b, name, &o, &s);
		break;
	}
	default: {
		shmbus_turn_opts_t o;

		shmbus_turn_opts_init(&o);
		o.create = 0;
		o.wait_policy = policy;
		r = shmbus_turn_open(b, name, &o, &t);
		if (!r)
			r = shmbus_turn_register(t, &party);
		break;
	}
	}
	if (r)
		_exit(3);
	if (write(ready, "r", 1) != 1)
		_exit(4);
	t0 = test_now_ns();
	c0 = cpu_ns();
	out.sleeps = sleeps_so_far();
	switch (w) {
	case W_LOCK:
		r = shmbus_lock_lock(l, 10000000000ll);
		break;
	case W_EVENT:
		r = shmbus_event_wait(e, 10000000000ll);
		break;
	case W_SEM:
		r = shmbus_sem_wait(s, 10000000000ll);
		break;
	default:
		r = shmbus_turn_acquire(t, 10000000000ll);
		break;
	}
	out.sleeps = sleeps_so_far() - out.sleeps;
	out.cpu_ns = cpu_ns() - c0;
	out.wall_ns = (int64_t)(test_now_ns() - t0);
	out.rc = r;
	if (write(res, &out, sizeof(out)) != (ssize_t)sizeof(out))
		_exit(5);
	if (l)
		shmbus_lock_unlock(l);
	if (t)
		shmbus_turn_release(t);
	_exit(0);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000l};

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* A waiter under policy, in another process, blocks for 600 ms and is
 * then woken by this one. Returns what it measured. */
static struct wresult wake_from_here(int w, int policy)
{
	char name[32];
	shmbus_lock_t *l = NULL;
	shmbus_event_t *e = NULL;
	shmbus_sem_t *s = NULL;
	shmbus_turn_t *t = NULL;
	struct wresult res;
	int ready[2], out[2], status;
	uint32_t party;
	pid_t pid;
	char c;

	snprintf(name, sizeof(name), "w-%s-%d", wnames[w], policy);
	switch (w) {
	case W_LOCK:
		OK(shmbus_lock_open(bus, name, NULL, &l));
		OK(shmbus_lock_lock(l, 0));
		break;
	case W_EVENT:
		OK(shmbus_event_open(bus, name, NULL, &e));
		break;
	case W_SEM:
		OK(shmbus_sem_open(bus, name, NULL, &s));
		break;
	default:
		OK(shmbus_turn_open(bus, name, NULL, &t));
		OK(shmbus_turn_register(t, &party));
		OK(shmbus_turn_acquire(t, 0));
		break;
	}
	CHECK(pipe(ready) == 0 && pipe(out) == 0, "pipe");
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0)
		waiter(w, name, policy, ready[1], out[1]);
	CHECK(read(ready[0], &c, 1) == 1, "%s waiter died before blocking", wnames[w]);
	/* Long enough for a sleeper's 250 ms slices to show, and for a
	 * spinner to have had many chances to sleep if it were going to. */
	sleep_ms(600);
	switch (w) {
	case W_LOCK:
		OK(shmbus_lock_unlock(l));
		break;
	case W_EVENT:
		OK(shmbus_event_set(e));
		break;
	case W_SEM:
		OK(shmbus_sem_post(s));
		break;
	default:
		OK(shmbus_turn_release(t));
		break;
	}
	CHECK(read(out[0], &res, sizeof(res)) == (ssize_t)sizeof(res),
	      "%s waiter under policy %d reported nothing", wnames[w], policy);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "%s waiter exited with status 0x%x", wnames[w], status);
	close(ready[0]);
	close(ready[1]);
	close(out[0]);
	close(out[1]);
	shmbus_lock_close(l);
	shmbus_event_close(e);
	shmbus_sem_close(s);
	shmbus_turn_close(t);
	return res;
}

static void test_wait_policy_is_honoured(void)
{
	/* A spinner never blocks in the kernel: no voluntary context switch
	 * while it waits (its CPU time is no test: beside two CPU burners a
	 * spinner that yields gets 1% of a CPU). A sleeper blocks, and uses
	 * little CPU: it wakes once per 250 ms slice (or per 200 ms liveness
	 * timeout) for a look, microseconds each, over its 600 ms. */
	const int64_t park_max = 30000000ll;
	int w;

	for (w = W_LOCK; w <= W_TURN; w++) {
		struct wresult spin = wake_from_here(w, SHMBUS_WAIT_SPIN);
		struct wresult park = wake_from_here(w, SHMBUS_WAIT_PARK);

		CHECK(spin.rc == 0 && park.rc == 0, "%s: woken waiters returned %d (spin), %d (park)",
		      wnames[w], spin.rc, park.rc);
		CHECK(spin.sleeps == 0,
		      "%s: under SHMBUS_WAIT_SPIN the waiter blocked %lld times in %lld ms: it slept",
		      wnames[w], (long long)spin.sleeps, (long long)spin.wall_ns / 1000000);
		CHECK(park.sleeps >= 1,
		      "%s: under SHMBUS_WAIT_PARK the waiter never blocked in %lld ms",
		      wnames[w], (long long)park.wall_ns / 1000000);
		CHECK(park.cpu_ns <= park_max,
		      "%s: under SHMBUS_WAIT_PARK the waiter used %lld ms of CPU in %lld ms: it spun",
		      wnames[w], (long long)park.cpu_ns / 1000000,
		      (long long)park.wall_ns / 1000000);
		CHECK(park.wall_ns < 5000000000ll,
		      "%s: a sleeper woken after 0.6 s returned after %lld ms", wnames[w],
		      (long long)park.wall_ns / 1000000);
	}
}

/* A spinner never parks, yet still takes over from a holder that died:
 * the lock's owner and the party whose turn it is are killed at a known
 * point (after they said they hold it), and a SHMBUS_WAIT_SPIN waiter
 * with a 10 s timeout gets the lock / the turn within 3 s (the liveness
 * timeout is 200 ms; 3 s is margin for a loaded machine). */
static pid_t holder(int k, int ready, int go)
{
	pid_t pid = fork();
	shmbus_bus_t *b;
	shmbus_lock_t *l;
	shmbus_turn_t *t;
	uint32_t party;
	char c;

	CHECK(pid >= 0, "fork");
	if (pid != 0)
		return pid;
	if (shmbus_bus_open(bus_name, NULL, &b))
		_exit(2);
	if (k == 0) {
		if (shmbus_lock_open(b, "dead-l", NULL, &l) || shmbus_lock_lock(l, 0))
			_exit(3);
	} else {
		/* party 1: registered while the parent holds party 0's turn,
		 * then waits for the turn the parent hands on */
		if (shmbus_turn_open(b, "dead-t", NULL, &t) || shmbus_turn_register(t, &party) ||
		    party != 1 || write(ready, "r", 1) != 1 || read(go, &c, 1) != 1 ||
		    shmbus_turn_acquire(t, 10000000000ll))
			_exit(3);
	}
	if (write(ready, "h", 1) != 1)
		_exit(4);
	for (;;)
		pause();
}

static void test_spinner_takes_over_from_the_dead(void)
{
	shmbus_lock_opts_t lo;
	shmbus_turn_opts_t to;
	shmbus_lock_t *l;
	shmbus_turn_t *t = NULL;
	uint64_t t0;
	uint32_t party;
	int ready[2], go[2], status, r, k;
	pid_t pid;
	char c;

	for (k = 0; k < 2; k++) {
		CHECK(pipe(ready) == 0 && pipe(go) == 0, "pipe");
		if (k == 1) {
			shmbus_turn_opts_init(&to);
			to.wait_policy = SHMBUS_WAIT_SPIN;
			OK(shmbus_turn_open(bus, "dead-t", &to, &t));
			OK(shmbus_turn_register(t, &party));
			CHECK(party == 0, "first party is %u", party);
			OK(shmbus_turn_acquire(t, 0));
		}
		pid = holder(k, ready[1], go[0]);
		if (k == 1) {
			CHECK(read(ready[0], &c, 1) == 1 && c == 'r', "party 1 did not register");
			OK(shmbus_turn_release(t));    /* the turn goes to party 1 */
			CHECK(write(go[1], "g", 1) == 1, "write");
		}
		CHECK(read(ready[0], &c, 1) == 1 && c == 'h', "the holder died before holding");
		kill(pid, SIGKILL);
		CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
		close(ready[0]);
		close(ready[1]);
		close(go[0]);
		close(go[1]);
		t0 = test_now_ns();
		if (k == 0) {
			shmbus_lock_opts_init(&lo);
			lo.wait_policy = SHMBUS_WAIT_SPIN;
			OK(shmbus_lock_open(bus, "dead-l", &lo, &l));
			r = shmbus_lock_lock(l, 10000000000ll);
			CHECK(r == SHMBUS_EOWNERDEAD, "spinning lock after its owner died: %d (%s)",
			      r, shmbus_strerror(r));
			OK(shmbus_lock_consistent(l));
			OK(shmbus_lock_unlock(l));
			shmbus_lock_close(l);
		} else {
			OK(shmbus_turn_acquire(t, 10000000000ll));
			OK(shmbus_turn_release(t));
			shmbus_turn_close(t);
		}
		CHECK(test_now_ns() - t0 < 3000000000ull,
		      "a spinning %s waited %llu ms for a dead holder", k ? "turn" : "lock",
		      (unsigned long long)(test_now_ns() - t0) / 1000000);
	}
}

int main(void)
{
	snprintf(bus_name, sizeof(bus_name), "%s", test_bus_name("opts"));
	OK(shmbus_bus_create(bus_name, NULL, &bus));
	test_every_kind_opens_the_same_way();
	test_members_take_effect();
	test_filled_structs_stop_at_size_of();
	test_wait_policy_is_honoured();
	test_spinner_takes_over_from_the_dead();
	shmbus_bus_close(bus);
	OK(shmbus_bus_unlink(bus_name));
	printf("test_opts: ok\n");
	return 0;
}

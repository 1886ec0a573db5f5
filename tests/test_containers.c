/*
 * test_containers.c -- dict and list channels in one process: every call
 * against a plain in-process model under thousands of random operations,
 * growth far past the initial capacity, update callbacks (store, delete,
 * abort, a callback that asks for a larger buffer), out-of-room errors
 * that leave the container exactly as before, threads with exact totals,
 * and hostile area contents detected as SHMBUS_ECORRUPT.
 */
#include <pthread.h>

#include "testutil.h"
#include "container.h"
#include "testarea.h"

static shmbus_bus_t *bus;

static uint8_t *area_of(const char *name)
{
	return test_area_of(bus, name);
}

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* ---- dict ----------------------------------------------------------- */

#define NKEYS 300

static void test_dict_basics(void)
{
	shmbus_dict_t *d;
	char buf[64];
	size_t n = 0;
	uint64_t len;

	OK(shmbus_dict_open(bus, "d0", NULL, &d));
	OK(shmbus_dict_len(d, &len));
	CHECK(len == 0, "empty dict len %llu", (unsigned long long)len);
	EXPECT_CODE(shmbus_dict_get(d, "a", 1, buf, sizeof(buf), &n), SHMBUS_ENOENT);
	EXPECT_CODE(shmbus_dict_del(d, "a", 1), SHMBUS_ENOENT);
	OK(shmbus_dict_set(d, "a", 1, "one", 3));
	OK(shmbus_dict_set(d, "", 0, "empty key", 9));
	OK(shmbus_dict_set(d, "b\0c", 3, "", 0));
	OK(shmbus_dict_get(d, "a", 1, buf, sizeof(buf), &n));
	CHECK(n == 3 && memcmp(buf, "one", 3) == 0, "a -> one, got %zu bytes", n);
	OK(shmbus_dict_get(d, "", 0, buf, sizeof(buf), &n));
	CHECK(n == 9, "empty key -> 9 bytes, got %zu", n);
	OK(shmbus_dict_get(d, "b\0c", 3, buf, sizeof(buf), &n));
	CHECK(n == 0, "binary key -> empty value, got %zu", n);
	EXPECT_CODE(shmbus_dict_get(d, "b", 1, buf, sizeof(buf), &n), SHMBUS_ENOENT);
	EXPECT_CODE(shmbus_dict_get(d, "a", 1, buf, 2, &n), SHMBUS_ETOOBIG);
	CHECK(n == 3, "ETOOBIG reports the length 3, got %zu", n);
	OK(shmbus_dict_set(d, "a", 1, "uno!", 4));
	OK(shmbus_dict_get(d, "a", 1, buf, sizeof(buf), &n));
	CHECK(n == 4 && memcmp(buf, "uno!", 4) == 0, "overwritten value");
	OK(shmbus_dict_len(d, &len));
	CHECK(len == 3, "len 3, got %llu", (unsigned long long)len);
	OK(shmbus_dict_del(d, "a", 1));
	EXPECT_CODE(shmbus_dict_get(d, "a", 1, buf, sizeof(buf), &n), SHMBUS_ENOENT);
	OK(shmbus_dict_validate(d));
	{
		shmbus_list_t *l;
		shmbus_dict_t *d2;

		EXPECT_CODE(shmbus_dict_open(bus, "d0-none", T_OPTS(shmbus_dict_opts_t, .create = 0), &d2), SHMBUS_ENOENT);

		EXPECT_CODE(shmbus_list_open(bus, "d0", NULL, &l), SHMBUS_ETYPE);
		EXPECT_CODE(shmbus_list_open(bus, "tiny", T_OPTS(shmbus_list_opts_t, .create = 1, .area_bytes = 100), &l), SHMBUS_EINVAL);
	}
	shmbus_dict_close(d);
	printf("  dict: set/get/del/len, empty and binary keys, ETOOBIG with length\n");
}

/* Model: value of key k is vals[k] (length lens[k], -1 when absent). */
static void test_dict_model(void)
{
	static char vals[NKEYS][80];
	static int lens[NKEYS];
	shmbus_dict_t *d;
	int ops = (int)(40000 * test_scale()), op, k, present = 0, seen;
	char key[16], buf[128], kb[32];
	size_t n, kl;
	uint64_t len, cur;

	for (k = 0; k < NKEYS; k++)
		lens[k] = -1;
	OK(shmbus_dict_open(bus, "dm", T_OPTS(shmbus_dict_opts_t, .create = 1, .area_bytes = 4u << 20), &d));
	for (op = 0; op < ops; op++) {
		uint64_t x = rnd();
		int kn;

		k = (int)(x % NKEYS);
		kn = snprintf(key, sizeof(key), "key-%d", k);
		switch ((x >> 20) % 4) {
		case 0: case 1: {
			int vl = (int)((x >> 30) % 80);
			int i;

			for (i = 0; i < vl; i++)
				vals[k][i] = (char)(x >> (i % 40));
			OK(shmbus_dict_set(d, key, (size_t)kn, vals[k], (size_t)vl));
			present += lens[k] < 0;
			lens[k] = vl;
			break;
		}
		case 2:
			if (lens[k] < 0) {
				EXPECT_CODE(shmbus_dict_del(d, key, (size_t)kn), SHMBUS_ENOENT);
			} else {
				OK(shmbus_dict_del(d, key, (size_t)kn));
				lens[k] = -1;
				present--;
			}
			break;
		default:
			if (lens[k] < 0) {
				EXPECT_CODE(shmbus_dict_get(d, key, (size_t)kn, buf, sizeof(buf), &n),
				            SHMBUS_ENOENT);
			} else {
				OK(shmbus_dict_get(d, key, (size_t)kn, buf, sizeof(buf), &n));
				CHECK((int)n == lens[k] && memcmp(buf, vals[k], n) == 0,
				      "op %d: key %d has %zu bytes, model %d", op, k, n, lens[k]);
			}
		}
		if (op % 5000 == 0)
			OK(shmbus_dict_validate(d));
	}
	OK(shmbus_dict_len(d, &len));
	CHECK(len == (uint64_t)present, "len %llu, model %d", (unsigned long long)len, present);
	/* Iteration visits every present key exactly once. */
	for (cur = 0, seen = 0;; seen++) {
		int r = shmbus_dict_next(d, &cur, kb, sizeof(kb), &kl, buf, sizeof(buf), &n);

		if (r == SHMBUS_ENOENT)
			break;
		OK(r);
		kb[kl] = '\0';
		k = atoi(kb + 4);
		CHECK(k >= 0 && k < NKEYS && lens[k] == (int)n && memcmp(buf, vals[k], n) == 0,
		      "iterated key %s with %zu bytes, model %d", kb, n, k >= 0 && k < NKEYS ? lens[k] : -9);
		lens[k] = -2 - lens[k];      /* mark seen (a second visit fails above) */
	}
	CHECK(seen == present, "iterated %d keys, model %d", seen, present);
	OK(shmbus_dict_validate(d));
	shmbus_dict_close(d);
	printf("  dict: %d random ops against a model; iteration complete; validates\n", ops);
}

static void test_dict_growth(void)
{
	shmbus_dict_t *d;
	shmbus_channel_info_t info = {.size_of = sizeof(info)};
	int i, n = (int)(20000 * test_scale());
	char key[32];
	int64_t v;
	size_t vl;
	uint64_t len;

	OK(shmbus_dict_open(bus, "dg", T_OPTS(shmbus_dict_opts_t, .create = 1, .area_bytes = n * 256ull > (8u << 20) ? n * 256ull : 8u << 20), &d));
	for (i = 0; i < n; i++) {
		int kn = snprintf(key, sizeof(key), "k%d", i);

		v = i * 7;
		OK(shmbus_dict_set(d, key, (size_t)kn, &v, sizeof(v)));
	}
	OK(shmbus_channel_info(bus, "dg", &info));
	CHECK(info.capacity >= (uint64_t)n && info.seq == (uint64_t)n,
	      "table grew to %llu slots for %llu entries", (unsigned long long)info.capacity,
	      (unsigned long long)info.seq);
	for (i = 0; i < n; i++) {
		int kn = snprintf(key, sizeof(key), "k%d", i);

		OK(shmbus_dict_get(d, key, (size_t)kn, &v, sizeof(v), &vl));
		CHECK(v == i * 7, "k%d -> %lld", i, (long long)v);
		if (i % 2)
			OK(shmbus_dict_del(d, key, (size_t)kn));
	}
	OK(shmbus_dict_len(d, &len));
	CHECK(len == (uint64_t)(n + 1) / 2, "len after deleting half: %llu",
	      (unsigned long long)len);
	OK(shmbus_dict_validate(d));
	shmbus_dict_close(d);
	printf("  dict: grew from 8 to %llu slots for %d keys\n",
	       (unsigned long long)info.capacity, n);
}

static int add_fn(const void *old, size_t oldlen, void *out, size_t cap, size_t *outlen,
                  void *arg)
{
	int64_t v = 0;

	if (old && oldlen == sizeof(v))
		memcpy(&v, old, sizeof(v));
	v += *(int64_t *)arg;
	if (cap < sizeof(v))
		return SHMBUS_ETOOBIG;
	memcpy(out, &v, sizeof(v));
	*outlen = sizeof(v);
	return v == 0 ? 1 : 0;      /* reaching zero deletes */
}

static int big_fn(const void *old, size_t oldlen, void *out, size_t cap, size_t *outlen,
                  void *arg)
{
	(void)old;
	(void)oldlen;
	(void)arg;
	*outlen = 10000;
	if (cap < 10000)
		return SHMBUS_ETOOBIG;
	memset(out, 'z', 10000);
	return 0;
}

static int fail_fn(const void *old, size_t oldlen, void *out, size_t cap, size_t *outlen,
                   void *arg)
{
	(void)old; (void)oldlen; (void)out; (void)cap; (void)outlen; (void)arg;
	return SHMBUS_EPERM;
}

static void test_dict_update(void)
{
	shmbus_dict_t *d;
	int64_t delta = 5, v;
	static char big[10000];
	size_t n;

	OK(shmbus_dict_open(bus, "du", NULL, &d));
	OK(shmbus_dict_update(d, "c", 1, add_fn, &delta));
	OK(shmbus_dict_update(d, "c", 1, add_fn, &delta));
	OK(shmbus_dict_get(d, "c", 1, &v, sizeof(v), &n));
	CHECK(v == 10, "5 + 5 = %lld", (long long)v);
	EXPECT_CODE(shmbus_dict_update(d, "c", 1, fail_fn, NULL), SHMBUS_EPERM);
	OK(shmbus_dict_get(d, "c", 1, &v, sizeof(v), &n));
	CHECK(v == 10, "aborted update left %lld", (long long)v);
	delta = -10;
	OK(shmbus_dict_update(d, "c", 1, add_fn, &delta));
	EXPECT_CODE(shmbus_dict_get(d, "c", 1, &v, sizeof(v), &n), SHMBUS_ENOENT);
	OK(shmbus_dict_update(d, "big", 3, big_fn, NULL));
	OK(shmbus_dict_get(d, "big", 3, big, sizeof(big), &n));
	CHECK(n == 10000 && big[9999] == 'z', "a callback asking for 10000 bytes got them (%zu)",
	      n);
	OK(shmbus_dict_validate(d));
	shmbus_dict_close(d);
	printf("  dict: update stores, deletes, aborts, and retries with a larger buffer\n");
}

static void test_dict_nospace(void)
{
	shmbus_dict_t *d;
	char key[32], val[200];
	int i, r = 0, kn = 0;
	uint64_t len, len2;
	size_t n;

	memset(val, 'v', sizeof(val));
	OK(shmbus_dict_open(bus, "dn", T_OPTS(shmbus_dict_opts_t, .create = 1, .area_bytes = 64u << 10), &d));
	for (i = 0; i < 100000; i++) {
		kn = snprintf(key, sizeof(key), "key%d", i);
		r = shmbus_dict_set(d, key, (size_t)kn, val, sizeof(val));
		if (r)
			break;
	}
	CHECK(r == SHMBUS_ENOSPC, "filling a 64 KiB dict ends with ENOSPC, got %d after %d keys",
	      r, i);
	CHECK(strstr(shmbus_last_error(), "area_bytes"), "message says what to do: %s",
	      shmbus_last_error());
	OK(shmbus_dict_len(d, &len));
	CHECK(len == (uint64_t)i, "the failed set left %llu keys, expected %d",
	      (unsigned long long)len, i);
	OK(shmbus_dict_validate(d));       /* rolled back: no block leaked */
	EXPECT_CODE(shmbus_dict_get(d, key, (size_t)kn, val, sizeof(val), &n), SHMBUS_ENOENT);
	/* Deleting makes room again: the freed block takes the new value. */
	OK(shmbus_dict_del(d, "key0", 4));
	OK(shmbus_dict_set(d, "key1", 4, val, sizeof(val)));
	OK(shmbus_dict_set(d, "key0", 4, val, 10));
	OK(shmbus_dict_len(d, &len2));
	CHECK(len2 == len, "len %llu after delete + set", (unsigned long long)len2);
	OK(shmbus_dict_validate(d));
	shmbus_dict_close(d);
	printf("  dict: ENOSPC after %d keys in 64 KiB, rolled back cleanly, room reused\n", i);
}

/* Space freed in small blocks serves large values and back again: runs of
 * adjacent free blocks merge (and go back to the top), and larger free
 * blocks split. Without both, the second phase below fails with ENOSPC
 * in a dict that holds nothing. */
static void test_space_comes_back(void)
{
	static char big[12000], small[200];
	shmbus_dict_t *d;
	shmbus_list_t *l;
	char key[32];
	int i, round, kn, nbig;
	uint64_t len;

	memset(big, 'B', sizeof(big));
	memset(small, 's', sizeof(small));
	OK(shmbus_dict_open(bus, "dfrag", T_OPTS(shmbus_dict_opts_t, .create = 1, .area_bytes = 256u << 10), &d));
	for (round = 0; round < 3; round++) {
		/* Small values until full, then all deleted. */
		for (i = 0;; i++) {
			kn = snprintf(key, sizeof(key), "s%d", i);
			int r = shmbus_dict_set(d, key, (size_t)kn, small, sizeof(small));

			if (r == SHMBUS_ENOSPC)
				break;
			OK(r);
		}
		CHECK(i > 500, "round %d: %d small values fit in 256 KiB", round, i);
		while (i-- > 0)
			OK(shmbus_dict_del(d, key, (size_t)snprintf(key, sizeof(key), "s%d", i)));
		OK(shmbus_dict_validate(d));
		/* Large values in the space the small ones left. */
		for (nbig = 0; nbig < 10; nbig++)
			OK(shmbus_dict_set(d, key, (size_t)snprintf(key, sizeof(key), "b%d", nbig), big,
			                   sizeof(big)));
		OK(shmbus_dict_validate(d));
		for (i = 0; i < nbig; i++)
			OK(shmbus_dict_del(d, key, (size_t)snprintf(key, sizeof(key), "b%d", i)));
		OK(shmbus_dict_len(d, &len));
		CHECK(len == 0, "emptied, %llu left", (unsigned long long)len);
	}
	shmbus_dict_close(d);
	/* A list: small elements, cleared, then large ones, popped, then small
	 * ones again (the large free blocks split). */
	OK(shmbus_list_open(bus, "lfrag", T_OPTS(shmbus_list_opts_t, .create = 1, .area_bytes = 256u << 10), &l));
	for (round = 0; round < 3; round++) {
		for (i = 0; i < 800; i++)
			OK(shmbus_list_append(l, small, sizeof(small)));
		OK(shmbus_list_clear(l));
		for (i = 0; i < 10; i++)
			OK(shmbus_list_append(l, big, sizeof(big)));
		OK(shmbus_list_validate(l));
		for (i = 0; i < 10; i++)
			OK(shmbus_list_pop(l, -1, big, sizeof(big), NULL));
		OK(shmbus_list_validate(l));
	}
	shmbus_list_close(l);
	printf("  dict and list: space freed in small blocks held large values and back, 3 rounds\n");
}

/* A rebuild of the free lists cut short (its process killed) is run again
 * by the next locker, and what it rebuilds is the truth of the heap. */
static void test_rebuild_cut_short(void)
{
	shmbus_dict_t *d;
	struct sb_box *b;
	char key[32], val[300];
	uint64_t heads[SB_BOX_CLASSES];
	size_t n;
	int i;

	memset(val, 'r', sizeof(val));
	OK(shmbus_dict_open(bus, "drb", T_OPTS(shmbus_dict_opts_t, .create = 1, .area_bytes = 128u << 10), &d));
	for (i = 0; i < 100; i++)
		OK(shmbus_dict_set(d, key, (size_t)snprintf(key, sizeof(key), "k%d", i), val,
		                   (size_t)(20 + i * 2)));
	for (i = 0; i < 100; i += 3)
		OK(shmbus_dict_del(d, key, (size_t)snprintf(key, sizeof(key), "k%d", i)));
	b = (struct sb_box *)area_of("drb");
	memcpy(heads, b->free_head, sizeof(heads));
	/* As a rebuilder killed just after it emptied the lists. */
	b->rebuilding = 1;
	memset(b->free_head, 0, sizeof(b->free_head));
	OK(shmbus_dict_validate(d));
	CHECK(b->rebuilding == 0, "the mark is down after the repair");
	for (i = 1; i < 100; i++) {
		if (i % 3 == 0)
			continue;
		OK(shmbus_dict_get(d, key, (size_t)snprintf(key, sizeof(key), "k%d", i), val,
		                   sizeof(val), &n));
		CHECK(n == (size_t)(20 + i * 2), "k%d kept its value", i);
	}
	/* Lists scrambled into a loop while the mark is up: rebuilt from the
	 * heap, not from them. */
	b->rebuilding = 1;
	for (i = 0; i < SB_BOX_CLASSES; i++)
		if (heads[i])
			b->free_head[i] = heads[i];
	OK(shmbus_dict_validate(d));
	/* A header broken while the mark is up: an error, not a crash. */
	b->rebuilding = 1;
	{
		uint64_t *tag = (uint64_t *)(void *)((uint8_t *)b + b->heap_off), save = *tag;

		*tag = 0x1234;
		EXPECT_CODE(shmbus_dict_validate(d), SHMBUS_ECORRUPT);
		*tag = save;
	}
	OK(shmbus_dict_validate(d));
	OK(shmbus_dict_set(d, "after", 5, val, sizeof(val)));
	OK(shmbus_dict_validate(d));
	shmbus_dict_close(d);
	printf("  a free-list rebuild cut short is redone by the next locker\n");
}

/* ---- list ----------------------------------------------------------- */

#define LMAX 4096

static void test_list_model(void)
{
	static char vals[LMAX][40];
	static int lens[LMAX];
	shmbus_list_t *l;
	int ops = (int)(30000 * test_scale()), op, n = 0, i;
	char buf[64];
	size_t got;
	uint64_t len;

	OK(shmbus_list_open(bus, "lm", T_OPTS(shmbus_list_opts_t, .create = 1, .area_bytes = 4u << 20), &l));
	EXPECT_CODE(shmbus_list_get(l, 0, buf, sizeof(buf), &got), SHMBUS_ENOENT);
	EXPECT_CODE(shmbus_list_pop(l, -1, NULL, 0, NULL), SHMBUS_ENOENT);
	for (op = 0; op < ops; op++) {
		uint64_t x = rnd();
		int64_t idx = n ? (int64_t)(x % (uint64_t)(2 * n)) - n : 0;
		int vl = (int)((x >> 40) % 40), k = n ? (int)(idx < 0 ? idx + n : idx) : 0;

		switch ((x >> 20) % 6) {
		case 0: case 1:         /* append or insert */
			if (n == LMAX)
				break;
			if ((x >> 24) & 1) {
				k = n;
				OK(shmbus_list_append(l, &x, (size_t)vl > 8 ? 8 : (size_t)vl));
			} else {
				OK(shmbus_list_insert(l, idx, &x, (size_t)vl > 8 ? 8 : (size_t)vl));
			}
			memmove(&vals[k + 1], &vals[k], sizeof(vals[0]) * (size_t)(n - k));
			memmove(&lens[k + 1], &lens[k], sizeof(lens[0]) * (size_t)(n - k));
			memcpy(vals[k], &x, 8);
			lens[k] = vl > 8 ? 8 : vl;
			n++;
			break;
		case 2:                 /* pop */
			if (n == 0) {
				EXPECT_CODE(shmbus_list_pop(l, idx, buf, sizeof(buf), &got), SHMBUS_ENOENT);
				break;
			}
			OK(shmbus_list_pop(l, idx, buf, sizeof(buf), &got));
			CHECK((int)got == lens[k] && memcmp(buf, vals[k], got) == 0,
			      "op %d: pop(%lld) gave %zu bytes, model %d", op, (long long)idx, got,
			      lens[k]);
			memmove(&vals[k], &vals[k + 1], sizeof(vals[0]) * (size_t)(n - k - 1));
			memmove(&lens[k], &lens[k + 1], sizeof(lens[0]) * (size_t)(n - k - 1));
			n--;
			break;
		case 3:                 /* set */
			if (n == 0)
				break;
			OK(shmbus_list_set(l, idx, &x, 8));
			memcpy(vals[k], &x, 8);
			lens[k] = 8;
			break;
		default:                /* get, and out of range */
			EXPECT_CODE(shmbus_list_get(l, n, buf, sizeof(buf), &got), SHMBUS_ENOENT);
			EXPECT_CODE(shmbus_list_get(l, -n - 1, buf, sizeof(buf), &got), SHMBUS_ENOENT);
			if (n == 0)
				break;
			OK(shmbus_list_get(l, idx, buf, sizeof(buf), &got));
			CHECK((int)got == lens[k] && memcmp(buf, vals[k], got) == 0,
			      "op %d: get(%lld) gave %zu bytes, model %d", op, (long long)idx, got,
			      lens[k]);
		}
		if (op % 5000 == 0)
			OK(shmbus_list_validate(l));
	}
	OK(shmbus_list_len(l, &len));
	CHECK(len == (uint64_t)n, "len %llu, model %d", (unsigned long long)len, n);
	for (i = 0; i < n; i++) {
		OK(shmbus_list_get(l, i, buf, sizeof(buf), &got));
		CHECK((int)got == lens[i] && memcmp(buf, vals[i], got) == 0, "element %d differs", i);
	}
	OK(shmbus_list_validate(l));
	OK(shmbus_list_clear(l));
	OK(shmbus_list_len(l, &len));
	CHECK(len == 0, "cleared list has %llu elements", (unsigned long long)len);
	OK(shmbus_list_validate(l));
	OK(shmbus_list_append(l, "after", 5));
	OK(shmbus_list_get(l, -1, buf, sizeof(buf), &got));
	CHECK(got == 5 && memcmp(buf, "after", 5) == 0, "append after clear");
	shmbus_list_close(l);
	printf("  list: %d random append/insert/pop/set/get ops against a model; clear\n", ops);
}

static void test_list_growth_and_nospace(void)
{
	shmbus_list_t *l;
	int i, r = 0, n = (int)(50000 * test_scale());
	uint64_t len, len2;
	int64_t v;
	size_t got;

	OK(shmbus_list_open(bus, "lg", T_OPTS(shmbus_list_opts_t, .create = 1, .area_bytes = n * 128ull > (8u << 20) ? n * 128ull : 8u << 20), &l));
	for (i = 0; i < n; i++) {
		v = i;
		OK(shmbus_list_append(l, &v, sizeof(v)));
	}
	for (i = 0; i < n; i += 997) {
		OK(shmbus_list_get(l, i, &v, sizeof(v), &got));
		CHECK(v == i, "element %d is %lld", i, (long long)v);
	}
	OK(shmbus_list_validate(l));
	shmbus_list_close(l);
	OK(shmbus_list_open(bus, "ln", T_OPTS(shmbus_list_opts_t, .create = 1, .area_bytes = 64u << 10), &l));
	for (i = 0; i < 100000; i++) {
		v = i;
		if ((r = shmbus_list_append(l, &v, sizeof(v))) != 0)
			break;
	}
	CHECK(r == SHMBUS_ENOSPC, "filling a 64 KiB list ends with ENOSPC, got %d", r);
	OK(shmbus_list_len(l, &len));
	CHECK(len == (uint64_t)i, "the failed append left %llu elements, expected %d",
	      (unsigned long long)len, i);
	OK(shmbus_list_validate(l));
	/* Popping near the end needs no room; the freed block takes a new
	 * append. Popping the front needs room for a new offset array. */
	OK(shmbus_list_pop(l, -1, NULL, 0, NULL));
	OK(shmbus_list_pop(l, -40, &v, sizeof(v), &got));
	CHECK(v == i - 41, "pop(-40) on a full list gave %lld, expected %d", (long long)v,
	      i - 41);
	OK(shmbus_list_len(l, &len2));
	CHECK(len2 == len - 2, "two pops on a full list: %llu", (unsigned long long)len2);
	OK(shmbus_list_get(l, -39, &v, sizeof(v), &got));
	CHECK(v == i - 40, "element after the popped one moved down: %lld", (long long)v);
	OK(shmbus_list_validate(l));
	OK(shmbus_list_append(l, &v, sizeof(v)));
	EXPECT_CODE(shmbus_list_pop(l, 0, NULL, 0, NULL), SHMBUS_ENOSPC);
	OK(shmbus_list_len(l, &len2));
	CHECK(len2 == len - 1, "the failed pop(0) removed nothing: %llu", (unsigned long long)len2);
	OK(shmbus_list_validate(l));
	shmbus_list_close(l);
	printf("  list: %d appends (grown by doubling); ENOSPC after %d in 64 KiB, rolled back\n",
	       n, i);
}

/* ---- threads -------------------------------------------------------- */

#define THREADS 4
static int titers;

static int add_f(const void *old, size_t oldlen, void *out, size_t cap, size_t *outlen,
                 void *arg)
{
	double v = 0;

	(void)cap;
	if (old && oldlen == sizeof(v))
		memcpy(&v, old, sizeof(v));
	v += *(double *)arg;
	memcpy(out, &v, sizeof(v));
	*outlen = sizeof(v);
	return 0;
}

static void *hammer(void *arg)
{
	shmbus_dict_t *d;
	shmbus_list_t *l;
	int64_t one = 1;
	double half = 0.5;
	int i;

	(void)arg;
	OK(shmbus_dict_open(bus, "th", T_OPTS(shmbus_dict_opts_t, .create = 0), &d));
	OK(shmbus_list_open(bus, "tl", T_OPTS(shmbus_list_opts_t, .create = 0), &l));
	for (i = 0; i < titers; i++) {
		OK(shmbus_dict_update(d, i & 1 ? "odd" : "even", i & 1 ? 3 : 4, add_fn, &one));
		OK(shmbus_list_update(l, i % 3, add_f, &half));
	}
	shmbus_dict_close(d);
	shmbus_list_close(l);
	return NULL;
}

static void test_threads_exact(void)
{
	shmbus_dict_t *d;
	shmbus_list_t *l;
	pthread_t th[THREADS];
	double z = 0, s = 0, f;
	int64_t a, b;
	size_t n;
	int i;

	titers = (int)(20000 * test_scale());
	OK(shmbus_dict_open(bus, "th", NULL, &d));
	OK(shmbus_list_open(bus, "tl", NULL, &l));
	for (i = 0; i < 3; i++)
		OK(shmbus_list_append(l, &z, sizeof(z)));
	for (i = 0; i < THREADS; i++)
		CHECK(pthread_create(&th[i], NULL, hammer, NULL) == 0, "create");
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	OK(shmbus_dict_get(d, "odd", 3, &a, sizeof(a), &n));
	OK(shmbus_dict_get(d, "even", 4, &b, sizeof(b), &n));
	for (i = 0; i < 3; i++) {
		OK(shmbus_list_get(l, i, &f, sizeof(f), &n));
		s += f;
	}
	CHECK(a + b == (int64_t)THREADS * titers, "dict counters %lld + %lld, expected %lld",
	      (long long)a, (long long)b, (long long)THREADS * titers);
	CHECK(s == 0.5 * THREADS * titers, "list sum %.1f, expected %.1f", s,
	      0.5 * THREADS * titers);
	OK(shmbus_dict_validate(d));
	OK(shmbus_list_validate(l));
	shmbus_dict_close(d);
	shmbus_list_close(l);
	printf("  %d threads x %d dict and list updates: exact\n", THREADS, titers);
}

/* ---- hostile contents ----------------------------------------------- */

static void test_hostile(void)
{
	shmbus_dict_t *d;
	shmbus_list_t *l;
	struct sb_box *b, saved;
	char buf[64], key[16];
	size_t n;
	uint64_t len, *slots;
	int i, r;

	OK(shmbus_dict_open(bus, "hd", NULL, &d));
	for (i = 0; i < 20; i++)
		OK(shmbus_dict_set(d, key, (size_t)snprintf(key, sizeof(key), "h%d", i), "v", 1));
	OK(shmbus_dict_del(d, "h3", 2));
	b = (struct sb_box *)area_of("hd");
	saved = *b;
	slots = (uint64_t *)(void *)((uint8_t *)b + b->root[0] + 16);
	/* Table offset outside the area. */
	b->root[0] = 1ull << 40;
	EXPECT_CODE(shmbus_dict_get(d, "h1", 2, buf, sizeof(buf), &n), SHMBUS_ECORRUPT);
	EXPECT_CODE(shmbus_dict_set(d, "h1", 2, "x", 1), SHMBUS_ECORRUPT);
	EXPECT_CODE(shmbus_dict_validate(d), SHMBUS_ECORRUPT);
	*b = saved;
	OK(shmbus_dict_validate(d));
	/* Every slot pointing into the middle of a block. */
	{
		uint64_t cap = b->root[1], keep[64];

		memcpy(keep, slots, cap * 8);
		for (i = 0; i < (int)cap; i++)
			slots[i] = b->root[0] + 48;
		r = shmbus_dict_get(d, "h1", 2, buf, sizeof(buf), &n);
		CHECK(r == SHMBUS_ECORRUPT, "slot into a block's middle: %d", r);
		/* A table with no empty slot and no match: the probe is bounded. */
		for (i = 0; i < (int)cap; i++)
			slots[i] = 1;
		EXPECT_CODE(shmbus_dict_get(d, "zz", 2, buf, sizeof(buf), &n), SHMBUS_ENOENT);
		EXPECT_CODE(shmbus_dict_validate(d), SHMBUS_ECORRUPT);
		memcpy(slots, keep, cap * 8);
	}
	/* An entry whose lengths overrun its block. */
	{
		uint64_t e = slots[0] > 1 ? slots[0] : slots[1] > 1 ? slots[1] : slots[2];
		uint32_t *kl = (uint32_t *)(void *)((uint8_t *)b + e + 16 + 8);
		uint32_t save = *kl;

		*kl = 1u << 30;
		EXPECT_CODE(shmbus_dict_validate(d), SHMBUS_ECORRUPT);
		*kl = save;
	}
	/* A free list that loops onto itself. */
	{
		int c;

		for (c = 0; c < SB_BOX_CLASSES && b->free_head[c] == 0; c++)
			;
		CHECK(c < SB_BOX_CLASSES, "a free block exists after a delete");
		*(uint64_t *)(void *)((uint8_t *)b + b->free_head[c] + 8) = b->free_head[c];
		EXPECT_CODE(shmbus_dict_validate(d), SHMBUS_ECORRUPT);
		*(uint64_t *)(void *)((uint8_t *)b + b->free_head[c] + 8) = 0;
	}
	/* A journal naming the lock word or claiming too many entries. */
	b->j[0].off = 0;
	b->j[0].old = 0x1234;
	b->jn = 1;
	EXPECT_CODE(shmbus_dict_len(d, &len), SHMBUS_ECORRUPT);
	CHECK(b->jn == 0, "bad journal discarded");
	b->jn = 1000;
	EXPECT_CODE(shmbus_dict_len(d, &len), SHMBUS_ECORRUPT);
	OK(shmbus_dict_len(d, &len));
	/* Heap top past the area. */
	b->top = b->area_size + 4096;
	EXPECT_CODE(shmbus_dict_len(d, &len), SHMBUS_ECORRUPT);
	*b = saved;
	OK(shmbus_dict_validate(d));
	shmbus_dict_close(d);

	OK(shmbus_list_open(bus, "hl", NULL, &l));
	for (i = 0; i < 10; i++)
		OK(shmbus_list_append(l, "abc", 3));
	b = (struct sb_box *)area_of("hl");
	b->root[2] = 1000;       /* length beyond capacity */
	EXPECT_CODE(shmbus_list_get(l, 500, buf, sizeof(buf), &n), SHMBUS_ECORRUPT);
	b->root[2] = 10;
	slots = (uint64_t *)(void *)((uint8_t *)b + b->root[0] + 16);
	slots[4] = 12345;       /* element offset in the middle of nowhere */
	EXPECT_CODE(shmbus_list_get(l, 4, buf, sizeof(buf), &n), SHMBUS_ECORRUPT);
	EXPECT_CODE(shmbus_list_validate(l), SHMBUS_ECORRUPT);
	OK(shmbus_list_get(l, 3, buf, sizeof(buf), &n));
	shmbus_list_close(l);
	printf("  hostile offsets, lengths, loops, journals and top give SHMBUS_ECORRUPT\n");
}

/* Random bytes anywhere past the lock line of a dict and a list area:
 * every call returns a code (usually 0 or ECORRUPT), never crashes or
 * hangs; restoring the snapshot makes them whole again. */
static void test_random_garbage(void)
{
	static uint8_t snap_d[64u << 10], snap_l[64u << 10];
	int rounds = (int)(3000 * test_scale()), round, codes[32] = {0}, i;
	shmbus_dict_t *d;
	shmbus_list_t *l;
	uint8_t *ad, *al;
	char key[16], buf[256];
	size_t n, kl;
	uint64_t len, cur;

	OK(shmbus_dict_open(bus, "gd", T_OPTS(shmbus_dict_opts_t, .create = 1, .area_bytes = sizeof(snap_d)), &d));
	OK(shmbus_list_open(bus, "gl", T_OPTS(shmbus_list_opts_t, .create = 1, .area_bytes = sizeof(snap_l)), &l));
	for (i = 0; i < 100; i++) {
		OK(shmbus_dict_set(d, key, (size_t)snprintf(key, sizeof(key), "g%d", i), key, 5));
		OK(shmbus_list_append(l, key, (size_t)(i % 9)));
	}
	OK(shmbus_dict_del(d, "g7", 2));
	OK(shmbus_list_pop(l, 3, NULL, 0, NULL));
	ad = area_of("gd");
	al = area_of("gl");
	memcpy(snap_d, ad, sizeof(snap_d));
	memcpy(snap_l, al, sizeof(snap_l));
	for (round = 0; round < rounds; round++) {
		int hits = 1 + (int)(rnd() % 8), h, r[8], k;

		for (h = 0; h < hits; h++) {
			uint8_t *a = h & 1 ? al : ad;
			/* mostly the mutable header words and the start of the heap */
			uint64_t off = 64 + rnd() % (rnd() & 1 ? 4096 : sizeof(snap_d) - 72);

			if (rnd() & 1)
				a[off] = (uint8_t)rnd();
			else
				memcpy(a + (off & ~7ull), &(uint64_t){rnd() % 70000}, 8);
		}
		k = snprintf(key, sizeof(key), "g%d", (int)(rnd() % 110));
		r[0] = shmbus_dict_get(d, key, (size_t)k, buf, sizeof(buf), &n);
		r[1] = shmbus_dict_set(d, key, (size_t)k, buf, rnd() % 64);
		r[2] = shmbus_dict_del(d, key, (size_t)k);
		cur = rnd() % 64;
		r[3] = shmbus_dict_next(d, &cur, buf, sizeof(buf), &kl, buf, sizeof(buf), &n);
		r[4] = shmbus_dict_validate(d);
		r[5] = shmbus_list_get(l, (int64_t)(rnd() % 200) - 100, buf, sizeof(buf), &n);
		r[6] = shmbus_list_insert(l, (int64_t)(rnd() % 200) - 100, buf, rnd() % 64);
		r[7] = shmbus_list_pop(l, (int64_t)(rnd() % 200) - 100, buf, sizeof(buf), &n);
		for (h = 0; h < 8; h++) {
			CHECK(r[h] <= 0 && r[h] > -32, "round %d call %d returned %d", round, h, r[h]);
			codes[-r[h]]++;
		}
		(void)shmbus_list_validate(l);
		(void)shmbus_dict_len(d, &len);
		if (round % 4 == 3) {   /* start again from the whole containers */
			memcpy(ad, snap_d, sizeof(snap_d));
			memcpy(al, snap_l, sizeof(snap_l));
		}
	}
	memcpy(ad, snap_d, sizeof(snap_d));
	memcpy(al, snap_l, sizeof(snap_l));
	OK(shmbus_dict_validate(d));
	OK(shmbus_list_validate(l));
	CHECK(codes[-SHMBUS_ECORRUPT] > 0, "no corruption was ever detected in %d rounds", rounds);
	shmbus_dict_close(d);
	shmbus_list_close(l);
	printf("  %d rounds of random bytes in dict/list areas: %d calls found ECORRUPT, %d succeeded, no crash or hang\n",
	       rounds, codes[-SHMBUS_ECORRUPT], codes[0]);
}

int main(void)
{
	const char *name = test_bus_name("cont");
	shmbus_bus_opts_t o;

	shmbus_bus_opts_init(&o);
	o.size = 64ull << 20;
	OK(shmbus_bus_create(name, &o, &bus));
	test_dict_basics();
	test_dict_model();
	test_dict_growth();
	test_dict_update();
	test_dict_nospace();
	test_list_model();
	test_list_growth_and_nospace();
	test_space_comes_back();
	test_rebuild_cut_short();
	test_threads_exact();
	test_hostile();
	test_random_garbage();
	shmbus_bus_close(bus);
	OK(shmbus_bus_unlink(name));
	printf("test_containers: ok\n");
	return 0;
}

/*
 * test_array.c -- array channels: typing and validation at open, element
 * get/set for every dtype, atomic add/exchange/compare-and-swap with
 * wrap-around at the element width, float add, bounds and type errors,
 * threads adding to shared elements with exact totals, and a hostile
 * control block refused at open.
 */
#include <pthread.h>

#include "testutil.h"
#include "internal.h"

static shmbus_bus_t *bus;

static void test_open_and_types(void)
{
	shmbus_array_t *a, *b;
	int64_t v = 0;

	OK(shmbus_array_open(bus, "a", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 1000, .create = 1), &a));
	CHECK(shmbus_array_length(a) == 1000 && shmbus_array_dtype(a) == SHMBUS_INT64,
	      "length %llu dtype %d", (unsigned long long)shmbus_array_length(a),
	      shmbus_array_dtype(a));
	OK(shmbus_array_open(bus, "a", T_OPTS(shmbus_array_opts_t, .create = 0), &b));
	CHECK(shmbus_array_length(b) == 1000, "any-type open sees length %llu",
	      (unsigned long long)shmbus_array_length(b));
	shmbus_array_close(b);
	OK(shmbus_array_open(bus, "a", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 0, .create = 1), &b));
	shmbus_array_close(b);
	/* Length 0 opens whatever array is there: the dtype is not asked. */
	OK(shmbus_array_open(bus, "a", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT32, .length = 0, .create = 0), &b));
	CHECK(shmbus_array_dtype(b) == SHMBUS_INT64, "length-0 open sees dtype %d",
	      shmbus_array_dtype(b));
	shmbus_array_close(b);
	EXPECT_CODE(shmbus_array_open(bus, "a", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT32, .length = 1000, .create = 1), &b), SHMBUS_ETYPE);
	EXPECT_CODE(shmbus_array_open(bus, "a", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 999, .create = 1), &b), SHMBUS_ETYPE);
	EXPECT_CODE(shmbus_array_open(bus, "none", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 0, .create = 1), &b), SHMBUS_ENOENT);
	EXPECT_CODE(shmbus_array_open(bus, "none", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 10, .create = 0), &b), SHMBUS_ENOENT);
	EXPECT_CODE(shmbus_array_open(bus, "bad", T_OPTS(shmbus_array_opts_t, .dtype = 99, .length = 10, .create = 1), &b), SHMBUS_EINVAL);
	EXPECT_CODE(shmbus_array_open(bus, "huge", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 1ull << 40, .create = 1), &b),
	            SHMBUS_ETOOBIG);
	EXPECT_CODE(shmbus_array_open(bus, "big", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 1ull << 22, .create = 1), &b),
	            SHMBUS_ENOSPC);
	EXPECT_CODE(shmbus_array_get(a, 1000, &v), SHMBUS_EINVAL);
	CHECK(strstr(shmbus_last_error(), "1000"), "message names the index: %s",
	      shmbus_last_error());
	EXPECT_CODE(shmbus_array_set(a, (uint64_t)-1, &v), SHMBUS_EINVAL);
	EXPECT_CODE(shmbus_array_add_i64(a, 1000, 1, NULL), SHMBUS_EINVAL);
	EXPECT_CODE(shmbus_array_add_f64(a, 0, 1.0, NULL), SHMBUS_ETYPE);
	shmbus_array_close(a);
	OK(shmbus_array_open(bus, "f", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_FLOAT64, .length = 4, .create = 1), &a));
	EXPECT_CODE(shmbus_array_add_i64(a, 0, 1, NULL), SHMBUS_ETYPE);
	EXPECT_CODE(shmbus_array_cas_i64(a, 0, &v, 1), SHMBUS_ETYPE);
	shmbus_array_close(a);
	printf("  open/typing/bounds/type errors\n");
}

static void test_every_dtype(void)
{
	static const int dts[] = {SHMBUS_BYTES, SHMBUS_INT8, SHMBUS_UINT8, SHMBUS_INT16,
	                          SHMBUS_UINT16, SHMBUS_INT32, SHMBUS_UINT32, SHMBUS_INT64,
	                          SHMBUS_UINT64, SHMBUS_FLOAT32, SHMBUS_FLOAT64, SHMBUS_BOOL};
	size_t k;

	for (k = 0; k < sizeof(dts) / sizeof(dts[0]); k++) {
		char name[32];
		shmbus_array_t *a;
		uint8_t in[8], out[8];
		size_t es = shmbus_dtype_size(dts[k]), j;
		uint64_t i;

		snprintf(name, sizeof(name), "dt%zu", k);
		OK(shmbus_array_open(bus, name, T_OPTS(shmbus_array_opts_t, .dtype = dts[k], .length = 17, .create = 1), &a));
		for (i = 0; i < 17; i++) {
			for (j = 0; j < es; j++)
				in[j] = (uint8_t)(i * 31 + j * 7 + 1);
			if (dts[k] == SHMBUS_BOOL)
				in[0] = (uint8_t)(i & 1);
			OK(shmbus_array_set(a, i, in));
			memset(out, 0, sizeof(out));
			OK(shmbus_array_get(a, i, out));
			CHECK(memcmp(in, out, es) == 0, "%s[%llu] round trip",
			      shmbus_dtype_name(dts[k]), (unsigned long long)i);
			CHECK(memcmp((uint8_t *)shmbus_array_data(a) + i * es, in, es) == 0,
			      "%s[%llu] visible through data()", shmbus_dtype_name(dts[k]),
			      (unsigned long long)i);
		}
		shmbus_array_close(a);
	}
	printf("  get/set round trip and data() view for all %zu dtypes\n", k);
}

static void test_atomics(void)
{
	shmbus_array_t *a;
	int64_t old, exp;
	double dold;

	OK(shmbus_array_open(bus, "i8", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT8, .length = 2, .create = 1), &a));
	OK(shmbus_array_add_i64(a, 0, 127, &old));
	OK(shmbus_array_add_i64(a, 0, 1, &old));
	CHECK(old == 127, "int8 old 127, got %lld", (long long)old);
	OK(shmbus_array_add_i64(a, 0, 0, &old));
	CHECK(old == -128, "int8 wraps to -128, got %lld", (long long)old);
	shmbus_array_close(a);
	OK(shmbus_array_open(bus, "u8", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_UINT8, .length = 2, .create = 1), &a));
	OK(shmbus_array_add_i64(a, 1, 255, NULL));
	OK(shmbus_array_add_i64(a, 1, 1, &old));
	CHECK(old == 255, "uint8 old zero-extended 255, got %lld", (long long)old);
	OK(shmbus_array_add_i64(a, 1, 0, &old));
	CHECK(old == 0, "uint8 wraps to 0, got %lld", (long long)old);
	shmbus_array_close(a);
	OK(shmbus_array_open(bus, "i32", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT32, .length = 3, .create = 1), &a));
	OK(shmbus_array_xchg_i64(a, 2, -5, &old));
	CHECK(old == 0, "xchg old 0, got %lld", (long long)old);
	exp = 7;
	EXPECT_CODE(shmbus_array_cas_i64(a, 2, &exp, 9), SHMBUS_EAGAIN);
	CHECK(exp == -5, "failed cas reports -5, got %lld", (long long)exp);
	OK(shmbus_array_cas_i64(a, 2, &exp, 9));
	OK(shmbus_array_add_i64(a, 2, -10, &old));
	CHECK(old == 9, "value after cas 9, got %lld", (long long)old);
	OK(shmbus_array_add_i64(a, 2, 0, &old));
	CHECK(old == -1, "9 - 10 = -1, got %lld", (long long)old);
	shmbus_array_close(a);
	OK(shmbus_array_open(bus, "f32", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_FLOAT32, .length = 1, .create = 1), &a));
	OK(shmbus_array_add_f64(a, 0, 1.5, &dold));
	OK(shmbus_array_add_f64(a, 0, 0.25, &dold));
	CHECK(dold == 1.5, "float32 old 1.5, got %g", dold);
	shmbus_array_close(a);
	printf("  add/xchg/cas with wrap-around and sign/zero extension; float add\n");
}

#define THREADS 4
static int iters;

static void *adder(void *arg)
{
	shmbus_array_t *ai, *af;
	int i;

	(void)arg;
	OK(shmbus_array_open(bus, "hot", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 16, .create = 0), &ai));
	OK(shmbus_array_open(bus, "hotf", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_FLOAT64, .length = 16, .create = 0), &af));
	for (i = 0; i < iters; i++) {
		int64_t e, cur;

		OK(shmbus_array_add_i64(ai, (uint64_t)i % 8, 1, NULL));
		OK(shmbus_array_add_f64(af, (uint64_t)i % 8, 0.5, NULL));
		/* a CAS increment loop on element 15 */
		OK(shmbus_array_get(ai, 15, &cur));
		for (e = cur; shmbus_array_cas_i64(ai, 15, &e, e + 1) != 0;)
			;
	}
	shmbus_array_close(ai);
	shmbus_array_close(af);
	return NULL;
}

static void test_threads_exact(void)
{
	shmbus_array_t *ai, *af;
	pthread_t th[THREADS];
	int64_t sum = 0, v;
	double fsum = 0, f;
	uint64_t i;
	int k;

	iters = (int)(100000 * test_scale());
	OK(shmbus_array_open(bus, "hot", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 16, .create = 1), &ai));
	OK(shmbus_array_open(bus, "hotf", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_FLOAT64, .length = 16, .create = 1), &af));
	for (k = 0; k < THREADS; k++)
		CHECK(pthread_create(&th[k], NULL, adder, NULL) == 0, "create");
	for (k = 0; k < THREADS; k++)
		pthread_join(th[k], NULL);
	for (i = 0; i < 8; i++) {
		OK(shmbus_array_get(ai, i, &v));
		OK(shmbus_array_get(af, i, &f));
		sum += v;
		fsum += f;
	}
	OK(shmbus_array_get(ai, 15, &v));
	CHECK(sum == (int64_t)THREADS * iters, "int adds: %lld, expected %lld", (long long)sum,
	      (long long)THREADS * iters);
	CHECK(fsum == 0.5 * THREADS * iters, "float adds: %.1f, expected %.1f", fsum,
	      0.5 * THREADS * iters);
	CHECK(v == (int64_t)THREADS * iters, "cas increments: %lld, expected %lld",
	      (long long)v, (long long)THREADS * iters);
	shmbus_array_close(ai);
	shmbus_array_close(af);
	printf("  %d threads x %d add_i64 + add_f64 + cas loops: exact\n", THREADS, iters);
}

static void test_hostile(void)
{
	shmbus_array_t *a;
	uint32_t i;

	OK(shmbus_array_open(bus, "victim", T_OPTS(shmbus_array_opts_t, .dtype = SHMBUS_INT64, .length = 8, .create = 1), &a));
	shmbus_array_close(a);
	for (i = 0; i < bus->max_channels; i++)
		if (bus->dir[i].state == SB_DIR_READY && strcmp(bus->dir[i].name, "victim") == 0)
			*(uint64_t *)(bus->base + bus->dir[i].off + 8) = 1ull << 50; /* length */
	EXPECT_CODE(shmbus_array_open(bus, "victim", T_OPTS(shmbus_array_opts_t, .create = 0), &a), SHMBUS_ECORRUPT);
	printf("  a control block disagreeing with the directory is refused\n");
}

int main(void)
{
	const char *name = test_bus_name("array");

	OK(shmbus_bus_create(name, NULL, &bus));
	test_open_and_types();
	test_every_dtype();
	test_atomics();
	test_threads_exact();
	test_hostile();
	shmbus_bus_close(bus);
	OK(shmbus_bus_unlink(name));
	printf("test_array: ok\n");
	return 0;
}

/*
 * test_state.c -- state channels in one process: types and shapes are
 * validated, a name reused with another type is refused, values round-trip
 * with increasing sequence numbers, zero-copy read and write, waiting with
 * each policy and its timeout, the single-writer rule, and a threaded
 * torn-read check (run under ThreadSanitizer too).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "testutil.h"

static shmbus_bus_t *bus;
static char busname[64];

static shmbus_state_t *open_f64(const char *name, uint32_t n)
{
	shmbus_state_t *st;

	OK(test_state_1d(bus, name, SHMBUS_FLOAT64, n, &st));
	return st;
}

static void test_roundtrip_and_seq(void)
{
	shmbus_state_t *w = open_f64("y", 3), *r = open_f64("y", 3);
	double v[3] = {1, 2, 3}, out[3];
	uint64_t seq;
	int i;

	EXPECT_CODE(shmbus_state_read(r, out, sizeof(out), &seq), SHMBUS_ENODATA);
	CHECK(shmbus_state_seq(r) == 0, "seq 0 before any write");
	for (i = 1; i <= 10; i++) {
		v[0] = i;
		OK(shmbus_state_write(w, v, sizeof(v)));
		OK(shmbus_state_read(r, out, sizeof(out), &seq));
		CHECK(seq == (uint64_t)i, "seq %llu after write %d", (unsigned long long)seq, i);
		CHECK(out[0] == i && out[1] == 2 && out[2] == 3, "value %g %g %g", out[0], out[1], out[2]);
	}
	CHECK(shmbus_state_size(r) == 24, "size 24, got %zu", shmbus_state_size(r));
	EXPECT_CODE(shmbus_state_write(w, v, 16), SHMBUS_EINVAL);
	CHECK(strstr(shmbus_last_error(), "24-byte"), "names the size: %s", shmbus_last_error());
	EXPECT_CODE(shmbus_state_read(r, out, 8, &seq), SHMBUS_ETOOBIG);
	OK(shmbus_state_close(w));
	OK(shmbus_state_close(r));
}

static void test_type_mismatch_and_validation(void)
{
	shmbus_state_opts_t o;
	shmbus_state_t *st;
	shmbus_channel_info_t info = {.size_of = sizeof(info)};

	shmbus_state_t *a = open_f64("m", 4);
	shmbus_state_opts_init(&o);
	o.dtype = SHMBUS_INT32;
	o.ndim = 1;
	o.shape[0] = 4;
	EXPECT_CODE(shmbus_state_open(bus, "m", &o, &st), SHMBUS_ETYPE);
	CHECK(strstr(shmbus_last_error(), "float64") && strstr(shmbus_last_error(), "int32"),
	      "message names both types: %s", shmbus_last_error());
	o.dtype = SHMBUS_FLOAT64;
	o.shape[0] = 5;
	EXPECT_CODE(shmbus_state_open(bus, "m", &o, &st), SHMBUS_ETYPE);
	/* Any type accepted when only opening. */
	shmbus_state_opts_init(&o);
	o.create = 0;
	OK(shmbus_state_open(bus, "m", &o, &st));
	CHECK(shmbus_state_size(st) == 32, "opened existing, size %zu", shmbus_state_size(st));
	OK(shmbus_state_info(st, &info));
	CHECK(info.kind == SHMBUS_KIND_STATE && info.ndim == 1 && info.shape[0] == 4 &&
	      info.dtype == SHMBUS_FLOAT64, "info matches");
	OK(shmbus_state_close(st));
	EXPECT_CODE(shmbus_state_open(bus, "absent", &o, &st), SHMBUS_ENOENT);
	/* Bad names, dtypes, shapes. */
	shmbus_state_opts_init(&o);
	EXPECT_CODE(shmbus_state_open(bus, "bad name", &o, &st), SHMBUS_EINVAL);
	EXPECT_CODE(shmbus_state_open(bus, "", &o, &st), SHMBUS_EINVAL);
	o.dtype = 99;
	EXPECT_CODE(shmbus_state_open(bus, "d", &o, &st), SHMBUS_EINVAL);
	o.dtype = SHMBUS_INT8;
	o.ndim = 5;
	EXPECT_CODE(shmbus_state_open(bus, "d", &o, &st), SHMBUS_EINVAL);
	o.ndim = 2;
	o.shape[0] = 3;
	o.shape[1] = 0;
	EXPECT_CODE(shmbus_state_open(bus, "d", &o, &st), SHMBUS_EINVAL);
	CHECK(strstr(shmbus_last_error(), "dimension 1"), "%s", shmbus_last_error());
	o.shape[1] = 1ull << 62;
	EXPECT_CODE(shmbus_state_open(bus, "d", &o, &st), SHMBUS_ETOOBIG);
	/* Out of heap: 16 MiB bus, 3 buffers of 8 MiB. */
	o.dtype = SHMBUS_UINT8;
	o.ndim = 1;
	o.shape[0] = 8u << 20;
	EXPECT_CODE(shmbus_state_open(bus, "huge", &o, &st), SHMBUS_ENOSPC);
	CHECK(strstr(shmbus_last_error(), "huge"), "%s", shmbus_last_error());
	o.shape[0] = 8;
	o.nbuf = 9;
	EXPECT_CODE(shmbus_state_open(bus, "nb", &o, &st), SHMBUS_EINVAL);
	OK(shmbus_state_close(a));
	CHECK(shmbus_dtype_parse("f8") == SHMBUS_FLOAT64, "alias f8");
	EXPECT_CODE(shmbus_dtype_parse("complex"), SHMBUS_EINVAL);
}

static void test_zero_copy(void)
{
	shmbus_state_t *w = open_f64("z", 2), *r = open_f64("z", 2);
	const void *p;
	void *wp;
	uint64_t seq;
	double v[2] = {7, 8};

	EXPECT_CODE(shmbus_state_write_commit(w), SHMBUS_ESTATE);
	OK(shmbus_state_write_begin(w, &wp));
	memcpy(wp, v, sizeof(v));
	EXPECT_CODE(shmbus_state_write(w, v, sizeof(v)), SHMBUS_ESTATE);
	CHECK(shmbus_state_seq(r) == 0, "nothing published before commit");
	OK(shmbus_state_write_commit(w));
	OK(shmbus_state_read_begin(r, &p, &seq));
	CHECK(seq == 1 && ((const double *)p)[1] == 8, "zero-copy read sees the value");
	OK(shmbus_state_read_validate(r, seq));
	/* Lap the reader: nbuf=3, so three more writes reuse its buffer. */
	OK(shmbus_state_write(w, v, sizeof(v)));
	OK(shmbus_state_write(w, v, sizeof(v)));
	OK(shmbus_state_write(w, v, sizeof(v)));
	EXPECT_CODE(shmbus_state_read_validate(r, seq), SHMBUS_EAGAIN);
	OK(shmbus_state_close(w));
	OK(shmbus_state_close(r));
}

static void test_single_writer(void)
{
	shmbus_state_t *w = open_f64("sw", 1);
	double v = 1;
	int status;
	pid_t pid;

	OK(shmbus_state_write(w, &v, sizeof(v)));
	pid = fork();
	if (pid == 0) {
		shmbus_bus_t *b2;
		shmbus_state_t *w2;
		shmbus_state_opts_t o;
		int r;

		if (shmbus_bus_open(busname, NULL, &b2))
			_exit(10);
		/* the child must not reuse the parent's handles */
		shmbus_state_opts_init(&o);
		o.create = 0;
		if (shmbus_state_open(b2, "sw", &o, &w2))
			_exit(11);
		r = shmbus_state_write(w2, &v, sizeof(v));
		_exit(r == SHMBUS_EBUSY ? 0 : 12);
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "second writer refused with EBUSY (child status %d)", status);
	/* Once released, another process can take over. */
	OK(shmbus_state_release_writer(w));
	pid = fork();
	if (pid == 0) {
		shmbus_bus_t *b2;
		shmbus_state_t *w2;
		shmbus_state_opts_t o;

		if (shmbus_bus_open(busname, NULL, &b2))
			_exit(10);
		shmbus_state_opts_init(&o);
		o.create = 0;
		if (shmbus_state_open(b2, "sw", &o, &w2))
			_exit(11);
		v = 42;
		_exit(shmbus_state_write(w2, &v, sizeof(v)) == 0 ? 0 : 12);
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "a new writer takes over after release (status %d)", status);
	OK(shmbus_state_read(w, &v, sizeof(v), NULL));
	CHECK(v == 42, "value from the new writer, got %g", v);
	/* The child exited holding the role: a write here reclaims it. */
	OK(shmbus_state_write(w, &v, sizeof(v)));
	OK(shmbus_state_close(w));
}

static void test_wait_policies(void)
{
	shmbus_state_t *w = open_f64("wt", 1), *r = open_f64("wt", 1);
	int policies[3] = {SHMBUS_WAIT_SPIN_PARK, SHMBUS_WAIT_SPIN, SHMBUS_WAIT_PARK};
	uint64_t seq, t0;
	double v = 0;
	int i;

	for (i = 0; i < 3; i++) {
		uint64_t before = shmbus_state_seq(r);
		pid_t pid;
		int status;

		OK(shmbus_state_set_wait(r, policies[i], 1000000));
		t0 = test_now_ns();
		EXPECT_CODE(shmbus_state_wait(r, before, 20000000, &seq), SHMBUS_ETIMEDOUT);
		CHECK(test_now_ns() - t0 >= 19000000, "policy %d waited the whole timeout", policies[i]);
		EXPECT_CODE(shmbus_state_wait(r, before, 0, &seq), SHMBUS_ETIMEDOUT);
		/* The writer must be another process for a real wake-up. */
		OK(shmbus_state_release_writer(w));
		pid = fork();
		if (pid == 0) {
			shmbus_bus_t *b2;
			shmbus_state_t *w2;
			shmbus_state_opts_t o;

			usleep(30000);
			if (shmbus_bus_open(busname, NULL, &b2))
				_exit(10);
			shmbus_state_opts_init(&o);
			o.create = 0;
			if (shmbus_state_open(b2, "wt", &o, &w2))
				_exit(11);
			v = i + 100;
			_exit(shmbus_state_write(w2, &v, sizeof(v)) == 0 ? 0 : 12);
		}
		OK(shmbus_state_wait(r, before, 5000000000ll, &seq));
		CHECK(seq == before + 1, "woken with seq %llu, expected %llu",
		      (unsigned long long)seq, (unsigned long long)(before + 1));
		OK(shmbus_state_read(r, &v, sizeof(v), &seq));
		CHECK(v == i + 100, "woken reader sees the new value %g", v);
		CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "writer child status %d", status);
	}
	EXPECT_CODE(shmbus_state_set_wait(r, 7, 0), SHMBUS_EINVAL);
	OK(shmbus_state_close(w));
	OK(shmbus_state_close(r));
}

/* Threads: one writer, readers verify each value is whole. TSan runs it. */
#define TW 64
static shmbus_state_t *tw_writer;
static atomic_int tw_stop;
static atomic_ulong tw_reads;

static void *tw_read(void *arg)
{
	shmbus_state_t *r = arg;
	uint64_t buf[TW], seq, last = 0;

	while (!atomic_load(&tw_stop)) {
		int k;

		if (shmbus_state_read(r, buf, sizeof(buf), &seq) != 0)
			continue;
		for (k = 1; k < TW; k++)
			if (buf[k] != buf[0] + (uint64_t)k)
				FAIL("torn value at seq %llu: word %d is %llu, word 0 is %llu",
				     (unsigned long long)seq, k, (unsigned long long)buf[k],
				     (unsigned long long)buf[0]);
		CHECK(seq >= last, "seq went back: %llu after %llu", (unsigned long long)seq,
		      (unsigned long long)last);
		last = seq;
		atomic_fetch_add(&tw_reads, 1);
	}
	return NULL;
}

static void test_threads_no_torn_read(void)
{
	shmbus_state_opts_t o;
	shmbus_state_t *r[2];
	pthread_t th[2];
	uint64_t buf[TW];
	uint64_t i, n = (uint64_t)(200000 * test_scale()), t0;
	int k;

	shmbus_state_opts_init(&o);
	o.dtype = SHMBUS_UINT64;
	o.ndim = 1;
	o.shape[0] = TW;
	o.nbuf = 2;
	OK(shmbus_state_open(bus, "tw", &o, &tw_writer));
	for (k = 0; k < 2; k++) {
		OK(shmbus_state_open(bus, "tw", &o, &r[k]));
		pthread_create(&th[k], NULL, tw_read, r[k]);
	}
	/* At least n writes, and on until the readers have read 1000 values
	 * between them (on a loaded machine the writer may finish its n
	 * before a reader thread first runs); 60 s at most. */
	t0 = test_now_ns();
	for (i = 0; i < n || (atomic_load(&tw_reads) < 1000 &&
	                      test_now_ns() - t0 < 60000000000ull); i++) {
		for (k = 0; k < TW; k++)
			buf[k] = i * 1000 + (uint64_t)k;
		OK(shmbus_state_write(tw_writer, buf, sizeof(buf)));
	}
	n = i;
	atomic_store(&tw_stop, 1);
	for (k = 0; k < 2; k++) {
		pthread_join(th[k], NULL);
		shmbus_state_close(r[k]);
	}
	CHECK(atomic_load(&tw_reads) >= 1000, "readers read 1000 values in 60 s (%lu)",
	      atomic_load(&tw_reads));
	printf("  threads: %llu writes, %lu whole reads\n", (unsigned long long)n,
	       atomic_load(&tw_reads));
	shmbus_state_close(tw_writer);
}

int main(void)
{
	snprintf(busname, sizeof(busname), "%s", test_bus_name("state"));
	OK(shmbus_bus_create(busname, NULL, &bus));
	test_roundtrip_and_seq();
	test_type_mismatch_and_validation();
	test_zero_copy();
	test_single_writer();
	test_wait_policies();
	test_threads_no_torn_read();
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(busname));
	printf("test_state: ok\n");
	return 0;
}

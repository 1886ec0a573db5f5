/*
 * cli_writer.c -- the "other process" of tests/test_cli.sh: a live peer
 * that writes state channels while the shmbus command looks at them.
 *
 *   cli_writer BUS PERIOD_MS MAX_SECONDS [SUFFIX]
 *
 * opens (or creates) BUS as a registered peer and, every PERIOD_MS, writes
 * write number k (k = 1, 2, ...) to two channels:
 *   ySUFFIX    float64 scalar, value k            (so value == seq)
 *   vecSUFFIX  int32 [3], value [k, 2k, 3k]
 * It prints "ready" once the first values are out, exits 0 on SIGTERM
 * (closing its handles) and after MAX_SECONDS at the latest, so a test
 * that dies never leaves it running. It does not unlink the bus.
 *
 * Run with no arguments (as the suite runs every program here) it has
 * nothing to do and exits 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "shmbus.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int fail(const char *what, int r)
{
	fprintf(stderr, "cli_writer: %s: %s (%s)\n", what, shmbus_strerror(r),
	        shmbus_last_error());
	return 1;
}

int main(int argc, char **argv)
{
	shmbus_state_opts_t so;
	shmbus_state_t *y = NULL, *vec = NULL;
	shmbus_bus_t *bus;
	struct timespec period, t0, now;
	long period_ms, max_s;
	const char *suffix = argc > 4 ? argv[4] : "";
	char name[SHMBUS_NAME_MAX + 1];
	int64_t k;
	int r;

	if (argc < 4) {
		printf("cli_writer: helper for tests/test_cli.sh (BUS PERIOD_MS MAX_SECONDS [SUFFIX]); nothing to do\n");
		return 0;
	}
	period_ms = atol(argv[2]);
	max_s = atol(argv[3]);
	if (period_ms <= 0 || max_s <= 0) {
		fprintf(stderr, "cli_writer: PERIOD_MS and MAX_SECONDS must be > 0\n");
		return 2;
	}
	signal(SIGTERM, on_term);
	r = shmbus_bus_open_or_create(argv[1], NULL, &bus, NULL);
	if (r)
		return fail("open bus", r);
	shmbus_state_opts_init(&so);
	snprintf(name, sizeof(name), "y%s", suffix);
	r = shmbus_state_open(bus, name, &so, &y);
	if (r)
		return fail("open y", r);
	so.dtype = SHMBUS_INT32;
	so.ndim = 1;
	so.shape[0] = 3;
	snprintf(name, sizeof(name), "vec%s", suffix);
	r = shmbus_state_open(bus, name, &so, &vec);
	if (r)
		return fail("open vec", r);
	period.tv_sec = period_ms / 1000;
	period.tv_nsec = (period_ms % 1000) * 1000000L;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (k = 1; !stop; k++) {
		double v = (double)k;
		int32_t a[3] = {(int32_t)k, (int32_t)(2 * k), (int32_t)(3 * k)};

		r = shmbus_state_write(y, &v, sizeof(v));
		if (!r)
			r = shmbus_state_write(vec, a, sizeof(a));
		if (r)
			return fail("write", r);
		if (k == 1) {
			printf("ready\n");
			fflush(stdout);
		}
		nanosleep(&period, NULL);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= max_s)
			break;
	}
	shmbus_state_close(y);
	shmbus_state_close(vec);
	shmbus_bus_close(bus);
	return 0;
}

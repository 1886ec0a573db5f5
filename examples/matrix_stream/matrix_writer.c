/*
 * matrix_writer.c -- the simulation side of the matrix-streaming use case:
 * a C process publishes a large float64 matrix every frame on a state
 * channel, written in place (zero-copy: shmbus_state_write_begin hands out
 * the buffer the next frame goes into, so the only copy is the simulation's
 * own computation), and any reader (C, or Python through numpy) takes the
 * newest frame whenever it is ready.
 *
 * Frame f holds m[i][j] = f + 0.001 * ((i + j) % 1000), so a reader can
 * check every element of what it got. When done it sets state "done" to
 * the number of frames written.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmbus.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(void)
{
	printf("usage: matrix_writer [--bus NAME] [--rows N] [--cols N] [--frames N] [--hz F]\n"
	       "                     [--wait-reader SECONDS]\n"
	       "Publish --frames frames (default 100) of a --rows x --cols float64 matrix\n"
	       "(default 1024 x 1024) on state channel 'frame' of bus NAME (default\n"
	       "matrix), at --hz frames per second (0: as fast as possible, default 30).\n"
	       "m[i][j] = frame + 0.001 * ((i + j) %% 1000). Sets state 'done' to the\n"
	       "frame count at the end. --wait-reader waits for state 'ready' to be\n"
	       "written by a reader first. The bus is removed at exit.\n");
}

static void fail(const char *what, int r)
{
	fprintf(stderr, "matrix_writer: %s: %s (%s)\n", what, shmbus_strerror(r),
	        shmbus_last_error());
	exit(1);
}

int main(int argc, char **argv)
{
	const char *name = "matrix";
	long rows = 1024, cols = 1024, frames = 100, i, j, f;
	double hz = 30, wait_reader = 0;
	shmbus_bus_opts_t bo;
	shmbus_state_opts_t so;
	shmbus_bus_t *bus;
	shmbus_state_t *frame, *done, *ready;
	struct timespec next, t0, t1;
	int r, a;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
			usage();
			return 0;
		} else if (a + 1 < argc && !strcmp(argv[a], "--bus")) {
			name = argv[++a];
		} else if (a + 1 < argc && !strcmp(argv[a], "--rows")) {
			rows = atol(argv[++a]);
		} else if (a + 1 < argc && !strcmp(argv[a], "--cols")) {
			cols = atol(argv[++a]);
		} else if (a + 1 < argc && !strcmp(argv[a], "--frames")) {
			frames = atol(argv[++a]);
		} else if (a + 1 < argc && !strcmp(argv[a], "--hz")) {
			hz = atof(argv[++a]);
		} else if (a + 1 < argc && !strcmp(argv[a], "--wait-reader")) {
			wait_reader = atof(argv[++a]);
		} else {
			fprintf(stderr, "matrix_writer: bad argument '%s' (try --help)\n", argv[a]);
			return 2;
		}
	}
	if (rows <= 0 || cols <= 0 || frames <= 0 || hz < 0) {
		fprintf(stderr, "matrix_writer: rows, cols and frames must be > 0, hz >= 0\n");
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	shmbus_bus_opts_init(&bo);
	bo.size = 3 * (uint64_t)rows * (uint64_t)cols * 8 + (4u << 20);
	r = shmbus_bus_open_or_create(name, &bo, &bus, NULL);
	if (r)
		fail("bus", r);
	shmbus_state_opts_init(&so);
	so.dtype = SHMBUS_FLOAT64;
	so.ndim = 2;
	so.shape[0] = (uint64_t)rows;
	so.shape[1] = (uint64_t)cols;
	if ((r = shmbus_state_open(bus, "frame", &so, &frame)))
		fail("state 'frame'", r);
	shmbus_state_opts_init(&so);
	so.dtype = SHMBUS_INT64;
	if ((r = shmbus_state_open(bus, "done", &so, &done)) ||
	    (r = shmbus_state_open(bus, "ready", &so, &ready)))
		fail("state 'done'/'ready'", r);
	if (wait_reader > 0) {
		r = shmbus_state_wait(ready, 0, (int64_t)(wait_reader * 1e9), NULL);
		if (r)
			fail("waiting for a reader", r);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	next = t0;
	for (f = 1; f <= frames && !stop; f++) {
		double *m;

		if ((r = shmbus_state_write_begin(frame, (void **)&m)))
			fail("write_begin", r);
		for (i = 0; i < rows; i++)
			for (j = 0; j < cols; j++)
				m[i * cols + j] = (double)f + 0.001 * (double)((i + j) % 1000);
		if ((r = shmbus_state_write_commit(frame)))
			fail("commit", r);
		if (hz > 0) {
			long ns = (long)(1e9 / hz);

			next.tv_nsec += ns % 1000000000l;
			next.tv_sec += ns / 1000000000l + next.tv_nsec / 1000000000l;
			next.tv_nsec %= 1000000000l;
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR &&
			       !stop)
				;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	f--;
	shmbus_state_write(done, &(int64_t){f}, sizeof(int64_t));
	printf("matrix_writer: %ld frames of %ld x %ld float64 (%.1f MiB) in %.2f s\n", f, rows,
	       cols, (double)rows * (double)cols * 8 / 1048576.0,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	shmbus_state_close(frame);
	shmbus_state_close(done);
	shmbus_state_close(ready);
	shmbus_bus_close(bus);
	shmbus_bus_unlink(name);
	return stop ? 130 : 0;
}

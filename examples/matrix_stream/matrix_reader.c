/*
 * matrix_reader.c -- a C reader for matrix_writer: reads frames in place
 * (zero-copy: shmbus_state_read_begin / read_validate), checks every
 * element, and reports how many frames it saw and how many it skipped
 * because the writer was faster (latest value wins).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shmbus.h"

static void fail(const char *what, int r)
{
	fprintf(stderr, "matrix_reader: %s: %s (%s)\n", what, shmbus_strerror(r),
	        shmbus_last_error());
	exit(1);
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 && argv[1][0] != '-' ? argv[1] : "matrix";
	shmbus_state_opts_t so;
	shmbus_channel_info_t info = {.size_of = sizeof(info)};
	shmbus_bus_t *bus;
	shmbus_state_t *frame, *done, *ready;
	uint64_t seq = 0, last = 0, seen = 0, skipped = 0, retries = 0, k, n;
	int64_t one = 1, total = 0;
	int r;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: matrix_reader [BUS]\nRead and check matrix_writer's frames "
		       "in place until it is done.\n");
		return 0;
	}
	if ((r = shmbus_bus_wait_open(name, NULL, 10000000000ll, &bus)))
		fail("bus", r);
	shmbus_state_opts_init(&so);
	so.create = 0;
	while ((r = shmbus_state_open(bus, "frame", &so, &frame)) == SHMBUS_ENOENT)
		;
	if (r)
		fail("state 'frame'", r);
	shmbus_state_opts_init(&so);
	so.dtype = SHMBUS_INT64;
	if ((r = shmbus_state_open(bus, "done", &so, &done)) ||
	    (r = shmbus_state_open(bus, "ready", &so, &ready)))
		fail("state 'done'/'ready'", r);
	shmbus_state_info(frame, &info);
	n = info.shape[0] * info.shape[1];
	shmbus_state_write(ready, &one, sizeof(one));
	for (;;) {
		const double *m;
		double f;

		r = shmbus_state_wait(frame, last, 200000000ll, &seq);
		if (r == SHMBUS_ETIMEDOUT) {
			if (shmbus_state_read(done, &total, sizeof(total), NULL) == 0 &&
			    (uint64_t)total <= last)
				break;
			continue;
		}
		if (r)
			fail("wait", r);
		if ((r = shmbus_state_read_begin(frame, (const void **)&m, &seq)))
			fail("read_begin", r);
		f = m[0];
		for (k = 0; k < n; k++) {
			uint64_t i = k / info.shape[1], j = k % info.shape[1];

			if (fabs(m[k] - (f + 0.001 * (double)((i + j) % 1000))) > 1e-9)
				break;
		}
		if (shmbus_state_read_validate(frame, seq) != 0) {
			retries++;  /* overwritten while we looked: take the newer one */
			continue;
		}
		if (k != n || f != (double)seq) {
			fprintf(stderr, "matrix_reader: frame %llu wrong at element %llu\n",
			        (unsigned long long)seq, (unsigned long long)k);
			return 1;
		}
		skipped += seq - last - 1;
		last = seq;
		seen++;
	}
	printf("matrix_reader: %llu frames checked whole, %llu skipped (writer faster), %llu re-reads; writer wrote %lld\n",
	       (unsigned long long)seen, (unsigned long long)skipped,
	       (unsigned long long)retries, (long long)total);
	shmbus_state_close(frame);
	shmbus_state_close(done);
	shmbus_state_close(ready);
	shmbus_bus_close(bus);
	return seen > 0 && last == (uint64_t)total ? 0 : 1;
}

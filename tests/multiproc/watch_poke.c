/*
 * watch_poke.c -- the "other process" of tests/test_watch.sh for what the
 * shmbus command cannot do itself: make, set and clear an event and make a
 * lock channel.
 *
 *   watch_poke BUS event NAME (create|set|clear)
 *   watch_poke BUS lock NAME
 *
 * Each call opens BUS (creating it if missing), does one thing and exits 0,
 * or prints the library's message and exits 1. Run with no arguments (as
 * the suite runs every program here) it has nothing to do and exits 0.
 */
#include <stdio.h>
#include <string.h>

#include "shmbus.h"

static int fail(const char *what, int r)
{
	fprintf(stderr, "watch_poke: %s: %s (%s)\n", what, shmbus_strerror(r),
	        shmbus_last_error());
	return 1;
}

int main(int argc, char **argv)
{
	shmbus_bus_t *bus;
	int r;

	if (argc == 1)
		return 0;
	if (argc < 4)
		return fprintf(stderr, "usage: watch_poke BUS (event NAME OP | lock NAME)\n"), 2;
	r = shmbus_bus_open_or_create(argv[1], NULL, &bus, NULL);
	if (r)
		return fail("open bus", r);
	if (strcmp(argv[2], "lock") == 0) {
		shmbus_lock_t *l;

		r = shmbus_lock_open(bus, argv[3], NULL, &l);
		if (r)
			return fail("lock", r);
		shmbus_lock_close(l);
	} else if (strcmp(argv[2], "event") == 0 && argc == 5) {
		shmbus_event_t *e;

		r = shmbus_event_open(bus, argv[3], NULL, &e);
		if (r)
			return fail("event", r);
		if (strcmp(argv[4], "set") == 0)
			r = shmbus_event_set(e);
		else if (strcmp(argv[4], "clear") == 0)
			r = shmbus_event_clear(e);
		else if (strcmp(argv[4], "create") != 0)
			r = SHMBUS_EINVAL;
		shmbus_event_close(e);
		if (r)
			return fail(argv[4], r);
	} else {
		return fprintf(stderr, "watch_poke: unknown request\n"), 2;
	}
	shmbus_bus_close(bus);
	return 0;
}

/*
 * testarea.h -- for tests that look inside a bus (include after
 * testutil.h and internal.h): where a channel's area lies in this
 * process's mapping.
 */
#ifndef SHMBUS_TESTAREA_H
#define SHMBUS_TESTAREA_H

/* The area of channel name of bus b; fails the test if there is none. */
static inline uint8_t *test_area_of(shmbus_bus_t *b, const char *name)
{
	uint32_t i;

	for (i = 0; i < b->max_channels; i++)
		if (b->dir[i].state == SB_DIR_READY && strcmp(b->dir[i].name, name) == 0)
			return b->base + b->dir[i].off;
	FAIL("no channel %s", name);
}

#endif /* SHMBUS_TESTAREA_H */

/*
 * log.c -- the bridge's log: one line per event on stderr, with the UTC
 * time, the bridge name and the level; lines above the configured level are
 * dropped. Small helpers every link uses live here too.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bridge.h"

static int log_level = BR_INFO;
static char log_name[SHMBUS_NAME_MAX + 1] = "bridge";
static const char *const level_names[] = { "error", "warn", "info", "debug" };

void br_log_init(int level, const char *name)
{
	log_level = level;
	snprintf(log_name, sizeof(log_name), "%s", name);
}

int br_level_parse(const char *s)
{
	int i;

	for (i = 0; i <= BR_DEBUG; i++)
		if (!strcmp(s, level_names[i]))
			return i;
	if (!strcmp(s, "warning"))
		return BR_WARN;
	return -1;
}

void br_log(int level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %s %s: ", tm.tm_hour,
	             tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_name,
	             level_names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* one write per line, so lines of different threads do not mix */
	fprintf(stderr, "%s\n", line);
}

uint64_t br_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void br_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000l };

	nanosleep(&ts, NULL);
}

void br_link_fail(struct br_link *l, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	br_error("%s %s:%s: %s; this link stops", l->dir == BR_EXPORT ? "export" : "import",
	         l->bus, l->chan, msg);
	atomic_fetch_add(&l->c.errors, 1);
	atomic_fetch_add(&l->br->errors, 1);
	atomic_store(&l->c.state, BR_LINK_FAILED);
}

shmbus_bus_t *br_bus_open(struct br_link *l, int create)
{
	shmbus_bus_t *bus = NULL;
	int r, warned = 0;

	while (!br_stop) {
		r = create ? shmbus_bus_open_or_create(l->bus, NULL, &bus, NULL)
		           : shmbus_bus_open(l->bus, NULL, &bus);
		if (r == 0) {
			if (l->br->cfg.liveness_ms)
				shmbus_bus_set_liveness(bus, l->br->cfg.liveness_ms * 1000000ll);
			return bus;
		}
		if (r != SHMBUS_ENOENT) {
			br_link_fail(l, "cannot open bus '%s': %s", l->bus, shmbus_last_error());
			return NULL;
		}
		if (!warned++)
			br_info("waiting for bus '%s' to exist", l->bus);
		br_sleep_ms(200);
	}
	return NULL;
}

uint64_t br_bus_epoch(shmbus_bus_t *bus)
{
	shmbus_bus_info_t bi;

	memset(&bi, 0, sizeof(bi));
	bi.size_of = sizeof(bi);
	if (shmbus_bus_info(bus, &bi))
		return 0;
	return bi.create_time_ns;
}

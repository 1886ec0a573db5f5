/*
 * status.c -- what the bridge shows about itself: a state channel named
 * _bridge.NAME in every local bus it serves, dtype uint64, shape [16],
 * rewritten every status period (default 500 ms), so `shmbus info BUS` and
 * `shmbus get BUS _bridge.NAME` show it, and so does any program. The
 * fields (docs/bridge.md has the same table):
 *
 *   0 layout version (1)       8 values+messages out, total
 *   1 pid                      9 values+messages in, total
 *   2 running (0 after stop)  10 out per second (last period)
 *   3 connected to NATS       11 in per second (last period)
 *   4 reconnects              12 lag: most messages waiting on any queue link
 *   5 links                   13 errors
 *   6 links running           14 uptime in ms
 *   7 links failed            15 links done (end of stream carried)
 */
#include <string.h>
#include <unistd.h>

#include "bridge.h"

#define ST_FIELDS 16

struct status_bus {
	char name[BR_STR];
	shmbus_bus_t *bus;
	shmbus_state_t *st;
	int warned;
};

static struct status_bus sbus[BR_MAX_BUSES];
static int nsbus;
static uint64_t t_start, t_prev, prev_out, prev_in;

int br_status_open(struct bridge *br)
{
	int i, j;

	for (i = 0; i < br->nlinks; i++) {
		for (j = 0; j < nsbus; j++)
			if (!strcmp(sbus[j].name, br->links[i].bus))
				break;
		if (j == nsbus && nsbus < BR_MAX_BUSES)
			strcpy(sbus[nsbus++].name, br->links[i].bus);
	}
	t_start = t_prev = br_now_ns();
	return 0;
}

static void try_open(struct bridge *br, struct status_bus *s)
{
	shmbus_state_opts_t so;
	char chan[SHMBUS_NAME_MAX + 16];
	int r;

	if (!s->bus && shmbus_bus_open(s->name, NULL, &s->bus))
		return;         /* not there yet; an export link waits for it */
	snprintf(chan, sizeof(chan), "_bridge.%s", br->cfg.name);
	shmbus_state_opts_init(&so);
	so.dtype = SHMBUS_UINT64;
	so.ndim = 1;
	so.shape[0] = ST_FIELDS;
	r = shmbus_state_open(s->bus, chan, &so, &s->st);
	if (r && !s->warned++)
		br_warn("status channel %s in bus '%s': %s", chan, s->name, shmbus_last_error());
}

static void write_all(struct bridge *br, int running)
{
	uint64_t v[ST_FIELDS], out = 0, in = 0, lag = 0, now = br_now_ns(), dt;
	int i, run = 0, failed = 0, done = 0;

	for (i = 0; i < br->nlinks; i++) {
		struct br_link *l = &br->links[i];
		uint64_t n = atomic_load(&l->c.msgs), g = atomic_load(&l->c.lag);
		int st = atomic_load(&l->c.state);

		if (l->dir == BR_EXPORT)
			out += n;
		else
			in += n;
		if (g > lag)
			lag = g;
		run += st == BR_LINK_RUNNING;
		failed += st == BR_LINK_FAILED;
		done += st == BR_LINK_DONE;
	}
	dt = now - t_prev;
	memset(v, 0, sizeof(v));
	v[0] = 1;
	v[1] = (uint64_t)getpid();
	v[2] = (uint64_t)running;
	v[3] = (uint64_t)atomic_load(&br->connected);
	v[4] = atomic_load(&br->reconnects);
	v[5] = (uint64_t)br->nlinks;
	v[6] = (uint64_t)run;
	v[7] = (uint64_t)failed;
	v[8] = out;
	v[9] = in;
	v[10] = dt ? (out - prev_out) * 1000000000ull / dt : 0;
	v[11] = dt ? (in - prev_in) * 1000000000ull / dt : 0;
	v[12] = lag;
	v[13] = atomic_load(&br->errors);
	for (i = 0; i < br->nlinks; i++)
		v[13] += atomic_load(&br->links[i].c.errors);
	v[14] = (now - t_start) / 1000000ull;
	v[15] = (uint64_t)done;
	t_prev = now;
	prev_out = out;
	prev_in = in;
	for (i = 0; i < nsbus; i++) {
		if (!sbus[i].st)
			try_open(br, &sbus[i]);
		if (sbus[i].st)
			shmbus_state_write(sbus[i].st, v, sizeof(v));
	}
}

void br_status_update(struct bridge *br)
{
	write_all(br, 1);
}

void br_status_close(struct bridge *br)
{
	int i;

	write_all(br, 0);
	for (i = 0; i < nsbus; i++) {
		shmbus_state_close(sbus[i].st);
		shmbus_bus_close(sbus[i].bus);
		sbus[i].st = NULL;
		sbus[i].bus = NULL;
	}
}

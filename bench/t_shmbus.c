/*
 * t_shmbus.c -- shmbus itself, through its public API only (include/shmbus.h,
 * linked from the in-tree static library).
 *
 * Four transports:
 *   shmbus        queue channels with the default wait policy (spin for the
 *                 spin budget, then park on a futex): copying put/get, and
 *                 zero-copy reserve/commit + peek/release.
 *   shmbus-spin   the same queues with the busy-spin policy (never parks).
 *   shmbus-cells  queues of 64-byte cells (shmbus_queue_opts_t.cell_bytes):
 *                 each message takes the cells its length needs, not a
 *                 slot of the largest message; default wait policy.
 *   shmbus-state  ping-pong over two state channels (a value written by one
 *                 side, awaited with shmbus_state_wait by the other). A
 *                 state channel keeps only the latest value, so it has no
 *                 one-way streaming figure: ping-pong only.
 *
 * Setup (in the parent, before the children fork): a bus named after the
 * setup's tag and, per direction d, a queue "d<d>" (or a state channel
 * "s<d>") sized for the message. Each queue gets its consumer group "g"
 * now, durable and starting at the earliest message, so that nothing the
 * producer writes before the consumer has joined is lost; the parent's
 * membership ends when it closes its handle, the group stays. Every child
 * opens the bus by name in open() (a handle does not survive fork()),
 * opens both channels, joins the group of the direction it reads, and
 * maps in every page of the bus so that page faults stay out of the timed
 * part. Teardown unlinks the bus.
 *
 * Ring size: about 256 KiB of slots for small messages, as the raw ring of
 * the same run has, and at least 8 slots for large ones; for cells, 256 KiB
 * of cells and at least 8 messages' worth.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "shmbus.h"

/* A blocking call gives up after this long: a stuck peer shows as an error
 * in the report rather than a hang (the harness kills the run anyway). */
#define TIMEOUT_NS (30ll * 1000000000ll)
#define GROUP "g"
#define CELL 64u                /* shmbus-cells: bytes per cell */

enum variant { V_QUEUE, V_QUEUE_SPIN, V_QUEUE_CELLS, V_STATE };

struct shared {
	enum variant v;
	char bus[SHMBUS_NAME_MAX + 1];
	uint32_t slots;
};

struct local {
	shmbus_bus_t *bus;
	shmbus_queue_t *tx, *rx;
	shmbus_state_t *stx, *srx;
	uint64_t rx_seq;        /* state: sequence of the last value taken */
	int peeked;
};

static int sb_fail(struct tctx *ctx, const char *what, int rc)
{
	return bench_fail(ctx, "%s: %s (%s)", what, shmbus_strerror(rc), shmbus_last_error());
}

static uint64_t stride_of(size_t max_msg)
{
	/* An estimate of the library's slot size: a 16-byte slot header and
	 * the payload, rounded to cache lines. Only used to size the ring. */
	return BENCH_ALIGN_UP(16 + max_msg, BENCH_CACHELINE);
}

static uint32_t slots_for(size_t max_msg)
{
	uint64_t want = (256 * 1024) / stride_of(max_msg);
	uint32_t s = 8;
	while (s < want)
		s *= 2;
	return s;
}

/* shmbus-cells: cells for 256 KiB of payload and at least 8 messages. */
static uint32_t cells_for(size_t max_msg)
{
	uint64_t want = 8 * ((max_msg + CELL - 1) / CELL);
	uint32_t s = (256 * 1024) / CELL;
	while (s < want)
		s *= 2;
	return s;
}

static void queue_opts(shmbus_queue_opts_t *o, const struct shared *sh, size_t max_msg, int create)
{
	shmbus_queue_opts_init(o);
	o->slots = sh->slots;
	o->max_msg = max_msg;
	o->max_groups = 2;
	o->max_members = 4;
	o->max_producers = 4;
	o->create = create;
	o->wait_policy = sh->v == V_QUEUE_SPIN ? SHMBUS_WAIT_SPIN : SHMBUS_WAIT_SPIN_PARK;
	if (sh->v == V_QUEUE_CELLS)
		o->cell_bytes = CELL;
}

static void state_opts(shmbus_state_opts_t *o, size_t max_msg, int create)
{
	shmbus_state_opts_init(o);
	o->dtype = SHMBUS_BYTES;
	o->ndim = 1;
	o->shape[0] = max_msg;
	o->create = create;
	o->wait_policy = SHMBUS_WAIT_SPIN_PARK;
}

static int setup(struct tctx *ctx, size_t max_msg, enum variant v)
{
	struct shared *sh = calloc(1, sizeof *sh);
	if (!sh)
		return bench_fail(ctx, "out of memory");
	sh->v = v;
	sh->slots = v == V_QUEUE_CELLS ? cells_for(max_msg) : slots_for(max_msg);
	/* The tag is "ipcbench-<pid>-<n>": a valid bus name. */
	snprintf(sh->bus, sizeof sh->bus, "%s", ctx->tag);
	ctx->shared = sh;

	uint64_t per_dir = v == V_STATE ? 4 * BENCH_ALIGN_UP(max_msg + 64, 4096)
			 : v == V_QUEUE_CELLS ? (uint64_t)sh->slots * (16 + CELL)
					      : (uint64_t)sh->slots * stride_of(max_msg);
	shmbus_bus_opts_t bo;
	shmbus_bus_opts_init(&bo);
	bo.size = BENCH_ALIGN_UP(2 * per_dir + per_dir / 8 + (1u << 20), 1u << 20);
	shmbus_bus_t *bus;
	shmbus_bus_unlink(sh->bus); /* a leftover of a killed run with our pid */
	int rc = shmbus_bus_create(sh->bus, &bo, &bus);
	if (rc) {
		free(sh);
		ctx->shared = NULL;
		return sb_fail(ctx, "shmbus_bus_create", rc);
	}
	for (int d = 0; d < 2 && !rc; d++) {
		char name[8];
		snprintf(name, sizeof name, v == V_STATE ? "s%d" : "d%d", d);
		if (v == V_STATE) {
			shmbus_state_opts_t so;
			shmbus_state_t *st;
			state_opts(&so, max_msg, 1);
			if ((rc = shmbus_state_open(bus, name, &so, &st)) != 0) {
				sb_fail(ctx, "shmbus_state_open", rc);
				break;
			}
			shmbus_state_close(st);
		} else {
			shmbus_queue_opts_t qo;
			shmbus_queue_t *q;
			queue_opts(&qo, sh, max_msg, 1);
			if ((rc = shmbus_queue_open(bus, name, &qo, &q)) != 0) {
				sb_fail(ctx, "shmbus_queue_open", rc);
				break;
			}
			rc = shmbus_queue_join(q, GROUP, SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE);
			if (rc)
				sb_fail(ctx, "shmbus_queue_join", rc);
			shmbus_queue_close(q);
		}
	}
	shmbus_bus_close(bus);
	if (rc) {
		shmbus_bus_unlink(sh->bus);
		free(sh);
		ctx->shared = NULL;
		return -1;
	}
	return 0;
}

static int q_setup(struct tctx *ctx, size_t max_msg)
{
	return setup(ctx, max_msg, V_QUEUE);
}

static int qs_setup(struct tctx *ctx, size_t max_msg)
{
	return setup(ctx, max_msg, V_QUEUE_SPIN);
}

static int qc_setup(struct tctx *ctx, size_t max_msg)
{
	return setup(ctx, max_msg, V_QUEUE_CELLS);
}

static int st_setup(struct tctx *ctx, size_t max_msg)
{
	return setup(ctx, max_msg, V_STATE);
}

/* Maps in every page of our bus's segment, found in /proc/self/maps. */
static void prefault_bus(const char *bus)
{
	char want[96], line[512];
	snprintf(want, sizeof want, "/dev/shm/shmbus-%s\n", bus);
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		int path = 0;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &path) == 2 && path &&
		    strcmp(line + path, want) == 0)
			bench_prefault((void *)lo, hi - lo);
	}
	fclose(f);
}

static void sb_close(struct tctx *ctx);

static int sb_open(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	struct local *l = calloc(1, sizeof *l);
	if (!l)
		return bench_fail(ctx, "out of memory");
	ctx->local = l;
	int rc = shmbus_bus_open(sh->bus, NULL, &l->bus);
	if (rc) {
		sb_close(ctx);
		return sb_fail(ctx, "shmbus_bus_open", rc);
	}
	char tx[8], rx[8];
	int me = ctx->role;
	if (sh->v == V_STATE) {
		shmbus_state_opts_t so;
		snprintf(tx, sizeof tx, "s%d", me);
		snprintf(rx, sizeof rx, "s%d", !me);
		state_opts(&so, ctx->max_msg, 0);
		if ((rc = shmbus_state_open(l->bus, tx, &so, &l->stx)) ||
		    (rc = shmbus_state_open(l->bus, rx, &so, &l->srx))) {
			sb_close(ctx);
			return sb_fail(ctx, "shmbus_state_open", rc);
		}
		/* The setup is reused across runs: start after the last value
		 * the previous pair of children exchanged. */
		l->rx_seq = shmbus_state_seq(l->srx);
	} else {
		shmbus_queue_opts_t qo;
		snprintf(tx, sizeof tx, "d%d", me);
		snprintf(rx, sizeof rx, "d%d", !me);
		queue_opts(&qo, sh, ctx->max_msg, 0);
		if ((rc = shmbus_queue_open(l->bus, tx, &qo, &l->tx)) ||
		    (rc = shmbus_queue_open(l->bus, rx, &qo, &l->rx))) {
			sb_close(ctx);
			return sb_fail(ctx, "shmbus_queue_open", rc);
		}
		if ((rc = shmbus_queue_join(l->rx, GROUP, SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE))) {
			sb_close(ctx);
			return sb_fail(ctx, "shmbus_queue_join", rc);
		}
	}
	prefault_bus(sh->bus);
	return 0;
}

static int q_send(struct tctx *ctx, const void *buf, size_t len)
{
	struct local *l = ctx->local;
	int rc = shmbus_queue_put(l->tx, buf, len, TIMEOUT_NS);
	return rc ? sb_fail(ctx, "shmbus_queue_put", rc) : 0;
}

static int q_recv(struct tctx *ctx, void *buf, size_t cap, size_t *len)
{
	struct local *l = ctx->local;
	int rc = shmbus_queue_get(l->rx, buf, cap, len, NULL, TIMEOUT_NS);
	return rc ? sb_fail(ctx, "shmbus_queue_get", rc) : 0;
}

static void *q_reserve(struct tctx *ctx, size_t len)
{
	struct local *l = ctx->local;
	void *p;
	int rc = shmbus_queue_reserve(l->tx, len, &p, TIMEOUT_NS);
	if (rc) {
		sb_fail(ctx, "shmbus_queue_reserve", rc);
		return NULL;
	}
	return p;
}

static int q_commit(struct tctx *ctx, size_t len)
{
	struct local *l = ctx->local;
	int rc = shmbus_queue_commit(l->tx, len);
	return rc ? sb_fail(ctx, "shmbus_queue_commit", rc) : 0;
}

static const void *q_peek(struct tctx *ctx, size_t *len)
{
	struct local *l = ctx->local;
	shmbus_msg_t m;
	int rc = shmbus_queue_peek(l->rx, &m, TIMEOUT_NS);
	if (rc) {
		sb_fail(ctx, "shmbus_queue_peek", rc);
		return NULL;
	}
	l->peeked = 1;
	*len = m.len;
	return m.data;
}

static int q_release(struct tctx *ctx)
{
	struct local *l = ctx->local;
	l->peeked = 0;
	int rc = shmbus_queue_release(l->rx);
	return rc ? sb_fail(ctx, "shmbus_queue_release", rc) : 0;
}

static int st_send(struct tctx *ctx, const void *buf, size_t len)
{
	struct local *l = ctx->local;
	int rc = shmbus_state_write(l->stx, buf, len);
	return rc ? sb_fail(ctx, "shmbus_state_write", rc) : 0;
}

static int st_recv(struct tctx *ctx, void *buf, size_t cap, size_t *len)
{
	struct local *l = ctx->local;
	uint64_t seq;
	int rc = shmbus_state_wait(l->srx, l->rx_seq, TIMEOUT_NS, &seq);
	if (rc)
		return sb_fail(ctx, "shmbus_state_wait", rc);
	if ((rc = shmbus_state_read(l->srx, buf, cap, &seq)))
		return sb_fail(ctx, "shmbus_state_read", rc);
	/* In a ping-pong the writer waits for our answer, so this is the
	 * value just awaited; a jump would be a lost message. */
	if (seq != l->rx_seq + 1)
		return bench_fail(ctx, "state sequence jumped from %llu to %llu",
				  (unsigned long long)l->rx_seq, (unsigned long long)seq);
	l->rx_seq = seq;
	*len = shmbus_state_size(l->srx);
	return 0;
}

static void sb_close(struct tctx *ctx)
{
	struct local *l = ctx->local;
	if (!l)
		return;
	if (l->peeked)
		shmbus_queue_release(l->rx);
	shmbus_queue_close(l->tx);
	shmbus_queue_close(l->rx);
	shmbus_state_close(l->stx);
	shmbus_state_close(l->srx);
	shmbus_bus_close(l->bus);
	free(l);
	ctx->local = NULL;
}

static void sb_teardown(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	if (!sh)
		return;
	shmbus_bus_unlink(sh->bus);
	free(sh);
	ctx->shared = NULL;
}

/* The queue transports differ only in name and setup (the variant). */
#define QUEUE_TRANSPORT(var, nm, desc, setup_fn) \
	const struct transport var = { \
		.name = nm, \
		.what = desc, \
		.setup = setup_fn, \
		.open = sb_open, \
		.send = q_send, \
		.recv = q_recv, \
		.send_reserve = q_reserve, \
		.send_commit = q_commit, \
		.recv_peek = q_peek, \
		.recv_release = q_release, \
		.close = sb_close, \
		.teardown = sb_teardown, \
	}

QUEUE_TRANSPORT(t_shmbus, "shmbus", "shmbus queue channels, spin-then-park (default policy)",
		q_setup);
QUEUE_TRANSPORT(t_shmbus_spin, "shmbus-spin", "shmbus queue channels, busy-spin policy (never parks)",
		qs_setup);
QUEUE_TRANSPORT(t_shmbus_cells, "shmbus-cells",
		"shmbus queues of 64-byte cells (a message takes the cells its length needs)", qc_setup);

const struct transport t_shmbus_state = {
	.name = "shmbus-state",
	.what = "shmbus state channels, one per direction (ping-pong only)",
	.pingpong_only = 1,
	.setup = st_setup,
	.open = sb_open,
	.send = st_send,
	.recv = st_recv,
	.close = sb_close,
	.teardown = sb_teardown,
};

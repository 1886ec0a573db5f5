/*
 * queue_import.c -- carrying a JetStream stream into a local queue channel
 * exactly once, in order.
 *
 * Import. A durable pull consumer (named after the bridge and the queue)
 * fetches in batches; MaxAckPending equals the batch, so after a crash the
 * unacknowledged messages come back (after AckWait) before any newer one.
 * For each message, in stream order: put it into the local queue, record
 * its stream sequence in the state channel _bridge.pos.QUEUE of the local
 * bus, then acknowledge it to JetStream. A message whose stream sequence is
 * not above the recorded one is a redelivery (a lost ack, a restart) and is
 * only acknowledged. A message that skips ahead of the next expected
 * sequence waits, unacknowledged, in a reorder buffer until the gap fills.
 * The end-of-stream message shuts the local queue.
 *
 * The position store and the local put cannot be one atomic step, so the
 * importer records the pending stream sequence before the put and keeps a
 * shadow consumer group (_bridge.commit) on the local queue that tells a
 * restarted bridge whether that put was committed (see drain_shadow). This
 * requires the bridge to be the only producer of a queue it imports into.
 * With that, server restarts, lost acks and bridge crashes anywhere give
 * exactly once.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

enum { POS_SEQ = 0, POS_STREAM_CREATED, POS_EOS, POS_PENDING, POS_N };

struct qimporter {
	struct br_link *l;
	shmbus_bus_t *bus;
	shmbus_queue_t *q;
	shmbus_queue_t *shadow;         /* group _bridge.commit */
	shmbus_state_t *pos_st;
	uint64_t pos[POS_N];
	uint64_t gap_since, dups;
	natsMsg **rb;                   /* reorder buffer, rb_cap slots */
	uint64_t *rb_seq;
	size_t rb_cap, rb_count;
};

static int open_pos(struct qimporter *im)
{
	struct br_link *l = im->l;
	shmbus_state_opts_t so;
	char name[SHMBUS_NAME_MAX + 32];
	int r;

	snprintf(name, sizeof(name), "_bridge.pos.%s", l->chan);
	if (strlen(name) > SHMBUS_NAME_MAX) {
		uint64_t h = 1469598103934665603ull;
		const char *p;

		for (p = l->chan; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		snprintf(name, sizeof(name), "_bridge.pos.%.34s.%016" PRIx64, l->chan, h);
	}
	shmbus_state_opts_init(&so);
	so.dtype = SHMBUS_UINT64;
	so.ndim = 1;
	so.shape[0] = POS_N;
	r = shmbus_state_open(im->bus, name, &so, &im->pos_st);
	if (r) {
		br_link_fail(l, "position channel %s: %s", name, shmbus_last_error());
		return -1;
	}
	r = shmbus_state_read(im->pos_st, im->pos, sizeof(im->pos), NULL);
	if (r == SHMBUS_ENODATA)
		memset(im->pos, 0, sizeof(im->pos));
	else if (r) {
		br_link_fail(l, "reading position %s: %s", name, shmbus_last_error());
		return -1;
	}
	return 0;
}

static int save_pos(struct qimporter *im)
{
	int r = shmbus_state_write(im->pos_st, im->pos, sizeof(im->pos));

	if (r)
		br_link_fail(im->l, "recording the position: %s", shmbus_last_error());
	return r;
}

/* The stream's creation time: a stream deleted and made again restarts
 * its sequences, and the recorded position must restart with it. */
static int check_stream_epoch(struct qimporter *im)
{
	struct br_link *l = im->l;
	jsStreamInfo *si = NULL;
	jsErrCode je;
	uint64_t created;

	if (js_GetStreamInfo(&si, l->br->js, l->stream, NULL, &je) != NATS_OK)
		return -1;
	created = (uint64_t)si->Created;
	jsStreamInfo_Destroy(si);
	if (im->pos[POS_STREAM_CREATED] != created) {
		if (im->pos[POS_SEQ])
			br_warn("import %s:%s: stream %s was re-created; position %" PRIu64 " reset",
			        l->bus, l->chan, l->stream, im->pos[POS_SEQ]);
		im->pos[POS_SEQ] = 0;
		im->pos[POS_EOS] = 0;
		im->pos[POS_STREAM_CREATED] = created;
		return save_pos(im);
	}
	return 0;
}

/*
 * The shadow group. The position store and the local put cannot be one
 * atomic step, so the importer keeps its own consumer group _bridge.commit
 * on the local queue, which it empties right after each position store: at
 * any moment it holds at most the message of the put in progress. The
 * position channel records the pending stream sequence before the put. A
 * run that finds a pending sequence drains the shadow group (waiting past
 * the liveness timeout, so that a put killed half-way is skipped by the
 * queue): a message there means the put was committed, none means it was
 * not. This needs the bridge to be the only producer of an imported queue.
 * Returns how many messages it took.
 */
static int drain_shadow(struct qimporter *im, int64_t first_timeout_ns)
{
	shmbus_msg_t m;
	int n = 0, r;

	for (;;) {
		r = shmbus_queue_peek(im->shadow, &m, n ? 0 : first_timeout_ns);
		if (r == SHMBUS_EINTR)
			continue;
		if (r)
			break;  /* EAGAIN/ETIMEDOUT: empty; ECLOSED: end of stream */
		shmbus_queue_release(im->shadow);
		n++;
	}
	return n;
}

static int open_shadow(struct qimporter *im)
{
	struct br_link *l = im->l;
	shmbus_queue_opts_t qo;
	int r, seen;

	shmbus_queue_opts_init(&qo);
	qo.create = 0;
	/* a dead run's shadow member becomes an orphan now, so its held
	 * message is seen below */
	shmbus_bus_gc(im->bus, NULL);
	r = shmbus_queue_open(im->bus, l->chan, &qo, &im->shadow);
	if (r == 0)
		r = shmbus_queue_join(im->shadow, "_bridge.commit",
		                      SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE);
	if (r) {
		br_link_fail(l, "joining the shadow group _bridge.commit: %s", shmbus_last_error());
		return -1;
	}
	if (!im->pos[POS_PENDING]) {
		drain_shadow(im, 0);
		return 0;
	}
	{
		int64_t wait = (l->br->cfg.liveness_ms ? l->br->cfg.liveness_ms : 200) * 3000000ll +
		               1000000000ll;
		seen = drain_shadow(im, wait);
	}
	if (seen) {
		br_info("import %s:%s: stream seq %" PRIu64 " was put before the last run ended; not put again",
		        l->bus, l->chan, im->pos[POS_PENDING]);
		im->pos[POS_SEQ] = im->pos[POS_PENDING];
	} else {
		br_info("import %s:%s: stream seq %" PRIu64 " was not put by the last run; it comes again",
		        l->bus, l->chan, im->pos[POS_PENDING]);
	}
	im->pos[POS_PENDING] = 0;
	return save_pos(im);
}

enum { H_NEXT = 0, H_STOP = 1, H_DONE = 2 };

/* Commit message m (stream seq s, the next one): put it into the local
 * queue (or shut it, for end of stream), record the position, ack. */
static int commit(struct qimporter *im, natsMsg *m, uint64_t s)
{
	struct br_link *l = im->l;
	const char *eos = NULL;
	int r;

	if (natsMsgHeader_Get(m, BR_H_EOS, &eos) == NATS_OK) {
		shmbus_queue_shut(im->q);
		im->pos[POS_SEQ] = s;
		im->pos[POS_EOS] = 1;
		im->pos[POS_PENDING] = 0;
		if (save_pos(im))
			return H_STOP;
		natsMsg_Ack(m, NULL);
		br_info("import %s:%s: end of stream; local queue shut", l->bus, l->chan);
		atomic_store(&l->c.state, BR_LINK_DONE);
		return H_DONE;
	}
	/* intent first: if we die before the position below is stored, the
	 * next run asks the shadow group whether this put was committed */
	im->pos[POS_PENDING] = s;
	if (save_pos(im))
		return H_STOP;
	do {
		r = shmbus_queue_put(im->q, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
		                     200000000);
	} while ((r == SHMBUS_ETIMEDOUT || r == SHMBUS_EINTR) && !br_stop);
	if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_EINTR) {
		im->pos[POS_PENDING] = 0;
		save_pos(im);
		return H_STOP;  /* not committed, not acked: comes again */
	}
	if (r) {
		br_link_fail(l, "putting a message into the local queue: %s", shmbus_last_error());
		return H_STOP;
	}
	im->pos[POS_SEQ] = s;
	im->pos[POS_PENDING] = 0;
	if (save_pos(im))
		return H_STOP;
	natsMsg_Ack(m, NULL);
	drain_shadow(im, 0);
	atomic_fetch_add(&l->c.msgs, 1);
	atomic_fetch_add(&l->c.bytes, (uint64_t)natsMsg_GetDataLength(m));
	return H_NEXT;
}

/*
 * Messages that arrive ahead of the next expected stream sequence (after a
 * restart, JetStream delivers new messages while the ones the dead run held
 * wait for their ack timeout) are kept, unacknowledged, in a small reorder
 * buffer until the gap is filled, then committed in order. A message too
 * far ahead is dropped unacknowledged and comes again later.
 */
static void rb_put(struct qimporter *im, natsMsg *m, uint64_t s)
{
	size_t i = (size_t)(s % im->rb_cap);

	if (im->rb[i]) {
		if (im->rb_seq[i] == s) {       /* a newer delivery of the same */
			natsMsg_Destroy(im->rb[i]);
			im->rb[i] = m;
		} else {
			natsMsg_Destroy(m);     /* slot taken by another: comes again */
		}
		return;
	}
	im->rb[i] = m;
	im->rb_seq[i] = s;
	im->rb_count++;
	if (!im->gap_since)
		im->gap_since = br_now_ns();
}

static natsMsg *rb_take(struct qimporter *im, uint64_t s)
{
	size_t i = (size_t)(s % im->rb_cap);
	natsMsg *m = im->rb[i];

	if (!m || im->rb_seq[i] != s)
		return NULL;
	im->rb[i] = NULL;
	im->rb_count--;
	return m;
}

static void rb_clear(struct qimporter *im)
{
	size_t i;

	for (i = 0; im->rb && i < im->rb_cap; i++) {
		natsMsg_Destroy(im->rb[i]);
		im->rb[i] = NULL;
	}
	im->rb_count = 0;
}

/* Commit whatever the buffer holds in order after the position. */
static int rb_flush(struct qimporter *im)
{
	natsMsg *m;
	int h = H_NEXT;

	while (h == H_NEXT && (m = rb_take(im, im->pos[POS_SEQ] + 1))) {
		h = commit(im, m, im->pos[POS_SEQ] + 1);
		natsMsg_Destroy(m);
	}
	if (!im->rb_count)
		im->gap_since = 0;
	return h;
}

/* If a gap lasted long past the ack timeout, the missing messages are gone
 * from the stream (deleted by an operator, or limits): go on after them. */
static int rb_give_up(struct qimporter *im)
{
	struct br_link *l = im->l;
	uint64_t lo = UINT64_MAX;
	size_t i;

	if (!im->rb_count || !im->gap_since ||
	    br_now_ns() - im->gap_since < 3ull * (uint64_t)l->br->cfg.ack_wait_ms * 1000000ull)
		return H_NEXT;
	for (i = 0; i < im->rb_cap; i++)
		if (im->rb[i] && im->rb_seq[i] < lo)
			lo = im->rb_seq[i];
	br_warn("import %s:%s: stream messages %" PRIu64 "..%" PRIu64
	        " never came (deleted from the stream?); going on", l->bus, l->chan,
	        im->pos[POS_SEQ] + 1, lo - 1);
	im->pos[POS_SEQ] = lo - 1;
	return rb_flush(im);
}

/* One fetched message; takes ownership of m. */
static int handle(struct qimporter *im, natsMsg *m)
{
	struct br_link *l = im->l;
	jsMsgMetaData *meta = NULL;
	uint64_t s;
	int h;

	if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
		br_warn("import %s:%s: a message without JetStream metadata; ignored", l->bus, l->chan);
		natsMsg_Destroy(m);
		return H_NEXT;
	}
	s = meta->Sequence.Stream;
	atomic_store(&l->c.lag, meta->NumPending);
	jsMsgMetaData_Destroy(meta);
	if (s <= im->pos[POS_SEQ]) {
		/* delivered again (lost ack, restart): it is in the local queue */
		im->dups++;
		br_debug("import %s:%s: stream seq %" PRIu64 " already committed; ack only",
		         l->bus, l->chan, s);
		natsMsg_Ack(m, NULL);
		natsMsg_Destroy(m);
		return H_NEXT;
	}
	if (im->pos[POS_SEQ] && s != im->pos[POS_SEQ] + 1) {
		if (s - im->pos[POS_SEQ] - 1 < im->rb_cap) {
			br_debug("import %s:%s: stream seq %" PRIu64 " ahead of %" PRIu64 "; kept until the gap fills",
			         l->bus, l->chan, s, im->pos[POS_SEQ] + 1);
			rb_put(im, m, s);
		} else {
			natsMsg_Destroy(m);     /* not acked: comes again */
		}
		return H_NEXT;
	}
	h = commit(im, m, s);
	natsMsg_Destroy(m);
	return h == H_NEXT ? rb_flush(im) : h;
}

void *br_queue_import(void *arg)
{
	struct br_link *l = arg;
	struct bridge *br = l->br;
	struct qimporter im;
	shmbus_queue_opts_t qo;
	natsSubscription *sub = NULL;
	jsSubOptions so;
	char durable[160], tmp[160];
	int r, warned = 0, done = 0;

	memset(&im, 0, sizeof(im));
	im.l = l;
	im.rb_cap = (size_t)br->cfg.fetch_batch * 2;
	im.rb = calloc(im.rb_cap, sizeof(*im.rb));
	im.rb_seq = calloc(im.rb_cap, sizeof(*im.rb_seq));
	if (!im.rb || !im.rb_seq) {
		br_link_fail(l, "out of memory");
		goto out;
	}
	im.bus = br_bus_open(l, 1);
	if (!im.bus)
		goto out;
	shmbus_queue_opts_init(&qo);
	if (br->cfg.max_msg)
		qo.max_msg = br->cfg.max_msg;
	if (br->cfg.slots)
		qo.slots = br->cfg.slots;
	qo.cell_bytes = br->cfg.cell_bytes;
	r = shmbus_queue_open(im.bus, l->chan, &qo, &im.q);
	if (r) {
		br_link_fail(l, "cannot open or create the local queue: %s", shmbus_last_error());
		goto out;
	}
	if (open_pos(&im))
		goto out;
	if (im.pos[POS_EOS]) {
		br_info("import %s:%s: end of stream was already carried; nothing to do", l->bus, l->chan);
		atomic_store(&l->c.state, BR_LINK_DONE);
		goto out;
	}
	if (open_shadow(&im))
		goto out;
	if (br_wait_stream(l))
		goto out;
	while (!br_stop && check_stream_epoch(&im))
		br_sleep_ms(500);
	snprintf(tmp, sizeof(tmp), "%s_%s", br->cfg.name, l->remote);
	br_sanitize(durable, sizeof(durable), tmp);
	jsSubOptions_Init(&so);
	so.Stream = l->stream;
	so.Config.Durable = durable;
	so.Config.AckPolicy = js_AckExplicit;
	so.Config.DeliverPolicy = js_DeliverAll;
	so.Config.AckWait = br->cfg.ack_wait_ms * 1000000ll;
	so.Config.MaxAckPending = br->cfg.fetch_batch;
	so.Config.MaxDeliver = -1;
	while (!br_stop) {
		jsErrCode je = 0;
		natsStatus s = br_js_ready(br);

		if (s == NATS_OK)
			s = js_PullSubscribe(&sub, br->js, l->subject, durable, NULL, &so, &je);
		if (s == NATS_OK)
			break;
		sub = NULL;
		if (!warned++)
			br_warn("import %s:%s: consumer %s on %s: %s (%d); retrying", l->bus, l->chan,
			        durable, l->stream, br_nats_err(s), (int)je);
		br_sleep_unless_stop(br_backoff_ms(warned - 1));
	}
	if (!sub)
		goto out;
	br_info("import queue stream %s (consumer %s) -> %s:%s, from stream seq %" PRIu64,
	        l->stream, durable, l->bus, l->chan, im.pos[POS_SEQ] + 1);
	atomic_store(&l->c.state, BR_LINK_RUNNING);
	while (!br_stop && !done) {
		natsMsgList list = { 0 };
		jsErrCode je = 0;
		natsStatus s = natsSubscription_Fetch(&list, sub, br->cfg.fetch_batch, 500, &je);
		int i, h = H_NEXT;

		if (s == NATS_TIMEOUT) {
			if (rb_give_up(&im) != H_NEXT)
				break;
			continue;
		}
		if (s != NATS_OK) {
			br_debug("import %s:%s: fetch: %s (%d)", l->bus, l->chan, br_nats_err(s), (int)je);
			br_sleep_ms(200);
			continue;
		}
		for (i = 0; i < list.Count && h == H_NEXT; i++) {
			h = handle(&im, list.Msgs[i]);
			list.Msgs[i] = NULL;    /* handle() owns it now */
		}
		natsMsgList_Destroy(&list);
		if (h == H_NEXT)
			h = rb_give_up(&im);
		if (h == H_DONE)
			done = 1;
		else if (h == H_STOP)
			break;
	}
	if (im.dups)
		br_info("import %s:%s: %" PRIu64 " redelivered messages recognised and skipped",
		        l->bus, l->chan, im.dups);
out:
	if (sub)
		natsSubscription_Destroy(sub);
	rb_clear(&im);
	free(im.rb);
	free(im.rb_seq);
	shmbus_state_close(im.pos_st);
	shmbus_queue_close(im.shadow);
	shmbus_queue_close(im.q);
	shmbus_bus_close(im.bus);
	return NULL;
}

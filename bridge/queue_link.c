/*
 * queue_link.c -- carrying queue channels across NATS without losing or
 * duplicating a message.
 *
 * Export. The bridge joins the local queue as a durable consumer group
 * (_bridge.NAME, starting at the oldest message), so producers are held back
 * rather than overrun while the bridge is down. For each message: peek it
 * (zero-copy), publish it to the queue's JetStream stream with
 * Nats-Msg-Id = EPOCH.SEQ (bus creation time, local queue sequence), wait
 * for JetStream's acknowledgement, and only then release it locally. If
 * the bridge dies in between, the local queue hands the message out again
 * (to the restarted bridge) and JetStream drops the second copy as a
 * duplicate (the stream's de-duplication window is 10 minutes). A failed
 * publish is retried with the same id until it is acknowledged, and the
 * next message is not published before that, so the stream keeps the local
 * order. When the local queue is shut and drained, one more message with
 * header Shmbus-Eos (id EPOCH.eos) carries the end of stream.
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

static void update_export_lag(struct br_link *l, shmbus_queue_t *q, const char *group)
{
	shmbus_queue_info_t qi;
	shmbus_group_info_t gi[16];
	size_t i;

	memset(&qi, 0, sizeof(qi));
	qi.size_of = sizeof(qi);
	if (shmbus_queue_info(q, &qi, gi, 16))
		return;
	for (i = 0; i < qi.groups && i < 16; i++)
		if (!strcmp(gi[i].name, group))
			atomic_store(&l->c.lag, gi[i].lag);
}

/* Publish until JetStream acknowledges; -1 if asked to stop first. */
static int publish_acked(struct br_link *l, jsCtx *js, natsMsg *m, const char *id)
{
	jsPubOptions po;
	int attempt;

	jsPubOptions_Init(&po);
	po.MsgId = id;
	po.MaxWait = 2000;
	po.ExpectStream = l->stream;
	for (attempt = 0;; attempt++) {
		jsPubAck *ack = NULL;
		jsErrCode je = 0;
		natsStatus s = js_PublishMsg(&ack, js, m, &po, &je);

		if (s == NATS_OK) {
			if (attempt)
				br_info("export %s:%s: message %s stored after %d retries%s", l->bus,
				        l->chan, id, attempt, ack->Duplicate ? " (already there)" : "");
			jsPubAck_Destroy(ack);
			return 0;
		}
		if (br_stop)
			return -1;
		if (attempt == 0)
			br_warn("export %s:%s: publishing %s failed (%s, %d); retrying with the same id",
			        l->bus, l->chan, id, br_nats_err(s), (int)je);
		atomic_fetch_add(&l->c.errors, 1);
		if (s == NATS_NO_RESPONDERS || je == JSStreamNotFoundErr)
			br_ensure_stream(l->br, l);
		br_sleep_ms(attempt < 10 ? 50 : 250);
	}
}

static int wait_stream(struct br_link *l)
{
	int warned = 0;

	while (!br_stop) {
		natsStatus s = br_ensure_stream(l->br, l);
		if (s == NATS_OK)
			return 0;
		if (!warned++)
			br_warn("%s %s:%s: stream %s not available yet (%s); retrying",
			        l->dir == BR_EXPORT ? "export" : "import", l->bus, l->chan,
			        l->stream, br_nats_err(s));
		br_sleep_ms(500);
	}
	return -1;
}

/*
 * The exporter keeps up to BR_WINDOW messages in flight: it holds them
 * through BR_WINDOW member handles of its group (a handle holds one message
 * at a time), publishes them asynchronously and waits for all the acks.
 * Order in the stream is kept by chaining: each message carries
 * Nats-Expected-Last-Msg-Id = the id of the message before it in the batch,
 * so if one fails, every later one is refused too and the stored messages
 * are always a prefix of the batch; the rest is then published one at a
 * time. The batch is sorted by local sequence first: after a crash, the
 * dead bridge's held messages come back (redelivered) in no particular
 * order, all in the first batch of the next run (same window; the dead
 * members are reaped with shmbus_bus_gc before the first take).
 */
#define BR_WINDOW 16

struct held {
	shmbus_queue_t *q;
	shmbus_msg_t msg;
	char id[64];
	int result;             /* 0 pending, 1 stored, -1 failed */
};

struct batch {
	struct br_link *l;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct held h[BR_WINDOW];
	struct held *order[BR_WINDOW];
	int n, answered;
	uint64_t dups, redelivered;
	int async_used;         /* libnats 3.4.1 crashes in GetPendingList before any async publish */
	jsCtx *js;
};

static void on_pub_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *arg)
{
	struct batch *b = arg;
	const char *id = NULL;
	int i;

	(void)js;
	natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
	pthread_mutex_lock(&b->mu);
	for (i = 0; id && i < b->n; i++) {
		if (b->h[i].result == 0 && !strcmp(b->h[i].id, id)) {
			b->h[i].result = pa ? 1 : -1;
			if (pa && pa->Duplicate)
				b->dups++;
			if (pae)
				br_debug("export %s:%s: %s refused: %s (%d)", b->l->bus, b->l->chan, id,
				         pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err),
				         (int)pae->ErrCode);
			b->answered++;
			break;
		}
	}
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	natsMsg_Destroy(m);
}

static int by_seq(const void *a, const void *b)
{
	const struct held *x = *(struct held *const *)a, *y = *(struct held *const *)b;

	return x->msg.seq < y->msg.seq ? -1 : x->msg.seq > y->msg.seq;
}

static natsStatus build_msg(struct br_link *l, struct held *h, const char *ep, natsMsg **m)
{
	natsStatus s = natsMsg_Create(m, l->subject, NULL, h->msg.data, (int)h->msg.len);

	if (s == NATS_OK)
		s = natsMsgHeader_Set(*m, BR_H_EPOCH, ep);
	return s;
}

/* Publish the batch; returns 0 when every message is stored, -1 when
 * stopping (nothing released beyond what is stored). The caller releases
 * the stored prefix, *stored gets its length. */
static int publish_batch(struct batch *b, const char *ep, char *last_id, int *stored)
{
	struct br_link *l = b->l;
	jsPubOptions po, wait;
	int i, k;

	for (i = 0; i < b->n; i++) {
		b->order[i] = &b->h[i];
		b->h[i].result = 0;
		snprintf(b->h[i].id, sizeof(b->h[i].id), "%s.%" PRIu64, ep, b->h[i].msg.seq);
	}
	qsort(b->order, (size_t)b->n, sizeof(b->order[0]), by_seq);
	b->answered = 0;
	for (i = 0; i < b->n; i++) {
		struct held *h = b->order[i];
		natsMsg *m = NULL;
		natsStatus s = build_msg(l, h, ep, &m);

		jsPubOptions_Init(&po);
		po.MsgId = h->id;
		po.ExpectStream = l->stream;
		if (i > 0)
			po.ExpectLastMsgId = b->order[i - 1]->id;
		else if (last_id[0])
			po.ExpectLastMsgId = last_id;
		if (s == NATS_OK) {
			b->async_used = 1;
			s = js_PublishMsgAsync(b->js, &m, &po);
		}
		if (s != NATS_OK) {
			natsMsg_Destroy(m);
			pthread_mutex_lock(&b->mu);
			for (k = i; k < b->n; k++)
				if (b->order[k]->result == 0) {
					b->order[k]->result = -1;
					b->answered++;
				}
			pthread_mutex_unlock(&b->mu);
			break;
		}
	}
	jsPubOptions_Init(&wait);
	wait.MaxWait = 3000;
	if (js_PublishAsyncComplete(b->js, &wait) != NATS_OK) {
		natsMsgList pend = { 0 };

		/* no ack in time: take those messages back, count them failed */
		if (js_PublishAsyncGetPendingList(&pend, b->js) == NATS_OK)
			natsMsgList_Destroy(&pend);
		pthread_mutex_lock(&b->mu);
		for (k = 0; k < b->n; k++)
			if (b->h[k].result == 0) {
				b->h[k].result = -1;
				b->answered++;
			}
		pthread_mutex_unlock(&b->mu);
	}
	pthread_mutex_lock(&b->mu);
	while (b->answered < b->n) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (pthread_cond_timedwait(&b->cv, &b->mu, &ts)) {
			for (k = 0; k < b->n; k++)
				if (b->h[k].result == 0)
					b->h[k].result = -1;
			break;
		}
	}
	pthread_mutex_unlock(&b->mu);
	for (i = 0; i < b->n && b->order[i]->result == 1; i++)
		;
	*stored = i;
	if (i > 0)
		snprintf(last_id, 64, "%s", b->order[i - 1]->id);
	if (i < b->n) {
		br_warn("export %s:%s: %d of %d messages not acknowledged; resending them one by one",
		        l->bus, l->chan, b->n - i, b->n);
		atomic_fetch_add(&l->c.errors, 1);
	}
	/* the rest, one at a time, in order (stored ones come back as duplicates) */
	for (; i < b->n; i++) {
		natsMsg *m = NULL;
		int r;

		if (build_msg(l, b->order[i], ep, &m) != NATS_OK) {
			natsMsg_Destroy(m);
			return -1;
		}
		r = publish_acked(l, b->js, m, b->order[i]->id);
		natsMsg_Destroy(m);
		if (r)
			return -1;
		*stored = i + 1;
		snprintf(last_id, 64, "%s", b->order[i]->id);
	}
	return 0;
}

static void batch_free(void *arg)
{
	struct batch *b = arg;

	jsCtx_Destroy(b->js);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	free(b);
}

static int carry_eos(struct br_link *l, jsCtx *js, const char *ep)
{
	natsMsg *m = NULL;
	char id[64];
	natsStatus s;
	int r = -1;

	snprintf(id, sizeof(id), "%s.eos", ep);
	s = natsMsg_Create(&m, l->subject, NULL, NULL, 0);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, BR_H_EOS, "1");
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, BR_H_EPOCH, ep);
	if (s == NATS_OK && publish_acked(l, js, m, id) == 0) {
		br_info("export %s:%s: end of stream carried", l->bus, l->chan);
		atomic_store(&l->c.state, BR_LINK_DONE);
		r = 0;
	}
	natsMsg_Destroy(m);
	return r;
}

void *br_queue_export(void *arg)
{
	struct br_link *l = arg;
	struct bridge *br = l->br;
	struct batch *b = calloc(1, sizeof(*b));
	shmbus_queue_t *qs[BR_WINDOW] = { 0 };
	shmbus_queue_opts_t qo;
	shmbus_bus_t *bus = NULL;
	jsOptions jo;
	char group[SHMBUS_NAME_MAX + 16], ep[24], last_id[64] = "";
	uint64_t epoch, next_lag = 0;
	int r, i, nq = 0, closed = 0;

	if (!b) {
		br_link_fail(l, "out of memory");
		return NULL;
	}
	b->l = l;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	jsOptions_Init(&jo);
	jo.Wait = 3000;
	jo.PublishAsync.MaxPending = BR_WINDOW * 2;
	jo.PublishAsync.AckHandler = on_pub_ack;
	jo.PublishAsync.AckHandlerClosure = b;
	if (natsConnection_JetStream(&b->js, br->nc, &jo) != NATS_OK) {
		br_link_fail(l, "JetStream context: %s", br_nats_err(NATS_ERR));
		goto out;
	}
	bus = br_bus_open(l, 0);
	if (!bus)
		goto out;
	/* members of a bridge that died holding messages become orphans now,
	 * so this run's first takes get them back first */
	shmbus_bus_gc(bus, NULL);
	snprintf(group, sizeof(group), "_bridge.%s", br->cfg.name);
	shmbus_queue_opts_init(&qo);
	qo.create = 0;
	for (i = 0; i < BR_WINDOW; i++) {
		r = shmbus_queue_open(bus, l->chan, &qo, &qs[i]);
		if (r == 0)
			r = shmbus_queue_join(qs[i], group, SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE);
		if (r) {
			shmbus_queue_close(qs[i]);
			qs[i] = NULL;
			if (i == 0) {
				br_link_fail(l, "cannot open the queue or join group %s: %s", group,
				             shmbus_last_error());
				goto out;
			}
			br_warn("export %s:%s: only %d in-flight messages (%s)", l->bus, l->chan, i,
			        shmbus_last_error());
			break;
		}
		nq++;
	}
	epoch = br_bus_epoch(bus);
	snprintf(ep, sizeof(ep), "%" PRIu64, epoch);
	if (wait_stream(l))
		goto out;
	br_info("export queue %s:%s (group %s, %d in flight) -> stream %s, subject %s", l->bus,
	        l->chan, group, nq, l->stream, l->subject);
	atomic_store(&l->c.state, BR_LINK_RUNNING);
	while (!br_stop && !closed) {
		int stored = 0;

		if (br_now_ns() >= next_lag) {
			update_export_lag(l, qs[0], group);
			next_lag = br_now_ns() + 250000000ull;
		}
		/* take up to nq messages: wait for the first only */
		b->n = 0;
		for (i = 0; i < nq; i++) {
			r = shmbus_queue_peek(qs[i], &b->h[b->n].msg, b->n ? 0 : 200000000);
			if (r == 0) {
				if (b->h[b->n].msg.flags & SHMBUS_MSG_REDELIVERED)
					b->redelivered++;
				b->h[b->n++].q = qs[i];
				continue;
			}
			if (r == SHMBUS_ECLOSED) {
				closed = 1;
				break;
			}
			if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_EAGAIN || r == SHMBUS_EINTR)
				break;
			if (r == SHMBUS_ELAPPED) {
				br_error("export %s:%s: the bridge's group was overtaken: %s", l->bus,
				         l->chan, shmbus_last_error());
				atomic_fetch_add(&l->c.errors, 1);
				break;
			}
			br_link_fail(l, "taking a message: %s", shmbus_last_error());
			goto out;
		}
		if (b->n == 0) {
			if (closed)
				carry_eos(l, b->js, ep);
			continue;
		}
		r = publish_batch(b, ep, last_id, &stored);
		/* JetStream has the first `stored` (in order): only now may the
		 * local queue forget them */
		for (i = 0; i < stored; i++) {
			struct held *h = b->order[i];
			if (shmbus_queue_release(h->q)) {
				br_link_fail(l, "releasing a message: %s", shmbus_last_error());
				goto out;
			}
			atomic_fetch_add(&l->c.msgs, 1);
			atomic_fetch_add(&l->c.bytes, h->msg.len);
		}
		if (r)
			break;  /* stopping: held messages go back to the group */
		if (closed) {
			/* other handles may still see messages before the end */
			closed = 0;
			continue;
		}
	}
out:
	if (b->redelivered || b->dups)
		br_info("export %s:%s: %" PRIu64 " messages handed out again locally, %" PRIu64
		        " found already stored by JetStream (duplicates dropped)", l->bus, l->chan,
		        b->redelivered, b->dups);
	for (i = 0; i < BR_WINDOW; i++)
		shmbus_queue_close(qs[i]);
	shmbus_bus_close(bus);
	if (b->js && b->async_used) {
		jsPubOptions w;
		natsMsgList pend = { 0 };

		jsPubOptions_Init(&w);
		w.MaxWait = 500;
		js_PublishAsyncComplete(b->js, &w);
		if (js_PublishAsyncGetPendingList(&pend, b->js) == NATS_OK)
			natsMsgList_Destroy(&pend);
	}
	l->late_free = b;
	l->late_free_fn = batch_free;
	return NULL;
}

/* ---- import ---------------------------------------------------------- */

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
	if (wait_stream(l))
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
		natsStatus s = js_PullSubscribe(&sub, br->js, l->subject, durable, NULL, &so, &je);

		if (s == NATS_OK)
			break;
		sub = NULL;
		if (!warned++)
			br_warn("import %s:%s: consumer %s on %s: %s (%d); retrying", l->bus, l->chan,
			        durable, l->stream, br_nats_err(s), (int)je);
		br_sleep_ms(500);
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

/*
 * queue_export.c -- carrying a local queue channel into a JetStream stream
 * without losing, duplicating or reordering a message.
 *
 * Export. The bridge joins the local queue as a durable consumer group
 * (_bridge.NAME, starting at the oldest message), so producers are held back
 * rather than overrun while the bridge is down. For each message: peek it
 * (zero-copy), publish it to the queue's JetStream stream with
 * Nats-Msg-Id = EPOCH.SEQ (bus creation time, local queue sequence), wait
 * for JetStream's acknowledgement, and only then release it locally. If
 * the bridge dies in between, the local queue hands the message out again
 * (to the restarted bridge) and JetStream drops the second copy as a
 * duplicate (the stream's de-duplication window is 10 minutes). Up to
 * BR_WINDOW messages are in flight at once, chained so that the stream
 * keeps the local order (see below); a failed publish is retried with the
 * same id until it is acknowledged. When the local queue is shut and
 * drained, one more message with header Shmbus-Eos (id EPOCH.eos) carries
 * the end of stream.
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
	if (br_wait_stream(l))
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

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
 * sequence is left unacknowledged so that JetStream redelivers in order.
 * The end-of-stream message shuts the local queue.
 *
 * The one window this cannot close: a bridge killed after the local put and
 * before the position store (two consecutive stores to shared memory) will
 * put that one message again when it restarts. Everything else -- server
 * restarts, lost acks, bridge crashes anywhere else -- is exactly once.
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
static int publish_acked(struct br_link *l, natsMsg *m, const char *id)
{
	struct bridge *br = l->br;
	jsPubOptions po;
	int attempt;

	jsPubOptions_Init(&po);
	po.MsgId = id;
	po.MaxWait = 2000;
	po.ExpectStream = l->stream;
	for (attempt = 0;; attempt++) {
		jsPubAck *ack = NULL;
		jsErrCode je = 0;
		natsStatus s = js_PublishMsg(&ack, br->js, m, &po, &je);

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
			br_ensure_stream(br, l);
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

void *br_queue_export(void *arg)
{
	struct br_link *l = arg;
	struct bridge *br = l->br;
	shmbus_queue_opts_t qo;
	shmbus_queue_t *q = NULL;
	shmbus_bus_t *bus;
	char group[SHMBUS_NAME_MAX + 16], id[64], ep[24];
	uint64_t epoch, next_lag = 0;
	int r;

	bus = br_bus_open(l, 0);
	if (!bus)
		return NULL;
	shmbus_queue_opts_init(&qo);
	qo.create = 0;
	r = shmbus_queue_open(bus, l->chan, &qo, &q);
	if (r) {
		br_link_fail(l, "cannot open queue: %s", shmbus_last_error());
		goto out;
	}
	snprintf(group, sizeof(group), "_bridge.%s", br->cfg.name);
	r = shmbus_queue_join(q, group, SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE);
	if (r) {
		br_link_fail(l, "cannot join group %s: %s", group, shmbus_last_error());
		goto out;
	}
	epoch = br_bus_epoch(bus);
	snprintf(ep, sizeof(ep), "%" PRIu64, epoch);
	if (wait_stream(l))
		goto out;
	br_info("export queue %s:%s (group %s) -> stream %s, subject %s", l->bus, l->chan,
	        group, l->stream, l->subject);
	atomic_store(&l->c.state, BR_LINK_RUNNING);
	while (!br_stop) {
		shmbus_msg_t msg;
		natsMsg *m = NULL;
		natsStatus s;

		if (br_now_ns() >= next_lag) {
			update_export_lag(l, q, group);
			next_lag = br_now_ns() + 250000000ull;
		}
		r = shmbus_queue_peek(q, &msg, 200000000);
		if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_EINTR)
			continue;
		if (r == SHMBUS_ELAPPED) {
			br_error("export %s:%s: the bridge's group was overtaken: %s", l->bus, l->chan,
			         shmbus_last_error());
			atomic_fetch_add(&l->c.errors, 1);
			continue;
		}
		if (r == SHMBUS_ECLOSED) {
			snprintf(id, sizeof(id), "%s.eos", ep);
			s = natsMsg_Create(&m, l->subject, NULL, NULL, 0);
			if (s == NATS_OK)
				s = natsMsgHeader_Set(m, BR_H_EOS, "1");
			if (s == NATS_OK)
				s = natsMsgHeader_Set(m, BR_H_EPOCH, ep);
			if (s == NATS_OK && publish_acked(l, m, id) == 0) {
				br_info("export %s:%s: end of stream carried", l->bus, l->chan);
				atomic_store(&l->c.state, BR_LINK_DONE);
			}
			natsMsg_Destroy(m);
			break;
		}
		if (r) {
			br_link_fail(l, "taking a message: %s", shmbus_last_error());
			break;
		}
		snprintf(id, sizeof(id), "%s.%" PRIu64, ep, msg.seq);
		s = natsMsg_Create(&m, l->subject, NULL, msg.data, (int)msg.len);
		if (s == NATS_OK)
			s = natsMsgHeader_Set(m, BR_H_EPOCH, ep);
		if (s != NATS_OK) {
			br_link_fail(l, "building a message: %s", br_nats_err(s));
			break;
		}
		if (publish_acked(l, m, id)) {
			natsMsg_Destroy(m);
			break;  /* stopping: the held message goes back to the group */
		}
		natsMsg_Destroy(m);
		/* JetStream has it: only now may the local queue forget it */
		r = shmbus_queue_release(q);
		if (r) {
			br_link_fail(l, "releasing a message: %s", shmbus_last_error());
			break;
		}
		atomic_fetch_add(&l->c.msgs, 1);
		atomic_fetch_add(&l->c.bytes, msg.len);
	}
out:
	shmbus_queue_close(q);
	shmbus_bus_close(bus);
	return NULL;
}

/* ---- import ---------------------------------------------------------- */

enum { POS_SEQ = 0, POS_STREAM_CREATED, POS_EOS, POS_N };

struct qimporter {
	struct br_link *l;
	shmbus_bus_t *bus;
	shmbus_queue_t *q;
	shmbus_state_t *pos_st;
	uint64_t pos[POS_N];
	uint64_t gap_since, dups;
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

enum { H_NEXT = 0, H_STOP = 1, H_DONE = 2 };

static int handle(struct qimporter *im, natsMsg *m)
{
	struct br_link *l = im->l;
	jsMsgMetaData *meta = NULL;
	const char *eos = NULL;
	uint64_t s;
	int r;

	if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
		br_warn("import %s:%s: a message without JetStream metadata; ignored", l->bus, l->chan);
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
		return H_NEXT;
	}
	if (im->pos[POS_SEQ] && s != im->pos[POS_SEQ] + 1) {
		uint64_t now = br_now_ns();

		if (!im->gap_since)
			im->gap_since = now;
		if (now - im->gap_since < 3ull * (uint64_t)l->br->cfg.ack_wait_ms * 1000000ull) {
			br_debug("import %s:%s: stream seq %" PRIu64 " ahead of %" PRIu64
			         "; waiting for redelivery", l->bus, l->chan, s, im->pos[POS_SEQ] + 1);
			return H_NEXT;  /* not acked: comes again, in order */
		}
		br_warn("import %s:%s: stream messages %" PRIu64 "..%" PRIu64
		        " never came (deleted from the stream?); going on", l->bus, l->chan,
		        im->pos[POS_SEQ] + 1, s - 1);
	}
	im->gap_since = 0;
	if (natsMsgHeader_Get(m, BR_H_EOS, &eos) == NATS_OK) {
		shmbus_queue_shut(im->q);
		im->pos[POS_SEQ] = s;
		im->pos[POS_EOS] = 1;
		if (save_pos(im))
			return H_STOP;
		natsMsg_Ack(m, NULL);
		br_info("import %s:%s: end of stream; local queue shut", l->bus, l->chan);
		atomic_store(&l->c.state, BR_LINK_DONE);
		return H_DONE;
	}
	do {
		r = shmbus_queue_put(im->q, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
		                     200000000);
	} while ((r == SHMBUS_ETIMEDOUT || r == SHMBUS_EINTR) && !br_stop);
	if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_EINTR)
		return H_STOP;  /* not committed, not acked: comes again */
	if (r) {
		br_link_fail(l, "putting a message into the local queue: %s", shmbus_last_error());
		return H_STOP;
	}
	im->pos[POS_SEQ] = s;
	if (save_pos(im))
		return H_STOP;
	natsMsg_Ack(m, NULL);
	atomic_fetch_add(&l->c.msgs, 1);
	atomic_fetch_add(&l->c.bytes, (uint64_t)natsMsg_GetDataLength(m));
	return H_NEXT;
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
	im.bus = br_bus_open(l, 1);
	if (!im.bus)
		return NULL;
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

		if (s == NATS_TIMEOUT)
			continue;
		if (s != NATS_OK) {
			br_debug("import %s:%s: fetch: %s (%d)", l->bus, l->chan, br_nats_err(s), (int)je);
			br_sleep_ms(200);
			continue;
		}
		for (i = 0; i < list.Count && h == H_NEXT; i++)
			h = handle(&im, list.Msgs[i]);
		natsMsgList_Destroy(&list);
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
	shmbus_state_close(im.pos_st);
	shmbus_queue_close(im.q);
	shmbus_bus_close(im.bus);
	return NULL;
}

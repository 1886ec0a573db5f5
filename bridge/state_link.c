/*
 * state_link.c -- carrying state channels across NATS.
 *
 * Export: wait for a new value of the local channel (shmbus_state_wait),
 * copy it, publish it on PREFIX.state.NAME with its sequence number, dtype,
 * shape and the bus epoch in headers. Values written faster than the
 * bridge can publish are coalesced: the reader of a state channel only ever
 * wants the latest. The latest value is also stored in the key-value bucket
 * (as the same message, published to the bucket's subject so the headers
 * are kept), at most every kv_interval; a value that arrives inside the
 * interval is stored when the interval ends, so the bucket never keeps a
 * stale value for longer than kv_interval.
 *
 * Import: subscribe to the subject first, then fetch the bucket's value
 * (a late joiner gets the current value at once), then apply live values;
 * after a reconnect, fetch the bucket's value again (what was published
 * while this side was away is not on the subject any more). A value
 * published just before the subscription may still be on its way to the
 * bucket (the exporter's deferred store, up to one KV interval later), so
 * the bucket is read once more one exporter KV interval (carried in the
 * stored value's Shmbus-Kv-Interval header) plus a margin after the
 * subscription or reconnect: a late joiner has the current value within
 * one KV interval.
 * A value is applied only if it is newer than the last one applied:
 * (epoch, seq) orders them, the epoch being the exporting bus's creation
 * time (a re-created bus restarts its sequence numbers). The local channel
 * is created with the remote dtype and shape, and with many writers
 * (SHMBUS_WRITERS_MANY) so that local programs may write it too; if it
 * exists with another type, the link stops with an error naming both
 * types. The local sequence numbers are the local channel's own (one per
 * value applied), not the remote ones.
 *
 * Local writers and imported values. A local program may write a channel
 * that is also imported (seed 000's plant writes u = 0 once; then the
 * remote controller's values arrive). On a many-writer channel both simply
 * write in turn: the bus keeps whichever was written last. On a
 * single-writer channel whose writer role a live local program holds, the
 * remote value cannot be written: it waits (the newest one only) and is
 * written as soon as that program gives the role up; the link goes on and
 * says so once. The importer itself holds such a role only for the moment
 * of each write, so a local program may take it between two imports. A value an importer wrote is never exported again by this
 * bridge (the echo set below), so a channel both exported and imported
 * does not bounce between two bridges; and when both sides write such a
 * channel at once, the stamps (below) make both keep the later write.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge.h"

struct vtype {
	int dtype;
	uint32_t ndim;
	uint64_t shape[SHMBUS_MAX_DIMS];
};

static void shape_str(char *buf, size_t cap, const struct vtype *t)
{
	size_t n = 0;
	uint32_t i;

	buf[0] = 0;
	for (i = 0; i < t->ndim && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%" PRIu64, i ? "," : "", t->shape[i]);
}

static void type_str(char *buf, size_t cap, const struct vtype *t)
{
	char sh[96];
	const char *dn = shmbus_dtype_name(t->dtype);

	shape_str(sh, sizeof(sh), t);
	snprintf(buf, cap, "%s[%s]", dn ? dn : "?", sh);
}

/* A scalar is shape [1] whether written as ndim 0 or 1. */
static void type_norm(struct vtype *t)
{
	if (t->ndim == 0) {
		t->ndim = 1;
		t->shape[0] = 1;
	}
}

static int type_eq(const struct vtype *a, const struct vtype *b)
{
	uint32_t i;

	if (a->dtype != b->dtype || a->ndim != b->ndim)
		return 0;
	for (i = 0; i < a->ndim; i++)
		if (a->shape[i] != b->shape[i])
			return 0;
	return 1;
}

/* ---- what the bridge knows of each local channel it carries -----------
 * One record per local bus and channel, shared by the export and import
 * links of that channel in this bridge (under rec_mu):
 *  - the echo set: the local sequence numbers the importer wrote, so the
 *    exporter skips them (a ring of the last 64; the exporter reads only
 *    the newest value). The importer records the number while it holds
 *    the write (between write_begin and commit nobody else publishes), and
 *    the exporter reads the value and checks the set under the same mutex,
 *    so an imported value is never taken for a local one;
 *  - the stamp of the newest value on the bus that this bridge knows of:
 *    a local value gets one when the exporter sends it (wall-clock ns,
 *    above every stamp seen before), an imported value brings its own. An
 *    importer writes a remote value only if its stamp is newer (ties: the
 *    larger origin name); so when both sides write a two-way channel at
 *    once, both compare the same two stamps and end with the same value. */
#define ECHO_RING 64

struct chanrec {
	char bus[BR_STR];
	char chan[SHMBUS_NAME_MAX + 1];
	uint64_t seq[ECHO_RING];
	unsigned n;
	uint64_t stamp;                     /* 0: none yet */
	char origin[SHMBUS_NAME_MAX + 1];   /* the bridge that stamped it */
};

static struct chanrec recs[BR_MAX_LINKS];
static int nrecs;
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;

/* The record of l's local channel (NULL only if the table is full: then
 * the link works without echo suppression and stamps, as a lone link). */
static struct chanrec *rec_get(const struct br_link *l)
{
	struct chanrec *r = NULL;
	int i;

	pthread_mutex_lock(&rec_mu);
	for (i = 0; i < nrecs && !r; i++)
		if (!strcmp(recs[i].bus, l->bus) && !strcmp(recs[i].chan, l->chan))
			r = &recs[i];
	if (!r && nrecs < BR_MAX_LINKS) {
		r = &recs[nrecs++];
		snprintf(r->bus, sizeof(r->bus), "%s", l->bus);
		snprintf(r->chan, sizeof(r->chan), "%s", l->chan);
	}
	pthread_mutex_unlock(&rec_mu);
	return r;
}

/* Under rec_mu. */
static int rec_imported(const struct chanrec *r, uint64_t seq)
{
	int i;

	for (i = 0; r && i < ECHO_RING; i++)
		if (r->seq[i] == seq)
			return 1;
	return 0;
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static natsStatus set_u64(natsMsg *m, const char *key, uint64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%" PRIu64, v);
	return natsMsgHeader_Set(m, key, s);
}

static natsStatus make_value_msg(natsMsg **out, const char *subject, const void *buf,
                                 size_t len, const struct vtype *t, uint64_t seq,
                                 uint64_t epoch, const char *origin, uint64_t stamp)
{
	char sh[96];
	natsStatus s;

	shape_str(sh, sizeof(sh), t);
	s = natsMsg_Create(out, subject, NULL, buf, (int)len);
	if (s == NATS_OK)
		s = set_u64(*out, BR_H_SEQ, seq);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(*out, BR_H_DTYPE, shmbus_dtype_name(t->dtype));
	if (s == NATS_OK)
		s = natsMsgHeader_Set(*out, BR_H_SHAPE, sh);
	if (s == NATS_OK)
		s = set_u64(*out, BR_H_EPOCH, epoch);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(*out, BR_H_ORIGIN, origin);
	if (s == NATS_OK)
		s = set_u64(*out, BR_H_STAMP, stamp);
	if (s != NATS_OK) {
		natsMsg_Destroy(*out);
		*out = NULL;
	}
	return s;
}

/* Open the local channel the export reads (it exists: main waited for it). */
static shmbus_state_t *open_existing_state(struct br_link *l, shmbus_bus_t *bus)
{
	shmbus_state_opts_t so;
	shmbus_state_t *st = NULL;
	int r;

	shmbus_state_opts_init(&so);
	so.create = 0;
	so.ndim = 0;
	r = shmbus_state_open(bus, l->chan, &so, &st);
	if (r) {
		br_link_fail(l, "cannot open state channel: %s", shmbus_last_error());
		return NULL;
	}
	return st;
}

static int kv_publish(struct bridge *br, struct br_link *l, const void *buf, size_t len,
                      const struct vtype *t, uint64_t seq, uint64_t epoch, uint64_t stamp)
{
	char subj[BR_STR + 160];
	jsPubOptions po;
	jsPubAck *ack = NULL;
	jsErrCode je = 0;
	natsMsg *m = NULL;
	natsStatus s;

	if (br_js_ready(br) != NATS_OK)
		return -1;
	snprintf(subj, sizeof(subj), "$KV.%s.%s", br->kv_bucket, l->remote);
	s = make_value_msg(&m, subj, buf, len, t, seq, epoch, br->cfg.name, stamp);
	if (s != NATS_OK)
		return -1;
	/* the importer's second look at the bucket waits this long */
	if (set_u64(m, BR_H_KV_INTERVAL, (uint64_t)br->cfg.kv_interval_ms) != NATS_OK) {
		natsMsg_Destroy(m);
		return -1;
	}
	jsPubOptions_Init(&po);
	po.MaxWait = 1000;
	s = js_PublishMsg(&ack, br->js, m, &po, &je);
	natsMsg_Destroy(m);
	jsPubAck_Destroy(ack);
	if (s != NATS_OK) {
		br_debug("export %s:%s: KV update failed (%s); will retry", l->bus, l->chan,
		         br_nats_err(s));
		return -1;
	}
	return 0;
}

void *br_state_export(void *arg)
{
	struct br_link *l = arg;
	struct bridge *br = l->br;
	shmbus_channel_info_t ci;
	shmbus_state_t *st = NULL;
	shmbus_bus_t *bus;
	struct vtype t;
	void *buf = NULL;
	uint64_t last = 0, seq = 0, epoch, last_kv = 0, kv_retry = 0, stamp = 0;
	struct chanrec *rec = rec_get(l);
	uint64_t interval = (uint64_t)br->cfg.kv_interval_ms * 1000000ull;
	int kv_ready = 0, kv_pending = 0, drops = 0, kv_failures = 0;
	size_t len;

	bus = br_bus_open(l, 0);
	if (!bus)
		return NULL;
	st = open_existing_state(l, bus);
	if (!st)
		goto out;
	memset(&ci, 0, sizeof(ci));
	ci.size_of = sizeof(ci);
	shmbus_state_info(st, &ci);
	t.dtype = ci.dtype;
	t.ndim = ci.ndim;
	memcpy(t.shape, ci.shape, sizeof(t.shape));
	type_norm(&t);
	len = shmbus_state_size(st);
	if (br->nc && natsConnection_GetMaxPayload(br->nc) > 0 &&
	    (int64_t)len + 1024 > natsConnection_GetMaxPayload(br->nc)) {
		br_link_fail(l, "a value is %zu bytes, more than the server's max payload %" PRId64,
		             len, natsConnection_GetMaxPayload(br->nc));
		goto out;
	}
	buf = malloc(len ? len : 1);
	if (!buf) {
		br_link_fail(l, "out of memory for a %zu-byte value", len);
		goto out;
	}
	epoch = br_bus_epoch(bus);
	{
		char ts[128];
		type_str(ts, sizeof(ts), &t);
		br_info("export state %s:%s (%s) -> %s", l->bus, l->chan, ts, l->subject);
	}
	atomic_store(&l->c.state, BR_LINK_RUNNING);
	while (!br_stop) {
		uint64_t now = br_now_ns();
		int64_t timeout = 200000000;
		natsMsg *m = NULL;
		natsStatus s;
		int r;

		if (!kv_ready && now >= kv_retry) {
			s = br_ensure_kv(br);
			kv_ready = s == NATS_OK;
			if (!kv_ready) {
				br_debug("KV bucket %s not ready: %s", br->kv_bucket, br_nats_err(s));
				kv_retry = now + (uint64_t)br_backoff_ms(kv_failures++) * 1000000ull;
			}
		}
		if (kv_pending && kv_ready) {
			if (now >= last_kv + interval) {
				if (kv_publish(br, l, buf, len, &t, seq, epoch, stamp) == 0)
					kv_pending = 0;
				last_kv = now;
				now = br_now_ns();
			}
			if (kv_pending && last_kv + interval > now &&
			    (int64_t)(last_kv + interval - now) < timeout)
				timeout = (int64_t)(last_kv + interval - now);
		}
		r = shmbus_state_wait(st, last, timeout, &seq);
		if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_EINTR)
			continue;
		if (r == 0) {
			int echo;

			/* read, check and stamp as one step against the importer */
			pthread_mutex_lock(&rec_mu);
			r = shmbus_state_read(st, buf, len, &seq);
			echo = r == 0 && rec_imported(rec, seq);
			if (r == 0 && !echo) {
				uint64_t now_stamp = wall_ns();

				stamp = rec && now_stamp <= rec->stamp ? rec->stamp + 1 : now_stamp;
				if (rec) {
					rec->stamp = stamp;
					snprintf(rec->origin, sizeof(rec->origin), "%s", br->cfg.name);
				}
			}
			pthread_mutex_unlock(&rec_mu);
			if (r == 0 && echo) {
				/* a value this bridge imported: sending it back would echo */
				last = seq;
				br_debug("export %s:%s: seq %" PRIu64 " was imported here; not sent back",
				         l->bus, l->chan, seq);
				continue;
			}
		}
		if (r) {
			br_link_fail(l, "reading the local value: %s", shmbus_last_error());
			break;
		}
		last = seq;
		s = make_value_msg(&m, l->subject, buf, len, &t, seq, epoch, br->cfg.name, stamp);
		if (s == NATS_OK)
			s = natsConnection_PublishMsg(br->nc, m);
		natsMsg_Destroy(m);
		if (s != NATS_OK) {
			/* disconnected with a full reconnect buffer: the value is
			 * dropped, a newer one (or the KV) will carry the state */
			if (!drops++)
				br_warn("export %s:%s: publish failed (%s); values are dropped until NATS is back",
				        l->bus, l->chan, br_nats_err(s));
			atomic_fetch_add(&l->c.errors, 1);
		} else {
			drops = 0;
			atomic_fetch_add(&l->c.msgs, 1);
			atomic_fetch_add(&l->c.bytes, len);
		}
		kv_pending = 1;
	}
	/* stopping: the bucket gets the last value seen, for late joiners */
	if (kv_pending && kv_ready)
		kv_publish(br, l, buf, len, &t, seq, epoch, stamp);
out:
	free(buf);
	shmbus_state_close(st);
	shmbus_bus_close(bus);
	return NULL;
}

/* ---- import ---------------------------------------------------------- */

struct importer {
	struct br_link *l;
	shmbus_bus_t *bus;
	shmbus_state_t *st;
	struct vtype t;
	uint64_t last_epoch, last_seq;
	int have;
	uint64_t kv_interval_ms;   /* the exporter's, from the bucket; else ours */
	struct chanrec *rec;
	/* the newest value a live local single writer kept out, if any */
	natsMsg *pending;
	uint64_t pending_epoch, pending_seq;
	int busy_said;
};

static int header_u64(natsMsg *m, const char *key, uint64_t *v)
{
	const char *s = NULL;
	char *end;

	if (natsMsgHeader_Get(m, key, &s) != NATS_OK || !s || !*s)
		return -1;
	*v = strtoull(s, &end, 10);
	return *end ? -1 : 0;
}

/* Parse and check the headers of a value message. */
static int value_type(natsMsg *m, struct vtype *t, char *why, size_t cap)
{
	const char *ds = NULL, *ss = NULL, *p;
	size_t esz, n = 1;
	char *end;
	int len = natsMsg_GetDataLength(m);

	memset(t, 0, sizeof(*t));
	if (natsMsgHeader_Get(m, BR_H_DTYPE, &ds) != NATS_OK ||
	    natsMsgHeader_Get(m, BR_H_SHAPE, &ss) != NATS_OK) {
		snprintf(why, cap, "no %s/%s headers", BR_H_DTYPE, BR_H_SHAPE);
		return -1;
	}
	t->dtype = shmbus_dtype_parse(ds);
	if (t->dtype < 0) {
		snprintf(why, cap, "unknown dtype '%s'", ds);
		return -1;
	}
	for (p = ss; *p; ) {
		uint64_t d = strtoull(p, &end, 10);
		if (end == p || d == 0 || d > (1ull << 40) || t->ndim >= SHMBUS_MAX_DIMS) {
			snprintf(why, cap, "bad shape '%s'", ss);
			return -1;
		}
		t->shape[t->ndim++] = d;
		n *= d;
		if (n > (1ull << 40)) {
			snprintf(why, cap, "bad shape '%s'", ss);
			return -1;
		}
		p = *end == ',' ? end + 1 : end;
		if (*end && *end != ',') {
			snprintf(why, cap, "bad shape '%s'", ss);
			return -1;
		}
	}
	type_norm(t);
	esz = shmbus_dtype_size(t->dtype);
	if ((uint64_t)len != n * esz) {
		snprintf(why, cap, "%d bytes for %s x %zu elements", len, ds, n);
		return -1;
	}
	return 0;
}

static int open_local(struct importer *im, const struct vtype *t)
{
	struct br_link *l = im->l;
	shmbus_state_opts_t so;
	char want[128], have[128];
	int r;

	shmbus_state_opts_init(&so);
	so.dtype = t->dtype;
	so.ndim = t->ndim;
	memcpy(so.shape, t->shape, sizeof(so.shape));
	so.create = 1;
	/* Made here: many writers, so local programs may write it too. An
	 * existing channel is taken as it was made (one writer or many). */
	so.writers = SHMBUS_WRITERS_MANY;
	r = shmbus_state_open(im->bus, l->chan, &so, &im->st);
	if (r == SHMBUS_ETYPE) {
		so.writers = SHMBUS_WRITERS_DEFAULT;
		r = shmbus_state_open(im->bus, l->chan, &so, &im->st);
	}
	if (r == SHMBUS_ETYPE) {
		shmbus_channel_info_t ci;
		struct vtype lt;

		memset(&ci, 0, sizeof(ci));
		ci.size_of = sizeof(ci);
		type_str(want, sizeof(want), t);
		if (shmbus_channel_info(im->bus, l->chan, &ci) == 0 && ci.kind == SHMBUS_KIND_STATE) {
			lt.dtype = ci.dtype;
			lt.ndim = ci.ndim;
			memcpy(lt.shape, ci.shape, sizeof(lt.shape));
			type_norm(&lt);
			type_str(have, sizeof(have), &lt);
		} else {
			snprintf(have, sizeof(have), "a %s channel",
			         shmbus_kind_name(ci.kind) ? shmbus_kind_name(ci.kind) : "other");
		}
		br_link_fail(l, "type mismatch: the remote value '%s' is %s but the local channel is %s",
		             l->remote, want, have);
		return -1;
	}
	if (r) {
		br_link_fail(l, "cannot open the local state channel: %s", shmbus_last_error());
		return -1;
	}
	im->t = *t;
	return 0;
}

/* Under rec_mu: write one value into the local channel; its local seq
 * goes into the echo set first (see above). SHMBUS_EBUSY: a live local
 * single writer. On a single-writer channel the role is given up again
 * after the write: the importer holds it only while it writes, so a local
 * program that starts writing later gets it (last writer wins), and the
 * importer's next value waits for that program instead. */
static int write_local(struct importer *im, const void *data, size_t len)
{
	void *p;
	uint64_t s;
	int r;

	if (len != shmbus_state_size(im->st))
		return shmbus_state_write(im->st, data, len);   /* names the sizes */
	r = shmbus_state_write_begin(im->st, &p);
	if (r)
		return r;
	/* while we hold the write nobody else publishes: ours is the next */
	s = shmbus_state_seq(im->st) + 1;
	if (im->rec)
		im->rec->seq[im->rec->n++ % ECHO_RING] = s;
	memcpy(p, data, len);
	r = shmbus_state_write_commit(im->st);
	/* (a many-writer channel's turn ended with the commit: no-op there) */
	shmbus_state_release_writer(im->st);
	return r;
}

/* Returns 0 (applied or skipped), 1 (kept out by a local writer: keep m
 * and try again), -1 when the link must stop. */
static int apply_value(struct importer *im, natsMsg *m, const char *from)
{
	struct br_link *l = im->l;
	struct vtype t;
	uint64_t seq, epoch;
	char why[160], a[128], b[128];
	const char *origin = NULL;
	uint64_t stamp = 0;
	int r, has_stamp;

	if (header_u64(m, BR_H_SEQ, &seq) || header_u64(m, BR_H_EPOCH, &epoch)) {
		br_warn("import %s:%s: a message without %s/%s headers on %s; ignored",
		        l->bus, l->chan, BR_H_SEQ, BR_H_EPOCH, natsMsg_GetSubject(m));
		atomic_fetch_add(&l->c.errors, 1);
		return 0;
	}
	/* our own exporter's value (this bridge exports and imports the
	 * channel under one name): it came from here */
	if (natsMsgHeader_Get(m, BR_H_ORIGIN, &origin) == NATS_OK && origin &&
	    !strcmp(origin, l->br->cfg.name))
		return 0;
	if (value_type(m, &t, why, sizeof(why))) {
		br_warn("import %s:%s: bad value message (%s); ignored", l->bus, l->chan, why);
		atomic_fetch_add(&l->c.errors, 1);
		return 0;
	}
	/* older than what we applied: an earlier epoch (the exporting bus was
	 * re-created since), or the same epoch and not a newer sequence */
	if (im->have && (epoch < im->last_epoch || (epoch == im->last_epoch && seq <= im->last_seq)))
		return 0;
	if (!im->st) {
		if (open_local(im, &t))
			return -1;
	} else if (!type_eq(&t, &im->t)) {
		type_str(a, sizeof(a), &t);
		type_str(b, sizeof(b), &im->t);
		br_link_fail(l, "type mismatch: the remote value '%s' changed to %s but the local channel is %s",
		             l->remote, a, b);
		return -1;
	}
	has_stamp = header_u64(m, BR_H_STAMP, &stamp) == 0;
	pthread_mutex_lock(&rec_mu);
	if (has_stamp && im->rec && im->rec->stamp &&
	    (stamp < im->rec->stamp ||
	     (stamp == im->rec->stamp && strcmp(origin ? origin : "", im->rec->origin) <= 0))) {
		/* this bus has a newer value (written here and sent, or
		 * imported from elsewhere): the remote one lost */
		pthread_mutex_unlock(&rec_mu);
		br_debug("import %s:%s: remote seq %" PRIu64 " is older than the value here; not written",
		         l->bus, l->chan, seq);
		im->have = 1;
		im->last_epoch = epoch;
		im->last_seq = seq;
		return 0;
	}
	r = write_local(im, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
	if (r == 0 && has_stamp && im->rec) {
		im->rec->stamp = stamp;
		snprintf(im->rec->origin, sizeof(im->rec->origin), "%s", origin ? origin : "");
	}
	pthread_mutex_unlock(&rec_mu);
	if (r == SHMBUS_EBUSY) {
		/* a local program is the channel's single writer: the value
		 * waits for it to give the role up; the link goes on */
		if (!im->busy_said++)
			br_warn("import %s:%s: %s; the remote value waits until that writer stops "
			        "(create the channel with many writers to share it)",
			        l->bus, l->chan, shmbus_last_error());
		return 1;
	}
	if (r) {
		br_link_fail(l, "writing the local value: %s", shmbus_last_error());
		return -1;
	}
	if (im->busy_said) {
		br_info("import %s:%s: the local writer is gone; remote values are written again",
		        l->bus, l->chan);
		im->busy_said = 0;
	}
	if (!im->have)
		br_info("import %s:%s: first value (remote seq %" PRIu64 ", from %s)",
		        l->bus, l->chan, seq, from);
	im->have = 1;
	im->last_epoch = epoch;
	im->last_seq = seq;
	atomic_fetch_add(&l->c.msgs, 1);
	atomic_fetch_add(&l->c.bytes, (uint64_t)natsMsg_GetDataLength(m));
	return 0;
}

/* Keep m (taken over) as the value to write once the local writer is
 * gone, unless the one kept already is newer. */
static void keep_pending(struct importer *im, natsMsg *m)
{
	uint64_t seq = 0, epoch = 0;

	header_u64(m, BR_H_SEQ, &seq);
	header_u64(m, BR_H_EPOCH, &epoch);
	if (im->pending && (epoch < im->pending_epoch ||
	                    (epoch == im->pending_epoch && seq <= im->pending_seq))) {
		natsMsg_Destroy(m);
		return;
	}
	natsMsg_Destroy(im->pending);
	im->pending = m;
	im->pending_epoch = epoch;
	im->pending_seq = seq;
}

/* The bucket's value, if any: 1 done (found or absent), 0 try again. */
static int fetch_kv(struct importer *im)
{
	struct br_link *l = im->l;
	struct bridge *br = l->br;
	char subj[BR_STR + 160];
	natsMsg *m = NULL;
	natsStatus s;
	int r;

	snprintf(subj, sizeof(subj), "$KV.%s.%s", br->kv_bucket, l->remote);
	s = br_kv_last(br, subj, &m);
	if (s == NATS_OK) {
		uint64_t ki;

		if (header_u64(m, BR_H_KV_INTERVAL, &ki) == 0 && ki > 0 && ki <= 3600000)
			im->kv_interval_ms = ki;
		r = apply_value(im, m, "the KV bucket");
		if (r == 1)
			keep_pending(im, m);
		else
			natsMsg_Destroy(m);
		return r < 0 ? -1 : 1;
	}
	if (s == NATS_NOT_FOUND) {
		br_debug("import %s:%s: no stored value yet", l->bus, l->chan);
		return 1;
	}
	br_debug("import %s:%s: KV read not possible yet (%s); retrying", l->bus, l->chan,
	         br_nats_err(s));
	return 0;
}

/* How long after subscribing the bucket is read again: the exporter's KV
 * interval, plus a margin for its store to go through JetStream. */
static uint64_t kv_second_look(const struct importer *im)
{
	return (im->kv_interval_ms + 250) * 1000000ull;
}

void *br_state_import(void *arg)
{
	struct br_link *l = arg;
	struct bridge *br = l->br;
	struct importer im;
	natsSubscription *sub = NULL;
	uint64_t kv_next = 0, kv_again = 0, seen_reconnects = atomic_load(&br->reconnects);
	int kv_done = 0, kv_fail = 0;
	natsStatus s;

	memset(&im, 0, sizeof(im));
	im.l = l;
	im.rec = rec_get(l);
	im.bus = br_bus_open(l, 1);
	if (!im.bus)
		return NULL;
	s = natsConnection_SubscribeSync(&sub, br->nc, l->subject);
	if (s != NATS_OK) {
		br_link_fail(l, "subscribing to %s: %s", l->subject, br_nats_err(s));
		goto out;
	}
	natsSubscription_SetPendingLimits(sub, 65536, 256 << 20);
	br_info("import state %s -> %s:%s", l->subject, l->bus, l->chan);
	atomic_store(&l->c.state, BR_LINK_RUNNING);
	im.kv_interval_ms = (uint64_t)br->cfg.kv_interval_ms;
	kv_again = br_now_ns();   /* subscribed now; see kv_second_look */
	while (!br_stop && atomic_load(&l->c.state) != BR_LINK_FAILED) {
		natsMsg *m = NULL;

		/* after a reconnect, values published while this side was away
		 * are gone from the subject: the bucket has the latest */
		if (atomic_load(&br->reconnects) != seen_reconnects) {
			seen_reconnects = atomic_load(&br->reconnects);
			kv_done = 0;
			kv_fail = 0;
			kv_next = br_now_ns() + 300000000ull;
			kv_again = kv_next;
		}
		/* the second look: what was published just before we
		 * subscribed reaches the bucket within one exporter interval */
		if (kv_done && kv_again && br_now_ns() >= kv_again + kv_second_look(&im)) {
			br_debug("import %s:%s: reading the bucket again", l->bus, l->chan);
			kv_again = 0;
			kv_done = 0;
			kv_fail = 0;
			kv_next = 0;
		}
		if (!kv_done && br_now_ns() >= kv_next) {
			int r = fetch_kv(&im);
			if (r < 0)
				break;
			kv_done = r;
			kv_fail = r ? 0 : kv_fail + 1;
			kv_next = br_now_ns() + (uint64_t)br_backoff_ms(kv_fail - 1) * 1000000ull;
		}
		/* a value kept out by a local single writer: try again */
		if (im.pending) {
			natsMsg *pm = im.pending;
			int r;

			im.pending = NULL;
			r = apply_value(&im, pm, "waiting");
			if (r < 0) {
				natsMsg_Destroy(pm);
				break;
			}
			if (r == 1)
				keep_pending(&im, pm);
			else
				natsMsg_Destroy(pm);
		}
		s = natsSubscription_NextMsg(&m, sub, 200);
		if (s == NATS_TIMEOUT)
			continue;
		if (s != NATS_OK) {
			if (s == NATS_SLOW_CONSUMER) {
				br_warn("import %s:%s: slow consumer; older values dropped", l->bus, l->chan);
				continue;
			}
			br_debug("import %s:%s: %s", l->bus, l->chan, br_nats_err(s));
			br_sleep_ms(100);
			continue;
		}
		switch (apply_value(&im, m, "live")) {
		case 1:
			keep_pending(&im, m);
			break;
		case 0:
			natsMsg_Destroy(m);
			break;
		default:
			natsMsg_Destroy(m);
			goto out;
		}
	}
out:
	if (sub) {
		natsSubscription_Unsubscribe(sub);
		natsSubscription_Destroy(sub);
	}
	natsMsg_Destroy(im.pending);
	shmbus_state_close(im.st);
	shmbus_bus_close(im.bus);
	return NULL;
}

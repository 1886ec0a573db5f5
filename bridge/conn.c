/*
 * conn.c -- the bridge's one NATS connection and its JetStream context.
 *
 * The connection retries forever: a bridge started before its server, or
 * whose server restarts, keeps trying every 250 ms (with jitter) and the
 * client library resends its subscriptions when it is back. While it is
 * down, core publishes (state values) are buffered by the client up to
 * 8 MiB and JetStream calls fail; the links retry those themselves, so no
 * queue message depends on the connection being up at a given moment.
 *
 * JetStream requests (bucket and stream lookups and creation, stored-value
 * reads) are sent only once $JS.API.INFO has answered on the current
 * connection (br_js_ready, asked again after every reconnect), and failed
 * ones are retried with a backoff of 250 ms doubling to 5 s: a server that
 * has just come up, or a cluster still electing its leader, is not hit by
 * a burst of create requests from every link at once. The key-value bucket
 * is created by one link thread at a time.
 *
 * Reading a stored value never races the bucket's creation. nats-server
 * 2.9.10 makes a stream visible to API requests before its store is set
 * up, and a $JS.API.STREAM.MSG.GET arriving in that window (an importer
 * reading the bucket while the exporter on another machine creates it)
 * crashes the server (nil dereference in jsMsgGetRequest). So the value is
 * read with a direct get ($JS.API.DIRECT.GET.<stream>, the bucket is made
 * with AllowDirect): that request is answered by the stream itself, whose
 * subscription exists only once it is fully set up; before that nobody
 * answers and it is asked again later. Stream info (asked first: is there
 * a bucket?) is safe in that window. Only a bucket made without direct
 * gets (by another tool) is read with MSG.GET, and only once it has been
 * seen to exist for a second.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "bridge.h"

const char *br_nats_err(natsStatus s)
{
	const char *t = nats_GetLastError(NULL);

	return (t && *t) ? t : natsStatus_GetText(s);
}

static void on_disconnected(natsConnection *nc, void *arg)
{
	struct bridge *br = arg;

	(void)nc;
	atomic_store(&br->connected, 0);
	if (br_stop)
		br_debug("disconnected from NATS");
	else
		br_warn("disconnected from NATS; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *arg)
{
	struct bridge *br = arg;
	char url[256] = "";

	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	atomic_store(&br->connected, 1);
	atomic_fetch_add(&br->reconnects, 1);
	br_info("reconnected to %s", url);
}

static void on_connected(natsConnection *nc, void *arg)
{
	struct bridge *br = arg;
	char url[256] = "";

	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	atomic_store(&br->connected, 1);
	br_info("connected to %s (late start)", url);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *arg)
{
	struct bridge *br = arg;

	(void)nc;
	(void)sub;
	atomic_fetch_add(&br->errors, 1);
	br_warn("NATS: %s", natsStatus_GetText(err));
}

static natsStatus make_options(struct bridge *br, natsOptions **out, int retry)
{
	struct br_config *cfg = &br->cfg;
	natsOptions *o = NULL;
	natsStatus s;

	s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetServers(o, (const char **)cfg->urls, cfg->nurls);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, cfg->name);
	if (s == NATS_OK && cfg->token[0])
		s = natsOptions_SetToken(o, cfg->token);
	if (s == NATS_OK && cfg->user[0])
		s = natsOptions_SetUserInfo(o, cfg->user, cfg->password);
	if (s == NATS_OK && cfg->creds[0])
		s = natsOptions_SetUserCredentialsFromFiles(o, cfg->creds, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, 250);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectJitter(o, 100, 1000);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectBufSize(o, 8 << 20);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(o, 2000);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(o, 2);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, 2000);
	if (s == NATS_OK && retry)
		s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, br);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, br);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, br);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(o, on_error, br);
	if (s != NATS_OK) {
		natsOptions_Destroy(o);
		o = NULL;
	}
	*out = o;
	return s;
}

int br_connect(struct bridge *br)
{
	struct br_config *cfg = &br->cfg;
	natsOptions *o = NULL;
	jsOptions jo;
	natsStatus s;
	char url[256] = "", san[128];

	/* One plain attempt first, so that a refused credential is a clear
	 * error; a server that is not there yet is retried in the background. */
	s = make_options(br, &o, 0);
	if (s == NATS_OK) {
		s = natsConnection_Connect(&br->nc, o);
		natsOptions_Destroy(o);
		o = NULL;
	}
	if (s == NATS_NO_SERVER) {
		br_warn("NATS server %s not reachable yet; retrying in the background", cfg->urls[0]);
		s = make_options(br, &o, 1);
		if (s == NATS_OK)
			s = natsConnection_Connect(&br->nc, o);
		natsOptions_Destroy(o);
		if (s == NATS_NOT_YET_CONNECTED)
			s = NATS_OK;
	} else if (s == NATS_OK) {
		atomic_store(&br->connected, 1);
		natsConnection_GetConnectedUrl(br->nc, url, sizeof(url));
		br_info("connected to %s", url);
	}
	if (s != NATS_OK) {
		br_error("connecting to %s: %s", cfg->urls[0], br_nats_err(s));
		return -1;
	}
	jsOptions_Init(&jo);
	jo.Wait = 2000;
	s = natsConnection_JetStream(&br->js, br->nc, &jo);
	if (s != NATS_OK) {
		br_error("JetStream context: %s", br_nats_err(s));
		return -1;
	}
	br_sanitize(san, sizeof(san), cfg->prefix);
	snprintf(br->kv_bucket, sizeof(br->kv_bucket), "%s_state", san);
	snprintf(br->kv_stream, sizeof(br->kv_stream), "KV_%s", br->kv_bucket);
	return 0;
}

void br_disconnect(struct bridge *br)
{
	if (br->nc)
		natsConnection_FlushTimeout(br->nc, 1000);
	jsCtx_Destroy(br->js);
	br->js = NULL;
	if (br->nc) {
		natsConnection_Close(br->nc);
		natsConnection_Destroy(br->nc);
	}
	br->nc = NULL;
}

int br_backoff_ms(int failures)
{
	int ms = 250;

	while (failures-- > 0 && ms < 5000)
		ms *= 2;
	return ms < 5000 ? ms : 5000;
}

natsStatus br_js_ready(struct bridge *br)
{
	/* relaxed is enough for these counters: they only decide whether to
	 * ask the server again; nothing else is published through them */
	uint64_t gen = atomic_load_explicit(&br->reconnects, memory_order_relaxed);
	jsAccountInfo *ai = NULL;
	jsErrCode je = 0;
	jsOptions jo;
	natsStatus s;

	if (!br->nc || !br->js || !atomic_load_explicit(&br->connected, memory_order_relaxed))
		return NATS_CONNECTION_DISCONNECTED;
	if (atomic_load_explicit(&br->js_ready_gen, memory_order_relaxed) == gen + 1)
		return NATS_OK;
	jsOptions_Init(&jo);
	jo.Wait = 1000;
	s = js_GetAccountInfo(&ai, br->js, &jo, &je);
	jsAccountInfo_Destroy(ai);
	if (s != NATS_OK) {
		br_debug("JetStream not ready: %s (%d)", br_nats_err(s), (int)je);
		return s;
	}
	/* a reconnect since gen was read leaves reconnects + 1 != this value:
	 * the next call asks again */
	if (atomic_exchange_explicit(&br->js_ready_gen, gen + 1, memory_order_relaxed) != gen + 1)
		br_debug("JetStream ready");
	return NATS_OK;
}

natsStatus br_kv_last(struct bridge *br, const char *subj, natsMsg **m)
{
	jsDirectGetMsgOptions dg;
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	jsOptions jo;
	natsStatus s;
	uint64_t now, seen;
	int direct;

	*m = NULL;
	s = br_js_ready(br);
	if (s != NATS_OK)
		return s;
	jsOptions_Init(&jo);
	jo.Wait = 1000;
	/* stream info is safe while the stream is being created, and answers
	 * at once when there is no bucket (a direct get would time out) */
	s = js_GetStreamInfo(&si, br->js, br->kv_stream, &jo, &je);
	if (s == NATS_NOT_FOUND || je == JSStreamNotFoundErr) {
		atomic_store_explicit(&br->kv_seen_ns, 0, memory_order_relaxed);
		return NATS_NOT_FOUND;
	}
	if (s != NATS_OK)
		return s;
	direct = si->Config && si->Config->AllowDirect;
	jsStreamInfo_Destroy(si);
	if (direct) {
		/* no answer (timeout) while the stream is still being set up:
		 * the caller asks again later */
		jsDirectGetMsgOptions_Init(&dg);
		dg.LastBySubject = subj;
		s = js_DirectGetMsg(m, br->js, br->kv_stream, &jo, &dg);
		if (s != NATS_OK)
			*m = NULL;
		return s;
	}
	/* a bucket made without direct gets: MSG.GET, once it has been seen
	 * for a second (relaxed: a local timestamp only, nothing is published
	 * through it) */
	now = br_now_ns();
	seen = atomic_load_explicit(&br->kv_seen_ns, memory_order_relaxed);
	if (!seen) {
		atomic_compare_exchange_strong_explicit(&br->kv_seen_ns, &seen, now,
		                                        memory_order_relaxed, memory_order_relaxed);
		return NATS_NO_RESPONDERS;
	}
	if (now - seen < 1000000000ull)
		return NATS_NO_RESPONDERS;
	s = js_GetLastMsg(m, br->js, br->kv_stream, subj, &jo, &je);
	if (s != NATS_OK && je == JSNoMessageFoundErr)
		s = NATS_NOT_FOUND;
	return s;
}

static pthread_mutex_t kv_mu = PTHREAD_MUTEX_INITIALIZER;

static natsStatus ensure_kv_locked(struct bridge *br)
{
	kvStore *kv = NULL;
	kvConfig kc;
	natsStatus s;

	s = js_KeyValue(&kv, br->js, br->kv_bucket);
	if (s == NATS_OK) {
		kvStore_Destroy(kv);
		return NATS_OK;
	}
	kvConfig_Init(&kc);
	kc.Bucket = br->kv_bucket;
	kc.Description = "shmbus state channels: the latest value of each";
	kc.History = 1;
	kc.StorageType = js_FileStorage;
	kc.Replicas = br->cfg.replicas;
	s = js_CreateKeyValue(&kv, br->js, &kc);
	if (s == NATS_OK)
		kvStore_Destroy(kv);
	else if (js_KeyValue(&kv, br->js, br->kv_bucket) == NATS_OK) {
		kvStore_Destroy(kv);    /* another bridge made it meanwhile */
		s = NATS_OK;
	}
	return s;
}

natsStatus br_ensure_kv(struct bridge *br)
{
	natsStatus s = br_js_ready(br);

	if (s != NATS_OK)
		return s;
	pthread_mutex_lock(&kv_mu);
	s = ensure_kv_locked(br);
	pthread_mutex_unlock(&kv_mu);
	return s;
}

natsStatus br_ensure_stream(struct bridge *br, struct br_link *l)
{
	jsStreamConfig sc;
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	const char *subjects[1] = { l->subject };
	natsStatus s;

	s = br_js_ready(br);
	if (s != NATS_OK)
		return s;
	s = js_GetStreamInfo(&si, br->js, l->stream, NULL, &je);
	if (s == NATS_OK) {
		jsStreamInfo_Destroy(si);
		return NATS_OK;
	}
	jsStreamConfig_Init(&sc);
	sc.Name = l->stream;
	sc.Description = "a shmbus queue carried by shmbus-bridge";
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Retention = js_LimitsPolicy;
	sc.Storage = js_FileStorage;
	sc.Replicas = br->cfg.replicas;
	sc.Duplicates = 10ll * 60 * 1000000000ll;  /* de-dup window: 10 min */
	/* File storage and the replicas asked for are all a stream's config
	 * offers for durability; when an acknowledged message reaches the disk
	 * is the server's sync_interval (docs/bridge.md, Durability). */
	s = js_AddStream(&si, br->js, &sc, NULL, &je);
	if (s == NATS_OK) {
		jsStreamInfo_Destroy(si);
		br_info("stream %s created: file storage, %d replica%s; an acknowledged message is on disk only once the server syncs (run it with 'sync_interval: always', see docs/bridge.md)",
		        l->stream, br->cfg.replicas, br->cfg.replicas == 1 ? "" : "s");
	}
	else if (js_GetStreamInfo(&si, br->js, l->stream, NULL, &je) == NATS_OK) {
		jsStreamInfo_Destroy(si);
		s = NATS_OK;
	}
	return s;
}

/* Sleep ms, in steps short enough to notice a stop request. */
void br_sleep_unless_stop(int ms)
{
	while (ms > 0 && !br_stop) {
		br_sleep_ms(ms < 100 ? ms : 100);
		ms -= 100;
	}
}

int br_wait_stream(struct br_link *l)
{
	int warned = 0, failures = 0;

	while (!br_stop) {
		natsStatus s = br_ensure_stream(l->br, l);
		if (s == NATS_OK)
			return 0;
		if (!warned++)
			br_warn("%s %s:%s: stream %s not available yet (%s); retrying",
			        l->dir == BR_EXPORT ? "export" : "import", l->bus, l->chan,
			        l->stream, br_nats_err(s));
		br_sleep_unless_stop(br_backoff_ms(failures++));
	}
	return -1;
}

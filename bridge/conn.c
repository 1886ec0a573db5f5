/*
 * conn.c -- the bridge's one NATS connection and its JetStream context.
 *
 * The connection retries forever: a bridge started before its server, or
 * whose server restarts, keeps trying every 250 ms (with jitter) and the
 * client library resends its subscriptions when it is back. While it is
 * down, core publishes (state values) are buffered by the client up to
 * 8 MiB and JetStream calls fail; the links retry those themselves, so no
 * queue message depends on the connection being up at a given moment.
 */
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

natsStatus br_ensure_kv(struct bridge *br)
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

natsStatus br_ensure_stream(struct bridge *br, struct br_link *l)
{
	jsStreamConfig sc;
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	const char *subjects[1] = { l->subject };
	natsStatus s;

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
	s = js_AddStream(&si, br->js, &sc, NULL, &je);
	if (s == NATS_OK)
		jsStreamInfo_Destroy(si);
	else if (js_GetStreamInfo(&si, br->js, l->stream, NULL, &je) == NATS_OK) {
		jsStreamInfo_Destroy(si);
		s = NATS_OK;
	}
	return s;
}

int br_wait_stream(struct br_link *l)
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

/*
 * natsbench.c -- the queue across the bridge versus NATS used directly,
 * same messages, same machine, same server.
 *
 *   natsbench core   URL N SIZE RATE      core NATS publish -> subscriber
 *   natsbench js     URL N SIZE RATE      JetStream: async publish with acks
 *                                         -> durable pull consumer with acks
 *   natsbench bridge BUS_A BUS_B N SIZE RATE
 *                                         shmbus queue on bus A -> bridges ->
 *                                         shmbus queue on bus B (the bridges
 *                                         are started by bench.sh)
 *
 * RATE 0 measures throughput (send as fast as accepted); RATE > 0 sends at
 * that many messages per second and measures one-way latency (CLOCK_MONOTONIC
 * stamp in the message; both ends on this host). Prints one line:
 *   mode=.. size=.. n=.. rate=.. msgs_per_s=.. p50_us=.. p99_us=.. max_us=..
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "shmbus.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pace(uint64_t t0, uint64_t i, uint64_t rate)
{
	uint64_t due, t;

	if (!rate)
		return;
	due = t0 + i * 1000000000ull / rate;
	while ((t = now_ns()) < due) {
		if (due - t > 200000) {
			struct timespec ts = { 0, (long)(due - t - 100000) };
			nanosleep(&ts, NULL);
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct run {
	const char *mode;
	uint64_t n, size, rate;
	uint64_t *lat;          /* per message, ns */
	uint64_t got;
	uint64_t t_first_send, t_last_recv;
};

static void report(struct run *r)
{
	double secs = (double)(r->t_last_recv - r->t_first_send) / 1e9;

	qsort(r->lat, r->got, sizeof(uint64_t), cmp_u64);
	printf("mode=%s size=%" PRIu64 " n=%" PRIu64 " rate=%" PRIu64 " msgs_per_s=%.0f p50_us=%.1f p99_us=%.1f max_us=%.1f\n",
	       r->mode, r->size, r->got, r->rate, secs > 0 ? (double)r->got / secs : 0,
	       r->got ? (double)r->lat[r->got / 2] / 1e3 : 0,
	       r->got ? (double)r->lat[r->got * 99 / 100] / 1e3 : 0,
	       r->got ? (double)r->lat[r->got - 1] / 1e3 : 0);
}

static void stamp(unsigned char *buf, uint64_t i)
{
	uint64_t t = now_ns();

	memcpy(buf, &t, 8);
	memcpy(buf + 8, &i, 8);
}

static void received(struct run *r, const void *data, size_t len)
{
	uint64_t t = now_ns(), s;

	if (len < 16 || r->got >= r->n)
		return;
	memcpy(&s, data, 8);
	r->lat[r->got++] = t - s;
	r->t_last_recv = t;
}

/* ---- core NATS ------------------------------------------------------- */

struct coresub {
	struct run *r;
	natsSubscription *sub;
};

static void *core_consume(void *arg)
{
	struct coresub *c = arg;
	uint64_t deadline = now_ns() + 120000000000ull;

	while (c->r->got < c->r->n && now_ns() < deadline) {
		natsMsg *m = NULL;
		natsStatus s = natsSubscription_NextMsg(&m, c->sub, 1000);

		if (s == NATS_TIMEOUT && c->r->t_last_recv)
			break;  /* the rest was dropped: a core subscriber can lose messages */
		if (s != NATS_OK)
			continue;
		received(c->r, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
		natsMsg_Destroy(m);
	}
	return NULL;
}

static int run_core(struct run *r, const char *url)
{
	natsConnection *pub = NULL, *subc = NULL;
	struct coresub c = { r, NULL };
	unsigned char *buf = calloc(1, r->size);
	pthread_t th;
	uint64_t i;

	if (natsConnection_ConnectTo(&pub, url) || natsConnection_ConnectTo(&subc, url) ||
	    natsConnection_SubscribeSync(&c.sub, subc, "bench.core"))
		return 1;
	natsSubscription_SetPendingLimits(c.sub, -1, -1);
	natsConnection_Flush(subc);
	pthread_create(&th, NULL, core_consume, &c);
	r->t_first_send = now_ns();
	for (i = 0; i < r->n; i++) {
		pace(r->t_first_send, i, r->rate);
		stamp(buf, i);
		if (natsConnection_Publish(pub, "bench.core", buf, (int)r->size))
			return 1;
	}
	natsConnection_Flush(pub);
	pthread_join(th, NULL);
	natsSubscription_Destroy(c.sub);
	natsConnection_Destroy(pub);
	natsConnection_Destroy(subc);
	free(buf);
	return r->got == r->n ? 0 : 1;
}

/* ---- JetStream ------------------------------------------------------- */

struct jsconsumer {
	struct run *r;
	natsSubscription *sub;
};

static void *js_consume(void *arg)
{
	struct jsconsumer *c = arg;
	uint64_t deadline = now_ns() + 120000000000ull;

	while (c->r->got < c->r->n && now_ns() < deadline) {
		natsMsgList list = { 0 };
		int i;

		if (natsSubscription_Fetch(&list, c->sub, 256, 1000, NULL) != NATS_OK)
			continue;
		for (i = 0; i < list.Count; i++) {
			received(c->r, natsMsg_GetData(list.Msgs[i]),
			         (size_t)natsMsg_GetDataLength(list.Msgs[i]));
			natsMsg_Ack(list.Msgs[i], NULL);
		}
		natsMsgList_Destroy(&list);
	}
	return NULL;
}

static int run_js(struct run *r, const char *url)
{
	natsConnection *pub = NULL, *subc = NULL;
	jsCtx *js = NULL, *jsc = NULL;
	jsOptions jo;
	jsStreamConfig sc;
	jsSubOptions so;
	jsErrCode je;
	struct jsconsumer c = { r, NULL };
	const char *subjects[] = { "bench.js" };
	unsigned char *buf = calloc(1, r->size);
	pthread_t th;
	uint64_t i;

	if (natsConnection_ConnectTo(&pub, url) || natsConnection_ConnectTo(&subc, url))
		return 1;
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = 256;
	if (natsConnection_JetStream(&js, pub, &jo) || natsConnection_JetStream(&jsc, subc, NULL))
		return 1;
	js_DeleteStream(js, "BENCH", NULL, NULL);
	jsStreamConfig_Init(&sc);
	sc.Name = "BENCH";
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	if (js_AddStream(NULL, js, &sc, NULL, &je)) {
		fprintf(stderr, "natsbench: stream: %d\n", (int)je);
		return 1;
	}
	jsSubOptions_Init(&so);
	so.Stream = "BENCH";
	so.Config.AckPolicy = js_AckExplicit;
	so.Config.MaxAckPending = 1024;
	if (js_PullSubscribe(&c.sub, jsc, "bench.js", "bench", NULL, &so, &je))
		return 1;
	pthread_create(&th, NULL, js_consume, &c);
	r->t_first_send = now_ns();
	for (i = 0; i < r->n; i++) {
		pace(r->t_first_send, i, r->rate);
		stamp(buf, i);
		if (js_PublishAsync(js, "bench.js", buf, (int)r->size, NULL))
			return 1;
	}
	{
		jsPubOptions po;
		jsPubOptions_Init(&po);
		po.MaxWait = 30000;
		js_PublishAsyncComplete(js, &po);
	}
	pthread_join(th, NULL);
	js_DeleteStream(js, "BENCH", NULL, NULL);
	natsSubscription_Destroy(c.sub);
	jsCtx_Destroy(js);
	jsCtx_Destroy(jsc);
	natsConnection_Destroy(pub);
	natsConnection_Destroy(subc);
	free(buf);
	return r->got == r->n ? 0 : 1;
}

/* ---- shmbus queue across the bridges ---------------------------------- */

struct qconsumer {
	struct run *r;
	shmbus_queue_t *q;
};

static void *q_consume(void *arg)
{
	struct qconsumer *c = arg;
	shmbus_msg_t m;
	uint64_t deadline = now_ns() + 120000000000ull;

	while (c->r->got < c->r->n && now_ns() < deadline) {
		int r = shmbus_queue_peek(c->q, &m, 200000000);
		if (r == SHMBUS_ECLOSED)
			break;
		if (r)
			continue;
		received(c->r, m.data, m.len);
		shmbus_queue_release(c->q);
	}
	return NULL;
}

static int run_bridge(struct run *r, const char *a, const char *b)
{
	shmbus_bus_t *ba = NULL, *bb = NULL;
	shmbus_queue_t *qa = NULL, *qb = NULL;
	shmbus_queue_opts_t qo;
	struct qconsumer c = { r, NULL };
	unsigned char *buf = calloc(1, r->size);
	pthread_t th;
	uint64_t i;

	shmbus_queue_opts_init(&qo);
	qo.max_msg = r->size < 4096 ? 4096 : r->size;
	if (shmbus_bus_open_or_create(a, NULL, &ba, NULL) ||
	    shmbus_bus_open_or_create(b, NULL, &bb, NULL) ||
	    shmbus_queue_open(ba, "bench", &qo, &qa) || shmbus_queue_open(bb, "bench", &qo, &qb) ||
	    shmbus_queue_join(qb, "bench", SHMBUS_GROUP_EARLIEST)) {
		fprintf(stderr, "natsbench: %s\n", shmbus_last_error());
		return 1;
	}
	/* wait for the exporting bridge's group: without it the producer
	 * would not be held back and could overwrite the ring */
	for (i = 0; i < 300; i++) {
		shmbus_queue_info_t qi;
		memset(&qi, 0, sizeof(qi));
		qi.size_of = sizeof(qi);
		if (shmbus_queue_info(qa, &qi, NULL, 0) == 0 && qi.groups >= 1)
			break;
		struct timespec ts = { 0, 100000000 };
		nanosleep(&ts, NULL);
	}
	c.q = qb;
	pthread_create(&th, NULL, q_consume, &c);
	r->t_first_send = now_ns();
	for (i = 0; i < r->n; i++) {
		pace(r->t_first_send, i, r->rate);
		stamp(buf, i);
		if (shmbus_queue_put(qa, buf, r->size, 60000000000ll)) {
			fprintf(stderr, "natsbench: put: %s\n", shmbus_last_error());
			return 1;
		}
	}
	pthread_join(th, NULL);
	shmbus_queue_close(qa);
	shmbus_queue_close(qb);
	shmbus_bus_close(ba);
	shmbus_bus_close(bb);
	free(buf);
	return r->got == r->n ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct run r;
	int base, rc;

	memset(&r, 0, sizeof(r));
	if (argc < 2)
		goto usage;
	r.mode = argv[1];
	base = !strcmp(r.mode, "bridge") ? 4 : 3;
	if (argc < base + 3)
		goto usage;
	r.n = strtoull(argv[base], NULL, 10);
	r.size = strtoull(argv[base + 1], NULL, 10);
	r.rate = strtoull(argv[base + 2], NULL, 10);
	if (r.size < 16)
		r.size = 16;
	r.lat = calloc(r.n ? r.n : 1, sizeof(uint64_t));
	if (!strcmp(r.mode, "core"))
		rc = run_core(&r, argv[2]);
	else if (!strcmp(r.mode, "js"))
		rc = run_js(&r, argv[2]);
	else if (!strcmp(r.mode, "bridge"))
		rc = run_bridge(&r, argv[2], argv[3]);
	else
		goto usage;
	report(&r);
	if (rc)
		fprintf(stderr, "natsbench: %s: only %" PRIu64 " of %" PRIu64 " messages arrived\n",
		        r.mode, r.got, r.n);
	nats_Close();
	return rc;
usage:
	fprintf(stderr, "usage: natsbench core|js URL N SIZE RATE | natsbench bridge BUS_A BUS_B N SIZE RATE\n");
	return 2;
}

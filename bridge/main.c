/*
 * main.c -- shmbus-bridge: carry shmbus channels between machines through
 * NATS (core subjects for state values, JetStream for the key-value bucket
 * and for queues). See bridge.h for the wire format and docs/bridge.md for
 * the user's guide.
 *
 * The main thread reads the configuration, connects (retrying in the
 * background if the server is not up yet), starts one thread per link and
 * then refreshes the status channel until SIGTERM or SIGINT. On a signal
 * every link finishes the message it is carrying or leaves it unacknowledged
 * for the next run (never half-done), closes its channels, and the process
 * flushes and closes the connection. Exit status: 0 after a clean stop, 1 if
 * a link failed, 2 for a configuration error, 3 if NATS refused the
 * connection (a server not up yet is retried, not an error).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

_Atomic int br_stop;
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "br_stop is set from a signal handler");

static void on_signal(int sig)
{
	(void)sig;
	/* seq_cst store; the links' loads of br_stop see it within a loop turn */
	atomic_store(&br_stop, 1);
}

static void link_names(struct br_link *l)
{
	struct bridge *br = l->br;
	char san[128], rsan[SHMBUS_NAME_MAX + 1];

	br_sanitize(san, sizeof(san), br->cfg.prefix);
	br_sanitize(rsan, sizeof(rsan), l->remote);
	snprintf(l->subject, sizeof(l->subject), "%s.%s.%s", br->cfg.prefix,
	         l->kind == SHMBUS_KIND_QUEUE ? "queue" : "state", l->remote);
	snprintf(l->stream, sizeof(l->stream), "%s_Q_%s", san, rsan);
}

/* Find out what kind of channel a link carries: from the local channel if
 * it exists, else (import) from what NATS holds. 0 when stopping. */
static int resolve_kind(struct br_link *l)
{
	struct bridge *br = l->br;
	shmbus_channel_info_t ci;
	shmbus_bus_t *bus = NULL;
	int said = 0;

	while (!br_stop) {
		memset(&ci, 0, sizeof(ci));
		ci.size_of = sizeof(ci);
		if (!bus)
			shmbus_bus_open(l->bus, NULL, &bus);
		if (bus && shmbus_channel_info(bus, l->chan, &ci) == 0)
			break;
		ci.kind = 0;
		if (l->dir == BR_IMPORT) {
			jsStreamInfo *si = NULL;
			natsMsg *m = NULL;
			jsErrCode je;
			char subj[BR_STR + 160];

			l->kind = SHMBUS_KIND_QUEUE;
			link_names(l);
			if (br_js_ready(br) != NATS_OK) {
				/* JetStream not answering yet: ask nothing else */
			} else if (js_GetStreamInfo(&si, br->js, l->stream, NULL, &je) == NATS_OK) {
				jsStreamInfo_Destroy(si);
				ci.kind = SHMBUS_KIND_QUEUE;
				break;
			} else {
				snprintf(subj, sizeof(subj), "$KV.%s.%s", br->kv_bucket, l->remote);
				if (br_kv_last(br, subj, &m) == NATS_OK) {
					natsMsg_Destroy(m);
					ci.kind = SHMBUS_KIND_STATE;
					break;
				}
			}
		}
		if (!said++)
			br_info("%s %s:%s: waiting for the channel to exist%s",
			        l->dir == BR_EXPORT ? "export" : "import", l->bus, l->chan,
			        l->dir == BR_IMPORT ? " here or in NATS" : "");
		br_sleep_ms(l->dir == BR_IMPORT ? 500 : 200);
	}
	shmbus_bus_close(bus);
	return br_stop ? 0 : ci.kind;
}

static void *link_main(void *arg)
{
	struct br_link *l = arg;

	if (l->kind == SHMBUS_KIND_NONE)
		l->kind = resolve_kind(l);
	if (br_stop)
		return NULL;
	link_names(l);
	if (l->kind == SHMBUS_KIND_STATE)
		return l->dir == BR_EXPORT ? br_state_export(l) : br_state_import(l);
	if (l->kind == SHMBUS_KIND_QUEUE)
		return l->dir == BR_EXPORT ? br_queue_export(l) : br_queue_import(l);
	br_link_fail(l, "channel '%s' is a %s channel; the bridge carries state and queue channels",
	             l->chan, shmbus_kind_name(l->kind) ? shmbus_kind_name(l->kind) : "unknown");
	return NULL;
}

int main(int argc, char **argv)
{
	static struct bridge br;
	struct sigaction sa;
	int i, r, failed = 0, running;

	br_config_defaults(&br.cfg);
	r = br_config_parse(&br, argc, argv);
	if (r)
		return r > 0 ? 0 : 2;
	br_log_init(br.cfg.level, br.cfg.name);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	if (br_connect(&br)) {
		br_disconnect(&br);
		nats_Close();
		return 3;
	}
	br_status_open(&br);
	for (i = 0; i < br.nlinks; i++) {
		if (pthread_create(&br.links[i].thread, NULL, link_main, &br.links[i])) {
			br_error("cannot start a thread for link %d", i);
			br_stop = 1;
			break;
		}
		br.links[i].started = 1;
	}
	br_info("running %d link(s); prefix %s", br.nlinks, br.cfg.prefix);
	while (!br_stop) {
		int waited;

		br_status_update(&br);
		running = 0;
		for (i = 0; i < br.nlinks; i++)
			running += atomic_load(&br.links[i].c.state) != BR_LINK_FAILED;
		if (!running) {
			br_error("every link failed; stopping");
			break;
		}
		for (waited = 0; waited < br.cfg.status_ms && !br_stop; waited += 50)
			br_sleep_ms(50);
	}
	br_stop = 1;
	br_info("stopping");
	for (i = 0; i < br.nlinks; i++) {
		if (br.links[i].started)
			pthread_join(br.links[i].thread, NULL);
		failed += atomic_load(&br.links[i].c.state) == BR_LINK_FAILED;
	}
	br_status_close(&br);
	br_disconnect(&br);
	for (i = 0; i < br.nlinks; i++)
		if (br.links[i].late_free)
			br.links[i].late_free_fn(br.links[i].late_free);
	nats_Close();
	br_info("stopped%s", failed ? " (with failed links)" : "");
	return failed ? 1 : 0;
}

/*
 * bridge.h -- internal declarations of shmbus-bridge, the process that
 * carries shmbus channels between machines through a NATS server.
 *
 * One bridge process holds one NATS connection and a list of *links*; a
 * link is one channel of one local bus, exported (local -> NATS) or
 * imported (NATS -> local). Every link runs in its own thread and uses only
 * the public shmbus API plus the NATS C client. The main thread parses the
 * configuration, starts the links, publishes the bridge's status into a
 * state channel of every bus it touches, and on SIGTERM/SIGINT tells the
 * links to stop and waits for them.
 *
 * On the wire (subjects below PREFIX, default "shmbus"):
 *   state   PREFIX.state.NAME, one core NATS message per value the bridge
 *           saw, headers Shmbus-Seq / Shmbus-Dtype / Shmbus-Shape /
 *           Shmbus-Epoch; the same message also goes, at most every
 *           kv_interval, into the JetStream key-value bucket PREFIX_state
 *           (key NAME), so a bridge that starts late gets the value at once.
 *   queue   PREFIX.queue.NAME, stored in the JetStream stream PREFIX_Q_NAME;
 *           every message carries Nats-Msg-Id EPOCH.SEQ (de-duplication),
 *           and end of stream is one message with header Shmbus-Eos.
 * docs/bridge.md has the whole story.
 */
#ifndef SHMBUS_BRIDGE_H
#define SHMBUS_BRIDGE_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include <nats/nats.h>

#include "shmbus.h"

#define BR_MAX_LINKS 64
#define BR_MAX_URLS 8
#define BR_MAX_BUSES 16
#define BR_STR 256

/* Header names; Nats-Msg-Id is JetStream's own. */
#define BR_H_SEQ "Shmbus-Seq"
#define BR_H_DTYPE "Shmbus-Dtype"
#define BR_H_SHAPE "Shmbus-Shape"
#define BR_H_EPOCH "Shmbus-Epoch"
#define BR_H_EOS "Shmbus-Eos"
#define BR_H_ORIGIN "Shmbus-Origin"
#define BR_H_STAMP "Shmbus-Stamp"    /* ns; orders values of a two-way channel */
#define BR_H_KV_INTERVAL "Shmbus-Kv-Interval"  /* ms; on values in the KV bucket */

enum br_level { BR_ERROR = 0, BR_WARN, BR_INFO, BR_DEBUG };

enum br_dir { BR_EXPORT = 1, BR_IMPORT = 2 };

/* What a link is doing, as shown in the status channel. */
enum br_link_state {
	BR_LINK_WAITING = 0,    /* waiting for its bus, channel or stream */
	BR_LINK_RUNNING = 1,
	BR_LINK_DONE = 2,       /* queue: end of stream carried across */
	BR_LINK_FAILED = 3,     /* a fatal error (type mismatch, ...): stopped */
};

struct br_config {
	char name[SHMBUS_NAME_MAX + 1];    /* bridge name; default bridge-PID */
	char prefix[128];                  /* subject prefix */
	char *urls[BR_MAX_URLS];
	int nurls;
	char token[BR_STR], user[BR_STR], password[BR_STR], creds[BR_STR];
	int level;
	int64_t liveness_ms;               /* 0: the library's default */
	int replicas;                      /* JetStream replicas for streams/KV */
	int64_t kv_interval_ms;            /* min interval between KV puts */
	int64_t ack_wait_ms;               /* importer's consumer AckWait */
	int fetch_batch;                   /* importer's pull batch */
	uint64_t max_msg;                  /* imported queues created here */
	uint32_t slots;
	uint64_t cell_bytes;               /* imported queues created here: cells */
	int status_ms;                     /* status channel refresh period */
};

struct br_link;

/* Counters of one link, updated by its thread, read by the status writer. */
struct br_counters {
	_Atomic uint64_t msgs;     /* values or messages carried */
	_Atomic uint64_t bytes;
	_Atomic uint64_t lag;      /* queue: messages waiting on the far side */
	_Atomic uint64_t errors;
	_Atomic int state;         /* enum br_link_state */
};

struct br_link {
	int dir;                           /* BR_EXPORT / BR_IMPORT */
	char bus[BR_STR];                  /* local bus name */
	char chan[SHMBUS_NAME_MAX + 1];    /* local channel */
	char remote[SHMBUS_NAME_MAX + 1];  /* name on the wire (default chan) */
	int kind;                          /* export: found at run time; import: from flag */
	char subject[BR_STR];
	char stream[BR_STR];
	pthread_t thread;
	int started;
	struct br_counters c;
	struct bridge *br;
	/* freed by main after the connection is closed: NATS callbacks may
	 * still point at it until then */
	void *late_free;
	void (*late_free_fn)(void *);
};

struct bridge {
	struct br_config cfg;
	struct br_link links[BR_MAX_LINKS];
	int nlinks;
	natsConnection *nc;
	jsCtx *js;
	char kv_bucket[160];
	char kv_stream[200];
	_Atomic int connected;
	_Atomic uint64_t reconnects;
	_Atomic uint64_t errors;
	/* reconnects + 1 when $JS.API.INFO last answered on this connection
	 * (0: not yet): JetStream calls wait for it, see br_js_ready */
	_Atomic uint64_t js_ready_gen;
	/* when a bucket without direct gets was first seen (0: not yet) */
	_Atomic uint64_t kv_seen_ns;
};

/* Set by SIGTERM/SIGINT; every loop checks it at least every 200 ms. A
 * lock-free atomic (not sig_atomic_t): the handler runs in one thread and
 * the links read it in others. */
extern _Atomic int br_stop;

/* log.c */
void br_log_init(int level, const char *name);
void br_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define br_error(...) br_log(BR_ERROR, __VA_ARGS__)
#define br_warn(...) br_log(BR_WARN, __VA_ARGS__)
#define br_info(...) br_log(BR_INFO, __VA_ARGS__)
#define br_debug(...) br_log(BR_DEBUG, __VA_ARGS__)
int br_level_parse(const char *s);

/* config.c */
void br_config_defaults(struct br_config *cfg);
/* Parse argv (and any --config FILE it names) into br; prints usage and
 * returns 1 for --help, -1 on a bad argument (with a message on stderr). */
int br_config_parse(struct bridge *br, int argc, char **argv);
/* Replace characters NATS does not allow in stream/consumer/bucket names. */
void br_sanitize(char *dst, size_t cap, const char *src);

/* conn.c */
int br_connect(struct bridge *br);
void br_disconnect(struct bridge *br);
/* NATS_OK when JetStream answers on the current connection: asked once per
 * (re)connect with $JS.API.INFO, before any stream, bucket or message
 * request; a server whose JetStream is not ready yet (starting, restoring,
 * a cluster without a leader) gets no other JetStream request from us. */
natsStatus br_js_ready(struct bridge *br);
/* Retry delay after `failures` failed attempts: 250 ms doubling to 5 s. */
int br_backoff_ms(int failures);
/* Sleep ms, returning early (within 100 ms) when the bridge is stopping. */
void br_sleep_unless_stop(int ms);
/* Create the stream of a queue link if missing (idempotent). */
natsStatus br_ensure_stream(struct bridge *br, struct br_link *l);
/* br_ensure_stream until it succeeds; -1 when stopping. */
int br_wait_stream(struct br_link *l);
/* The stored value of KV subject subj: NATS_OK and *m, NATS_NOT_FOUND
 * when there is none (or no bucket yet), another status: ask again later.
 * Never sends a stream message request to a bucket that may still be
 * being created (see conn.c). */
natsStatus br_kv_last(struct bridge *br, const char *subj, natsMsg **m);
/* Create or bind the key-value bucket of state links. */
natsStatus br_ensure_kv(struct bridge *br);
const char *br_nats_err(natsStatus s);

/* util */
uint64_t br_now_ns(void);
void br_sleep_ms(int ms);
/* Open a local bus, waiting (and rechecking br_stop) until it exists;
 * create it when create is set. Returns NULL when stopping. */
shmbus_bus_t *br_bus_open(struct br_link *l, int create);
void br_link_fail(struct br_link *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The bus's creation time: a re-created bus restarts its sequences, so
 * (epoch, seq) names a value or message for good. */
uint64_t br_bus_epoch(shmbus_bus_t *bus);

/* state_link.c, queue_export.c, queue_import.c: thread bodies */
void *br_state_export(void *arg);
void *br_state_import(void *arg);
void *br_queue_export(void *arg);
void *br_queue_import(void *arg);

/* status.c */
int br_status_open(struct bridge *br);
void br_status_update(struct bridge *br);
void br_status_close(struct bridge *br);

#endif /* SHMBUS_BRIDGE_H */

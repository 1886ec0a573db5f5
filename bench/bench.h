/*
 * bench.h -- the transport interface of ipcbench, and the few helpers every
 * transport shares.
 *
 * ipcbench measures how fast a message gets from one process to another.
 * Each way of moving a message (a shared-memory ring, a pipe, a socket, a
 * message queue, a messaging library, shmbus itself) is a *transport*: a
 * table of functions behind `struct transport`. The harness never knows
 * how a transport works; it only calls these functions, in this order:
 *
 *   parent:            setup(ctx, max_msg)          once per message size
 *   fork two children: open(ctx) with ctx->role set (0 = producer/pinger,
 *                      1 = consumer/ponger), pinned to one CPU each
 *                      send/recv ... (or the zero-copy calls)
 *                      close(ctx)
 *   parent:            teardown(ctx)                 after all runs of a size
 *
 * setup() runs before fork(), so whatever it maps or opens is inherited by
 * both children; open() runs in each child and makes that process's own
 * state (library contexts, runtimes, cached positions). A setup is reused
 * for several runs (a fresh pair of children each time), so a transport
 * must be left drained and reusable after close(). Every transport carries
 * messages in both directions: role 0 sends to role 1 and role 1 sends to
 * role 0 (ping-pong needs both; a transport with one-way channels makes two
 * internally).
 *
 * Return values: 0 on success, BENCH_SKIP from setup() or global_init()
 * when the transport cannot do this (the reason goes in ctx->note or the
 * note buffer), a negative value on failure with the reason in ctx->note.
 * recv() blocks (or spins) until a message is there. A message is at least
 * 8 bytes: the harness keeps a sequence number in the first 8 (and the last
 * 8) to prove nothing was lost, reordered or torn.
 *
 * Adding a transport: write bench/t_NAME.c defining
 *     const struct transport t_NAME = { .name = "NAME", ... };
 * and add the line  T(NAME)  to bench/transports.def.
 */
#ifndef IPCBENCH_BENCH_H
#define IPCBENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define BENCH_SKIP 1

struct transport;

/* Everything a transport knows about one setup. The harness fills the
 * fields above `shared`; the transport owns the rest. */
struct tctx {
	const struct transport *t;
	size_t max_msg;     /* largest message setup() must carry, bytes */
	int role;           /* set before open(): 0 producer/pinger, 1 consumer/ponger */
	char tag[48];       /* unique name stem for this setup: "ipcbench-<pid>-<n>" */
	void *shared;       /* made by setup(), inherited by both children */
	void *local;        /* made by open(), private to one child */
	char note[256];     /* why setup() skipped, or what failed */
};

struct transport {
	const char *name;   /* short, used by --only and --baseline */
	const char *what;   /* one line for --list */
	/* Set for a channel that keeps only the latest value (no lossless
	 * stream): the harness runs its ping-pong test only. */
	int pingpong_only;

	/* Optional, once per harness run, before any setup() of this transport
	 * and after the last teardown(). global_fini() must be safe to call from
	 * a signal handler (it may only kill, wait and unlink). */
	int (*global_init)(char *note, size_t cap);
	void (*global_fini)(void);

	int (*setup)(struct tctx *ctx, size_t max_msg);
	int (*open)(struct tctx *ctx);
	int (*send)(struct tctx *ctx, const void *buf, size_t len);
	int (*recv)(struct tctx *ctx, void *buf, size_t cap, size_t *len);

	/* Optional zero-copy path. send_reserve() returns room for len bytes
	 * inside the transport, valid until send_commit(); recv_peek() blocks
	 * until a message is there and returns it in place, valid until
	 * recv_release(). NULL means failure, with the reason in ctx->note. A
	 * transport sets all four or none. */
	void *(*send_reserve)(struct tctx *ctx, size_t len);
	int (*send_commit)(struct tctx *ctx, size_t len);
	const void *(*recv_peek)(struct tctx *ctx, size_t *len);
	int (*recv_release)(struct tctx *ctx);

	void (*close)(struct tctx *ctx);
	void (*teardown)(struct tctx *ctx);
};

/* The table, in bench/transports.c; ends with NULL. */
extern const struct transport *const bench_transports[];
const struct transport *bench_find(const char *name);

/* Sets ctx->note and returns -1, so that a failing call reads
 * `return bench_fail(ctx, "mq_open %s: %s", name, strerror(errno));` */
int bench_fail(struct tctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int bench_skip(struct tctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* snprintf() for messages that may be cut short, on purpose. */
void bench_strf(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Shared memory that survives fork(): zeroed, page-aligned, pre-faulted so
 * the first run does not pay the page faults. NULL on failure. */
void *bench_map_shared(size_t len);
/* In a child: maps every page of a shared mapping made before fork(), so
 * that page faults happen in open(), not in the timed part. */
void bench_prefault(void *p, size_t len);
void bench_unmap(void *p, size_t len);

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One iteration of a spin-wait: tells the core we are spinning, so the
 * sibling hyperthread (if any) gets the pipeline and the exit from the loop
 * is not punished by a memory-order mis-speculation. */
static inline void bench_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

#define BENCH_CACHELINE 64
#define BENCH_ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((size_t)(a) - 1))

#endif

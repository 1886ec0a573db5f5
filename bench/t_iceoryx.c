/*
 * t_iceoryx.c -- iceoryx 2.0 publish/subscribe through its C binding, the
 * subscriber busy-polling (no WaitSet), with and without copies.
 *
 * iceoryx needs its broker daemon, RouDi. global_init() starts our own
 * iox-roudi with a memory configuration that has chunks for every size we
 * test (up to 8 MiB frames), waits until it says it is ready, and
 * global_fini() stops it by pid. If it cannot start (not installed, or
 * another RouDi already holds the well-known socket), the transport is
 * skipped with a note. When IPCBENCH_ROUDI_EXTERNAL=1 is in the
 * environment, a RouDi started by the caller with bench/roudi.toml (the
 * same memory configuration as roudi_config below) is used instead:
 * scripts/bench.sh does that, and stops it by pid afterwards.
 *
 * Each child initialises its own runtime in open() (a runtime does not
 * survive fork()), and makes a publisher for its direction and a
 * subscriber for the other: service = the setup's tag, instance = "d0" or
 * "d1". open() waits until both are connected, so no message is published
 * into the void. The publisher waits when the subscriber's queue is full
 * (WAIT_FOR_CONSUMER + BLOCK_PRODUCER), so the stream is lossless.
 *
 * The message length travels in an 8-byte user header of each chunk (the
 * C binding has no call that returns a chunk's payload size).
 *
 * A fresh runtime maps RouDi's segments but touches none of their pages;
 * open() maps them all in (as the raw transports do with their rings), so
 * that a run measures the steady state of a long-lived process, not page
 * faults.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iceoryx_binding_c/chunk.h>
#include <iceoryx_binding_c/log.h>
#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/subscriber.h>

#include "bench.h"

#define LARGEST (8u * 1024 * 1024)
#define SLACK 4096u             /* chunk header + user header + alignment */

/* Keep in step with bench/roudi.toml. */
static const char roudi_config[] =
	"[general]\nversion = 1\n\n[[segment]]\n\n"
	"[[segment.mempool]]\nsize = 256\ncount = 2048\n\n"
	"[[segment.mempool]]\nsize = 4352\ncount = 1024\n\n"
	"[[segment.mempool]]\nsize = 1052672\ncount = 40\n\n"
	"[[segment.mempool]]\nsize = 8392704\ncount = 12\n";

static pid_t roudi_pid = -1;
static char cfg_path[64], log_path[64];

static int log_says_ready(void)
{
	char buf[4096];
	int fd = open(log_path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return strstr(buf, "RouDi is ready for clients") != NULL;
}

static void ix_global_fini(void)
{
	/* Async-signal-safe only: the harness also calls this on SIGINT. */
	if (roudi_pid > 0) {
		kill(roudi_pid, SIGTERM);
		for (int i = 0; i < 300; i++) {
			if (waitpid(roudi_pid, NULL, WNOHANG) == roudi_pid) {
				roudi_pid = -1;
				break;
			}
			nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
		}
		if (roudi_pid > 0) {
			kill(roudi_pid, SIGKILL);
			waitpid(roudi_pid, NULL, 0);
			roudi_pid = -1;
		}
	}
	if (cfg_path[0])
		unlink(cfg_path);
	if (log_path[0])
		unlink(log_path);
}

static int ix_global_init(char *note, size_t cap)
{
	const char *ext = getenv("IPCBENCH_ROUDI_EXTERNAL");
	if (ext && strcmp(ext, "1") == 0)
		return 0;       /* the caller's RouDi; global_fini() has nothing to stop */
	snprintf(cfg_path, sizeof cfg_path, "/tmp/ipcbench-%d-roudi.toml", (int)getpid());
	snprintf(log_path, sizeof log_path, "/tmp/ipcbench-%d-roudi.log", (int)getpid());
	FILE *f = fopen(cfg_path, "w");
	if (!f || fputs(roudi_config, f) < 0 || fclose(f)) {
		snprintf(note, cap, "cannot write %s: %s", cfg_path, strerror(errno));
		return BENCH_SKIP;
	}
	fflush(NULL);
	roudi_pid = fork();
	if (roudi_pid < 0) {
		snprintf(note, cap, "fork: %s", strerror(errno));
		return BENCH_SKIP;
	}
	if (roudi_pid == 0) {
		/* Dies with us even if we are killed before global_fini(). */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		const char *bin = getenv("IPCBENCH_ROUDI");
		if (!bin)
			bin = "iox-roudi";
		/* -m off: no keep-alive monitoring, which on a loaded machine
		 * may declare a slow bench process dead and drop its ports. */
		execlp(bin, bin, "-c", cfg_path, "-m", "off", "-l", "warning", (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		if (log_says_ready())
			return 0;
		int st;
		if (waitpid(roudi_pid, &st, WNOHANG) == roudi_pid) {
			roudi_pid = -1;
			snprintf(note, cap, "iox-roudi exited (status %d) before it was ready; "
				 "is another RouDi running, or is it not installed? see %s",
				 WIFEXITED(st) ? WEXITSTATUS(st) : -1, log_path);
			log_path[0] = 0; /* keep the log for the user */
			ix_global_fini();
			return BENCH_SKIP;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
	}
	ix_global_fini();
	snprintf(note, cap, "iox-roudi did not become ready within 10 s");
	return BENCH_SKIP;
}

struct shared {
	uint64_t queue_capacity;
};

struct local {
	iox_pub_storage_t pub_storage;
	iox_sub_storage_t sub_storage;
	iox_pub_t pub;
	iox_sub_t sub;
	void *loaned;           /* chunk between send_reserve and send_commit */
	const void *taken;      /* chunk between recv_peek and recv_release */
};

static int ix_setup(struct tctx *ctx, size_t max_msg)
{
	if (max_msg > LARGEST)
		return bench_skip(ctx, "message size %zu > largest chunk pool (%u)", max_msg, LARGEST);
	struct shared *sh = calloc(1, sizeof *sh);
	if (!sh)
		return bench_fail(ctx, "out of memory");
	/* The pools hold 12 frames of 8 MiB and 40 of 1 MiB: the queue plus
	 * the chunks held by both sides must fit. */
	sh->queue_capacity = max_msg > 2 * 1024 * 1024 ? 4 : max_msg > 64 * 1024 ? 16 : 256;
	ctx->shared = sh;
	return 0;
}

static uint64_t *len_header(void *payload)
{
	return iox_chunk_header_to_user_header(iox_chunk_header_from_user_payload(payload));
}

static const uint64_t *len_header_const(const void *payload)
{
	return iox_chunk_header_to_user_header_const(iox_chunk_header_from_user_payload_const(payload));
}

/* Maps in every page of the shared-memory segments this process has
 * mapped from /dev/shm (RouDi's management and data segments). */
static void prefault_segments(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perm[8];
		int path = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perm, &path) == 3 && path &&
		    strncmp(line + path, "/dev/shm/", 9) == 0 && perm[3] == 's')
			bench_prefault((void *)lo, hi - lo);
	}
	fclose(f);
}

static int ix_open(struct tctx *ctx)
{
	struct shared *sh = ctx->shared;
	struct local *l = calloc(1, sizeof *l);
	if (!l)
		return bench_fail(ctx, "out of memory");
	ctx->local = l;
	char name[64];
	snprintf(name, sizeof name, "ipcbench_%d", (int)getpid());
	iox_set_loglevel(Iceoryx_LogLevel_Error);
	iox_runtime_init(name);
	prefault_segments();

	iox_pub_options_t po;
	iox_pub_options_init(&po);
	po.historyCapacity = 0;
	po.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
	iox_sub_options_t so;
	iox_sub_options_init(&so);
	so.queueCapacity = sh->queue_capacity;
	so.historyRequest = 0;
	so.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;

	const char *inst[2] = { "d0", "d1" };
	l->pub = iox_pub_init(&l->pub_storage, ctx->tag, inst[ctx->role], "msg", &po);
	l->sub = iox_sub_init(&l->sub_storage, ctx->tag, inst[!ctx->role], "msg", &so);
	if (!l->pub || !l->sub)
		return bench_fail(ctx, "iox_pub_init/iox_sub_init failed");

	/* Discovery runs in RouDi's loop; poll gently so that RouDi, which is
	 * not pinned, gets a CPU. */
	for (int i = 0; i < 10000; i++) {
		if (iox_pub_has_subscribers(l->pub) &&
		    iox_sub_get_subscription_state(l->sub) == SubscribeState_SUBSCRIBED)
			return 0;
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	return bench_fail(ctx, "publisher/subscriber not connected after 10 s");
}

static void *ix_reserve(struct tctx *ctx, size_t len)
{
	struct local *l = ctx->local;
	for (;;) {
		enum iox_AllocationResult r = iox_pub_loan_aligned_chunk_with_user_header(
			l->pub, &l->loaned, (uint32_t)len, IOX_C_CHUNK_DEFAULT_USER_PAYLOAD_ALIGNMENT,
			sizeof(uint64_t), alignof(uint64_t));
		if (r == AllocationResult_SUCCESS)
			return l->loaned;
		/* The pool is empty while the consumer still holds chunks;
		 * it gives them back as it catches up. */
		if (r != AllocationResult_RUNNING_OUT_OF_CHUNKS) {
			bench_fail(ctx, "iox_pub_loan_chunk(%zu bytes): result %d", len, (int)r);
			return NULL;
		}
		bench_relax();
	}
}

static int ix_commit(struct tctx *ctx, size_t len)
{
	struct local *l = ctx->local;
	*len_header(l->loaned) = len;
	iox_pub_publish_chunk(l->pub, l->loaned);
	l->loaned = NULL;
	return 0;
}

static const void *ix_peek(struct tctx *ctx, size_t *len)
{
	struct local *l = ctx->local;
	enum iox_ChunkReceiveResult r;
	while ((r = iox_sub_take_chunk(l->sub, &l->taken)) == ChunkReceiveResult_NO_CHUNK_AVAILABLE)
		bench_relax();
	if (r != ChunkReceiveResult_SUCCESS) {
		bench_fail(ctx, "iox_sub_take_chunk: result %d", (int)r);
		return NULL;
	}
	*len = *len_header_const(l->taken);
	return l->taken;
}

static int ix_release(struct tctx *ctx)
{
	struct local *l = ctx->local;
	iox_sub_release_chunk(l->sub, l->taken);
	l->taken = NULL;
	return 0;
}

static int ix_send(struct tctx *ctx, const void *buf, size_t len)
{
	void *p = ix_reserve(ctx, len);
	if (!p)
		return -1;
	memcpy(p, buf, len);
	return ix_commit(ctx, len);
}

static int ix_recv(struct tctx *ctx, void *buf, size_t cap, size_t *len)
{
	const void *p = ix_peek(ctx, len);
	if (!p)
		return -1;
	if (*len > cap) {
		ix_release(ctx);
		return bench_fail(ctx, "message of %zu bytes > buffer of %zu", *len, cap);
	}
	memcpy(buf, p, *len);
	return ix_release(ctx);
}

static void ix_close(struct tctx *ctx)
{
	struct local *l = ctx->local;
	if (!l)
		return;
	if (l->sub)
		iox_sub_deinit(l->sub);
	if (l->pub)
		iox_pub_deinit(l->pub);
	iox_runtime_shutdown();
	free(l);
	ctx->local = NULL;
}

/* A child killed after a failed run leaves its runtime's socket and lock
 * file in /tmp (/tmp/ipcbench_<pid>, see ix_open); remove those of
 * processes that no longer exist. */
static void remove_dead_runtime_files(void)
{
	DIR *d = opendir("/tmp");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		if (strncmp(e->d_name, "ipcbench_", 9) != 0)
			continue;
		long pid = strtol(e->d_name + 9, &end, 10);
		if (end == e->d_name + 9 || (*end && strcmp(end, ".lock") != 0) || pid <= 0 ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		char path[300];
		snprintf(path, sizeof path, "/tmp/%s", e->d_name);
		unlink(path);
	}
	closedir(d);
}

static void ix_teardown(struct tctx *ctx)
{
	free(ctx->shared);
	ctx->shared = NULL;
	remove_dead_runtime_files();
}

const struct transport t_iceoryx = {
	.name = "iceoryx",
	.what = "iceoryx 2.0 C binding publish/subscribe, subscriber busy-polls",
	.global_init = ix_global_init,
	.global_fini = ix_global_fini,
	.setup = ix_setup,
	.open = ix_open,
	.send = ix_send,
	.recv = ix_recv,
	.send_reserve = ix_reserve,
	.send_commit = ix_commit,
	.recv_peek = ix_peek,
	.recv_release = ix_release,
	.close = ix_close,
	.teardown = ix_teardown,
};

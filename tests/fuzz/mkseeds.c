/*
 * mkseeds.c -- writes the seed corpus for fuzz_segment.c: small, valid
 * segments in various states, made through the public API (and child
 * processes that die holding things), each trimmed of trailing zeros
 * (the harness pads a segment back to the size its header names).
 *
 *   mkseeds OUTDIR
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmbus.h"

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)
#define OK(c) do { int r_ = (c); if (r_) DIE("%s: %d %s", #c, r_, shmbus_last_error()); } while (0)

static char tmp[128], name[160];
static const char *outdir;

static shmbus_bus_t *fresh(uint64_t size)
{
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;

	unlink(tmp);
	shmbus_bus_opts_init(&o);
	o.size = size;
	o.max_peers = 4;
	o.max_channels = 8;
	OK(shmbus_bus_create(name, &o, &b));
	return b;
}

static void save(const char *seed)
{
	char out[512];
	struct stat st;
	uint8_t *buf;
	size_t n;
	int fd = open(tmp, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) != 0)
		DIE("open %s", tmp);
	buf = malloc((size_t)st.st_size);
	if (read(fd, buf, (size_t)st.st_size) != st.st_size)
		DIE("read");
	close(fd);
	for (n = (size_t)st.st_size; n > 64 && buf[n - 1] == 0; n--)
		;
	snprintf(out, sizeof(out), "%s/%s", outdir, seed);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, buf, n) != (ssize_t)n)
		DIE("write %s", out);
	close(fd);
	free(buf);
	unlink(tmp);
	printf("%-24s %zu bytes\n", seed, n);
}

/* Run fn in a child that exits without cleaning up (as if killed). */
static void dies(void (*fn)(void))
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		fn();
		_exit(0);
	}
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		DIE("child failed");
}

static shmbus_state_t *state(shmbus_bus_t *b, const char *n, int dtype, uint64_t len)
{
	shmbus_state_opts_t so;
	shmbus_state_t *st;

	shmbus_state_opts_init(&so);
	so.dtype = dtype;
	so.ndim = 1;
	so.shape[0] = len;
	OK(shmbus_state_open(b, n, &so, &st));
	return st;
}

static shmbus_queue_t *queue(shmbus_bus_t *b, const char *n)
{
	shmbus_queue_opts_t qo;
	shmbus_queue_t *q;

	shmbus_queue_opts_init(&qo);
	qo.slots = 8;
	qo.max_msg = 64;
	qo.max_groups = 2;
	qo.max_members = 4;
	qo.max_producers = 2;
	OK(shmbus_queue_open(b, n, &qo, &q));
	return q;
}

static void child_attach(void)
{
	shmbus_bus_t *b;

	OK(shmbus_bus_open(name, NULL, &b));
}

static void child_half_write(void)
{
	shmbus_bus_t *b;
	shmbus_state_t *st;
	void *p;

	OK(shmbus_bus_open(name, NULL, &b));
	st = state(b, "s", SHMBUS_FLOAT64, 3);
	OK(shmbus_state_write_begin(st, &p));
	memset(p, 0x77, 24);    /* never committed */
}

static void child_hold_message(void)
{
	shmbus_bus_t *b;
	shmbus_queue_t *q;
	shmbus_msg_t m;

	OK(shmbus_bus_open(name, NULL, &b));
	q = queue(b, "q");
	OK(shmbus_queue_join(q, "g", SHMBUS_GROUP_EARLIEST));
	OK(shmbus_queue_peek(q, &m, 0));        /* never released */
}

static void child_hold_lock(void)
{
	shmbus_bus_t *b;
	shmbus_lock_t *l;

	OK(shmbus_bus_open(name, NULL, &b));
	OK(shmbus_lock_open(b, "lk", NULL, &l));
	OK(shmbus_lock_lock(l, 0));
}

static void cleanup(void)
{
	unlink(tmp);
}

int main(int argc, char **argv)
{
	shmbus_bus_t *b;
	shmbus_state_t *st;
	shmbus_queue_t *q;
	double v3[3] = {1.5, -2, 3e300};
	uint8_t big[4096];
	int i;

	if (argc != 2)
		DIE("usage: mkseeds OUTDIR");
	outdir = argv[1];
	mkdir(outdir, 0755);
	snprintf(tmp, sizeof(tmp), "/dev/shm/shmbus-mkseeds-%d.bus", (int)getpid());
	snprintf(name, sizeof(name), "file:%s", tmp);
	atexit(cleanup);        /* a failed step leaves no bus behind */

	b = fresh(64 << 10);
	shmbus_bus_close(b);
	save("empty");

	b = fresh(64 << 10);
	dies(child_attach);
	shmbus_bus_close(b);
	save("stale-peer");

	b = fresh(64 << 10);
	st = state(b, "s", SHMBUS_FLOAT64, 3);
	OK(shmbus_state_write(st, v3, sizeof(v3)));
	shmbus_state_close(st);
	st = state(b, "i", SHMBUS_INT32, 1);
	for (i = 0; i < 5; i++)
		OK(shmbus_state_write(st, &i, sizeof(i)));
	shmbus_state_close(st);
	st = state(b, "big", SHMBUS_BYTES, sizeof(big));
	memset(big, 0xa5, sizeof(big));
	OK(shmbus_state_write(st, big, sizeof(big)));
	shmbus_state_close(st);
	shmbus_bus_close(b);
	save("state");

	b = fresh(64 << 10);
	st = state(b, "s", SHMBUS_FLOAT64, 3);
	OK(shmbus_state_write(st, v3, sizeof(v3)));
	shmbus_state_close(st);
	dies(child_half_write);
	shmbus_bus_close(b);
	save("state-writer-died");

	b = fresh(64 << 10);
	q = queue(b, "q");
	OK(shmbus_queue_join(q, "g", SHMBUS_GROUP_EARLIEST));
	for (i = 0; i < 5; i++)
		OK(shmbus_queue_put(q, "message", 1 + (size_t)i * 10, 0));
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	save("queue-basic");   /* not "queue": afl-fuzz takes IN/queue for a resume dir */

	b = fresh(64 << 10);
	q = queue(b, "q");
	OK(shmbus_queue_join(q, "g", SHMBUS_GROUP_EARLIEST));
	OK(shmbus_queue_put(q, "held", 4, 0));
	OK(shmbus_queue_put(q, "next", 4, 0));
	dies(child_hold_message);
	OK(shmbus_queue_shut(q));
	shmbus_queue_close(q);
	shmbus_bus_close(b);
	save("queue-member-died-shut");

	b = fresh(64 << 10);
	{
		shmbus_dict_t *d;
		shmbus_list_t *l;
		shmbus_array_t *a;
		shmbus_event_t *e;
		shmbus_sem_t *s;
		char k[8];

		OK(shmbus_dict_open(b, "d", &(shmbus_dict_opts_t){.size_of = sizeof(shmbus_dict_opts_t), .create = 1, .area_bytes = 8192}, &d));
		for (i = 0; i < 6; i++) {
			snprintf(k, sizeof(k), "k%d", i);
			OK(shmbus_dict_set(d, k, strlen(k), "value", (size_t)i));
		}
		OK(shmbus_dict_set(d, "a", 1, "A", 1));
		shmbus_dict_close(d);
		OK(shmbus_list_open(b, "l", &(shmbus_list_opts_t){.size_of = sizeof(shmbus_list_opts_t), .create = 1, .area_bytes = 8192}, &l));
		for (i = 0; i < 6; i++)
			OK(shmbus_list_append(l, "item", (size_t)i));
		shmbus_list_close(l);
		OK(shmbus_array_open(b, "a", &(shmbus_array_opts_t){.size_of = sizeof(shmbus_array_opts_t), .dtype = SHMBUS_INT64, .length = 16, .create = 1}, &a));
		OK(shmbus_array_add_i64(a, 3, 42, NULL));
		shmbus_array_close(a);
		OK(shmbus_event_open(b, "ev", NULL, &e));
		OK(shmbus_event_set(e));
		shmbus_event_close(e);
		OK(shmbus_sem_open(b, "sem", &(shmbus_sem_opts_t){.size_of = sizeof(shmbus_sem_opts_t), .create = 1, .initial = 2}, &s));
		shmbus_sem_close(s);
		dies(child_hold_lock);
	}
	shmbus_bus_close(b);
	save("containers-lock-died");
	return 0;
}

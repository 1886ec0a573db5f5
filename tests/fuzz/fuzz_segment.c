/*
 * fuzz_segment.c -- promise 4 under a fuzzer: arbitrary bytes mapped as a
 * segment give error codes, never a crash, a sanitizer report or a hang.
 *
 * The input is the beginning of a segment file. If its header names a
 * total size between the input's length and 4 MiB, the rest is zeros (so
 * inputs stay small while the segment keeps a valid size); otherwise the
 * file is exactly the input. The file is opened as a file: bus and driven
 * through everything a process does with a bus it did not make: open,
 * info, peers, channel list, then per channel kind: state read/wait/write,
 * queue join/peek/get/info/put, array get, dict walk/get, list get, lock,
 * event, semaphore; and gc.
 *
 * One source, three drivers:
 *   clang -fsanitize=fuzzer,address,undefined  -> libFuzzer target
 *   afl-clang-fast -DFUZZ_MAIN                -> AFL++ harness (file as argv[1])
 *   any compiler -DFUZZ_MAIN                  -> replays files (a reproducer)
 * tests/fuzz/run.sh builds them; mkseeds.c makes the seed corpus.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmbus.h"

#define MAX_SEGMENT (4u << 20)

static char path[128];
static char busname[160];
static uint8_t scratch[1 << 16];

static void drive_state(shmbus_bus_t *b, const char *name)
{
	shmbus_state_opts_t so;
	shmbus_state_t *st;
	const void *p;
	uint64_t seq;

	shmbus_state_opts_init(&so);
	so.create = 0;
	if (shmbus_state_open(b, name, &so, &st) != 0)
		return;
	shmbus_state_read(st, scratch, sizeof(scratch), &seq);
	if (shmbus_state_read_begin(st, &p, &seq) == 0) {
		volatile uint8_t x = ((const uint8_t *)p)[shmbus_state_size(st) - 1];

		(void)x;
		shmbus_state_read_validate(st, seq);
	}
	shmbus_state_wait(st, shmbus_state_seq(st), 0, &seq);
	if (shmbus_state_size(st) <= sizeof(scratch))
		shmbus_state_write(st, scratch, shmbus_state_size(st));
	shmbus_state_close(st);
}

static void drive_queue(shmbus_bus_t *b, const char *name)
{
	shmbus_queue_opts_t qo;
	shmbus_queue_info_t qi = {.size_of = sizeof(qi)};
	shmbus_group_info_t gi[4];
	shmbus_queue_t *q;
	shmbus_msg_t m;
	size_t len;
	uint32_t flags;
	int i;

	shmbus_queue_opts_init(&qo);
	qo.create = 0;
	if (shmbus_queue_open(b, name, &qo, &q) != 0)
		return;
	shmbus_queue_info(q, &qi, gi, 4);
	if (shmbus_queue_join(q, "g", SHMBUS_GROUP_EARLIEST) == 0) {
		if (shmbus_queue_peek(q, &m, 0) == 0) {
			if (m.len) {
				volatile uint8_t x = ((const uint8_t *)m.data)[m.len - 1];

				(void)x;
			}
			shmbus_queue_release(q);
		}
		for (i = 0; i < 4; i++)
			if (shmbus_queue_get(q, scratch, sizeof(scratch), &len, &flags, 0) != 0)
				break;
	}
	shmbus_queue_put(q, "fuzz", 4, 0);
	shmbus_queue_close(q);
}

static void drive_containers(shmbus_bus_t *b, const shmbus_channel_info_t *ci)
{
	uint8_t k[256], v[256];
	size_t kl, vl;
	uint64_t cur = 0, n;
	int i;

	switch (ci->kind) {
	case SHMBUS_KIND_ARRAY: {
		shmbus_array_t *a;

		if (shmbus_array_open(b, ci->name, &(shmbus_array_opts_t){.size_of = sizeof(shmbus_array_opts_t), .dtype = ci->dtype, .length = 0, .create = 0}, &a) != 0)
			return;
		n = shmbus_array_length(a);
		for (i = 0; i < 4 && (uint64_t)i < n; i++)
			shmbus_array_get(a, n - 1 - (uint64_t)i, v);
		shmbus_array_add_i64(a, 0, 1, NULL);
		shmbus_array_close(a);
		break;
	}
	case SHMBUS_KIND_DICT: {
		shmbus_dict_t *d;

		if (shmbus_dict_open(b, ci->name, &(shmbus_dict_opts_t){.size_of = sizeof(shmbus_dict_opts_t), .create = 0}, &d) != 0)
			return;
		shmbus_dict_len(d, &n);
		for (i = 0; i < 64; i++)
			if (shmbus_dict_next(d, &cur, k, sizeof(k), &kl, v, sizeof(v), &vl) != 0)
				break;
		shmbus_dict_get(d, "a", 1, v, sizeof(v), &vl);
		shmbus_dict_set(d, "z", 1, "1", 1);
		shmbus_dict_del(d, "a", 1);
		shmbus_dict_close(d);
		break;
	}
	case SHMBUS_KIND_LIST: {
		shmbus_list_t *l;

		if (shmbus_list_open(b, ci->name, &(shmbus_list_opts_t){.size_of = sizeof(shmbus_list_opts_t), .create = 0}, &l) != 0)
			return;
		shmbus_list_len(l, &n);
		for (i = 0; i < 16; i++)
			if (shmbus_list_get(l, i, v, sizeof(v), &vl) != 0)
				break;
		shmbus_list_get(l, -1, v, sizeof(v), &vl);
		shmbus_list_append(l, "x", 1);
		shmbus_list_pop(l, 0, v, sizeof(v), &vl);
		shmbus_list_close(l);
		break;
	}
	case SHMBUS_KIND_LOCK: {
		shmbus_lock_t *l;
		int r;

		if (shmbus_lock_open(b, ci->name, &(shmbus_lock_opts_t){.size_of = sizeof(shmbus_lock_opts_t), .create = 0}, &l) != 0)
			return;
		r = shmbus_lock_lock(l, 0);
		if (r == SHMBUS_EOWNERDEAD)
			shmbus_lock_consistent(l);
		if (r == 0 || r == SHMBUS_EOWNERDEAD)
			shmbus_lock_unlock(l);
		shmbus_lock_close(l);
		break;
	}
	case SHMBUS_KIND_EVENT: {
		shmbus_event_t *e;

		if (shmbus_event_open(b, ci->name, &(shmbus_event_opts_t){.size_of = sizeof(shmbus_event_opts_t), .create = 0}, &e) != 0)
			return;
		shmbus_event_is_set(e);
		shmbus_event_wait(e, 0);
		shmbus_event_close(e);
		break;
	}
	case SHMBUS_KIND_SEMAPHORE: {
		shmbus_sem_t *s;
		uint32_t val;

		if (shmbus_sem_open(b, ci->name, &(shmbus_sem_opts_t){.size_of = sizeof(shmbus_sem_opts_t), .create = 0}, &s) != 0)
			return;
		shmbus_sem_value(s, &val);
		if (shmbus_sem_wait(s, 0) == 0)
			shmbus_sem_post(s);
		shmbus_sem_close(s);
		break;
	}
	default:
		break;
	}
}

static void drive(void)
{
	shmbus_channel_info_t infos[16] = {{.size_of = sizeof(infos[0])}};
	shmbus_peer_info_t peers[8];
	shmbus_bus_opts_t o;
	shmbus_bus_info_t bi = {.size_of = sizeof(bi)};
	shmbus_bus_t *b;
	size_t n = 0, i;
	uint32_t reaped;

	shmbus_bus_opts_init(&o);
	/* The fuzzer's file has whatever owner and mode bits it has. */
	o.flags = SHMBUS_BUS_ALLOW_FOREIGN_OWNER;
	if (shmbus_bus_open(busname, &o, &b) != 0)
		return;
	shmbus_bus_set_liveness(b, 1000000);
	shmbus_bus_info(b, &bi);
	shmbus_bus_peers(b, peers, 8, &n);
	if (shmbus_channel_list(b, infos, 16, &n) == 0) {
		for (i = 0; i < n && i < 16; i++) {
			shmbus_channel_info_t one = {.size_of = sizeof(one)};

			shmbus_channel_info(b, infos[i].name, &one);
			if (infos[i].kind == SHMBUS_KIND_STATE)
				drive_state(b, infos[i].name);
			else if (infos[i].kind == SHMBUS_KIND_QUEUE)
				drive_queue(b, infos[i].name);
			else
				drive_containers(b, &infos[i]);
		}
	}
	shmbus_bus_gc(b, &reaped);
	shmbus_bus_close(b);
}

static int write_segment(const uint8_t *data, size_t size)
{
	uint64_t total = 0;
	int fd;

	if (!path[0]) {
		snprintf(path, sizeof(path), "/dev/shm/shmbus-fuzz-%d.bus", (int)getpid());
		snprintf(busname, sizeof(busname), "file:%s", path);
	}
	unlink(path);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -1;
	if (size >= 24)
		memcpy(&total, data + 16, sizeof(total));      /* header total_size */
	/* The header's boot hash (offset 104) is set to one no boot has, so
	 * that open rebuilds the directory mutex as after a reboot: a fuzzed
	 * mutex would otherwise cost the 2 s lock timeout on most inputs
	 * (that bounded path is covered by test_hostile). */
	if (size >= 112) {
		static const uint64_t other_boot = 2;

		if (write(fd, data, 104) != 104 || write(fd, &other_boot, 8) != 8 ||
		    write(fd, data + 112, size - 112) != (ssize_t)(size - 112) ||
		    (total > size && total <= MAX_SEGMENT && ftruncate(fd, (off_t)total) != 0)) {
			close(fd);
			return -1;
		}
	} else if (write(fd, data, size) != (ssize_t)size ||
	    (total > size && total <= MAX_SEGMENT && ftruncate(fd, (off_t)total) != 0)) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MAX_SEGMENT)
		return 0;
	if (write_segment(data, size) == 0)
		drive();
	unlink(path);
	return 0;
}

#ifdef FUZZ_MAIN
/* AFL++ and replay driver: each argument is an input file (none: stdin). */
int main(int argc, char **argv)
{
	static uint8_t buf[MAX_SEGMENT];
	int i;

	for (i = 1; i < argc || i == 1; i++) {
		FILE *f = argc > 1 ? fopen(argv[i], "rb") : stdin;
		size_t n;

		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf), f);
		if (f != stdin)
			fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
		if (argc <= 1)
			break;
	}
	return 0;
}
#endif

/*
 * bridgetool.c -- the local ends of the bridge tests: write and check state
 * values, produce and check queue messages, remove buses. Each command
 * prints what it saw and exits 0 only if the check held.
 *
 *   put BUS CHAN DTYPE SHAPE V...        write one value (shape "3,4"; "1" scalar)
 *   expect BUS CHAN TIMEOUT_MS DTYPE SHAPE V...
 *                                        wait until the channel holds exactly
 *                                        this type and value
 *   count BUS CHAN                       print the channel's sequence number
 *   waitseq BUS CHAN TIMEOUT_MS SEQ      wait (shmbus_state_wait) until the
 *                                        channel's sequence number is SEQ or more
 *   get BUS CHAN                         print "seq v0 v1 ..." (values as numbers)
 *   produce BUS QUEUE N ID [shut]        N messages of producer ID, then
 *                                        optionally end of stream
 *   consume BUS QUEUE GROUP N TIMEOUT_S [eos]
 *                                        take messages until N are checked
 *                                        (and end of stream seen, with eos):
 *                                        checksums, per-producer order, no
 *                                        duplicate, nothing missing
 *   qhead BUS QUEUE                      print how many messages the queue got
 *   rm BUS...                            unlink buses
 *
 * A message is: u64 producer id, u64 index, filler of 0..200 bytes that
 * depends on both, u64 FNV-1a of everything before it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmbus.h"

static uint64_t fnv(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull;

	while (n--)
		h = (h ^ *s++) * 1099511628211ull;
	return h;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int die(const char *what, int r)
{
	fprintf(stderr, "bridgetool: %s: %s (%s)\n", what, shmbus_strerror(r), shmbus_last_error());
	return 2;
}

static shmbus_bus_t *open_bus(const char *name, int create)
{
	shmbus_bus_t *bus = NULL;
	int r = create ? shmbus_bus_open_or_create(name, NULL, &bus, NULL)
	               : shmbus_bus_wait_open(name, NULL, 10000000000ll, &bus);

	if (r) {
		die(name, r);
		exit(2);
	}
	return bus;
}

static int parse_type(const char *dt, const char *sh, shmbus_state_opts_t *so, size_t *n)
{
	char *end;
	const char *p = sh;

	shmbus_state_opts_init(so);
	so->dtype = shmbus_dtype_parse(dt);
	if (so->dtype < 0)
		return -1;
	*n = 1;
	so->ndim = 0;
	while (*p && so->ndim < SHMBUS_MAX_DIMS) {
		so->shape[so->ndim] = strtoull(p, &end, 10);
		*n *= so->shape[so->ndim++];
		p = *end == ',' ? end + 1 : end;
		if (end == p && !*end)
			break;
	}
	return 0;
}

static void to_dtype(int dtype, double v, void *dst)
{
	switch (dtype) {
	case SHMBUS_INT8: *(int8_t *)dst = (int8_t)v; break;
	case SHMBUS_BYTES: case SHMBUS_UINT8: case SHMBUS_BOOL: *(uint8_t *)dst = (uint8_t)v; break;
	case SHMBUS_INT16: *(int16_t *)dst = (int16_t)v; break;
	case SHMBUS_UINT16: *(uint16_t *)dst = (uint16_t)v; break;
	case SHMBUS_INT32: *(int32_t *)dst = (int32_t)v; break;
	case SHMBUS_UINT32: *(uint32_t *)dst = (uint32_t)v; break;
	case SHMBUS_INT64: *(int64_t *)dst = (int64_t)v; break;
	case SHMBUS_UINT64: *(uint64_t *)dst = (uint64_t)v; break;
	case SHMBUS_FLOAT32: *(float *)dst = (float)v; break;
	default: *(double *)dst = v; break;
	}
}

static int build_value(int argc, char **argv, int first, shmbus_state_opts_t *so,
                       unsigned char **buf, size_t *len)
{
	size_t n, esz, i;

	if (parse_type(argv[first], argv[first + 1], so, &n)) {
		fprintf(stderr, "bridgetool: bad dtype %s\n", argv[first]);
		return -1;
	}
	esz = shmbus_dtype_size(so->dtype);
	if ((size_t)(argc - first - 2) != n) {
		fprintf(stderr, "bridgetool: %zu values given for %zu elements\n",
		        (size_t)(argc - first - 2), n);
		return -1;
	}
	*len = n * esz;
	*buf = calloc(1, *len ? *len : 1);
	for (i = 0; i < n; i++)
		to_dtype(so->dtype, strtod(argv[first + 2 + i], NULL), *buf + i * esz);
	return 0;
}

static int cmd_put(int argc, char **argv)
{
	shmbus_state_opts_t so;
	shmbus_state_t *st;
	shmbus_bus_t *bus;
	unsigned char *buf;
	size_t len;
	int r;

	if (argc < 6 || build_value(argc, argv, 4, &so, &buf, &len))
		return 2;
	bus = open_bus(argv[2], 1);
	r = shmbus_state_open(bus, argv[3], &so, &st);
	if (r)
		return die("state open", r);
	r = shmbus_state_write(st, buf, len);
	if (r)
		return die("state write", r);
	printf("put %s:%s seq %" PRIu64 "\n", argv[2], argv[3], shmbus_state_seq(st));
	shmbus_state_close(st);
	shmbus_bus_close(bus);
	free(buf);
	return 0;
}

static int cmd_expect(int argc, char **argv)
{
	shmbus_state_opts_t so;
	shmbus_state_t *st = NULL;
	shmbus_channel_info_t ci;
	shmbus_bus_t *bus;
	unsigned char *want, *got;
	uint64_t deadline, seq = 0;
	size_t len;
	int r = -1, open_r = 0;
	char open_err[256] = "";

	if (argc < 7 || build_value(argc, argv, 5, &so, &want, &len))
		return 2;
	deadline = now_ms() + strtoull(argv[4], NULL, 10);
	bus = open_bus(argv[2], 1);
	got = calloc(1, len + 1);
	while (now_ms() < deadline) {
		if (!st) {
			shmbus_state_opts_t eo;
			shmbus_state_opts_init(&eo);
			eo.create = 0;
			eo.ndim = 0;
			open_r = shmbus_state_open(bus, argv[3], &eo, &st);
			if (open_r) {
				snprintf(open_err, sizeof(open_err), "%s", shmbus_last_error());
				st = NULL;
				struct timespec ts = { 0, 20000000 };
				nanosleep(&ts, NULL);
				continue;
			}
			memset(&ci, 0, sizeof(ci));
			ci.size_of = sizeof(ci);
			shmbus_state_info(st, &ci);
			if (ci.dtype != so.dtype || shmbus_state_size(st) != len) {
				fprintf(stderr, "expect: channel is %s of %zu bytes, wanted %s of %zu\n",
				        shmbus_dtype_name(ci.dtype), shmbus_state_size(st),
				        shmbus_dtype_name(so.dtype), len);
				shmbus_state_close(st);
				shmbus_bus_close(bus);
				free(want);
				free(got);
				return 1;
			}
		}
		r = shmbus_state_read(st, got, len, &seq);
		if (r == 0 && !memcmp(got, want, len)) {
			printf("expect %s:%s matched at local seq %" PRIu64 "\n", argv[2], argv[3], seq);
			shmbus_state_close(st);
			shmbus_bus_close(bus);
			free(want);
			free(got);
			return 0;
		}
		shmbus_state_wait(st, seq, 50000000, &seq);
	}
	fprintf(stderr, "expect %s:%s: no matching value within %s ms (last read: %s, seq %" PRIu64 ")%s%s\n",
	        argv[2], argv[3], argv[4], st ? shmbus_strerror(r) : "no channel", seq,
	        st ? "" : "; open: ", st ? "" : open_err);
	(void)open_r;
	shmbus_state_close(st);
	shmbus_bus_close(bus);
	free(want);
	free(got);
	return 1;
}

static int cmd_waitseq(int argc, char **argv)
{
	shmbus_state_opts_t so;
	shmbus_state_t *st = NULL;
	shmbus_bus_t *bus;
	uint64_t deadline, want, seq = 0;
	int r = 0;

	if (argc < 6)
		return 2;
	deadline = now_ms() + strtoull(argv[4], NULL, 10);
	want = strtoull(argv[5], NULL, 10);
	bus = open_bus(argv[2], 1);
	shmbus_state_opts_init(&so);
	so.create = 0;
	so.ndim = 0;
	while (now_ms() < deadline) {
		if (!st && (r = shmbus_state_open(bus, argv[3], &so, &st)) != 0) {
			struct timespec ts = { 0, 20000000 };

			st = NULL;
			nanosleep(&ts, NULL);
			continue;
		}
		seq = shmbus_state_seq(st);
		if (seq >= want) {
			printf("waitseq %s:%s reached seq %" PRIu64 "\n", argv[2], argv[3], seq);
			shmbus_state_close(st);
			shmbus_bus_close(bus);
			return 0;
		}
		/* wakes at the next value; the timeout only bounds each wait */
		shmbus_state_wait(st, seq, 50000000, &seq);
	}
	fprintf(stderr, "waitseq %s:%s: seq %" PRIu64 " after %s ms, wanted %" PRIu64 "%s\n",
	        argv[2], argv[3], seq, argv[4], want, st ? "" : " (no channel)");
	(void)r;
	shmbus_state_close(st);
	shmbus_bus_close(bus);
	return 1;
}

static int cmd_count(int argc, char **argv)
{
	shmbus_state_opts_t so;
	shmbus_state_t *st;
	shmbus_bus_t *bus;
	int r;

	if (argc < 4)
		return 2;
	bus = open_bus(argv[2], 0);
	shmbus_state_opts_init(&so);
	so.create = 0;
	so.ndim = 0;
	r = shmbus_state_open(bus, argv[3], &so, &st);
	if (r)
		return die("state open", r);
	printf("%" PRIu64 "\n", shmbus_state_seq(st));
	shmbus_state_close(st);
	shmbus_bus_close(bus);
	return 0;
}

static double from_dtype(int dtype, const unsigned char *p)
{
	switch (dtype) {
	case SHMBUS_INT8: return *(const int8_t *)p;
	case SHMBUS_BYTES: case SHMBUS_UINT8: case SHMBUS_BOOL: return *p;
	case SHMBUS_INT16: return *(const int16_t *)p;
	case SHMBUS_UINT16: return *(const uint16_t *)p;
	case SHMBUS_INT32: return *(const int32_t *)p;
	case SHMBUS_UINT32: return *(const uint32_t *)p;
	case SHMBUS_INT64: return (double)*(const int64_t *)p;
	case SHMBUS_UINT64: return (double)*(const uint64_t *)p;
	case SHMBUS_FLOAT32: return *(const float *)p;
	default: return *(const double *)p;
	}
}

static int cmd_get(int argc, char **argv)
{
	shmbus_state_opts_t so;
	shmbus_channel_info_t ci;
	shmbus_state_t *st;
	shmbus_bus_t *bus;
	unsigned char *buf;
	uint64_t seq = 0;
	size_t len, esz, i;
	int r;

	if (argc < 4)
		return 2;
	bus = open_bus(argv[2], 0);
	shmbus_state_opts_init(&so);
	so.create = 0;
	so.ndim = 0;
	r = shmbus_state_open(bus, argv[3], &so, &st);
	if (r)
		return die("state open", r);
	memset(&ci, 0, sizeof(ci));
	ci.size_of = sizeof(ci);
	shmbus_state_info(st, &ci);
	len = shmbus_state_size(st);
	esz = shmbus_dtype_size(ci.dtype);
	buf = calloc(1, len + 1);
	r = shmbus_state_read(st, buf, len, &seq);
	if (r)
		return die("state read", r);
	printf("%" PRIu64, seq);
	for (i = 0; esz && i < len / esz; i++)
		printf(" %.17g", from_dtype(ci.dtype, buf + i * esz));
	printf("\n");
	free(buf);
	shmbus_state_close(st);
	shmbus_bus_close(bus);
	return 0;
}

static size_t make_msg(unsigned char *m, uint64_t id, uint64_t idx)
{
	size_t fill = (size_t)((idx * 2654435761u + id) % 201), i;
	uint64_t h;

	memcpy(m, &id, 8);
	memcpy(m + 8, &idx, 8);
	for (i = 0; i < fill; i++)
		m[16 + i] = (unsigned char)(idx + id * 7 + i * 13);
	h = fnv(m, 16 + fill);
	memcpy(m + 16 + fill, &h, 8);
	return 24 + fill;
}

static void queue_opts(shmbus_queue_opts_t *qo)
{
	shmbus_queue_opts_init(qo);
	qo->slots = 1024;
	qo->max_msg = 256;
	/* BRIDGETOOL_CELL_BYTES=N: queues of cells of N bytes (made so, or
	 * checked to be so). */
	if (getenv("BRIDGETOOL_CELL_BYTES"))
		qo->cell_bytes = strtoull(getenv("BRIDGETOOL_CELL_BYTES"), NULL, 10);
}

static int cmd_produce(int argc, char **argv)
{
	shmbus_queue_opts_t qo;
	shmbus_queue_t *q;
	shmbus_bus_t *bus;
	unsigned char m[256];
	uint64_t n, id, i;
	int r;

	if (argc < 6)
		return 2;
	n = strtoull(argv[4], NULL, 10);
	id = strtoull(argv[5], NULL, 10);
	bus = open_bus(argv[2], 1);
	queue_opts(&qo);
	r = shmbus_queue_open(bus, argv[3], &qo, &q);
	if (r)
		return die("queue open", r);
	for (i = 0; i < n; i++) {
		size_t len = make_msg(m, id, i);
		r = shmbus_queue_put(q, m, len, 60000000000ll);
		if (r)
			return die("queue put", r);
	}
	if (argc > 6 && !strcmp(argv[6], "shut"))
		shmbus_queue_shut(q);
	printf("produced %" PRIu64 " messages as producer %" PRIu64 "%s\n", n, id,
	       argc > 6 ? " and shut the queue" : "");
	shmbus_queue_close(q);
	shmbus_bus_close(bus);
	return 0;
}

#define MAX_PRODUCERS 16

static int cmd_consume(int argc, char **argv)
{
	shmbus_queue_opts_t qo;
	shmbus_queue_t *q;
	shmbus_bus_t *bus;
	unsigned char m[512];
	uint64_t want, got = 0, next[MAX_PRODUCERS] = { 0 }, deadline, bad = 0, dups = 0, gaps = 0;
	uint64_t redelivered = 0;
	int eos = argc > 7 && !strcmp(argv[7], "eos"), saw_eos = 0, r;

	if (argc < 7)
		return 2;
	want = strtoull(argv[5], NULL, 10);
	deadline = now_ms() + strtoull(argv[6], NULL, 10) * 1000;
	bus = open_bus(argv[2], 1);
	queue_opts(&qo);
	r = shmbus_queue_open(bus, argv[3], &qo, &q);
	if (r)
		return die("queue open", r);
	r = shmbus_queue_join(q, argv[4], SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE);
	if (r)
		return die("queue join", r);
	while (now_ms() < deadline && (got < want || (eos && !saw_eos))) {
		size_t len = 0;
		uint32_t flags = 0;
		uint64_t id, idx, h;

		r = shmbus_queue_get(q, m, sizeof(m), &len, &flags, 200000000);
		if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_EINTR)
			continue;
		if (r == SHMBUS_ECLOSED) {
			saw_eos = 1;
			break;
		}
		if (r)
			return die("queue get", r);
		if (flags & SHMBUS_MSG_REDELIVERED)
			redelivered++;
		if (len < 24) {
			bad++;
			continue;
		}
		memcpy(&id, m, 8);
		memcpy(&idx, m + 8, 8);
		memcpy(&h, m + len - 8, 8);
		if (h != fnv(m, len - 8) || id >= MAX_PRODUCERS) {
			if (bad++ < 5)
				fprintf(stderr, "consume: message %" PRIu64 " fails its checksum (len %zu)\n", got, len);
			continue;
		}
		if (idx < next[id]) {
			if (dups++ < 5)
				fprintf(stderr, "consume: duplicate or reordered: producer %" PRIu64 " index %" PRIu64 " after %" PRIu64 "\n",
				        id, idx, next[id]);
		} else if (idx > next[id]) {
			if (gaps++ < 5)
				fprintf(stderr, "consume: missing producer %" PRIu64 " indices %" PRIu64 "..%" PRIu64 "\n",
				        id, next[id], idx - 1);
			next[id] = idx + 1;
		} else {
			next[id] = idx + 1;
		}
		got++;
	}
	printf("consumed %" PRIu64 " of %" PRIu64 ": %" PRIu64 " bad checksums, %" PRIu64 " duplicates/reorders, %" PRIu64 " gaps, %" PRIu64 " redelivered locally, end of stream %s\n",
	       got, want, bad, dups, gaps, redelivered, saw_eos ? "seen" : "not seen");
	shmbus_queue_close(q);
	shmbus_bus_close(bus);
	return (got == want && !bad && !dups && !gaps && (!eos || saw_eos)) ? 0 : 1;
}

static int cmd_qhead(int argc, char **argv)
{
	shmbus_queue_opts_t qo;
	shmbus_queue_info_t qi;
	shmbus_queue_t *q;
	shmbus_bus_t *bus = NULL;
	int r;

	if (argc < 4)
		return 2;
	r = shmbus_bus_open(argv[2], NULL, &bus);
	if (r)
		return die("bus open", r);
	shmbus_queue_opts_init(&qo);
	qo.create = 0;
	r = shmbus_queue_open(bus, argv[3], &qo, &q);
	if (r)
		return die("queue open", r);
	memset(&qi, 0, sizeof(qi));
	qi.size_of = sizeof(qi);
	r = shmbus_queue_info(q, &qi, NULL, 0);
	if (r)
		return die("queue info", r);
	printf("%" PRIu64 "\n", qi.head);
	shmbus_queue_close(q);
	shmbus_bus_close(bus);
	return 0;
}

int main(int argc, char **argv)
{
	int i;

	if (argc < 2)
		goto usage;
	if (!strcmp(argv[1], "put"))
		return cmd_put(argc, argv);
	if (!strcmp(argv[1], "expect"))
		return cmd_expect(argc, argv);
	if (!strcmp(argv[1], "waitseq"))
		return cmd_waitseq(argc, argv);
	if (!strcmp(argv[1], "count"))
		return cmd_count(argc, argv);
	if (!strcmp(argv[1], "get"))
		return cmd_get(argc, argv);
	if (!strcmp(argv[1], "qhead"))
		return cmd_qhead(argc, argv);
	if (!strcmp(argv[1], "produce"))
		return cmd_produce(argc, argv);
	if (!strcmp(argv[1], "consume"))
		return cmd_consume(argc, argv);
	if (!strcmp(argv[1], "rm")) {
		for (i = 2; i < argc; i++)
			shmbus_bus_unlink(argv[i]);
		return 0;
	}
usage:
	fprintf(stderr, "usage: bridgetool put|expect|count|get|produce|consume|rm ... (see the source)\n");
	return 2;
}

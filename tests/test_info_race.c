/*
 * test_info_race.c -- the lock-free readers of a bus's bookkeeping
 * (shmbus_bus_peers, shmbus_bus_info) run while other threads attach and
 * detach (peer registration) and create channels (the heap's bump
 * pointer). Every value they report is sane: an attach time is 0 (a peer
 * caught while registering) or a time within this run, and the heap's
 * used count never goes back. Under ThreadSanitizer (tests/tsan.list) the
 * used count, stored under the bus mutex and read without it, must not be
 * a data race (it was a plain field). The attach time is written through
 * the registrant's own mapping, which TSan cannot relate to the reader's
 * (each open maps the segment anew), so for it this test checks values.
 */
#include <pthread.h>

#include "testutil.h"

#define ROUNDS 400

static const char *bus_name;
static atomic_int done;
static uint64_t t_start;

static void *attacher(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < ROUNDS; i++) {
		shmbus_bus_t *b;

		OK(shmbus_bus_open(bus_name, NULL, &b));
		OK(shmbus_bus_close(b));
	}
	return NULL;
}

static void *creator(void *arg)
{
	shmbus_bus_t *b = arg;
	char name[32];
	int i;

	for (i = 0; i < ROUNDS; i++) {
		shmbus_sem_t *s;

		snprintf(name, sizeof(name), "s%d", i % 32);
		OK(shmbus_sem_open(b, name, NULL, &s));
		OK(shmbus_sem_close(s));
		if (i % 32 == 31)   /* free directory entries; the heap only grows */
			for (int k = 0; k < 32; k++) {
				snprintf(name, sizeof(name), "s%d", k);
				OK(shmbus_channel_delete(b, name));
			}
	}
	return NULL;
}

int main(void)
{
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;
	pthread_t ta, tc;
	shmbus_peer_info_t peers[64];
	shmbus_bus_info_t bi = {.size_of = sizeof(bi)};
	uint64_t last_used = 0, reads = 0, stamped = 0;
	struct timespec ts;

	setvbuf(stdout, NULL, _IOLBF, 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	t_start = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	bus_name = test_bus_name("irace");
	shmbus_bus_opts_init(&o);
	o.size = 4 << 20;
	OK(shmbus_bus_create(bus_name, &o, &b));
	CHECK(pthread_create(&ta, NULL, attacher, NULL) == 0, "pthread_create");
	CHECK(pthread_create(&tc, NULL, creator, b) == 0, "pthread_create");
	while (atomic_load(&done) < 1) {
		size_t n, i;

		OK(shmbus_bus_peers(b, peers, 64, &n));
		clock_gettime(CLOCK_REALTIME, &ts);
		for (i = 0; i < n && i < 64; i++) {
			uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;

			CHECK(peers[i].pid == (uint32_t)getpid(), "peer %zu is pid %u, not us", i,
			      peers[i].pid);
			/* 0: caught while registering; otherwise its own time. */
			CHECK(peers[i].attach_time_ns == 0 ||
			      (peers[i].attach_time_ns >= t_start - 1000000000ull &&
			       peers[i].attach_time_ns <= now + 1000000000ull),
			      "peer %zu attach time %llu outside the test's run", i,
			      (unsigned long long)peers[i].attach_time_ns);
			stamped += peers[i].attach_time_ns != 0;
		}
		OK(shmbus_bus_info(b, &bi));
		CHECK(bi.heap_used >= last_used && bi.heap_used <= bi.heap_size,
		      "heap used went from %llu to %llu (of %llu)", (unsigned long long)last_used,
		      (unsigned long long)bi.heap_used, (unsigned long long)bi.heap_size);
		last_used = bi.heap_used;
		reads++;
		if (pthread_tryjoin_np(ta, NULL) == 0) {
			CHECK(pthread_join(tc, NULL) == 0, "join");
			atomic_store(&done, 1);
		}
	}
	CHECK(stamped > 0, "no peer ever showed an attach time");
	OK(shmbus_bus_close(b));
	OK(shmbus_bus_unlink(bus_name));
	printf("  %llu lock-free reads of peers and heap use beside %d attaches and %d channel creations: all sane\n",
	       (unsigned long long)reads, ROUNDS, ROUNDS);
	printf("test_info_race: ok\n");
	return 0;
}

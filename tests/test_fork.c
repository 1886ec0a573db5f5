/*
 * test_fork.c -- handles inherited through fork belong to the parent.
 *
 * A child that closes the bus, state and queue handles it inherited (as a
 * forked worker or Python's multiprocessing does at exit) must not give up
 * what the parent holds in the segment: its peer slot, its writer role, its
 * group membership and the message it has checked out, its producer record.
 */
#include <sys/wait.h>

#include "testutil.h"

static void child_closes(shmbus_bus_t *bus, shmbus_state_t *st, shmbus_queue_t *prod,
                         shmbus_queue_t *cons)
{
	pid_t pid = fork();
	int status;

	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		shmbus_state_close(st);
		shmbus_queue_close(prod);
		shmbus_queue_close(cons);
		shmbus_bus_close(bus);
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 0, "child exit status %d", status);
}

int main(void)
{
	const char *name = test_bus_name("fork");
	shmbus_bus_t *bus, *other;
	shmbus_state_t *st, *st2;
	shmbus_state_opts_t so;
	shmbus_queue_opts_t qo;
	shmbus_queue_t *prod, *cons, *cons2;
	shmbus_queue_info_t qi = {.size_of = sizeof(qi)};
	shmbus_group_info_t gi[2];
	shmbus_peer_info_t peers[8];
	shmbus_msg_t m;
	size_t npeers = 0, len;
	uint64_t v = 7, seq, got;
	uint32_t flags, reaped;

	OK(shmbus_bus_create(name, NULL, &bus));
	shmbus_state_opts_init(&so);
	so.dtype = SHMBUS_UINT64;
	OK(shmbus_state_open(bus, "s", &so, &st));
	OK(shmbus_state_write(st, &v, sizeof(v)));
	shmbus_queue_opts_init(&qo);
	qo.slots = 8;
	qo.max_msg = 64;
	OK(shmbus_queue_open(bus, "q", &qo, &prod));
	OK(shmbus_queue_open(bus, "q", &qo, &cons));
	OK(shmbus_queue_join(cons, "g", SHMBUS_GROUP_EARLIEST));
	for (v = 1; v <= 3; v++)
		OK(shmbus_queue_put(prod, &v, sizeof(v), 0));
	OK(shmbus_queue_peek(cons, &m, 0));   /* holds message 1 */
	CHECK(m.len == 8 && *(const uint64_t *)m.data == 1, "first message");

	child_closes(bus, st, prod, cons);

	/* Peer slot: still registered, and gc has nothing to reap. */
	OK(shmbus_bus_peers(bus, peers, 8, &npeers));
	CHECK(npeers == 1 && peers[0].pid == (uint32_t)getpid() && peers[0].alive,
	      "parent's peer slot kept: %zu peers, pid %u", npeers,
	      npeers ? peers[0].pid : 0);
	OK(shmbus_bus_gc(bus, &reaped));
	CHECK(reaped == 0, "gc reaped %u", reaped);
	/* Writer role: still ours, so another process cannot write. */
	v = 8;
	OK(shmbus_state_write(st, &v, sizeof(v)));
	{
		pid_t pid = fork();
		int status;

		CHECK(pid >= 0, "fork");
		if (pid == 0) {
			shmbus_bus_t *b2;
			shmbus_state_t *s2;

			if (shmbus_bus_open(name, NULL, &b2) || shmbus_state_open(b2, "s", &so, &s2))
				_exit(2);
			_exit(shmbus_state_write(s2, &v, sizeof(v)) == SHMBUS_EBUSY ? 0 : 1);
		}
		CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0,
		      "another process could take the writer role (status %d)", status);
	}
	OK(shmbus_bus_open(name, NULL, &other));
	OK(shmbus_state_open(other, "s", &so, &st2));
	OK(shmbus_state_read(st2, &got, sizeof(got), &seq));
	CHECK(got == 8 && seq == 2, "value %llu seq %llu", (unsigned long long)got,
	      (unsigned long long)seq);
	/* Membership and hold: the parent still holds message 1 and the
	 * group has one member; a new member gets 2, not a redelivered 1. */
	OK(shmbus_queue_info(prod, &qi, gi, 2));
	CHECK(qi.groups == 1 && gi[0].members == 1 && gi[0].live_members == 1,
	      "group members %u live %u", gi[0].members, gi[0].live_members);
	CHECK(qi.producers == 1, "producer records %u", qi.producers);
	OK(shmbus_queue_open(other, "q", &qo, &cons2));
	OK(shmbus_queue_join(cons2, "g", 0));
	OK(shmbus_queue_get(cons2, &got, sizeof(got), &len, &flags, 0));
	CHECK(got == 2 && flags == 0, "second member got %llu flags %u",
	      (unsigned long long)got, flags);
	OK(shmbus_queue_release(cons));
	v = 4;
	OK(shmbus_queue_put(prod, &v, sizeof(v), 0));
	printf("ok inherited handles closed in a child leave the parent's peer slot, writer role, "
	       "membership, hold and producer record\n");

	shmbus_queue_close(cons2);
	shmbus_state_close(st2);
	shmbus_bus_close(other);
	shmbus_queue_close(cons);
	shmbus_queue_close(prod);
	shmbus_state_close(st);
	shmbus_bus_close(bus);
	OK(shmbus_bus_unlink(name));
	printf("test_fork: ok\n");
	return 0;
}

/*
 * test_waitset_remove_fd.c -- removing a bus's last member from a wait set
 * whose fd thread is parked returns (it used to wait for ever: the remove
 * waits for the parkers to leave, and the fd thread, woken by the remove's
 * bump, parked again at once under the mutex, so parkers never reached 0).
 * asyncio in the Python binding removes members all the time.
 */
#include "testutil.h"

/* A remove that does not come back within this fails the test (SIGALRM
 * kills it; the testutil cleanup removes the bus). The fixed remove takes
 * well under a millisecond; 10 s is margin for a loaded machine. */
#define LIMIT_S 10

static void test_remove_last_member_with_fd_thread_parked(void)
{
	const char *bn = test_bus_name("wsrm");
	shmbus_waitset_t *ws;
	shmbus_state_t *st;
	shmbus_event_t *ev;
	shmbus_bus_t *bus;
	int fd, round;

	OK(shmbus_bus_create(bn, NULL, &bus));
	OK(shmbus_state_open(bus, "s", NULL, &st));
	OK(shmbus_event_open(bus, "e", NULL, &ev));
	OK(shmbus_waitset_new(&ws));
	OK(shmbus_waitset_fd(ws, &fd));
	alarm(LIMIT_S);
	for (round = 0; round < 200; round++) {
		/* nothing ready: the fd thread parks on the bus's word */
		OK(shmbus_waitset_add_state(ws, st, shmbus_state_seq(st), 1));
		OK(shmbus_waitset_add_event(ws, ev, 2));
		usleep(round < 5 ? 20000 : 200);   /* first rounds: surely parked */
		OK(shmbus_waitset_remove(ws, 2));
		OK(shmbus_waitset_remove(ws, 1));  /* the bus's last member */
		CHECK(shmbus_waitset_size(ws) == 0, "round %d: %zu members left", round,
		      shmbus_waitset_size(ws));
	}
	alarm(0);
	OK(shmbus_waitset_free(ws));
	OK(shmbus_event_close(ev));
	OK(shmbus_state_close(st));
	OK(shmbus_bus_close(bus));
	OK(shmbus_bus_unlink(bn));
	printf("ok  200 rounds: the last member of a bus removed while the fd thread is parked\n");
}

int main(void)
{
	test_remove_last_member_with_fd_thread_parked();
	printf("test_waitset_remove_fd: ok\n");
	return 0;
}

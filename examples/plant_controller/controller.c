/*
 * controller.c -- the PI controller of the control demo, at 40 Hz:
 * u = Kp e + Ki integral(e), e = 5.0 - y, Kp = 3.0, Ki = 0.5, dt = 0.025.
 *
 * Between two plant updates (the plant runs at 20 Hz) it reuses the last
 * y it read: a state read always returns the newest complete value and its
 * sequence number, never a torn one. It stops when the plant says "done",
 * or when y has not changed for 2 s (the plant died or was stopped), so a
 * crashed plant never wedges it.
 */
#include "common.h"

int main(int argc, char **argv)
{
	const char *name = arg_bus(argc, argv, "controller");
	const double kp = 3.0, ki = 0.5, dt = 0.025;
	shmbus_state_t *y_ch, *u_ch, *done_ch;
	shmbus_bus_t *bus;
	struct timespec next;
	double y = 0, u = 0, integ = 0, e;
	uint64_t yseq = 0, last_yseq = 0, stale_ticks = 0, ticks = 0, dseq;
	int r;

	install_signals();
	printf("controller: attaching to bus '%s'\n", name);
	fflush(stdout);
	r = shmbus_bus_wait_open(name, NULL, ATTACH_TIMEOUT_NS, &bus);
	if (r)
		die("controller", "waiting for the plant's bus", r);
	y_ch = open_scalar(bus, "y", "controller");
	u_ch = open_scalar(bus, "u", "controller");
	done_ch = open_scalar(bus, "done", "controller");
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!stop_requested) {
		if (shmbus_state_seq(done_ch) > 0)
			break;
		r = shmbus_state_read(y_ch, &y, sizeof(y), &yseq);
		if (r && r != SHMBUS_ENODATA)
			die("controller", "reading y", r);
		if (yseq == last_yseq && ++stale_ticks > 80) {
			fprintf(stderr, "controller: y unchanged for 2 s: plant gone, stopping\n");
			break;
		}
		if (yseq != last_yseq)
			stale_ticks = 0;
		last_yseq = yseq;
		e = SETPOINT - y;
		integ += e * dt;
		u = kp * e + ki * integ;
		r = shmbus_state_write(u_ch, &u, sizeof(u));
		if (r)
			die("controller", "writing u", r);
		ticks++;
		tick(&next, 25000000l);
	}
	dseq = shmbus_state_seq(done_ch);
	printf("controller: %llu ticks, last y = %.4f (seq %llu), u = %.4f%s\n",
	       (unsigned long long)ticks, y, (unsigned long long)yseq, u,
	       dseq ? ", plant done" : "");
	shmbus_state_close(y_ch);
	shmbus_state_close(u_ch);
	shmbus_state_close(done_ch);
	shmbus_bus_close(bus);
	if (!dseq)   /* the plant is gone: clean up what it left */
		shmbus_bus_unlink(name);
	return stop_requested ? 130 : dseq ? 0 : 1;
}

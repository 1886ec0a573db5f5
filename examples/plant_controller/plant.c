/*
 * plant.c -- the plant simulation of the control demo: a first-order
 * system y[k+1] = 0.9 y[k] + 0.1 u[k], stepped at 20 Hz for 200 steps.
 *
 * It publishes y on state channel "y" and reads the controller's latest
 * command from "u" (latest value wins: the controller runs at 40 Hz, so
 * the plant simply takes whatever is newest). It waits up to 10 s for the
 * controller's first command, tells the controller it has finished through
 * state "done", and removes the bus at the end of a clean run.
 */
#include "common.h"

int main(int argc, char **argv)
{
	const char *name = arg_bus(argc, argv, "plant");
	shmbus_state_t *y_ch, *u_ch, *done_ch;
	shmbus_bus_t *bus;
	struct timespec next;
	double y = 0.0, u = 0.0, done = 1.0, err_mid = 0;
	uint64_t useq = 0, missed = 0, last_useq = 0;
	int k, r, steps = 200;

	install_signals();
	r = shmbus_bus_open_or_create(name, NULL, &bus, NULL);
	if (r)
		die("plant", "opening the bus", r);
	y_ch = open_scalar(bus, "y", "plant");
	u_ch = open_scalar(bus, "u", "plant");
	done_ch = open_scalar(bus, "done", "plant");
	r = shmbus_state_write(y_ch, &y, sizeof(y));
	if (r)
		die("plant", "writing y", r);
	printf("plant: waiting for the controller on bus '%s'\n", name);
	fflush(stdout);
	r = shmbus_state_wait(u_ch, 0, ATTACH_TIMEOUT_NS, &useq);
	while (r == SHMBUS_EINTR && !stop_requested)
		r = shmbus_state_wait(u_ch, 0, ATTACH_TIMEOUT_NS, &useq);
	if (r) {
		fprintf(stderr, "plant: no controller within 10 s: %s\n", shmbus_last_error());
		shmbus_bus_unlink(name);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (k = 0; k < steps && !stop_requested; k++) {
		r = shmbus_state_read(u_ch, &u, sizeof(u), &useq);
		if (r)
			die("plant", "reading u", r);
		if (last_useq && useq > last_useq + 2)
			missed += useq - last_useq - 2;   /* 2 commands per step expected */
		last_useq = useq;
		y = 0.9 * y + 0.1 * u;
		r = shmbus_state_write(y_ch, &y, sizeof(y));
		if (r)
			die("plant", "writing y", r);
		if (k % 20 == 19)
			printf("plant: step %3d  u = %7.4f  y = %7.4f\n", k + 1, u, y);
		if (k == steps / 2)
			err_mid = SETPOINT - y;
		fflush(stdout);
		tick(&next, 50000000l);
	}
	shmbus_state_write(done_ch, &done, sizeof(done));
	shmbus_state_close(y_ch);
	shmbus_state_close(u_ch);
	shmbus_state_close(done_ch);
	shmbus_bus_close(bus);
	shmbus_bus_unlink(name);
	if (stop_requested) {
		printf("plant: stopped at step %d\n", k);
		return 130;
	}
	/* With Kp=3, Ki=0.5 the integral mode is slow: an ideal run ends at
	 * y ~ 4.66 after 200 steps, still rising toward 5. Converging means
	 * the error keeps shrinking and is small. */
	printf("plant: final y = %.4f (setpoint %.1f), error at step 100 %.4f, at step 200 %.4f; %llu commands not seen\n",
	       y, SETPOINT, err_mid, SETPOINT - y, (unsigned long long)missed);
	if (!(SETPOINT - y < 0.5 && SETPOINT - y > -0.1 && SETPOINT - y < err_mid)) {
		fprintf(stderr, "plant: did not converge toward the setpoint\n");
		return 1;
	}
	printf("plant: converging toward %.1f: ok\n", SETPOINT);
	return 0;
}

/*
 * controller_ws.c -- the PI controller again, driven by events instead of
 * a clock: one loop waits on three channels at once through a wait set
 *
 *   y         state   the plant's output: compute and write u for each value
 *   setpoint  state   a new target, from an operator (5.0 until written)
 *   cmd       queue   commands: "reset" (clear the integral), "stop"
 *
 * and reacts to whichever changed. It publishes what it did on the state
 * channel "ctl" (float64 [4]: setpoint in use, commands handled, values of
 * y handled, 1 once stopped), so whoever drives it can check each reaction.
 * Run it with examples/plant_controller/operator, which plays the plant and
 * the operator. Exit 0 after "stop"; 1 when nothing came for 5 s.
 */
#include "common.h"

enum { TAG_Y = 1, TAG_SETPOINT = 2, TAG_CMD = 3 };

struct ctl {
	shmbus_state_t *y, *u, *sp, *out;
	shmbus_queue_t *cmd;
	double setpoint, integ, status[4];
};

static void publish(struct ctl *c)
{
	int r = shmbus_state_write(c->out, c->status, sizeof(c->status));

	if (r)
		die("controller_ws", "writing ctl", r);
}

/* A new y: one PI step (dt = 0.05 s, the plant's period), one u. */
static void on_y(struct ctl *c)
{
	const double kp = 1.0, ki = 2.0, dt = 0.05;
	double y, u, e;
	int r;

	r = shmbus_state_read(c->y, &y, sizeof(y), NULL);
	if (r)
		die("controller_ws", "reading y", r);
	e = c->setpoint - y;
	c->integ += e * dt;
	u = kp * e + ki * c->integ;
	r = shmbus_state_write(c->u, &u, sizeof(u));
	if (r)
		die("controller_ws", "writing u", r);
	c->status[2] += 1;
	publish(c);
}

static void on_setpoint(struct ctl *c)
{
	int r = shmbus_state_read(c->sp, &c->setpoint, sizeof(c->setpoint), NULL);

	if (r)
		die("controller_ws", "reading the setpoint", r);
	printf("controller_ws: setpoint %.2f\n", c->setpoint);
	fflush(stdout);
	c->status[0] = c->setpoint;
	publish(c);
}

/* Every command queued now (timeout 0: the wait set said a get would not
 * block). Returns 1 after "stop". */
static int on_cmd(struct ctl *c)
{
	char buf[64];
	size_t len;
	int r;

	for (;;) {
		r = shmbus_queue_get(c->cmd, buf, sizeof(buf) - 1, &len, NULL, 0);
		if (r == SHMBUS_EAGAIN)
			return 0;
		if (r)
			die("controller_ws", "reading a command", r);
		buf[len] = '\0';
		printf("controller_ws: command '%s'\n", buf);
		fflush(stdout);
		c->status[1] += 1;
		if (strcmp(buf, "reset") == 0) {
			c->integ = 0;
		} else if (strcmp(buf, "stop") == 0) {
			c->status[3] = 1;
			publish(c);
			return 1;
		} else {
			fprintf(stderr, "controller_ws: unknown command '%s' ignored\n", buf);
		}
		publish(c);
	}
}

int main(int argc, char **argv)
{
	const char *name = arg_bus(argc, argv, "controller_ws");
	shmbus_state_opts_t so;
	shmbus_queue_opts_t qo;
	shmbus_waitset_t *ws;
	struct ctl c = {.setpoint = SETPOINT, .status = {SETPOINT, 0, 0, 0}};
	shmbus_bus_t *bus;
	int r, stopped = 0;

	install_signals();
	r = shmbus_bus_wait_open(name, NULL, ATTACH_TIMEOUT_NS, &bus);
	if (r)
		die("controller_ws", "waiting for the bus", r);
	c.y = open_scalar(bus, "y", "controller_ws");
	c.u = open_scalar(bus, "u", "controller_ws");
	c.sp = open_scalar(bus, "setpoint", "controller_ws");
	shmbus_state_opts_init(&so);
	so.ndim = 1;
	so.shape[0] = 4;
	r = shmbus_state_open(bus, "ctl", &so, &c.out);
	if (r)
		die("controller_ws", "ctl", r);
	shmbus_queue_opts_init(&qo);
	qo.max_msg = 64;
	r = shmbus_queue_open(bus, "cmd", &qo, &c.cmd);
	if (!r)
		r = shmbus_queue_join(c.cmd, "controller", SHMBUS_GROUP_EARLIEST | SHMBUS_GROUP_DURABLE);
	if (r)
		die("controller_ws", "cmd", r);
	publish(&c);

	r = shmbus_waitset_new(&ws);
	/* y and setpoint: report values newer than the current ones (a y
	 * written before we came is answered too: after = 0). */
	if (!r)
		r = shmbus_waitset_add_state(ws, c.y, 0, TAG_Y);
	if (!r)
		r = shmbus_waitset_add_state(ws, c.sp, 0, TAG_SETPOINT);
	if (!r)
		r = shmbus_waitset_add_queue(ws, c.cmd, SHMBUS_ON_MESSAGE, TAG_CMD);
	if (r)
		die("controller_ws", "making the wait set", r);
	printf("controller_ws: waiting on y, setpoint and cmd of bus '%s'\n", name);
	fflush(stdout);
	while (!stop_requested && !stopped) {
		uint64_t ready[3];
		size_t n, i;

		r = shmbus_waitset_wait(ws, 5 * 1000000000ll, ready, 3, &n);
		if (r == SHMBUS_EINTR)
			continue;
		if (r == SHMBUS_ETIMEDOUT) {
			fprintf(stderr, "controller_ws: nothing for 5 s: stopping\n");
			break;
		}
		if (r)
			die("controller_ws", "waiting", r);
		/* The setpoint first: a y that came with it is answered with it. */
		for (i = 0; i < n; i++)
			if (ready[i] == TAG_SETPOINT)
				on_setpoint(&c);
		for (i = 0; i < n; i++)
			if (ready[i] == TAG_Y)
				on_y(&c);
		for (i = 0; i < n; i++)
			if (ready[i] == TAG_CMD)
				stopped = on_cmd(&c);
	}
	printf("controller_ws: %.0f values of y, %.0f commands, setpoint %.2f%s\n",
	       c.status[2], c.status[1], c.setpoint, stopped ? ", stopped by command" : "");
	shmbus_waitset_free(ws);
	shmbus_queue_close(c.cmd);
	shmbus_state_close(c.out);
	shmbus_state_close(c.sp);
	shmbus_state_close(c.u);
	shmbus_state_close(c.y);
	shmbus_bus_close(bus);
	return stop_requested ? 130 : stopped ? 0 : 1;
}

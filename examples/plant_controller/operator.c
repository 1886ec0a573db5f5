/*
 * operator.c -- drives controller_ws and checks each of its reactions. It
 * plays the plant (y[k+1] = 0.9 y[k] + 0.1 u[k], one step per command u,
 * in lockstep with the controller) and the operator:
 *
 *   1. 100 steps at the controller's default setpoint 5.0: y must reach it;
 *   2. writes the state channel "setpoint" = 2.0, waits until the
 *      controller reports it in "ctl", runs 100 steps: y must follow;
 *   3. sends "reset" on the queue "cmd": the controller counts it;
 *   4. sends "stop": the controller reports it stopped.
 *
 * It waits for the controller's consumer group before the first command
 * (shmbus_queue_wait_groups), so no command is lost to a late start, and
 * removes the bus at the end. Exit 0 when every check passed.
 */
#include <math.h>

#include "common.h"

#define STEP_TIMEOUT_NS (5ll * 1000000000ll)

struct op {
	shmbus_state_t *y, *u, *sp, *ctl;
	shmbus_queue_t *cmd;
	double yv;
	uint64_t useq, ctlseq;
};

/* One plant step: publish y, wait for the controller's answer u. */
static int step(struct op *o)
{
	double u;
	int r;

	r = shmbus_state_write(o->y, &o->yv, sizeof(o->yv));
	if (r)
		return r;
	r = shmbus_state_wait(o->u, o->useq, STEP_TIMEOUT_NS, NULL);
	if (!r)
		r = shmbus_state_read(o->u, &u, sizeof(u), &o->useq);
	if (!r)
		o->yv = 0.9 * o->yv + 0.1 * u;
	return r;
}

/* Wait until the controller's report ctl[i] equals want. */
static int wait_ctl(struct op *o, int i, double want)
{
	double ctl[4];
	int r;

	for (;;) {
		r = shmbus_state_read(o->ctl, ctl, sizeof(ctl), &o->ctlseq);
		if (r && r != SHMBUS_ENODATA)
			return r;
		if (!r && ctl[i] == want)
			return 0;
		r = shmbus_state_wait(o->ctl, o->ctlseq, STEP_TIMEOUT_NS, NULL);
		if (r)
			return r;
	}
}

static int run_steps(struct op *o, int n, double target, const char *what)
{
	int k, r;

	for (k = 0; k < n && !stop_requested; k++) {
		r = step(o);
		if (r)
			die("operator", "waiting for the controller's u", r);
	}
	printf("operator: %s: y = %.4f after %d steps (target %.2f)\n", what, o->yv, k, target);
	fflush(stdout);
	if (fabs(o->yv - target) > 0.05) {
		fprintf(stderr, "operator: FAILED: y did not reach %.2f\n", target);
		return 1;
	}
	return 0;
}

static int command(struct op *o, const char *cmd, int idx, double want)
{
	int r = shmbus_queue_put(o->cmd, cmd, strlen(cmd), STEP_TIMEOUT_NS);

	if (!r)
		r = wait_ctl(o, idx, want);
	if (r) {
		fprintf(stderr, "operator: FAILED: the controller did not react to '%s': %s (%s)\n",
		        cmd, shmbus_strerror(r), shmbus_last_error());
		return 1;
	}
	printf("operator: the controller handled '%s'\n", cmd);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	const char *name = arg_bus(argc, argv, "operator");
	const double sp2 = 2.0;
	shmbus_state_opts_t so;
	shmbus_queue_opts_t qo;
	shmbus_bus_t *bus;
	struct op o = {0};
	int r, bad = 0;

	install_signals();
	r = shmbus_bus_open_or_create(name, NULL, &bus, NULL);
	if (r)
		die("operator", "opening the bus", r);
	o.y = open_scalar(bus, "y", "operator");
	o.u = open_scalar(bus, "u", "operator");
	o.sp = open_scalar(bus, "setpoint", "operator");
	shmbus_state_opts_init(&so);
	so.ndim = 1;
	so.shape[0] = 4;
	r = shmbus_state_open(bus, "ctl", &so, &o.ctl);
	if (r)
		die("operator", "ctl", r);
	shmbus_queue_opts_init(&qo);
	qo.max_msg = 64;
	r = shmbus_queue_open(bus, "cmd", &qo, &o.cmd);
	if (r)
		die("operator", "cmd", r);
	o.useq = shmbus_state_seq(o.u);
	printf("operator: waiting for the controller on bus '%s'\n", name);
	fflush(stdout);
	r = shmbus_queue_wait_groups(o.cmd, 1, ATTACH_TIMEOUT_NS);
	if (r)
		die("operator", "waiting for the controller's group on cmd", r);

	bad |= run_steps(&o, 100, SETPOINT, "setpoint 5.0");
	r = shmbus_state_write(o.sp, &sp2, sizeof(sp2));
	if (!r)
		r = wait_ctl(&o, 0, sp2);
	if (r) {
		fprintf(stderr, "operator: FAILED: the controller did not take setpoint %.1f: %s\n",
		        sp2, shmbus_strerror(r));
		bad = 1;
	} else {
		printf("operator: the controller took setpoint %.1f\n", sp2);
		bad |= run_steps(&o, 100, sp2, "setpoint 2.0");
	}
	bad |= command(&o, "reset", 1, 1.0);
	bad |= command(&o, "stop", 3, 1.0);

	shmbus_queue_close(o.cmd);
	shmbus_state_close(o.ctl);
	shmbus_state_close(o.sp);
	shmbus_state_close(o.u);
	shmbus_state_close(o.y);
	shmbus_bus_close(bus);
	shmbus_bus_unlink(name);
	if (stop_requested)
		return 130;
	printf("operator: %s\n", bad ? "FAILED" : "every reaction checked: ok");
	return bad;
}

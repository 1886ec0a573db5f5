/*
 * common.h -- what the plant and the controller agree on: the bus, its
 * channels, and the small helpers both use (fixed-rate ticking, Ctrl+C).
 */
#ifndef PLANT_COMMON_H
#define PLANT_COMMON_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmbus.h"

#define SETPOINT 5.0
#define ATTACH_TIMEOUT_NS (10ll * 1000000000ll)

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* SIGINT/SIGTERM set a flag; no SA_RESTART, so sleeps return early. */
static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static const char *arg_bus(int argc, char **argv, const char *prog)
{
	const char *bus = "plant_demo";
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: %s [--bus NAME]\n"
			       "Plant/controller demo over a shmbus bus (default name plant_demo).\n"
			       "Start plant and controller in either order; each waits up to 10 s\n"
			       "for the other. Exit 0 when the loop converged toward %.1f.\n",
			       prog, SETPOINT);
			exit(0);
		} else if (strcmp(argv[i], "--bus") == 0 && i + 1 < argc) {
			bus = argv[++i];
		} else {
			fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", prog, argv[i]);
			exit(2);
		}
	}
	return bus;
}

static void die(const char *prog, const char *what, int code)
{
	fprintf(stderr, "%s: %s: %s (%s)\n", prog, what, shmbus_strerror(code),
	        shmbus_last_error());
	exit(1);
}

/* Open (or create) the bus and a float64 scalar state channel. */
static shmbus_state_t *open_scalar(shmbus_bus_t *bus, const char *name, const char *prog)
{
	shmbus_state_opts_t o;
	shmbus_state_t *st;
	int r;

	shmbus_state_opts_init(&o);
	o.dtype = SHMBUS_FLOAT64;
	r = shmbus_state_open(bus, name, &o, &st);
	if (r)
		die(prog, name, r);
	return st;
}

/* Sleep until the absolute time *next, then advance it by period_ns. */
static inline void tick(struct timespec *next, long period_ns)
{
	next->tv_nsec += period_ns;
	while (next->tv_nsec >= 1000000000l) {
		next->tv_nsec -= 1000000000l;
		next->tv_sec++;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL) == EINTR &&
	       !stop_requested)
		;
}

#endif

/*
 * fault.c -- the kill-point hook (see fault.h). Built only into the test
 * library (the Makefile leaves this file out of libshmbus.a/.so).
 *
 * Armed from a test (sb_fault_arm, tests/faultinject.h) or from the
 * environment at the first step: SHMBUS_KILL_AT=N raises SIGKILL, and
 * SHMBUS_STOP_AT=N raises SIGSTOP, just before the process's Nth step;
 * SHMBUS_STEP_COUNT=1 prints the number of steps taken at exit.
 */
#ifndef SHMBUS_FAULT_INJECT
#error "fault.c belongs only to the test library (-DSHMBUS_FAULT_INJECT)"
#endif

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "fault.h"

/* Process-local (never in shared memory): relaxed is enough, the counter
 * only orders steps of this process against each other. */
static atomic_long steps;          /* steps since the last arm */
static atomic_long fire_at;        /* 0: count only */
static atomic_int fire_sig;
static _Atomic(const char *) last; /* name of the latest step */
static atomic_int env_done;
/* Counting at all: only once armed (by a test or the environment), so an
 * unarmed test process pays one load per step, and threads of a stress
 * test do not contend on the counter. */
static atomic_int active;
/* Optional record of the steps' names, in order (a test's shared page). */
static const char **trace;
static long trace_cap;

static void report(void)
{
	fprintf(stderr, "shmbus: %ld shared-memory steps (last %s)\n",
	        atomic_load(&steps), atomic_load(&last) ? atomic_load(&last) : "none");
}

static void from_env(void)
{
	const char *k = getenv("SHMBUS_KILL_AT"), *s = getenv("SHMBUS_STOP_AT");
	const char *c = getenv("SHMBUS_STEP_COUNT");

	if (k && atol(k) > 0) {
		atomic_store(&fire_sig, SIGKILL);
		atomic_store(&fire_at, atol(k));
	} else if (s && atol(s) > 0) {
		atomic_store(&fire_sig, SIGSTOP);
		atomic_store(&fire_at, atol(s));
	}
	if (c && *c && *c != '0')
		atexit(report);
	if ((k && atol(k) > 0) || (s && atol(s) > 0) || (c && *c && *c != '0'))
		atomic_store(&active, 1);
}

void sb_fault_arm(long n, int sig)
{
	atomic_store(&env_done, 1);
	atomic_store(&steps, 0);
	atomic_store(&last, NULL);
	atomic_store(&fire_sig, sig);
	atomic_store(&fire_at, n);
	atomic_store(&active, 1);
}

void sb_fault_trace(const char **names, long cap)
{
	trace = names;
	trace_cap = names ? cap : 0;
}

void sb_fault_disarm(void)
{
	atomic_store(&fire_at, 0);
}

long sb_fault_steps(void)
{
	return atomic_load(&steps);
}

const char *sb_fault_last(void)
{
	const char *l = atomic_load(&last);

	return l ? l : "none";
}

void sb_fault_step(const char *name)
{
	long n, at;

	/* relaxed (all below): process-local test counters, armed and read by
	 * the same process (a forked child counts its own); no other memory
	 * is published through them. The exchange makes one thread read the
	 * environment once. */
	if (!atomic_load_explicit(&env_done, memory_order_relaxed) &&
	    !atomic_exchange(&env_done, 1))
		from_env();
	if (!atomic_load_explicit(&active, memory_order_relaxed))
		return;
	n = atomic_fetch_add_explicit(&steps, 1, memory_order_relaxed) + 1;
	atomic_store_explicit(&last, name, memory_order_relaxed);
	if (n <= trace_cap)
		trace[n - 1] = name;
	at = atomic_load_explicit(&fire_at, memory_order_relaxed);
	if (at > 0 && n == at)
		raise(atomic_load_explicit(&fire_sig, memory_order_relaxed));
}

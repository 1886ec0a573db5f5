/*
 * fault.h -- the kill-point hook, compiled only into test builds.
 *
 * SB_STEP("kind.call.what") marks one step of shared-memory mutation: it
 * stands on the line before a store, CAS, fetch_add or unlock that changes
 * the segment. In the library that is installed (libshmbus.a/.so, built
 * without SHMBUS_FAULT_INJECT) it is nothing at all. Objects built with
 * -DSHMBUS_FAULT_INJECT (the Makefile's libshmbus-test.a, which tests/ link
 * against) call sb_fault_step(), which counts the steps a process takes
 * and, once armed, stops or kills the process at its Nth: see
 * tests/faultinject.h for the test-only API and docs/reliability.md.
 *
 * The call is opaque to the compiler, so the stores before it are in
 * memory (in program order) when the signal lands: a process killed at
 * step N leaves exactly the stores of steps 1 .. N-1.
 */
#ifndef SHMBUS_FAULT_H
#define SHMBUS_FAULT_H

#ifdef SHMBUS_FAULT_INJECT
void sb_fault_step(const char *name);
#define SB_STEP(name) sb_fault_step(name)
#else
#define SB_STEP(name) ((void)0)
#endif

#endif

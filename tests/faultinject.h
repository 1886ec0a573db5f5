/*
 * faultinject.h -- the test-only side of the kill-point hook (src/fault.h).
 * These functions exist only in build/libshmbus-test.a, which every test
 * program links against; the installed library has none of them.
 *
 * A step is one shared-memory mutation marked SB_STEP("...") in src/.
 * sb_fault_arm(N, SIGKILL) restarts the count and kills this process just
 * before its Nth step (SIGSTOP stops it instead); N = 0 only counts.
 */
#ifndef SHMBUS_FAULTINJECT_H
#define SHMBUS_FAULTINJECT_H

void sb_fault_arm(long n, int sig);
void sb_fault_disarm(void);          /* keep counting, never fire */
long sb_fault_steps(void);           /* steps since the last arm */
const char *sb_fault_last(void);     /* name of the latest step */
/* Record the name of step i (1-based, i <= cap) in names[i - 1], the
 * killing step's included; names may lie in memory shared with a parent
 * (the strings are the library's literals, at the same address in a
 * forked child). NULL stops recording. */
void sb_fault_trace(const char **names, long cap);

#endif

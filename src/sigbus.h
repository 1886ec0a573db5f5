/*
 * sigbus.h -- surviving a segment that is truncated while mapped.
 *
 * Touching a page of a shared mapping that lies beyond the end of its file
 * raises SIGBUS, which would kill the process. The library registers every
 * bus mapping here; a SIGBUS inside a registered mapping is answered by
 * mapping private zero pages over the lost tail, marking the mapping
 * damaged, and resuming. The library's entry points then test the mark
 * (one relaxed load of a global in the common case) and return
 * SHMBUS_ECORRUPT. Faults outside our mappings go to the handler that was
 * installed before ours, or kill the process as they always would.
 */
#ifndef SHMBUS_SIGBUS_H
#define SHMBUS_SIGBUS_H

#include <stdatomic.h>
#include <stdint.h>

/* Register a mapping [base, base+size); installs the handler on first use.
 * Returns 0 or a negative SHMBUS_E* code. */
int sb_map_register(void *base, uint64_t size);
void sb_map_unregister(void *base);

/* Non-zero once any registered mapping was hit by a SIGBUS. */
extern _Atomic uint32_t sb_maps_damaged;
int sb_map_damaged_slow(const void *base);
/* Mark the mapping at base damaged (a truncation found by fstat before any
 * access faulted), so every entry point reports it from now on. */
void sb_map_mark_damaged(const void *base);

/* 1 if the mapping at base lost pages to a truncation. */
static inline int sb_map_damaged(const void *base)
{
	/* relaxed: the handler stores the mark before it replaces the pages
	 * (a system call), so a caller that read a replaced page and then
	 * tests here, after an acquire fence or in the faulting thread
	 * itself, sees the mark. */
	if (__builtin_expect(atomic_load_explicit(&sb_maps_damaged, memory_order_relaxed) == 0, 1))
		return 0;
	return sb_map_damaged_slow(base);
}

#endif /* SHMBUS_SIGBUS_H */

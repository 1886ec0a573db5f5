/*
 * sync.h -- the robust process-shared lock of sync.c, for the other files
 * of the library that guard shared structures with it (dict, list), and
 * the helpers the sync kinds share.
 */
#ifndef SHMBUS_SYNC_H
#define SHMBUS_SYNC_H

#include "internal.h"

/* Health of the data a robust lock guards. */
enum { SB_RLOCK_OK = 0, SB_RLOCK_OWNER_DIED = 1, SB_RLOCK_UNRECOVERABLE = 2 };

/* One cache line in shared memory; all zero is an unlocked, healthy lock. */
struct sb_rlock {
	_Atomic uint64_t owner;    /* token of the holder; 0 when free */
	_Atomic uint32_t contended;/* bit 0: someone may sleep, unlock must wake;
	                              bits 1-31: wake-ups so far; the futex word */
	_Atomic uint32_t health;   /* SB_RLOCK_* */
	uint8_t pad[SB_LINE - 16];
};
_Static_assert(sizeof(struct sb_rlock) == SB_LINE, "a robust lock is one line");

/* Take the lock (in channel ch's area) for token within timeout_ns (-1:
 * no limit, 0: try once). A holder found dead (checked once per liveness
 * timeout of waiting, and at once when the lock is busy at timeout 0) is
 * replaced. Returns 0, SHMBUS_EOWNERDEAD (held; repair, then
 * sb_rlock_consistent), SHMBUS_ENOTRECOVERABLE (not held), SHMBUS_ETIMEDOUT
 * or SHMBUS_EINTR (not held; the detail is left to the caller), or the
 * error of sb_wait_check (not held; detail set). policy and spin_ns:
 * the waiting (SHMBUS_WAIT_*; 0, 0 for the default). A lock taken on pages
 * lost to a truncation returns 0 here: callers test sb_map_damaged. */
int sb_rlock_acquire(struct sb_rlock *l, const struct sb_chan *ch, uint64_t token,
                     int64_t timeout_ns, int policy, int64_t spin_ns);
/* Mark the guarded data repaired after SHMBUS_EOWNERDEAD. */
void sb_rlock_consistent(struct sb_rlock *l);
/* Release; a lock released while its data is still marked as left by a
 * dead owner becomes unrecoverable. */
void sb_rlock_release(struct sb_rlock *l, uint64_t token);
/* Free the lock from a dead holder (its data stays marked for repair by
 * the next locker). Returns 1 if it did. */
int sb_rlock_reap(const shmbus_bus_t *bus, struct sb_rlock *l, uint64_t token);

/* The sync kinds' options (lock, event, sem, turn) share one layout:
 * size_of, create, wait_policy, a 32-bit word (reserved_, initial or
 * max_parties), spin_ns. init fills the defaults for a struct of size
 * bytes; sb_sync_open opens through sb_kind_open with the kind's check
 * (sb_sync_opts_check, or one that reads the word first and calls it) and
 * hands back the wait policy and spin budget for the handle. */
void sb_sync_opts_init(void *opts, size_t size);
int sb_sync_opts_check(void *opts, const char *name, struct sb_params *want);
int sb_sync_open(shmbus_bus_t *bus, const char *name, int kind,
                 int (*check)(void *opts, const char *name, struct sb_params *want),
                 void (*init)(void *opts), const void *opts, struct sb_chan *ch,
                 int *policy, int64_t *spin_ns);

/* Shared by the kinds without dtype or shape (sync.c, turn.c): plan for
 * an area of `area` bytes; check an area's size and the magic word at
 * magic_off. */
int sb_plain_plan(struct sb_params *p, uint64_t area, uint64_t *out);
int sb_check_magic(const uint8_t *area, uint64_t size, uint64_t need, uint32_t magic_off,
                   uint32_t magic);

#endif /* SHMBUS_SYNC_H */

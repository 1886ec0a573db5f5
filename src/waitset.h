/*
 * waitset.h -- the wait set's process-local structures, shared by
 * waitset.c (the bell and the wait) and waitset_api.c (members, calls,
 * the fd's thread). The protocol is described at the top of waitset.c.
 */
#ifndef SHMBUS_WAITSET_H
#define SHMBUS_WAITSET_H

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>

#include "internal.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_WAITV_MAX              /* kernel headers before 5.16 */
#define FUTEX_WAITV_MAX 128
struct futex_waitv {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t __reserved;
};
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
#endif

/* futex_waitv's words: one is the set's own, the others its buses'. */
#define WS_MAX_BUSES (FUTEX_WAITV_MAX - 1)

struct ws_bus;

struct ws_member {
	uint64_t tag;
	int cond;                  /* SHMBUS_ON_* */
	void *h;                   /* the handle; starts with its struct sb_chan */
	const struct sb_chan *ch;
	struct ws_bus *wb;
	uint64_t mark;             /* state: the last sequence number reported */
	int32_t group;             /* queue: the handle's group when added */
	uint32_t party;            /* turn: the handle's party */
	uint64_t *scratch;         /* queue space: the gate's, max_groups entries */
	int cand;                  /* on the candidate list */
	int reported;              /* by the check under way (check()) */
	int live;                  /* put there by a full look: check holders'
	                              liveness too, until reported or dropped */
	struct ws_member *tnext;   /* tag hash chain */
	struct ws_member *inext;   /* members at the same directory index */
};

struct ws_bus {
	shmbus_bus_t *bus;
	struct sb_bell *bell;
	uint64_t cursor;           /* next ring entry to read */
	int registered;            /* counted in the bell's sets (listen/quiet) */
	uint32_t nmemb;
	uint32_t nidx;             /* the bus's max_channels (local copy) */
	struct ws_member **map;    /* nidx chains, by directory index */
	struct ws_bus *next;
};

struct shmbus_waitset {
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* parkers == 0 (a bus may be dropped), droppers == 0 */
	struct ws_member **tags;   /* hash buckets, nbuckets a power of 2 */
	size_t nbuckets, n;
	struct ws_bus *buses;
	uint32_t nbuses;
	uint32_t parkers;          /* threads inside park() using bus words */
	uint32_t droppers;         /* removes waiting for parkers == 0 */
	struct ws_member **cand;
	size_t ncand, capcand;
	/* Process-private futex word: bumped (seq_cst, then a wake) by every
	 * membership change and re-arm; a parked thread sleeps on the value
	 * it read under the mutex before its look, so it misses none. */
	_Atomic uint32_t priv;
	int policy;
	int policy_set;             /* set_wait was called: the fd's thread follows it */
	int64_t spin_ns;
	uint64_t next_full;        /* when the next full check is due */
	int efd;                   /* eventfd, -1 until shmbus_waitset_fd */
	pthread_t thr;
	int thr_started, stop, signalled;
};

/* Sleep on the set's own word (process-private) while it reads pw, at
 * most ns (-1: no limit). */
void sb_ws_futex_wait_private(_Atomic uint32_t *w, uint32_t pw, int64_t ns);
/* After a change made under the mutex: bump the set's word and wake a
 * thread parked on it, so it looks again. */
void sb_ws_bump_priv(shmbus_waitset_t *ws);
/* Put m on the candidate list (0, or SHMBUS_ENOMEM); take entry i off. */
int sb_ws_cand_add(shmbus_waitset_t *ws, struct ws_member *m);
void sb_ws_cand_drop(shmbus_waitset_t *ws, size_t i);
/* The wait, with the mutex held (released while asleep): 0 when a member
 * is ready (up to cap reported to out, if out; else only counted),
 * SHMBUS_ETIMEDOUT, SHMBUS_EINTR, another error, or 1 when fd_thread and
 * the thread is told to stop or has signalled already. */
int sb_ws_wait_locked(shmbus_waitset_t *ws, int64_t timeout_ns, int policy, int64_t spin_ns,
                      uint64_t *out, size_t cap, size_t *n, int fd_thread);

#endif /* SHMBUS_WAITSET_H */

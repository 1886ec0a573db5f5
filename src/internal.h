/*
 * internal.h -- declarations shared by the files of libshmbus; never
 * installed. The segment layout lives here: every struct that crosses
 * processes uses fixed-width types, explicit padding and static asserts, and
 * refers to other parts of the segment by offset, never by pointer.
 *
 * Segment:  [ header 4 KiB | peer table | channel directory | heap ]
 * Every offset is relative to the start of the mapping. The geometry is
 * read and validated once at open and kept in the process-local bus handle;
 * later code uses only the local copy, so a peer that rewrites the header
 * afterwards cannot steer another process outside the mapping.
 */
#ifndef SHMBUS_INTERNAL_H
#define SHMBUS_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "shmbus.h"
#include "fault.h"

#define SB_LINE 64
#define SB_ALIGN(x, a) (((x) + ((a) - 1)) & ~((uint64_t)(a) - 1))
#define SB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define SB_MAGIC 0x3130535542534853ull /* "SHSBUS01" little-endian */
/* 2: tokens are pid + random bits, liveness by OFD lock; 3: the bell (wait
 * sets) in the header page, which every waker must ring. */
#define SB_ABI 3u
#define SB_HEADER_SIZE 4096u
#define SB_SHM_DIR "/dev/shm"
#define SB_SHM_PREFIX "shmbus-"
/* After SB_SHM_PREFIX: a creation's temporary file; no bus name starts
 * with '.', so none can look like one. */
#define SB_TMP_TAG ".tmp-"
#define SB_FILE_PREFIX "file:"

#define SB_DEFAULT_SIZE (16ull << 20)
#define SB_DEFAULT_CHANNELS 64u
#define SB_DEFAULT_PEERS 64u
#define SB_MAX_TABLE 4096u
#define SB_MIN_SIZE (64ull << 10)
#define SB_LOCK_TIMEOUT_NS (2000000000ll) /* directory lock: 2 s */
#define SB_DEFAULT_LIVENESS_NS (200000000ll)
#define SB_DEFAULT_SPIN_NS (50000ll)

/* Header state word: written once by the creator before publication. */
#define SB_HDR_READY 0x52454459u /* "READY" */

/* ---- shared structures ---------------------------------------------- */

/* The bell: how a wait set (waitset.c) learns which channels of a bus
 * changed. Every wake site rings it after publishing its condition
 * (sb_bell_ring); the common case, no wait set on the bus, costs one load
 * of `sets`. A ring appends the channel's directory index to `ring` and,
 * if a wait set sleeps, bumps `word` and wakes it. The protocol and its
 * lost-wake-up argument are at the top of waitset.c. */
#define SB_BELL_RING 256u

struct sb_bell {
	_Atomic uint32_t word;     /* futex word: bumped by a ring when sleepers > 0 */
	_Atomic uint32_t sets;     /* wait sets (any process) with a member here */
	_Atomic uint32_t sleepers; /* wait sets parked on word now */
	uint32_t pad_;
	_Atomic uint64_t head;     /* rings so far */
	uint8_t pad[SB_LINE - 24];
	/* entry of ring number s: (s << 32) | directory index, at s % 256 */
	_Atomic uint64_t ring[SB_BELL_RING];
};
_Static_assert(sizeof(struct sb_bell) == SB_LINE + 8 * SB_BELL_RING, "bell layout");

struct sb_header {
	uint64_t magic;
	uint32_t abi;
	uint32_t state;            /* SB_HDR_READY once built */
	uint64_t total_size;
	uint64_t header_size;
	uint64_t peers_off;
	uint32_t max_peers;
	uint32_t peer_size;
	uint64_t dir_off;
	uint32_t max_channels;
	uint32_t dirent_size;
	uint64_t heap_off;
	uint64_t heap_size;
	/* Bump allocator: changed only under the mutex; atomic because
	 * shmbus_bus_info reads it without the mutex (relaxed both ways:
	 * a count for display, guarding no other data). */
	_Atomic uint64_t heap_used;
	uint64_t create_time_ns;
	uint32_t creator_pid;
	uint32_t mode;
	/* Hash of the boot id the mutex was made under. A file bus opened
	 * after a reboot gets a fresh mutex (its old owner's robust list died
	 * with the old kernel). SB_BOOT_RECOVERING while one opener rebuilds. */
	_Atomic uint64_t boot_hash;
	_Atomic uint64_t generation; /* bumped on every directory change */
	uint8_t pad0[256 - 120];
	union {                    /* robust, process-shared: guards dir + heap */
		pthread_mutex_t mutex;
		uint8_t mutex_space[64];
	};
	uint8_t pad1[SB_LINE];     /* keeps the mutex's line off the bell's */
	struct sb_bell bell;       /* wait sets (waitset.c) */
	uint8_t pad2[SB_HEADER_SIZE - 256 - 64 - SB_LINE - sizeof(struct sb_bell)];
};
_Static_assert(sizeof(pthread_mutex_t) <= 64, "mutex fits its space");
_Static_assert(sizeof(struct sb_header) == SB_HEADER_SIZE, "header is one page");
_Static_assert(offsetof(struct sb_header, bell) == 384, "the bell is at a fixed offset");
_Static_assert(offsetof(struct sb_header, bell) % SB_LINE == 0, "the bell is line aligned");

#define SB_BOOT_RECOVERING 1ull

struct sb_peer {
	_Atomic uint64_t token;    /* sb_token of the process; 0 = free slot */
	/* Realtime ns of the registration, under a one-word seqlock: stamp
	 * is the token the time belongs to, 0 while the time changes (see
	 * sb_peer_register and shmbus_bus_peers). */
	_Atomic uint64_t attach_time_ns;
	_Atomic uint64_t stamp;
	/* For display: clock ticks since boot, under the same stamp. */
	_Atomic uint64_t start_time;
	uint8_t pad[32];
};
_Static_assert(sizeof(struct sb_peer) == SB_LINE, "peer is one line");

enum { SB_DIR_FREE = 0, SB_DIR_CREATING = 1, SB_DIR_READY = 2, SB_DIR_DELETED = 3 };

#define SB_PARAMS 8

struct sb_dirent {
	_Atomic uint32_t state;    /* SB_DIR_*; changed under the mutex */
	uint32_t kind;
	char name[SHMBUS_NAME_MAX + 1];
	int32_t dtype;
	uint32_t ndim;
	uint64_t shape[SHMBUS_MAX_DIMS];
	uint64_t value_size;
	uint64_t off;              /* of the channel's area */
	uint64_t size;             /* of the channel's area */
	uint64_t param[SB_PARAMS]; /* kind-specific: slots, max_msg, ... */
	/* Written under the mutex while CREATING; read without it by
	 * sb_chan_valid after its acquire load of READY (relaxed both ways:
	 * the state word's release/acquire orders it). */
	_Atomic uint64_t generation;
	uint8_t pad[256 - 4 - 4 - 64 - 8 - 32 - 8 - 16 - 64 - 8];
};
_Static_assert(sizeof(struct sb_dirent) == 256, "dirent is 256 bytes");
_Static_assert(sizeof(_Atomic uint64_t) == 8, "atomic fields keep the layout");

/* ---- process-local handles ------------------------------------------ */

struct shmbus_bus {
	char name[SHMBUS_NAME_MAX + 1 + 4096];
	int persistent;
	uint8_t *base;             /* the mapping */
	uint64_t size;             /* validated copies of the geometry: */
	uint64_t peers_off, dir_off, heap_off, heap_size;
	uint32_t max_peers, max_channels;
	struct sb_header *hdr;
	struct sb_peer *peers;
	struct sb_dirent *dir;
	int fd;                    /* the segment's file, kept open so a wait
	                              can fstat it (truncation); -1: none */
	uint64_t file_dev, file_ino; /* its identity: an fd the program closed
	                              and reused for another file is not ours */
	int32_t peer_slot;         /* -1 when not registered */
	uint64_t token;
	int64_t liveness_ns;
	int live_fd;               /* holds this process's liveness lock */
	struct shmbus_bus *live_next; /* peers.c's list of open handles */
};

/* Validated, process-local view of one channel. */
struct sb_params {
	int32_t kind;
	int32_t dtype;
	uint32_t ndim;
	uint32_t pad_;
	uint64_t shape[SHMBUS_MAX_DIMS];
	uint64_t value_size;
	uint64_t param[SB_PARAMS];
	/* Set by the directory before plan: bytes of heap still free. A kind
	 * whose size the caller left to its default sizes it from this (see
	 * sb_default_room), so defaults follow the bus. Never stored. */
	uint64_t room;
};

/* The size a channel gets when its caller left it to the default: the
 * default itself when it fits in the heap still free (so nothing changes on
 * a bus large enough), else at most half of what is free, so a small bus
 * takes a channel made with defaults and still has room for the next. */
static inline uint64_t sb_default_size(const struct sb_params *p, uint64_t dflt)
{
	return dflt <= p->room ? dflt : p->room / 2;
}

struct sb_chan {
	shmbus_bus_t *bus;
	uint32_t index;            /* directory slot */
	uint64_t generation;
	char name[SHMBUS_NAME_MAX + 1];
	struct sb_params p;
	uint8_t *area;             /* bus->base + off, bounds checked */
	uint64_t area_size;
};

/* What each channel kind tells the directory. */
struct sb_kind_ops {
	/* Check user-facing params, fill defaults, compute the area size. */
	int (*plan)(struct sb_params *p, uint64_t *area_size);
	/* Initialise a fresh, zeroed area (called under the bus mutex). */
	int (*init)(uint8_t *area, uint64_t size, const struct sb_params *p);
	/* Check an existing area's immutable fields against the directory's
	 * params (hostile segment defence). */
	int (*check)(const uint8_t *area, uint64_t size, const struct sb_params *p);
	/* Reap what dead processes left in this channel; may be NULL. */
	int (*gc)(struct sb_chan *ch, uint32_t *reaped);
	/* Fill kind-specific info (seq, capacity); may be NULL. */
	void (*info)(struct sb_chan *ch, shmbus_channel_info_t *info);
};

/* Kinds register by defining one of these. A kind whose file is not yet
 * part of the library is declared weak (NULL until it lands); every landed
 * kind is a strong reference so a static link always pulls it in. */
extern const struct sb_kind_ops sb_state_ops;
extern const struct sb_kind_ops sb_queue_ops;
extern const struct sb_kind_ops sb_lock_ops;
extern const struct sb_kind_ops sb_event_ops;
extern const struct sb_kind_ops sb_sem_ops;
extern const struct sb_kind_ops sb_turn_ops;
extern const struct sb_kind_ops sb_array_ops;
extern const struct sb_kind_ops sb_dict_ops;
extern const struct sb_kind_ops sb_list_ops;
const struct sb_kind_ops *sb_kind_ops(int kind);

/* ---- error.c -------------------------------------------------------- */

/* Record the detail of a failure for shmbus_last_error(); returns code. */
int sb_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, with ": strerror(errno_value)" appended; code SHMBUS_ESYS unless
 * errno_value maps to a better one (ENOSPC, EEXIST, ENOENT, EACCES...). */
int sb_err_sys(int errno_value, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_err_clear(void);

/* ---- wait.c --------------------------------------------------------- */

uint64_t sb_now_ns(void);        /* CLOCK_MONOTONIC */
uint64_t sb_realtime_ns(void);

/* Deadline from a relative timeout (SHMBUS_FOREVER: none). */
typedef struct { int64_t end; } sb_deadline_t;
void sb_deadline_init(sb_deadline_t *d, int64_t timeout_ns);
/* ns left (>= 0), or -1 for no deadline. */
int64_t sb_deadline_left(const sb_deadline_t *d);

/* Sleep while *addr == expected, at most timeout_ns (-1: no limit).
 * Returns 0 (woken or value changed), SHMBUS_ETIMEDOUT or SHMBUS_EINTR. */
int sb_futex_wait(_Atomic uint32_t *addr, uint32_t expected, int64_t timeout_ns);
void sb_futex_wake(_Atomic uint32_t *addr, int n);

static inline void sb_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Longest a blocking call sleeps between looks at its segment: a bus
 * truncated or overwritten, or a channel deleted, while a call waits is
 * reported within about two slices (the promise is 1 s). */
#define SB_WAIT_SLICE_NS 250000000ll

/* Spin budget before a spinning waiter starts yielding its CPU at each
 * round: the peer it waits for may be runnable on the same CPU (more
 * processes than CPUs), and a pure spin would keep it off until the time
 * slice ends. */
#define SB_PURE_SPIN_NS 2000u

/* A sleep of ns (-1: no limit) cut to one slice. */
static inline int64_t sb_wait_slice(int64_t ns)
{
	return ns < 0 || ns > SB_WAIT_SLICE_NS ? SB_WAIT_SLICE_NS : ns;
}

struct sb_chan;
/* A waiter's look at its segment between sleeps (and spins): the damage
 * mark at every call (one load), and once per slice of waiting the file's
 * size, the header and the channel's directory entry. *next_check is the
 * caller's, 0 when its call starts. Returns 0, SHMBUS_ECORRUPT (truncated
 * or overwritten) or SHMBUS_ENOENT (the channel was deleted), detail set. */
int sb_wait_check(const struct sb_chan *ch, uint64_t *next_check);
/* SHMBUS_ECORRUPT with the detail for ch's segment found damaged (test
 * sb_map_damaged(ch->bus->base) first: a call that touched lost pages
 * never reports success). */
int sb_chan_damage_err(const struct sb_chan *ch);

/* ---- the park primitive (wait.c; the protocol is argued there) ------ */

/* One blocking call's waiting: its deadline, its spin budget under the
 * wait policy, and when to look at the segment next. */
struct sb_park {
	const struct sb_chan *ch;
	sb_deadline_t d;
	uint64_t spin_end;         /* spin until then; UINT64_MAX: never park,
	                              0: park at once */
	uint64_t yield_at;         /* spinning past this yields the CPU */
	uint64_t next_check;       /* sb_wait_check's */
	uint32_t spins;
	int started;
	int poll;                  /* timeout 0 */
	int yielding;              /* past yield_at: every round yields */
	uint64_t live_every;       /* sb_park_liveness's period; 0: none */
	uint64_t live_at;          /* the next SB_PARK_LIVE round */
};

/* sb_park_spin's answer when a liveness look is due (sb_park_liveness):
 * the caller checks whether the process it waits on is dead, then tests
 * its condition again. Callers that never ask treat it as 1. */
#define SB_PARK_LIVE 3

/* Start waiting on ch for timeout_ns under policy (SHMBUS_WAIT_*) and
 * spin budget spin_ns (0: the default, 50 us). Returns the time it read
 * (sb_now_ns), for callers with clocks of their own. */
uint64_t sb_park_start(struct sb_park *p, const struct sb_chan *ch, int64_t timeout_ns,
                   int policy, int64_t spin_ns);
int sb_park_spin_slow(struct sb_park *p);
/* Ask the spin phase for a liveness look every ns (the bus's liveness
 * timeout): a waiter under SHMBUS_WAIT_SPIN never parks, so it would
 * otherwise never look for a dead holder. Call after sb_park_start. */
void sb_park_liveness(struct sb_park *p, int64_t ns);

/* One round of the spin phase: 1 to test the condition again after a
 * pause, 2 after a yield (past SB_PURE_SPIN_NS), 0 to park, or an error to
 * return: SHMBUS_ETIMEDOUT (no detail: the caller words it) or the
 * segment's (sb_wait_check, detail set). */
static inline int sb_park_spin(struct sb_park *p)
{
	if (p->spin_end == 0)           /* SHMBUS_WAIT_PARK, or a poll */
		return p->poll ? SHMBUS_ETIMEDOUT : 0;
	if ((++p->spins & 63u) != 0 && !p->yielding) {
		sb_cpu_relax();
		return 1;
	}
	return sb_park_spin_slow(p);
}

/* ns left before the deadline (>= 0), or -1 for none. */
static inline int64_t sb_park_left(const struct sb_park *p)
{
	return sb_deadline_left(&p->d);
}

/* The same, at time now (sb_now_ns) the caller has just read. */
static inline int64_t sb_park_left_at(const struct sb_park *p, uint64_t now)
{
	if (p->d.end < 0)
		return -1;
	return p->d.end > (int64_t)now ? p->d.end - (int64_t)now : 0;
}

/* Announce a sleeper in a waiter count, before re-checking the condition.
 * seq_cst: the store half of the waiter's store->load pair; the re-check
 * that follows must load the condition seq_cst too. Pairs with the
 * waker's seq_cst publication and its load in sb_park_wake. */
static inline void sb_park_prepare(_Atomic uint32_t *count)
{
	/* seq_cst: the sleeper is announced before the caller re-reads its
	 * condition; pairs with the seq_cst load of count in sb_park_wake,
	 * after the waker's change (the store-load pair of wait.c). */
	SB_STEP("wait.park_prepare.count");
	atomic_fetch_add_explicit(count, 1, memory_order_seq_cst);
}

/* Sleep while *word == expected: at most to the deadline, cap_ns (-1: no
 * cap; e.g. the liveness timeout) and one slice. Returns 0 (woken, or the
 * word had changed), SHMBUS_ETIMEDOUT (slept the whole length),
 * SHMBUS_EINTR, or another error (detail set). */
int sb_park_sleep(struct sb_park *p, _Atomic uint32_t *word, uint32_t expected,
                  int64_t cap_ns);

/* Retract the announcement (count may be NULL: a flag-style waiter) and
 * look at the segment: 0, or its error (sb_wait_check). */
int sb_park_cancel(struct sb_park *p, _Atomic uint32_t *count);

/* The waker, after its seq_cst publication: wake n sleepers on word if
 * any may sleep. seq_cst load: the load half of the waker's store->load
 * pair (with sb_park_prepare). */
static inline void sb_park_wake(_Atomic uint32_t *count, _Atomic uint32_t *word, int n)
{
	if (atomic_load_explicit(count, memory_order_seq_cst) != 0)
		sb_futex_wake(word, n);
}

/* Flag-style announcement, for words that are their own waiter mark
 * (locks, semaphores): bit 0 of the futex word says someone may sleep,
 * the bits above count wake-ups. Raise the flag and return the value to
 * sleep on (seq_cst, as sb_park_prepare). */
uint32_t sb_park_raise(_Atomic uint32_t *word);
/* If the flag is up, lower it and bump the count in one CAS, and wake one
 * sleeper (seq_cst: the waker's load half, as sb_park_wake). */
void sb_park_wake_flagged(_Atomic uint32_t *word);


/* The low 32 bits of a 64-bit atomic, as a futex word. */
static inline _Atomic uint32_t *sb_futex_low(_Atomic uint64_t *w)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (_Atomic uint32_t *)(void *)w;
#else
	return (_Atomic uint32_t *)(void *)w + 1;
#endif
}

#if defined(__SANITIZE_THREAD__)
#define SB_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SB_TSAN 1
#endif
#endif

/* Lock a process-shared mutex for at most timeout_ns (-1: no limit);
 * returns pthread's code (0, EOWNERDEAD, ETIMEDOUT, ...). Uses
 * CLOCK_MONOTONIC, except under ThreadSanitizer, which only intercepts
 * pthread_mutex_timedlock. */
int sb_mutex_lock(pthread_mutex_t *m, int64_t timeout_ns);

/* ---- peers.c -------------------------------------------------------- */

/* This process's identity: pid (in its own namespace) | 30 random bits
 * << 32; never 0, always below 2^62. A fork child gets a new one. */
uint64_t sb_self_token(void);
/* 1 if the process named by token still has a handle of this bus open
 * (its liveness lock is held), whatever pid namespace it runs in. */
int sb_token_alive(const shmbus_bus_t *bus, uint64_t token);
/* Open path again (O_RDWR | O_NOFOLLOW), check it is still the file
 * mapped (dev and inode of *mapped), and take the liveness lock on this
 * process's byte through that new description; the descriptor stays in
 * bus->live_fd until sb_live_close. 0 or SHMBUS_E* (detail set). */
int sb_live_open(shmbus_bus_t *bus, const char *path, const struct stat *mapped);
/* Drop the handle's liveness lock (closes bus->live_fd). */
void sb_live_close(shmbus_bus_t *bus);
/* A handle is inherited when its token is not this process's: a child got
 * it through fork. Closing it there frees local memory only and leaves the
 * parent's peer slot, writer role, group membership and producer record
 * alone. */
static inline int sb_inherited(uint64_t token)
{
	return token != sb_self_token();
}
static inline uint32_t sb_token_pid(uint64_t token) { return (uint32_t)token; }
int sb_peer_register(shmbus_bus_t *bus);
void sb_peer_unregister(shmbus_bus_t *bus);
/* Free the slots of dead peers; returns how many. */
uint32_t sb_peer_reap(shmbus_bus_t *bus);

/* ---- segment.c ------------------------------------------------------ */

/* Lock the directory mutex (robust; bounded by SB_LOCK_TIMEOUT_NS). On an
 * owner's death the directory is repaired before this returns 0. */
int sb_bus_lock(const shmbus_bus_t *bus);
void sb_bus_unlock(const shmbus_bus_t *bus);
/* 0 while the bus's file still has the size it was mapped with and its
 * header still reads as ours; else SHMBUS_ECORRUPT with the detail set
 * (prefix: who asks, e.g. "state 'x': "), and the mapping is marked
 * damaged so every later call reports it too. One fstat: for the waits'
 * periodic checks, not for fast paths. */
int sb_bus_health(shmbus_bus_t *bus, const char *prefix);
/* 1 if [off, off+len) lies inside the heap, overflow-safe. */
int sb_heap_range_ok(const shmbus_bus_t *bus, uint64_t off, uint64_t len);

/* ---- directory.c ---------------------------------------------------- */

/* Open channel `name` of kind want->kind, in one hold of the bus mutex.
 * If it exists it must match want (dtype/shape when want->ndim != 0; each
 * param[i] when want->param[i] != 0, unless flags has SB_OPEN_ANY_PARAMS)
 * else SHMBUS_ETYPE. If missing: create it with want when flags has
 * SB_OPEN_CREATE (after ops->plan), else SHMBUS_ENOENT. The public opens
 * go through sb_kind_open (opts.c). */
#define SB_OPEN_CREATE 0x1
#define SB_OPEN_ANY_PARAMS 0x2   /* param[] only for creating */
int sb_chan_open(shmbus_bus_t *bus, const char *name, struct sb_params *want,
                 int flags, struct sb_chan *ch);

/* ---- opts.c: the one open of every kind, options in, structs out ----- */

/* How a kind reads its options struct. The public struct starts with
 * uint32_t size_of and has int32_t create at create_off. */
struct sb_open_desc {
	int kind;                  /* SHMBUS_KIND_* */
	int flags;                 /* SB_OPEN_ANY_PARAMS or 0 */
	size_t size;               /* sizeof the struct this library knows */
	size_t size_1_0;           /* its first published layout (1.0) */
	size_t create_off;         /* offsetof(..., create) */
	/* The kind's shmbus_KIND_opts_init. */
	void (*init)(void *opts);
	/* Check the copied options (reserved_ zero, ranges) and fill *want
	 * (zeroed, kind set): the dtype/shape an existing channel must have,
	 * param[] for creating it. May clear create (a request that can
	 * only open). */
	int (*check)(void *opts, const char *name, struct sb_params *want);
};

/* Read the caller's options (NULL: the defaults) into o, this library's
 * struct: size_of below size_1_0 or over 4096, or a nonzero byte past
 * d->size, is SHMBUS_EINVAL. Then check them, and open the channel or
 * create it (create member) as sb_chan_open does. */
int sb_kind_open(shmbus_bus_t *bus, const char *name, const struct sb_open_desc *d,
                 const void *opts, void *o, struct sb_chan *ch);
/* The wait members every blocking kind's options share. */
int sb_wait_opts_check(const char *kind, const char *name, int32_t policy, int64_t spin_ns);

/* An output struct (size_of first, set by the caller): 0 if size_of is
 * usable (8..4096), else SHMBUS_EINVAL naming fn. */
int sb_out_check(const void *out, const char *fn);
/* Copy full (this library's struct of size bytes) into out, at most its
 * size_of bytes, zeroing the bytes past size up to size_of; size_of is
 * left as the bytes filled. Checked by sb_out_check first. */
void sb_out_copy(void *out, const void *full, size_t size);
/* 1 if the channel's directory entry still names this channel. */
int sb_chan_valid(const struct sb_chan *ch);
/* Compute element count * dtype size into *bytes, overflow-checked. */
int sb_shape_bytes(int dtype, uint32_t ndim, const uint64_t *shape, uint64_t *bytes);

/* ---- seqlock copy --------------------------------------------------- */

/* Copy that may race with a writer (the seqlock validates afterwards).
 * Under ThreadSanitizer it copies with relaxed atomics so the race that
 * the protocol tolerates is not reported. */
void sb_racy_copy(void *dst, const void *src, size_t n);

/* ---- the bell (waitset.c; the protocol is argued there) ------------- */

void sb_bell_ring_slow(struct sb_bell *b, uint32_t index);
/* A wait set's period of full looks (default: one slice); tests only. */
extern int64_t sb_ws_full_ns;
/* Non-zero: wait sets sleep without futex_waitv (its ENOSYS; tests set it). */
extern int sb_ws_no_waitv;

/* Tell the wait sets on the bus that channel `index` changed. Every wake
 * site calls it after publishing the condition a waiter looks at (a value,
 * a message, space, end of stream, a set event, a free lock, a unit, a
 * turn), whether or not a single waiter sleeps. */
static inline void sb_bell_ring(const shmbus_bus_t *bus, uint32_t index)
{
	struct sb_bell *b = &bus->hdr->bell;

	/* seq_cst: the load half of the store-load pair whose store half is
	 * the caller's seq_cst publication of the condition; pairs with a
	 * wait set's seq_cst sets++ then its look at the condition. */
	if (atomic_load_explicit(&b->sets, memory_order_seq_cst) != 0)
		sb_bell_ring_slow(b, index);
}

static inline void sb_chan_ring(const struct sb_chan *ch)
{
	sb_bell_ring(ch->bus, ch->index);
}

/* Readiness of a wait set's member, next to each kind's code: non-zero if
 * the matching call would not block now (it would succeed or fail). None
 * blocks or consumes. live: also count a holder whose process died (a
 * system call per look; wait sets ask once per slice). Every handle type
 * starts with its struct sb_chan. */
int sb_state_ready(shmbus_state_t *st, uint64_t mark, uint64_t *seq);
/* gi: the handle's group when it was added (sb_queue_group), scratch:
 * max_groups entries of the caller's. */
int sb_queue_ready(shmbus_queue_t *q, int cond, int32_t gi, uint64_t *scratch, int live);
int sb_queue_group(shmbus_queue_t *q, uint32_t *groups);
int sb_lock_ready(shmbus_lock_t *l, int live);
int sb_event_ready(shmbus_event_t *e);
int sb_sem_ready(shmbus_sem_t *s);
int sb_turn_ready(shmbus_turn_t *t, uint32_t party, int live);
int sb_turn_party(shmbus_turn_t *t, uint32_t *party);

#endif /* SHMBUS_INTERNAL_H */

/*
 * shmbus.h -- the public API of shmbus, shared-memory channels between
 * independent processes on Linux.
 *
 * A *bus* is one named shared-memory segment: a plain name ("plant") lives
 * in /dev/shm, a name of the form "file:/path" is a file that persists.
 * Inside a bus live named, typed *channels*:
 *
 *   state   the latest value of a fixed-size typed array; one writer (or,
 *           as an option, several taking turns), any number of readers; a
 *           read is never torn and never blocks the writer (multi-buffered
 *           seqlock).
 *   queue   a lossless bounded stream of messages; many producers; consumer
 *           groups (every group sees every message, the members of a group
 *           share its messages).
 *   lock, event, semaphore, turn
 *           process-shared synchronisation objects that survive the death
 *           of a holder.
 *   array, dict, list
 *           shared containers with atomic element operations.
 *
 * Conventions, for every function in this header:
 *   - The return value is 0 on success or a negative SHMBUS_E* code.
 *     shmbus_strerror() turns a code into words; shmbus_last_error() gives
 *     the detail of the last failure in the calling thread (which name,
 *     which size, which limit). No function prints or aborts.
 *   - Handles are opaque. Whoever opens a handle closes it; closing NULL is
 *     a no-op. A handle may be used by one thread at a time unless the
 *     function says otherwise; distinct handles are independent.
 *   - Blocking calls take a timeout in nanoseconds: SHMBUS_FOREVER (-1)
 *     waits without limit, 0 never blocks; any positive value works, up to
 *     INT64_MAX (a deadline past the clock's range saturates, it does not
 *     wrap). They return SHMBUS_ETIMEDOUT
 *     when the time runs out and SHMBUS_EINTR when a signal handler ran,
 *     so that a program can notice Ctrl+C. Within 1 s of the bus's file
 *     being truncated (or its header overwritten) a blocked call returns
 *     SHMBUS_ECORRUPT ("truncated while mapped"), and within 1 s of its
 *     channel being deleted, SHMBUS_ENOENT; no call that touched pages
 *     lost to a truncation reports success. Removing the bus's file
 *     (unlink) is not an error for those who have it open: the memory
 *     stays valid and they keep talking through it; only new opens fail.
 *   - Option structs start with a size field: set it to sizeof(the struct)
 *     (the *_init() helpers do) so that the struct can grow without
 *     breaking the ABI. Passing NULL for options means all defaults. A
 *     size_of below the first published (1.0) layout is SHMBUS_EINVAL, and
 *     so is a larger struct (from a newer header) with a nonzero byte past
 *     what this library knows, or a nonzero reserved_ field: an option is
 *     refused, never silently ignored.
 *   - Structs the library fills (shmbus_bus_info_t, shmbus_channel_info_t,
 *     shmbus_queue_info_t) also start with size_of: set it to sizeof(the
 *     struct) before the call (an older, smaller struct is fine: at least
 *     8 bytes; SHMBUS_EINVAL below that, or above 4096). The library
 *     writes at most size_of bytes (fields past its own layout are zeroed)
 *     and leaves in size_of how many bytes it filled.
 *   - Functions that only look take a const handle. "shut" is the end of
 *     a queue's stream (shmbus_queue_shut); "close" releases a handle.
 *   - Pointers handed out by zero-copy calls are valid until the matching
 *     commit/release/close call, and not after.
 */
#ifndef SHMBUS_H
#define SHMBUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header: the VERSION file at the top of the source
 * tree, which the Makefile reads (for the shared library's names, shmbus.pc
 * and the CMake package) and refuses to build when these disagree with it.
 * Only a new major version removes or changes a function (and changes the
 * shared library's soname, libshmbus.so.MAJOR); other releases only add. */
#define SHMBUS_VERSION_MAJOR 1
#define SHMBUS_VERSION_MINOR 0
#define SHMBUS_VERSION_PATCH 0

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */
/* ---------------------------------------------------------------------- */

/* Every error code, once: X(NAME, value, words). The enum below, the words
 * of shmbus_strerror(), the names of shmbus_errname(), the CLI's exit codes
 * and the Python binding's exception classes are all generated from it, so
 * they cannot drift apart. The values are the ABI: never renumbered, new
 * codes are added at the end. Use it as libuv's UV_ERRNO_MAP:
 *     #define CASE(name, value, words) case SHMBUS_##name: ...
 *     SHMBUS_ERRORS(CASE)                                                  */
#define SHMBUS_ERRORS(X) \
	X(OK,                0, "success") \
	/* an argument is invalid (the message says which) */ \
	X(EINVAL,           -1, "invalid argument") \
	/* no such bus or channel */ \
	X(ENOENT,           -2, "no such bus or channel") \
	/* a bus or channel of that name exists */ \
	X(EEXIST,           -3, "already exists") \
	/* the channel exists with another kind, dtype or shape */ \
	X(ETYPE,            -4, "channel exists with another kind, dtype or shape") \
	/* shared contents fail validation */ \
	X(ECORRUPT,         -5, "shared memory contents are corrupt") \
	/* the segment was made by another ABI version */ \
	X(EVERSION,         -6, "segment made by another shmbus ABI version") \
	/* out of room: segment heap, directory, peer table, /dev/shm */ \
	X(ENOSPC,           -7, "out of space") \
	/* the timeout ran out */ \
	X(ETIMEDOUT,        -8, "timed out") \
	/* would block: queue full or empty under a zero timeout */ \
	X(EAGAIN,           -9, "would block") \
	/* end of stream: the queue is closed and drained */ \
	X(ECLOSED,         -10, "end of stream") \
	/* held by another live process (e.g. a state writer) */ \
	X(EBUSY,           -11, "held by another process") \
	/* lock acquired; its previous owner died holding it */ \
	X(EOWNERDEAD,      -12, "previous owner died") \
	/* a system call failed (the message has errno's words) */ \
	X(ESYS,            -13, "system call failed") \
	/* permission or ownership refused */ \
	X(EPERM,           -14, "permission denied") \
	/* a message or value is larger than the channel allows */ \
	X(ETOOBIG,         -15, "too big") \
	/* a signal interrupted a blocking call */ \
	X(EINTR,           -16, "interrupted by a signal") \
	/* nothing to read yet (a state never written) */ \
	X(ENODATA,         -17, "no data yet") \
	/* the process is out of memory */ \
	X(ENOMEM,          -18, "out of memory") \
	/* call out of order (commit without reserve, ...) */ \
	X(ESTATE,          -19, "call out of order") \
	/* lock owner died and state was never repaired */ \
	X(ENOTRECOVERABLE, -20, "state not recoverable") \
	/* a detached consumer group was overtaken; messages were skipped */ \
	X(ELAPPED,         -21, "consumer group was overtaken; messages skipped")

#define SHMBUS_ERROR_ENUM_(name, value, words) SHMBUS_##name = (value),
enum {
	SHMBUS_ERRORS(SHMBUS_ERROR_ENUM_)
};
#undef SHMBUS_ERROR_ENUM_

/* The words for an error code ("invalid argument"); "unknown error" for a
 * code not in SHMBUS_ERRORS; never NULL; static storage. Never fails. */
const char *shmbus_strerror(int code);

/* The name of an error code as this header spells it ("SHMBUS_EINVAL",
 * "SHMBUS_OK"); "SHMBUS_E?" for a code not in SHMBUS_ERRORS; never NULL;
 * static storage. Never fails. */
const char *shmbus_errname(int code);

/* The detail of the last failure in this thread (e.g. "channel 'y' exists
 * with dtype float64 shape [1], asked for int32 shape [3]"); "" if none.
 * Valid until the next shmbus call in this thread. Never fails. */
const char *shmbus_last_error(void);

/* The version of the library actually loaded (which may be newer than the
 * header a program was compiled with: compare with SHMBUS_VERSION_*).
 * Stores its parts in *major, *minor and *patch (each may be NULL) and
 * returns it as "MAJOR.MINOR.PATCH"; never NULL; static storage. Never
 * fails. */
const char *shmbus_version(int *major, int *minor, int *patch);

#define SHMBUS_FOREVER ((int64_t)-1)

/* ---------------------------------------------------------------------- */
/* Types                                                                  */
/* ---------------------------------------------------------------------- */

typedef enum shmbus_dtype {
	SHMBUS_BYTES = 0,       /* raw bytes, element size 1 */
	SHMBUS_INT8, SHMBUS_UINT8, SHMBUS_INT16, SHMBUS_UINT16,
	SHMBUS_INT32, SHMBUS_UINT32, SHMBUS_INT64, SHMBUS_UINT64,
	SHMBUS_FLOAT32, SHMBUS_FLOAT64, SHMBUS_BOOL,
	SHMBUS_DTYPE_COUNT
} shmbus_dtype_t;

/* Size in bytes of one element of dtype; 0 for an invalid dtype. Never
 * fails. */
size_t shmbus_dtype_size(int dtype);
/* Name of a dtype ("float64"); NULL for an invalid dtype. Never fails. */
const char *shmbus_dtype_name(int dtype);
/* Parse a dtype name ("float64", "f8", "int32", "bytes", ...); returns the
 * dtype. Errors: SHMBUS_EINVAL (NULL, or not a dtype name). */
int shmbus_dtype_parse(const char *name);

typedef enum shmbus_kind {
	SHMBUS_KIND_NONE = 0,
	SHMBUS_KIND_STATE, SHMBUS_KIND_QUEUE, SHMBUS_KIND_LOCK, SHMBUS_KIND_EVENT,
	SHMBUS_KIND_SEMAPHORE, SHMBUS_KIND_TURN, SHMBUS_KIND_ARRAY,
	SHMBUS_KIND_DICT, SHMBUS_KIND_LIST,
	SHMBUS_KIND_COUNT
} shmbus_kind_t;

/* Name of a channel kind ("state", "queue", ...); "unknown" for an invalid
 * kind. Never fails. */
const char *shmbus_kind_name(int kind);

#define SHMBUS_NAME_MAX 63      /* longest bus or channel name, in bytes */
#define SHMBUS_MAX_DIMS 4

typedef struct shmbus_bus shmbus_bus_t;
typedef struct shmbus_state shmbus_state_t;
typedef struct shmbus_queue shmbus_queue_t;

/* ---------------------------------------------------------------------- */
/* Buses                                                                  */
/* ---------------------------------------------------------------------- */

typedef struct shmbus_bus_opts {
	uint32_t size_of;       /* sizeof(shmbus_bus_opts_t) */
	uint32_t mode;          /* permission bits at creation; 0 means 0600 */
	uint64_t size;          /* segment size in bytes; 0 means 16 MiB */
	uint32_t max_channels;  /* directory entries; 0 means 64 */
	uint32_t max_peers;     /* attached processes at once; 0 means 64 */
	uint32_t flags;         /* SHMBUS_BUS_* below */
	uint32_t reserved_;
} shmbus_bus_opts_t;

/* Accept a segment owned by another user, or whose permissions were
 * widened after creation (both refused by default with SHMBUS_EPERM). */
#define SHMBUS_BUS_ALLOW_FOREIGN_OWNER 0x1u
/* Do not register this process in the peer table (read-only tools). */
#define SHMBUS_BUS_NO_PEER 0x2u

/* Fill opts with the defaults (size_of set, everything else 0). Never
 * fails. */
void shmbus_bus_opts_init(shmbus_bus_opts_t *opts);

/* Create a new bus. Fails with SHMBUS_EEXIST if the name is taken. The
 * segment's pages are reserved now, so a full /dev/shm or disk fails here
 * with SHMBUS_ENOSPC rather than later. Other processes never see a
 * half-initialised segment: it is built under a temporary name and
 * published with one atomic link.
 * Errors: SHMBUS_EINVAL (bad name or options, NULL out), SHMBUS_EEXIST,
 * SHMBUS_ENOSPC (/dev/shm or the disk is full), SHMBUS_EPERM (the
 * directory refuses the file), SHMBUS_ENOENT (a file: bus whose directory
 * does not exist, or a bus unlinked by another process before this call
 * opened it), SHMBUS_ENOMEM, SHMBUS_ESYS (another system call failed). */
int shmbus_bus_create(const char *name, const shmbus_bus_opts_t *opts,
                      shmbus_bus_t **out);

/* Open an existing bus. Validates the magic, the ABI version, the size and
 * every table bound; a segment that fails is refused (SHMBUS_ECORRUPT,
 * SHMBUS_EVERSION) and left untouched. opts may be NULL; only its flags are
 * used. The handle keeps one file descriptor open (close-on-exec): through
 * it the process holds the kernel file lock by which other processes, in
 * any pid namespace, see it alive. Handles inherited through fork belong
 * to the parent; the child gets a lock of its own on them.
 * Errors: SHMBUS_EINVAL (bad name or options, NULL out), SHMBUS_ENOENT,
 * SHMBUS_EPERM (owned by another user, or its mode widened since its
 * creation, without SHMBUS_BUS_ALLOW_FOREIGN_OWNER; a symbolic link; the
 * file's permissions), SHMBUS_ECORRUPT (not a shmbus segment: bad magic,
 * smaller than its header, inconsistent tables, not a regular file),
 * SHMBUS_EVERSION, SHMBUS_ENOSPC (peer table full), SHMBUS_ETIMEDOUT
 * (another process kept recovering it after a reboot for over 2 s),
 * SHMBUS_ENOMEM, SHMBUS_ESYS (a system call failed). */
int shmbus_bus_open(const char *name, const shmbus_bus_opts_t *opts,
                    shmbus_bus_t **out);

/* Open the bus, creating it with opts if it does not exist. Safe when
 * several processes race to create the same name. *created (if not NULL)
 * tells whether this call created it. Errors: those of shmbus_bus_open
 * and shmbus_bus_create; SHMBUS_ENOENT and SHMBUS_EEXIST only when other
 * processes created and removed the name through 8 attempts in a row. */
int shmbus_bus_open_or_create(const char *name, const shmbus_bus_opts_t *opts,
                              shmbus_bus_t **out, int *created);

/* Like shmbus_bus_open_or_create, but waits up to timeout_ns for another
 * process to create it instead of creating it. Errors: those of
 * shmbus_bus_open but SHMBUS_ENOENT, which it waits out: SHMBUS_ETIMEDOUT
 * when the bus did not appear in time, SHMBUS_EINTR on a signal. */
int shmbus_bus_wait_open(const char *name, const shmbus_bus_opts_t *opts,
                         int64_t timeout_ns, shmbus_bus_t **out);

/* Detach: leave the peer table, unmap, close the descriptor. Channel
 * handles of this bus must be closed first: once a process has closed
 * every handle of a bus, what it still owns there counts as a dead
 * process's. Never fails (returns 0). */
int shmbus_bus_close(shmbus_bus_t *bus);

/* Remove the name; processes that have it open keep their mapping.
 * Errors: SHMBUS_EINVAL (bad name), SHMBUS_ENOENT, SHMBUS_EPERM (not
 * allowed to remove the file), SHMBUS_ESYS (unlink failed otherwise). */
int shmbus_bus_unlink(const char *name);

typedef struct shmbus_bus_info_s {  /* _s: C++ would hide it behind the function of the same name */
	uint32_t size_of;
	uint32_t abi_version;
	uint64_t size;          /* bytes mapped */
	uint64_t heap_size;     /* bytes for channels */
	uint64_t heap_used;
	uint32_t max_channels;
	uint32_t channels;      /* channels in use */
	uint32_t max_peers;
	uint32_t peers;         /* peers registered (live or not yet reaped) */
	uint32_t live_peers;    /* of those, processes that still have it open
	                           (in any pid namespace) */
	uint32_t creator_pid;
	uint64_t create_time_ns;/* CLOCK_REALTIME at creation */
	int32_t persistent;     /* 1 for a file: bus */
	uint32_t reserved_;
} shmbus_bus_info_t;

/* Describe the bus. Errors: SHMBUS_EINVAL (NULL), SHMBUS_ECORRUPT (the
 * file was truncated while mapped; *info is filled all the same). */
int shmbus_bus_info(const shmbus_bus_t *bus, shmbus_bus_info_t *info);

/* The name the bus was opened with ("" for NULL). Never fails. */
const char *shmbus_bus_name(const shmbus_bus_t *bus);

typedef struct shmbus_peer_info {
	uint32_t pid;           /* as the peer's own pid namespace numbers it */
	uint32_t alive;         /* 1 if the process still has the bus open */
	uint64_t start_time;    /* process start time, clock ticks since boot */
	uint64_t attach_time_ns;/* CLOCK_REALTIME; 0 for a peer caught while registering */
} shmbus_peer_info_t;

/* Fill up to cap entries with the registered peers; *count gets how many
 * there are. Errors: SHMBUS_EINVAL (NULL bus or count, NULL peers with
 * cap > 0). */
int shmbus_bus_peers(const shmbus_bus_t *bus, shmbus_peer_info_t *peers, size_t cap,
                     size_t *count);

/* Reap dead peers: free their peer slots, release what they held (writer
 * roles, group memberships, claimed queue slots, locks). *reaped gets how
 * many (may be NULL). Any peer may call it; blocked calls do it lazily.
 * Errors: SHMBUS_EINVAL (NULL bus), SHMBUS_ETIMEDOUT when the directory
 * lock stays held past its 2 s timeout (a stuck holder or a damaged lock word): the collection stops
 * at the first such timeout, *reaped counts what was done before. */
int shmbus_bus_gc(shmbus_bus_t *bus, uint32_t *reaped);

/* The liveness timeout in ns: how long a blocked call waits before it
 * checks whether the peer it waits on is dead. Default 200 ms.
 * Errors: SHMBUS_EINVAL (NULL bus, timeout <= 0). */
int shmbus_bus_set_liveness(shmbus_bus_t *bus, int64_t timeout_ns);

/* Enumerate the shmbus segments in /dev/shm. For each, calls fn(name, arg);
 * a non-zero return stops the walk and is returned. It only reads: nothing
 * is removed, and a creation's temporary file is not listed.
 * Errors: SHMBUS_EINVAL (NULL fn), and when /dev/shm cannot be read
 * SHMBUS_ENOENT, SHMBUS_EPERM, SHMBUS_ENOMEM or SHMBUS_ESYS. */
int shmbus_list(int (*fn)(const char *name, void *arg), void *arg);

/* Remove the temporary files in /dev/shm that creators killed inside
 * shmbus_bus_create left behind (their process is gone, so nobody can
 * publish them). A bus is never one of them: temporaries have names no bus
 * can have. With dry_run nonzero nothing is removed, only counted. *count
 * (may be NULL) gets how many. Errors, when /dev/shm cannot be read:
 * SHMBUS_ENOENT, SHMBUS_EPERM, SHMBUS_ENOMEM or SHMBUS_ESYS. */
int shmbus_gc_temporaries(int dry_run, uint32_t *count);

/* ---------------------------------------------------------------------- */
/* Channel directory                                                      */
/* ---------------------------------------------------------------------- */

typedef struct shmbus_channel_info_s {  /* _s: see shmbus_bus_info_s */
	uint32_t size_of;
	int32_t kind;           /* shmbus_kind_t */
	char name[SHMBUS_NAME_MAX + 1];
	int32_t dtype;          /* shmbus_dtype_t */
	uint32_t ndim;
	uint64_t shape[SHMBUS_MAX_DIMS];
	uint64_t value_size;    /* state: bytes per value; queue: max message */
	uint64_t capacity;      /* queue: slots; array/list/dict: elements; event: waiters asleep */
	uint64_t area_size;     /* bytes of heap the channel occupies */
	uint64_t seq;           /* state: last published seq; queue: next seq */
	uint32_t flags;         /* SHMBUS_CHANNEL_* */
	uint32_t reserved_;
	/* A queue's cell size (shmbus_queue_opts_t.cell_bytes; capacity
	 * then counts cells); 0 for a queue of slots and any other kind. A
	 * caller whose size_of ends before it does not get it. */
	uint64_t cell_bytes;
} shmbus_channel_info_t;

/* shmbus_channel_info_t.flags */
#define SHMBUS_CHANNEL_MANY_WRITERS 0x1u /* state made with SHMBUS_WRITERS_MANY */

/* Fill up to cap entries describing the live channels of the bus; *count
 * gets how many there are. Set infos[0].size_of to sizeof(*infos): it is
 * the size of every entry (see "Structs the library fills" below).
 * Errors (of channel_info and channel_delete too): SHMBUS_EINVAL (NULL,
 * a bad name, a size_of too small), SHMBUS_ETIMEDOUT (the directory lock
 * held past its 2 s timeout), SHMBUS_ECORRUPT (a damaged directory entry
 * or lock, or the bus truncated while mapped); info and delete:
 * SHMBUS_ENOENT (no such channel). */
int shmbus_channel_list(const shmbus_bus_t *bus, shmbus_channel_info_t *infos,
                        size_t cap, size_t *count);

/* Describe one channel by name. Errors: see shmbus_channel_list. */
int shmbus_channel_info(const shmbus_bus_t *bus, const char *name,
                        shmbus_channel_info_t *info);

/* Delete a channel. Open handles keep working on its memory until closed;
 * the heap space is freed when the bus is next re-created. Errors: see
 * shmbus_channel_list. */
int shmbus_channel_delete(shmbus_bus_t *bus, const char *name);

/* Check a name: 1..SHMBUS_NAME_MAX bytes of [A-Za-z0-9_.-], not starting
 * with '.'. Errors: SHMBUS_EINVAL (the message gives the reason). */
int shmbus_name_check(const char *name);

/* ---------------------------------------------------------------------- */
/* State channels                                                         */
/* ---------------------------------------------------------------------- */

typedef enum shmbus_wait_policy {
	SHMBUS_WAIT_SPIN_PARK = 0, /* default: spin for spin_ns, then sleep on a futex */
	SHMBUS_WAIT_SPIN = 1,      /* never sleep: burn the CPU, lowest latency
	                              (after 2 us each round yields the CPU) */
	SHMBUS_WAIT_PARK = 2,      /* sleep at once: no CPU while waiting */
} shmbus_wait_policy_t;

/* Who may write a state channel. Recorded in the channel when it is made,
 * so every process that opens it behaves the same way.
 *  ONE   (the default) the first process to write becomes the writer; while
 *        it lives, other processes' writes fail with SHMBUS_EBUSY. Fastest:
 *        a write is a copy and two stores, no atomic read-modify-write.
 *  MANY  any process may write; writes take turns: each is exclusive, its
 *        value gets the next sequence number, the last write wins. A write
 *        waits while another one is in progress (a turn lasts one copy),
 *        and takes over at once from a writer killed inside its write
 *        (even between write_begin and write_commit). A live writer that
 *        keeps its turn longer than 10 x the bus liveness timeout (2 s by
 *        default: a stopped process) makes the write fail with SHMBUS_EBUSY. One atomic
 *        exchange more per write than ONE. */
typedef enum shmbus_writers {
	SHMBUS_WRITERS_DEFAULT = 0, /* opening: as the channel is; creating: ONE */
	SHMBUS_WRITERS_ONE = 1,
	SHMBUS_WRITERS_MANY = 2,
} shmbus_writers_t;

typedef struct shmbus_state_opts {
	uint32_t size_of;
	int32_t dtype;           /* shmbus_dtype_t; default SHMBUS_FLOAT64 */
	uint32_t ndim;           /* 0 means a scalar (shape [1]) */
	uint32_t nbuf;           /* value buffers, 2..8; 0 means 3, or 2 when 3 do not fit in the heap still free */
	uint64_t shape[SHMBUS_MAX_DIMS];
	int32_t create;          /* 1: create if missing (default); 0: must exist */
	int32_t wait_policy;     /* shmbus_wait_policy_t for shmbus_state_wait */
	int64_t spin_ns;         /* spin budget before parking; 0 means 50 us */
	int32_t writers;         /* shmbus_writers_t; an existing channel made
	                            otherwise is SHMBUS_ETYPE */
	uint32_t reserved_;
} shmbus_state_opts_t;

/* Fill opts with the defaults (size_of set). Never fails. */
void shmbus_state_opts_init(shmbus_state_opts_t *opts);

/* Open (and by default create) a state channel. If it exists, its dtype and
 * shape must match opts (SHMBUS_ETYPE otherwise); with opts->create == 0 and
 * opts->ndim == 0 any existing type is accepted.
 * Errors: SHMBUS_EINVAL (NULL, bad name or options: size_of, dtype, shape,
 * nbuf, writers, wait policy), SHMBUS_ENOENT (missing and create == 0),
 * SHMBUS_ETYPE (another kind, dtype, shape or writers), SHMBUS_ETOOBIG
 * (a value over 1 TiB), SHMBUS_ENOSPC (directory or heap full),
 * SHMBUS_ETIMEDOUT (the directory lock held past 2 s), SHMBUS_ECORRUPT
 * (a damaged entry or control block), SHMBUS_ENOMEM.
 * shmbus_state_close never fails. */
int shmbus_state_open(shmbus_bus_t *bus, const char *name,
                      const shmbus_state_opts_t *opts, shmbus_state_t **out);
int shmbus_state_close(shmbus_state_t *st);

/* Bytes of one value (dtype size x elements); 0 for NULL. Never fails. */
size_t shmbus_state_size(const shmbus_state_t *st);
/* Describe the channel. Errors: SHMBUS_EINVAL (NULL), and those of
 * shmbus_channel_info (SHMBUS_ENOENT: deleted). */
int shmbus_state_info(const shmbus_state_t *st, shmbus_channel_info_t *info);

/* Publish a new value of exactly shmbus_state_size() bytes.
 * Single-writer channel (the default): the first write makes this process
 * the channel's writer; while it lives, writes from other processes fail
 * with SHMBUS_EBUSY. A writer that dies (even in the middle of a write)
 * leaves the last complete value readable and the role free for a new
 * writer. Threads of one process must not write the same channel at the
 * same time. Never blocks.
 * Multi-writer channel (SHMBUS_WRITERS_MANY): any process, and any handle,
 * may write; a write waits only for a write in progress (see
 * shmbus_writers_t), and a writer killed mid-write is replaced at once with
 * the last complete value still readable.
 * Errors: SHMBUS_EINVAL (NULL, len not the value size), SHMBUS_ESTATE (a
 * write_begin not committed), SHMBUS_EBUSY (another live writer; on a
 * multi-writer channel, a turn held past 10 x the liveness timeout),
 * SHMBUS_ECORRUPT (the bus truncated while mapped). */
int shmbus_state_write(shmbus_state_t *st, const void *value, size_t len);

/* Zero-copy write: *ptr gets the buffer the next value goes into; fill it,
 * then commit. Readers go on reading the previous value meanwhile. On a
 * multi-writer channel the turn is held from begin to commit: other writers
 * wait meanwhile, so fill the buffer promptly.
 * Errors: SHMBUS_EINVAL (NULL); begin: SHMBUS_ESTATE (called twice),
 * SHMBUS_EBUSY (as shmbus_state_write); commit: SHMBUS_ESTATE (no
 * begin). */
int shmbus_state_write_begin(shmbus_state_t *st, void **ptr);
int shmbus_state_write_commit(shmbus_state_t *st);

/* Give up the writer role (also done by close). On a multi-writer channel:
 * give up a turn left open by write_begin (the value is not published).
 * Errors: SHMBUS_EINVAL (NULL). */
int shmbus_state_release_writer(shmbus_state_t *st);

/* Copy the latest complete value into buf (len >= value size); *seq (may be
 * NULL) gets its sequence number: 1 for the first write, +1 per write, so a
 * reader knows how many it missed. SHMBUS_ENODATA if never written. Never
 * blocks the writer; retries internally if the writer laps it.
 * Errors: SHMBUS_EINVAL (NULL), SHMBUS_ETOOBIG (len below the value size),
 * SHMBUS_ENODATA, SHMBUS_EAGAIN (the writer kept lapping it: no stable
 * value found), SHMBUS_ECORRUPT (damaged control words, or the bus
 * truncated while mapped). */
int shmbus_state_read(shmbus_state_t *st, void *buf, size_t len, uint64_t *seq);

/* Zero-copy read: *ptr points at the latest value in shared memory, *seq
 * its sequence number. Use the bytes, then call read_validate: 0 means they
 * were a whole value; SHMBUS_EAGAIN means the writer overwrote them meanwhile
 * and the caller must begin again.
 * Errors: SHMBUS_EINVAL (NULL), SHMBUS_ECORRUPT (the bus truncated while
 * mapped); begin: SHMBUS_ENODATA, SHMBUS_EAGAIN (no stable value found);
 * validate: SHMBUS_EAGAIN. */
int shmbus_state_read_begin(shmbus_state_t *st, const void **ptr, uint64_t *seq);
int shmbus_state_read_validate(shmbus_state_t *st, uint64_t seq);

/* The sequence number of the latest value (0 if none, or NULL), without
 * copying. Never fails. */
uint64_t shmbus_state_seq(const shmbus_state_t *st);

/* Wait until a value newer than newer_than is published; *seq gets it.
 * Uses the channel handle's wait policy.
 * Errors: SHMBUS_EINVAL (NULL), SHMBUS_ETIMEDOUT, SHMBUS_EINTR,
 * SHMBUS_ECORRUPT (the bus truncated or overwritten), SHMBUS_ENOENT (the
 * channel deleted), SHMBUS_ESYS (the futex call failed). */
int shmbus_state_wait(shmbus_state_t *st, uint64_t newer_than,
                      int64_t timeout_ns, uint64_t *seq);

/* Change the wait policy and spin budget of this handle.
 * Errors: SHMBUS_EINVAL (NULL, another policy, a negative budget). */
int shmbus_state_set_wait(shmbus_state_t *st, int policy, int64_t spin_ns);

/* ---------------------------------------------------------------------- */
/* Queue channels                                                         */
/* ---------------------------------------------------------------------- */

typedef struct shmbus_queue_opts {
	uint32_t size_of;
	/* Ring slots, rounded up to a power of two. 0: the default, which
	 * follows the bus: 1024 when the ring fits in the heap still free,
	 * else halved (to 16 at least) until it takes at most half of what is
	 * free; shmbus_channel_info's capacity tells what it got. */
	uint32_t slots;
	uint64_t max_msg;        /* largest message in bytes; 0 means 4096
	                            (with cell_bytes: the whole ring) */
	uint32_t max_groups;     /* consumer groups; 0 means 16 */
	uint32_t max_members;    /* members over all groups; 0 means 64 */
	uint32_t max_producers;  /* producer records; 0 means 64 */
	int32_t create;          /* 1: create if missing (default); 0: must exist */
	int32_t wait_policy;     /* shmbus_wait_policy_t */
	int32_t reserved_;
	int64_t spin_ns;         /* spin budget before parking; 0 means 50 us */
	/* Variable-length records. 0 (the default): one message per
	 * slot of max_msg bytes. Non-zero (a multiple of 8, at most 1 GiB):
	 * the ring is `slots` cells of cell_bytes each, a message of n bytes
	 * takes max(1, ceil(n / cell_bytes)) consecutive cells (and as many
	 * sequence numbers), max_msg may be anything up to slots x
	 * cell_bytes (0 means that), and the ring's memory is slots x
	 * (16 + cell_bytes) bytes. Group cursors, lags and depths then count
	 * cells; a group at SHMBUS_GROUP_EARLIEST starts at the oldest
	 * record still in the ring (never inside one). */
	uint64_t cell_bytes;
} shmbus_queue_opts_t;

/* Fill opts with the defaults (size_of set). Never fails. */
void shmbus_queue_opts_init(shmbus_queue_opts_t *opts);

/* Open (and by default create) a queue channel. If it exists, each of
 * slots, max_msg, max_groups, max_members, max_producers and cell_bytes
 * that opts sets (non-zero) must match it.
 * Errors: SHMBUS_EINVAL (NULL, bad name or options: size_of, slots,
 * max_msg, cell_bytes, wait policy), SHMBUS_ENOENT (missing and create == 0),
 * SHMBUS_ETYPE (another kind, or a limit that does not match),
 * SHMBUS_ENOSPC (directory
 * or heap full), SHMBUS_ETIMEDOUT (the directory lock held past 2 s),
 * SHMBUS_ECORRUPT (a damaged entry or control block), SHMBUS_ENOMEM.
 * shmbus_queue_close never fails. */
int shmbus_queue_open(shmbus_bus_t *bus, const char *name,
                      const shmbus_queue_opts_t *opts, shmbus_queue_t **out);
int shmbus_queue_close(shmbus_queue_t *q);

/* Producing. A message is 0..max_msg bytes. put copies it in; reserve hands
 * out the slot's memory (valid until commit/abort) for the caller to fill;
 * with cells, len bytes of contiguous cells (the record keeps them all
 * whatever commit publishes). A ring of cells may claim a pad to its end
 * before a message that would wrap, also on a try that then finds no room.
 * With timeout 0 a full ring gives SHMBUS_EAGAIN; after shut, SHMBUS_ECLOSED.
 * A message longer than max_msg gives SHMBUS_ETOOBIG.
 * Errors (put, reserve, put_many): SHMBUS_EINVAL (NULL), SHMBUS_ETOOBIG,
 * SHMBUS_ESTATE (a reservation of this handle is open), SHMBUS_ENOSPC (the
 * queue's max_producers records in use, at a handle's first put),
 * SHMBUS_EAGAIN, SHMBUS_ETIMEDOUT (full; or, at a handle's first put, the
 * directory lock held past 2 s), SHMBUS_ECLOSED, SHMBUS_EINTR,
 * SHMBUS_ECORRUPT (the bus truncated or overwritten), SHMBUS_ENOENT (the
 * channel deleted), SHMBUS_ESYS (the futex call failed). */
int shmbus_queue_put(shmbus_queue_t *q, const void *msg, size_t len,
                     int64_t timeout_ns);
int shmbus_queue_reserve(shmbus_queue_t *q, size_t len, void **ptr,
                         int64_t timeout_ns);
/* Publish the reserved message, shortened to len (<= the reserved length).
 * Errors: SHMBUS_EINVAL (NULL, len over the reserved length),
 * SHMBUS_ESTATE (no reservation), SHMBUS_ECORRUPT (the bus truncated while
 * mapped). */
int shmbus_queue_commit(shmbus_queue_t *q, size_t len);
/* Give up a reservation: consumers skip the slot. Errors: SHMBUS_EINVAL
 * (NULL), SHMBUS_ESTATE (no reservation). */
int shmbus_queue_abort(shmbus_queue_t *q);
/* Put n messages; *done gets how many went in (all, unless an error).
 * Errors: those of put (SHMBUS_EINVAL also for a NULL message). */
int shmbus_queue_put_many(shmbus_queue_t *q, const void *const *msgs,
                          const size_t *lens, size_t n, int64_t timeout_ns,
                          size_t *done);

/* Who receives. Only consumer groups gate producers. A queue with no group
 * never makes a producer wait: once the ring turns over, each put silently
 * overwrites the oldest message, which nobody will ever get, and a group
 * created later starts at the newest message (or, with
 * SHMBUS_GROUP_EARLIEST, the oldest still in the ring). A producer that
 * must not lose messages waits for its consumers before the first put:
 *
 * Wait until at least n consumer groups receive this queue's messages:
 * groups whose first join has returned and that are not detached (see
 * SHMBUS_GROUP_DURABLE). Every message put after it returns 0 reaches each
 * of them. Groups persist in the bus: one created by an earlier run
 * counts. n = 0 returns 0 at once. SHMBUS_EAGAIN with timeout 0 and fewer
 * groups, SHMBUS_ETIMEDOUT after timeout_ns (the detail says how many
 * there are), SHMBUS_EINVAL if n exceeds the queue's max_groups,
 * SHMBUS_EINTR on a signal.
 * Errors: SHMBUS_EINVAL (NULL, n over max_groups), SHMBUS_EAGAIN,
 * SHMBUS_ETIMEDOUT, SHMBUS_EINTR, SHMBUS_ECORRUPT (the bus truncated or
 * overwritten), SHMBUS_ENOENT (the channel deleted), SHMBUS_ESYS (the
 * futex call failed). */
int shmbus_queue_wait_groups(shmbus_queue_t *q, uint32_t n, int64_t timeout_ns);

/* Mark end of stream. Consumers drain what is committed, then get
 * SHMBUS_ECLOSED. Later puts fail with SHMBUS_ECLOSED.
 * Errors: SHMBUS_EINVAL (NULL). */
int shmbus_queue_shut(shmbus_queue_t *q);
/* Whether the end of the stream is marked (shmbus_queue_shut; messages
 * may still wait to be drained). false for NULL. On a bus truncated while
 * mapped the lost page reads as zero: false; the queue's calls report
 * SHMBUS_ECORRUPT. Never fails. */
bool shmbus_queue_is_shut(const shmbus_queue_t *q);

/* Consuming. Each consumer handle belongs to one named group; join it
 * before the first get. Every group sees every message; the members of one
 * group share its messages. A group created now starts at the newest
 * message (SHMBUS_GROUP_LATEST, default) or the oldest still in the ring
 * (SHMBUS_GROUP_EARLIEST). A group persists in the bus: a member that
 * restarts resumes where the group stood, and a message held by a member
 * that died is delivered again, flagged SHMBUS_MSG_REDELIVERED. */
#define SHMBUS_GROUP_LATEST 0x0u
#define SHMBUS_GROUP_EARLIEST 0x1u
/* Keep gating producers even when every member is dead (default: a group
 * with no live member stops gating after the liveness timeout). */
#define SHMBUS_GROUP_DURABLE 0x2u
/* Errors: SHMBUS_EINVAL (NULL, bad group name, unknown flags),
 * SHMBUS_ESTATE (this handle is a member of another group), SHMBUS_ENOSPC
 * (max_groups groups or max_members members), SHMBUS_ETIMEDOUT (the
 * directory lock held past 2 s), SHMBUS_ECORRUPT (a damaged lock). */
int shmbus_queue_join(shmbus_queue_t *q, const char *group, uint32_t flags);
/* Remove a group that nobody will use again: it stops gating producers at
 * once (a DURABLE group otherwise gates for ever) and its name may be
 * joined afresh later, as a new group. Messages held by its dead members
 * are dropped with it. SHMBUS_EBUSY while a member is alive (this handle's
 * own group included), SHMBUS_ENOENT if there is no such group.
 * Errors: SHMBUS_EINVAL (NULL, bad group name), SHMBUS_EBUSY,
 * SHMBUS_ENOENT, SHMBUS_ETIMEDOUT (the directory lock held past 2 s),
 * SHMBUS_ECORRUPT (a damaged lock). */
int shmbus_queue_drop_group(shmbus_queue_t *q, const char *group);

#define SHMBUS_MSG_REDELIVERED 0x1u

typedef struct shmbus_msg {
	const void *data;       /* valid until shmbus_queue_release */
	size_t len;
	uint64_t seq;           /* position in the queue */
	uint32_t flags;         /* SHMBUS_MSG_* */
	uint32_t reserved_;
} shmbus_msg_t;

/* Zero-copy: hand out the next message of this member's group; the caller
 * must release it before the next peek/get.
 * Errors (peek, get, get_many): SHMBUS_EINVAL (NULL), SHMBUS_ESTATE (not
 * joined, or the last message not released), SHMBUS_EAGAIN (empty, timeout
 * 0), SHMBUS_ETIMEDOUT, SHMBUS_ECLOSED (shut and drained for this group),
 * SHMBUS_ELAPPED (a detached group overtaken), SHMBUS_EINTR,
 * SHMBUS_ECORRUPT (damaged slot or cursor, or the bus truncated or
 * overwritten), SHMBUS_ENOENT (the channel deleted), SHMBUS_ESYS (the
 * futex call failed); get and get_many also SHMBUS_ETOOBIG.
 * release: SHMBUS_EINVAL (NULL), SHMBUS_ESTATE (no message held). */
int shmbus_queue_peek(shmbus_queue_t *q, shmbus_msg_t *msg, int64_t timeout_ns);
int shmbus_queue_release(shmbus_queue_t *q);
/* Copying: *len gets the length; a message longer than cap gives
 * SHMBUS_ETOOBIG and stays queued for a larger buffer. flags may be NULL.
 * Errors: those of peek (above), and SHMBUS_ETOOBIG. */
int shmbus_queue_get(shmbus_queue_t *q, void *buf, size_t cap, size_t *len,
                     uint32_t *flags, int64_t timeout_ns);
/* Get up to n messages into bufs[i] (each of caps[i] bytes), lengths in
 * lens[i], SHMBUS_MSG_* in flags[i] (flags may be NULL); *got gets how
 * many. Blocks only for the first. The messages are taken as each is
 * copied: a process killed inside the call loses those it copied (use
 * peek/release for messages that must survive the consumer's death).
 * Errors: those of peek (above), and SHMBUS_ETOOBIG; only when no message
 * was taken (after one, the call returns 0 and the next call reports the
 * error). */
int shmbus_queue_get_many(shmbus_queue_t *q, void *const *bufs,
                          const size_t *caps, size_t *lens, uint32_t *flags,
                          size_t n, int64_t timeout_ns, size_t *got);

typedef struct shmbus_group_info {
	char name[SHMBUS_NAME_MAX + 1];
	uint64_t cursor;        /* next sequence the group hands out */
	uint64_t lag;           /* committed messages not yet handed out
	                           (with cells: sequences, i.e. cells) */
	uint32_t members;       /* registered members */
	uint32_t live_members;
	uint32_t flags;
	uint32_t reserved_;
} shmbus_group_info_t;

typedef struct shmbus_queue_info_s {  /* _s: see shmbus_bus_info_s */
	uint32_t size_of;
	uint32_t slots;
	uint64_t max_msg;
	uint64_t head;          /* next sequence a producer claims */
	uint64_t depth;         /* claimed messages not yet released by the slowest group
	                           (with cells: sequences, i.e. cells) */
	uint32_t groups;
	uint32_t producers;
	int32_t shut;
	uint32_t reserved_;
	/* Bytes per cell of a queue of cells (shmbus_queue_opts_t's
	 * cell_bytes: slots then counts cells, head and depth sequences,
	 * i.e. cells); 0 for a queue of slots, whose slots hold max_msg
	 * bytes each. A caller whose size_of ends before it does not get it. */
	uint64_t cell_bytes;
} shmbus_queue_info_t;

/* Describe the queue and up to cap of its groups (groups may be NULL with
 * cap 0). Errors: SHMBUS_EINVAL (NULL). */
int shmbus_queue_info(shmbus_queue_t *q, shmbus_queue_info_t *info,
                      shmbus_group_info_t *groups, size_t cap);

/* Change the wait policy and spin budget of this handle.
 * Errors: SHMBUS_EINVAL (NULL, another policy, a negative budget). */
int shmbus_queue_set_wait(shmbus_queue_t *q, int policy, int64_t spin_ns);

/* ---------------------------------------------------------------------- */
/* Synchronisation objects                                                */
/* ---------------------------------------------------------------------- */

typedef struct shmbus_lock shmbus_lock_t;
typedef struct shmbus_event shmbus_event_t;
typedef struct shmbus_sem shmbus_sem_t;
typedef struct shmbus_turn shmbus_turn_t;

/* Every kind opens the same way: shmbus_KIND_open(bus, name, opts, &out)
 * with an options struct made by shmbus_KIND_opts_init (NULL: all the
 * defaults). Set size_of to sizeof the struct (the _init does); a size_of
 * below 1.0's layout, or a newer caller's larger struct with a nonzero
 * byte this library does not know (nor a nonzero reserved_), is
 * SHMBUS_EINVAL, so an option is never silently ignored. Common members:
 *   create       1: create the channel if missing (the default);
 *                0: it must exist (SHMBUS_ENOENT if not).
 *   wait_policy  shmbus_wait_policy_t for this handle's blocking calls
 *                (lock, wait, acquire); spin_ns: the spin budget before
 *                parking, 0 means 50 us. A waiter under SHMBUS_WAIT_SPIN
 *                never sleeps, and still notices a dead holder once per
 *                liveness timeout.
 * A channel of that name and another kind is SHMBUS_ETYPE. */
typedef struct shmbus_lock_opts {
	uint32_t size_of;        /* sizeof(shmbus_lock_opts_t) */
	int32_t create;          /* 1: create if missing (default); 0: must exist */
	int32_t wait_policy;     /* shmbus_wait_policy_t for shmbus_lock_lock */
	uint32_t reserved_;      /* 0 */
	int64_t spin_ns;         /* spin budget before parking; 0 means 50 us */
} shmbus_lock_opts_t;

typedef struct shmbus_event_opts {
	uint32_t size_of;        /* sizeof(shmbus_event_opts_t) */
	int32_t create;          /* 1: create if missing (default); 0: must exist */
	int32_t wait_policy;     /* shmbus_wait_policy_t for shmbus_event_wait */
	uint32_t reserved_;      /* 0 */
	int64_t spin_ns;         /* spin budget before parking; 0 means 50 us */
} shmbus_event_opts_t;

typedef struct shmbus_sem_opts {
	uint32_t size_of;        /* sizeof(shmbus_sem_opts_t) */
	int32_t create;          /* 1: create if missing (default); 0: must exist */
	int32_t wait_policy;     /* shmbus_wait_policy_t for shmbus_sem_wait */
	uint32_t initial;        /* the count, when this call creates it; default 0,
	                            at most UINT32_MAX - 1 */
	int64_t spin_ns;         /* spin budget before parking; 0 means 50 us */
} shmbus_sem_opts_t;

typedef struct shmbus_turn_opts {
	uint32_t size_of;        /* sizeof(shmbus_turn_opts_t) */
	int32_t create;          /* 1: create if missing (default); 0: must exist */
	int32_t wait_policy;     /* shmbus_wait_policy_t for shmbus_turn_acquire */
	uint32_t max_parties;    /* party slots, when this call creates it;
	                            0 means 16, at most 4096 */
	int64_t spin_ns;         /* spin budget before parking; 0 means 50 us */
} shmbus_turn_opts_t;

/* Fill opts with the defaults (size_of set). Never fails. */
void shmbus_lock_opts_init(shmbus_lock_opts_t *opts);
void shmbus_event_opts_init(shmbus_event_opts_t *opts);
void shmbus_sem_opts_init(shmbus_sem_opts_t *opts);
void shmbus_turn_opts_init(shmbus_turn_opts_t *opts);

/* A robust process-shared mutex. lock returns 0, or SHMBUS_EOWNERDEAD when
 * the previous owner died holding it: the caller owns it now, repairs what
 * it protects and calls shmbus_lock_consistent() before unlock (otherwise
 * the lock becomes SHMBUS_ENOTRECOVERABLE).
 * Errors: SHMBUS_EINVAL (NULL, bad name or options: size_of, create, wait policy),
 * SHMBUS_ENOENT (missing and create == 0), SHMBUS_ETYPE (a channel of
 * that name and another kind), SHMBUS_ENOSPC (directory or heap
 * full), SHMBUS_ETIMEDOUT (the directory lock held past 2 s),
 * SHMBUS_ECORRUPT (a damaged entry or control block), SHMBUS_ENOMEM. */
int shmbus_lock_open(shmbus_bus_t *bus, const char *name,
                     const shmbus_lock_opts_t *opts, shmbus_lock_t **out);
/* close never fails (a lock held through the handle is released).
 * Errors: SHMBUS_EINVAL (NULL); lock: SHMBUS_ESTATE (already held
 * through this handle), SHMBUS_EOWNERDEAD (acquired all the same),
 * SHMBUS_ENOTRECOVERABLE, SHMBUS_ETIMEDOUT, SHMBUS_EINTR,
 * SHMBUS_ECORRUPT (the bus truncated or overwritten), SHMBUS_ENOENT (the
 * channel deleted), SHMBUS_ESYS (the futex call failed); consistent:
 * SHMBUS_ESTATE (not taken with SHMBUS_EOWNERDEAD); unlock: SHMBUS_ESTATE
 * (not held through this handle), SHMBUS_EPERM (taken from this process,
 * reaped as dead). */
int shmbus_lock_close(shmbus_lock_t *l);
int shmbus_lock_lock(shmbus_lock_t *l, int64_t timeout_ns);
int shmbus_lock_consistent(shmbus_lock_t *l);
int shmbus_lock_unlock(shmbus_lock_t *l);

/* A manual-reset event: set wakes every waiter and stays set until clear.
 * Errors: SHMBUS_EINVAL (NULL, bad name or options: size_of, create, wait policy),
 * SHMBUS_ENOENT (missing and create == 0), SHMBUS_ETYPE (a channel of
 * that name and another kind), SHMBUS_ENOSPC (directory or heap
 * full), SHMBUS_ETIMEDOUT (the directory lock held past 2 s),
 * SHMBUS_ECORRUPT (a damaged entry or control block), SHMBUS_ENOMEM. */
int shmbus_event_open(shmbus_bus_t *bus, const char *name,
                      const shmbus_event_opts_t *opts, shmbus_event_t **out);
/* close never fails. Errors: SHMBUS_EINVAL (NULL); wait: SHMBUS_ETIMEDOUT,
 * SHMBUS_EINTR, SHMBUS_ECORRUPT (the bus truncated or overwritten),
 * SHMBUS_ENOENT (the channel deleted), SHMBUS_ESYS (the futex call
 * failed). */
int shmbus_event_close(shmbus_event_t *e);
int shmbus_event_set(shmbus_event_t *e);
int shmbus_event_clear(shmbus_event_t *e);
/* Whether the event is set now (a snapshot: it may change at once). false
 * for NULL. On a bus truncated while mapped the lost page reads as zero:
 * false ("not set"); shmbus_event_wait reports SHMBUS_ECORRUPT. Never
 * fails. */
bool shmbus_event_is_set(const shmbus_event_t *e);
/* Wait until the event is set. Errors: those of the group above. */
int shmbus_event_wait(shmbus_event_t *e, int64_t timeout_ns);

/* A counting semaphore (opts->initial: its count when this call creates
 * it).
 * Errors: SHMBUS_EINVAL (NULL, bad name or options: size_of, create, wait policy, initial),
 * SHMBUS_ENOENT (missing and create == 0), SHMBUS_ETYPE (a channel of
 * that name and another kind), SHMBUS_ENOSPC (directory or heap
 * full), SHMBUS_ETIMEDOUT (the directory lock held past 2 s),
 * SHMBUS_ECORRUPT (a damaged entry or control block), SHMBUS_ENOMEM. */
int shmbus_sem_open(shmbus_bus_t *bus, const char *name,
                    const shmbus_sem_opts_t *opts, shmbus_sem_t **out);
/* close never fails. Errors: SHMBUS_EINVAL (NULL); post: SHMBUS_ETOOBIG
 * (the count at its maximum); wait: SHMBUS_ETIMEDOUT, SHMBUS_EINTR,
 * SHMBUS_ECORRUPT (the bus truncated or overwritten), SHMBUS_ENOENT (the
 * channel deleted), SHMBUS_ESYS (the futex call failed). */
int shmbus_sem_close(shmbus_sem_t *s);
int shmbus_sem_post(shmbus_sem_t *s);
int shmbus_sem_wait(shmbus_sem_t *s, int64_t timeout_ns);
/* The count now (a snapshot). Errors: SHMBUS_EINVAL (NULL). */
int shmbus_sem_value(const shmbus_sem_t *s, uint32_t *value);

/* Turn-taking among parties that register in order: party k runs after
 * party k-1, and party 0 after the last. acquire waits for this party's
 * turn; release hands the turn on to the next live party.
 * Errors: SHMBUS_EINVAL (NULL, bad name or options: size_of, create, wait policy, max_parties),
 * SHMBUS_ENOENT (missing and create == 0), SHMBUS_ETYPE (a channel of
 * that name and another kind), SHMBUS_ENOSPC (directory or heap
 * full), SHMBUS_ETIMEDOUT (the directory lock held past 2 s),
 * SHMBUS_ECORRUPT (a damaged entry or control block), SHMBUS_ENOMEM. */
int shmbus_turn_open(shmbus_bus_t *bus, const char *name,
                     const shmbus_turn_opts_t *opts, shmbus_turn_t **out);
/* close never fails (a turn held is passed on). Errors: SHMBUS_EINVAL
 * (NULL); register: SHMBUS_ENOSPC (every party registered); acquire:
 * SHMBUS_ESTATE (not registered, or already acquired), SHMBUS_ETIMEDOUT,
 * SHMBUS_EINTR, SHMBUS_ECORRUPT (the bus truncated or overwritten, or a
 * party number out of range), SHMBUS_ENOENT (the channel deleted),
 * SHMBUS_ESYS (the futex call failed); release: SHMBUS_ESTATE (not
 * acquired). */
int shmbus_turn_close(shmbus_turn_t *t);
int shmbus_turn_register(shmbus_turn_t *t, uint32_t *party);
int shmbus_turn_acquire(shmbus_turn_t *t, int64_t timeout_ns);
int shmbus_turn_release(shmbus_turn_t *t);

/* ---------------------------------------------------------------------- */
/* Wait sets: wait on many channels at once                               */
/* ---------------------------------------------------------------------- */

/* A wait set holds members -- channel handles, each with the condition it
 * waits for and a tag the caller chooses -- and waits until one or more
 * are ready. "Ready" means the matching call would not block now: it would
 * return a value, a message, the end of the stream, the lock, ... or an
 * error (a truncated bus, a deleted channel). The wait set never consumes
 * anything: after it reports a tag, the caller makes the call itself
 * (with timeout 0; SHMBUS_EAGAIN/ETIMEDOUT there means another process
 * was faster, and the caller waits again).
 *
 * Members may be on any number of buses and may be added and removed
 * while another thread waits on the set (that wait then sees the change).
 * A wake-up costs in proportion to the members that changed, not to the
 * size of the set (see docs/design.md, "Wait sets"). The handles must
 * stay open while they are members. A wait set belongs to one process;
 * its calls are thread-safe, but only one thread at a time should wait,
 * and none while another frees the set. It does not cross fork: a child
 * must not use its parent's set (make its own).
 *
 * Reports are level-triggered: a member is reported by every wait while
 * it is ready (a queue with a message not yet taken, a set event, a free
 * lock), except state members, reported once per new value (their mark).
 * A bus truncated or overwritten makes all its members ready, and a
 * deleted channel its member: the member's own call returns the error
 * (SHMBUS_ECORRUPT, SHMBUS_ENOENT). A waker killed between publishing and
 * telling the set, a lock or turn holder that died, a queue slot claimed
 * by a producer that died or a full ring behind a dead consumer are seen
 * at the set's next look at every member, once per slice (250 ms): the
 * member is reported then, and its own call (timeout 0) runs the repairs
 * of single waits; in the last two cases it may say SHMBUS_EAGAIN until
 * the liveness timeout has passed, and the caller waits again.
 *
 * Limits: members on at most 127 buses per set (futex_waitv takes 128
 * words, one is the set's own): SHMBUS_ENOSPC on the 128th. Linux 5.16
 * or later (futex_waitv); older kernels work, the set then sleeps on its
 * first bus for at most 10 ms at a time. Buses made by a library without
 * wait sets (layout version 2) are refused with SHMBUS_EVERSION: their
 * writers would not wake a set. */
typedef struct shmbus_waitset shmbus_waitset_t;

typedef enum shmbus_cond {
	SHMBUS_ON_STATE = 1,   /* state: a value newer than the member's mark */
	SHMBUS_ON_MESSAGE = 2, /* queue: a get would not block (a message for
	                          this handle's group, or the end of the stream) */
	SHMBUS_ON_SPACE = 3,   /* queue: a put would not block */
	SHMBUS_ON_END = 4,     /* queue: shut and drained for this handle's group */
	SHMBUS_ON_EVENT = 5,   /* event: set */
	SHMBUS_ON_LOCK = 6,    /* lock: free, or its owner died */
	SHMBUS_ON_SEM = 7,     /* semaphore: its count is above 0 */
	SHMBUS_ON_TURN = 8,    /* turn: this handle's party has the turn */
} shmbus_cond_t;

/* A new, empty set. Errors: SHMBUS_EINVAL (NULL out), SHMBUS_ENOMEM. */
int shmbus_waitset_new(shmbus_waitset_t **out);
/* Frees the set (and its fd, if one was asked for); the handles stay open.
 * Never fails. */
int shmbus_waitset_free(shmbus_waitset_t *ws);

/* Add a member. tag: any value, unique in the set (SHMBUS_EEXIST if not).
 * A state member is ready while the channel's sequence number is above its
 * mark; the mark starts at `after` and moves to the sequence number each
 * time shmbus_waitset_wait reports the member (so each new value is
 * reported once; shmbus_waitset_set_mark moves it by hand).
 * Errors (of every add): SHMBUS_EINVAL (NULL), SHMBUS_EEXIST,
 * SHMBUS_ENOSPC (a 128th bus), SHMBUS_ENOMEM; the member is then not
 * added. A member added while another thread waits is seen by that wait. */
int shmbus_waitset_add_state(shmbus_waitset_t *ws, shmbus_state_t *st,
                             uint64_t after, uint64_t tag);
/* cond: SHMBUS_ON_MESSAGE, SHMBUS_ON_SPACE or SHMBUS_ON_END (else
 * SHMBUS_EINVAL). MESSAGE and END are about the group the handle is in
 * when it is added: join first (SHMBUS_ESTATE if not joined).
 * Errors (of these four adds): those of every add; queue also
 * SHMBUS_EINVAL (another cond) and SHMBUS_ESTATE (not joined). */
int shmbus_waitset_add_queue(shmbus_waitset_t *ws, shmbus_queue_t *q, int cond,
                             uint64_t tag);
int shmbus_waitset_add_event(shmbus_waitset_t *ws, shmbus_event_t *e, uint64_t tag);
int shmbus_waitset_add_lock(shmbus_waitset_t *ws, shmbus_lock_t *l, uint64_t tag);
int shmbus_waitset_add_sem(shmbus_waitset_t *ws, shmbus_sem_t *s, uint64_t tag);
/* The handle's party: register first (SHMBUS_ESTATE if not).
 * Errors: those of every add, and SHMBUS_ESTATE (not registered). */
int shmbus_waitset_add_turn(shmbus_waitset_t *ws, shmbus_turn_t *t, uint64_t tag);
/* Move a state member's mark. Errors: SHMBUS_ENOENT (no such tag),
 * SHMBUS_EINVAL (NULL set, or not a state member), SHMBUS_ENOMEM. */
int shmbus_waitset_set_mark(shmbus_waitset_t *ws, uint64_t tag, uint64_t after);
/* Remove a member. Errors: SHMBUS_EINVAL (NULL set), SHMBUS_ENOENT (no
 * such tag). When it returns, the set
 * no longer touches the member's handle or, if it was the bus's last
 * member, the bus: either may be closed. */
int shmbus_waitset_remove(shmbus_waitset_t *ws, uint64_t tag);
/* The number of members (0 for NULL). Never fails. */
size_t shmbus_waitset_size(const shmbus_waitset_t *ws);

/* Wait until at least one member is ready, or timeout_ns (-1: no limit,
 * 0: look once). Writes up to cap ready tags to ready[] and their number
 * to *n; returns 0, SHMBUS_ETIMEDOUT (*n = 0), SHMBUS_EINTR, or
 * SHMBUS_EINVAL (NULL ready or n, cap 0, or an empty set with no
 * timeout). More ready members than cap are reported by the next call.
 * Waits with the set's policy (shmbus_waitset_set_wait; default spin then
 * park, as single waits). Errors: SHMBUS_EINVAL, SHMBUS_ETIMEDOUT,
 * SHMBUS_EINTR, SHMBUS_ESYS (futex_waitv failed). */
int shmbus_waitset_wait(shmbus_waitset_t *ws, int64_t timeout_ns, uint64_t *ready,
                        size_t cap, size_t *n);
/* policy: SHMBUS_WAIT_SPIN_PARK, _SPIN or _PARK; spin_ns: the spin budget
 * (0: 50 us). Errors: SHMBUS_EINVAL (NULL set, another policy, a negative
 * budget). */
int shmbus_waitset_set_wait(shmbus_waitset_t *ws, int policy, int64_t spin_ns);

/* A file descriptor that polls readable while a member is ready, for
 * epoll/poll/select and event loops (libuv, GLib, asyncio). The set owns
 * it (do not close it). When it polls readable, call shmbus_waitset_wait
 * with timeout 0 to learn which members are ready; that call also
 * re-arms the fd: it reads empty until a member is ready again (members
 * still ready make it readable again at once). Every call returns the same
 * fd. Costs one thread per set, started by the first call and stopped by
 * shmbus_waitset_free. By default the thread sleeps while nothing is
 * ready (waking once per slice, 250 ms, for the set's look at every
 * member), so each delivery wakes two threads: it, then the event loop.
 * After shmbus_waitset_set_wait it follows that policy: with SPIN_PARK it
 * spins up to spin_ns after each look, and an answer that comes within it
 * costs one wake-up, the eventfd's -- faster on an idle machine, a CPU
 * taken from the event loop on a busy one. Errors: SHMBUS_EINVAL (NULL),
 * SHMBUS_ENOMEM or SHMBUS_ESYS (no eventfd, no thread). */
int shmbus_waitset_fd(shmbus_waitset_t *ws, int *fd);

/* ---------------------------------------------------------------------- */
/* Containers                                                             */
/* ---------------------------------------------------------------------- */

typedef struct shmbus_array shmbus_array_t;
typedef struct shmbus_dict shmbus_dict_t;
typedef struct shmbus_list shmbus_list_t;

/* Options of array, dict and list channels (see "Every kind opens the
 * same way" above for size_of and create). */
typedef struct shmbus_array_opts {
	uint32_t size_of;        /* sizeof(shmbus_array_opts_t) */
	int32_t create;          /* 1: create if missing (default); 0: must exist */
	int32_t dtype;           /* shmbus_dtype_t; default SHMBUS_INT64 */
	uint32_t reserved_;      /* 0 */
	uint64_t length;         /* elements; an existing array must match (else
	                            SHMBUS_ETYPE, as must dtype). 0 (the default)
	                            opens an existing array of any dtype and
	                            length, and never creates one (SHMBUS_ENOENT) */
} shmbus_array_opts_t;

typedef struct shmbus_dict_opts {
	uint32_t size_of;        /* sizeof(shmbus_dict_opts_t) */
	int32_t create;          /* 1: create if missing (default); 0: must exist */
	uint64_t area_bytes;     /* see shmbus_dict_open */
} shmbus_dict_opts_t;

typedef struct shmbus_list_opts {
	uint32_t size_of;        /* sizeof(shmbus_list_opts_t) */
	int32_t create;          /* 1: create if missing (default); 0: must exist */
	uint64_t area_bytes;     /* see shmbus_dict_open */
} shmbus_list_opts_t;

/* Fill opts with the defaults (size_of set). Never fails. */
void shmbus_array_opts_init(shmbus_array_opts_t *opts);
void shmbus_dict_opts_init(shmbus_dict_opts_t *opts);
void shmbus_list_opts_init(shmbus_list_opts_t *opts);

/* A fixed-length typed array with atomic element operations (integer
 * dtypes: add, exchange, compare-and-swap; float dtypes: add).
 * Errors: SHMBUS_EINVAL (NULL, bad name or options: size_of, create, dtype, length),
 * SHMBUS_ENOENT (missing and create == 0), SHMBUS_ETYPE (a channel of
 * that name and another kind, dtype or length), SHMBUS_ENOSPC (directory or heap
 * full), SHMBUS_ETIMEDOUT (the directory lock held past 2 s),
 * SHMBUS_ECORRUPT (a damaged entry or control block), SHMBUS_ENOMEM. */
int shmbus_array_open(shmbus_bus_t *bus, const char *name,
                      const shmbus_array_opts_t *opts, shmbus_array_t **out);
/* close never fails; length is 0 for NULL. Errors: dtype returns
 * SHMBUS_EINVAL for NULL. */
int shmbus_array_close(shmbus_array_t *a);
uint64_t shmbus_array_length(const shmbus_array_t *a);
int shmbus_array_dtype(const shmbus_array_t *a);
/* The elements in shared memory, for bulk access (valid until close);
 * NULL for NULL. Never fails. */
void *shmbus_array_data(shmbus_array_t *a);
/* Errors (get, set and the atomic operations below): SHMBUS_EINVAL (NULL,
 * an index out of range); add_i64, xchg_i64 and cas_i64 on a float array
 * and add_f64 on an integer one: SHMBUS_ETYPE. */
int shmbus_array_get(const shmbus_array_t *a, uint64_t i, void *value);
int shmbus_array_set(shmbus_array_t *a, uint64_t i, const void *value);
/* *old (may be NULL) gets the value before the addition. Errors: as get
 * (above). */
int shmbus_array_add_i64(shmbus_array_t *a, uint64_t i, int64_t delta, int64_t *old);
int shmbus_array_add_f64(shmbus_array_t *a, uint64_t i, double delta, double *old);
int shmbus_array_xchg_i64(shmbus_array_t *a, uint64_t i, int64_t value, int64_t *old);
/* Returns 0 if swapped, SHMBUS_EAGAIN if the element was not *expected (then
 * *expected gets its value). Errors: SHMBUS_EAGAIN, and those above. */
int shmbus_array_cas_i64(shmbus_array_t *a, uint64_t i, int64_t *expected,
                         int64_t desired);

/* A bytes-to-bytes map and a list of byte strings living in the bus heap.
 * Every operation is atomic; a process killed in the middle of one leaves
 * the container consistent for the next user. opts->area_bytes (used
 * only when the call creates the container): the bytes of heap it gets; 0
 * is the default, which follows the bus: 1 MiB when that fits in the heap
 * still free, else half of what is free (see docs/containers.md).
 * Errors: SHMBUS_EINVAL (NULL, bad name or options: size_of, create, area_bytes),
 * SHMBUS_ENOENT (missing and create == 0), SHMBUS_ETYPE (a channel of
 * that name and another kind), SHMBUS_ENOSPC (directory or heap
 * full), SHMBUS_ETIMEDOUT (the directory lock held past 2 s),
 * SHMBUS_ECORRUPT (a damaged entry or control block), SHMBUS_ENOMEM. */
int shmbus_dict_open(shmbus_bus_t *bus, const char *name,
                     const shmbus_dict_opts_t *opts, shmbus_dict_t **out);
/* close never fails. Errors of every other call on the dict: SHMBUS_EINVAL
 * (NULL), SHMBUS_ETIMEDOUT (its lock held by a live
 * process for over 10 s), SHMBUS_ECORRUPT (damaged contents, or the bus
 * truncated while mapped), SHMBUS_ENOENT (the channel deleted while this
 * call waited for its lock); set and update: SHMBUS_ETOOBIG (a key or value
 * over 4 GiB), SHMBUS_ENOSPC (the area is full). */
int shmbus_dict_close(shmbus_dict_t *d);
int shmbus_dict_set(shmbus_dict_t *d, const void *key, size_t klen,
                    const void *val, size_t vlen);
/* Copies the value into buf; *vlen gets its length. SHMBUS_ENOENT if absent,
 * SHMBUS_ETOOBIG (with *vlen set) if cap is too small. Errors: those of
 * every dict call, SHMBUS_ENOENT, SHMBUS_ETOOBIG. del: SHMBUS_ENOENT if
 * absent. */
int shmbus_dict_get(shmbus_dict_t *d, const void *key, size_t klen,
                    void *buf, size_t cap, size_t *vlen);
int shmbus_dict_del(shmbus_dict_t *d, const void *key, size_t klen);
int shmbus_dict_len(shmbus_dict_t *d, uint64_t *len);
/* Read-modify-write under the container lock: fn gets the old value (NULL,
 * 0 if absent) and writes the new one into out (cap bytes), setting *outlen;
 * fn returns 0 to store, 1 to delete, negative to abort with that code.
 * fn may be called more than once for one update (again with a larger cap
 * when it returns SHMBUS_ETOOBIG with *outlen set to what it needs, or
 * again when the container was full and its free space was merged); only
 * the last call's result is stored, so fn should not have side effects. */
typedef int (*shmbus_update_fn)(const void *old, size_t oldlen, void *out,
                                size_t cap, size_t *outlen, void *arg);
/* Errors: those of every dict call and of set, fn's own negative code,
 * SHMBUS_EINVAL (fn wrote more than cap), SHMBUS_ETOOBIG (fn asked for a
 * larger cap twice), SHMBUS_ENOMEM. */
int shmbus_dict_update(shmbus_dict_t *d, const void *key, size_t klen,
                       shmbus_update_fn fn, void *arg);
/* Iterate: *cursor starts at 0; each call copies one key (and value) and
 * advances; SHMBUS_ENOENT at the end. Errors: those of every dict call,
 * SHMBUS_ENOENT, SHMBUS_ETOOBIG (kcap or vcap too small). */
int shmbus_dict_next(shmbus_dict_t *d, uint64_t *cursor, void *kbuf,
                     size_t kcap, size_t *klen, void *vbuf, size_t vcap,
                     size_t *vlen);
/* Walk the whole container under its lock and check every block, count
 * and link: 0, or SHMBUS_ECORRUPT naming what is wrong. Errors: those of
 * every dict call. */
int shmbus_dict_validate(shmbus_dict_t *d);

/* Open (and by default create) a list; see shmbus_dict_open.
 * Errors: SHMBUS_EINVAL (NULL, bad name or options: size_of, create, area_bytes),
 * SHMBUS_ENOENT (missing and create == 0), SHMBUS_ETYPE (a channel of
 * that name and another kind), SHMBUS_ENOSPC (directory or heap
 * full), SHMBUS_ETIMEDOUT (the directory lock held past 2 s),
 * SHMBUS_ECORRUPT (a damaged entry or control block), SHMBUS_ENOMEM. */
int shmbus_list_open(shmbus_bus_t *bus, const char *name,
                     const shmbus_list_opts_t *opts, shmbus_list_t **out);
/* close never fails. Errors of every other call on the list (the dict's,
 * and the same for update): SHMBUS_EINVAL (NULL), SHMBUS_ETIMEDOUT (its lock held by a live
 * process for over 10 s), SHMBUS_ECORRUPT (damaged contents, or the bus
 * truncated while mapped), SHMBUS_ENOENT (the channel deleted while this
 * call waited for its lock). A negative index counts from the end; get,
 * set, pop and update: one out of range is SHMBUS_ENOENT (insert clamps
 * it); get and pop: SHMBUS_ETOOBIG (cap too small); append, insert, set
 * and update: SHMBUS_ENOSPC (the area is full, or the element larger than
 * it); update: as shmbus_dict_update; validate: SHMBUS_ECORRUPT naming
 * what is wrong. */
int shmbus_list_close(shmbus_list_t *l);
int shmbus_list_len(shmbus_list_t *l, uint64_t *len);
int shmbus_list_append(shmbus_list_t *l, const void *val, size_t len);
int shmbus_list_insert(shmbus_list_t *l, int64_t index, const void *val, size_t len);
int shmbus_list_get(shmbus_list_t *l, int64_t index, void *buf, size_t cap,
                    size_t *len);
int shmbus_list_set(shmbus_list_t *l, int64_t index, const void *val, size_t len);
/* Remove and copy out the element at index (negative counts from the end);
 * buf may be NULL to just delete. Errors of pop and of the calls below:
 * see shmbus_list_close. */
int shmbus_list_pop(shmbus_list_t *l, int64_t index, void *buf, size_t cap,
                    size_t *len);
int shmbus_list_update(shmbus_list_t *l, int64_t index, shmbus_update_fn fn,
                       void *arg);
int shmbus_list_clear(shmbus_list_t *l);
int shmbus_list_validate(shmbus_list_t *l);

#ifdef __cplusplus
}
#endif

#endif /* SHMBUS_H */

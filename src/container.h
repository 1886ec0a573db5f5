/*
 * container.h -- the shared machinery of dict and list channels (a "box"):
 * a private heap inside the channel's area, a robust lock, and an undo
 * journal that makes every operation all-or-nothing. See container.c.
 */
#ifndef SHMBUS_CONTAINER_H
#define SHMBUS_CONTAINER_H

#include "sync.h"

#define SB_BOX_CLASSES 40          /* block of class c: 32 << c bytes */
#define SB_BOX_JMAX 64             /* journal entries per operation */
#define SB_BOX_ROOTS 4             /* kind-specific words */

struct sb_box_jent {
	uint64_t off;              /* of a word, from the area's start */
	uint64_t old;              /* its value before the operation */
};

/* The start of a dict or list area. */
struct sb_box {
	struct sb_rlock lock;
	/* immutable after creation */
	uint32_t magic;
	uint32_t kind;
	uint64_t area_size;
	uint64_t heap_off;
	/* under the lock, outside the journal: non-zero while the free lists
	 * are being rebuilt (sb_box_compact); a locker that finds it set
	 * rebuilds them again from the heap. Zero in segments made before it
	 * existed (this was padding). */
	uint64_t rebuilding;
	uint64_t rebuilds;         /* rebuilds completed (diagnostics) */
	uint8_t pad[SB_LINE - 40];
	/* under the lock; every word here and in the heap changes only
	 * through sb_box_set, so the journal can undo it */
	uint64_t top;              /* bump pointer: end of the carved heap */
	uint64_t free_head[SB_BOX_CLASSES];
	uint64_t root[SB_BOX_ROOTS];
	uint64_t jn;               /* journal entries of the operation under way */
	struct sb_box_jent j[SB_BOX_JMAX];
	uint64_t repairs;          /* operations rolled back after a death */
};

/* Process-local view; used by one thread at a time. */
struct sb_boxh {
	struct sb_chan ch;
	struct sb_box *b;
	uint8_t *area;
	uint64_t size, heap_off;
	uint64_t token;
	uint64_t top;              /* validated copy while locked */
	int locked;
	uint8_t *scratch;          /* for update callbacks */
	size_t scratch_cap;
};

int sb_box_plan(struct sb_params *p, uint64_t *area);
int sb_box_init(uint8_t *area, uint64_t size, const struct sb_params *p, uint32_t kind);
int sb_box_check(const uint8_t *area, uint64_t size, const struct sb_params *p,
                 uint32_t kind);
int sb_box_gc(struct sb_chan *ch, uint32_t *reaped);

/* Open a dict or list (kind) through sb_kind_open: opts is the caller's
 * shmbus_dict_opts_t or shmbus_list_opts_t (NULL: defaults), which share
 * one layout; init is the kind's _opts_init. */
int sb_box_open(shmbus_bus_t *bus, const char *name, int kind, void (*init)(void *opts),
                const void *opts, struct sb_boxh *h);
/* The defaults of either options struct (size bytes). */
void sb_box_opts_init(void *opts, size_t size);
void sb_box_close(struct sb_boxh *h);

/* Lock (rolling back what a dead holder left half done); unlock commits,
 * abort undoes this operation's writes. */
int sb_box_lock(struct sb_boxh *h);
void sb_box_unlock(struct sb_boxh *h);
void sb_box_abort(struct sb_boxh *h);
/* Undo-logged store of one word of the area. */
int sb_box_set(struct sb_boxh *h, uint64_t *word, uint64_t v);

/* Blocks of the heap, named by offset from the area's start. */
int sb_box_alloc(struct sb_boxh *h, uint64_t len, uint64_t *off);
int sb_box_free(struct sb_boxh *h, uint64_t off);
/* Validate a used block; *p gets its payload, *len its length, *cap
 * (may be NULL) its capacity. */
int sb_box_block(struct sb_boxh *h, uint64_t off, uint8_t **p, uint64_t *len,
                 uint64_t *cap);
/* Merge runs of adjacent free blocks into as few blocks as their length
 * allows, and give a run that ends at the heap top back to the uncarved
 * space, as its own locked operation (call it unlocked). 1 if space came
 * together (an allocation that failed may now fit), 0 if nothing changed,
 * or an error. */
int sb_box_compact(struct sb_boxh *h);
/* After an operation failed with *r == SHMBUS_ENOSPC: merge the free
 * space; 1 if anything came together (run the operation once more), else
 * 0, with *r set to the merge's error if that failed. */
int sb_box_room_again(struct sb_boxh *h, int *r);
/* Walk the free lists; *bytes gets the bytes they hold. */
int sb_box_check_free(struct sb_boxh *h, uint64_t *bytes);
/* Scratch memory of at least n bytes for an update callback. */
void *sb_box_scratch(struct sb_boxh *h, size_t n);
/* Run an update callback on old (may be NULL) into scratch memory. */
int sb_box_run_update(struct sb_boxh *h, const void *old, size_t oldlen,
                      shmbus_update_fn fn, void *arg, void **out, size_t *outlen);

#endif /* SHMBUS_CONTAINER_H */

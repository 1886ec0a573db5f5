/*
 * container.c -- what dict and list channels share: a private heap in the
 * channel's area, guarded by a robust lock, with an undo journal that makes
 * every operation all-or-nothing even when its process is killed half-way.
 *
 * Area:  [ box header: lock line | immutable line | mutable words |
 *          journal ] [ heap: blocks ... top | unused ... end of area ]
 *
 * Heap. Blocks of 32 << c bytes (class c), each starting with a 16-byte
 * header {tag, aux}: the tag holds a magic number, the class and the state
 * (used or free); aux is the payload length of a used block or the next
 * block of a free list. New blocks are carved at top; freed blocks go on
 * the free list of their class and are reused for the same class. Blocks
 * refer to each other only by offsets from the area's start.
 *
 * Journal. An operation runs under the lock and changes shared words only
 * through sb_box_set, which first appends {offset, old value} to the
 * journal and counts it in jn (a release store, kept before the word's own
 * store by a compiler fence: a killed process's stores all land, in program
 * order), then stores the new value. Bytes written into blocks carved or
 * popped during the operation are not journaled: nothing reachable points
 * at them until a journaled word does. Commit is one store, jn = 0.
 * A process that dies in the middle leaves jn > 0; the next locker gets
 * the lock with EOWNERDEAD from the robust lock, writes the old values
 * back in reverse order (an entry counted before its word was stored
 * restores a value that is already there), sets jn = 0 and marks the lock
 * consistent. The same undo serves an operation that fails half-way (out
 * of room): it is rolled back before the error is returned.
 *
 * Nothing read from the area is trusted: block offsets are checked against
 * the heap and top, tags against their expected state and class, lengths
 * against capacities, journal offsets against the mutable words and the
 * heap, and every walk is bounded by the number of blocks the heap can
 * hold, so hostile contents give SHMBUS_ECORRUPT, never a crash or a hang.
 */
#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "sigbus.h"

#define SB_BOX_MAGIC 0x584f4253u       /* "SBOX" */
#define SB_BLK_MAGIC 0x4b4c4253ull     /* "SBLK" */
#define SB_BLK_USED 1u
#define SB_BLK_FREE 2u
#define SB_BOX_DEFAULT_AREA (1ull << 20)
#define SB_BOX_HEAP_OFF SB_ALIGN(sizeof(struct sb_box), SB_LINE)
#define SB_BOX_MIN_AREA (SB_BOX_HEAP_OFF + 4096)
#define SB_BOX_TIMEOUT_NS 10000000000ll  /* container operations: 10 s */

struct sb_blk {
	uint64_t tag;
	uint64_t aux;
};

static uint64_t blk_tag(uint32_t cls, uint32_t state)
{
	return SB_BLK_MAGIC << 32 | (uint64_t)cls << 8 | state;
}

static uint64_t cls_size(uint32_t c)
{
	return 32ull << c;
}

/* ---- kind ops shared by dict and list ------------------------------- */

int sb_box_plan(struct sb_params *p, uint64_t *area)
{
	/* Left to its default, the area follows the bus (sb_default_size):
	 * 1 MiB, or half the heap still free when 1 MiB does not fit; never
	 * under the minimum (a bus without that much gives ENOSPC). */
	if (p->param[0] == 0) {
		p->param[0] = sb_default_size(p, SB_BOX_DEFAULT_AREA) & ~(uint64_t)(SB_LINE - 1);
		if (p->param[0] < SB_BOX_MIN_AREA)
			p->param[0] = SB_BOX_MIN_AREA;
	}
	if (p->param[0] < SB_BOX_MIN_AREA)
		return sb_err(SHMBUS_EINVAL, "%s area of %llu bytes: the minimum is %llu",
		              shmbus_kind_name(p->kind), (unsigned long long)p->param[0],
		              (unsigned long long)SB_BOX_MIN_AREA);
	p->param[0] = SB_ALIGN(p->param[0], SB_LINE);
	p->dtype = SHMBUS_BYTES;
	p->ndim = 0;
	memset(p->shape, 0, sizeof(p->shape));
	p->value_size = 1;
	*area = p->param[0];
	return 0;
}

int sb_box_init(uint8_t *area, uint64_t size, const struct sb_params *p, uint32_t kind)
{
	struct sb_box *b = (struct sb_box *)area;

	(void)p;
	b->magic = SB_BOX_MAGIC;
	b->kind = kind;
	b->area_size = size;
	b->heap_off = SB_BOX_HEAP_OFF;
	b->top = SB_BOX_HEAP_OFF;
	return 0;
}

int sb_box_check(const uint8_t *area, uint64_t size, const struct sb_params *p,
                 uint32_t kind)
{
	const struct sb_box *b = (const struct sb_box *)area;

	if (size < SB_BOX_MIN_AREA || p->param[0] > size)
		return sb_err(SHMBUS_ECORRUPT, "%s area of %llu bytes is too small",
		              shmbus_kind_name((int)kind), (unsigned long long)size);
	if (b->magic != SB_BOX_MAGIC || b->kind != kind || b->area_size != size ||
	    b->heap_off != SB_BOX_HEAP_OFF)
		return sb_err(SHMBUS_ECORRUPT, "%s header disagrees with the directory",
		              shmbus_kind_name((int)kind));
	return 0;
}

/* ---- journal -------------------------------------------------------- */

/* May a journal entry restore the word at off? */
static int jent_ok(const struct sb_boxh *h, uint64_t off)
{
	return off % 8 == 0 &&
	       ((off >= offsetof(struct sb_box, top) && off < offsetof(struct sb_box, jn)) ||
	        (off >= h->heap_off && off <= h->size - 8));
}

static int rollback(struct sb_boxh *h)
{
	struct sb_box *b = h->b;
	uint64_t n = b->jn, i;

	if (n > SB_BOX_JMAX) {
		SB_STEP("box.rollback.jn");
		/* relaxed: under the lock; a hostile count is dropped, and the
		 * lock's release publishes that. */
		__atomic_store_n(&b->jn, 0, __ATOMIC_RELAXED);
		return sb_err(SHMBUS_ECORRUPT, "%s '%s': journal claims %llu entries",
		              shmbus_kind_name(h->ch.p.kind), h->ch.name, (unsigned long long)n);
	}
	for (i = n; i-- > 0;) {
		uint64_t off = b->j[i].off;

		if (!jent_ok(h, off)) {
			SB_STEP("box.rollback.jn");
			/* relaxed: as above. */
			__atomic_store_n(&b->jn, 0, __ATOMIC_RELAXED);
			return sb_err(SHMBUS_ECORRUPT, "%s '%s': journal entry %llu names offset %llu",
			              shmbus_kind_name(h->ch.p.kind), h->ch.name,
			              (unsigned long long)i, (unsigned long long)off);
		}
		SB_STEP("box.rollback.restore");
		memcpy(h->area + off, &b->j[i].old, 8);
	}
	/* compiler fence: the restores happen before the journal empties (a
	 * repairer killed here repeats them, which is harmless). */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	SB_STEP("box.rollback.jn");
	__atomic_store_n(&b->jn, 0, __ATOMIC_RELAXED);
	return 0;
}

int sb_box_set(struct sb_boxh *h, uint64_t *word, uint64_t v)
{
	struct sb_box *b = h->b;
	uint64_t n = b->jn, off = (uint64_t)((uint8_t *)word - h->area);

	if (n >= SB_BOX_JMAX)
		return sb_err(SHMBUS_ESTATE, "%s '%s': operation needs more than %d journal entries",
		              shmbus_kind_name(h->ch.p.kind), h->ch.name, SB_BOX_JMAX);
	b->j[n].off = off;
	b->j[n].old = *word;
	/* release + compiler fence: the entry is complete before it counts,
	 * and it counts before the word changes. What orders these for a
	 * repairer is not a C11 edge (its acquiring CAS takes a dead owner's
	 * token, which synchronises with nothing the owner stored after its
	 * own CAS): a SIGKILL stops the owner between two instructions, and
	 * the signal fence keeps the instructions in this order; every store
	 * it executed is visible once it is dead, which the repairer learns
	 * through the kernel (sb_token_alive) before taking the lock over.
	 * For live users the lock's release on unlock publishes all of it. */
	SB_STEP("box.box_set.jn");
	__atomic_store_n(&b->jn, n + 1, __ATOMIC_RELEASE);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	SB_STEP("box.set.word");
	*word = v;
	return 0;
}

/* ---- blocks --------------------------------------------------------- */

static int corrupt_blk(struct sb_boxh *h, uint64_t off, const char *why)
{
	return sb_err(SHMBUS_ECORRUPT, "%s '%s': block at offset %llu: %s",
	              shmbus_kind_name(h->ch.p.kind), h->ch.name, (unsigned long long)off, why);
}

/* Validate the block at off in state `state`; *cls gets its class. */
static int blk_get(struct sb_boxh *h, uint64_t off, uint32_t state, struct sb_blk **bp,
                   uint32_t *cls)
{
	struct sb_blk *bk;
	uint32_t c;

	if (off < h->heap_off || (off - h->heap_off) % 32 != 0 || off >= h->top ||
	    h->top - off < 32)
		return corrupt_blk(h, off, "outside the heap");
	bk = (struct sb_blk *)(h->area + off);
	c = (uint32_t)(bk->tag >> 8) & 0xffu;
	if (bk->tag >> 32 != SB_BLK_MAGIC || (bk->tag & 0xffu) != state ||
	    (bk->tag >> 16 & 0xffffu) != 0 || c >= SB_BOX_CLASSES)
		return corrupt_blk(h, off, state == SB_BLK_USED ? "not a used block"
		                                                : "not a free block");
	if (cls_size(c) > h->top - off)
		return corrupt_blk(h, off, "runs past the heap top");
	*bp = bk;
	*cls = c;
	return 0;
}

/* The block a heap walk meets at off (heap_off <= off < top), used or
 * free: its state and class, validated as blk_get does. */
static int blk_walk(struct sb_boxh *h, uint64_t off, uint32_t *state, uint32_t *cls)
{
	struct sb_blk *bk;
	uint32_t st = (uint32_t)(((struct sb_blk *)(h->area + off))->tag & 0xffu);

	if (st != SB_BLK_USED && st != SB_BLK_FREE)
		return corrupt_blk(h, off, "not a block where the heap walk expects one");
	*state = st;
	return blk_get(h, off, st, &bk, cls);
}

/* ---- rebuilding the free lists -------------------------------------- */

/* Cut the free run [start, end) into the fewest blocks (largest first)
 * and push them on the free lists; the number of blocks made. Headers are
 * written from the end of the run towards its start (see rebuild_free). */
static uint32_t recut(struct sb_boxh *h, uint64_t start, uint64_t end)
{
	uint64_t pos[SB_BOX_CLASSES], p = start;
	uint32_t cls[SB_BOX_CLASSES], n = 0, i, c;

	/* At most one block per class: what is left after a block of class
	 * c is smaller than it, so the next is of a lower class. */
	while (p < end && n < SB_BOX_CLASSES) {
		c = 0;
		while (c + 1 < SB_BOX_CLASSES && cls_size(c + 1) <= end - p)
			c++;
		pos[n] = p;
		cls[n++] = c;
		p += cls_size(c);
	}
	if (p != end)
		return UINT32_MAX;   /* a run of over 32 TiB: left as it is */
	for (i = n; i-- > 0;) {
		struct sb_blk *bk = (struct sb_blk *)(h->area + pos[i]);

		SB_STEP("box.recut.link");
		bk->aux = h->b->free_head[cls[i]];
		/* compiler fence: the link is in place before the header names
		 * the block (program order is what a killed process leaves). */
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		SB_STEP("box.recut.tag");
		bk->tag = blk_tag(cls[i], SB_BLK_FREE);
		SB_STEP("box.recut.push");
		h->b->free_head[cls[i]] = pos[i];
	}
	return n;
}

/* Rebuild the free lists from the heap itself, merging every run of
 * adjacent free blocks (recut) and giving a run that ends at the top back
 * to the uncarved space. Freed blocks otherwise only ever serve their own
 * class, so a heap emptied of small values could not hold large ones.
 * Nothing here is journaled: the rebuilding mark is up from the first
 * store to the last, and a locker that finds it up (the rebuilder died)
 * runs this again from the start. That is safe because the heap stays
 * walkable at every store: a run's new headers are written from its end
 * towards its start, each one inside the payload of an old free block
 * (which no walk reads) or at the start of an old block (from where the
 * new headers already tile the rest of the run); the run's first header,
 * written last, switches the walk over. The lists come from the walk
 * alone. Under the lock, with h->top validated. *changed: space came
 * together (fewer free blocks, or a lower top). */
static int rebuild_free(struct sb_boxh *h, int *changed)
{
	struct sb_box *b = h->b;
	uint64_t off = h->heap_off, run = 0, size = 0;
	uint32_t c, st = 0, inrun = 0;
	int r;

	*changed = 0;
	SB_STEP("box.rebuild.mark");
	b->rebuilding = 1;
	/* compiler fence: the mark is up before any list word changes. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	SB_STEP("box.rebuild.clear");
	for (c = 0; c < SB_BOX_CLASSES; c++)
		b->free_head[c] = 0;
	/* Bounded: every step moves off forward by a block of 32 bytes or
	 * more, and stops at top. */
	for (;;) {
		if (off < h->top) {
			if ((r = blk_walk(h, off, &st, &c)) != 0)
				return r;
			size = cls_size(c);
			if (st == SB_BLK_FREE) {
				if (inrun++ == 0)
					run = off;
				off += size;
				continue;
			}
		}
		if (inrun) {
			if (off >= h->top) {
				SB_STEP("box.rebuild.top");
				b->top = run;
				h->top = run;
				*changed = 1;
			} else {
				uint32_t n = recut(h, run, off);

				if (n == UINT32_MAX)
					return sb_err(SHMBUS_ECORRUPT, "%s '%s': free run of %llu bytes",
					              shmbus_kind_name(h->ch.p.kind), h->ch.name,
					              (unsigned long long)(off - run));
				if (n < inrun)
					*changed = 1;
			}
			inrun = 0;
		}
		if (off >= h->top)
			break;
		off += size;
	}
	/* compiler fence: every list and top store lands before the mark
	 * comes down. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	SB_STEP("box.rebuild.unmark");
	b->rebuilding = 0;
	b->rebuilds++;
	return 0;
}

/* A rebuild left half done (its process died) is run again before the
 * caller, who holds the lock with top validated, uses the lists. */
static int finish_rebuild(struct sb_boxh *h)
{
	int changed;

	if (!h->b->rebuilding)
		return 0;
	SB_STEP("box.repairs");
	h->b->repairs++;
	return rebuild_free(h, &changed);
}

/* ---- locking -------------------------------------------------------- */

static int load_top(struct sb_boxh *h)
{
	uint64_t top = h->b->top;

	if (top < h->heap_off || top > h->size || (top - h->heap_off) % 32 != 0)
		return sb_err(SHMBUS_ECORRUPT, "%s '%s': heap top %llu outside [%llu, %llu]",
		              shmbus_kind_name(h->ch.p.kind), h->ch.name,
		              (unsigned long long)top, (unsigned long long)h->heap_off,
		              (unsigned long long)h->size);
	h->top = top;
	return 0;
}

int sb_box_lock(struct sb_boxh *h)
{
	int r, rr = 0;

	do
		r = sb_rlock_acquire(&h->b->lock, &h->ch, h->token, SB_BOX_TIMEOUT_NS,
	                     SHMBUS_WAIT_SPIN_PARK, 0);
	while (r == SHMBUS_EINTR);
	/* Taken on pages lost to a truncation: report that, not what the
	 * zeros would look like (a heap top of 0). */
	if ((r == 0 || r == SHMBUS_EOWNERDEAD) && sb_map_damaged(h->ch.bus->base)) {
		sb_rlock_release(&h->b->lock, h->token);
		return sb_chan_damage_err(&h->ch);
	}
	if (r == SHMBUS_ETIMEDOUT)
		/* relaxed: the holder's pid, for the message only. */
		return sb_err(r, "%s '%s': lock held by pid %u for over %lld s",
		              shmbus_kind_name(h->ch.p.kind), h->ch.name,
		              sb_token_pid(atomic_load_explicit(&h->b->lock.owner,
		                                                memory_order_relaxed)),
		              SB_BOX_TIMEOUT_NS / 1000000000ll);
	if (r == SHMBUS_ENOTRECOVERABLE)
		return sb_err(SHMBUS_ECORRUPT, "%s '%s': lock marked unrecoverable",
		              shmbus_kind_name(h->ch.p.kind), h->ch.name);
	if (r != 0 && r != SHMBUS_EOWNERDEAD)
		return r;
	/* An uncommitted journal means an operation was cut short: undo it
	 * (after an owner's death, or after hostile writes). */
	if (r == SHMBUS_EOWNERDEAD || h->b->jn != 0) {
		if (h->b->jn != 0)
			h->b->repairs++;
		rr = rollback(h);
	}
	if (r == SHMBUS_EOWNERDEAD)
		sb_rlock_consistent(&h->b->lock);
	if (!rr)
		rr = load_top(h);
	if (!rr)
		rr = finish_rebuild(h);
	if (rr) {
		sb_rlock_release(&h->b->lock, h->token);
		return rr;
	}
	h->locked = 1;
	return 0;
}

void sb_box_unlock(struct sb_boxh *h)
{
	/* compiler fence + release: every journaled store precedes the
	 * commit; the lock's release publishes both. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	SB_STEP("box.box_unlock.jn");
	__atomic_store_n(&h->b->jn, 0, __ATOMIC_RELEASE);
	h->locked = 0;
	sb_rlock_release(&h->b->lock, h->token);
}

void sb_box_abort(struct sb_boxh *h)
{
	rollback(h);
	h->locked = 0;
	sb_rlock_release(&h->b->lock, h->token);
}

int sb_box_gc(struct sb_chan *ch, uint32_t *reaped)
{
	struct sb_boxh h;
	int r;

	*reaped = 0;
	memset(&h, 0, sizeof(h));
	h.ch = *ch;
	h.b = (struct sb_box *)ch->area;
	h.area = ch->area;
	h.size = ch->area_size;
	h.heap_off = SB_BOX_HEAP_OFF;
	h.token = sb_self_token();
	r = sb_rlock_acquire(&h.b->lock, ch, h.token, 0, SHMBUS_WAIT_SPIN_PARK, 0);
	if (r != 0 && r != SHMBUS_EOWNERDEAD)
		return 0;              /* held by a live process, or not ours to fix */
	if (r == SHMBUS_EOWNERDEAD || h.b->jn != 0) {
		if (h.b->jn != 0)
			h.b->repairs++;
		rollback(&h);
		*reaped = 1;
	}
	if (h.b->rebuilding && load_top(&h) == 0) {
		finish_rebuild(&h);
		*reaped = 1;
	}
	if (r == SHMBUS_EOWNERDEAD)
		sb_rlock_consistent(&h.b->lock);
	sb_rlock_release(&h.b->lock, h.token);
	return 0;
}

/* ---- open / close --------------------------------------------------- */

_Static_assert(sizeof(shmbus_dict_opts_t) == sizeof(shmbus_list_opts_t) &&
               offsetof(shmbus_dict_opts_t, create) == offsetof(shmbus_list_opts_t, create) &&
               offsetof(shmbus_dict_opts_t, area_bytes) ==
                       offsetof(shmbus_list_opts_t, area_bytes),
               "dict and list options share one layout");
/* 1.0's layout, the smallest size_of accepted. */
#define SB_BOX_OPTS_1_0 16u
_Static_assert(sizeof(shmbus_dict_opts_t) == SB_BOX_OPTS_1_0, "1.0 is the layout now");

void sb_box_opts_init(void *opts, size_t size)
{
	shmbus_dict_opts_t *o = opts;

	memset(o, 0, size);
	o->size_of = (uint32_t)size;
	o->create = 1;
}

static int box_opts_check(void *opts, const char *name, struct sb_params *want)
{
	const shmbus_dict_opts_t *o = opts;

	(void)name;
	want->param[0] = o->area_bytes;  /* 0: the default (sb_box_plan) */
	return 0;
}

int sb_box_open(shmbus_bus_t *bus, const char *name, int kind, void (*init)(void *opts),
                const void *opts, struct sb_boxh *h)
{
	const struct sb_open_desc d = {
		.kind = kind,
		.flags = SB_OPEN_ANY_PARAMS,    /* area_bytes only creates */
		.size = sizeof(shmbus_dict_opts_t),
		.size_1_0 = SB_BOX_OPTS_1_0,
		.create_off = offsetof(shmbus_dict_opts_t, create),
		.init = init,
		.check = box_opts_check,
	};
	shmbus_dict_opts_t o;
	int r;

	memset(h, 0, sizeof(*h));
	r = sb_kind_open(bus, name, &d, opts, &o, &h->ch);
	if (r)
		return r;
	h->b = (struct sb_box *)h->ch.area;
	h->area = h->ch.area;
	h->size = h->ch.area_size;
	h->heap_off = SB_BOX_HEAP_OFF;
	h->token = sb_self_token();
	return 0;
}

void sb_box_close(struct sb_boxh *h)
{
	free(h->scratch);
	h->scratch = NULL;
}

/* ---- blocks: use, alloc, free ---------------------------------------- */

int sb_box_block(struct sb_boxh *h, uint64_t off, uint8_t **p, uint64_t *len, uint64_t *cap)
{
	struct sb_blk *bk;
	uint32_t c;
	int r;

	if ((r = blk_get(h, off, SB_BLK_USED, &bk, &c)) != 0)
		return r;
	if (bk->aux > cls_size(c) - sizeof(*bk))
		return corrupt_blk(h, off, "length exceeds the block");
	*p = (uint8_t *)(bk + 1);
	*len = bk->aux;
	if (cap)
		*cap = cls_size(c) - sizeof(*bk);
	return 0;
}

/* No block of class c is free and the top has no room: take the smallest
 * larger free block and split it into one block of class c (returned,
 * used) followed by free blocks of classes c, c+1, ..., cb-1, which tile
 * the rest. 0: done; 1: no larger block is free (or the journal has no
 * room for the pushes); or an error. The new headers lie inside the taken
 * block, unreachable until the journaled pushes name them. */
static int split_larger(struct sb_boxh *h, uint32_t c, uint64_t len, uint64_t *off)
{
	struct sb_box *b = h->b;
	struct sb_blk *bk, *nb;
	uint64_t head, pos;
	uint32_t cb, fc, k;
	int r;

	for (cb = c + 1; cb < SB_BOX_CLASSES && b->free_head[cb] == 0; cb++)
		;
	if (cb == SB_BOX_CLASSES || b->jn + 3 + (cb - c) > SB_BOX_JMAX)
		return 1;
	head = b->free_head[cb];
	if ((r = blk_get(h, head, SB_BLK_FREE, &bk, &fc)) != 0)
		return r;
	if (fc != cb)
		return corrupt_blk(h, head, "on the free list of another class");
	if ((r = sb_box_set(h, &b->free_head[cb], bk->aux)) != 0)
		return r;
	pos = head + cls_size(c);
	for (k = c; k < cb; k++) {
		nb = (struct sb_blk *)(h->area + pos);   /* inside the taken block */
		SB_STEP("box.split.tag");
		nb->tag = blk_tag(k, SB_BLK_FREE);
		nb->aux = b->free_head[k];
		if ((r = sb_box_set(h, &b->free_head[k], pos)) != 0)
			return r;
		pos += cls_size(k);
	}
	if ((r = sb_box_set(h, &bk->tag, blk_tag(c, SB_BLK_USED))) != 0 ||
	    (r = sb_box_set(h, &bk->aux, len)) != 0)
		return r;
	*off = head;
	return 0;
}

int sb_box_alloc(struct sb_boxh *h, uint64_t len, uint64_t *off)
{
	struct sb_box *b = h->b;
	struct sb_blk *bk;
	uint64_t head, size;
	uint32_t c = 0, fc;
	int r;

	while (c < SB_BOX_CLASSES && cls_size(c) - sizeof(*bk) < len)
		c++;
	size = c < SB_BOX_CLASSES ? cls_size(c) : 0;
	if (c == SB_BOX_CLASSES || size > h->size - h->heap_off)
		return sb_err(SHMBUS_ENOSPC, "%s '%s': a block of %llu bytes is larger than its %llu-byte area; open it with a larger area_bytes",
		              shmbus_kind_name(h->ch.p.kind), h->ch.name,
		              (unsigned long long)len, (unsigned long long)h->size);
	head = b->free_head[c];
	if (head != 0) {
		if ((r = blk_get(h, head, SB_BLK_FREE, &bk, &fc)) != 0)
			return r;
		if (fc != c)
			return corrupt_blk(h, head, "on the free list of another class");
		/* The next link is checked when it is popped in turn. */
		if ((r = sb_box_set(h, &b->free_head[c], bk->aux)) != 0 ||
		    (r = sb_box_set(h, &bk->tag, blk_tag(c, SB_BLK_USED))) != 0 ||
		    (r = sb_box_set(h, &bk->aux, len)) != 0)
			return r;
		*off = head;
		return 0;
	}
	if (size > h->size - h->top) {
		r = split_larger(h, c, len, off);
		if (r != 1)
			return r;
		return sb_err(SHMBUS_ENOSPC, "%s '%s' is full: its %llu-byte area has %llu bytes left uncarved, %llu needed; open it with a larger area_bytes",
		              shmbus_kind_name(h->ch.p.kind), h->ch.name,
		              (unsigned long long)h->size, (unsigned long long)(h->size - h->top),
		              (unsigned long long)size);
	}
	*off = h->top;
	if ((r = sb_box_set(h, &b->top, h->top + size)) != 0)
		return r;
	h->top += size;
	bk = (struct sb_blk *)(h->area + *off);   /* fresh: not journaled */
	SB_STEP("box.alloc.fresh");
	bk->tag = blk_tag(c, SB_BLK_USED);
	bk->aux = len;
	return 0;
}

int sb_box_free(struct sb_boxh *h, uint64_t off)
{
	struct sb_blk *bk;
	uint32_t c;
	int r;

	if ((r = blk_get(h, off, SB_BLK_USED, &bk, &c)) != 0)
		return r;
	if ((r = sb_box_set(h, &bk->aux, h->b->free_head[c])) != 0 ||
	    (r = sb_box_set(h, &bk->tag, blk_tag(c, SB_BLK_FREE))) != 0)
		return r;
	return sb_box_set(h, &h->b->free_head[c], off);
}

int sb_box_compact(struct sb_boxh *h)
{
	int changed = 0, r;

	if ((r = sb_box_lock(h)) != 0)
		return r;
	r = rebuild_free(h, &changed);
	sb_box_unlock(h);
	return r ? r : changed;
}

int sb_box_room_again(struct sb_boxh *h, int *r)
{
	int c = sb_box_compact(h);

	if (c < 0)
		*r = c;
	return c > 0;
}

int sb_box_check_free(struct sb_boxh *h, uint64_t *bytes)
{
	uint64_t budget = (h->top - h->heap_off) / 32, total = 0;
	uint32_t c, fc;

	for (c = 0; c < SB_BOX_CLASSES; c++) {
		uint64_t off = h->b->free_head[c];

		while (off != 0) {
			struct sb_blk *bk;
			int r;

			if (budget-- == 0)
				return sb_err(SHMBUS_ECORRUPT, "%s '%s': free list %u loops",
				              shmbus_kind_name(h->ch.p.kind), h->ch.name, c);
			if ((r = blk_get(h, off, SB_BLK_FREE, &bk, &fc)) != 0)
				return r;
			if (fc != c)
				return corrupt_blk(h, off, "on the free list of another class");
			total += cls_size(c);
			off = bk->aux;
		}
	}
	/* The heap itself: headers tile it from heap_off to top (what
	 * rebuild_free relies on), and its free blocks are those listed. */
	{
		uint64_t off = h->heap_off, walked = 0;
		uint32_t st = 0;
		int r;

		while (off < h->top) {
			if ((r = blk_walk(h, off, &st, &fc)) != 0)
				return r;
			if (st == SB_BLK_FREE)
				walked += cls_size(fc);
			off += cls_size(fc);
		}
		if (walked != total)
			return sb_err(SHMBUS_ECORRUPT, "%s '%s': the heap holds %llu free bytes, its free lists %llu",
			              shmbus_kind_name(h->ch.p.kind), h->ch.name,
			              (unsigned long long)walked, (unsigned long long)total);
	}
	*bytes = total;
	return 0;
}

/* ---- update callbacks ----------------------------------------------- */

void *sb_box_scratch(struct sb_boxh *h, size_t n)
{
	if (n > h->scratch_cap) {
		void *p = realloc(h->scratch, n);

		if (!p)
			return NULL;
		h->scratch = p;
		h->scratch_cap = n;
	}
	return h->scratch;
}

int sb_box_run_update(struct sb_boxh *h, const void *old, size_t oldlen,
                      shmbus_update_fn fn, void *arg, void **out, size_t *outlen)
{
	size_t cap = oldlen + 4096, n = 0;
	int tries, r = 0;

	for (tries = 0; tries < 2; tries++) {
		void *buf = sb_box_scratch(h, cap);

		if (!buf)
			return sb_err(SHMBUS_ENOMEM, "out of memory for a %zu-byte update buffer", cap);
		n = 0;
		r = fn(old, oldlen, buf, cap, &n, arg);
		/* A callback that needs more room says so with ETOOBIG and the
		 * size it needs; it is called once more with that much. */
		if (r == SHMBUS_ETOOBIG && n > cap) {
			cap = n;
			continue;
		}
		if (r == 0 && n > cap)
			return sb_err(SHMBUS_EINVAL, "update function wrote %zu bytes into a %zu-byte buffer",
			              n, cap);
		*out = buf;
		*outlen = n;
		return r < 0 ? sb_err(r, "%s '%s': the update function returned %d",
		                      shmbus_kind_name(h->ch.p.kind), h->ch.name, r)
		             : r;
	}
	return sb_err(SHMBUS_ETOOBIG, "update function asked for %zu bytes twice", n);
}

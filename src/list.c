/*
 * list.c -- list channels: a sequence of byte strings in a container area
 * (container.c gives the heap, the robust lock and the undo journal).
 *
 * Root words: the block of the offset array, its capacity, and the length.
 * Each element is a block of its own. Appending into spare capacity
 * stores the new element's offset in the array, then the length (both
 * journaled). Removing one of the last 56 elements moves the slots after
 * it down in place, each store journaled. Anything else that shifts
 * elements (insert, or removal further from the end) or needs more
 * capacity (doubling, at least 8) builds a fresh array and switches the
 * root words to it, so at most a handful of words are journaled whatever
 * the length. Replacing an element writes a new block
 * and switches its slot. Clearing resets the whole heap in one journaled
 * step. A process killed at any point leaves the journal to undo its
 * partial operation; every other process sees the list before or after.
 *
 * Indexes follow Python: negative ones count from the end; insert clamps
 * to [0, len]; the other calls give SHMBUS_ENOENT outside [-len, len).
 */
#include <stdlib.h>
#include <string.h>

#include "container.h"

#define ROOT_ARR 0
#define ROOT_CAP 1
#define ROOT_LEN 2

struct shmbus_list {
	struct sb_boxh h;
};

struct arr {
	uint64_t *slot;            /* NULL while the list has no array */
	uint64_t off, cap, len;
};

static int list_plan(struct sb_params *p, uint64_t *area)
{
	return sb_box_plan(p, area);
}

static int list_init(uint8_t *area, uint64_t size, const struct sb_params *p)
{
	return sb_box_init(area, size, p, SHMBUS_KIND_LIST);
}

static int list_check(const uint8_t *area, uint64_t size, const struct sb_params *p)
{
	return sb_box_check(area, size, p, SHMBUS_KIND_LIST);
}

static void list_info(struct sb_chan *ch, shmbus_channel_info_t *info)
{
	struct sb_box *b = (struct sb_box *)ch->area;

	/* A snapshot for display, read without the lock. */
	info->seq = __atomic_load_n(&b->root[ROOT_LEN], __ATOMIC_RELAXED);
	info->capacity = __atomic_load_n(&b->root[ROOT_CAP], __ATOMIC_RELAXED);
	info->flags = (uint32_t)__atomic_load_n(&b->repairs, __ATOMIC_RELAXED);
}

const struct sb_kind_ops sb_list_ops = {
	.plan = list_plan,
	.init = list_init,
	.check = list_check,
	.gc = sb_box_gc,
	.info = list_info,
};

static int corrupt(shmbus_list_t *l, const char *why)
{
	return sb_err(SHMBUS_ECORRUPT, "list '%s': %s", l->h.ch.name, why);
}

static int array_of(shmbus_list_t *l, struct arr *a)
{
	uint64_t *root = l->h.b->root, len, bcap;
	uint8_t *p;
	int r;

	a->off = root[ROOT_ARR];
	a->cap = root[ROOT_CAP];
	a->len = root[ROOT_LEN];
	a->slot = NULL;
	if (a->off == 0)
		return a->cap || a->len ? corrupt(l, "length without an array") : 0;
	if ((r = sb_box_block(&l->h, a->off, &p, &len, &bcap)) != 0)
		return r;
	if (a->cap == 0 || a->cap > bcap / 8 || len != a->cap * 8 || a->len > a->cap)
		return corrupt(l, "array capacity or length out of range");
	a->slot = (uint64_t *)(void *)p;
	return 0;
}

static int lock_array(shmbus_list_t *l, struct arr *a)
{
	int r;

	if (!l)
		return sb_err(SHMBUS_EINVAL, "list is NULL");
	if ((r = sb_box_lock(&l->h)) != 0)
		return r;
	if ((r = array_of(l, a)) != 0)
		sb_box_abort(&l->h);
	return r;
}

static int finish(shmbus_list_t *l, int r)
{
	if (r)
		sb_box_abort(&l->h);
	else
		sb_box_unlock(&l->h);
	return r;
}

static int index_of(shmbus_list_t *l, const struct arr *a, int64_t index, uint64_t *i)
{
	int64_t n = (int64_t)a->len;

	if (index < 0)
		index += n;
	if (index < 0 || index >= n)
		return sb_err(SHMBUS_ENOENT, "index %lld out of range for list '%s' of length %lld",
		              (long long)(index < 0 ? index - n : index), l->h.ch.name,
		              (long long)n);
	*i = (uint64_t)index;
	return 0;
}

/* A new element block holding val. */
static int new_elem(shmbus_list_t *l, const void *val, size_t len, uint64_t *off)
{
	uint64_t n;
	uint8_t *p;
	int r;

	if ((r = sb_box_alloc(&l->h, len, off)) != 0 ||
	    (r = sb_box_block(&l->h, *off, &p, &n, NULL)) != 0)
		return r;
	if (len)
		memcpy(p, val, len);   /* fresh: unreachable until a slot names it */
	return 0;
}

/* Build a fresh array of cap slots from a with slot `at` removed (skip)
 * or `ins` inserted at `at`, and switch the root words to it. */
static int rebuild(shmbus_list_t *l, struct arr *a, uint64_t cap, uint64_t at, int skip,
                   uint64_t ins)
{
	uint64_t *root = l->h.b->root, off, n, newlen = skip ? a->len - 1 : a->len + 1;
	uint64_t *ns;
	uint8_t *p;
	int r;

	if (cap > (l->h.size / 8))
		return sb_err(SHMBUS_ENOSPC, "list '%s' cannot hold %llu elements in its area",
		              l->h.ch.name, (unsigned long long)cap);
	if ((r = sb_box_alloc(&l->h, cap * 8, &off)) != 0 ||
	    (r = sb_box_block(&l->h, off, &p, &n, NULL)) != 0)
		return r;
	ns = (uint64_t *)(void *)p;    /* fresh: not journaled */
	if (at)
		memcpy(ns, a->slot, at * 8);
	if (skip) {
		if (a->len - at - 1)
			memcpy(ns + at, a->slot + at + 1, (a->len - at - 1) * 8);
	} else {
		ns[at] = ins;
		if (a->len - at)
			memcpy(ns + at + 1, a->slot + at, (a->len - at) * 8);
	}
	if ((r = sb_box_set(&l->h, &root[ROOT_ARR], off)) != 0 ||
	    (r = sb_box_set(&l->h, &root[ROOT_CAP], cap)) != 0 ||
	    (r = sb_box_set(&l->h, &root[ROOT_LEN], newlen)) != 0)
		return r;
	return a->slot ? sb_box_free(&l->h, a->off) : 0;
}

static int insert_locked(shmbus_list_t *l, struct arr *a, uint64_t at, const void *val,
                         size_t len)
{
	uint64_t elem;
	int r;

	if ((r = new_elem(l, val, len, &elem)) != 0)
		return r;
	if (at == a->len && a->len < a->cap) {
		if ((r = sb_box_set(&l->h, &a->slot[at], elem)) != 0)
			return r;
		return sb_box_set(&l->h, &l->h.b->root[ROOT_LEN], a->len + 1);
	}
	return rebuild(l, a, a->len < a->cap ? a->cap : (a->cap < 4 ? 8 : a->cap * 2), at, 0,
	               elem);
}

/* Remove slot i by moving the few slots after it down in place, each
 * store journaled (needs no new block, so it works in a full area). */
static int shift_down(shmbus_list_t *l, struct arr *a, uint64_t i)
{
	uint64_t j;
	int r;

	for (j = i; j + 1 < a->len; j++)
		if ((r = sb_box_set(&l->h, &a->slot[j], a->slot[j + 1])) != 0)
			return r;
	return sb_box_set(&l->h, &l->h.b->root[ROOT_LEN], a->len - 1);
}

static int remove_locked(shmbus_list_t *l, struct arr *a, uint64_t i)
{
	uint64_t elem = a->slot[i];
	int r;

	if (i == a->len - 1)
		r = sb_box_set(&l->h, &l->h.b->root[ROOT_LEN], a->len - 1);
	else if (a->len - 1 - i <= SB_BOX_JMAX - 8)
		r = shift_down(l, a, i);
	else
		r = rebuild(l, a, a->cap, i, 1, 0);
	return r ? r : sb_box_free(&l->h, elem);
}

void shmbus_list_opts_init(shmbus_list_opts_t *opts)
{
	sb_box_opts_init(opts, sizeof(*opts));
}

static void list_opts_init(void *opts)
{
	shmbus_list_opts_init(opts);
}

int shmbus_list_open(shmbus_bus_t *bus, const char *name, const shmbus_list_opts_t *opts,
                     shmbus_list_t **out)
{
	shmbus_list_t *l;
	int r;

	if (!bus || !out)
		return sb_err(SHMBUS_EINVAL, "shmbus_list_open: NULL argument");
	*out = NULL;
	if (!(l = calloc(1, sizeof(*l))))
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	if ((r = sb_box_open(bus, name, SHMBUS_KIND_LIST, list_opts_init, opts, &l->h)) != 0) {
		free(l);
		return r;
	}
	*out = l;
	return 0;
}

int shmbus_list_close(shmbus_list_t *l)
{
	if (!l)
		return 0;
	sb_box_close(&l->h);
	free(l);
	return 0;
}

int shmbus_list_len(shmbus_list_t *l, uint64_t *len)
{
	struct arr a;
	int r;

	if (!len)
		return sb_err(SHMBUS_EINVAL, "shmbus_list_len: len is NULL");
	if ((r = lock_array(l, &a)) != 0)
		return r;
	*len = a.len;
	sb_box_unlock(&l->h);
	return 0;
}

int shmbus_list_append(shmbus_list_t *l, const void *val, size_t len)
{
	return shmbus_list_insert(l, INT64_MAX, val, len);
}

static int list_insert_once(shmbus_list_t *l, int64_t index, const void *val, size_t len)
{
	struct arr a;
	uint64_t at;
	int r;

	if (!val && len)
		return sb_err(SHMBUS_EINVAL, "list: value is NULL");
	if ((r = lock_array(l, &a)) != 0)
		return r;
	if (index < 0)
		index = index + (int64_t)a.len < 0 ? 0 : index + (int64_t)a.len;
	at = (uint64_t)index > a.len ? a.len : (uint64_t)index;
	return finish(l, insert_locked(l, &a, at, val, len));
}

int shmbus_list_insert(shmbus_list_t *l, int64_t index, const void *val, size_t len)
{
	int r = list_insert_once(l, index, val, len);

	if (r == SHMBUS_ENOSPC && sb_box_room_again(&l->h, &r))
		r = list_insert_once(l, index, val, len);
	return r;
}

/* Copy element i out; ETOOBIG (with *len set) if cap is too small. */
static int copy_out(shmbus_list_t *l, const struct arr *a, uint64_t i, void *buf, size_t cap,
                    size_t *len)
{
	uint64_t n;
	uint8_t *p;
	int r;

	if ((r = sb_box_block(&l->h, a->slot[i], &p, &n, NULL)) != 0)
		return r;
	if (len)
		*len = n;
	if (!buf)
		return 0;
	if (cap < n)
		return sb_err(SHMBUS_ETOOBIG, "list '%s': element %llu is %llu bytes, buffer has %zu",
		              l->h.ch.name, (unsigned long long)i, (unsigned long long)n, cap);
	if (n)
		memcpy(buf, p, n);
	return 0;
}

int shmbus_list_get(shmbus_list_t *l, int64_t index, void *buf, size_t cap, size_t *len)
{
	struct arr a;
	uint64_t i = 0;
	int r;

	if (!len || (!buf && cap))
		return sb_err(SHMBUS_EINVAL, "shmbus_list_get: NULL argument");
	if ((r = lock_array(l, &a)) != 0)
		return r;
	if ((r = index_of(l, &a, index, &i)) == 0)
		r = copy_out(l, &a, i, buf ? buf : (void *)"", cap, len);
	sb_box_unlock(&l->h);
	return r;
}

static int list_set_once(shmbus_list_t *l, int64_t index, const void *val, size_t len)
{
	struct arr a;
	uint64_t i = 0, elem, old;
	int r;

	if (!val && len)
		return sb_err(SHMBUS_EINVAL, "list: value is NULL");
	if ((r = lock_array(l, &a)) != 0)
		return r;
	if ((r = index_of(l, &a, index, &i)) == 0 && (r = new_elem(l, val, len, &elem)) == 0) {
		old = a.slot[i];
		if ((r = sb_box_set(&l->h, &a.slot[i], elem)) == 0)
			r = sb_box_free(&l->h, old);
	}
	return finish(l, r);
}

int shmbus_list_set(shmbus_list_t *l, int64_t index, const void *val, size_t len)
{
	int r = list_set_once(l, index, val, len);

	if (r == SHMBUS_ENOSPC && sb_box_room_again(&l->h, &r))
		r = list_set_once(l, index, val, len);
	return r;
}

int shmbus_list_pop(shmbus_list_t *l, int64_t index, void *buf, size_t cap, size_t *len)
{
	struct arr a;
	uint64_t i = 0;
	int r;

	if (!buf && cap)
		return sb_err(SHMBUS_EINVAL, "shmbus_list_pop: NULL buffer");
	if ((r = lock_array(l, &a)) != 0)
		return r;
	if ((r = index_of(l, &a, index, &i)) == 0 && (r = copy_out(l, &a, i, buf, cap, len)) == 0)
		r = remove_locked(l, &a, i);
	return finish(l, r);
}

static int list_update_once(shmbus_list_t *l, int64_t index, shmbus_update_fn fn, void *arg)
{
	struct arr a;
	uint64_t i = 0, n, elem, old;
	uint8_t *p;
	size_t outlen;
	void *out;
	int r;

	if (!fn)
		return sb_err(SHMBUS_EINVAL, "shmbus_list_update: fn is NULL");
	if ((r = lock_array(l, &a)) != 0)
		return r;
	if ((r = index_of(l, &a, index, &i)) != 0 ||
	    (r = sb_box_block(&l->h, a.slot[i], &p, &n, NULL)) != 0)
		return finish(l, r);
	r = sb_box_run_update(&l->h, p, n, fn, arg, &out, &outlen);
	if (r == 0 && (r = new_elem(l, out, outlen, &elem)) == 0) {
		old = a.slot[i];
		if ((r = sb_box_set(&l->h, &a.slot[i], elem)) == 0)
			r = sb_box_free(&l->h, old);
	} else if (r == 1) {
		r = remove_locked(l, &a, i);
	}
	return finish(l, r);
}

int shmbus_list_update(shmbus_list_t *l, int64_t index, shmbus_update_fn fn, void *arg)
{
	int r = list_update_once(l, index, fn, arg);

	if (r == SHMBUS_ENOSPC && sb_box_room_again(&l->h, &r))
		r = list_update_once(l, index, fn, arg);
	return r;
}

int shmbus_list_clear(shmbus_list_t *l)
{
	struct sb_box *b;
	struct arr a;
	uint32_t c;
	int r;

	if ((r = lock_array(l, &a)) != 0)
		return r;
	/* The list owns its whole heap: forget every block at once. */
	b = l->h.b;
	r = sb_box_set(&l->h, &b->root[ROOT_ARR], 0);
	if (!r)
		r = sb_box_set(&l->h, &b->root[ROOT_CAP], 0);
	if (!r)
		r = sb_box_set(&l->h, &b->root[ROOT_LEN], 0);
	if (!r)
		r = sb_box_set(&l->h, &b->top, l->h.heap_off);
	for (c = 0; !r && c < SB_BOX_CLASSES; c++)
		if (b->free_head[c] != 0)
			r = sb_box_set(&l->h, &b->free_head[c], 0);
	return finish(l, r);
}

int shmbus_list_validate(shmbus_list_t *l)
{
	uint64_t i, n, cap, bytes;
	struct arr a;
	uint8_t *p;
	int r;

	if ((r = lock_array(l, &a)) != 0)
		return r;
	if ((r = sb_box_check_free(&l->h, &bytes)) != 0)
		goto out;
	if (a.slot) {
		if ((r = sb_box_block(&l->h, a.off, &p, &n, &cap)) != 0)
			goto out;
		bytes += cap + 16;
	}
	for (i = 0; i < a.len; i++) {
		if ((r = sb_box_block(&l->h, a.slot[i], &p, &n, &cap)) != 0)
			goto out;
		bytes += cap + 16;
	}
	/* Every carved block is either reachable or free, exactly once. */
	if (bytes != l->h.top - l->h.heap_off)
		r = sb_err(SHMBUS_ECORRUPT, "list '%s': blocks in use and free add up to %llu bytes, the heap has %llu carved",
		           l->h.ch.name, (unsigned long long)bytes,
		           (unsigned long long)(l->h.top - l->h.heap_off));
out:
	sb_box_unlock(&l->h);
	return r;
}

/*
 * dict.c -- dict channels: a bytes-to-bytes hash map in a container area
 * (container.c gives the heap, the robust lock and the undo journal).
 *
 * Root words: the table's block, its capacity (a power of two >= 8), the
 * number of live entries (count) and of live entries plus tombstones
 * (used). The table is an array of slots: 0 empty, 1 tombstone, else the
 * offset of an entry block {hash, klen, vlen, key bytes, value bytes}.
 * Open addressing with linear probing; a probe visits at most capacity
 * slots, so a table without an empty slot (hostile) cannot loop.
 *
 * Every change is copy-then-switch: a new value goes into a new entry
 * block, then one journaled slot store makes it visible and the old block
 * is freed. The table grows (or sheds its tombstones) when used would pass
 * 3/4 of capacity: the live entries are placed into a fresh table of at
 * least twice their number, then the root words switch to it. A process
 * killed at any point leaves the journal to undo its partial operation.
 * Readers take the lock as well: a block may be freed and reused by the
 * next writer as soon as the lock is released.
 */
#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "sigbus.h"

#define ROOT_TABLE 0
#define ROOT_CAP 1
#define ROOT_COUNT 2
#define ROOT_USED 3
#define SLOT_EMPTY 0u
#define SLOT_TOMB 1u

struct entry {
	uint64_t hash;
	uint32_t klen;
	uint32_t vlen;
};

struct shmbus_dict {
	struct sb_boxh h;
};

struct tab {
	uint64_t *slot;            /* NULL while the dict has no table */
	uint64_t off, cap, count, used;
};

static int dict_plan(struct sb_params *p, uint64_t *area)
{
	return sb_box_plan(p, area);
}

static int dict_init(uint8_t *area, uint64_t size, const struct sb_params *p)
{
	return sb_box_init(area, size, p, SHMBUS_KIND_DICT);
}

static int dict_check(const uint8_t *area, uint64_t size, const struct sb_params *p)
{
	return sb_box_check(area, size, p, SHMBUS_KIND_DICT);
}

static void dict_info(struct sb_chan *ch, shmbus_channel_info_t *info)
{
	struct sb_box *b = (struct sb_box *)ch->area;

	/* A snapshot for display, read without the lock. */
	info->seq = __atomic_load_n(&b->root[ROOT_COUNT], __ATOMIC_RELAXED);
	info->capacity = __atomic_load_n(&b->root[ROOT_CAP], __ATOMIC_RELAXED);
	info->flags = (uint32_t)__atomic_load_n(&b->repairs, __ATOMIC_RELAXED);
}

const struct sb_kind_ops sb_dict_ops = {
	.plan = dict_plan,
	.init = dict_init,
	.check = dict_check,
	.gc = sb_box_gc,
	.info = dict_info,
};

static uint64_t hash_key(const void *key, size_t n)
{
	const unsigned char *s = key;
	uint64_t h = 1469598103934665603ull;

	while (n--)
		h = (h ^ *s++) * 1099511628211ull;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

static int corrupt(shmbus_dict_t *d, const char *why)
{
	return sb_err(SHMBUS_ECORRUPT, "dict '%s': %s", d->h.ch.name, why);
}

/* The table, validated. */
static int table(shmbus_dict_t *d, struct tab *t)
{
	uint64_t *root = d->h.b->root, len, bcap;
	uint8_t *p;
	int r;

	t->off = root[ROOT_TABLE];
	t->cap = root[ROOT_CAP];
	t->count = root[ROOT_COUNT];
	t->used = root[ROOT_USED];
	t->slot = NULL;
	if (t->off == 0)
		return t->cap || t->count || t->used ? corrupt(d, "counts without a table") : 0;
	if ((r = sb_box_block(&d->h, t->off, &p, &len, &bcap)) != 0)
		return r;
	if (t->cap < 8 || (t->cap & (t->cap - 1)) != 0 || t->cap > bcap / 8 ||
	    len != t->cap * 8 || t->count > t->used || t->used >= t->cap)
		return corrupt(d, "table capacity or counts out of range");
	t->slot = (uint64_t *)(void *)p;
	return 0;
}

/* The entry at off, validated; *key and *val point into it. */
static int entry_at(shmbus_dict_t *d, uint64_t off, struct entry **e, uint8_t **key,
                    uint8_t **val)
{
	uint64_t len;
	uint8_t *p;
	int r;

	if ((r = sb_box_block(&d->h, off, &p, &len, NULL)) != 0)
		return r;
	*e = (struct entry *)(void *)p;
	if (len < sizeof(**e) || len != sizeof(**e) + (uint64_t)(*e)->klen + (*e)->vlen)
		return corrupt(d, "entry length disagrees with its key and value");
	*key = p + sizeof(**e);
	*val = *key + (*e)->klen;
	return 0;
}

/* Probe for key. *idx gets its slot if found (returns 1), else the slot
 * an insertion should use (returns 0). */
static int find(shmbus_dict_t *d, const struct tab *t, const void *key, size_t klen,
                uint64_t hash, uint64_t *idx)
{
	uint64_t mask = t->cap - 1, i = hash & mask, n, ins = UINT64_MAX;
	struct entry *e;
	uint8_t *k, *v;
	int r;

	if (!t->slot) {
		*idx = UINT64_MAX;
		return 0;
	}
	for (n = 0; n < t->cap; n++, i = (i + 1) & mask) {
		uint64_t s = t->slot[i];

		if (s == SLOT_EMPTY || s == SLOT_TOMB) {
			if (ins == UINT64_MAX)
				ins = i;
			if (s == SLOT_EMPTY)
				break;
			continue;
		}
		if ((r = entry_at(d, s, &e, &k, &v)) != 0)
			return r;
		if (e->hash == hash && e->klen == klen && memcmp(k, key, klen) == 0) {
			*idx = i;
			return 1;
		}
	}
	if (ins == UINT64_MAX)
		return corrupt(d, "table has no free slot");
	*idx = ins;
	return 0;
}

/* Move the live entries into a fresh table sized for count + 1. */
static int grow(shmbus_dict_t *d, struct tab *t)
{
	uint64_t newcap = 8, off, i, len, *ns;
	uint64_t *root = d->h.b->root;
	uint8_t *p;
	int r;

	while (newcap / 2 < t->count + 1) {
		if (newcap > (d->h.size / 16))
			return sb_err(SHMBUS_ENOSPC, "dict '%s': table cannot grow past %llu slots",
			              d->h.ch.name, (unsigned long long)newcap);
		newcap *= 2;
	}
	if ((r = sb_box_alloc(&d->h, newcap * 8, &off)) != 0 ||
	    (r = sb_box_block(&d->h, off, &p, &len, NULL)) != 0)
		return r;
	ns = (uint64_t *)(void *)p;
	memset(ns, 0, newcap * 8);     /* fresh block: not journaled */
	for (i = 0; t->slot && i < t->cap; i++) {
		uint64_t s = t->slot[i], j, n;
		struct entry *e;
		uint8_t *k, *v;

		if (s == SLOT_EMPTY || s == SLOT_TOMB)
			continue;
		if ((r = entry_at(d, s, &e, &k, &v)) != 0)
			return r;
		for (j = e->hash & (newcap - 1), n = 0; ns[j] != 0 && n < newcap;
		     j = (j + 1) & (newcap - 1), n++)
			;
		if (n == newcap)
			return corrupt(d, "more live entries than its count says");
		ns[j] = s;
	}
	if ((r = sb_box_set(&d->h, &root[ROOT_TABLE], off)) != 0 ||
	    (r = sb_box_set(&d->h, &root[ROOT_CAP], newcap)) != 0 ||
	    (r = sb_box_set(&d->h, &root[ROOT_USED], t->count)) != 0)
		return r;
	if (t->slot && (r = sb_box_free(&d->h, t->off)) != 0)
		return r;
	return table(d, t);
}

/* Store val under key (locked; found/idx from find). */
static int store(shmbus_dict_t *d, struct tab *t, const void *key, size_t klen,
                 uint64_t hash, int found, uint64_t idx, const void *val, size_t vlen)
{
	uint64_t *root = d->h.b->root, off, len, old = 0;
	struct entry *e;
	uint8_t *p;
	int r;

	if ((r = sb_box_alloc(&d->h, sizeof(*e) + (uint64_t)klen + vlen, &off)) != 0 ||
	    (r = sb_box_block(&d->h, off, &p, &len, NULL)) != 0)
		return r;
	e = (struct entry *)(void *)p;     /* fresh: unreachable until the slot store */
	e->hash = hash;
	e->klen = (uint32_t)klen;
	e->vlen = (uint32_t)vlen;
	memcpy(p + sizeof(*e), key, klen);
	if (vlen)
		memcpy(p + sizeof(*e) + klen, val, vlen);
	if (found) {
		old = t->slot[idx];
		if ((r = sb_box_set(&d->h, &t->slot[idx], off)) != 0)
			return r;
		return sb_box_free(&d->h, old);
	}
	/* A tombstone is reused as it is; an empty slot may need a bigger table. */
	if (!t->slot || (t->slot[idx] == SLOT_EMPTY && (t->used + 1) * 4 > t->cap * 3)) {
		if ((r = grow(d, t)) != 0)
			return r;
		if ((r = find(d, t, key, klen, hash, &idx)) != 0)
			return r < 0 ? r : corrupt(d, "key appeared while growing");
	}
	if (t->slot[idx] == SLOT_EMPTY &&
	    (r = sb_box_set(&d->h, &root[ROOT_USED], t->used + 1)) != 0)
		return r;
	if ((r = sb_box_set(&d->h, &t->slot[idx], off)) != 0)
		return r;
	return sb_box_set(&d->h, &root[ROOT_COUNT], t->count + 1);
}

static int remove_at(shmbus_dict_t *d, struct tab *t, uint64_t idx)
{
	uint64_t old = t->slot[idx];
	int r;

	if ((r = sb_box_set(&d->h, &t->slot[idx], SLOT_TOMB)) != 0 ||
	    (r = sb_box_set(&d->h, &d->h.b->root[ROOT_COUNT], t->count - 1)) != 0)
		return r;
	return sb_box_free(&d->h, old);
}

/* Lock, read the table and look the key up. */
static int begin(shmbus_dict_t *d, const void *key, size_t klen, struct tab *t,
                 uint64_t *hash, uint64_t *idx, int *found)
{
	int r;

	if (!d || (!key && klen))
		return sb_err(SHMBUS_EINVAL, "dict: NULL argument");
	if (klen > UINT32_MAX)
		return sb_err(SHMBUS_ETOOBIG, "dict '%s': key of %zu bytes (limit 4 GiB)",
		              d->h.ch.name, klen);
	*hash = hash_key(key, klen);
	if ((r = sb_box_lock(&d->h)) != 0)
		return r;
	r = table(d, t);
	if (!r) {
		r = find(d, t, key, klen, *hash, idx);
		if (r >= 0) {
			*found = r;
			return 0;
		}
	}
	sb_box_abort(&d->h);
	return r;
}

/* Unlock after a mutation: commit on success, undo on failure. */
static int finish(shmbus_dict_t *d, int r)
{
	if (r)
		sb_box_abort(&d->h);
	else
		sb_box_unlock(&d->h);
	return r;
}

void shmbus_dict_opts_init(shmbus_dict_opts_t *opts)
{
	sb_box_opts_init(opts, sizeof(*opts));
}

static void dict_opts_init(void *opts)
{
	shmbus_dict_opts_init(opts);
}

int shmbus_dict_open(shmbus_bus_t *bus, const char *name, const shmbus_dict_opts_t *opts,
                     shmbus_dict_t **out)
{
	shmbus_dict_t *d;
	int r;

	if (!bus || !out)
		return sb_err(SHMBUS_EINVAL, "shmbus_dict_open: NULL argument");
	*out = NULL;
	if (!(d = calloc(1, sizeof(*d))))
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	if ((r = sb_box_open(bus, name, SHMBUS_KIND_DICT, dict_opts_init, opts, &d->h)) != 0) {
		free(d);
		return r;
	}
	*out = d;
	return 0;
}

int shmbus_dict_close(shmbus_dict_t *d)
{
	if (!d)
		return 0;
	sb_box_close(&d->h);
	free(d);
	return 0;
}

static int dict_set_once(shmbus_dict_t *d, const void *key, size_t klen, const void *val,
                         size_t vlen)
{
	struct tab t;
	uint64_t hash, idx;
	int found, r;

	if (!val && vlen)
		return sb_err(SHMBUS_EINVAL, "dict: value is NULL");
	if (vlen > UINT32_MAX)
		return sb_err(SHMBUS_ETOOBIG, "dict: value of %zu bytes (limit 4 GiB)", vlen);
	if ((r = begin(d, key, klen, &t, &hash, &idx, &found)) != 0)
		return r;
	return finish(d, store(d, &t, key, klen, hash, found, idx, val, vlen));
}

int shmbus_dict_set(shmbus_dict_t *d, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
	int r = dict_set_once(d, key, klen, val, vlen);

	if (r == SHMBUS_ENOSPC && sb_box_room_again(&d->h, &r))
		r = dict_set_once(d, key, klen, val, vlen);
	return r;
}

int shmbus_dict_get(shmbus_dict_t *d, const void *key, size_t klen, void *buf, size_t cap,
                    size_t *vlen)
{
	struct tab t;
	struct entry *e;
	uint8_t *k, *v;
	uint64_t hash, idx;
	int found, r;

	if (!vlen || (!buf && cap))
		return sb_err(SHMBUS_EINVAL, "shmbus_dict_get: NULL argument");
	if ((r = begin(d, key, klen, &t, &hash, &idx, &found)) != 0)
		return r;
	if (!found)
		r = sb_err(SHMBUS_ENOENT, "dict '%s' has no such key", d->h.ch.name);
	else if ((r = entry_at(d, t.slot[idx], &e, &k, &v)) == 0) {
		*vlen = e->vlen;
		if (cap < e->vlen)
			r = sb_err(SHMBUS_ETOOBIG, "dict '%s': value is %u bytes, buffer has %zu",
			           d->h.ch.name, e->vlen, cap);
		else if (e->vlen)
			memcpy(buf, v, e->vlen);
	}
	sb_box_unlock(&d->h);
	/* Read from pages lost to a truncation: say so, whatever the zeros
	 * looked like. */
	if (sb_map_damaged(d->h.ch.bus->base))
		r = sb_chan_damage_err(&d->h.ch);
	return r;
}

int shmbus_dict_del(shmbus_dict_t *d, const void *key, size_t klen)
{
	struct tab t;
	uint64_t hash, idx;
	int found, r;

	if ((r = begin(d, key, klen, &t, &hash, &idx, &found)) != 0)
		return r;
	if (!found) {
		sb_box_unlock(&d->h);
		return sb_err(SHMBUS_ENOENT, "dict '%s' has no such key", d->h.ch.name);
	}
	return finish(d, remove_at(d, &t, idx));
}

int shmbus_dict_len(shmbus_dict_t *d, uint64_t *len)
{
	struct tab t;
	int r;

	if (!d || !len)
		return sb_err(SHMBUS_EINVAL, "shmbus_dict_len: NULL argument");
	if ((r = sb_box_lock(&d->h)) != 0)
		return r;
	if ((r = table(d, &t)) == 0)
		*len = t.count;
	sb_box_unlock(&d->h);
	return r;
}

static int dict_update_once(shmbus_dict_t *d, const void *key, size_t klen,
                            shmbus_update_fn fn, void *arg)
{
	struct tab t;
	struct entry *e;
	uint8_t *k, *v = NULL;
	uint64_t hash, idx;
	size_t oldlen = 0, outlen;
	void *out;
	int found, r;

	if (!fn)
		return sb_err(SHMBUS_EINVAL, "shmbus_dict_update: fn is NULL");
	if ((r = begin(d, key, klen, &t, &hash, &idx, &found)) != 0)
		return r;
	if (found) {
		if ((r = entry_at(d, t.slot[idx], &e, &k, &v)) != 0)
			return finish(d, r);
		oldlen = e->vlen;
	}
	r = sb_box_run_update(&d->h, v, oldlen, fn, arg, &out, &outlen);
	if (r == 0)
		r = outlen > UINT32_MAX ? sb_err(SHMBUS_ETOOBIG, "dict: value too large")
		                        : store(d, &t, key, klen, hash, found, idx, out, outlen);
	else if (r == 1)
		r = found ? remove_at(d, &t, idx) : 0;
	return finish(d, r);
}

int shmbus_dict_update(shmbus_dict_t *d, const void *key, size_t klen, shmbus_update_fn fn,
                       void *arg)
{
	int r = dict_update_once(d, key, klen, fn, arg);

	if (r == SHMBUS_ENOSPC && sb_box_room_again(&d->h, &r))
		r = dict_update_once(d, key, klen, fn, arg);
	return r;
}

int shmbus_dict_next(shmbus_dict_t *d, uint64_t *cursor, void *kbuf, size_t kcap,
                     size_t *klen, void *vbuf, size_t vcap, size_t *vlen)
{
	struct tab t;
	struct entry *e;
	uint8_t *k, *v;
	uint64_t i;
	int r;

	if (!d || !cursor || !klen || !vlen || (!kbuf && kcap) || (!vbuf && vcap))
		return sb_err(SHMBUS_EINVAL, "shmbus_dict_next: NULL argument");
	if ((r = sb_box_lock(&d->h)) != 0)
		return r;
	if ((r = table(d, &t)) != 0)
		goto out;
	for (i = *cursor; t.slot && i < t.cap; i++)
		if (t.slot[i] != SLOT_EMPTY && t.slot[i] != SLOT_TOMB)
			break;
	if (!t.slot || i >= t.cap) {
		r = SHMBUS_ENOENT;     /* the end: not a failure worth a message */
		goto out;
	}
	if ((r = entry_at(d, t.slot[i], &e, &k, &v)) != 0)
		goto out;
	*klen = e->klen;
	*vlen = e->vlen;
	/* A NULL buffer skips that half; a short one is an error. */
	if ((kbuf && kcap < e->klen) || (vbuf && vcap < e->vlen)) {
		r = sb_err(SHMBUS_ETOOBIG, "dict '%s': key/value of %u/%u bytes, buffers of %zu/%zu",
		           d->h.ch.name, e->klen, e->vlen, kcap, vcap);
		goto out;
	}
	if (kbuf && e->klen)
		memcpy(kbuf, k, e->klen);
	if (vbuf && e->vlen)
		memcpy(vbuf, v, e->vlen);
	*cursor = i + 1;
out:
	sb_box_unlock(&d->h);
	return r;
}

int shmbus_dict_validate(shmbus_dict_t *d)
{
	uint64_t i, live = 0, tombs = 0, bytes, n, cap;
	struct tab t;
	uint8_t *p;
	int r;

	if (!d)
		return sb_err(SHMBUS_EINVAL, "dict is NULL");
	if ((r = sb_box_lock(&d->h)) != 0)
		return r;
	if ((r = table(d, &t)) != 0 || (r = sb_box_check_free(&d->h, &bytes)) != 0)
		goto out;
	if (t.slot) {
		if ((r = sb_box_block(&d->h, t.off, &p, &n, &cap)) != 0)
			goto out;
		bytes += cap + 16;
	}
	for (i = 0; t.slot && i < t.cap; i++) {
		uint64_t s = t.slot[i], j, mask = t.cap - 1;
		struct entry *e;
		uint8_t *k, *v;

		if (s == SLOT_EMPTY)
			continue;
		if (s == SLOT_TOMB) {
			tombs++;
			continue;
		}
		if ((r = entry_at(d, s, &e, &k, &v)) != 0 ||
		    (r = sb_box_block(&d->h, s, &p, &n, &cap)) != 0)
			goto out;
		bytes += cap + 16;
		if (hash_key(k, e->klen) != e->hash) {
			r = corrupt(d, "an entry's hash does not match its key");
			goto out;
		}
		/* reachable: no empty slot between its home and here */
		for (j = e->hash & mask; j != i; j = (j + 1) & mask)
			if (t.slot[j] == SLOT_EMPTY) {
				r = corrupt(d, "an entry is unreachable from its home slot");
				goto out;
			}
		live++;
	}
	if (live != t.count || live + tombs != t.used)
		r = corrupt(d, "live and used counts disagree with the table");
	/* Every carved block is either reachable or free, exactly once. */
	else if (bytes != d->h.top - d->h.heap_off)
		r = sb_err(SHMBUS_ECORRUPT, "dict '%s': blocks in use and free add up to %llu bytes, the heap has %llu carved",
		           d->h.ch.name, (unsigned long long)bytes,
		           (unsigned long long)(d->h.top - d->h.heap_off));
out:
	sb_box_unlock(&d->h);
	return r;
}

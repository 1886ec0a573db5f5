/*
 * directory.c -- the channel directory of a bus: names to typed areas of
 * the heap.
 *
 * The directory is a fixed table of 256-byte entries. Every change happens
 * under the bus's robust mutex: an entry goes FREE -> CREATING (area
 * allocated from the heap's bump pointer and initialised by its kind) ->
 * READY, and back to FREE on delete (the area is never reused). A process that dies while
 * CREATING leaves an entry that the next locker frees (see
 * repair_directory in segment.c). Lookups take the mutex too: opening a
 * channel is not a hot path, and it means an entry is never read half
 * written.
 *
 * Everything read from an entry is validated (kind, dtype, shape, that
 * shape x dtype gives value_size, that the area lies inside the heap) and
 * the kind checks its area's immutable fields, before a local handle is
 * handed out. After that, hot paths use only the handle's copies.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "sigbus.h"

static const struct {
	const char *name;
	size_t size;
} dtypes[SHMBUS_DTYPE_COUNT] = {
	[SHMBUS_BYTES] = {"bytes", 1},   [SHMBUS_INT8] = {"int8", 1},
	[SHMBUS_UINT8] = {"uint8", 1},   [SHMBUS_INT16] = {"int16", 2},
	[SHMBUS_UINT16] = {"uint16", 2}, [SHMBUS_INT32] = {"int32", 4},
	[SHMBUS_UINT32] = {"uint32", 4}, [SHMBUS_INT64] = {"int64", 8},
	[SHMBUS_UINT64] = {"uint64", 8}, [SHMBUS_FLOAT32] = {"float32", 4},
	[SHMBUS_FLOAT64] = {"float64", 8}, [SHMBUS_BOOL] = {"bool", 1},
};

size_t shmbus_dtype_size(int dtype)
{
	return dtype >= 0 && dtype < SHMBUS_DTYPE_COUNT ? dtypes[dtype].size : 0;
}

const char *shmbus_dtype_name(int dtype)
{
	return dtype >= 0 && dtype < SHMBUS_DTYPE_COUNT ? dtypes[dtype].name : NULL;
}

int shmbus_dtype_parse(const char *name)
{
	static const struct { const char *alias; int dtype; } aliases[] = {
		{"u1", SHMBUS_UINT8}, {"i1", SHMBUS_INT8}, {"i2", SHMBUS_INT16},
		{"u2", SHMBUS_UINT16}, {"i4", SHMBUS_INT32}, {"u4", SHMBUS_UINT32},
		{"i8", SHMBUS_INT64}, {"u8", SHMBUS_UINT64}, {"f4", SHMBUS_FLOAT32},
		{"f8", SHMBUS_FLOAT64}, {"float", SHMBUS_FLOAT64},
		{"double", SHMBUS_FLOAT64}, {"int", SHMBUS_INT64}, {"b1", SHMBUS_BOOL},
		{"?", SHMBUS_BOOL}, {"raw", SHMBUS_BYTES},
	};
	size_t i;

	if (!name)
		return sb_err(SHMBUS_EINVAL, "dtype name is NULL");
	for (i = 0; i < SHMBUS_DTYPE_COUNT; i++)
		if (strcmp(name, dtypes[i].name) == 0)
			return (int)i;
	for (i = 0; i < SB_ARRAY_LEN(aliases); i++)
		if (strcmp(name, aliases[i].alias) == 0)
			return aliases[i].dtype;
	return sb_err(SHMBUS_EINVAL,
	              "unknown dtype '%s' (int8..int64, uint8..uint64, float32, float64, bool, bytes)",
	              name);
}

const char *shmbus_kind_name(int kind)
{
	static const char *const names[SHMBUS_KIND_COUNT] = {
		"none", "state", "queue", "lock", "event", "semaphore", "turn",
		"array", "dict", "list",
	};

	return kind >= 0 && kind < SHMBUS_KIND_COUNT ? names[kind] : "unknown";
}

const struct sb_kind_ops *sb_kind_ops(int kind)
{
	switch (kind) {
	case SHMBUS_KIND_STATE: return &sb_state_ops;
	case SHMBUS_KIND_QUEUE: return &sb_queue_ops;
	case SHMBUS_KIND_LOCK: return &sb_lock_ops;
	case SHMBUS_KIND_EVENT: return &sb_event_ops;
	case SHMBUS_KIND_SEMAPHORE: return &sb_sem_ops;
	case SHMBUS_KIND_TURN: return &sb_turn_ops;
	case SHMBUS_KIND_ARRAY: return &sb_array_ops;
	case SHMBUS_KIND_DICT: return &sb_dict_ops;
	case SHMBUS_KIND_LIST: return &sb_list_ops;
	default: return NULL;
	}
}

int sb_shape_bytes(int dtype, uint32_t ndim, const uint64_t *shape, uint64_t *bytes)
{
	uint64_t n = shmbus_dtype_size(dtype);
	uint32_t i;

	if (n == 0)
		return sb_err(SHMBUS_EINVAL, "invalid dtype %d", dtype);
	if (ndim > SHMBUS_MAX_DIMS)
		return sb_err(SHMBUS_EINVAL, "%u dimensions; the limit is %d", ndim,
		              SHMBUS_MAX_DIMS);
	for (i = 0; i < ndim; i++) {
		if (shape[i] == 0)
			return sb_err(SHMBUS_EINVAL, "dimension %u of the shape is 0", i);
		if (__builtin_mul_overflow(n, shape[i], &n) || n > (1ull << 40))
			return sb_err(SHMBUS_ETOOBIG, "shape is too large (over 1 TiB)");
	}
	*bytes = n;
	return 0;
}

static void shape_str(char *buf, size_t cap, uint32_t ndim, const uint64_t *shape)
{
	size_t used = 0;
	uint32_t i;

	used += (size_t)snprintf(buf, cap, "[");
	for (i = 0; i < ndim && i < SHMBUS_MAX_DIMS && used < cap; i++)
		used += (size_t)snprintf(buf + used, cap - used, "%s%llu", i ? "," : "",
		                         (unsigned long long)shape[i]);
	if (used < cap)
		snprintf(buf + used, cap - used, "]");
}

/* Copy and validate an entry into local params. Caller holds the mutex. */
static int entry_load(shmbus_bus_t *bus, uint32_t idx, struct sb_chan *ch)
{
	const struct sb_dirent *e = &bus->dir[idx];
	const struct sb_kind_ops *ops;
	uint64_t bytes, off, size;

	memset(ch, 0, sizeof(*ch));
	ch->bus = bus;
	ch->index = idx;
	memcpy(ch->name, e->name, sizeof(ch->name));
	ch->name[SHMBUS_NAME_MAX] = '\0';
	/* relaxed: under the mutex, which orders every write of it. */
	ch->generation = atomic_load_explicit(&e->generation, memory_order_relaxed);
	ch->p.kind = (int32_t)e->kind;
	ch->p.dtype = e->dtype;
	ch->p.ndim = e->ndim;
	memcpy(ch->p.shape, e->shape, sizeof(ch->p.shape));
	ch->p.value_size = e->value_size;
	memcpy(ch->p.param, e->param, sizeof(ch->p.param));
	ops = sb_kind_ops(ch->p.kind);
	if (!ops)
		return sb_err(SHMBUS_ECORRUPT, "channel '%s' has unknown kind %d", ch->name,
		              ch->p.kind);
	if (sb_shape_bytes(ch->p.dtype, ch->p.ndim, ch->p.shape, &bytes) != 0 ||
	    bytes != ch->p.value_size)
		return sb_err(SHMBUS_ECORRUPT, "channel '%s': dtype/shape/value size inconsistent",
		              ch->name);
	/* Fetched once: a hostile peer may rewrite the entry between our check
	 * and our use (we hold the mutex, it need not). */
	off = *(const volatile uint64_t *)&e->off;
	size = *(const volatile uint64_t *)&e->size;
	if (off % SB_LINE != 0 || !sb_heap_range_ok(bus, off, size))
		return sb_err(SHMBUS_ECORRUPT, "channel '%s': area [%llu,+%llu) outside the heap",
		              ch->name, (unsigned long long)off, (unsigned long long)size);
	if (sb_map_damaged(bus->base))
		return sb_err(SHMBUS_ECORRUPT, "bus '%s' was truncated while mapped", bus->name);
	ch->area = bus->base + off;
	ch->area_size = size;
	if (ops->check && ops->check(ch->area, ch->area_size, &ch->p) != 0)
		return sb_err(SHMBUS_ECORRUPT, "channel '%s' (%s): %s", ch->name,
		              shmbus_kind_name(ch->p.kind), shmbus_last_error());
	return 0;
}

static int entry_find(shmbus_bus_t *bus, const char *name, uint32_t *idx)
{
	uint32_t i;

	for (i = 0; i < bus->max_channels; i++) {
		const struct sb_dirent *e = &bus->dir[i];

		/* relaxed: we hold the bus mutex, which orders every state
		 * change made under it. */
		if (atomic_load_explicit(&e->state, memory_order_relaxed) == SB_DIR_READY &&
		    strncmp(e->name, name, sizeof(e->name)) == 0) {
			*idx = i;
			return 1;
		}
	}
	return 0;
}

static int match(const struct sb_chan *ch, const struct sb_params *want, int flags)
{
	char a[96], b[96];
	int i;

	if (ch->p.kind != want->kind)
		return sb_err(SHMBUS_ETYPE, "channel '%s' exists as a %s, not a %s", ch->name,
		              shmbus_kind_name(ch->p.kind), shmbus_kind_name(want->kind));
	if (want->ndim != 0 &&
	    (want->dtype != ch->p.dtype || want->ndim != ch->p.ndim ||
	     memcmp(want->shape, ch->p.shape, want->ndim * sizeof(uint64_t)) != 0)) {
		shape_str(a, sizeof(a), ch->p.ndim, ch->p.shape);
		shape_str(b, sizeof(b), want->ndim, want->shape);
		return sb_err(SHMBUS_ETYPE,
		              "channel '%s' exists with dtype %s shape %s, asked for %s shape %s",
		              ch->name, shmbus_dtype_name(ch->p.dtype), a,
		              shmbus_dtype_name(want->dtype), b);
	}
	for (i = 0; i < SB_PARAMS && !(flags & SB_OPEN_ANY_PARAMS); i++)
		if (want->param[i] != 0 && want->param[i] != ch->p.param[i])
			return sb_err(SHMBUS_ETYPE,
			              "channel '%s' (%s) exists with parameter %d = %llu, asked for %llu",
			              ch->name, shmbus_kind_name(ch->p.kind), i,
			              (unsigned long long)ch->p.param[i],
			              (unsigned long long)want->param[i]);
	return 0;
}

static int entry_create(shmbus_bus_t *bus, const char *name, struct sb_params *want,
                        struct sb_chan *ch)
{
	const struct sb_kind_ops *ops = sb_kind_ops(want->kind);
	struct sb_dirent *e = NULL;
	uint64_t area, off, used;
	uint32_t i;
	int r;

	if (!ops)
		return sb_err(SHMBUS_EINVAL, "channel kind %s is not built into this library",
		              shmbus_kind_name(want->kind));
	/* relaxed: only stored under the bus mutex, which we hold. */
	used = atomic_load_explicit(&bus->hdr->heap_used, memory_order_relaxed);
	if (used > bus->heap_size)
		return sb_err(SHMBUS_ECORRUPT, "bus '%s': heap pointer out of range", bus->name);
	want->room = bus->heap_size - used;
	r = ops->plan(want, &area);
	if (r)
		return r;
	area = SB_ALIGN(area, SB_LINE);
	/* relaxed: under the bus mutex, like every change of state. */
	for (i = 0; i < bus->max_channels; i++)
		if (atomic_load_explicit(&bus->dir[i].state, memory_order_relaxed) == SB_DIR_FREE) {
			e = &bus->dir[i];
			break;
		}
	if (!e)
		return sb_err(SHMBUS_ENOSPC, "bus '%s': channel directory full (%u channels)",
		              bus->name, bus->max_channels);
	if (area > bus->heap_size - used)
		return sb_err(SHMBUS_ENOSPC,
		              "bus '%s': channel '%s' needs %llu bytes, the heap has %llu of %llu left; create the bus larger",
		              bus->name, name, (unsigned long long)area,
		              (unsigned long long)(bus->heap_size - used),
		              (unsigned long long)bus->heap_size);
	off = bus->heap_off + used;
	/* relaxed: under the bus mutex; lock-free readers act only on READY,
	 * published below with release. */
	SB_STEP("dir.entry_create.state");
	atomic_store_explicit(&e->state, SB_DIR_CREATING, memory_order_relaxed);
	SB_STEP("dir.entry_create.fill");
	memset(e->name, 0, sizeof(e->name));
	memcpy(e->name, name, strlen(name));
	e->kind = (uint32_t)want->kind;
	e->dtype = want->dtype;
	e->ndim = want->ndim;
	memcpy(e->shape, want->shape, sizeof(e->shape));
	e->value_size = want->value_size;
	e->off = off;
	e->size = area;
	memcpy(e->param, want->param, sizeof(e->param));
	/* relaxed (both): a unique number per entry, stored while the entry
	 * reads CREATING; the READY release below publishes it to
	 * sb_chan_valid's acquire. A handle of the entry's previous channel
	 * that reads it early sees a new number: deleted, as it is. */
	SB_STEP("dir.entry_create.generation");
	atomic_store_explicit(&e->generation,
	                      atomic_fetch_add_explicit(&bus->hdr->generation, 1,
	                                                memory_order_relaxed) + 1,
	                      memory_order_relaxed);
	/* relaxed: under the mutex; shmbus_bus_info's lock-free read is a
	 * display snapshot. */
	SB_STEP("dir.entry_create.heap_used");
	atomic_store_explicit(&bus->hdr->heap_used, used + area, memory_order_relaxed);
	SB_STEP("dir.entry_create.zero");
	memset(bus->base + off, 0, area);
	r = ops->init(bus->base + off, area, want);
	if (r) {
		/* relaxed: under the mutex, as above. */
		atomic_store_explicit(&bus->hdr->heap_used, used, memory_order_relaxed);
		/* relaxed: never READY, so no lock-free reader used it. */
		SB_STEP("dir.entry_create.state");
		atomic_store_explicit(&e->state, SB_DIR_FREE, memory_order_relaxed);
		return r;
	}
	/* release: the entry and the initialised area are complete before the
	 * entry reads READY; pairs with the acquire load in sb_chan_valid and
	 * shmbus_bus_gc (lookups also hold the mutex). */
	SB_STEP("dir.entry_create.state");
	atomic_store_explicit(&e->state, SB_DIR_READY, memory_order_release);
	return entry_load(bus, (uint32_t)(e - bus->dir), ch);
}

int sb_chan_open(shmbus_bus_t *bus, const char *name, struct sb_params *want,
                 int flags, struct sb_chan *ch)
{
	uint32_t idx;
	int r;

	if (!bus || !ch || !want)
		return sb_err(SHMBUS_EINVAL, "NULL argument");
	r = shmbus_name_check(name);
	if (r)
		return sb_err(r, "channel %s", shmbus_last_error());
	r = sb_bus_lock(bus);
	if (r)
		return r;
	if (entry_find(bus, name, &idx)) {
		r = entry_load(bus, idx, ch);
		if (!r)
			r = match(ch, want, flags);
	} else if (flags & SB_OPEN_CREATE) {
		r = entry_create(bus, name, want, ch);
	} else {
		r = sb_err(SHMBUS_ENOENT, "bus '%s' has no channel '%s'", bus->name, name);
	}
	sb_bus_unlock(bus);
	return r;
}

int sb_chan_valid(const struct sb_chan *ch)
{
	const struct sb_dirent *e = &ch->bus->dir[ch->index];

	/* acquire: pairs with the release store of READY in entry_create, so
	 * the generation read next is the one stored before that READY or a
	 * later one (relaxed: the entry was deleted and made again since,
	 * and a changed number says so). */
	return atomic_load_explicit(&e->state, memory_order_acquire) == SB_DIR_READY &&
	       atomic_load_explicit(&e->generation, memory_order_relaxed) == ch->generation;
}

/* Describe ch in the caller's struct, at most its size_of bytes. */
static void fill_info(struct sb_chan *ch, shmbus_channel_info_t *out)
{
	const struct sb_kind_ops *ops = sb_kind_ops(ch->p.kind);
	shmbus_channel_info_t full, *info = &full;

	memset(info, 0, sizeof(*info));
	info->size_of = sizeof(*info);
	info->kind = ch->p.kind;
	memcpy(info->name, ch->name, sizeof(info->name));
	info->dtype = ch->p.dtype;
	info->ndim = ch->p.ndim;
	memcpy(info->shape, ch->p.shape, sizeof(info->shape));
	info->value_size = ch->p.value_size;
	info->area_size = ch->area_size;
	if (ops && ops->info)
		ops->info(ch, info);
	sb_out_copy(out, info, sizeof(*info));
}

int shmbus_channel_list(const shmbus_bus_t *cbus, shmbus_channel_info_t *infos, size_t cap,
                        size_t *count)
{
	/* The handle is only read; ch below is a local view of an entry. */
	shmbus_bus_t *bus = (shmbus_bus_t *)cbus;
	struct sb_chan ch;
	uint32_t stride = 0;
	size_t n = 0;
	uint32_t i;
	int r;

	if (!bus || !count || (!infos && cap))
		return sb_err(SHMBUS_EINVAL, "shmbus_channel_list: NULL argument");
	if (cap) {
		/* infos[0].size_of is the caller's entry size: each entry is
		 * written at that stride, at most that many bytes. */
		if ((r = sb_out_check(infos, "shmbus_channel_list: infos[0]")) != 0)
			return r;
		stride = infos[0].size_of;
	}
	r = sb_bus_lock(bus);
	if (r)
		return r;
	for (i = 0; i < bus->max_channels; i++) {
		/* relaxed: under the bus mutex. */
		if (atomic_load_explicit(&bus->dir[i].state, memory_order_relaxed) != SB_DIR_READY)
			continue;
		if (entry_load(bus, i, &ch) != 0) {
			r = SHMBUS_ECORRUPT;
			break;
		}
		if (n < cap) {
			shmbus_channel_info_t *e =
			        (shmbus_channel_info_t *)((uint8_t *)infos + n * stride);

			memcpy(e, &stride, sizeof(stride));
			fill_info(&ch, e);
		}
		n++;
	}
	sb_bus_unlock(bus);
	*count = n;
	if (!r && sb_map_damaged(bus->base))
		r = sb_err(SHMBUS_ECORRUPT, "bus '%s' was truncated while mapped", bus->name);
	return r;
}

int shmbus_channel_info(const shmbus_bus_t *cbus, const char *name, shmbus_channel_info_t *info)
{
	/* The handle is only read; ch below is a local view of the entry. */
	shmbus_bus_t *bus = (shmbus_bus_t *)cbus;
	struct sb_chan ch;
	uint32_t idx;
	int r;

	if (!bus || !info)
		return sb_err(SHMBUS_EINVAL, "shmbus_channel_info: NULL argument");
	if ((r = sb_out_check(info, "shmbus_channel_info: info")) != 0)
		return r;
	r = shmbus_name_check(name);
	if (r)
		return sb_err(r, "channel %s", shmbus_last_error());
	r = sb_bus_lock(bus);
	if (r)
		return r;
	if (!entry_find(bus, name, &idx))
		r = sb_err(SHMBUS_ENOENT, "bus '%s' has no channel '%s'", bus->name, name);
	else
		r = entry_load(bus, idx, &ch);
	sb_bus_unlock(bus);
	if (!r)
		fill_info(&ch, info);
	return r;
}

int shmbus_channel_delete(shmbus_bus_t *bus, const char *name)
{
	uint32_t idx;
	int r;

	if (!bus)
		return sb_err(SHMBUS_EINVAL, "shmbus_channel_delete: bus is NULL");
	r = shmbus_name_check(name);
	if (r)
		return sb_err(r, "channel %s", shmbus_last_error());
	r = sb_bus_lock(bus);
	if (r)
		return r;
	if (!entry_find(bus, name, &idx)) {
		r = sb_err(SHMBUS_ENOENT, "bus '%s' has no channel '%s'", bus->name, name);
	} else {
		/* The entry is free for reuse at once; its area is not (the heap
		 * only grows), so handles still open keep valid memory and notice
		 * the deletion through sb_chan_valid (state or generation). */
		SB_STEP("dir.channel_delete.state");
		/* release: under the mutex; a lock-free sb_chan_valid that
		 * acquires FREE sees the entry gone (it needs no data). */
		atomic_store_explicit(&bus->dir[idx].state, SB_DIR_FREE, memory_order_release);
		/* relaxed: a change counter; the mutex orders it for lockers. */
		SB_STEP("dir.channel_delete.generation");
		atomic_fetch_add_explicit(&bus->hdr->generation, 1, memory_order_relaxed);
	}
	sb_bus_unlock(bus);
	return r;
}

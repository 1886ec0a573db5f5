/*
 * array.c -- array channels: a fixed-length typed array in shared memory
 * with atomic element operations.
 *
 * The area is one control line (magic, dtype, length; immutable after
 * creation) followed by the elements, naturally aligned, starting on a
 * cache line. There is no lock: every element operation is one atomic
 * instruction on the element itself -- a load, a store, a fetch-add, an
 * exchange or a compare-and-swap of the element's width. Floating-point
 * add is a compare-and-swap loop on the element's bits: read the bits,
 * compute old + delta, swap if the bits are unchanged, else retry with the
 * bits the failed swap returned; every retry means another process's add
 * landed, so the loop always makes progress. Element reads and writes are
 * never torn (each is a single aligned access of at most 8 bytes). Bulk
 * access through shmbus_array_data() is plain memory: it is as atomic as
 * the caller's own loads and stores.
 *
 * Integer operations wrap around at the element's width, as C unsigned
 * arithmetic does; values passed as int64 are converted to the element
 * type, and values handed back are sign- or zero-extended from it.
 */
#include <stdlib.h>
#include <string.h>

#include "sync.h"

#define SB_ARRAY_MAGIC 0x59525241u /* "ARRY" */

struct sb_array_ctl {
	uint32_t magic;
	int32_t dtype;
	uint64_t length;
	uint8_t pad[SB_LINE - 16];
};
_Static_assert(sizeof(struct sb_array_ctl) == SB_LINE, "array control is a line");

struct shmbus_array {
	struct sb_chan ch;
	uint8_t *data;
	uint64_t len;
	int dtype;
	uint32_t esize;
};

static int array_plan(struct sb_params *p, uint64_t *area)
{
	uint64_t bytes;
	int r;

	if (p->ndim != 1)
		return sb_err(SHMBUS_EINVAL, "array needs a dtype and a length > 0");
	if ((r = sb_shape_bytes(p->dtype, 1, p->shape, &bytes)) != 0)
		return sb_err(r, "array: %s", shmbus_last_error());
	p->value_size = bytes;
	*area = sizeof(struct sb_array_ctl) + SB_ALIGN(bytes, SB_LINE);
	return 0;
}

static int array_init(uint8_t *area, uint64_t size, const struct sb_params *p)
{
	struct sb_array_ctl *c = (struct sb_array_ctl *)area;

	(void)size;
	c->magic = SB_ARRAY_MAGIC;
	c->dtype = p->dtype;
	c->length = p->shape[0];
	return 0;
}

static int array_check(const uint8_t *area, uint64_t size, const struct sb_params *p)
{
	const struct sb_array_ctl *c = (const struct sb_array_ctl *)area;

	if (p->ndim != 1 || size < sizeof(*c) || size - sizeof(*c) < p->value_size)
		return sb_err(SHMBUS_ECORRUPT, "array area of %llu bytes for %llu bytes of elements",
		              (unsigned long long)size, (unsigned long long)p->value_size);
	if (c->magic != SB_ARRAY_MAGIC || c->dtype != p->dtype || c->length != p->shape[0])
		return sb_err(SHMBUS_ECORRUPT, "array control block disagrees with the directory");
	return 0;
}

static void array_info(struct sb_chan *ch, shmbus_channel_info_t *info)
{
	info->capacity = ch->p.shape[0];
}

const struct sb_kind_ops sb_array_ops = {
	.plan = array_plan,
	.init = array_init,
	.check = array_check,
	.info = array_info,
};

void shmbus_array_opts_init(shmbus_array_opts_t *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->size_of = sizeof(*opts);
	opts->create = 1;
	opts->dtype = SHMBUS_INT64;
}

static void array_opts_init(void *opts)
{
	shmbus_array_opts_init(opts);
}

static int array_opts_check(void *opts, const char *name, struct sb_params *want)
{
	shmbus_array_opts_t *o = opts;

	if (o->reserved_)
		return sb_err(SHMBUS_EINVAL, "array '%s' options: reserved_ is %u, not 0", name,
		              o->reserved_);
	if (o->length == 0) {
		/* Length 0 opens an existing array of any type; it cannot
		 * create (want->ndim 0 matches any dtype and shape). */
		o->create = 0;
		return 0;
	}
	if (!shmbus_dtype_name(o->dtype))
		return sb_err(SHMBUS_EINVAL, "array '%s': invalid dtype %d", name, o->dtype);
	want->dtype = o->dtype;
	want->ndim = 1;
	want->shape[0] = o->length;
	return 0;
}

/* 1.0's layout, the smallest size_of accepted. */
#define SB_ARRAY_OPTS_1_0 24u
_Static_assert(sizeof(shmbus_array_opts_t) == SB_ARRAY_OPTS_1_0, "1.0 is the layout now");

static const struct sb_open_desc array_desc = {
	.kind = SHMBUS_KIND_ARRAY,
	.size = sizeof(shmbus_array_opts_t),
	.size_1_0 = SB_ARRAY_OPTS_1_0,
	.create_off = offsetof(shmbus_array_opts_t, create),
	.init = array_opts_init,
	.check = array_opts_check,
};

int shmbus_array_open(shmbus_bus_t *bus, const char *name, const shmbus_array_opts_t *opts,
                      shmbus_array_t **out)
{
	shmbus_array_opts_t o;
	shmbus_array_t *a;
	int r;

	if (!bus || !out)
		return sb_err(SHMBUS_EINVAL, "shmbus_array_open: NULL argument");
	*out = NULL;
	if (!(a = calloc(1, sizeof(*a))))
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	shmbus_array_opts_init(&o);
	r = sb_kind_open(bus, name, &array_desc, opts, &o, &a->ch);
	if (r == SHMBUS_ENOENT && o.length == 0)
		sb_err(r, "array '%s' does not exist; give a dtype and a length to create it",
		       name);
	if (r) {
		free(a);
		return r;
	}
	a->data = a->ch.area + sizeof(struct sb_array_ctl);
	a->len = a->ch.p.shape[0];
	a->dtype = a->ch.p.dtype;
	a->esize = (uint32_t)shmbus_dtype_size(a->dtype);
	*out = a;
	return 0;
}

int shmbus_array_close(shmbus_array_t *a)
{
	free(a);
	return 0;
}

uint64_t shmbus_array_length(const shmbus_array_t *a)
{
	return a ? a->len : 0;
}

int shmbus_array_dtype(const shmbus_array_t *a)
{
	return a ? a->dtype : SHMBUS_EINVAL;
}

void *shmbus_array_data(shmbus_array_t *a)
{
	return a ? a->data : NULL;
}

static int bad_index(const shmbus_array_t *a, uint64_t i)
{
	if (!a)
		return sb_err(SHMBUS_EINVAL, "array is NULL");
	return sb_err(SHMBUS_EINVAL, "index %llu out of range for array '%s' of length %llu",
	              (unsigned long long)i, a->ch.name, (unsigned long long)a->len);
}

static int is_float(int dtype)
{
	return dtype == SHMBUS_FLOAT32 || dtype == SHMBUS_FLOAT64;
}

static int wrong_type(shmbus_array_t *a, const char *op)
{
	return sb_err(SHMBUS_ETYPE, "array '%s' has dtype %s; %s needs %s", a->ch.name,
	              shmbus_dtype_name(a->dtype), op,
	              is_float(a->dtype) ? "an integer dtype" : "a float dtype");
}

#define EL(a, i, T) ((T *)(void *)((a)->data + (i) * sizeof(T)))

int shmbus_array_get(const shmbus_array_t *a, uint64_t i, void *value)
{
	if (!a || i >= a->len || !value)
		return value ? bad_index(a, i) : sb_err(SHMBUS_EINVAL, "value is NULL");
	/* relaxed: a single aligned load is never torn; no other data is
	 * published through an element. */
	switch (a->esize) {
	case 1: { uint8_t v = __atomic_load_n(EL(a, i, uint8_t), __ATOMIC_RELAXED);
		memcpy(value, &v, 1); break; }
	case 2: { uint16_t v = __atomic_load_n(EL(a, i, uint16_t), __ATOMIC_RELAXED);
		memcpy(value, &v, 2); break; }
	case 4: { uint32_t v = __atomic_load_n(EL(a, i, uint32_t), __ATOMIC_RELAXED);
		memcpy(value, &v, 4); break; }
	default: { uint64_t v = __atomic_load_n(EL(a, i, uint64_t), __ATOMIC_RELAXED);
		memcpy(value, &v, 8); break; }
	}
	return 0;
}

int shmbus_array_set(shmbus_array_t *a, uint64_t i, const void *value)
{
	if (!a || i >= a->len || !value)
		return value ? bad_index(a, i) : sb_err(SHMBUS_EINVAL, "value is NULL");
	/* relaxed: a single aligned store, pairs with the loads in get. */
	switch (a->esize) {
	case 1: { uint8_t v; memcpy(&v, value, 1);
		SB_STEP("array.set.element");
		__atomic_store_n(EL(a, i, uint8_t), v, __ATOMIC_RELAXED); break; }
	case 2: { uint16_t v; memcpy(&v, value, 2);
		SB_STEP("array.set.element");
		__atomic_store_n(EL(a, i, uint16_t), v, __ATOMIC_RELAXED); break; }
	case 4: { uint32_t v; memcpy(&v, value, 4);
		SB_STEP("array.set.element");
		__atomic_store_n(EL(a, i, uint32_t), v, __ATOMIC_RELAXED); break; }
	default: { uint64_t v; memcpy(&v, value, 8);
		SB_STEP("array.set.element");
		__atomic_store_n(EL(a, i, uint64_t), v, __ATOMIC_RELAXED); break; }
	}
	return 0;
}

/* One integer read-modify-write of every width and signedness. OP is
 * fetch_add or exchange; the old value is widened as its type says.
 * seq_cst: each element is its own total order of updates, and callers
 * may use an element as a flag that publishes other writes. */
#define INT_RMW(a, i, OP, v, oldp)                                                   \
	switch ((a)->dtype) {                                                        \
	case SHMBUS_INT8: *(oldp) = __atomic_##OP(EL(a, i, int8_t), (int8_t)(v), __ATOMIC_SEQ_CST); break; \
	case SHMBUS_INT16: *(oldp) = __atomic_##OP(EL(a, i, int16_t), (int16_t)(v), __ATOMIC_SEQ_CST); break; \
	case SHMBUS_UINT16: *(oldp) = __atomic_##OP(EL(a, i, uint16_t), (uint16_t)(v), __ATOMIC_SEQ_CST); break; \
	case SHMBUS_INT32: *(oldp) = __atomic_##OP(EL(a, i, int32_t), (int32_t)(v), __ATOMIC_SEQ_CST); break; \
	case SHMBUS_UINT32: *(oldp) = __atomic_##OP(EL(a, i, uint32_t), (uint32_t)(v), __ATOMIC_SEQ_CST); break; \
	case SHMBUS_INT64: *(oldp) = __atomic_##OP(EL(a, i, int64_t), (int64_t)(v), __ATOMIC_SEQ_CST); break; \
	case SHMBUS_UINT64: *(oldp) = (int64_t)__atomic_##OP(EL(a, i, uint64_t), (uint64_t)(v), __ATOMIC_SEQ_CST); break; \
	default: /* uint8, bool, bytes */                                            \
		*(oldp) = __atomic_##OP(EL(a, i, uint8_t), (uint8_t)(v), __ATOMIC_SEQ_CST); break; \
	}

int shmbus_array_add_i64(shmbus_array_t *a, uint64_t i, int64_t delta, int64_t *old)
{
	int64_t o;

	if (!a || i >= a->len)
		return bad_index(a, i);
	if (is_float(a->dtype))
		return wrong_type(a, "add_i64");
	SB_STEP("array.add_i64.element");
	INT_RMW(a, i, fetch_add, delta, &o);
	if (old)
		*old = o;
	return 0;
}

int shmbus_array_xchg_i64(shmbus_array_t *a, uint64_t i, int64_t value, int64_t *old)
{
	int64_t o;

	if (!a || i >= a->len)
		return bad_index(a, i);
	if (is_float(a->dtype))
		return wrong_type(a, "xchg_i64");
	SB_STEP("array.xchg_i64.element");
	INT_RMW(a, i, exchange_n, value, &o);
	if (old)
		*old = o;
	return 0;
}

/* seq_cst on success (as INT_RMW), relaxed on failure: the caller only
 * learns the current value. */
#define INT_CAS(a, i, T, expp, des, okp)                                             \
	do {                                                                         \
		T e_ = (T)*(expp);                                                   \
		*(okp) = __atomic_compare_exchange_n(EL(a, i, T), &e_, (T)(des), 0,  \
		                                     __ATOMIC_SEQ_CST, __ATOMIC_RELAXED); \
		*(expp) = (int64_t)e_;                                               \
	} while (0)

int shmbus_array_cas_i64(shmbus_array_t *a, uint64_t i, int64_t *expected, int64_t desired)
{
	int ok;

	if (!a || i >= a->len)
		return bad_index(a, i);
	if (!expected)
		return sb_err(SHMBUS_EINVAL, "expected is NULL");
	if (is_float(a->dtype))
		return wrong_type(a, "cas_i64");
	SB_STEP("array.cas_i64.element");
	switch (a->dtype) {
	case SHMBUS_INT8: INT_CAS(a, i, int8_t, expected, desired, &ok); break;
	case SHMBUS_INT16: INT_CAS(a, i, int16_t, expected, desired, &ok); break;
	case SHMBUS_UINT16: INT_CAS(a, i, uint16_t, expected, desired, &ok); break;
	case SHMBUS_INT32: INT_CAS(a, i, int32_t, expected, desired, &ok); break;
	case SHMBUS_UINT32: INT_CAS(a, i, uint32_t, expected, desired, &ok); break;
	case SHMBUS_INT64: INT_CAS(a, i, int64_t, expected, desired, &ok); break;
	case SHMBUS_UINT64: INT_CAS(a, i, uint64_t, expected, desired, &ok); break;
	default: INT_CAS(a, i, uint8_t, expected, desired, &ok); break;
	}
	return ok ? 0 : SHMBUS_EAGAIN;
}

int shmbus_array_add_f64(shmbus_array_t *a, uint64_t i, double delta, double *old)
{
	if (!a || i >= a->len)
		return bad_index(a, i);
	if (!is_float(a->dtype))
		return wrong_type(a, "add_f64");
	if (a->dtype == SHMBUS_FLOAT64) {
		uint64_t *p = EL(a, i, uint64_t);
		/* relaxed: the CAS below checks the bits. */
		uint64_t bits = __atomic_load_n(p, __ATOMIC_RELAXED), nbits;
		double o, n;

		do {
			memcpy(&o, &bits, 8);
			n = o + delta;
			memcpy(&nbits, &n, 8);
			/* seq_cst: as INT_RMW; a failure reloads bits, meaning
			 * another add landed, so the loop makes progress. */
			SB_STEP("array.add_f64.element");
		} while (!__atomic_compare_exchange_n(p, &bits, nbits, 1, __ATOMIC_SEQ_CST,
		                                      __ATOMIC_RELAXED));
		if (old)
			*old = o;
	} else {
		uint32_t *p = EL(a, i, uint32_t);
		/* relaxed: the CAS below checks the bits. */
		uint32_t bits = __atomic_load_n(p, __ATOMIC_RELAXED), nbits;
		float o, n;

		do {
			memcpy(&o, &bits, 4);
			n = (float)((double)o + delta);
			memcpy(&nbits, &n, 4);
			/* seq_cst: as above. */
			SB_STEP("array.add_f64.element");
		} while (!__atomic_compare_exchange_n(p, &bits, nbits, 1, __ATOMIC_SEQ_CST,
		                                      __ATOMIC_RELAXED));
		if (old)
			*old = o;
	}
	return 0;
}

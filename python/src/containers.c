/*
 * containers.c -- Array (typed elements with atomic operations), the raw
 * bytes dict and list the Python Dict/List are built on, and the
 * "pending add" that makes `c[k] += v` one atomic operation.
 *
 * Pending add. `c[k] += v` runs three steps: x = c[k]; x = x + v (through
 * x.__iadd__); c[k] = x. A container's __getitem__ returns numbers as
 * instances of two small subclasses of int and float ("loaded" values)
 * and notes, per thread, (the loaded object, the container, the key).
 * The loaded type's __iadd__/__isub__, called on exactly that object,
 * returns a new loaded number holding x + v and notes it as pending with
 * the delta v. When __setitem__ receives exactly that pending object for
 * the same container and key, it applies the delta with one atomic add in
 * shared memory instead of storing the value, so concurrent `+=` from any
 * number of processes never lose an update. Anything else is a plain
 * store. The loaded numbers are ordinary ints and floats to every other
 * piece of code.
 *
 * Dict and list operations run with the GIL released (their lock may be
 * held by another process), and an update callback written in Python
 * takes the GIL back inside: a thread holding the GIL never waits for a
 * container lock, so the two locks cannot deadlock.
 */
#include "sbpy.h"

#include <structmember.h>
#include <string.h>
#include <float.h>
#include <math.h>

/* The dict and list parts of the library may be absent from an older
 * build; they are looked up weakly and reported as NotImplementedError. */
#pragma weak shmbus_dict_open
#pragma weak shmbus_dict_close
#pragma weak shmbus_dict_set
#pragma weak shmbus_dict_get
#pragma weak shmbus_dict_del
#pragma weak shmbus_dict_len
#pragma weak shmbus_dict_update
#pragma weak shmbus_dict_next
#pragma weak shmbus_list_open
#pragma weak shmbus_list_close
#pragma weak shmbus_list_len
#pragma weak shmbus_list_append
#pragma weak shmbus_list_insert
#pragma weak shmbus_list_get
#pragma weak shmbus_list_set
#pragma weak shmbus_list_pop
#pragma weak shmbus_list_update
#pragma weak shmbus_list_clear

/* ====================================================================== */
/* Pending add                                                            */
/* ====================================================================== */

static PyTypeObject LoadedIntType, LoadedFloatType;

struct pending {
	PyObject *loaded;       /* the object the last __getitem__ returned */
	PyObject *owner, *key;
	PyObject *pending;      /* the object __iadd__ returned */
	PyObject *delta;
};

static _Thread_local struct pending rec;

static void rec_clear(void)
{
	Py_CLEAR(rec.loaded);
	Py_CLEAR(rec.owner);
	Py_CLEAR(rec.key);
	Py_CLEAR(rec.pending);
	Py_CLEAR(rec.delta);
}

/* A loaded number of value v (an exact int or float); other values as they are. */
static PyObject *make_loaded(PyObject *v)
{
	if (PyFloat_CheckExact(v)) {
		PyObject *o = LoadedFloatType.tp_alloc(&LoadedFloatType, 0);

		if (o)
			((PyFloatObject *)o)->ob_fval = PyFloat_AS_DOUBLE(v);
		return o;
	}
	if (PyLong_CheckExact(v)) {
		PyObject *args, *o;

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
		/* 3.11's int layout: copy the digits as int's own subtype_new does. */
		Py_ssize_t n = Py_SIZE(v) < 0 ? -Py_SIZE(v) : Py_SIZE(v);

		o = LoadedIntType.tp_alloc(&LoadedIntType, n);
		if (!o)
			return NULL;
		Py_SET_SIZE(o, Py_SIZE(v));
		memcpy(((PyLongObject *)o)->ob_digit, ((PyLongObject *)v)->ob_digit,
		       (size_t)n * sizeof(digit));
		return o;
#endif
		args = PyTuple_Pack(1, v);

		if (!args)
			return NULL;
		o = PyLong_Type.tp_new(&LoadedIntType, args, NULL);
		Py_DECREF(args);
		return o;
	}
	Py_INCREF(v);
	return v;
}

/* Steals v; returns the loaded form noted for (owner, key). */
PyObject *sbpy_loaded(PyObject *v, PyObject *owner, PyObject *key)
{
	PyObject *o;

	if (!v)
		return NULL;
	if (!PyLong_CheckExact(v) && !PyFloat_CheckExact(v))
		return v;
	o = make_loaded(v);
	Py_DECREF(v);
	if (!o)
		return NULL;
	rec_clear();
	Py_INCREF(o);
	rec.loaded = o;
	Py_INCREF(owner);
	rec.owner = owner;
	Py_INCREF(key);
	rec.key = key;
	return o;
}

/* If value is the pending result of `owner[key] += delta`, a new reference
 * to delta (and the note is cleared); else NULL without an exception. */
PyObject *sbpy_take_pending(PyObject *owner, PyObject *key, PyObject *value)
{
	PyObject *d;
	int eq;

	if (!rec.pending || value != rec.pending || owner != rec.owner)
		return NULL;
	eq = key == rec.key ? 1 : PyObject_RichCompareBool(key, rec.key, Py_EQ);
	if (eq <= 0) {
		PyErr_Clear();
		return NULL;
	}
	d = rec.delta;
	rec.delta = NULL;
	rec_clear();
	return d;
}

static PyObject *loaded_iop(PyObject *a, PyObject *b, int sub)
{
	PyObject *plain, *res, *out, *delta;

	if (a != rec.loaded || !(PyLong_Check(b) || PyFloat_Check(b)) || PyBool_Check(b))
		Py_RETURN_NOTIMPLEMENTED;  /* plain arithmetic */
	res = NULL;
	if (PyLong_Check(a) && PyLong_CheckExact(b)) {
		int o1 = 0, o2 = 0;
		long long x = PyLong_AsLongLongAndOverflow(a, &o1), y = PyLong_AsLongLongAndOverflow(b, &o2), z;

		if (!o1 && !o2 && !(sub ? __builtin_sub_overflow(x, y, &z) : __builtin_add_overflow(x, y, &z)))
			res = PyLong_FromLongLong(z);
	}
	if (!res) {
		plain = PyFloat_Check(a) ? PyFloat_FromDouble(PyFloat_AS_DOUBLE(a)) : PyNumber_Long(a);
		if (!plain)
			return NULL;
		res = sub ? PyNumber_Subtract(plain, b) : PyNumber_Add(plain, b);
		Py_DECREF(plain);
	}
	if (!res)
		return NULL;
	out = make_loaded(res);
	Py_DECREF(res);
	if (!out)
		return NULL;
	delta = sub ? PyNumber_Negative(b) : (Py_INCREF(b), b);
	if (!delta) {
		Py_DECREF(out);
		return NULL;
	}
	Py_CLEAR(rec.loaded);
	Py_XSETREF(rec.delta, delta);
	Py_INCREF(out);
	Py_XSETREF(rec.pending, out);
	return out;
}

static PyObject *loaded_iadd(PyObject *a, PyObject *b)
{
	return loaded_iop(a, b, 0);
}

static PyObject *loaded_isub(PyObject *a, PyObject *b)
{
	return loaded_iop(a, b, 1);
}

static PyObject *loaded_int_repr(PyObject *self)
{
	return PyLong_Type.tp_repr(self);
}

static PyObject *loaded_float_repr(PyObject *self)
{
	return PyFloat_Type.tp_repr(self);
}

static PyObject *loaded_reduce(PyObject *self, PyObject *unused)
{
	PyObject *plain = PyFloat_Check(self) ? PyFloat_FromDouble(PyFloat_AS_DOUBLE(self))
	                                      : PyNumber_Long(self);

	(void)unused;
	if (!plain)
		return NULL;
	return Py_BuildValue("(O(N))", PyFloat_Check(self) ? (PyObject *)&PyFloat_Type
	                                                   : (PyObject *)&PyLong_Type, plain);
}

static PyNumberMethods loaded_as_number = {
	.nb_inplace_add = loaded_iadd,
	.nb_inplace_subtract = loaded_isub,
};

static PyMethodDef loaded_methods[] = {
	{"__reduce__", loaded_reduce, METH_NOARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static PyTypeObject LoadedIntType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus._LoadedInt",
	.tp_repr = loaded_int_repr,
	.tp_as_number = &loaded_as_number,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "An int read from a shared container (so that c[k] += v is atomic).",
	.tp_methods = loaded_methods,
};

static PyTypeObject LoadedFloatType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus._LoadedFloat",
	.tp_repr = loaded_float_repr,
	.tp_as_number = &loaded_as_number,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A float read from a shared container (so that c[k] += v is atomic).",
	.tp_methods = loaded_methods,
};

static PyObject *mod_loaded(PyObject *m, PyObject *const *args, Py_ssize_t n)
{
	(void)m;
	if (n != 3) {
		PyErr_SetString(PyExc_TypeError, "_loaded(value, owner, key)");
		return NULL;
	}
	Py_INCREF(args[0]);
	return sbpy_loaded(args[0], args[1], args[2]);
}

static PyObject *mod_take_pending(PyObject *m, PyObject *const *args, Py_ssize_t n)
{
	PyObject *d;

	(void)m;
	if (n != 3) {
		PyErr_SetString(PyExc_TypeError, "_take_pending(owner, key, value)");
		return NULL;
	}
	d = sbpy_take_pending(args[0], args[1], args[2]);
	if (d || PyErr_Occurred())
		return d;
	Py_RETURN_NONE;
}

/* ====================================================================== */
/* Array                                                                  */
/* ====================================================================== */

typedef struct {
	sbpy_child h;
	shmbus_array_t *a;
	PyObject *name;
	int dtype;
	Py_ssize_t len;
} sbpy_array;

PyTypeObject sbpy_ArrayType;

static void array_close_fn(sbpy_child *c)
{
	sbpy_array *a = (sbpy_array *)c;

	if (sbpy_child_foreign(c))
		a->a = NULL;  /* forked copy: forget, do not close */

	if (a->a) {
		shmbus_array_close(a->a);
		a->a = NULL;
	}
	sbpy_child_detach(c);
}

static int array_check(sbpy_array *a)
{
	return sbpy_closed(a->a, "array");
}

PyObject *sbpy_bus_array(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "dtype", "length", "create", NULL};
	sbpy_bus *bus = (sbpy_bus *)self;
	const char *cname;
	PyObject *name, *dtype_o = Py_None;
	Py_ssize_t length = 0;
	shmbus_array_opts_t o;
	shmbus_array_t *ah;
	sbpy_array *a;
	int create = 1, dtype = -1, r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "U|Onp:array", kwlist, &name, &dtype_o, &length,
	                                 &create))
		return NULL;
	if (sbpy_closed(bus->bus, "bus") < 0)
		return NULL;
	if (length < 0) {
		sbpy_fail(SHMBUS_EINVAL, "array %R: length %zd must be >= 0", name, length);
		return NULL;
	}
	if (dtype_o != Py_None && (dtype = sbpy_dtype(dtype_o)) < 0)
		return NULL;
	if (dtype < 0 && length > 0)
		dtype = SHMBUS_INT64;
	if (!(cname = sbpy_name_arg(name, "channel")))
		return NULL;
	shmbus_array_opts_init(&o);
	o.create = create;
	o.length = (uint64_t)length;
	if (dtype >= 0)
		o.dtype = dtype;
	if ((r = shmbus_array_open(bus->bus, cname, &o, &ah)))
		return sbpy_raise(r);
	/* A dtype named without a length must be the array's (the library
	 * takes any type then). */
	if (dtype >= 0 && length == 0 && shmbus_array_dtype(ah) != dtype) {
		sbpy_fail(SHMBUS_ETYPE, "array %R has dtype %s, asked for %s", name,
		          shmbus_dtype_name(shmbus_array_dtype(ah)), shmbus_dtype_name(dtype));
		shmbus_array_close(ah);
		return NULL;
	}
	a = PyObject_New(sbpy_array, &sbpy_ArrayType);
	if (!a) {
		shmbus_array_close(ah);
		return NULL;
	}
	a->h.weaklist = NULL;
	a->a = ah;
	Py_INCREF(name);
	a->name = name;
	a->dtype = shmbus_array_dtype(ah);
	a->len = (Py_ssize_t)shmbus_array_length(ah);
	sbpy_child_attach(&a->h, bus, array_close_fn);
	return (PyObject *)a;
}

static Py_ssize_t array_len(PyObject *self)
{
	sbpy_array *a = (sbpy_array *)self;

	if (array_check(a) < 0)
		return -1;
	return a->len;
}

static int norm_index(sbpy_array *a, Py_ssize_t *i)
{
	if (*i < 0)
		*i += a->len;
	if (*i < 0 || *i >= a->len) {
		PyErr_Format(PyExc_IndexError, "array %R index out of range (length %zd)", a->name,
		             a->len);
		return -1;
	}
	return 0;
}

static PyObject *elem_get(sbpy_array *a, Py_ssize_t i)
{
	uint64_t buf = 0;
	int r;

	if ((r = shmbus_array_get(a->a, (uint64_t)i, &buf)))
		return sbpy_raise(r);
	return sbpy_unpack(a->dtype, &buf);
}

static int is_float(int dtype)
{
	return dtype == SHMBUS_FLOAT32 || dtype == SHMBUS_FLOAT64;
}

/* An element's bits as the int64 the *_i64 calls use (sign- or
 * zero-extended as its dtype; uint64 as its two's complement bits). */
static int64_t elem_i64(int dtype, const void *p)
{
	switch (dtype) {
	case SHMBUS_INT8: return *(const int8_t *)p;
	case SHMBUS_INT16: return *(const int16_t *)p;
	case SHMBUS_UINT16: return *(const uint16_t *)p;
	case SHMBUS_INT32: return *(const int32_t *)p;
	case SHMBUS_UINT32: return *(const uint32_t *)p;
	case SHMBUS_INT64: case SHMBUS_UINT64: return *(const int64_t *)p;
	default: return *(const uint8_t *)p;
	}
}

static PyObject *i64_to_py(int dtype, int64_t v)
{
	if (dtype == SHMBUS_BOOL)
		return PyBool_FromLong(v != 0);
	return dtype == SHMBUS_UINT64 ? PyLong_FromUnsignedLongLong((uint64_t)v)
	                              : PyLong_FromLongLong(v);
}

/* A Python value as the int64 bits of one element of the array's dtype,
 * under the conversion rule (sbpy_pack): out of range is refused. */
static int value_i64(sbpy_array *a, PyObject *v, int64_t *out)
{
	uint64_t buf = 0;

	if (sbpy_pack(a->dtype, v, &buf) < 0)
		return -1;
	*out = elem_i64(a->dtype, &buf);
	return 0;
}

/* cur + delta for the dtype, or -1 if the sum leaves its range. */
static int checked_sum(int dtype, int64_t cur, int64_t delta, int64_t *sum)
{
	int64_t lo, hi;

	if (dtype == SHMBUS_UINT64) {
		uint64_t u = (uint64_t)cur, r;

		if (delta >= 0 ? __builtin_add_overflow(u, (uint64_t)delta, &r)
		               : u < -(uint64_t)delta)
			return -1;
		*sum = (int64_t)(u + (uint64_t)delta);
		return 0;
	}
	if (__builtin_add_overflow(cur, delta, sum) || sbpy_range_i64(dtype, &lo, &hi) < 0)
		return -1;
	return *sum < lo || *sum > hi ? -1 : 0;
}

/* Atomic add; *old gets the previous value as a Python number if old != NULL.
 * Integer elements never wrap: the add is a compare-and-swap loop that
 * refuses a sum outside the dtype (InvalidArgument, element unchanged). A
 * failed CAS hands back the element's current value (another process added
 * meanwhile), so each retry starts from what is really there; the
 * successful CAS (seq_cst, in shmbus_array_cas_i64) is the add's one
 * atomic step. */
static int elem_add(sbpy_array *a, Py_ssize_t i, PyObject *delta, PyObject **old)
{
	char kind = (char)sbpy_number_kind(delta);
	int r;

	if (is_float(a->dtype)) {
		double d, o = 0;

		if (!kind)
			return sbpy_fail_int(SHMBUS_ETYPE, "array %R holds %s: add a number, not %.100s",
			                     a->name, shmbus_dtype_name(a->dtype),
			                     Py_TYPE(delta)->tp_name);
		d = PyFloat_AsDouble(delta);
		if (d == -1.0 && PyErr_Occurred()) {
			if (!PyErr_ExceptionMatches(PyExc_OverflowError))
				return -1;
			PyErr_Clear();
			return sbpy_fail_int(SHMBUS_EINVAL, "delta %R does not fit in a float", delta);
		}
		/* The rule of every write: a finite value beyond float32's range
		 * is refused, not stored as inf. */
		if (a->dtype == SHMBUS_FLOAT32 && isfinite(d) && fabs(d) > FLT_MAX)
			return sbpy_fail_int(SHMBUS_EINVAL, "array %R holds float32: delta %R is beyond its range",
			                     a->name, delta);
		if ((r = shmbus_array_add_f64(a->a, (uint64_t)i, d, &o)))
			return sbpy_raise_int(r);
		if (old)
			*old = PyFloat_FromDouble(o);
	} else if (a->dtype == SHMBUS_BOOL || a->dtype == SHMBUS_BYTES) {
		return sbpy_fail_int(SHMBUS_ETYPE, "array %R of %s has no atomic add", a->name,
		                     shmbus_dtype_name(a->dtype));
	} else {
		uint64_t buf = 0;
		long long d;
		int64_t cur, sum;
		int over = 0;

		if (kind != 'i' && kind != 'b')
			return sbpy_fail_int(SHMBUS_ETYPE, "array %R holds %s: add an int, not %.100s",
			                     a->name, shmbus_dtype_name(a->dtype),
			                     Py_TYPE(delta)->tp_name);
		{
			PyObject *n = PyNumber_Index(delta);

			if (!n)
				return -1;
			d = PyLong_AsLongLongAndOverflow(n, &over);
			Py_DECREF(n);
		}
		if (d == -1 && PyErr_Occurred())
			return -1;
		if (over)
			return sbpy_fail_int(SHMBUS_EINVAL, "delta %R does not fit in int64", delta);
		if ((r = shmbus_array_get(a->a, (uint64_t)i, &buf)))
			return sbpy_raise_int(r);
		cur = elem_i64(a->dtype, &buf);
		for (;;) {
			if (checked_sum(a->dtype, cur, (int64_t)d, &sum) < 0) {
				PyObject *c = i64_to_py(a->dtype, cur);

				if (c)
					sbpy_fail(SHMBUS_EINVAL, "array %R[%zd]: %R + %lld does not fit in %s",
					          a->name, i, c, d, shmbus_dtype_name(a->dtype));
				Py_XDECREF(c);
				return -1;
			}
			r = shmbus_array_cas_i64(a->a, (uint64_t)i, &cur, sum);
			if (r == 0)
				break;
			if (r != SHMBUS_EAGAIN)
				return sbpy_raise_int(r);
		}
		if (old && !(*old = i64_to_py(a->dtype, cur)))
			return -1;
	}
	return 0;
}

static PyObject *array_item(PyObject *self, Py_ssize_t i)
{
	sbpy_array *a = (sbpy_array *)self;
	PyObject *key, *v;

	if (array_check(a) < 0 || norm_index(a, &i) < 0)
		return NULL;
	v = elem_get(a, i);
	if (!v || a->dtype == SHMBUS_BOOL)
		return v;
	key = PyLong_FromSsize_t(i);
	if (!key) {
		Py_DECREF(v);
		return NULL;
	}
	v = sbpy_loaded(v, self, key);
	Py_DECREF(key);
	return v;
}

static int array_ass_item(PyObject *self, Py_ssize_t i, PyObject *v)
{
	sbpy_array *a = (sbpy_array *)self;
	uint64_t buf = 0;
	PyObject *key, *delta;
	int r;

	if (array_check(a) < 0 || norm_index(a, &i) < 0)
		return -1;
	if (!v) {
		PyErr_SetString(PyExc_TypeError, "array elements cannot be deleted");
		return -1;
	}
	if (Py_TYPE(v) == &LoadedIntType || Py_TYPE(v) == &LoadedFloatType) {
		key = PyLong_FromSsize_t(i);
		if (!key)
			return -1;
		delta = sbpy_take_pending(self, key, v);
		Py_DECREF(key);
		if (delta) {
			r = elem_add(a, i, delta, NULL);
			Py_DECREF(delta);
			return r;
		}
		if (PyErr_Occurred())
			return -1;
	}
	if (sbpy_pack(a->dtype, v, &buf) < 0)
		return -1;
	if ((r = shmbus_array_set(a->a, (uint64_t)i, &buf)))
		return sbpy_raise_int(r);
	return 0;
}

static PyObject *array_numpy(PyObject *self, PyObject *unused);

static PyObject *array_subscript(PyObject *self, PyObject *key)
{
	sbpy_array *a = (sbpy_array *)self;

	if (PyIndex_Check(key)) {
		Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);

		if (i == -1 && PyErr_Occurred())
			return NULL;
		return array_item(self, i);
	}
	if (PySlice_Check(key)) {
		Py_ssize_t start, stop, step, n, k;
		PyObject *list;

		if (array_check(a) < 0 || PySlice_Unpack(key, &start, &stop, &step) < 0)
			return NULL;
		n = PySlice_AdjustIndices(a->len, &start, &stop, step);
		list = PyList_New(n);
		for (k = 0; list && k < n; k++) {
			PyObject *v = elem_get(a, start + k * step);

			if (!v) {
				Py_CLEAR(list);
				break;
			}
			PyList_SET_ITEM(list, k, v);
		}
		return list;
	}
	PyErr_Format(PyExc_TypeError, "array indices must be integers or slices, not %.100s",
	             Py_TYPE(key)->tp_name);
	return NULL;
}

static int array_ass_subscript(PyObject *self, PyObject *key, PyObject *v)
{
	sbpy_array *a = (sbpy_array *)self;

	if (PyIndex_Check(key)) {
		Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);

		if (i == -1 && PyErr_Occurred())
			return -1;
		return array_ass_item(self, i, v);
	}
	if (PySlice_Check(key) && v) {
		Py_ssize_t start, stop, step, n, k;
		PyObject *seq;
		int r = 0;

		if (array_check(a) < 0 || PySlice_Unpack(key, &start, &stop, &step) < 0)
			return -1;
		n = PySlice_AdjustIndices(a->len, &start, &stop, step);
		seq = PySequence_Fast(v, "slice assignment needs a sequence");
		if (!seq)
			return -1;
		if (PySequence_Fast_GET_SIZE(seq) != n) {
			sbpy_fail(SHMBUS_EINVAL, "slice of %zd elements assigned %zd values", n,
			          PySequence_Fast_GET_SIZE(seq));
			r = -1;
		}
		{
			/* Every value is converted before any is stored: a refused
			 * value leaves the whole slice as it was. */
			uint64_t *buf = r == 0 ? PyMem_Calloc((size_t)n + 1, sizeof(*buf)) : NULL;

			if (r == 0 && !buf) {
				PyErr_NoMemory();
				r = -1;
			}
			for (k = 0; r == 0 && k < n; k++)
				if (sbpy_pack(a->dtype, PySequence_Fast_GET_ITEM(seq, k), &buf[k]) < 0)
					r = -1;
			for (k = 0; r == 0 && k < n; k++) {
				int rc = shmbus_array_set(a->a, (uint64_t)(start + k * step), &buf[k]);

				if (rc)
					r = sbpy_raise_int(rc);
			}
			PyMem_Free(buf);
		}
		Py_DECREF(seq);
		return r;
	}
	PyErr_Format(PyExc_TypeError, "array indices must be integers or slices, not %.100s",
	             Py_TYPE(key)->tp_name);
	return -1;
}

static int parse_index(sbpy_array *a, PyObject *o, Py_ssize_t *i)
{
	*i = PyNumber_AsSsize_t(o, PyExc_IndexError);
	if (*i == -1 && PyErr_Occurred())
		return -1;
	return norm_index(a, i);
}

static PyObject *array_add(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	sbpy_array *a = (sbpy_array *)self;
	PyObject *old = NULL;
	Py_ssize_t i;

	if (n != 2) {
		PyErr_SetString(PyExc_TypeError, "add(index, delta)");
		return NULL;
	}
	if (array_check(a) < 0 || parse_index(a, args[0], &i) < 0)
		return NULL;
	if (elem_add(a, i, args[1], &old) < 0)
		return NULL;
	return old;
}

static PyObject *array_exchange(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	sbpy_array *a = (sbpy_array *)self;
	Py_ssize_t i;
	int64_t v, old = 0;
	int r;

	if (n != 2) {
		PyErr_SetString(PyExc_TypeError, "exchange(index, value)");
		return NULL;
	}
	if (array_check(a) < 0 || parse_index(a, args[0], &i) < 0)
		return NULL;
	if (is_float(a->dtype))
		return sbpy_fail(SHMBUS_ETYPE, "exchange is for integer arrays");
	if (value_i64(a, args[1], &v) < 0)
		return NULL;
	if ((r = shmbus_array_xchg_i64(a->a, (uint64_t)i, v, &old)))
		return sbpy_raise(r);
	return i64_to_py(a->dtype, old);
}

static PyObject *array_cas(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	sbpy_array *a = (sbpy_array *)self;
	Py_ssize_t i;
	int64_t exp, des;
	int r;

	if (n != 3) {
		PyErr_SetString(PyExc_TypeError, "compare_and_swap(index, expected, desired)");
		return NULL;
	}
	if (array_check(a) < 0 || parse_index(a, args[0], &i) < 0)
		return NULL;
	if (is_float(a->dtype))
		return sbpy_fail(SHMBUS_ETYPE, "compare_and_swap is for integer arrays");
	/* Both in range: an expected value the element cannot hold would
	 * otherwise be truncated and could match another value. */
	if (value_i64(a, args[1], &exp) < 0 || value_i64(a, args[2], &des) < 0)
		return NULL;
	r = shmbus_array_cas_i64(a->a, (uint64_t)i, &exp, des);
	if (r == 0)
		return Py_BuildValue("(ON)", Py_True, i64_to_py(a->dtype, exp));
	if (r == SHMBUS_EAGAIN)
		return Py_BuildValue("(ON)", Py_False, i64_to_py(a->dtype, exp));
	return sbpy_raise(r);
}

static PyObject *array_numpy(PyObject *self, PyObject *unused)
{
	sbpy_array *a = (sbpy_array *)self;
	uint64_t shape[1];
	PyObject *view, *res;

	(void)unused;
	if (array_check(a) < 0)
		return NULL;
	shape[0] = (uint64_t)a->len;
	view = sbpy_view_new(a->h.bus, self, shmbus_array_data(a->a),
	                     a->len * (Py_ssize_t)shmbus_dtype_size(a->dtype), 0, a->dtype, 1, shape);
	if (!view)
		return NULL;
	if (sbpy_numpy() && a->dtype != SHMBUS_BYTES)
		res = PyObject_CallMethod(sbpy_numpy(), "asarray", "O", view);
	else
		res = PyMemoryView_FromObject(view);
	Py_DECREF(view);
	return res;
}

static PyObject *array_tolist(PyObject *self, PyObject *unused)
{
	PyObject *all = PySlice_New(NULL, NULL, NULL), *r;

	(void)unused;
	if (!all)
		return NULL;
	r = array_subscript(self, all);
	Py_DECREF(all);
	return r;
}

static PyObject *array_close(PyObject *self, PyObject *unused)
{
	(void)unused;
	array_close_fn((sbpy_child *)self);
	Py_RETURN_NONE;
}

static PyObject *array_enter(PyObject *self, PyObject *unused)
{
	(void)unused;
	if (array_check((sbpy_array *)self) < 0)
		return NULL;
	Py_INCREF(self);
	return self;
}

static PyObject *array_exit(PyObject *self, PyObject *args)
{
	(void)args;
	array_close_fn((sbpy_child *)self);
	Py_RETURN_FALSE;
}

static PyObject *array_get_dtype(PyObject *self, void *c)
{
	(void)c;
	return PyUnicode_FromString(shmbus_dtype_name(((sbpy_array *)self)->dtype));
}

static PyObject *array_repr(PyObject *self)
{
	sbpy_array *a = (sbpy_array *)self;

	return PyUnicode_FromFormat("<shmbus.Array %R %s[%zd]%s>", a->name,
	                            shmbus_dtype_name(a->dtype), a->len, a->a ? "" : " closed");
}

static void array_dealloc(PyObject *self)
{
	sbpy_array *a = (sbpy_array *)self;

	if (a->h.weaklist)
		PyObject_ClearWeakRefs(self);
	array_close_fn(&a->h);
	Py_XDECREF(a->name);
	PyObject_Free(self);
}

static PyMethodDef array_methods[] = {
	{"add", (PyCFunction)(void (*)(void))array_add, METH_FASTCALL,
	 "add(index, delta) -> old value\n\nAtomic add (integers wrap at the element's width; floats by a\n"
	 "compare-and-swap loop). arr[i] += delta does the same."},
	{"exchange", (PyCFunction)(void (*)(void))array_exchange, METH_FASTCALL,
	 "exchange(index, value) -> old value (integer arrays)."},
	{"compare_and_swap", (PyCFunction)(void (*)(void))array_cas, METH_FASTCALL,
	 "compare_and_swap(index, expected, desired) -> (swapped, value)\n\nStore desired if the "
	 "element equals expected; value is what it held."},
	{"numpy", array_numpy, METH_NOARGS,
	 "numpy() -> numpy array over the shared elements (writable, no copy; plain\n"
	 "loads and stores: use add() for atomic updates). memoryview without numpy."},
	{"tolist", array_tolist, METH_NOARGS, "tolist() -> list of the element values."},
	{"close", array_close, METH_NOARGS, "close(): release this handle."},
	{"__enter__", array_enter, METH_NOARGS, NULL},
	{"__exit__", array_exit, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static PyMemberDef array_members[] = {
	{"name", T_OBJECT, offsetof(sbpy_array, name), READONLY, "channel name"},
	{NULL, 0, 0, 0, NULL},
};

static PyGetSetDef array_getset[] = {
	{"dtype", array_get_dtype, NULL, "dtype name", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods array_as_sequence = {
	.sq_length = array_len,
	.sq_item = array_item,
};

static PyMappingMethods array_as_mapping = {
	.mp_length = array_len,
	.mp_subscript = array_subscript,
	.mp_ass_subscript = array_ass_subscript,
};

PyTypeObject sbpy_ArrayType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus.Array",
	.tp_basicsize = sizeof(sbpy_array),
	.tp_dealloc = array_dealloc,
	.tp_repr = array_repr,
	.tp_as_sequence = &array_as_sequence,
	.tp_as_mapping = &array_as_mapping,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A fixed-length typed array in shared memory (Bus.array(name, dtype, length)).\n"
	          "Element reads and writes are never torn; arr[i] += v and arr.add(i, v)\n"
	          "are atomic across processes; arr.numpy() is a no-copy numpy view.",
	.tp_weaklistoffset = offsetof(sbpy_array, h.weaklist),
	.tp_methods = array_methods,
	.tp_members = array_members,
	.tp_getset = array_getset,
};

/* ====================================================================== */
/* Raw dict and list: bytes in, bytes out                                 */
/* ====================================================================== */

typedef struct {
	sbpy_child h;
	void *c;                /* shmbus_dict_t or shmbus_list_t */
	PyObject *name;
	int is_list;
	char *buf;              /* scratch for copies out */
	size_t cap;
} sbpy_raw;

PyTypeObject sbpy_RawDictType, sbpy_RawListType;

static void raw_close_fn(sbpy_child *ch)
{
	sbpy_raw *r = (sbpy_raw *)ch;

	if (sbpy_child_foreign(ch))
		r->c = NULL;  /* forked copy: forget, do not close */

	if (r->c) {
		if (r->is_list)
			shmbus_list_close(r->c);
		else
			shmbus_dict_close(r->c);
		r->c = NULL;
	}
	sbpy_child_detach(ch);
}

static int raw_check(sbpy_raw *r)
{
	return sbpy_closed(r->c, r->is_list ? "list" : "dict");
}

static int have_containers(int list)
{
	if (list ? shmbus_list_open != NULL : shmbus_dict_open != NULL)
		return 1;
	PyErr_SetString(PyExc_NotImplementedError,
	                "this build of the library has no shared dict/list");
	return 0;
}

static PyObject *raw_open(PyObject *self, PyObject *args, PyObject *kw, int list)
{
	static char *kwlist[] = {"name", "create", "area_bytes", NULL};
	sbpy_bus *bus = (sbpy_bus *)self;
	const char *cname;
	PyObject *name;
	Py_ssize_t area = 0;
	int create = 1, rc;
	void *c = NULL;
	sbpy_raw *r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "U|pn", kwlist, &name, &create, &area))
		return NULL;
	if (sbpy_closed(bus->bus, "bus") < 0 || !have_containers(list))
		return NULL;
	if (area < 0) {
		sbpy_fail(SHMBUS_EINVAL, "%R: area_bytes %zd must be >= 0", name, area);
		return NULL;
	}
	if (!(cname = sbpy_name_arg(name, "channel")))
		return NULL;
	if (list) {
		shmbus_list_opts_t o;

		shmbus_list_opts_init(&o);
		o.create = create;
		o.area_bytes = (uint64_t)area;
		rc = shmbus_list_open(bus->bus, cname, &o, (shmbus_list_t **)&c);
	} else {
		shmbus_dict_opts_t o;

		shmbus_dict_opts_init(&o);
		o.create = create;
		o.area_bytes = (uint64_t)area;
		rc = shmbus_dict_open(bus->bus, cname, &o, (shmbus_dict_t **)&c);
	}
	if (rc)
		return sbpy_raise(rc);
	r = PyObject_New(sbpy_raw, list ? &sbpy_RawListType : &sbpy_RawDictType);
	if (!r) {
		if (list)
			shmbus_list_close(c);
		else
			shmbus_dict_close(c);
		return NULL;
	}
	r->h.weaklist = NULL;
	r->c = c;
	Py_INCREF(name);
	r->name = name;
	r->is_list = list;
	r->cap = 256;
	r->buf = PyMem_Malloc(r->cap);
	sbpy_child_attach(&r->h, bus, raw_close_fn);
	if (!r->buf) {
		Py_DECREF(r);
		return PyErr_NoMemory();
	}
	return (PyObject *)r;
}

PyObject *sbpy_bus_raw_dict(PyObject *self, PyObject *args, PyObject *kw)
{
	return raw_open(self, args, kw, 0);
}

PyObject *sbpy_bus_raw_list(PyObject *self, PyObject *args, PyObject *kw)
{
	return raw_open(self, args, kw, 1);
}

static int grow(sbpy_raw *r, size_t need)
{
	char *b;

	if (need <= r->cap)
		return 0;
	b = PyMem_Realloc(r->buf, need);
	if (!b) {
		PyErr_NoMemory();
		return -1;
	}
	r->buf = b;
	r->cap = need;
	return 0;
}

/* Run a copying call into r->buf, growing it on SHMBUS_ETOOBIG; GIL released. */
enum { OP_DGET, OP_LGET, OP_LPOP };

static PyObject *copy_out(sbpy_raw *r, int op, const void *key, size_t klen, int64_t index)
{
	size_t len = 0;
	int rc, tries;

	for (tries = 0; tries < 8; tries++) {
		void *buf = r->buf;
		size_t cap = r->cap;

		Py_BEGIN_ALLOW_THREADS
		if (op == OP_DGET)
			rc = shmbus_dict_get(r->c, key, klen, buf, cap, &len);
		else if (op == OP_LGET)
			rc = shmbus_list_get(r->c, index, buf, cap, &len);
		else
			rc = shmbus_list_pop(r->c, index, buf, cap, &len);
		Py_END_ALLOW_THREADS
		if (rc == SHMBUS_ETOOBIG && len > cap) {
			if (grow(r, len + len / 4) < 0)
				return NULL;
			continue;
		}
		if (rc)
			return sbpy_raise(rc);
		return PyBytes_FromStringAndSize(r->buf, (Py_ssize_t)len);
	}
	return sbpy_raise(SHMBUS_ETOOBIG);
}

/* ---- update callbacks --------------------------------------------------- */

struct upd {
	PyObject *fn;           /* Python callable, or NULL for the numeric add */
	char tag;               /* numeric add: 'i' int64 or 'f' float64 delta */
	int64_t di;
	double df;
	PyObject *err;          /* set when fn raised (under the GIL) */
	int overflow;
};

/* Numeric add on this module's value encoding: 'i' + int64 LE, 'f' + float64 LE. */
static int add_cb(const void *old, size_t oldlen, void *out, size_t cap, size_t *outlen,
                  void *arg)
{
	struct upd *u = arg;
	const unsigned char *o = old;
	unsigned char *w = out;

	if (!old)
		return SHMBUS_ENOENT;
	if (oldlen != 9 || cap < 9 || (o[0] != 'i' && o[0] != 'f'))
		return SHMBUS_ETYPE;
	if (o[0] == 'i' && u->tag == 'i') {
		int64_t v, res;

		memcpy(&v, o + 1, 8);
		if (__builtin_add_overflow(v, u->di, &res)) {
			u->overflow = 1;
			return SHMBUS_ETYPE;
		}
		w[0] = 'i';
		memcpy(w + 1, &res, 8);
	} else {
		double v, d = u->tag == 'i' ? (double)u->di : u->df;

		if (o[0] == 'i') {
			int64_t iv;

			memcpy(&iv, o + 1, 8);
			v = (double)iv;
		} else {
			memcpy(&v, o + 1, 8);
		}
		v += d;
		w[0] = 'f';
		memcpy(w + 1, &v, 8);
	}
	*outlen = 9;
	return 0;
}

/* A Python callable fn(old: bytes | None) -> bytes | None (None deletes). */
static int py_cb(const void *old, size_t oldlen, void *out, size_t cap, size_t *outlen, void *arg)
{
	struct upd *u = arg;
	PyGILState_STATE g = PyGILState_Ensure();
	PyObject *o, *res;
	int rc = 0;

	o = old ? PyBytes_FromStringAndSize(old, (Py_ssize_t)oldlen) : (Py_INCREF(Py_None), Py_None);
	res = o ? PyObject_CallOneArg(u->fn, o) : NULL;
	Py_XDECREF(o);
	if (!res) {
		rc = SBPY_PYERR;
	} else if (res == Py_None) {
		rc = 1;
	} else if (!PyBytes_Check(res)) {
		sbpy_fail(SHMBUS_ETYPE, "update function must return bytes or None");
		rc = SBPY_PYERR;
	} else if ((size_t)PyBytes_GET_SIZE(res) > cap) {
		rc = SHMBUS_ETOOBIG;
	} else {
		memcpy(out, PyBytes_AS_STRING(res), (size_t)PyBytes_GET_SIZE(res));
		*outlen = (size_t)PyBytes_GET_SIZE(res);
	}
	Py_XDECREF(res);
	if (rc == SBPY_PYERR) {
		PyObject *t, *v, *tb;

		PyErr_Fetch(&t, &v, &tb);
		PyErr_NormalizeException(&t, &v, &tb);
		if (tb)
			PyException_SetTraceback(v, tb);
		u->err = v;
		Py_XDECREF(t);
		Py_XDECREF(tb);
		rc = SHMBUS_EINVAL;
	}
	PyGILState_Release(g);
	return rc;
}

static int upd_from_args(struct upd *u, PyObject *fn_or_delta, int numeric)
{
	memset(u, 0, sizeof(*u));
	if (!numeric) {
		if (!PyCallable_Check(fn_or_delta)) {
			sbpy_fail(SHMBUS_ETYPE, "update needs a callable");
			return -1;
		}
		u->fn = fn_or_delta;
		return 0;
	}
	if (PyLong_Check(fn_or_delta) && !PyBool_Check(fn_or_delta)) {
		int over = 0;

		u->tag = 'i';
		u->di = PyLong_AsLongLongAndOverflow(fn_or_delta, &over);
		if (over || (u->di == -1 && PyErr_Occurred())) {
			PyErr_Clear();
			u->overflow = 1;
		}
		return 0;
	}
	if (PyFloat_Check(fn_or_delta)) {
		u->tag = 'f';
		u->df = PyFloat_AS_DOUBLE(fn_or_delta);
		return 0;
	}
	sbpy_fail(SHMBUS_ETYPE, "atomic add needs an int or float delta");
	return -1;
}

/* Returns 1 done, 0 "not a numeric int64/float value" (caller falls back), -1 error. */
static int upd_finish(struct upd *u, int rc)
{
	if (u->err) {
		PyErr_SetObject((PyObject *)Py_TYPE(u->err), u->err);
		Py_DECREF(u->err);
		return -1;
	}
	if (!u->fn && rc == SHMBUS_ETYPE)
		return 0;
	if (rc)
		return sbpy_raise_int(rc);
	return 1;
}

/* ---- dict methods ------------------------------------------------------- */

static PyObject *rd_set_impl(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	sbpy_raw *r = (sbpy_raw *)self;
	Py_buffer k, v;
	int rc;

	if (n != 2) {
		PyErr_SetString(PyExc_TypeError, "set(key, value)");
		return NULL;
	}
	if (raw_check(r) < 0 || PyObject_GetBuffer(args[0], &k, PyBUF_SIMPLE) < 0)
		return NULL;
	if (PyObject_GetBuffer(args[1], &v, PyBUF_SIMPLE) < 0) {
		PyBuffer_Release(&k);
		return NULL;
	}
	Py_BEGIN_ALLOW_THREADS
	rc = shmbus_dict_set(r->c, k.buf, (size_t)k.len, v.buf, (size_t)v.len);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&k);
	PyBuffer_Release(&v);
	if (rc)
		return sbpy_raise(rc);
	Py_RETURN_NONE;
}

static PyObject *rd_get_impl(PyObject *self, PyObject *key)
{
	sbpy_raw *r = (sbpy_raw *)self;
	Py_buffer k;
	PyObject *res;

	if (raw_check(r) < 0 || PyObject_GetBuffer(key, &k, PyBUF_SIMPLE) < 0)
		return NULL;
	res = copy_out(r, OP_DGET, k.buf, (size_t)k.len, 0);
	PyBuffer_Release(&k);
	if (!res && PyErr_ExceptionMatches(sbpy_NotFound)) {
		PyErr_Clear();
		PyErr_SetObject(PyExc_KeyError, key);
	}
	return res;
}

static PyObject *rd_del_impl(PyObject *self, PyObject *key)
{
	sbpy_raw *r = (sbpy_raw *)self;
	Py_buffer k;
	int rc;

	if (raw_check(r) < 0 || PyObject_GetBuffer(key, &k, PyBUF_SIMPLE) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = shmbus_dict_del(r->c, k.buf, (size_t)k.len);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&k);
	if (rc == SHMBUS_ENOENT) {
		PyErr_SetObject(PyExc_KeyError, key);
		return NULL;
	}
	if (rc)
		return sbpy_raise(rc);
	Py_RETURN_NONE;
}

static PyObject *rd_len_impl(PyObject *self, PyObject *unused)
{
	sbpy_raw *r = (sbpy_raw *)self;
	uint64_t n = 0;
	int rc;

	(void)unused;
	if (raw_check(r) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = r->is_list ? shmbus_list_len(r->c, &n) : shmbus_dict_len(r->c, &n);
	Py_END_ALLOW_THREADS
	if (rc)
		return sbpy_raise(rc);
	return PyLong_FromUnsignedLongLong(n);
}

static PyObject *rd_update_common(PyObject *self, PyObject *key, PyObject *arg, int numeric)
{
	sbpy_raw *r = (sbpy_raw *)self;
	struct upd u;
	Py_buffer k;
	int rc;

	if (raw_check(r) < 0 || upd_from_args(&u, arg, numeric) < 0)
		return NULL;
	if (u.overflow)
		Py_RETURN_FALSE;
	if (PyObject_GetBuffer(key, &k, PyBUF_SIMPLE) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = shmbus_dict_update(r->c, k.buf, (size_t)k.len, numeric ? add_cb : py_cb, &u);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&k);
	if (rc == SHMBUS_ENOENT && numeric) {
		PyErr_SetObject(PyExc_KeyError, key);
		return NULL;
	}
	rc = upd_finish(&u, rc);
	if (rc < 0)
		return NULL;
	return PyBool_FromLong(rc);
}

static PyObject *rd_update_impl(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	if (n != 2) {
		PyErr_SetString(PyExc_TypeError, "update(key, fn)");
		return NULL;
	}
	return rd_update_common(self, args[0], args[1], 0);
}

static PyObject *rd_add_impl(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	if (n != 2) {
		PyErr_SetString(PyExc_TypeError, "add(key, delta)");
		return NULL;
	}
	return rd_update_common(self, args[0], args[1], 1);
}

static PyObject *rd_items_impl(PyObject *self, PyObject *unused)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *list = PyList_New(0);
	uint64_t cursor = 0;
	char *kb = NULL, *vb = NULL;
	size_t kcap = 256, vcap = 256, klen, vlen;
	int rc = 0;

	(void)unused;
	if (!list || raw_check(r) < 0) {
		Py_XDECREF(list);
		return NULL;
	}
	kb = PyMem_Malloc(kcap);
	vb = PyMem_Malloc(vcap);
	while (kb && vb) {
		uint64_t save = cursor;
		PyObject *t;

		klen = vlen = 0;
		Py_BEGIN_ALLOW_THREADS
		rc = shmbus_dict_next(r->c, &cursor, kb, kcap, &klen, vb, vcap, &vlen);
		Py_END_ALLOW_THREADS
		if (rc == SHMBUS_ENOENT) {
			rc = 0;
			break;
		}
		if (rc == SHMBUS_ETOOBIG) {
			char *nk = klen > kcap ? PyMem_Realloc(kb, klen) : kb;
			char *nv;

			if (nk) {
				kb = nk;
				kcap = klen > kcap ? klen : kcap;
			}
			nv = vlen > vcap ? PyMem_Realloc(vb, vlen) : vb;
			if (nv) {
				vb = nv;
				vcap = vlen > vcap ? vlen : vcap;
			}
			if (!nk || !nv || (klen <= kcap && vlen <= vcap && klen + vlen == 0))
				break;
			cursor = save;
			continue;
		}
		if (rc)
			break;
		t = Py_BuildValue("(y#y#)", kb, (Py_ssize_t)klen, vb, (Py_ssize_t)vlen);
		if (!t || PyList_Append(list, t) < 0) {
			Py_XDECREF(t);
			Py_CLEAR(list);
			break;
		}
		Py_DECREF(t);
	}
	PyMem_Free(kb);
	PyMem_Free(vb);
	if (!list)
		return NULL;
	if (rc) {
		Py_DECREF(list);
		return sbpy_raise(rc);
	}
	if (!kb || !vb) {
		Py_DECREF(list);
		return PyErr_NoMemory();
	}
	return list;
}

/* ---- list methods ------------------------------------------------------- */

static int get_i64(PyObject *o, int64_t *v)
{
	long long x = PyLong_AsLongLong(o);

	if (x == -1 && PyErr_Occurred())
		return -1;
	*v = (int64_t)x;
	return 0;
}

static PyObject *list_index_err(sbpy_raw *r, int64_t i)
{
	PyErr_Format(PyExc_IndexError, "shared list %R index %lld out of range", r->name,
	             (long long)i);
	return NULL;
}

static PyObject *rl_get_impl(PyObject *self, PyObject *idx)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;
	int64_t i;

	if (raw_check(r) < 0 || get_i64(idx, &i) < 0)
		return NULL;
	res = copy_out(r, OP_LGET, NULL, 0, i);
	if (!res && (PyErr_ExceptionMatches(sbpy_NotFound) ||
	             PyErr_ExceptionMatches(sbpy_InvalidArgument))) {
		PyErr_Clear();
		return list_index_err(r, i);
	}
	return res;
}

static PyObject *rl_pop_impl(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;
	int64_t i = -1;

	if (n > 1) {
		PyErr_SetString(PyExc_TypeError, "pop(index=-1)");
		return NULL;
	}
	if (raw_check(r) < 0 || (n == 1 && get_i64(args[0], &i) < 0))
		return NULL;
	res = copy_out(r, OP_LPOP, NULL, 0, i);
	if (!res && (PyErr_ExceptionMatches(sbpy_NotFound) ||
	             PyErr_ExceptionMatches(sbpy_InvalidArgument))) {
		PyErr_Clear();
		return list_index_err(r, i);
	}
	return res;
}

static PyObject *rl_put(PyObject *self, PyObject *const *args, Py_ssize_t n, int how)
{
	sbpy_raw *r = (sbpy_raw *)self;
	Py_buffer v;
	int64_t i = 0;
	int rc;

	if (n != (how == 0 ? 1 : 2)) {
		PyErr_SetString(PyExc_TypeError, how == 0 ? "append(value)" : how == 1 ? "insert(index, value)" : "set(index, value)");
		return NULL;
	}
	if (raw_check(r) < 0 || (how && get_i64(args[0], &i) < 0))
		return NULL;
	if (PyObject_GetBuffer(args[how ? 1 : 0], &v, PyBUF_SIMPLE) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	if (how == 0)
		rc = shmbus_list_append(r->c, v.buf, (size_t)v.len);
	else if (how == 1)
		rc = shmbus_list_insert(r->c, i, v.buf, (size_t)v.len);
	else
		rc = shmbus_list_set(r->c, i, v.buf, (size_t)v.len);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&v);
	if (how == 2 && (rc == SHMBUS_ENOENT || rc == SHMBUS_EINVAL))
		return list_index_err(r, i);
	if (rc)
		return sbpy_raise(rc);
	Py_RETURN_NONE;
}

static PyObject *rl_append_impl(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
	return rl_put(self, a, n, 0);
}

static PyObject *rl_insert_impl(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
	return rl_put(self, a, n, 1);
}

static PyObject *rl_set_impl(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
	return rl_put(self, a, n, 2);
}

static PyObject *rl_update_common(PyObject *self, PyObject *idx, PyObject *arg, int numeric)
{
	sbpy_raw *r = (sbpy_raw *)self;
	struct upd u;
	int64_t i;
	int rc;

	if (raw_check(r) < 0 || get_i64(idx, &i) < 0 || upd_from_args(&u, arg, numeric) < 0)
		return NULL;
	if (u.overflow)
		Py_RETURN_FALSE;
	Py_BEGIN_ALLOW_THREADS
	rc = shmbus_list_update(r->c, i, numeric ? add_cb : py_cb, &u);
	Py_END_ALLOW_THREADS
	if (rc == SHMBUS_ENOENT || (rc == SHMBUS_EINVAL && !u.err))
		return list_index_err(r, i);
	rc = upd_finish(&u, rc);
	if (rc < 0)
		return NULL;
	return PyBool_FromLong(rc);
}

static PyObject *rl_update_impl(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	if (n != 2) {
		PyErr_SetString(PyExc_TypeError, "update(index, fn)");
		return NULL;
	}
	return rl_update_common(self, args[0], args[1], 0);
}

static PyObject *rl_add_impl(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	if (n != 2) {
		PyErr_SetString(PyExc_TypeError, "add(index, delta)");
		return NULL;
	}
	return rl_update_common(self, args[0], args[1], 1);
}

static PyObject *rl_clear_impl(PyObject *self, PyObject *unused)
{
	sbpy_raw *r = (sbpy_raw *)self;
	int rc;

	(void)unused;
	if (raw_check(r) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	rc = shmbus_list_clear(r->c);
	Py_END_ALLOW_THREADS
	if (rc)
		return sbpy_raise(rc);
	Py_RETURN_NONE;
}

/* Raw container methods claim the handle around their GIL-free calls. */
static PyObject *rd_get(PyObject *self, PyObject *a)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rd_get_impl(self, a);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rd_del(PyObject *self, PyObject *a)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rd_del_impl(self, a);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rl_get(PyObject *self, PyObject *a)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rl_get_impl(self, a);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rd_set(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rd_set_impl(self, a, n);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rd_update(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rd_update_impl(self, a, n);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rd_add(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rd_add_impl(self, a, n);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rl_pop(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rl_pop_impl(self, a, n);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rl_append(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rl_append_impl(self, a, n);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rl_insert(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rl_insert_impl(self, a, n);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rl_set(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rl_set_impl(self, a, n);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rl_update(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rl_update_impl(self, a, n);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rl_add(PyObject *self, PyObject *const *a, Py_ssize_t n)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rl_add_impl(self, a, n);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rd_len(PyObject *self, PyObject *u)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rd_len_impl(self, u);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rd_items(PyObject *self, PyObject *u)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rd_items_impl(self, u);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *rl_clear(PyObject *self, PyObject *u)
{
	sbpy_raw *r = (sbpy_raw *)self;
	PyObject *res;

	if (raw_check(r) < 0 || sbpy_claim(&r->h) < 0)
		return NULL;
	res = rl_clear_impl(self, u);
	sbpy_unclaim(&r->h);
	return res;
}

static PyObject *raw_close(PyObject *self, PyObject *unused)
{
	(void)unused;
	if (sbpy_check_idle((sbpy_child *)self) < 0)
		return NULL;
	raw_close_fn((sbpy_child *)self);
	Py_RETURN_NONE;
}

static void raw_dealloc(PyObject *self)
{
	sbpy_raw *r = (sbpy_raw *)self;

	if (r->h.weaklist)
		PyObject_ClearWeakRefs(self);
	raw_close_fn(&r->h);
	Py_XDECREF(r->name);
	PyMem_Free(r->buf);
	PyObject_Free(self);
}

static PyMethodDef rd_methods[] = {
	{"set", (PyCFunction)(void (*)(void))rd_set, METH_FASTCALL, "set(key: bytes, value: bytes)"},
	{"get", rd_get, METH_O, "get(key) -> bytes (KeyError if absent)"},
	{"delete", rd_del, METH_O, "delete(key) (KeyError if absent)"},
	{"len", rd_len, METH_NOARGS, "len() -> int"},
	{"update", (PyCFunction)(void (*)(void))rd_update, METH_FASTCALL,
	 "update(key, fn): atomically store fn(old bytes or None) -> bytes, or delete on None."},
	{"add", (PyCFunction)(void (*)(void))rd_add, METH_FASTCALL,
	 "add(key, delta) -> bool: atomic numeric add on an encoded int/float; False if the\n"
	 "stored value is not one (or would overflow int64)."},
	{"items", rd_items, METH_NOARGS, "items() -> list of (key, value) bytes pairs."},
	{"close", raw_close, METH_NOARGS, "close()"},
	{NULL, NULL, 0, NULL},
};

static PyMethodDef rl_methods[] = {
	{"append", (PyCFunction)(void (*)(void))rl_append, METH_FASTCALL, "append(value: bytes)"},
	{"insert", (PyCFunction)(void (*)(void))rl_insert, METH_FASTCALL, "insert(index, value)"},
	{"set", (PyCFunction)(void (*)(void))rl_set, METH_FASTCALL, "set(index, value)"},
	{"get", rl_get, METH_O, "get(index) -> bytes"},
	{"pop", (PyCFunction)(void (*)(void))rl_pop, METH_FASTCALL, "pop(index=-1) -> bytes"},
	{"len", rd_len, METH_NOARGS, "len() -> int"},
	{"update", (PyCFunction)(void (*)(void))rl_update, METH_FASTCALL,
	 "update(index, fn): atomically store fn(old bytes) -> bytes."},
	{"add", (PyCFunction)(void (*)(void))rl_add, METH_FASTCALL,
	 "add(index, delta) -> bool: atomic numeric add on an encoded int/float."},
	{"clear", rl_clear, METH_NOARGS, "clear()"},
	{"close", raw_close, METH_NOARGS, "close()"},
	{NULL, NULL, 0, NULL},
};

static PyMemberDef raw_members[] = {
	{"name", T_OBJECT, offsetof(sbpy_raw, name), READONLY, "channel name"},
	{NULL, 0, 0, 0, NULL},
};

PyTypeObject sbpy_RawDictType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus._RawDict",
	.tp_basicsize = sizeof(sbpy_raw),
	.tp_dealloc = raw_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A bytes-to-bytes shared map (the storage of shmbus.Dict).",
	.tp_weaklistoffset = offsetof(sbpy_raw, h.weaklist),
	.tp_methods = rd_methods,
	.tp_members = raw_members,
};

PyTypeObject sbpy_RawListType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus._RawList",
	.tp_basicsize = sizeof(sbpy_raw),
	.tp_dealloc = raw_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A shared list of byte strings (the storage of shmbus.List).",
	.tp_weaklistoffset = offsetof(sbpy_raw, h.weaklist),
	.tp_methods = rl_methods,
	.tp_members = raw_members,
};

static PyMethodDef helper_defs[] = {
	{"_loaded", (PyCFunction)(void (*)(void))mod_loaded, METH_FASTCALL,
	 "_loaded(value, owner, key): the value as returned by a container's __getitem__."},
	{"_take_pending", (PyCFunction)(void (*)(void))mod_take_pending, METH_FASTCALL,
	 "_take_pending(owner, key, value) -> delta or None."},
	{NULL, NULL, 0, NULL},
};

int sbpy_containers_init_types(PyObject *m)
{
	PyMethodDef *d;

	LoadedIntType.tp_base = &PyLong_Type;
	LoadedFloatType.tp_base = &PyFloat_Type;
	if (PyType_Ready(&LoadedIntType) < 0 || PyType_Ready(&LoadedFloatType) < 0 ||
	    PyType_Ready(&sbpy_ArrayType) < 0 || PyType_Ready(&sbpy_RawDictType) < 0 ||
	    PyType_Ready(&sbpy_RawListType) < 0)
		return -1;
	Py_INCREF(&sbpy_ArrayType);
	if (PyModule_AddObject(m, "Array", (PyObject *)&sbpy_ArrayType) < 0)
		return -1;
	for (d = helper_defs; d->ml_name; d++) {
		PyObject *f = PyCFunction_New(d, NULL);

		if (!f || PyModule_AddObject(m, d->ml_name, f) < 0)
			return -1;
	}
	return 0;
}

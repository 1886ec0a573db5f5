/*
 * state.c -- State: a state channel from Python.
 *
 * write() takes any C-contiguous buffer of exactly the value's size (its
 * format, when it has one, must match the dtype), a Python number for a
 * scalar, or anything numpy can turn into the channel's dtype and shape.
 * read() returns a new numpy array (bytes without numpy, or for dtype
 * bytes; a Python number for a scalar); read(out=arr) fills arr in place
 * with no allocation. peek() hands out the value in shared memory itself.
 * Copies of large values run with the GIL released.
 */
#include "sbpy.h"

#include <structmember.h>

#include <string.h>

#define BIG_COPY (256 * 1024)

typedef struct {
	sbpy_child h;
	shmbus_state_t *st;
	PyObject *name;
	int dtype;
	int scalar;              /* opened with shape=(): values are Python numbers */
	int many;                /* made with writers='many': a write may wait its turn */
	int ndim;
	uint64_t shape[SHMBUS_MAX_DIMS];
	size_t size;
	PyObject *py_shape;      /* tuple */
	PyObject *np_dtype;      /* numpy dtype, or NULL */
	uint64_t last_seq;
	/* The buffers of the last object written from and read into, held
	 * (so a numpy array cannot be resized under us): asking numpy for its
	 * buffer costs more than the whole state operation, and a loop passes
	 * the same array every time. */
	PyObject *wobj, *robj;
	Py_buffer wbuf, rbuf;
} sbpy_state;

/* Only numpy arrays are worth it (and their users rarely resize them; a
 * held bytearray could not be resized at all). */
static int cacheable(PyObject *o)
{
	return strcmp(Py_TYPE(o)->tp_name, "numpy.ndarray") == 0;
}

static void drop_cached(PyObject **obj, Py_buffer *b)
{
	if (*obj) {
		PyBuffer_Release(b);
		*obj = NULL;
	}
}

static void state_close_fn(sbpy_child *c)
{
	sbpy_state *s = (sbpy_state *)c;

	drop_cached(&s->wobj, &s->wbuf);
	drop_cached(&s->robj, &s->rbuf);
	if (sbpy_child_foreign(c))
		s->st = NULL;  /* forked copy: forget, do not close */

	if (s->st) {
		shmbus_state_close(s->st);
		s->st = NULL;
	}
	sbpy_child_detach(c);
}

static int state_check(sbpy_state *s)
{
	return sbpy_closed(s->st, "state channel");
}

shmbus_state_t *sbpy_state_of(PyObject *o, uint64_t *last_seq)
{
	sbpy_state *s = (sbpy_state *)o;

	if (!PyObject_TypeCheck(o, &sbpy_StateType) || state_check(s) < 0)
		return NULL;
	*last_seq = s->last_seq;
	return s->st;
}

static int parse_shape(PyObject *o, uint32_t *ndim, uint64_t *shape)
{
	Py_ssize_t n, k;

	if (o == NULL || o == Py_None) {
		*ndim = 0;
		return 0;
	}
	if (PyLong_Check(o)) {
		int over = 0;
		long long v = PyLong_AsLongLongAndOverflow(o, &over);

		if (v <= 0 || over) {
			if (!PyErr_Occurred())
				sbpy_fail(SHMBUS_EINVAL, "shape %R: every dimension must be > 0", o);
			return -1;
		}
		*ndim = 1;
		shape[0] = (uint64_t)v;
		return 0;
	}
	if (!PyTuple_Check(o) && !PyList_Check(o)) {
		sbpy_fail(SHMBUS_EINVAL, "shape must be an int or a tuple of ints, not %.100s",
		          Py_TYPE(o)->tp_name);
		return -1;
	}
	n = PySequence_Size(o);
	if (n > SHMBUS_MAX_DIMS) {
		sbpy_fail(SHMBUS_EINVAL, "shape %R has %zd dimensions; the limit is %d", o, n,
		          SHMBUS_MAX_DIMS);
		return -1;
	}
	for (k = 0; k < n; k++) {
		PyObject *e = PySequence_GetItem(o, k);
		long long v = -1;
		int over = 0;

		if (!e)
			return -1;
		if (PyIndex_Check(e)) {
			PyObject *i = PyNumber_Index(e);

			v = i ? PyLong_AsLongLongAndOverflow(i, &over) : -1;
			Py_XDECREF(i);
		}
		Py_DECREF(e);
		if (v == -1 && PyErr_Occurred())
			return -1;
		if (v <= 0 || over) {
			sbpy_fail(SHMBUS_EINVAL, "shape %R: every dimension must be > 0", o);
			return -1;
		}
		shape[k] = (uint64_t)v;
	}
	*ndim = (uint32_t)n;
	return 0;
}

static int parse_policy(PyObject *o, int *policy)
{
	const char *s;

	if (!o || o == Py_None) {
		*policy = SHMBUS_WAIT_SPIN_PARK;
		return 0;
	}
	if (PyLong_Check(o)) {
		*policy = (int)PyLong_AsLong(o);
		return PyErr_Occurred() ? -1 : 0;
	}
	s = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
	if (s && !strcmp(s, "spin_park"))
		*policy = SHMBUS_WAIT_SPIN_PARK;
	else if (s && !strcmp(s, "spin"))
		*policy = SHMBUS_WAIT_SPIN;
	else if (s && !strcmp(s, "park"))
		*policy = SHMBUS_WAIT_PARK;
	else {
		sbpy_fail(SHMBUS_EINVAL, "wait_policy %R: use 'spin_park', 'spin' or 'park'", o);
		return -1;
	}
	return 0;
}

int sbpy_parse_wait(PyObject *policy_o, PyObject *spin_o, int *policy, int64_t *spin_ns)
{
	*spin_ns = 0;
	if (parse_policy(policy_o, policy) < 0)
		return -1;
	if (spin_o && spin_o != Py_None && sbpy_timeout(spin_o, spin_ns) < 0)
		return -1;
	return 0;
}

PyObject *sbpy_bus_state(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "dtype", "shape", "create", "nbuf", "wait_policy", "spin",
	                         "writers", NULL};
	sbpy_bus *bus = (sbpy_bus *)self;
	const char *cname;
	PyObject *name, *dtype_o = NULL, *shape_o = NULL, *pol = NULL, *spin = NULL;
	const char *writers = NULL;
	int create = 1, r, scalar;
	Py_ssize_t nbuf = 0;
	shmbus_state_opts_t o;
	shmbus_channel_info_t info = {.size_of = sizeof(info)};
	shmbus_state_t *st;
	sbpy_state *s;
	uint32_t k;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "U|OOpnOOz:state", kwlist, &name, &dtype_o,
	                                 &shape_o, &create, &nbuf, &pol, &spin, &writers))
		return NULL;
	if (sbpy_closed(bus->bus, "bus") < 0)
		return NULL;
	if (nbuf < 0 || nbuf > 64) {
		sbpy_fail(SHMBUS_EINVAL, "state %R: nbuf %zd; allowed 2..8 (0: default)",
		          name, nbuf);
		return NULL;
	}
	shmbus_state_opts_init(&o);
	o.create = create;
	o.nbuf = (uint32_t)nbuf;
	if (writers && strcmp(writers, "one") == 0) {
		o.writers = SHMBUS_WRITERS_ONE;
	} else if (writers && strcmp(writers, "many") == 0) {
		o.writers = SHMBUS_WRITERS_MANY;
	} else if (writers) {
		return sbpy_fail(SHMBUS_EINVAL, "state %R: writers=%s; use 'one', 'many' or None",
		                 name, writers);
	}
	if (sbpy_parse_wait(pol, spin, &o.wait_policy, &o.spin_ns) < 0)
		return NULL;
	if (!create && (dtype_o == NULL || dtype_o == Py_None) && shape_o == NULL) {
		o.ndim = 0;     /* accept whatever exists */
		scalar = 0;
	} else {
		o.dtype = dtype_o == NULL || dtype_o == Py_None ? SHMBUS_FLOAT64 : sbpy_dtype(dtype_o);
		if (o.dtype < 0)
			return NULL;
		if (parse_shape(shape_o, &o.ndim, o.shape) < 0)
			return NULL;
		scalar = o.ndim == 0;
		if (scalar) {
			o.ndim = 1;
			o.shape[0] = 1;
		}
	}
	if (!(cname = sbpy_name_arg(name, "channel")))
		return NULL;
	r = shmbus_state_open(bus->bus, cname, &o, &st);
	if (r)
		return sbpy_raise(r);
	memset(&info, 0, sizeof(info));
	info.size_of = sizeof(info);
	if ((r = shmbus_state_info(st, &info))) {
		shmbus_state_close(st);
		return sbpy_raise(r);
	}
	s = PyObject_GC_New(sbpy_state, &sbpy_StateType);
	if (!s) {
		shmbus_state_close(st);
		return NULL;
	}
	s->h.weaklist = NULL;
	s->st = st;
	Py_INCREF(name);
	s->name = name;
	s->dtype = info.dtype;
	s->scalar = scalar;
	s->many = (info.flags & SHMBUS_CHANNEL_MANY_WRITERS) != 0;
	s->ndim = (int)(info.ndim > SHMBUS_MAX_DIMS ? SHMBUS_MAX_DIMS : info.ndim);
	memcpy(s->shape, info.shape, sizeof(s->shape));
	s->size = shmbus_state_size(st);
	s->last_seq = 0;
	s->np_dtype = NULL;
	s->wobj = s->robj = NULL;
	s->py_shape = PyTuple_New(scalar ? 0 : s->ndim);
	for (k = 0; s->py_shape && !scalar && k < (uint32_t)s->ndim; k++)
		PyTuple_SET_ITEM(s->py_shape, k, PyLong_FromUnsignedLongLong(s->shape[k]));
	sbpy_child_attach(&s->h, bus, state_close_fn);
	PyObject_GC_Track(s);
	if (!s->py_shape) {
		Py_DECREF(s);
		return NULL;
	}
	if (sbpy_numpy() && s->dtype != SHMBUS_BYTES) {
		s->np_dtype = PyObject_CallMethod(sbpy_numpy(), "dtype", "s",
		                                  shmbus_dtype_name(s->dtype));
		if (!s->np_dtype)
			PyErr_Clear();
	}
	return (PyObject *)s;
}

/* ---- write ----------------------------------------------------------- */

static int write_bytes(sbpy_state *s, const void *p, size_t len)
{
	int r;

	if (len != s->size) {
		sbpy_fail(SHMBUS_EINVAL,
		          "state %R holds %zu-byte values (%s, shape %R); got %zu bytes", s->name,
		          s->size, shmbus_dtype_name(s->dtype), s->py_shape, len);
		return -1;
	}
	/* A many-writer write may wait for another writer's turn: not with
	 * the GIL held. */
	if (len >= BIG_COPY || s->many) {
		if (sbpy_claim(&s->h) < 0)
			return -1;
		Py_BEGIN_ALLOW_THREADS
		r = shmbus_state_write(s->st, p, len);
		Py_END_ALLOW_THREADS
		sbpy_unclaim(&s->h);
	} else {
		r = shmbus_state_write(s->st, p, len);
	}
	return r ? sbpy_raise_int(r) : 0;
}

static int write_buffer(sbpy_state *s, PyObject *v, int cache)
{
	Py_buffer b;
	int r;

	if (v == s->wobj)
		return write_bytes(s, s->wbuf.buf, (size_t)s->wbuf.len);
	if (PyObject_GetBuffer(v, &b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
		return -1;
	r = sbpy_check_format(&b, s->dtype, "this state");
	if (r == 0)
		r = write_bytes(s, b.buf, (size_t)b.len);
	if (r == 0 && cache && s->st) {
		drop_cached(&s->wobj, &s->wbuf);
		s->wbuf = b;          /* keeps the export and a reference to v */
		s->wobj = v;
		return 0;
	}
	PyBuffer_Release(&b);
	return r;
}

static PyObject *state_write(PyObject *self, PyObject *v)
{
	sbpy_state *s = (sbpy_state *)self;
	uint64_t one;
	PyObject *arr;
	int r;

	if (state_check(s) < 0)
		return NULL;
	/* The conversion rule (sbpy_pack in module.c): numbers by value,
	 * buffers byte for byte (their element type must be the channel's),
	 * sequences by value through shmbus._convert. */
	if (v == s->wobj) {
		r = write_buffer(s, v, 1);
	} else if (s->size <= sizeof(one) && shmbus_dtype_size(s->dtype) == s->size &&
	           !cacheable(v) &&
	           sbpy_number_kind(v)) {
		if (sbpy_pack(s->dtype, v, &one) < 0)
			return NULL;
		r = write_bytes(s, &one, s->size);
	} else if (PyObject_CheckBuffer(v)) {
		r = write_buffer(s, v, cacheable(v));
	} else if (s->np_dtype) {
		static PyObject *to_array;

		if (!to_array) {
			PyObject *mod = PyImport_ImportModule("shmbus._convert");

			if (!mod)
				return NULL;
			to_array = PyObject_GetAttrString(mod, "to_array");
			Py_DECREF(mod);
			if (!to_array)
				return NULL;
		}
		arr = PyObject_CallFunction(to_array, "Os", v, shmbus_dtype_name(s->dtype));
		if (!arr)
			return NULL;
		r = write_buffer(s, arr, 0);
		Py_DECREF(arr);
	} else {
		sbpy_fail(SHMBUS_ETYPE,
		          "state %R: write() takes a buffer of %zu bytes%s, not %.100s", s->name,
		          s->size, s->size <= 8 && shmbus_dtype_size(s->dtype) == s->size ?
		          " or a number" : "", Py_TYPE(v)->tp_name);
		return NULL;
	}
	if (r < 0)
		return NULL;
	Py_RETURN_NONE;
}

/* ---- read ------------------------------------------------------------ */

static int read_into(sbpy_state *s, void *p, size_t len, uint64_t *seq)
{
	int r;

	if (len >= BIG_COPY) {
		if (sbpy_claim(&s->h) < 0)
			return -1;
		Py_BEGIN_ALLOW_THREADS
		r = shmbus_state_read(s->st, p, len, seq);
		Py_END_ALLOW_THREADS
		sbpy_unclaim(&s->h);
	} else {
		r = shmbus_state_read(s->st, p, len, seq);
	}
	return r ? sbpy_raise_int(r) : 0;
}

static PyObject *read_value(sbpy_state *s, PyObject *out, uint64_t *seq)
{
	PyObject *res;
	Py_buffer b;
	uint64_t one;

	if (state_check(s) < 0)
		return NULL;
	if (out && out == s->robj) {
		if (read_into(s, s->rbuf.buf, s->size, seq) < 0)
			return NULL;
		Py_INCREF(out);
		return out;
	}
	if (out && out != Py_None) {
		if (PyObject_GetBuffer(out, &b, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
			return NULL;
		if (sbpy_check_format(&b, s->dtype, "this state") < 0) {
			PyBuffer_Release(&b);
			return NULL;
		}
		if ((size_t)b.len != s->size) {
			sbpy_fail(SHMBUS_EINVAL,
			          "state %R holds %zu-byte values (%s, shape %R); out has %zd bytes",
			          s->name, s->size, shmbus_dtype_name(s->dtype), s->py_shape, b.len);
			PyBuffer_Release(&b);
			return NULL;
		}
		if (read_into(s, b.buf, s->size, seq) < 0) {
			PyBuffer_Release(&b);
			return NULL;
		}
		if (s->st && cacheable(out)) {
			drop_cached(&s->robj, &s->rbuf);
			s->rbuf = b;      /* keeps the export and a reference to out */
			s->robj = out;
		} else {
			PyBuffer_Release(&b);
		}
		Py_INCREF(out);
		return out;
	}
	if (s->scalar && s->size <= sizeof(one)) {
		if (read_into(s, &one, s->size, seq) < 0)
			return NULL;
		return sbpy_unpack(s->dtype, &one);
	}
	if (!s->np_dtype) {
		res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)s->size);
		if (res && read_into(s, PyBytes_AS_STRING(res), s->size, seq) < 0)
			Py_CLEAR(res);
		return res;
	}
	{
		static PyObject *empty;
		PyObject *a[2] = {s->py_shape, s->np_dtype};

		if (!empty && !(empty = PyObject_GetAttrString(sbpy_numpy(), "empty")))
			return NULL;
		res = PyObject_Vectorcall(empty, a, 2, NULL);
	}
	if (!res)
		return NULL;
	if (PyObject_GetBuffer(res, &b, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
		Py_DECREF(res);
		return NULL;
	}
	if (read_into(s, b.buf, s->size, seq) < 0)
		Py_CLEAR(res);
	PyBuffer_Release(&b);
	return res;
}

/* read(out=None): parsed by hand, it is the hot path of a polling loop. */
static PyObject *state_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
	sbpy_state *s = (sbpy_state *)self;
	PyObject *out = NULL, *v;
	Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
	uint64_t seq = 0;

	if (nargs + nkw > 1 ||
	    (nkw == 1 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "out"))) {
		PyErr_SetString(PyExc_TypeError, "read(out=None)");
		return NULL;
	}
	if (nargs + nkw == 1)
		out = args[0];
	v = read_value(s, out, &seq);
	if (v)
		s->last_seq = seq;
	return v;
}

static PyObject *state_read_seq(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"out", NULL};
	sbpy_state *s = (sbpy_state *)self;
	PyObject *out = NULL, *v;
	uint64_t seq = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:read_with_seq", kwlist, &out))
		return NULL;
	v = read_value(s, out, &seq);
	if (!v)
		return NULL;
	s->last_seq = seq;
	return Py_BuildValue("(NK)", v, (unsigned long long)seq);
}

/* ---- wait ------------------------------------------------------------ */

struct wait_ctx {
	shmbus_state_t *st;
	uint64_t newer, seq;
};

static int wait_op(void *p, int64_t t)
{
	struct wait_ctx *c = p;

	return shmbus_state_wait(c->st, c->newer, t, &c->seq);
}

static PyObject *state_wait(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"newer_than", "timeout", NULL};
	sbpy_state *s = (sbpy_state *)self;
	PyObject *newer_o = Py_None, *to = Py_None;
	struct wait_ctx c;
	int64_t t;
	int r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:wait", kwlist, &newer_o, &to))
		return NULL;
	if (state_check(s) < 0 || sbpy_timeout(to, &t) < 0)
		return NULL;
	c.st = s->st;
	c.seq = 0;
	if (newer_o == Py_None) {
		c.newer = s->last_seq;
	} else {
		c.newer = PyLong_AsUnsignedLongLong(newer_o);
		if (c.newer == (uint64_t)-1 && PyErr_Occurred())
			return NULL;
	}
	c.seq = shmbus_state_seq(s->st);
	if (c.seq <= c.newer) {
		if (sbpy_claim(&s->h) < 0)
			return NULL;
		r = sbpy_block(wait_op, &c, t, 0);
		sbpy_unclaim(&s->h);
		if (r)
			return sbpy_raise(r);
	}
	s->last_seq = c.seq;
	return PyLong_FromUnsignedLongLong(c.seq);
}

/* ---- peek: the value in place ----------------------------------------- */

typedef struct {
	PyObject_HEAD
	sbpy_state *state;
	PyObject *view;
	uint64_t seq;
	char valid;
} sbpy_state_peek;

static PyObject *state_peek(PyObject *self, PyObject *unused)
{
	sbpy_state *s = (sbpy_state *)self;
	sbpy_state_peek *p;

	(void)unused;
	if (state_check(s) < 0)
		return NULL;
	p = PyObject_New(sbpy_state_peek, &sbpy_StatePeekType);
	if (!p)
		return NULL;
	Py_INCREF(s);
	p->state = s;
	p->view = NULL;
	p->seq = 0;
	p->valid = 0;
	return (PyObject *)p;
}

static PyObject *speek_enter(PyObject *self, PyObject *unused)
{
	sbpy_state_peek *p = (sbpy_state_peek *)self;
	sbpy_state *s = p->state;
	const void *ptr;
	PyObject *res;
	int r;

	(void)unused;
	if (state_check(s) < 0)
		return NULL;
	if (p->view) {
		PyErr_SetString(PyExc_RuntimeError, "peek() context entered twice");
		return NULL;
	}
	if ((r = shmbus_state_read_begin(s->st, &ptr, &p->seq)))
		return sbpy_raise(r);
	p->view = sbpy_view_new(s->h.bus, (PyObject *)s, (void *)ptr, (Py_ssize_t)s->size, 1,
	                        s->dtype, s->ndim, s->shape);
	if (!p->view)
		return NULL;
	if (sbpy_numpy() && s->dtype != SHMBUS_BYTES)
		res = PyObject_CallMethod(sbpy_numpy(), "asarray", "O", p->view);
	else
		res = PyMemoryView_FromObject(p->view);
	return res;
}

static PyObject *speek_exit(PyObject *self, PyObject *args)
{
	sbpy_state_peek *p = (sbpy_state_peek *)self;

	(void)args;
	if (!p->view)
		Py_RETURN_FALSE;
	sbpy_view_invalidate(p->view);
	Py_CLEAR(p->view);
	p->valid = (char)(p->state->st && shmbus_state_read_validate(p->state->st, p->seq) == 0);
	if (p->valid)
		p->state->last_seq = p->seq;
	Py_RETURN_FALSE;
}

static void speek_dealloc(PyObject *self)
{
	sbpy_state_peek *p = (sbpy_state_peek *)self;

	Py_XDECREF(p->view);
	Py_DECREF(p->state);
	PyObject_Free(self);
}

static PyMemberDef speek_members[] = {
	{"seq", T_ULONGLONG, offsetof(sbpy_state_peek, seq), READONLY,
	 "sequence number of the value looked at"},
	{"valid", T_BOOL, offsetof(sbpy_state_peek, valid), READONLY,
	 "after the block: 1 if the value stayed whole while it was used, 0 if the\n"
	 "writer overwrote it meanwhile (then what was read must be discarded)"},
	{NULL, 0, 0, 0, NULL},
};

static PyMethodDef speek_methods[] = {
	{"__enter__", speek_enter, METH_NOARGS, NULL},
	{"__exit__", speek_exit, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

PyTypeObject sbpy_StatePeekType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus.StatePeek",
	.tp_basicsize = sizeof(sbpy_state_peek),
	.tp_dealloc = speek_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Context manager from State.peek(): `with p as arr:` gives the latest value\n"
	          "in shared memory (read-only numpy array, or memoryview), valid inside\n"
	          "the block only; afterwards p.valid says whether it stayed whole.",
	.tp_methods = speek_methods,
	.tp_members = speek_members,
};

/* ---- the rest -------------------------------------------------------- */

static PyObject *state_close(PyObject *self, PyObject *unused)
{
	(void)unused;
	if (sbpy_check_idle((sbpy_child *)self) < 0)
		return NULL;
	state_close_fn((sbpy_child *)self);
	Py_RETURN_NONE;
}

static PyObject *state_enter(PyObject *self, PyObject *unused)
{
	(void)unused;
	if (state_check((sbpy_state *)self) < 0)
		return NULL;
	Py_INCREF(self);
	return self;
}

static PyObject *state_exit(PyObject *self, PyObject *args)
{
	(void)args;
	if (sbpy_check_idle((sbpy_child *)self) < 0)
		return NULL;
	state_close_fn((sbpy_child *)self);
	Py_RETURN_FALSE;
}

static PyObject *state_release_writer(PyObject *self, PyObject *unused)
{
	sbpy_state *s = (sbpy_state *)self;
	int r;

	(void)unused;
	if (state_check(s) < 0)
		return NULL;
	if ((r = shmbus_state_release_writer(s->st)))
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

static PyObject *state_info(PyObject *self, PyObject *unused)
{
	sbpy_state *s = (sbpy_state *)self;
	shmbus_channel_info_t i = {.size_of = sizeof(i)};
	PyObject *d, *w = NULL;
	int r;

	(void)unused;
	if (state_check(s) < 0)
		return NULL;
	memset(&i, 0, sizeof(i));
	i.size_of = sizeof(i);
	if ((r = shmbus_state_info(s->st, &i)))
		return sbpy_raise(r);
	d = sbpy_channel_info_dict(&i);
	if (d && PyDict_SetItemString(d, "writers", w = PyUnicode_FromString(
	                                  (i.flags & SHMBUS_CHANNEL_MANY_WRITERS) ? "many" : "one")) < 0)
		Py_CLEAR(d);
	Py_XDECREF(w);
	return d;
}

static PyObject *state_set_wait(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"policy", "spin", NULL};
	sbpy_state *s = (sbpy_state *)self;
	PyObject *pol = NULL, *spin = NULL;
	int64_t ns;
	int p, r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:set_wait", kwlist, &pol, &spin))
		return NULL;
	if (state_check(s) < 0 || sbpy_parse_wait(pol, spin, &p, &ns) < 0)
		return NULL;
	if ((r = shmbus_state_set_wait(s->st, p, ns)))
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

static PyObject *state_get_seq(PyObject *self, void *c)
{
	sbpy_state *s = (sbpy_state *)self;

	(void)c;
	if (state_check(s) < 0)
		return NULL;
	return PyLong_FromUnsignedLongLong(shmbus_state_seq(s->st));
}

static PyObject *state_get_dtype(PyObject *self, void *c)
{
	(void)c;
	return PyUnicode_FromString(shmbus_dtype_name(((sbpy_state *)self)->dtype));
}

static PyObject *state_get_closed(PyObject *self, void *c)
{
	(void)c;
	return PyBool_FromLong(((sbpy_state *)self)->st == NULL);
}

static PyObject *state_repr(PyObject *self)
{
	sbpy_state *s = (sbpy_state *)self;

	return PyUnicode_FromFormat("<shmbus.State %R %s shape=%R%s>", s->name,
	                            shmbus_dtype_name(s->dtype), s->py_shape,
	                            s->st ? "" : " closed");
}

static int state_traverse(PyObject *self, visitproc visit, void *arg)
{
	sbpy_state *s = (sbpy_state *)self;

	Py_VISIT(s->h.bus);
	return 0;
}

static void state_dealloc(PyObject *self)
{
	sbpy_state *s = (sbpy_state *)self;

	PyObject_GC_UnTrack(self);
	if (s->h.weaklist)
		PyObject_ClearWeakRefs(self);
	state_close_fn(&s->h);
	Py_XDECREF(s->name);
	Py_XDECREF(s->py_shape);
	Py_XDECREF(s->np_dtype);
	PyObject_GC_Del(self);
}

SBPY_AIO_METHOD(state_wait_async, "state_wait")
SBPY_AIO_METHOD(state_read_async, "state_read")

static PyMethodDef state_methods[] = {
	{"write", state_write, METH_O,
	 "write(value)\n\nPublish a new value: a buffer (numpy array, bytes, ...) of exactly the\n"
	 "value's size whose format matches the dtype, a number for a scalar, or\n"
	 "anything numpy converts to the dtype and shape. The first write makes\n"
	 "this process the writer; while it lives, other processes' writes raise\n"
	 "Busy, and a write never blocks. A channel made with writers='many' takes\n"
	 "writes from every process in turn (the last one wins); such a write waits\n"
	 "only for a write in progress, and raises Busy if a live writer stays\n"
	 "inside one write longer than 10 liveness timeouts (2 s by default)."},
	{"read", (PyCFunction)(void (*)(void))state_read, METH_FASTCALL | METH_KEYWORDS,
	 "read(out=None)\n\nThe latest complete value, never torn: a new numpy array of the\n"
	 "channel's dtype and shape (bytes without numpy or for dtype bytes; a\n"
	 "Python number for a scalar). With out=arr, fill that writable buffer in\n"
	 "place and return it (no allocation). NoData if never written."},
	{"read_with_seq", (PyCFunction)(void (*)(void))state_read_seq, METH_VARARGS | METH_KEYWORDS,
	 "read_with_seq(out=None) -> (value, seq): read() plus the value's sequence number."},
	{"wait", (PyCFunction)(void (*)(void))state_wait, METH_VARARGS | METH_KEYWORDS,
	 "wait(newer_than=None, timeout=None) -> seq\n\nBlock until a value newer than sequence "
	 "newer_than is published (default:\nthe last one this handle read or waited for); "
	 "returns its sequence.\nTimeout after `timeout` seconds (None: forever). Ctrl+C interrupts."},
	{"wait_async", (PyCFunction)(void (*)(void))state_wait_async, METH_VARARGS | METH_KEYWORDS,
	 "wait_async(newer_than=None, timeout=None, *, after=None) -> seq (a coroutine)\n\nwait() for asyncio: "
	 "awaits a value newer than newer_than (default:\nthe last one this handle read or waited "
	 "for) without blocking the loop."},
	{"read_async", (PyCFunction)(void (*)(void))state_read_async, METH_VARARGS | METH_KEYWORDS,
	 "read_async(out=None, timeout=None) -> value (a coroutine)\n\nAwait a value newer than "
	 "the last one this handle read (wait_async),\nthen read() it."},
	{"peek", state_peek, METH_NOARGS,
	 "peek() -> context manager\n\nZero-copy read: `with st.peek() as arr:` gives the latest "
	 "value in shared\nmemory (read-only), valid inside the block only. After the block, the\n"
	 "context's .valid is False if the writer overwrote the value meanwhile."},
	{"release_writer", state_release_writer, METH_NOARGS,
	 "release_writer(): give up the writer role (close does it too)."},
	{"info", state_info, METH_NOARGS, "info() -> dict describing the channel."},
	{"set_wait", (PyCFunction)(void (*)(void))state_set_wait, METH_VARARGS | METH_KEYWORDS,
	 "set_wait(policy, spin=None): 'spin_park' (default), 'spin' or 'park'; spin budget in seconds."},
	{"close", state_close, METH_NOARGS, "close(): release this handle (the channel stays)."},
	{"__enter__", state_enter, METH_NOARGS, NULL},
	{"__exit__", state_exit, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static PyMemberDef state_members[] = {
	{"name", T_OBJECT, offsetof(sbpy_state, name), READONLY, "channel name"},
	{"shape", T_OBJECT, offsetof(sbpy_state, py_shape), READONLY, "value shape; () for a scalar"},
	{"nbytes", T_PYSSIZET, offsetof(sbpy_state, size), READONLY, "bytes per value"},
	{"last_seq", T_ULONGLONG, offsetof(sbpy_state, last_seq), READONLY,
	 "sequence number of the last value this handle read or waited for"},
	{NULL, 0, 0, 0, NULL},
};

static PyGetSetDef state_getset[] = {
	{"seq", state_get_seq, NULL, "sequence number of the latest value (0: none yet)", NULL},
	{"dtype", state_get_dtype, NULL, "dtype name", NULL},
	{"closed", state_get_closed, NULL, "True once closed", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject sbpy_StateType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus.State",
	.tp_basicsize = sizeof(sbpy_state),
	.tp_dealloc = state_dealloc,
	.tp_repr = state_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "A state channel: the latest value of a fixed-size typed array, one writer,\n"
	          "any number of readers, never torn. Made by Bus.state(...).",
	.tp_traverse = state_traverse,
	.tp_weaklistoffset = offsetof(sbpy_state, h.weaklist),
	.tp_methods = state_methods,
	.tp_members = state_members,
	.tp_getset = state_getset,
};

int sbpy_state_init_types(PyObject *m)
{
	if (PyType_Ready(&sbpy_StateType) < 0 || PyType_Ready(&sbpy_StatePeekType) < 0)
		return -1;
	Py_INCREF(&sbpy_StateType);
	return PyModule_AddObject(m, "State", (PyObject *)&sbpy_StateType);
}

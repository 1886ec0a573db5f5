/*
 * module.c -- the shmbus._shmbus extension module: exceptions, the
 * conversions every handle uses, the GIL-free blocking loop, the zero-copy
 * buffer object, and the Bus type.
 *
 * Blocking: a library call that may wait runs with the GIL released, in
 * slices of at most SBPY_SLICE_NS; between slices (and whenever the call
 * reports SHMBUS_EINTR because a signal arrived) Python's signal handlers
 * run, so Ctrl+C raises KeyboardInterrupt within one slice.
 */
#include "sbpy.h"

#include <structmember.h>

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

PyObject *sbpy_Error, *sbpy_Timeout, *sbpy_Closed, *sbpy_NotFound, *sbpy_Exists,
	*sbpy_TypeMismatch, *sbpy_Corrupt, *sbpy_Busy, *sbpy_NoSpace, *sbpy_TooBig,
	*sbpy_NoData, *sbpy_OwnerDead, *sbpy_InvalidArgument, *sbpy_PermissionDenied;

static PyObject *numpy_mod;
static int numpy_tried;

PyObject *sbpy_numpy(void)
{
	if (!numpy_tried) {
		numpy_tried = 1;
		numpy_mod = PyImport_ImportModule("numpy");
		if (!numpy_mod)
			PyErr_Clear();
	}
	return numpy_mod;
}

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */
/* ---------------------------------------------------------------------- */

/* The exception class of each code: its name, the code whose class it
 * derives from (0: shmbus.Error itself), the builtin exception it also is
 * (NULL: none) and its doc. One line per entry of the header's
 * SHMBUS_ERRORS, so a code added there without its class here does not
 * compile. A class made for a code that once shared another's (EAGAIN
 * with ETIMEDOUT, EVERSION with ECORRUPT, ENOTRECOVERABLE with
 * EOWNERDEAD) derives from that class, so handlers written for it still
 * catch it. */
#define SBPY_EXC_OK              NULL, 0, NULL, NULL
#define SBPY_EXC_EINVAL          "InvalidArgument", 0, &PyExc_ValueError, \
	"An argument is invalid (the message says which)."
#define SBPY_EXC_ENOENT          "NotFound", 0, &PyExc_LookupError, \
	"No such bus or channel."
#define SBPY_EXC_EEXIST          "Exists", 0, NULL, \
	"A bus or channel of that name exists."
#define SBPY_EXC_ETYPE           "TypeMismatch", 0, &PyExc_TypeError, \
	"Another kind, dtype or shape than asked for."
#define SBPY_EXC_ECORRUPT        "Corrupt", 0, NULL, \
	"Shared contents fail validation (or another ABI version)."
#define SBPY_EXC_EVERSION        "VersionMismatch", SHMBUS_ECORRUPT, NULL, \
	"The segment was made by another ABI version of shmbus (a Corrupt)."
#define SBPY_EXC_ENOSPC          "NoSpace", 0, NULL, \
	"Out of room: heap, directory, peer table or /dev/shm."
#define SBPY_EXC_ETIMEDOUT       "Timeout", 0, &PyExc_TimeoutError, \
	"The timeout ran out (or a non-blocking call would block)."
#define SBPY_EXC_EAGAIN          "WouldBlock", SHMBUS_ETIMEDOUT, NULL, \
	"A call with timeout 0 would block: queue full or empty (a Timeout)."
#define SBPY_EXC_ECLOSED         "Closed", 0, NULL, \
	"End of stream: the queue is closed (and drained)."
#define SBPY_EXC_EBUSY           "Busy", 0, NULL, \
	"Held by another live process (e.g. a state's writer)."
#define SBPY_EXC_EOWNERDEAD      "OwnerDead", 0, NULL, \
	"A lock's previous owner died holding it."
#define SBPY_EXC_ESYS            "SystemCallFailed", 0, &PyExc_OSError, \
	"A system call failed (the message has the system's words)."
#define SBPY_EXC_EPERM           "PermissionDenied", 0, &PyExc_PermissionError, \
	"Refused by permissions or ownership (e.g. a bus owned by another user)."
#define SBPY_EXC_ETOOBIG         "TooBig", 0, &PyExc_ValueError, \
	"A message or value is larger than the channel allows."
#define SBPY_EXC_EINTR           "Interrupted", 0, &PyExc_InterruptedError, \
	"A signal interrupted a blocking call."
#define SBPY_EXC_ENODATA         "NoData", 0, NULL, \
	"Nothing to read yet (a state never written)."
#define SBPY_EXC_ENOMEM          "OutOfMemory", 0, &PyExc_MemoryError, \
	"The library ran out of memory."
#define SBPY_EXC_ESTATE          "OutOfOrder", 0, NULL, \
	"A call out of order (commit without reserve, a wait set member of a queue not joined, ...)."
#define SBPY_EXC_ENOTRECOVERABLE "NotRecoverable", SHMBUS_EOWNERDEAD, NULL, \
	"A lock whose owner died was unlocked without being marked consistent (an OwnerDead)."
#define SBPY_EXC_ELAPPED         "Lapped", 0, NULL, \
	"A detached consumer group was overtaken; messages were skipped."

static const struct sbpy_exc_spec {
	int code;
	const char *errname;
	const char *cls;
	int parent;
	PyObject **builtin;
	const char *doc;
} exc_specs[] = {
#define SPEC(name, value, words) { SHMBUS_##name, "SHMBUS_" #name, SBPY_EXC_##name },
	SHMBUS_ERRORS(SPEC)
#undef SPEC
};
#define N_EXC (sizeof(exc_specs) / sizeof(exc_specs[0]))

static PyObject *exc_classes[N_EXC];    /* by index into exc_specs */

static PyObject *error_class(int code)
{
	size_t i;

	for (i = 0; i < N_EXC; i++)
		if (exc_specs[i].code == code && exc_classes[i])
			return exc_classes[i];
	return sbpy_Error;      /* a code from a newer library */
}

/* Raise an instance of code's class with message msg (a new reference,
 * consumed) and .code set. */
static PyObject *raise_msg(int code, PyObject *msg)
{
	PyObject *cls = error_class(code), *exc, *c;

	if (!msg)
		return NULL;
	PyErr_Clear();          /* what we raise replaces any pending error */
	exc = PyObject_CallOneArg(cls, msg);
	Py_DECREF(msg);
	if (!exc)
		return NULL;
	c = PyLong_FromLong(code);
	if (!c || PyObject_SetAttrString(exc, "code", c) < 0) {
		Py_XDECREF(c);
		Py_DECREF(exc);
		return NULL;
	}
	Py_DECREF(c);
	c = PyUnicode_FromString(shmbus_errname(code));
	if (!c || PyObject_SetAttrString(exc, "errname", c) < 0) {
		Py_XDECREF(c);
		Py_DECREF(exc);
		return NULL;
	}
	Py_DECREF(c);
	PyErr_SetObject(cls, exc);
	Py_DECREF(exc);
	return NULL;
}

PyObject *sbpy_raise(int code)
{
	const char *detail = shmbus_last_error();

	if (code == SBPY_PYERR)
		return NULL;
	/* %s decodes with errors='replace': a detail naming bytes taken from
	 * a damaged segment still gives a message. */
	if (detail && *detail)
		return raise_msg(code, PyUnicode_FromFormat("%s: %s", shmbus_strerror(code), detail));
	return raise_msg(code, PyUnicode_FromString(shmbus_strerror(code)));
}

static PyObject *fail_v(int code, const char *fmt, va_list ap)
{
	PyObject *detail = PyUnicode_FromFormatV(fmt, ap), *msg;

	if (!detail)
		return NULL;
	/* The library's words for ETYPE speak of an existing channel; a value
	 * of the wrong type is the binding's finding. */
	msg = PyUnicode_FromFormat("%s: %U", code == SHMBUS_ETYPE ? "type mismatch"
	                                                         : shmbus_strerror(code), detail);
	Py_DECREF(detail);
	return raise_msg(code, msg);
}

PyObject *sbpy_fail(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail_v(code, fmt, ap);
	va_end(ap);
	return NULL;
}

int sbpy_fail_int(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail_v(code, fmt, ap);
	va_end(ap);
	return -1;
}

int sbpy_raise_int(int code)
{
	sbpy_raise(code);
	return -1;
}

int sbpy_closed(const void *handle, const char *what)
{
	if (handle)
		return 0;
	PyErr_Format(PyExc_ValueError, "%s is closed", what);
	return -1;
}

/* ---------------------------------------------------------------------- */
/* Timeouts and the blocking loop                                         */
/* ---------------------------------------------------------------------- */

int sbpy_timeout(PyObject *o, int64_t *ns)
{
	double s;

	if (o == NULL || o == Py_None) {
		*ns = SHMBUS_FOREVER;
		return 0;
	}
	if (!PyFloat_Check(o) && !PyIndex_Check(o))
		return sbpy_fail_int(SHMBUS_EINVAL,
		                     "timeout %.100s: give a number of seconds >= 0, or None",
		                     Py_TYPE(o)->tp_name);
	s = PyFloat_AsDouble(o);
	if (s == -1.0 && PyErr_Occurred()) {
		PyErr_Clear();
		s = 1e300;      /* an int beyond double: forever */
	}
	if (s != s || s < 0)
		return sbpy_fail_int(SHMBUS_EINVAL, "timeout %R: give a number of seconds >= 0, or None",
		                     o);
	*ns = s > 9e9 ? SHMBUS_FOREVER : (int64_t)(s * 1e9);
	return 0;
}

static int64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000ll + t.tv_nsec;
}

int sbpy_block(sbpy_op op, void *ctx, int64_t timeout_ns, int try_first)
{
	int64_t deadline = -1, now;
	int r;

	if (timeout_ns >= 0) {
		now = mono_ns();
		deadline = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
	}

	if (try_first || timeout_ns == 0) {
		r = op(ctx, 0);
		if (timeout_ns == 0 || (r != SHMBUS_EAGAIN && r != SHMBUS_ETIMEDOUT))
			return r;
	}
	for (;;) {
		int64_t slice = SBPY_SLICE_NS;

		if (deadline >= 0) {
			int64_t left = deadline - mono_ns();

			if (left < 0)
				left = 0;
			if (left < slice)
				slice = left;
		}
		Py_BEGIN_ALLOW_THREADS
		r = op(ctx, slice);
		Py_END_ALLOW_THREADS
		if (r != SHMBUS_ETIMEDOUT && r != SHMBUS_EINTR && r != SHMBUS_EAGAIN)
			return r;
		if (PyErr_CheckSignals() < 0)
			return SBPY_PYERR;
		if (deadline >= 0 && mono_ns() >= deadline)
			return r == SHMBUS_EINTR ? SHMBUS_ETIMEDOUT : r;
	}
}

/* ---------------------------------------------------------------------- */
/* dtypes                                                                 */
/* ---------------------------------------------------------------------- */

int sbpy_dtype(PyObject *o)
{
	PyObject *np, *dt = NULL, *name = NULL;
	const char *s;
	int d;

	if (o == (PyObject *)&PyFloat_Type)
		return SHMBUS_FLOAT64;
	if (o == (PyObject *)&PyLong_Type)
		return SHMBUS_INT64;
	if (o == (PyObject *)&PyBool_Type)
		return SHMBUS_BOOL;
	if (o == (PyObject *)&PyBytes_Type)
		return SHMBUS_BYTES;
	if (PyUnicode_Check(o)) {
		s = PyUnicode_AsUTF8(o);
		if (!s)
			return sbpy_fail_int(SHMBUS_EINVAL, "cannot use %R as a dtype", o);
		d = shmbus_dtype_parse(s);
		if (d < 0) {
			sbpy_fail(SHMBUS_EINVAL,
			          "unknown dtype '%s' (use bytes, int8..int64, uint8..uint64, float32, float64, bool)", s);
			return -1;
		}
		return d;
	}
	np = sbpy_numpy();
	if (np) {
		dt = PyObject_CallMethod(np, "dtype", "O", o);
		if (dt)
			name = PyObject_GetAttrString(dt, "name");
		Py_XDECREF(dt);
		if (name) {
			d = sbpy_dtype(name);
			Py_DECREF(name);
			return d;
		}
		PyErr_Clear();
	}
	sbpy_fail(SHMBUS_EINVAL, "cannot use %R as a dtype", o);
	return -1;
}

const char *sbpy_format(int dtype)
{
	static const char *f[SHMBUS_DTYPE_COUNT] = {
		"B", "b", "B", "h", "H", "i", "I", "q", "Q", "f", "d", "?",
	};
	return dtype >= 0 && dtype < SHMBUS_DTYPE_COUNT ? f[dtype] : "B";
}

/* 'f' float, 'i' signed, 'u' unsigned, 'b' bool, 0 unknown. */
static char format_kind(char c)
{
	switch (c) {
	case 'e': case 'f': case 'd': case 'g': return 'f';
	case 'b': case 'h': case 'i': case 'l': case 'q': case 'n': return 'i';
	case 'B': case 'H': case 'I': case 'L': case 'Q': case 'N': return 'u';
	case '?': return 'b';
	default: return 0;
	}
}

static char dtype_kind(int dtype)
{
	switch (dtype) {
	case SHMBUS_FLOAT32: case SHMBUS_FLOAT64: return 'f';
	case SHMBUS_INT8: case SHMBUS_INT16: case SHMBUS_INT32: case SHMBUS_INT64: return 'i';
	case SHMBUS_BOOL: return 'b';
	default: return 'u';
	}
}

int sbpy_check_format(const Py_buffer *v, int dtype, const char *what)
{
	const char *f = v->format;

	if (!f || dtype == SHMBUS_BYTES)
		return 0;
	while (*f == '@' || *f == '=' || *f == '<')
		f++;
	if (!strcmp(f, "B") || !strcmp(f, "c"))
		return 0;  /* raw bytes are accepted for any dtype */
	if (f[0] && !f[1] && format_kind(f[0]) == dtype_kind(dtype) &&
	    (size_t)v->itemsize == shmbus_dtype_size(dtype))
		return 0;
	sbpy_fail(SHMBUS_ETYPE, "%s holds %s; got a buffer of format '%s' (itemsize %zd)",
	          what, shmbus_dtype_name(dtype), v->format, v->itemsize);
	return -1;
}

/* ---------------------------------------------------------------------- */
/* Zero-copy buffer exporter                                              */
/* ---------------------------------------------------------------------- */

typedef struct {
	PyObject_HEAD
	sbpy_bus *bus;
	PyObject *owner;
	void *ptr;
	Py_ssize_t len;
	int readonly, dtype, ndim, valid;
	Py_ssize_t shape[SHMBUS_MAX_DIMS + 1], strides[SHMBUS_MAX_DIMS + 1];
} sbpy_view;

PyObject *sbpy_view_new(sbpy_bus *bus, PyObject *owner, void *ptr, Py_ssize_t len,
                        int readonly, int dtype, int ndim, const uint64_t *shape)
{
	sbpy_view *v = PyObject_New(sbpy_view, &sbpy_ViewType);
	int i;

	if (!v)
		return NULL;
	Py_INCREF(bus);
	v->bus = bus;
	Py_XINCREF(owner);
	v->owner = owner;
	v->ptr = ptr;
	v->len = len;
	v->readonly = readonly;
	v->dtype = dtype;
	v->valid = 1;
	if (dtype < 0 || ndim <= 0 || ndim > SHMBUS_MAX_DIMS) {
		v->ndim = 1;
		v->dtype = SHMBUS_BYTES;
		v->shape[0] = len;
		v->strides[0] = 1;
	} else {
		Py_ssize_t st = (Py_ssize_t)shmbus_dtype_size(dtype);

		v->ndim = ndim;
		for (i = ndim - 1; i >= 0; i--) {
			v->shape[i] = (Py_ssize_t)shape[i];
			v->strides[i] = st;
			st *= (Py_ssize_t)shape[i];
		}
	}
	return (PyObject *)v;
}

void sbpy_view_invalidate(PyObject *o)
{
	((sbpy_view *)o)->valid = 0;
}

static int view_getbuffer(PyObject *o, Py_buffer *b, int flags)
{
	sbpy_view *v = (sbpy_view *)o;

	if (!v->valid || !v->bus->bus) {
		PyErr_SetString(PyExc_BufferError, "the zero-copy view is no longer valid");
		b->obj = NULL;
		return -1;
	}
	if ((flags & PyBUF_WRITABLE) && v->readonly) {
		PyErr_SetString(PyExc_BufferError, "the zero-copy view is read-only");
		b->obj = NULL;
		return -1;
	}
	b->buf = v->ptr;
	b->obj = o;
	Py_INCREF(o);
	b->len = v->len;
	b->readonly = v->readonly;
	b->itemsize = (Py_ssize_t)shmbus_dtype_size(v->dtype);
	b->format = (flags & PyBUF_FORMAT) ? (char *)sbpy_format(v->dtype) : NULL;
	b->ndim = v->ndim;
	b->shape = (flags & PyBUF_ND) == PyBUF_ND ? v->shape : NULL;
	b->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? v->strides : NULL;
	b->suboffsets = NULL;
	b->internal = NULL;
	if (!b->shape) {
		b->ndim = 1;
		b->itemsize = 1;
		b->format = (flags & PyBUF_FORMAT) ? "B" : NULL;
	}
	v->bus->exports++;
	return 0;
}

static void view_releasebuffer(PyObject *o, Py_buffer *b)
{
	sbpy_bus *bus = ((sbpy_view *)o)->bus;

	(void)b;
	if (--bus->exports == 0 && bus->zombie) {
		shmbus_bus_close(bus->zombie);
		bus->zombie = NULL;
	}
}

static void view_dealloc(PyObject *o)
{
	sbpy_view *v = (sbpy_view *)o;

	Py_XDECREF(v->owner);
	Py_DECREF(v->bus);
	PyObject_Free(o);
}

static PyBufferProcs view_as_buffer = {view_getbuffer, view_releasebuffer};

PyTypeObject sbpy_ViewType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus._View",
	.tp_basicsize = sizeof(sbpy_view),
	.tp_dealloc = view_dealloc,
	.tp_as_buffer = &view_as_buffer,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Exports shared memory through the buffer protocol (internal).",
};

/* ---------------------------------------------------------------------- */
/* Bus                                                                    */
/* ---------------------------------------------------------------------- */

void sbpy_child_attach(sbpy_child *c, sbpy_bus *bus, void (*close_fn)(sbpy_child *))
{
	Py_INCREF(bus);
	c->bus = bus;
	c->busy = 0;
	c->wsrefs = 0;
	c->close_fn = close_fn;
	c->next = bus->children.next;
	c->prev = &bus->children;
	bus->children.next->prev = c;
	bus->children.next = c;
}

void sbpy_child_detach(sbpy_child *c)
{
	if (!c->bus)
		return;
	c->prev->next = c->next;
	c->next->prev = c->prev;
	c->next = c->prev = NULL;
	Py_CLEAR(c->bus);
}

static int bus_check(sbpy_bus *b)
{
	return sbpy_closed(b->bus, "bus");
}

static int bus_fill_opts(shmbus_bus_opts_t *o, unsigned long long size, unsigned int mode,
                         unsigned int max_channels, unsigned int max_peers, int foreign)
{
	shmbus_bus_opts_init(o);
	o->size = size;
	o->mode = mode;
	o->max_channels = max_channels;
	o->max_peers = max_peers;
	if (foreign)
		o->flags |= SHMBUS_BUS_ALLOW_FOREIGN_OWNER;
	return 0;
}

struct bus_wait_ctx {
	const char *name;
	shmbus_bus_opts_t *opts;
	shmbus_bus_t *out;
};

static int bus_wait_op(void *p, int64_t t)
{
	struct bus_wait_ctx *c = p;

	return shmbus_bus_wait_open(c->name, c->opts, t, &c->out);
}

static int bus_init(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "create", "size", "mode", "max_channels", "max_peers",
	                         "unlink", "wait", "allow_foreign_owner", NULL};
	sbpy_bus *b = (sbpy_bus *)self;
	PyObject *name, *create = Py_False, *wait = Py_None;
	Py_ssize_t size = 0, maxc = 0, maxp = 0;
	unsigned int mode = 0;
	int unlink_on_close = 0, r, created = 0, foreign = 0;
	shmbus_bus_opts_t o;
	shmbus_bus_t *bus = NULL;
	const char *n;

	if (b->bus) {
		PyErr_SetString(PyExc_RuntimeError, "Bus is already open");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kw, "U|OnInnpOp:Bus", kwlist, &name, &create, &size,
	                                 &mode, &maxc, &maxp, &unlink_on_close, &wait, &foreign))
		return -1;
	n = sbpy_name_arg(name, "bus");
	if (!n)
		return -1;
	if (size < 0 || maxc < 0 || maxc > UINT32_MAX || maxp < 0 || maxp > UINT32_MAX ||
	    mode > 07777) {
		sbpy_fail(SHMBUS_EINVAL,
		          "bus %R: size %zd, mode 0x%x, max_channels %zd, max_peers %zd out of range",
		          name, size, mode, maxc, maxp);
		return -1;
	}
	bus_fill_opts(&o, (unsigned long long)size, mode, (unsigned int)maxc, (unsigned int)maxp,
	              foreign);
	if (create == Py_None) {
		r = shmbus_bus_open_or_create(n, &o, &bus, &created);
	} else if (PyObject_IsTrue(create)) {
		r = shmbus_bus_create(n, &o, &bus);
		created = r == 0;
	} else if (wait != Py_None) {
		struct bus_wait_ctx c = {n, &o, NULL};
		int64_t t;

		if (sbpy_timeout(wait, &t) < 0)
			return -1;
		r = sbpy_block(bus_wait_op, &c, t, 0);
		bus = c.out;
		if (r == SHMBUS_ETIMEDOUT) {
			/* The library's message names the last slice's timeout. */
			char secs[32];

			snprintf(secs, sizeof(secs), "%.3f", (double)t / 1e9);
			return sbpy_fail_int(r, "bus %R did not appear within %s s", name, secs);
		}
	} else {
		r = shmbus_bus_open(n, &o, &bus);
	}
	if (r == SHMBUS_EPERM && !foreign && strstr(shmbus_last_error(), "ALLOW_FOREIGN_OWNER"))
		return sbpy_fail_int(r, "%s; Bus(..., allow_foreign_owner=True) accepts a bus shared "
		                     "by another user (docs/python.md, \"Buses shared by several users\")",
		                     shmbus_last_error());
	if (r)
		return sbpy_raise_int(r);
	b->bus = bus;
	b->pid = getpid();
	b->created = created;
	b->unlink_on_close = unlink_on_close;
	Py_INCREF(name);
	Py_XSETREF(b->name, name);
	return 0;
}

static PyObject *bus_new(PyTypeObject *t, PyObject *args, PyObject *kw)
{
	sbpy_bus *b = (sbpy_bus *)t->tp_alloc(t, 0);

	(void)args;
	(void)kw;
	if (!b)
		return NULL;
	b->children.next = b->children.prev = &b->children;
	return (PyObject *)b;
}

/* Close every child handle, then the bus; optionally unlink. */
static int bus_do_close(sbpy_bus *b, int unlink)
{
	int r;

	if (!b->bus)
		return 0;
	{
		sbpy_child *c;

		for (c = b->children.next; c != &b->children; c = c->next)
			if (sbpy_check_idle(c) < 0)
				return -1;
	}
	if (b->pid != getpid()) {
		/* Inherited through fork: the parent still uses the segment. */
		while (b->children.next != &b->children) {
			sbpy_child *c = b->children.next;

			Py_INCREF(c);
			c->close_fn(c);
			sbpy_child_detach(c);
			Py_DECREF(c);
		}
		b->bus = NULL;
		return 0;
	}
	while (b->children.next != &b->children) {
		sbpy_child *c = b->children.next;

		Py_INCREF(c);
		c->close_fn(c);
		sbpy_child_detach(c);  /* close_fn normally did it; harmless twice */
		Py_DECREF(c);
	}
	if (b->exports > 0) {
		/* Zero-copy views still point into the mapping: unmap when the
		 * last one goes (view_releasebuffer), never under them. */
		b->zombie = b->bus;
		r = 0;
	} else {
		r = shmbus_bus_close(b->bus);
	}
	b->bus = NULL;
	if (unlink || (b->unlink_on_close && b->created)) {
		int u = shmbus_bus_unlink(PyUnicode_AsUTF8(b->name));

		if (u && u != SHMBUS_ENOENT && !r)
			r = u;
	}
	if (r)
		return sbpy_raise_int(r);
	return 0;
}

static PyObject *bus_close(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"unlink", NULL};
	int unlink = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:close", kwlist, &unlink))
		return NULL;
	if (bus_do_close((sbpy_bus *)self, unlink) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *bus_unlink(PyObject *self, PyObject *unused)
{
	sbpy_bus *b = (sbpy_bus *)self;
	int r;

	(void)unused;
	r = shmbus_bus_unlink(PyUnicode_AsUTF8(b->name));
	if (r)
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

static PyObject *bus_enter(PyObject *self, PyObject *unused)
{
	(void)unused;
	if (bus_check((sbpy_bus *)self) < 0)
		return NULL;
	Py_INCREF(self);
	return self;
}

static PyObject *bus_exit(PyObject *self, PyObject *args)
{
	(void)args;
	if (bus_do_close((sbpy_bus *)self, 0) < 0)
		return NULL;
	Py_RETURN_FALSE;
}

static void bus_dealloc(PyObject *self)
{
	sbpy_bus *b = (sbpy_bus *)self;

	if (b->weaklist)
		PyObject_ClearWeakRefs(self);
	if (b->bus && bus_do_close(b, 0) < 0)
		PyErr_WriteUnraisable(self);
	Py_XDECREF(b->name);
	Py_TYPE(self)->tp_free(self);
}

static PyObject *bus_info(PyObject *self, PyObject *unused)
{
	sbpy_bus *b = (sbpy_bus *)self;
	shmbus_bus_info_t i = {.size_of = sizeof(i)};
	int r;

	(void)unused;
	if (bus_check(b) < 0)
		return NULL;
	memset(&i, 0, sizeof(i));
	i.size_of = sizeof(i);
	if ((r = shmbus_bus_info(b->bus, &i)))
		return sbpy_raise(r);
	return Py_BuildValue("{s:I,s:K,s:K,s:K,s:I,s:I,s:I,s:I,s:I,s:I,s:K,s:O}",
	                     "abi_version", i.abi_version, "size", (unsigned long long)i.size,
	                     "heap_size", (unsigned long long)i.heap_size,
	                     "heap_used", (unsigned long long)i.heap_used,
	                     "max_channels", i.max_channels, "channels", i.channels,
	                     "max_peers", i.max_peers, "peers", i.peers,
	                     "live_peers", i.live_peers, "creator_pid", i.creator_pid,
	                     "create_time_ns", (unsigned long long)i.create_time_ns,
	                     "persistent", i.persistent ? Py_True : Py_False);
}

PyObject *sbpy_shm_name(const char *s, size_t cap, const char *what)
{
	size_t n = strnlen(s, cap);
	PyObject *raw;

	if (n < cap && shmbus_name_check(s) == 0)
		return PyUnicode_FromStringAndSize(s, (Py_ssize_t)n);
	raw = PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
	if (!raw)
		return NULL;
	sbpy_fail(SHMBUS_ECORRUPT, "%s name %R%s is not a valid name (a damaged segment?)", what,
	          raw, n == cap ? " (no NUL)" : "");
	Py_DECREF(raw);
	return NULL;
}

const char *sbpy_name_arg(PyObject *name, const char *what)
{
	const char *s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;

	if (s)
		return s;
	PyErr_Clear();
	sbpy_fail(SHMBUS_EINVAL, "%s name %R: use A-Z a-z 0-9 _ - .", what, name);
	return NULL;
}

PyObject *sbpy_channel_info_dict(const shmbus_channel_info_t *c)
{
	PyObject *d, *shape, *name = sbpy_shm_name(c->name, sizeof(c->name), "channel");
	uint32_t k;

	if (!name)
		return NULL;
	shape = PyTuple_New(c->ndim <= SHMBUS_MAX_DIMS ? c->ndim : 0);
	if (!shape) {
		Py_DECREF(name);
		return NULL;
	}
	for (k = 0; k < c->ndim && k < SHMBUS_MAX_DIMS; k++)
		PyTuple_SET_ITEM(shape, k, PyLong_FromUnsignedLongLong(c->shape[k]));
	d = Py_BuildValue("{s:N,s:s,s:s,s:N,s:K,s:K,s:K,s:K}", "name", name, "kind",
	                  shmbus_kind_name(c->kind), "dtype",
	                  shmbus_dtype_name(c->dtype) ? shmbus_dtype_name(c->dtype) : "?",
	                  "shape", shape, "value_size", (unsigned long long)c->value_size,
	                  "capacity", (unsigned long long)c->capacity, "area_size",
	                  (unsigned long long)c->area_size, "seq", (unsigned long long)c->seq);
	/* a queue's: its cell size, 0 for a queue of slots */
	if (d && c->kind == SHMBUS_KIND_QUEUE) {
		PyObject *cb = PyLong_FromUnsignedLongLong(c->cell_bytes);

		if (!cb || PyDict_SetItemString(d, "cell_bytes", cb) < 0)
			Py_CLEAR(d);
		Py_XDECREF(cb);
	}
	return d;
}

static PyObject *bus_channels(PyObject *self, PyObject *unused)
{
	sbpy_bus *b = (sbpy_bus *)self;
	shmbus_channel_info_t *infos;
	size_t n = 0, k;
	PyObject *list;
	int r;

	(void)unused;
	if (bus_check(b) < 0)
		return NULL;
	if ((r = shmbus_channel_list(b->bus, NULL, 0, &n)) && r != SHMBUS_ETOOBIG)
		return sbpy_raise(r);
	infos = PyMem_Calloc(n + 1, sizeof(*infos));
	if (!infos)
		return PyErr_NoMemory();
	for (k = 0; k <= n; k++)
		infos[k].size_of = sizeof(*infos);
	r = shmbus_channel_list(b->bus, infos, n + 1, &n);
	if (r) {
		PyMem_Free(infos);
		return sbpy_raise(r);
	}
	list = PyList_New(0);
	for (k = 0; list && k < n; k++) {
		PyObject *d = sbpy_channel_info_dict(&infos[k]);

		if (!d || PyList_Append(list, d) < 0)
			Py_CLEAR(list);
		Py_XDECREF(d);
	}
	PyMem_Free(infos);
	return list;
}

static PyObject *bus_delete(PyObject *self, PyObject *arg)
{
	sbpy_bus *b = (sbpy_bus *)self;
	const char *n;
	int r;

	if (bus_check(b) < 0)
		return NULL;
	if (!(n = sbpy_name_arg(arg, "channel")))
		return NULL;
	if ((r = shmbus_channel_delete(b->bus, n)))
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

static PyObject *bus_gc(PyObject *self, PyObject *unused)
{
	sbpy_bus *b = (sbpy_bus *)self;
	uint32_t n = 0;
	int r;

	(void)unused;
	if (bus_check(b) < 0)
		return NULL;
	if ((r = shmbus_bus_gc(b->bus, &n)))
		return sbpy_raise(r);
	return PyLong_FromUnsignedLong(n);
}

static PyObject *bus_set_liveness(PyObject *self, PyObject *arg)
{
	sbpy_bus *b = (sbpy_bus *)self;
	int64_t ns;
	int r;

	if (bus_check(b) < 0 || sbpy_timeout(arg, &ns) < 0)
		return NULL;
	if ((r = shmbus_bus_set_liveness(b->bus, ns)))
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

static PyObject *bus_peers(PyObject *self, PyObject *unused)
{
	sbpy_bus *b = (sbpy_bus *)self;
	shmbus_peer_info_t p[256];
	size_t n = 0, k;
	PyObject *list;
	int r;

	(void)unused;
	if (bus_check(b) < 0)
		return NULL;
	if ((r = shmbus_bus_peers(b->bus, p, 256, &n)) && r != SHMBUS_ETOOBIG)
		return sbpy_raise(r);
	list = PyList_New(0);
	for (k = 0; list && k < n && k < 256; k++) {
		PyObject *d = Py_BuildValue("{s:I,s:O,s:K,s:K}", "pid", p[k].pid, "alive",
		                            p[k].alive ? Py_True : Py_False, "start_time",
		                            (unsigned long long)p[k].start_time, "attach_time_ns",
		                            (unsigned long long)p[k].attach_time_ns);

		if (!d || PyList_Append(list, d) < 0)
			Py_CLEAR(list);
		Py_XDECREF(d);
	}
	return list;
}

static PyObject *bus_get_closed(PyObject *self, void *c)
{
	(void)c;
	return PyBool_FromLong(((sbpy_bus *)self)->bus == NULL);
}

static PyObject *bus_get_created(PyObject *self, void *c)
{
	(void)c;
	return PyBool_FromLong(((sbpy_bus *)self)->created);
}

static PyObject *bus_repr(PyObject *self)
{
	sbpy_bus *b = (sbpy_bus *)self;

	return PyUnicode_FromFormat("<shmbus.Bus %R%s>", b->name ? b->name : Py_None,
	                            b->bus ? "" : " closed");
}

/* Methods implemented in state.c, queue.c, sync.c, containers.c. */
PyObject *sbpy_bus_state(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sbpy_bus_queue(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sbpy_bus_lock(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sbpy_bus_event(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sbpy_bus_semaphore(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sbpy_bus_turn(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sbpy_bus_array(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sbpy_bus_raw_dict(PyObject *self, PyObject *args, PyObject *kw);
PyObject *sbpy_bus_raw_list(PyObject *self, PyObject *args, PyObject *kw);

static PyMethodDef bus_methods[] = {
	{"state", (PyCFunction)(void (*)(void))sbpy_bus_state, METH_VARARGS | METH_KEYWORDS,
	 "state(name, dtype='float64', shape=(), create=True, nbuf=0, wait_policy='spin_park', spin=None,\n"
	 "      writers=None) -> State\n\n"
	 "Open (by default create) the state channel `name`: the latest value of a\n"
	 "fixed-size typed array. An existing channel must have the same dtype and\n"
	 "shape (TypeMismatch otherwise); with create=False and dtype=None any\n"
	 "existing type is accepted. shape=() is a scalar. writers='many' makes a\n"
	 "channel every process may write, in turn (the last write wins);\n"
	 "writers='one' (the default when creating) keeps one writer process at a\n"
	 "time; None opens an existing channel as it was made, and a channel made\n"
	 "otherwise than asked is TypeMismatch."},
	{"queue", (PyCFunction)(void (*)(void))sbpy_bus_queue, METH_VARARGS | METH_KEYWORDS,
	 "queue(name, slots=0, max_msg=0, create=True, group=None, earliest=False, durable=False,\n"
	 "      max_groups=0, max_members=0, max_producers=0, wait_policy=None, spin=None,\n"
	 "      cell_bytes=0) -> Queue\n\n"
	 "Open (by default create) the queue channel `name` (0 means the library\n"
	 "default: 1024 slots of up to 4096 bytes, fewer slots on a bus with less\n"
	 "room). With group=..., join that\n"
	 "consumer group at once. cell_bytes > 0 makes a queue of cells: `slots`\n"
	 "cells of cell_bytes, a message taking as many as it needs, so small and\n"
	 "large messages share the ring's memory (max_msg 0: the whole ring)."},
	{"lock", (PyCFunction)(void (*)(void))sbpy_bus_lock, METH_VARARGS | METH_KEYWORDS,
	 "lock(name, create=True) -> Lock: a robust process-shared mutex."},
	{"event", (PyCFunction)(void (*)(void))sbpy_bus_event, METH_VARARGS | METH_KEYWORDS,
	 "event(name, create=True) -> Event: a manual-reset event."},
	{"semaphore", (PyCFunction)(void (*)(void))sbpy_bus_semaphore, METH_VARARGS | METH_KEYWORDS,
	 "semaphore(name, initial=0, create=True) -> Semaphore: a counting semaphore."},
	{"turn", (PyCFunction)(void (*)(void))sbpy_bus_turn, METH_VARARGS | METH_KEYWORDS,
	 "turn(name, max_parties=8, create=True, register=True) -> Turn: turn-taking in\n"
	 "registration order; `with turn:` waits for this party's turn and hands it on."},
	{"array", (PyCFunction)(void (*)(void))sbpy_bus_array, METH_VARARGS | METH_KEYWORDS,
	 "array(name, dtype='int64', length=0, create=True) -> Array with atomic element operations."},
	{"_raw_dict", (PyCFunction)(void (*)(void))sbpy_bus_raw_dict, METH_VARARGS | METH_KEYWORDS,
	 "_raw_dict(name, create=True, area_bytes=0) -> a bytes-to-bytes shared map (use Bus.dict)."},
	{"_raw_list", (PyCFunction)(void (*)(void))sbpy_bus_raw_list, METH_VARARGS | METH_KEYWORDS,
	 "_raw_list(name, create=True, area_bytes=0) -> a shared list of byte strings (use Bus.list)."},
	{"close", (PyCFunction)(void (*)(void))bus_close, METH_VARARGS | METH_KEYWORDS,
	 "close(unlink=False)\n\nClose every channel handle of this bus, then detach from it.\n"
	 "With unlink=True (or Bus(..., unlink=True) on the creating handle) the\n"
	 "name is removed too. If zero-copy views (peek) are still alive, the\n"
	 "mapping stays until the last of them is released."},
	{"unlink", bus_unlink, METH_NOARGS, "unlink()\n\nRemove the bus's name now; open mappings stay valid."},
	{"info", bus_info, METH_NOARGS, "info() -> dict: sizes, heap use, channels and peers."},
	{"channels", bus_channels, METH_NOARGS, "channels() -> list of dicts describing each live channel."},
	{"delete_channel", bus_delete, METH_O, "delete_channel(name): remove a channel from the directory."},
	{"peers", bus_peers, METH_NOARGS, "peers() -> list of dicts: the processes attached."},
	{"gc", bus_gc, METH_NOARGS, "gc() -> int: reap dead peers, release what they held."},
	{"set_liveness", bus_set_liveness, METH_O,
	 "set_liveness(seconds): how long a blocked call waits before checking peers are alive."},
	{"__enter__", bus_enter, METH_NOARGS, NULL},
	{"__exit__", bus_exit, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static PyMemberDef bus_members[] = {
	{"name", T_OBJECT, offsetof(sbpy_bus, name), READONLY, "the bus name"},
	{NULL, 0, 0, 0, NULL},
};

static PyGetSetDef bus_getset[] = {
	{"closed", bus_get_closed, NULL, "True once closed", NULL},
	{"created", bus_get_created, NULL, "True if this handle created the bus", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject sbpy_BusType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus.Bus",
	.tp_basicsize = sizeof(sbpy_bus),
	.tp_dealloc = bus_dealloc,
	.tp_repr = bus_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = "Bus(name, create=False, size=0, mode=0o600, max_channels=0, max_peers=0,\n"
	          "    unlink=False, wait=None, allow_foreign_owner=False)\n\n"
	          "A shared-memory bus: one named segment holding named channels.\n\n"
	          "name: a plain name (lives in /dev/shm) or 'file:/path' (a file that\n"
	          "persists). create=False opens an existing bus (NotFound if missing;\n"
	          "with wait=seconds, waits for it to appear); create=True makes a new one\n"
	          "(Exists if taken); create=None opens or creates. size in bytes (0: 16\n"
	          "MiB), mode the permission bits at creation (0: 0o600).\n"
	          "unlink=True removes the name when the creating handle closes.\n"
	          "allow_foreign_owner=True opens a bus owned by another user, or whose\n"
	          "mode was widened after creation (refused by default: PermissionDenied);\n"
	          "for a bus shared by a group, e.g. created with mode=0o660.\n\n"
	          "Use as a context manager: `with shmbus.Bus('b', create=True, unlink=True) as bus:`.\n"
	          "Channels: bus.state(...), bus.queue(...), bus.lock/event/semaphore/turn(...),\n"
	          "bus.array/dict/list(...).",
	.tp_weaklistoffset = offsetof(sbpy_bus, weaklist),
	.tp_methods = bus_methods,
	.tp_members = bus_members,
	.tp_getset = bus_getset,
	.tp_init = bus_init,
	.tp_new = bus_new,
};

/* ---------------------------------------------------------------------- */
/* Module                                                                 */
/* ---------------------------------------------------------------------- */

static PyObject *mod_unlink(PyObject *m, PyObject *arg)
{
	const char *n = sbpy_name_arg(arg, "bus");
	int r;

	(void)m;
	if (!n)
		return NULL;
	if ((r = shmbus_bus_unlink(n)))
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

static int list_cb(const char *name, void *arg)
{
	/* Any local user may create a file with our prefix: decode as
	 * os.listdir() does (undecodable bytes as surrogate escapes) rather
	 * than fail the whole listing. */
	PyObject *s = PyUnicode_DecodeFSDefault(name);
	int r = s ? PyList_Append((PyObject *)arg, s) : -1;

	Py_XDECREF(s);
	return r < 0 ? 1 : 0;
}

static PyObject *mod_list(PyObject *m, PyObject *unused)
{
	PyObject *list = PyList_New(0);
	int r;

	(void)m;
	(void)unused;
	if (!list)
		return NULL;
	r = shmbus_list(list_cb, list);
	if (r == 1 && PyErr_Occurred()) {
		Py_DECREF(list);
		return NULL;
	}
	if (r < 0) {
		Py_DECREF(list);
		return sbpy_raise(r);
	}
	return list;
}

static PyObject *mod_version(PyObject *m, PyObject *unused)
{
	(void)m;
	(void)unused;
	return PyUnicode_FromString(shmbus_version(NULL, NULL, NULL));
}

static PyObject *mod_errname(PyObject *m, PyObject *arg)
{
	int overflow;
	long code;

	(void)m;
	if (!PyLong_Check(arg)) {
		PyErr_Format(PyExc_TypeError, "errname() takes an int, not %.100s",
		             Py_TYPE(arg)->tp_name);
		return NULL;
	}
	code = PyLong_AsLongAndOverflow(arg, &overflow);
	if (code == -1 && PyErr_Occurred())
		return NULL;
	if (overflow || code < INT_MIN || code > INT_MAX)
		code = INT_MIN;         /* no code: "SHMBUS_E?" */
	return PyUnicode_FromString(shmbus_errname((int)code));
}

static PyObject *mod_error(PyObject *m, PyObject *args)
{
	PyObject *msg, *type, *value, *tb;
	int code;

	(void)m;
	if (!PyArg_ParseTuple(args, "iU:_error", &code, &msg))
		return NULL;
	sbpy_fail(code, "%U", msg);
	PyErr_Fetch(&type, &value, &tb);
	Py_XDECREF(type);
	Py_XDECREF(tb);
	return value;
}

static PyObject *mod_pack(PyObject *m, PyObject *args);

static PyMethodDef mod_methods[] = {
	{"_pack", mod_pack, METH_VARARGS,
	 "_pack(dtype, value) -> bytes: one element, under the write conversion rule."},
	{"_error", mod_error, METH_VARARGS,
	 "_error(code, message) -> the exception for code, with .code set (raise it)."},
	{"unlink", mod_unlink, METH_O, "unlink(name): remove a bus's name (NotFound if absent)."},
	{"list_buses", mod_list, METH_NOARGS, "list_buses() -> list of the bus names in /dev/shm."},
	{"library_version", mod_version, METH_NOARGS, "library_version() -> the C library's version."},
	{"errname", mod_errname, METH_O,
	 "errname(code) -> the code's name (\"SHMBUS_EINVAL\"); \"SHMBUS_E?\" for an unknown code."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {
	PyModuleDef_HEAD_INIT, "shmbus._shmbus",
	"The C core of the shmbus package (import shmbus instead).", -1, mod_methods,
	NULL, NULL, NULL, NULL,
};

static PyObject *new_exc(PyObject *m, const char *name, PyObject *bases, PyObject *dict,
                         const char *doc)
{
	char full[64];
	PyObject *e;

	snprintf(full, sizeof(full), "shmbus.%s", name);
	e = bases ? PyErr_NewExceptionWithDoc(full, doc, bases, dict) : NULL;
	Py_XDECREF(bases);
	Py_XDECREF(dict);
	if (!e)
		return NULL;
	Py_INCREF(e);
	if (PyModule_AddObject(m, name, e) < 0) {
		Py_DECREF(e);
		return NULL;
	}
	return e;
}

/* shmbus.Error, then one class per code of exc_specs (a parent before the
 * classes deriving from it: the table lists every parent first, as its
 * code is nearer 0), each with the class attributes code and errname. */
static int init_errors(PyObject *m)
{
	size_t i, j;

	sbpy_Error = new_exc(m, "Error", Py_BuildValue("(O)", PyExc_Exception), NULL,
	                     "Base of every shmbus error; .code is the SHMBUS_E* code, "
	                     ".errname its name (\"SHMBUS_EINVAL\").");
	if (!sbpy_Error)
		return -1;
	for (i = 0; i < N_EXC; i++) {
		const struct sbpy_exc_spec *x = &exc_specs[i];
		PyObject *parent = sbpy_Error, *bases, *dict;

		if (!x->cls)
			continue;       /* SHMBUS_OK */
		for (j = 0; j < i && x->parent; j++)
			if (exc_specs[j].code == x->parent)
				parent = exc_classes[j];
		if (!parent) {
			PyErr_Format(PyExc_SystemError, "%s: parent class not made yet", x->cls);
			return -1;
		}
		bases = x->builtin ? PyTuple_Pack(2, parent, *x->builtin)
		                   : PyTuple_Pack(1, parent);
		dict = Py_BuildValue("{siss}", "code", x->code, "errname", x->errname);
		if (!dict) {
			Py_XDECREF(bases);
			return -1;
		}
		if (!(exc_classes[i] = new_exc(m, x->cls, bases, dict, x->doc)))
			return -1;
	}
	sbpy_Timeout = error_class(SHMBUS_ETIMEDOUT);
	sbpy_Closed = error_class(SHMBUS_ECLOSED);
	sbpy_NotFound = error_class(SHMBUS_ENOENT);
	sbpy_Exists = error_class(SHMBUS_EEXIST);
	sbpy_TypeMismatch = error_class(SHMBUS_ETYPE);
	sbpy_Corrupt = error_class(SHMBUS_ECORRUPT);
	sbpy_Busy = error_class(SHMBUS_EBUSY);
	sbpy_NoSpace = error_class(SHMBUS_ENOSPC);
	sbpy_TooBig = error_class(SHMBUS_ETOOBIG);
	sbpy_NoData = error_class(SHMBUS_ENODATA);
	sbpy_OwnerDead = error_class(SHMBUS_EOWNERDEAD);
	sbpy_InvalidArgument = error_class(SHMBUS_EINVAL);
	sbpy_PermissionDenied = error_class(SHMBUS_EPERM);
	return 0;
}

/* The SHMBUS_E* codes as E* constants (for comparing with Error.code) and
 * ERRORS, {code: "SHMBUS_NAME"} for every code of the header's table. */
static int init_codes(PyObject *m)
{
	PyObject *errors = PyDict_New();
	size_t i;

	if (!errors)
		return -1;
	for (i = 0; i < N_EXC; i++) {
		const struct sbpy_exc_spec *x = &exc_specs[i];
		PyObject *k = PyLong_FromLong(x->code), *v = PyUnicode_FromString(x->errname);
		int r = k && v ? PyDict_SetItem(errors, k, v) : -1;

		Py_XDECREF(k);
		Py_XDECREF(v);
		if (r < 0 || (x->code != SHMBUS_OK &&
		              PyModule_AddIntConstant(m, x->errname + strlen("SHMBUS_"), x->code) < 0)) {
			Py_DECREF(errors);
			return -1;
		}
	}
	if (PyModule_AddObject(m, "ERRORS", errors) < 0) {
		Py_DECREF(errors);
		return -1;
	}
	return 0;
}

PyMODINIT_FUNC PyInit__shmbus(void)
{
	PyObject *m = PyModule_Create(&moddef);

	if (!m)
		return NULL;
	if (init_errors(m) < 0)
		goto fail;
	if (PyType_Ready(&sbpy_ViewType) < 0 || PyType_Ready(&sbpy_BusType) < 0)
		goto fail;
	Py_INCREF(&sbpy_BusType);
	if (PyModule_AddObject(m, "Bus", (PyObject *)&sbpy_BusType) < 0)
		goto fail;
	if (sbpy_state_init_types(m) < 0 || sbpy_queue_init_types(m) < 0 ||
	    sbpy_sync_init_types(m) < 0 || sbpy_containers_init_types(m) < 0 ||
	    sbpy_waitset_init_types(m) < 0)
		goto fail;
	PyModule_AddIntConstant(m, "FOREVER", -1);
	if (init_codes(m) < 0)
		goto fail;
	return m;
fail:
	Py_DECREF(m);
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Elements                                                               */
/* ---------------------------------------------------------------------- */

/*
 * The conversion rule for every value written into a typed channel (state
 * writes, array elements, atomic adds, exchange, compare-and-swap): a
 * value is stored as it is or refused, never wrapped, truncated or
 * invented. Integer dtypes take integers (int, bool, numpy integers) in
 * the dtype's range; bool takes booleans and the integers 0 and 1; float
 * dtypes take integers and floats, rounded to the nearest representable
 * value (what a float channel is), but a finite value beyond float32's
 * range is refused. None, str, complex and floats into integer dtypes are
 * TypeMismatch; out of range is InvalidArgument. Nothing is stored when a
 * value is refused.
 */

/* 'f' a float-like number, 'i' an integer-like one (int, bool, numpy
 * integer and bool), 0 anything else. */
static char number_kind(PyObject *o)
{
	const char *tn = Py_TYPE(o)->tp_name;
	PyNumberMethods *nb = Py_TYPE(o)->tp_as_number;

	if (o == Py_None || PyComplex_Check(o) || strstr(tn, "complex"))
		return 0;
	if (PyBool_Check(o) || !strcmp(tn, "numpy.bool_") || !strcmp(tn, "numpy.bool"))
		return 'b';
	if (PyLong_Check(o) || PyIndex_Check(o))
		return 'i';
	if (PyFloat_Check(o) || (nb && nb->nb_float && !PyUnicode_Check(o) && !PyBytes_Check(o)))
		return 'f';
	return 0;
}

int sbpy_number_kind(PyObject *o)
{
	return number_kind(o);
}

static int refuse_type(int dtype, PyObject *o)
{
	return sbpy_fail_int(SHMBUS_ETYPE, "cannot store %.100s %R in a %s element",
	                     Py_TYPE(o)->tp_name, o, shmbus_dtype_name(dtype));
}

static int refuse_range(int dtype, PyObject *o)
{
	return sbpy_fail_int(SHMBUS_EINVAL, "%R does not fit in %s", o, shmbus_dtype_name(dtype));
}

int sbpy_range_i64(int dtype, int64_t *lo, int64_t *hi)
{
	switch (dtype) {
	case SHMBUS_INT8: *lo = INT8_MIN; *hi = INT8_MAX; return 0;
	case SHMBUS_BOOL: *lo = 0; *hi = 1; return 0;
	case SHMBUS_BYTES: case SHMBUS_UINT8: *lo = 0; *hi = UINT8_MAX; return 0;
	case SHMBUS_INT16: *lo = INT16_MIN; *hi = INT16_MAX; return 0;
	case SHMBUS_UINT16: *lo = 0; *hi = UINT16_MAX; return 0;
	case SHMBUS_INT32: *lo = INT32_MIN; *hi = INT32_MAX; return 0;
	case SHMBUS_UINT32: *lo = 0; *hi = UINT32_MAX; return 0;
	case SHMBUS_INT64: *lo = INT64_MIN; *hi = INT64_MAX; return 0;
	default: return -1;   /* uint64 and the floats */
	}
}

/* An integer-like or bool-like number as a Python int (new reference). */
static PyObject *as_int(PyObject *o, char kind)
{
	int t;

	if (kind != 'b')
		return PyNumber_Index(o);
	t = PyObject_IsTrue(o);       /* numpy.bool_'s __index__ is deprecated */
	return t < 0 ? NULL : PyLong_FromLong(t);
}

int sbpy_pack(int dtype, PyObject *o, void *out)
{
	char kind = number_kind(o);
	PyObject *i;
	int64_t lo, hi;
	long long v;
	double d;
	int over = 0;

	if (!kind)
		return refuse_type(dtype, o);
	if (dtype == SHMBUS_FLOAT32 || dtype == SHMBUS_FLOAT64) {
		if (kind == 'f') {
			d = PyFloat_AsDouble(o);
			if (d == -1.0 && PyErr_Occurred())
				return -1;
		} else {
			if (!(i = as_int(o, kind)))
				return -1;
			d = PyLong_AsDouble(i);
			Py_DECREF(i);
			if (d == -1.0 && PyErr_Occurred()) {
				PyErr_Clear();
				return refuse_range(dtype, o);
			}
		}
		if (dtype == SHMBUS_FLOAT64) {
			*(double *)out = d;
			return 0;
		}
		if (isfinite(d) && !isfinite((float)d))
			return refuse_range(dtype, o);
		*(float *)out = (float)d;
		return 0;
	}
	if (kind == 'f')
		return refuse_type(dtype, o);
	if (!(i = as_int(o, kind)))
		return -1;
	if (dtype == SHMBUS_UINT64) {
		unsigned long long u = PyLong_AsUnsignedLongLong(i);

		Py_DECREF(i);
		if (u == (unsigned long long)-1 && PyErr_Occurred()) {
			if (!PyErr_ExceptionMatches(PyExc_OverflowError))
				return -1;
			PyErr_Clear();
			return refuse_range(dtype, o);
		}
		*(uint64_t *)out = u;
		return 0;
	}
	v = PyLong_AsLongLongAndOverflow(i, &over);
	Py_DECREF(i);
	if (v == -1 && PyErr_Occurred())
		return -1;
	if (sbpy_range_i64(dtype, &lo, &hi) < 0)
		return refuse_type(dtype, o);
	if (over || v < lo || v > hi)
		return refuse_range(dtype, o);
	switch (dtype) {
	case SHMBUS_INT8: *(int8_t *)out = (int8_t)v; break;
	case SHMBUS_INT16: *(int16_t *)out = (int16_t)v; break;
	case SHMBUS_UINT16: *(uint16_t *)out = (uint16_t)v; break;
	case SHMBUS_INT32: *(int32_t *)out = (int32_t)v; break;
	case SHMBUS_UINT32: *(uint32_t *)out = (uint32_t)v; break;
	case SHMBUS_INT64: *(int64_t *)out = (int64_t)v; break;
	default: *(uint8_t *)out = (uint8_t)v; break;   /* uint8, bytes, bool */
	}
	return 0;
}

static PyObject *mod_pack(PyObject *m, PyObject *args)
{
	PyObject *dt, *v;
	uint64_t buf = 0;
	int dtype;

	(void)m;
	if (!PyArg_ParseTuple(args, "OO:_pack", &dt, &v))
		return NULL;
	if ((dtype = sbpy_dtype(dt)) < 0)
		return NULL;
	if (sbpy_pack(dtype, v, &buf) < 0)
		return NULL;
	return PyBytes_FromStringAndSize((const char *)&buf, (Py_ssize_t)shmbus_dtype_size(dtype));
}

PyObject *sbpy_unpack(int dtype, const void *p)
{
	switch (dtype) {
	case SHMBUS_INT8: return PyLong_FromLong(*(const int8_t *)p);
	case SHMBUS_BYTES:
	case SHMBUS_UINT8: return PyLong_FromLong(*(const uint8_t *)p);
	case SHMBUS_INT16: return PyLong_FromLong(*(const int16_t *)p);
	case SHMBUS_UINT16: return PyLong_FromLong(*(const uint16_t *)p);
	case SHMBUS_INT32: return PyLong_FromLong(*(const int32_t *)p);
	case SHMBUS_UINT32: return PyLong_FromUnsignedLong(*(const uint32_t *)p);
	case SHMBUS_INT64: return PyLong_FromLongLong(*(const int64_t *)p);
	case SHMBUS_UINT64: return PyLong_FromUnsignedLongLong(*(const uint64_t *)p);
	case SHMBUS_FLOAT32: return PyFloat_FromDouble(*(const float *)p);
	case SHMBUS_FLOAT64: return PyFloat_FromDouble(*(const double *)p);
	case SHMBUS_BOOL: return PyBool_FromLong(*(const uint8_t *)p != 0);
	default: return sbpy_fail(SHMBUS_ECORRUPT, "invalid dtype %d", dtype);
	}
}

/*
 * sbpy.h -- what the files of the shmbus CPython extension share: the
 * object layouts, the exception classes, dtype and timeout conversion, and
 * the loop that runs a blocking library call with the GIL released.
 *
 * Handle objects (State, Queue, sync objects, containers) keep a strong
 * reference to their Bus and sit on the bus's list of children, so that
 * Bus.close() can close them first, as the C API requires. A closed handle
 * has a NULL C pointer; every method checks it and raises ValueError.
 *
 * Zero-copy views (state and queue peek) are exported by a small buffer
 * object that counts itself on the bus; Bus.close() refuses to unmap while
 * a view is alive (BufferError), as mmap.close() does.
 */
#ifndef SBPY_H
#define SBPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <unistd.h>

#include "shmbus.h"

/* Returned by sbpy_block when a Python exception (KeyboardInterrupt) is set. */
#define SBPY_PYERR (-1000)

/* How long one GIL-free wait lasts before we look for signals. */
#define SBPY_SLICE_NS (50 * 1000000ll)

typedef struct sbpy_child sbpy_child;
typedef struct sbpy_bus sbpy_bus;

/* Each handle type starts with this header. */
struct sbpy_child {
	PyObject_HEAD
	sbpy_bus *bus;                  /* strong reference */
	sbpy_child *next, *prev;        /* on bus->children */
	void (*close_fn)(sbpy_child *); /* closes the C handle, sets it NULL */
	PyObject *weaklist;
	int busy;                       /* a GIL-free call on it is running */
	int wsrefs;                     /* wait-set members naming it (waitset.c) */
};

struct sbpy_bus {
	PyObject_HEAD
	shmbus_bus_t *bus;
	PyObject *name;
	int created;
	int unlink_on_close;
	Py_ssize_t exports;             /* live zero-copy buffers */
	shmbus_bus_t *zombie;           /* closed while views lived: unmapped when the last goes */
	pid_t pid;                      /* the process that opened it */
	sbpy_child children;            /* list head (only next/prev used) */
	PyObject *weaklist;
};

extern PyObject *sbpy_Error, *sbpy_Timeout, *sbpy_Closed, *sbpy_NotFound,
	*sbpy_Exists, *sbpy_TypeMismatch, *sbpy_Corrupt, *sbpy_Busy,
	*sbpy_NoSpace, *sbpy_TooBig, *sbpy_NoData, *sbpy_OwnerDead,
	*sbpy_InvalidArgument, *sbpy_PermissionDenied;

extern PyTypeObject sbpy_BusType, sbpy_StateType, sbpy_StatePeekType,
	sbpy_QueueType, sbpy_PeekType, sbpy_ViewType;

/* Raise the exception class for code with the library's message; returns NULL. */
PyObject *sbpy_raise(int code);
/* Same, for functions returning int: returns -1. */
int sbpy_raise_int(int code);
/* Raise the exception class for code (with .code set) with the binding's
 * own message, formatted as PyUnicode_FromFormat does; returns NULL. Every
 * error about shmbus arguments or values raised by the binding goes
 * through here or sbpy_raise, so that each carries .code. */
PyObject *sbpy_fail(int code, const char *fmt, ...);
/* Same, for functions returning int: returns -1. */
int sbpy_fail_int(int code, const char *fmt, ...);

/* Seconds (float/int) or None -> ns; SHMBUS_FOREVER for None. -2 on error. */
int sbpy_timeout(PyObject *o, int64_t *ns);

/* Run op(ctx, slice) with the GIL released in slices of SBPY_SLICE_NS until
 * it returns something other than a timeout/EINTR or the total timeout
 * runs out; between slices, run Python's signal handlers (Ctrl+C raises
 * KeyboardInterrupt: SBPY_PYERR is returned). A first attempt with a zero
 * timeout is made with the GIL held when try_first is set. */
typedef int (*sbpy_op)(void *ctx, int64_t timeout_ns);
int sbpy_block(sbpy_op op, void *ctx, int64_t timeout_ns, int try_first);

/* dtype from a str / numpy dtype / Python type; -1 with an exception. */
int sbpy_dtype(PyObject *o);
/* Check a buffer's format against a dtype: 0 ok, -1 with TypeMismatch. */
int sbpy_check_format(const Py_buffer *view, int dtype, const char *what);
/* struct-module format character for a dtype. */
const char *sbpy_format(int dtype);

/* A Python number -> one element of dtype at out, under the one conversion
 * rule (module.c: exact or refused; floats round); 0 or -1. */
int sbpy_pack(int dtype, PyObject *o, void *out);
/* 'i' integer-like, 'b' bool-like, 'f' float-like number, 0 not a number. */
int sbpy_number_kind(PyObject *o);
/* The range of an integer dtype (bool: 0..1); -1 for uint64 and floats. */
int sbpy_range_i64(int dtype, int64_t *lo, int64_t *hi);
/* One element of dtype -> a Python int/float/bool. */
PyObject *sbpy_unpack(int dtype, const void *p);
/* A name the library copied out of shared memory (a channel's or a
 * group's, cap bytes with its NUL) as a str; Corrupt when it is not a
 * valid name, which only a damaged or hostile segment holds. */
PyObject *sbpy_shm_name(const char *s, size_t cap, const char *what);
/* A name argument as UTF-8; InvalidArgument (not UnicodeEncodeError) if it
 * cannot be encoded. */
const char *sbpy_name_arg(PyObject *name, const char *what);
/* A channel description as a dict. */
PyObject *sbpy_channel_info_dict(const shmbus_channel_info_t *c);

/* numpy, if importable (borrowed; NULL without numpy). */
PyObject *sbpy_numpy(void);

/* Register/unregister a handle on its bus (takes a reference to bus). */
void sbpy_child_attach(sbpy_child *c, sbpy_bus *bus, void (*close_fn)(sbpy_child *));
void sbpy_child_detach(sbpy_child *c);
/* 1 in a process forked from the one that opened the bus: there, closing
 * must not touch the library (it would leave the parent's peer slot,
 * writer roles and group memberships); the handles are just forgotten. */
static inline int sbpy_child_foreign(const sbpy_child *c)
{
	return c->bus && c->bus->pid != getpid();
}

/* A handle serves one call at a time (the library's rule): a second
 * thread calling while the first waits with the GIL released gets
 * RuntimeError instead of a race (and instead of a deadlock, had it been
 * made to wait). */
static inline int sbpy_claim(sbpy_child *c)
{
	if (c->busy) {
		PyErr_SetString(PyExc_RuntimeError,
		                "this shmbus handle is in use by another thread; open one handle per thread");
		return -1;
	}
	c->busy = 1;
	return 0;
}

static inline void sbpy_unclaim(sbpy_child *c)
{
	c->busy = 0;
}

/* Let the asyncio reactors drop the members they keep for c while no
 * coroutine awaits it (shmbus/_aio.py); never raises. */
void sbpy_ws_evict(sbpy_child *c);

/* For close(): refuse while a call on the handle is running, or while a
 * WaitSet (or an awaiting coroutine) has it as a member: the library's
 * wait set would be left pointing at a closed handle. In a forked copy
 * nothing is closed, so nothing is refused. */
static inline int sbpy_check_idle(sbpy_child *c)
{
	if (c->busy) {
		PyErr_SetString(PyExc_RuntimeError,
		                "cannot close: a call on this shmbus handle is running in another thread");
		return -1;
	}
	if (c->wsrefs && !sbpy_child_foreign(c))
		sbpy_ws_evict(c);
	if (c->wsrefs && !sbpy_child_foreign(c)) {
		PyErr_SetString(PyExc_RuntimeError,
		                "cannot close: this shmbus handle is a member of a WaitSet (remove it, "
		                "or let the awaiting coroutine finish or be cancelled, first)");
		return -1;
	}
	return 0;
}

/* NULL-handle check helper: raises ValueError("... is closed"). */
int sbpy_closed(const void *handle, const char *what);

/* A buffer exporter over shared memory, counted on the bus. */
PyObject *sbpy_view_new(sbpy_bus *bus, PyObject *owner, void *ptr, Py_ssize_t len,
                        int readonly, int dtype, int ndim, const uint64_t *shape);
void sbpy_view_invalidate(PyObject *view);

/* The library handle behind a binding object, for wait sets: NULL (no
 * exception) if o is not of that type; a closed handle raises ValueError
 * (NULL with an exception). */
shmbus_state_t *sbpy_state_of(PyObject *o, uint64_t *last_seq);
shmbus_queue_t *sbpy_queue_of(PyObject *o);
/* Lock, Event, Semaphore or Turn; *cond gets its SHMBUS_ON_* condition. */
void *sbpy_sync_of(PyObject *o, int *cond);

/* Call shmbus._aio.<fn>(self, *args, **kw): the asyncio methods of the
 * handle types are written in Python (shmbus/_aio.py) and reached through
 * this. */
PyObject *sbpy_aio_call(const char *fn, PyObject *self, PyObject *args, PyObject *kw);
#define SBPY_AIO_METHOD(cname, pyname)                                         \
	static PyObject *cname(PyObject *self, PyObject *args, PyObject *kw)   \
	{                                                                      \
		return sbpy_aio_call(pyname, self, args, kw);                  \
	}

int sbpy_state_init_types(PyObject *m);
int sbpy_queue_init_types(PyObject *m);
int sbpy_sync_init_types(PyObject *m);
int sbpy_containers_init_types(PyObject *m);
int sbpy_waitset_init_types(PyObject *m);

/* wait_policy ("spin_park", "spin", "park" or a number) and spin (seconds)
 * into a policy and a spin budget (0, or -1 with an exception set). */
int sbpy_parse_wait(PyObject *policy_o, PyObject *spin_o, int *policy, int64_t *spin_ns);

#endif

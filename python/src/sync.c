/*
 * sync.c -- Lock, Event, Semaphore and Turn: the library's process-shared,
 * crash-robust synchronisation objects, with the threading module's shape
 * (acquire(blocking=True, timeout=None) -> bool, release(), context
 * managers, Event.wait(timeout) -> bool). Every wait runs GIL-free in
 * slices so Ctrl+C works.
 *
 * A Lock whose previous holder died is still acquired (True), with
 * lock.owner_died set: repair what it protects, then call consistent()
 * before release(), or the lock becomes unrecoverable (OwnerDead).
 */
#include "sbpy.h"

#include <structmember.h>
#include <string.h>

enum { K_LOCK, K_EVENT, K_SEM, K_TURN };

typedef struct {
	sbpy_child h;
	void *obj;              /* shmbus_lock_t / _event_t / _sem_t / _turn_t */
	PyObject *name;
	int kind;
	char held;              /* lock/turn: held through this handle */
	char owner_died;        /* lock: last acquire reported EOWNERDEAD */
	uint32_t party;         /* turn: registered party index */
	char registered;
} sbpy_sync;

extern PyTypeObject sbpy_LockType, sbpy_EventType, sbpy_SemType, sbpy_TurnType;

static void sync_close_fn(sbpy_child *c)
{
	sbpy_sync *s = (sbpy_sync *)c;

	if (sbpy_child_foreign(c))
		s->obj = NULL;  /* forked copy: forget, do not close */

	if (s->obj) {
		switch (s->kind) {
		case K_LOCK:
			if (s->held)
				shmbus_lock_unlock(s->obj);
			shmbus_lock_close(s->obj);
			break;
		case K_EVENT: shmbus_event_close(s->obj); break;
		case K_SEM: shmbus_sem_close(s->obj); break;
		case K_TURN:
			if (s->held)
				shmbus_turn_release(s->obj);
			shmbus_turn_close(s->obj);
			break;
		}
		s->obj = NULL;
		s->held = 0;
	}
	sbpy_child_detach(c);
}

static int sync_check(sbpy_sync *s)
{
	static const char *what[] = {"lock", "event", "semaphore", "turn"};

	return sbpy_closed(s->obj, what[s->kind]);
}

void *sbpy_sync_of(PyObject *o, int *cond)
{
	static const int conds[] = {SHMBUS_ON_LOCK, SHMBUS_ON_EVENT, SHMBUS_ON_SEM, SHMBUS_ON_TURN};
	sbpy_sync *s = (sbpy_sync *)o;

	if (!PyObject_TypeCheck(o, &sbpy_LockType) && !PyObject_TypeCheck(o, &sbpy_EventType) &&
	    !PyObject_TypeCheck(o, &sbpy_SemType) && !PyObject_TypeCheck(o, &sbpy_TurnType))
		return NULL;
	if (sync_check(s) < 0)
		return NULL;
	*cond = conds[s->kind];
	return s->obj;
}

static PyObject *sync_wrap(sbpy_bus *bus, PyTypeObject *t, int kind, PyObject *name, void *obj)
{
	sbpy_sync *s = PyObject_New(sbpy_sync, t);

	if (!s) {
		return NULL;
	}
	s->h.weaklist = NULL;
	s->obj = obj;
	s->kind = kind;
	Py_INCREF(name);
	s->name = name;
	s->held = s->owner_died = s->registered = 0;
	s->party = 0;
	sbpy_child_attach(&s->h, bus, sync_close_fn);
	return (PyObject *)s;
}

PyObject *sbpy_bus_lock(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "create", NULL};
	sbpy_bus *bus = (sbpy_bus *)self;
	const char *cname;
	PyObject *name, *res;
	shmbus_lock_opts_t o;
	shmbus_lock_t *l;
	int create = 1, r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "U|p:lock", kwlist, &name, &create))
		return NULL;
	if (sbpy_closed(bus->bus, "bus") < 0)
		return NULL;
	if (!(cname = sbpy_name_arg(name, "channel")))
		return NULL;
	shmbus_lock_opts_init(&o);
	o.create = create;
	if ((r = shmbus_lock_open(bus->bus, cname, &o, &l)))
		return sbpy_raise(r);
	res = sync_wrap(bus, &sbpy_LockType, K_LOCK, name, l);
	if (!res)
		shmbus_lock_close(l);
	return res;
}

PyObject *sbpy_bus_event(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "create", NULL};
	sbpy_bus *bus = (sbpy_bus *)self;
	const char *cname;
	PyObject *name, *res;
	shmbus_event_opts_t o;
	shmbus_event_t *e;
	int create = 1, r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "U|p:event", kwlist, &name, &create))
		return NULL;
	if (sbpy_closed(bus->bus, "bus") < 0)
		return NULL;
	if (!(cname = sbpy_name_arg(name, "channel")))
		return NULL;
	shmbus_event_opts_init(&o);
	o.create = create;
	if ((r = shmbus_event_open(bus->bus, cname, &o, &e)))
		return sbpy_raise(r);
	res = sync_wrap(bus, &sbpy_EventType, K_EVENT, name, e);
	if (!res)
		shmbus_event_close(e);
	return res;
}

PyObject *sbpy_bus_semaphore(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "initial", "create", NULL};
	sbpy_bus *bus = (sbpy_bus *)self;
	const char *cname;
	PyObject *name, *res;
	Py_ssize_t initial = 0;
	shmbus_sem_opts_t o;
	shmbus_sem_t *s;
	int create = 1, r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "U|np:semaphore", kwlist, &name, &initial,
	                                 &create))
		return NULL;
	if (sbpy_closed(bus->bus, "bus") < 0)
		return NULL;
	if (initial < 0 || initial > UINT32_MAX) {
		sbpy_fail(SHMBUS_EINVAL, "semaphore %R: initial count %zd out of range",
		          name, initial);
		return NULL;
	}
	if (!(cname = sbpy_name_arg(name, "channel")))
		return NULL;
	shmbus_sem_opts_init(&o);
	o.create = create;
	o.initial = (uint32_t)initial;
	if ((r = shmbus_sem_open(bus->bus, cname, &o, &s)))
		return sbpy_raise(r);
	res = sync_wrap(bus, &sbpy_SemType, K_SEM, name, s);
	if (!res)
		shmbus_sem_close(s);
	return res;
}

PyObject *sbpy_bus_turn(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "max_parties", "create", "register", NULL};
	sbpy_bus *bus = (sbpy_bus *)self;
	const char *cname;
	PyObject *name;
	sbpy_sync *res;
	Py_ssize_t maxp = 0;
	shmbus_turn_opts_t o;
	shmbus_turn_t *t;
	int create = 1, reg = 1, r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "U|npp:turn", kwlist, &name, &maxp, &create,
	                                 &reg))
		return NULL;
	if (sbpy_closed(bus->bus, "bus") < 0)
		return NULL;
	if (maxp < 0 || maxp > UINT32_MAX) {
		sbpy_fail(SHMBUS_EINVAL, "turn %R: max_parties %zd out of range", name, maxp);
		return NULL;
	}
	if (!(cname = sbpy_name_arg(name, "channel")))
		return NULL;
	shmbus_turn_opts_init(&o);
	o.create = create;
	o.max_parties = (uint32_t)maxp;
	if ((r = shmbus_turn_open(bus->bus, cname, &o, &t)))
		return sbpy_raise(r);
	res = (sbpy_sync *)sync_wrap(bus, &sbpy_TurnType, K_TURN, name, t);
	if (!res) {
		shmbus_turn_close(t);
		return NULL;
	}
	if (reg) {
		if ((r = shmbus_turn_register(t, &res->party))) {
			Py_DECREF(res);
			return sbpy_raise(r);
		}
		res->registered = 1;
	}
	return (PyObject *)res;
}

/* ---- waiting ------------------------------------------------------- */

struct sync_ctx {
	sbpy_sync *s;
};

static int acquire_op(void *p, int64_t t)
{
	sbpy_sync *s = ((struct sync_ctx *)p)->s;

	switch (s->kind) {
	case K_LOCK: return shmbus_lock_lock(s->obj, t);
	case K_EVENT: return shmbus_event_wait(s->obj, t);
	case K_SEM: return shmbus_sem_wait(s->obj, t);
	default: return shmbus_turn_acquire(s->obj, t);
	}
}

/* blocking/timeout as in threading: returns 1 acquired, 0 timed out, -1 error. */
static int sync_wait(sbpy_sync *s, int blocking, PyObject *timeout)
{
	struct sync_ctx c = {s};
	int64_t t;
	int r;

	if (sync_check(s) < 0)
		return -1;
	if (!blocking) {
		if (timeout && timeout != Py_None) {
			sbpy_fail(SHMBUS_EINVAL, "can't specify a timeout for a non-blocking call");
			return -1;
		}
		t = 0;
	} else if (timeout && timeout != Py_None && PyNumber_Check(timeout) &&
	           PyFloat_AsDouble(timeout) == -1.0 && !PyErr_Occurred()) {
		t = SHMBUS_FOREVER;  /* threading's timeout=-1 */
	} else if (sbpy_timeout(timeout, &t) < 0) {
		return -1;
	}
	if (sbpy_claim(&s->h) < 0)
		return -1;
	r = sbpy_block(acquire_op, &c, t, 1);
	sbpy_unclaim(&s->h);
	if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_EAGAIN)
		return 0;
	if (r == SHMBUS_EOWNERDEAD && s->kind == K_LOCK) {
		s->held = 1;
		s->owner_died = 1;
		return 1;
	}
	if (r)
		return sbpy_raise_int(r);
	if (s->kind == K_LOCK || s->kind == K_TURN)
		s->held = 1;
	if (s->kind == K_LOCK)
		s->owner_died = 0;
	return 1;
}

static PyObject *sync_acquire(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"blocking", "timeout", NULL};
	sbpy_sync *s = (sbpy_sync *)self;
	PyObject *timeout = Py_None;
	int blocking = 1, r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|pO:acquire", kwlist, &blocking, &timeout))
		return NULL;
	r = sync_wait(s, blocking, timeout);
	if (r < 0)
		return NULL;
	return PyBool_FromLong(r);
}

static PyObject *sync_release(PyObject *self, PyObject *unused)
{
	sbpy_sync *s = (sbpy_sync *)self;
	int r;

	(void)unused;
	if (sync_check(s) < 0)
		return NULL;
	switch (s->kind) {
	case K_LOCK:
		r = shmbus_lock_unlock(s->obj);
		s->held = 0;
		s->owner_died = 0;
		break;
	case K_SEM:
		r = shmbus_sem_post(s->obj);
		break;
	case K_TURN:
		r = shmbus_turn_release(s->obj);
		s->held = 0;
		break;
	default:
		r = SHMBUS_EINVAL;
	}
	if (r)
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

static PyObject *sync_enter(PyObject *self, PyObject *unused)
{
	sbpy_sync *s = (sbpy_sync *)self;
	int r;

	(void)unused;
	r = sync_wait(s, 1, Py_None);
	if (r < 0)
		return NULL;
	Py_INCREF(self);
	return self;
}

static PyObject *sync_exit(PyObject *self, PyObject *args)
{
	PyObject *r;

	(void)args;
	r = sync_release(self, NULL);
	if (!r)
		return NULL;
	Py_DECREF(r);
	Py_RETURN_FALSE;
}

static PyObject *sync_close(PyObject *self, PyObject *unused)
{
	(void)unused;
	if (sbpy_check_idle((sbpy_child *)self) < 0)
		return NULL;
	sync_close_fn((sbpy_child *)self);
	Py_RETURN_NONE;
}

static PyObject *lock_consistent(PyObject *self, PyObject *unused)
{
	sbpy_sync *s = (sbpy_sync *)self;
	int r;

	(void)unused;
	if (sync_check(s) < 0)
		return NULL;
	if ((r = shmbus_lock_consistent(s->obj)))
		return sbpy_raise(r);
	s->owner_died = 0;
	Py_RETURN_NONE;
}

static PyObject *event_set(PyObject *self, PyObject *unused)
{
	sbpy_sync *s = (sbpy_sync *)self;
	int r;

	(void)unused;
	if (sync_check(s) < 0)
		return NULL;
	if ((r = shmbus_event_set(s->obj)))
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

static PyObject *event_clear(PyObject *self, PyObject *unused)
{
	sbpy_sync *s = (sbpy_sync *)self;
	int r;

	(void)unused;
	if (sync_check(s) < 0)
		return NULL;
	if ((r = shmbus_event_clear(s->obj)))
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

static PyObject *event_is_set(PyObject *self, PyObject *unused)
{
	sbpy_sync *s = (sbpy_sync *)self;

	(void)unused;
	if (sync_check(s) < 0)
		return NULL;
	return PyBool_FromLong(shmbus_event_is_set(s->obj));
}

static PyObject *event_wait(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"timeout", NULL};
	PyObject *timeout = Py_None;
	int r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait", kwlist, &timeout))
		return NULL;
	r = sync_wait((sbpy_sync *)self, 1, timeout);
	if (r < 0)
		return NULL;
	return PyBool_FromLong(r);
}

static PyObject *sem_release(PyObject *self, PyObject *args)
{
	Py_ssize_t n = 1, k;

	if (!PyArg_ParseTuple(args, "|n:release", &n))
		return NULL;
	if (n < 1) {
		sbpy_fail(SHMBUS_EINVAL, "n must be one or more");
		return NULL;
	}
	for (k = 0; k < n; k++) {
		PyObject *r = sync_release(self, NULL);

		if (!r)
			return NULL;
		Py_DECREF(r);
	}
	Py_RETURN_NONE;
}

static PyObject *sem_get_value(PyObject *self, void *c)
{
	sbpy_sync *s = (sbpy_sync *)self;
	uint32_t v = 0;
	int r;

	(void)c;
	if (sync_check(s) < 0)
		return NULL;
	if ((r = shmbus_sem_value(s->obj, &v)))
		return sbpy_raise(r);
	return PyLong_FromUnsignedLong(v);
}

static PyObject *turn_register(PyObject *self, PyObject *unused)
{
	sbpy_sync *s = (sbpy_sync *)self;
	int r;

	(void)unused;
	if (sync_check(s) < 0)
		return NULL;
	if ((r = shmbus_turn_register(s->obj, &s->party)))
		return sbpy_raise(r);
	s->registered = 1;
	return PyLong_FromUnsignedLong(s->party);
}

static PyObject *turn_get_party(PyObject *self, void *c)
{
	sbpy_sync *s = (sbpy_sync *)self;

	(void)c;
	if (!s->registered)
		Py_RETURN_NONE;
	return PyLong_FromUnsignedLong(s->party);
}

static PyObject *sync_get_closed(PyObject *self, void *c)
{
	(void)c;
	return PyBool_FromLong(((sbpy_sync *)self)->obj == NULL);
}

static PyObject *sync_repr(PyObject *self)
{
	sbpy_sync *s = (sbpy_sync *)self;

	return PyUnicode_FromFormat("<%s %R%s%s>", Py_TYPE(self)->tp_name, s->name,
	                            s->held ? " held" : "", s->obj ? "" : " closed");
}

static void sync_dealloc(PyObject *self)
{
	sbpy_sync *s = (sbpy_sync *)self;

	if (s->h.weaklist)
		PyObject_ClearWeakRefs(self);
	sync_close_fn(&s->h);
	Py_XDECREF(s->name);
	PyObject_Free(self);
}

SBPY_AIO_METHOD(sync_acquire_async, "sync_acquire")
SBPY_AIO_METHOD(event_wait_async, "event_wait")

#define ACQUIRE_ASYNC_METHOD \
	{"acquire_async", (PyCFunction)(void (*)(void))sync_acquire_async, \
	 METH_VARARGS | METH_KEYWORDS, \
	 "acquire_async(timeout=None) -> bool (a coroutine)\n\nacquire() for asyncio: awaits " \
	 "without blocking the event loop; True\nwhen acquired, False when the timeout ran out. " \
	 "Cancelled, it holds nothing."}

#define COMMON_METHODS \
	{"close", sync_close, METH_NOARGS, "close(): release this handle (the object stays)."}, \
	{"__enter__", sync_enter, METH_NOARGS, NULL}, \
	{"__exit__", sync_exit, METH_VARARGS, NULL}

#define ACQUIRE_DOC(what) \
	"acquire(blocking=True, timeout=None) -> bool\n\n" what \
	" True when acquired, False when the timeout ran out\n(timeout in seconds; None waits forever). Ctrl+C interrupts."

static PyMethodDef lock_methods[] = {
	{"acquire", (PyCFunction)(void (*)(void))sync_acquire, METH_VARARGS | METH_KEYWORDS,
	 ACQUIRE_DOC("Take the lock. If its previous holder died holding it, this still\n"
	             "takes it and sets .owner_died: repair, then consistent().")},
	{"release", sync_release, METH_NOARGS, "release(): unlock."},
	ACQUIRE_ASYNC_METHOD,
	{"consistent", lock_consistent, METH_NOARGS,
	 "consistent(): after an acquire with .owner_died, declare the protected\n"
	 "data repaired (otherwise release() makes the lock unrecoverable)."},
	COMMON_METHODS,
	{NULL, NULL, 0, NULL},
};

static PyMethodDef event_methods[] = {
	{"set", event_set, METH_NOARGS, "set(): set the flag and wake every waiter."},
	{"clear", event_clear, METH_NOARGS, "clear(): reset the flag."},
	{"is_set", event_is_set, METH_NOARGS, "is_set() -> bool"},
	{"wait", (PyCFunction)(void (*)(void))event_wait, METH_VARARGS | METH_KEYWORDS,
	 "wait(timeout=None) -> bool: True once set, False if the timeout ran out."},
	{"wait_async", (PyCFunction)(void (*)(void))event_wait_async, METH_VARARGS | METH_KEYWORDS,
	 "wait_async(timeout=None) -> bool (a coroutine): wait() for asyncio."},
	{"close", sync_close, METH_NOARGS, "close(): release this handle (the object stays)."},
	{NULL, NULL, 0, NULL},
};

static PyMethodDef sem_methods[] = {
	{"acquire", (PyCFunction)(void (*)(void))sync_acquire, METH_VARARGS | METH_KEYWORDS,
	 ACQUIRE_DOC("Take one unit, waiting while the count is 0.")},
	{"release", sem_release, METH_VARARGS, "release(n=1): give n units back, waking waiters."},
	ACQUIRE_ASYNC_METHOD,
	COMMON_METHODS,
	{NULL, NULL, 0, NULL},
};

static PyMethodDef turn_methods[] = {
	{"acquire", (PyCFunction)(void (*)(void))sync_acquire, METH_VARARGS | METH_KEYWORDS,
	 ACQUIRE_DOC("Wait for this party's turn.")},
	{"release", sync_release, METH_NOARGS, "release(): hand the turn to the next live party."},
	ACQUIRE_ASYNC_METHOD,
	{"register", turn_register, METH_NOARGS,
	 "register() -> party: take the next party slot (Bus.turn does it unless register=False)."},
	COMMON_METHODS,
	{NULL, NULL, 0, NULL},
};

static PyMemberDef sync_members[] = {
	{"name", T_OBJECT, offsetof(sbpy_sync, name), READONLY, "channel name"},
	{NULL, 0, 0, 0, NULL},
};

static PyMemberDef lock_members[] = {
	{"name", T_OBJECT, offsetof(sbpy_sync, name), READONLY, "channel name"},
	{"owner_died", T_BOOL, offsetof(sbpy_sync, owner_died), READONLY,
	 "True after an acquire that found the previous holder dead (until consistent())"},
	{"held", T_BOOL, offsetof(sbpy_sync, held), READONLY, "held through this handle"},
	{NULL, 0, 0, 0, NULL},
};

static PyGetSetDef sync_getset[] = {
	{"closed", sync_get_closed, NULL, "True once closed", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyGetSetDef sem_getset[] = {
	{"closed", sync_get_closed, NULL, "True once closed", NULL},
	{"value", sem_get_value, NULL, "the current count", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyGetSetDef turn_getset[] = {
	{"closed", sync_get_closed, NULL, "True once closed", NULL},
	{"party", turn_get_party, NULL, "this handle's party index (None if not registered)", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

#define SYNC_TYPE(var, pyname, doc, meth, memb, gs) \
	PyTypeObject var = { \
		PyVarObject_HEAD_INIT(NULL, 0) \
		.tp_name = pyname, \
		.tp_basicsize = sizeof(sbpy_sync), \
		.tp_dealloc = sync_dealloc, \
		.tp_repr = sync_repr, \
		.tp_flags = Py_TPFLAGS_DEFAULT, \
		.tp_doc = doc, \
		.tp_weaklistoffset = offsetof(sbpy_sync, h.weaklist), \
		.tp_methods = meth, \
		.tp_members = memb, \
		.tp_getset = gs, \
	};

SYNC_TYPE(sbpy_LockType, "shmbus.Lock",
          "A robust process-shared mutex (Bus.lock(name)). `with lock:` holds it.\n"
          "A holder that dies never deadlocks the others: the next acquire\n"
          "succeeds with .owner_died set.",
          lock_methods, lock_members, sync_getset)
SYNC_TYPE(sbpy_EventType, "shmbus.Event",
          "A manual-reset event (Bus.event(name)): set() wakes every waiter and\n"
          "stays set until clear().",
          event_methods, sync_members, sync_getset)
SYNC_TYPE(sbpy_SemType, "shmbus.Semaphore",
          "A counting semaphore (Bus.semaphore(name, initial)). `with sem:` takes\n"
          "one unit and gives it back.",
          sem_methods, sync_members, sem_getset)
SYNC_TYPE(sbpy_TurnType, "shmbus.Turn",
          "Turn-taking in registration order (Bus.turn(name)): party k runs after\n"
          "party k-1 and party 0 after the last. `with turn:` waits for this\n"
          "party's turn and hands it on at the end of the block. Dead parties\n"
          "are skipped.",
          turn_methods, sync_members, turn_getset)

int sbpy_sync_init_types(PyObject *m)
{
	PyTypeObject *t[] = {&sbpy_LockType, &sbpy_EventType, &sbpy_SemType, &sbpy_TurnType};
	const char *n[] = {"Lock", "Event", "Semaphore", "Turn"};
	int k;

	for (k = 0; k < 4; k++) {
		if (PyType_Ready(t[k]) < 0)
			return -1;
		Py_INCREF(t[k]);
		if (PyModule_AddObject(m, n[k], (PyObject *)t[k]) < 0)
			return -1;
	}
	return 0;
}

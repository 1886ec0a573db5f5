/*
 * waitset.c -- WaitSet: wait on many channels at once from Python, and the
 * bridge to the asyncio methods written in shmbus/_aio.py.
 *
 * A WaitSet wraps one shmbus_waitset_t. Python members are named by a key:
 * the tag the caller gave, or the handle itself when it gave none. The
 * library wants 64-bit tags, so each member gets a fresh number here, and
 * two dicts translate: ids (number -> (handle, key)) and keys (key ->
 * number). The handle is held by ids, and its wsrefs count keeps it from
 * being closed while the library's set points at it (sbpy_check_idle).
 *
 * wait() runs the library's wait with the GIL released in slices, as every
 * other blocking call does (sbpy_block), so Ctrl+C raises KeyboardInterrupt.
 * Members may be added and removed by other threads meanwhile (the library
 * allows it; the dicts are only touched with the GIL held); a reported
 * number no longer in ids was removed during the wait and is skipped.
 */
#include "sbpy.h"

#include <string.h>

#define READY_CAP 64

typedef struct {
	PyObject_HEAD
	shmbus_waitset_t *ws;
	PyObject *ids;          /* int -> (handle, key) */
	PyObject *keys;         /* key -> int */
	uint64_t next_id;
	pid_t pid;              /* the process that made it */
	int busy;               /* a wait() is running with the GIL released */
	int calls;              /* add/remove calls running with the GIL released */
	PyObject *weaklist;
} sbpy_waitset;

extern PyTypeObject sbpy_WaitSetType;

static int ws_check(sbpy_waitset *w)
{
	if (sbpy_closed(w->ws, "wait set") < 0)
		return -1;
	if (w->pid != getpid()) {
		PyErr_SetString(PyExc_RuntimeError,
		                "a WaitSet belongs to the process that made it; make a new one "
		                "after fork");
		return -1;
	}
	return 0;
}

static PyObject *ws_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"wait_policy", "spin", NULL};
	PyObject *pol = NULL, *spin = NULL;
	sbpy_waitset *w;
	int64_t ns = 0;
	int r, p = SHMBUS_WAIT_SPIN_PARK;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:WaitSet", kwlist, &pol, &spin))
		return NULL;
	if ((pol || spin) && sbpy_parse_wait(pol, spin, &p, &ns) < 0)
		return NULL;
	w = (sbpy_waitset *)type->tp_alloc(type, 0);
	if (!w)
		return NULL;
	w->ids = PyDict_New();
	w->keys = PyDict_New();
	w->pid = getpid();
	if (!w->ids || !w->keys) {
		Py_DECREF(w);
		return NULL;
	}
	if ((r = shmbus_waitset_new(&w->ws))) {
		Py_DECREF(w);
		return sbpy_raise(r);
	}
	if ((pol || spin) && (r = shmbus_waitset_set_wait(w->ws, p, ns))) {
		Py_DECREF(w);
		return sbpy_raise(r);
	}
	return (PyObject *)w;
}

/* Forget every member (the library's set is freed or about to be). */
static void ws_forget_all(sbpy_waitset *w)
{
	PyObject *k, *v;
	Py_ssize_t pos = 0;

	if (!w->ids)
		return;
	while (PyDict_Next(w->ids, &pos, &k, &v))
		((sbpy_child *)PyTuple_GET_ITEM(v, 0))->wsrefs--;
	PyDict_Clear(w->ids);
	PyDict_Clear(w->keys);
}

static void ws_do_close(sbpy_waitset *w)
{
	ws_forget_all(w);
	/* A forked copy has no fd thread to stop: the parent's set is left
	 * to the parent. */
	if (w->ws && w->pid == getpid())
		shmbus_waitset_free(w->ws);
	w->ws = NULL;
}

static void ws_dealloc(PyObject *self)
{
	sbpy_waitset *w = (sbpy_waitset *)self;

	if (w->weaklist)
		PyObject_ClearWeakRefs(self);
	ws_do_close(w);
	Py_XDECREF(w->ids);
	Py_XDECREF(w->keys);
	Py_TYPE(self)->tp_free(self);
}

/* The condition named by cond (None: the kind's default) for a member of
 * that kind; -1 with an exception. */
static int parse_cond(PyObject *cond, int kind_cond, const char *kind)
{
	static const struct { const char *name; int cond; } names[] = {
		{"state", SHMBUS_ON_STATE}, {"message", SHMBUS_ON_MESSAGE},
		{"space", SHMBUS_ON_SPACE}, {"end", SHMBUS_ON_END},
		{"event", SHMBUS_ON_EVENT}, {"lock", SHMBUS_ON_LOCK},
		{"semaphore", SHMBUS_ON_SEM}, {"turn", SHMBUS_ON_TURN},
	};
	const char *s;
	size_t k;

	if (cond == Py_None)
		return kind_cond;
	if (!PyUnicode_Check(cond) || !(s = PyUnicode_AsUTF8(cond))) {
		PyErr_Clear();
		return sbpy_fail_int(SHMBUS_EINVAL, "cond must be a str or None, not %R", cond);
	}
	for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		if (strcmp(s, names[k].name))
			continue;
		if (names[k].cond == kind_cond ||
		    (kind_cond == SHMBUS_ON_MESSAGE &&
		     (names[k].cond == SHMBUS_ON_SPACE || names[k].cond == SHMBUS_ON_END)))
			return names[k].cond;
		break;
	}
	if (kind_cond == SHMBUS_ON_MESSAGE)
		return sbpy_fail_int(SHMBUS_EINVAL,
		                     "cond %R: a queue waits for 'message', 'space' or 'end'", cond);
	return sbpy_fail_int(SHMBUS_EINVAL, "cond %R: a %s member waits for '%s' (or None)", cond,
	                     kind, kind);
}

/* Add obj to the library's set under id; 0 or -1 with an exception. */
static int ws_add_member(sbpy_waitset *w, PyObject *obj, PyObject *cond, PyObject *after,
                         uint64_t id)
{
	static const char *sync_kinds[] = {"", "", "", "", "", "event", "lock", "semaphore", "turn"};
	shmbus_state_t *st;
	shmbus_queue_t *q;
	uint64_t mark;
	void *so;
	int c, r;

	if ((st = sbpy_state_of(obj, &mark))) {
		if (parse_cond(cond, SHMBUS_ON_STATE, "state") < 0)
			return -1;
		if (after != Py_None) {
			mark = PyLong_AsUnsignedLongLong(after);
			if (mark == (uint64_t)-1 && PyErr_Occurred())
				return -1;
		}
		r = shmbus_waitset_add_state(w->ws, st, mark, id);
	} else if (PyErr_Occurred()) {
		return -1;
	} else if (after != Py_None) {
		return sbpy_fail_int(SHMBUS_EINVAL, "after= is for State members only");
	} else if ((q = sbpy_queue_of(obj))) {
		if ((c = parse_cond(cond, SHMBUS_ON_MESSAGE, "queue")) < 0)
			return -1;
		r = shmbus_waitset_add_queue(w->ws, q, c, id);
	} else if (PyErr_Occurred()) {
		return -1;
	} else if ((so = sbpy_sync_of(obj, &c))) {
		if (parse_cond(cond, c, sync_kinds[c]) < 0)
			return -1;
		switch (c) {
		case SHMBUS_ON_EVENT: r = shmbus_waitset_add_event(w->ws, so, id); break;
		case SHMBUS_ON_LOCK: r = shmbus_waitset_add_lock(w->ws, so, id); break;
		case SHMBUS_ON_SEM: r = shmbus_waitset_add_sem(w->ws, so, id); break;
		default: r = shmbus_waitset_add_turn(w->ws, so, id); break;
		}
	} else if (PyErr_Occurred()) {
		return -1;
	} else {
		return sbpy_fail_int(SHMBUS_ETYPE,
		                     "a WaitSet member is a State, Queue, Lock, Event, Semaphore or "
		                     "Turn, not %.100s", Py_TYPE(obj)->tp_name);
	}
	return r ? sbpy_raise_int(r) : 0;
}

static PyObject *ws_add(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"obj", "cond", "tag", "after", NULL};
	sbpy_waitset *w = (sbpy_waitset *)self;
	PyObject *obj, *cond = Py_None, *tag = Py_None, *after = Py_None, *key, *idn, *rec;
	uint64_t id;
	int has;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOO:add", kwlist, &obj, &cond, &tag, &after))
		return NULL;
	if (ws_check(w) < 0)
		return NULL;
	key = tag == Py_None ? obj : tag;
	if ((has = PyDict_Contains(w->keys, key)) < 0)
		return NULL;
	if (has)
		return sbpy_fail(SHMBUS_EEXIST, "%R is already in this wait set (give each member "
		                 "its own tag)", key);
	id = ++w->next_id;
	if (ws_add_member(w, obj, cond, after, id) < 0)
		return NULL;
	idn = PyLong_FromUnsignedLongLong(id);
	rec = idn ? PyTuple_Pack(2, obj, key) : NULL;
	if (!rec || PyDict_SetItem(w->ids, idn, rec) < 0 || PyDict_SetItem(w->keys, key, idn) < 0) {
		PyObject *et, *ev, *tb;

		PyErr_Fetch(&et, &ev, &tb);
		if (rec && PyDict_DelItem(w->ids, idn) < 0)
			PyErr_Clear();
		PyErr_Restore(et, ev, tb);
		shmbus_waitset_remove(w->ws, id);
		Py_XDECREF(idn);
		Py_XDECREF(rec);
		return NULL;
	}
	((sbpy_child *)obj)->wsrefs++;
	Py_DECREF(idn);
	Py_DECREF(rec);
	Py_RETURN_NONE;
}

/* Remove the member numbered idn (in ids); 0 or -1 with an exception. */
static int ws_remove_id(sbpy_waitset *w, PyObject *idn)
{
	PyObject *rec = PyDict_GetItemWithError(w->ids, idn);
	uint64_t id = PyLong_AsUnsignedLongLong(idn);
	int r;

	if (!rec)
		return -1;
	Py_INCREF(rec);
	/* Out of the dicts first (GIL held), so no other thread picks it. */
	if (PyDict_DelItem(w->keys, PyTuple_GET_ITEM(rec, 1)) < 0 ||
	    PyDict_DelItem(w->ids, idn) < 0) {
		Py_DECREF(rec);
		return -1;
	}
	/* GIL released: removing a bus's last member waits for a thread
	 * parked on that bus (the fd's, or a wait() in another thread) to
	 * leave its park. The handle stays unclosable (wsrefs) until the
	 * library's set no longer names it. */
	w->calls++;
	Py_BEGIN_ALLOW_THREADS
	r = shmbus_waitset_remove(w->ws, id);
	Py_END_ALLOW_THREADS
	w->calls--;
	((sbpy_child *)PyTuple_GET_ITEM(rec, 0))->wsrefs--;
	Py_DECREF(rec);
	return r ? sbpy_raise_int(r) : 0;
}

static PyObject *ws_remove(PyObject *self, PyObject *x)
{
	sbpy_waitset *w = (sbpy_waitset *)self;
	PyObject *idn, *k, *v, *found;
	Py_ssize_t pos = 0, i;
	int r;

	if (ws_check(w) < 0)
		return NULL;
	idn = PyDict_GetItemWithError(w->keys, x);
	if (idn) {
		Py_INCREF(idn);
		r = ws_remove_id(w, idn);
		Py_DECREF(idn);
		if (r < 0)
			return NULL;
		Py_RETURN_NONE;
	}
	if (PyErr_Occurred())
		return NULL;
	/* Not a key: a handle added under tags of its own; remove them all. */
	if (!(found = PyList_New(0)))
		return NULL;
	while (PyDict_Next(w->ids, &pos, &k, &v))
		if (PyTuple_GET_ITEM(v, 0) == x && PyList_Append(found, k) < 0) {
			Py_DECREF(found);
			return NULL;
		}
	if (PyList_GET_SIZE(found) == 0) {
		Py_DECREF(found);
		return sbpy_fail(SHMBUS_ENOENT, "%R is not in this wait set", x);
	}
	for (i = 0; i < PyList_GET_SIZE(found); i++)
		if (ws_remove_id(w, PyList_GET_ITEM(found, i)) < 0) {
			Py_DECREF(found);
			return NULL;
		}
	Py_DECREF(found);
	Py_RETURN_NONE;
}

struct wait_ctx {
	shmbus_waitset_t *ws;
	uint64_t ready[READY_CAP];
	size_t n;
};

static int wait_op(void *p, int64_t t)
{
	struct wait_ctx *c = p;

	return shmbus_waitset_wait(c->ws, t, c->ready, READY_CAP, &c->n);
}

/* Append the keys of c's ready numbers to out (skipping members removed
 * meanwhile); 0 or -1. */
static int collect(sbpy_waitset *w, struct wait_ctx *c, PyObject *out)
{
	size_t k;

	for (k = 0; k < c->n; k++) {
		PyObject *idn = PyLong_FromUnsignedLongLong(c->ready[k]), *rec;

		if (!idn)
			return -1;
		rec = PyDict_GetItemWithError(w->ids, idn);
		Py_DECREF(idn);
		if (!rec && PyErr_Occurred())
			return -1;
		if (rec && PyList_Append(out, PyTuple_GET_ITEM(rec, 1)) < 0)
			return -1;
	}
	return 0;
}

static PyObject *ws_wait(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"timeout", NULL};
	sbpy_waitset *w = (sbpy_waitset *)self;
	PyObject *timeout = Py_None, *out;
	struct wait_ctx c;
	int64_t t;
	int r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait", kwlist, &timeout))
		return NULL;
	if (ws_check(w) < 0 || sbpy_timeout(timeout, &t) < 0)
		return NULL;
	if (w->busy) {
		PyErr_SetString(PyExc_RuntimeError,
		                "another thread is waiting on this WaitSet; one waiter at a time");
		return NULL;
	}
	if (t < 0 && PyDict_Size(w->ids) == 0)
		return sbpy_fail(SHMBUS_EINVAL, "wait() on an empty WaitSet with no timeout would "
		                 "never return");
	c.ws = w->ws;
	c.n = 0;
	w->busy = 1;
	r = sbpy_block(wait_op, &c, t, 1);
	w->busy = 0;
	if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_EAGAIN)
		return PyList_New(0);
	if (r)
		return sbpy_raise(r);
	if (!(out = PyList_New(0)))
		return NULL;
	for (;;) {
		if (collect(w, &c, out) < 0) {
			Py_DECREF(out);
			return NULL;
		}
		if (c.n < READY_CAP)
			break;
		/* More were ready than one call reports: take the rest now. */
		r = shmbus_waitset_wait(w->ws, 0, c.ready, READY_CAP, &c.n);
		if (r == SHMBUS_ETIMEDOUT || r == SHMBUS_EAGAIN)
			break;
		if (r) {
			Py_DECREF(out);
			return sbpy_raise(r);
		}
	}
	return out;
}

static PyObject *ws_fileno(PyObject *self, PyObject *unused)
{
	sbpy_waitset *w = (sbpy_waitset *)self;
	int fd = -1, r;

	(void)unused;
	if (ws_check(w) < 0)
		return NULL;
	if ((r = shmbus_waitset_fd(w->ws, &fd)))
		return sbpy_raise(r);
	return PyLong_FromLong(fd);
}

static PyObject *ws_close(PyObject *self, PyObject *unused)
{
	sbpy_waitset *w = (sbpy_waitset *)self;

	(void)unused;
	if (w->busy || w->calls) {
		PyErr_SetString(PyExc_RuntimeError,
		                "cannot close: another thread is using this WaitSet");
		return NULL;
	}
	ws_do_close(w);
	Py_RETURN_NONE;
}

static PyObject *ws_enter(PyObject *self, PyObject *unused)
{
	(void)unused;
	if (ws_check((sbpy_waitset *)self) < 0)
		return NULL;
	Py_INCREF(self);
	return self;
}

static PyObject *ws_exit(PyObject *self, PyObject *args)
{
	PyObject *r = ws_close(self, NULL);

	(void)args;
	if (!r)
		return NULL;
	Py_DECREF(r);
	Py_RETURN_FALSE;
}

static Py_ssize_t ws_len(PyObject *self)
{
	sbpy_waitset *w = (sbpy_waitset *)self;

	return w->ids ? PyDict_Size(w->ids) : 0;
}

static PyObject *ws_keys(PyObject *self, PyObject *unused)
{
	(void)unused;
	return PyDict_Keys(((sbpy_waitset *)self)->keys);
}

static PyObject *ws_get_closed(PyObject *self, void *c)
{
	(void)c;
	return PyBool_FromLong(((sbpy_waitset *)self)->ws == NULL);
}

static PyObject *ws_repr(PyObject *self)
{
	sbpy_waitset *w = (sbpy_waitset *)self;

	return PyUnicode_FromFormat("<shmbus.WaitSet members=%zd%s>", ws_len(self),
	                            w->ws ? "" : " closed");
}

static PyMethodDef ws_methods[] = {
	{"add", (PyCFunction)(void (*)(void))ws_add, METH_VARARGS | METH_KEYWORDS,
	 "add(obj, cond=None, tag=None, after=None)\n\n"
	 "Add a State, Queue, Lock, Event, Semaphore or Turn handle. cond for a\n"
	 "Queue: 'message' (default: a get would not block -- a message, or the\n"
	 "end of the stream), 'space' (a put would not block) or 'end'. A State\n"
	 "is ready while it holds a value newer than its mark: `after`, by\n"
	 "default the handle's last_seq (a newer value than it has read); each\n"
	 "new value is reported once. wait() reports the member as `tag`, or as\n"
	 "obj itself when tag is None; keys are unique in the set (Exists)."},
	{"remove", ws_remove, METH_O,
	 "remove(tag_or_obj): remove the member with that tag (or every member\n"
	 "of that handle). NotFound if there is none."},
	{"wait", (PyCFunction)(void (*)(void))ws_wait, METH_VARARGS | METH_KEYWORDS,
	 "wait(timeout=None) -> list\n\n"
	 "Wait until at least one member is ready; returns the ready members'\n"
	 "tags (or objects), [] if `timeout` seconds passed (0: look once).\n"
	 "Nothing is consumed: make the call (with timeout=0) yourself; Timeout\n"
	 "there means another process was faster. Ctrl+C interrupts."},
	{"fileno", ws_fileno, METH_NOARGS,
	 "fileno() -> int: an fd that polls readable while a member is ready\n"
	 "(for select/selectors/event loops); then call wait(0), which also\n"
	 "re-arms it. The set owns it. Costs one parked thread per set."},
	{"keys", ws_keys, METH_NOARGS, "keys() -> list of the members' tags (or objects)."},
	{"close", ws_close, METH_NOARGS, "close(): free the set (the handles stay open)."},
	{"__enter__", ws_enter, METH_NOARGS, NULL},
	{"__exit__", ws_exit, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef ws_getset[] = {
	{"closed", ws_get_closed, NULL, "True once closed", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods ws_as_sequence = {
	.sq_length = ws_len,
};

PyTypeObject sbpy_WaitSetType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus.WaitSet",
	.tp_basicsize = sizeof(sbpy_waitset),
	.tp_dealloc = ws_dealloc,
	.tp_repr = ws_repr,
	.tp_as_sequence = &ws_as_sequence,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "WaitSet(): wait on many channels at once, in one thread.\n\n"
	          "    with shmbus.WaitSet() as ws:\n"
	          "        ws.add(q1); ws.add(q2); ws.add(state)\n"
	          "        for ready in ws.wait(timeout=1.0): ...\n\n"
	          "A member's handle cannot be closed while it is a member.",
	.tp_weaklistoffset = offsetof(sbpy_waitset, weaklist),
	.tp_new = ws_new,
	.tp_methods = ws_methods,
	.tp_getset = ws_getset,
};

/* ---- the bridge to shmbus._aio --------------------------------------- */

PyObject *sbpy_aio_call(const char *fn, PyObject *self, PyObject *args, PyObject *kw)
{
	static PyObject *mod;
	PyObject *f, *a, *res;
	Py_ssize_t n = args ? PyTuple_GET_SIZE(args) : 0, k;

	if (!mod && !(mod = PyImport_ImportModule("shmbus._aio")))
		return NULL;
	if (!(f = PyObject_GetAttrString(mod, fn)))
		return NULL;
	if (!(a = PyTuple_New(n + 1))) {
		Py_DECREF(f);
		return NULL;
	}
	Py_INCREF(self);
	PyTuple_SET_ITEM(a, 0, self);
	for (k = 0; k < n; k++) {
		Py_INCREF(PyTuple_GET_ITEM(args, k));
		PyTuple_SET_ITEM(a, k + 1, PyTuple_GET_ITEM(args, k));
	}
	res = PyObject_Call(f, a, kw);
	Py_DECREF(a);
	Py_DECREF(f);
	return res;
}

void sbpy_ws_evict(sbpy_child *c)
{
	PyObject *name, *mod, *r, *et, *ev, *tb;

	PyErr_Fetch(&et, &ev, &tb);
	name = PyUnicode_FromString("shmbus._aio");
	mod = name ? PyImport_GetModule(name) : NULL;  /* only if already loaded */
	Py_XDECREF(name);
	if (mod) {
		r = PyObject_CallMethod(mod, "evict", "O", (PyObject *)c);
		Py_XDECREF(r);
		Py_DECREF(mod);
	}
	PyErr_Clear();
	PyErr_Restore(et, ev, tb);
}

int sbpy_waitset_init_types(PyObject *m)
{
	if (PyType_Ready(&sbpy_WaitSetType) < 0)
		return -1;
	Py_INCREF(&sbpy_WaitSetType);
	return PyModule_AddObject(m, "WaitSet", (PyObject *)&sbpy_WaitSetType);
}

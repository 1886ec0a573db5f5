/*
 * queue.c -- Queue: a queue channel from Python.
 *
 * put() copies a buffer in; get() peeks at the next message, copies it
 * into a new bytes object and releases the slot (one copy, no size guess);
 * get_into() copies into a caller's buffer; peek() is the zero-copy form:
 * `with q.peek() as mv:` hands out a read-only memoryview of the slot,
 * released when the block ends. Every blocking call first tries once
 * without waiting (GIL held, no thread switch), then waits in GIL-free
 * slices so that Ctrl+C is noticed.
 */
#include "sbpy.h"

#include <structmember.h>
#include <string.h>

typedef struct {
	sbpy_child h;
	shmbus_queue_t *q;
	PyObject *name;
	PyObject *group;        /* joined group name, or None */
	uint64_t max_msg;
	uint64_t cell_bytes;    /* 0: a queue of slots */
	uint32_t slots;
	int peeking;            /* a peek() context holds a message */
} sbpy_queue;

typedef struct {
	PyObject_HEAD
	sbpy_queue *queue;
	int64_t timeout;
	PyObject *view, *mv;
	uint64_t seq;
	Py_ssize_t len;
	char redelivered;
} sbpy_peek;



static void queue_close_fn(sbpy_child *c)
{
	sbpy_queue *q = (sbpy_queue *)c;

	if (sbpy_child_foreign(c))
		q->q = NULL;  /* forked copy: forget, do not close */

	if (q->q) {
		if (q->peeking)
			shmbus_queue_release(q->q);
		q->peeking = 0;
		shmbus_queue_close(q->q);
		q->q = NULL;
	}
	sbpy_child_detach(c);
}

static int queue_check(sbpy_queue *q)
{
	return sbpy_closed(q->q, "queue handle");
}

shmbus_queue_t *sbpy_queue_of(PyObject *o)
{
	sbpy_queue *q = (sbpy_queue *)o;

	if (!PyObject_TypeCheck(o, &sbpy_QueueType) || queue_check(q) < 0)
		return NULL;
	return q->q;
}

static int do_join(sbpy_queue *q, PyObject *group, int earliest, int durable)
{
	const char *g = sbpy_name_arg(group, "group");
	int r;

	if (!g)
		return -1;
	r = shmbus_queue_join(q->q, g, (earliest ? SHMBUS_GROUP_EARLIEST : 0) |
	                                   (durable ? SHMBUS_GROUP_DURABLE : 0));
	if (r)
		return sbpy_raise_int(r);
	Py_INCREF(group);
	Py_XSETREF(q->group, group);
	return 0;
}

PyObject *sbpy_bus_queue(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "slots", "max_msg", "create", "group", "earliest",
	                         "durable", "max_groups", "max_members", "max_producers",
	                         "wait_policy", "spin", "cell_bytes", NULL};
	sbpy_bus *bus = (sbpy_bus *)self;
	const char *cname;
	PyObject *name, *group = Py_None, *pol = NULL, *spin = NULL;
	Py_ssize_t slots = 0, mg = 0, mm = 0, mp = 0, max_msg = 0, cell = 0;
	int create = 1, earliest = 0, durable = 0, r;
	shmbus_queue_opts_t o;
	shmbus_queue_info_t info = {.size_of = sizeof(info)};
	shmbus_queue_t *qh;
	sbpy_queue *q;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "U|nnpOppnnnOOn:queue", kwlist, &name, &slots,
	                                 &max_msg, &create, &group, &earliest, &durable, &mg, &mm,
	                                 &mp, &pol, &spin, &cell))
		return NULL;
	if (sbpy_closed(bus->bus, "bus") < 0)
		return NULL;
	if (slots < 0 || slots > UINT32_MAX || max_msg < 0 || mg < 0 || mg > UINT32_MAX ||
	    mm < 0 || mm > UINT32_MAX || mp < 0 || mp > UINT32_MAX || cell < 0) {
		sbpy_fail(SHMBUS_EINVAL,
		          "queue %R: slots %zd, max_msg %zd, max_groups %zd, max_members %zd, "
		          "max_producers %zd, cell_bytes %zd: none may be negative, nor a count "
		          "above 4294967295", name, slots, max_msg, mg, mm, mp, cell);
		return NULL;
	}
	if (group != Py_None && !PyUnicode_Check(group)) {
		sbpy_fail(SHMBUS_EINVAL, "group must be a str or None");
		return NULL;
	}
	shmbus_queue_opts_init(&o);
	o.slots = (uint32_t)slots;
	o.max_msg = (uint64_t)max_msg;
	o.create = create;
	o.max_groups = (uint32_t)mg;
	o.max_members = (uint32_t)mm;
	o.max_producers = (uint32_t)mp;
	o.cell_bytes = (uint64_t)cell;
	if (sbpy_parse_wait(pol, spin, &o.wait_policy, &o.spin_ns) < 0)
		return NULL;
	if (!(cname = sbpy_name_arg(name, "channel")))
		return NULL;
	if ((r = shmbus_queue_open(bus->bus, cname, &o, &qh)))
		return sbpy_raise(r);
	memset(&info, 0, sizeof(info));
	info.size_of = sizeof(info);
	if ((r = shmbus_queue_info(qh, &info, NULL, 0))) {
		shmbus_queue_close(qh);
		return sbpy_raise(r);
	}
	q = PyObject_New(sbpy_queue, &sbpy_QueueType);
	if (!q) {
		shmbus_queue_close(qh);
		return NULL;
	}
	q->h.weaklist = NULL;
	q->q = qh;
	Py_INCREF(name);
	q->name = name;
	Py_INCREF(Py_None);
	q->group = Py_None;
	q->max_msg = info.max_msg;
	q->slots = info.slots;
	q->cell_bytes = info.cell_bytes;
	q->peeking = 0;
	sbpy_child_attach(&q->h, bus, queue_close_fn);
	if (group != Py_None && do_join(q, group, earliest, durable) < 0) {
		Py_DECREF(q);
		return NULL;
	}
	return (PyObject *)q;
}

/* ---- producing ------------------------------------------------------- */

struct put_ctx {
	shmbus_queue_t *q;
	const void *p;
	size_t len;
};

static int put_op(void *p, int64_t t)
{
	struct put_ctx *c = p;

	return shmbus_queue_put(c->q, c->p, c->len, t);
}

static PyObject *queue_put(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
	sbpy_queue *q = (sbpy_queue *)self;
	PyObject *timeout = Py_None;
	struct put_ctx c;
	Py_buffer b;
	int64_t t;
	int r;

	if (nargs < 1 || nargs > 2 || (kwnames && PyTuple_GET_SIZE(kwnames) > 1) ||
	    (kwnames && PyTuple_GET_SIZE(kwnames) == 1 &&
	     (nargs != 1 || !PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0)) ||
	      PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "timeout")))) {
		PyErr_SetString(PyExc_TypeError, "put(data, timeout=None)");
		return NULL;
	}
	if (nargs == 2)
		timeout = args[1];
	else if (kwnames)
		timeout = args[1];
	if (queue_check(q) < 0 || sbpy_timeout(timeout, &t) < 0)
		return NULL;
	/* Messages are bytes, copied as they are: nothing else is converted. */
	if (PyUnicode_Check(args[0]))
		return sbpy_fail(SHMBUS_ETYPE, "put() takes bytes-like data, not str (encode it)");
	if (!PyObject_CheckBuffer(args[0]))
		return sbpy_fail(SHMBUS_ETYPE, "put() takes bytes-like data, not %.100s",
		                 Py_TYPE(args[0])->tp_name);
	if (PyObject_GetBuffer(args[0], &b, PyBUF_C_CONTIGUOUS) < 0)
		return NULL;
	c.q = q->q;
	c.p = b.buf;
	c.len = (size_t)b.len;
	if (sbpy_claim(&q->h) < 0) {
		PyBuffer_Release(&b);
		return NULL;
	}
	r = sbpy_block(put_op, &c, t, 1);
	sbpy_unclaim(&q->h);
	PyBuffer_Release(&b);
	if (r)
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

struct groups_ctx {
	shmbus_queue_t *q;
	uint32_t n;
};

static int wait_groups_op(void *p, int64_t t)
{
	struct groups_ctx *c = p;

	return shmbus_queue_wait_groups(c->q, c->n, t);
}

static PyObject *queue_wait_groups(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"n", "timeout", NULL};
	sbpy_queue *q = (sbpy_queue *)self;
	PyObject *timeout = Py_None;
	struct groups_ctx c;
	unsigned int n = 1;
	int64_t t;
	int r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|IO:wait_groups", kwlist, &n, &timeout))
		return NULL;
	if (queue_check(q) < 0 || sbpy_timeout(timeout, &t) < 0)
		return NULL;
	c.q = q->q;
	c.n = n;
	if (sbpy_claim(&q->h) < 0)
		return NULL;
	r = sbpy_block(wait_groups_op, &c, t, 1);
	sbpy_unclaim(&q->h);
	if (r)
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

static PyObject *queue_shut(PyObject *self, PyObject *unused)
{
	sbpy_queue *q = (sbpy_queue *)self;
	int r;

	(void)unused;
	if (queue_check(q) < 0)
		return NULL;
	if ((r = shmbus_queue_shut(q->q)))
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

/* close() was the first name of shut(); everywhere else in shmbus "close"
 * releases a handle, so it says so once per call site and does what it
 * always did. */
static PyObject *queue_close_old(PyObject *self, PyObject *unused)
{
	if (PyErr_WarnEx(PyExc_DeprecationWarning,
	                 "Queue.close() marks end of stream: call shut() for that "
	                 "(close() will release the handle, as every other "
	                 "handle's close() does, in shmbus 2.0; detach() does it now)", 1) < 0)
		return NULL;
	return queue_shut(self, unused);
}

static PyObject *queue_drop_group(PyObject *self, PyObject *arg)
{
	sbpy_queue *q = (sbpy_queue *)self;
	const char *group;
	int r;

	if (queue_check(q) < 0)
		return NULL;
	group = sbpy_name_arg(arg, "group");
	if (!group)
		return NULL;
	if ((r = shmbus_queue_drop_group(q->q, group)))
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

/* ---- consuming ------------------------------------------------------- */

struct peek_ctx {
	shmbus_queue_t *q;
	shmbus_msg_t msg;
};

static int peek_op(void *p, int64_t t)
{
	struct peek_ctx *c = p;

	return shmbus_queue_peek(c->q, &c->msg, t);
}

static int consumer_check(sbpy_queue *q)
{
	if (queue_check(q) < 0)
		return -1;
	if (q->peeking) {
		PyErr_SetString(PyExc_RuntimeError,
		                "a peek() block of this queue handle is still open");
		return -1;
	}
	return 0;
}

/* Peek with the blocking loop; 0 with c->msg filled, or -1 with an exception. */
static int peek_blocking(sbpy_queue *q, int64_t t, struct peek_ctx *c)
{
	int r;

	c->q = q->q;
	memset(&c->msg, 0, sizeof(c->msg));
	if (sbpy_claim(&q->h) < 0)
		return -1;
	r = sbpy_block(peek_op, c, t, 1);
	sbpy_unclaim(&q->h);
	return r ? sbpy_raise_int(r) : 0;
}

static PyObject *get_common(sbpy_queue *q, PyObject *timeout, int with_info)
{
	struct peek_ctx c;
	PyObject *res;
	int64_t t;
	int r;

	if (consumer_check(q) < 0 || sbpy_timeout(timeout, &t) < 0)
		return NULL;
	if (peek_blocking(q, t, &c) < 0)
		return NULL;
	res = PyBytes_FromStringAndSize(c.msg.data, (Py_ssize_t)c.msg.len);
	r = shmbus_queue_release(q->q);
	if (!res)
		return NULL;
	if (r) {
		Py_DECREF(res);
		return sbpy_raise(r);
	}
	if (with_info)
		return Py_BuildValue("(NKO)", res, (unsigned long long)c.msg.seq,
		                     (c.msg.flags & SHMBUS_MSG_REDELIVERED) ? Py_True : Py_False);
	return res;
}

/* get(timeout=None), parsed by hand: the hot path of a consumer loop. */
static PyObject *queue_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
	Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

	if (nargs + nkw > 1 ||
	    (nkw == 1 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "timeout"))) {
		PyErr_SetString(PyExc_TypeError, "get(timeout=None)");
		return NULL;
	}
	return get_common((sbpy_queue *)self, nargs + nkw ? args[0] : Py_None, 0);
}

static PyObject *queue_get_info(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"timeout", NULL};
	PyObject *timeout = Py_None;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:get_with_info", kwlist, &timeout))
		return NULL;
	return get_common((sbpy_queue *)self, timeout, 1);
}

struct get_ctx {
	shmbus_queue_t *q;
	void *buf;
	size_t cap, len;
};

static int get_op(void *p, int64_t t)
{
	struct get_ctx *c = p;

	return shmbus_queue_get(c->q, c->buf, c->cap, &c->len, NULL, t);
}

static PyObject *queue_get_into(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"buffer", "timeout", NULL};
	sbpy_queue *q = (sbpy_queue *)self;
	PyObject *buf, *timeout = Py_None;
	struct get_ctx c;
	Py_buffer b;
	int64_t t;
	int r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:get_into", kwlist, &buf, &timeout))
		return NULL;
	if (consumer_check(q) < 0 || sbpy_timeout(timeout, &t) < 0)
		return NULL;
	if (PyObject_GetBuffer(buf, &b, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
		return NULL;
	c.q = q->q;
	c.buf = b.buf;
	c.cap = (size_t)b.len;
	c.len = 0;
	if (sbpy_claim(&q->h) < 0) {
		PyBuffer_Release(&b);
		return NULL;
	}
	r = sbpy_block(get_op, &c, t, 1);
	sbpy_unclaim(&q->h);
	PyBuffer_Release(&b);
	if (r)
		return sbpy_raise(r);
	return PyLong_FromSize_t(c.len);
}

static PyObject *queue_join(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"group", "earliest", "durable", NULL};
	sbpy_queue *q = (sbpy_queue *)self;
	PyObject *group;
	int earliest = 0, durable = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "U|pp:join", kwlist, &group, &earliest,
	                                 &durable))
		return NULL;
	if (queue_check(q) < 0 || do_join(q, group, earliest, durable) < 0)
		return NULL;
	Py_INCREF(self);
	return self;
}

static PyObject *queue_iternext(PyObject *self)
{
	PyObject *m = get_common((sbpy_queue *)self, Py_None, 0);

	if (!m && PyErr_ExceptionMatches(sbpy_Closed))
		PyErr_Clear();  /* end of stream ends the iteration */
	return m;
}

static PyObject *queue_iter(PyObject *self)
{
	Py_INCREF(self);
	return self;
}

/* ---- peek ------------------------------------------------------------ */

static PyObject *queue_peek(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"timeout", NULL};
	sbpy_queue *q = (sbpy_queue *)self;
	PyObject *timeout = Py_None;
	sbpy_peek *p;
	int64_t t;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:peek", kwlist, &timeout))
		return NULL;
	if (queue_check(q) < 0 || sbpy_timeout(timeout, &t) < 0)
		return NULL;
	p = PyObject_New(sbpy_peek, &sbpy_PeekType);
	if (!p)
		return NULL;
	Py_INCREF(q);
	p->queue = q;
	p->timeout = t;
	p->view = p->mv = NULL;
	p->seq = 0;
	p->len = 0;
	p->redelivered = 0;
	return (PyObject *)p;
}

static PyObject *peek_enter(PyObject *self, PyObject *unused)
{
	sbpy_peek *p = (sbpy_peek *)self;
	sbpy_queue *q = p->queue;
	struct peek_ctx c;

	(void)unused;
	if (consumer_check(q) < 0)
		return NULL;
	if (peek_blocking(q, p->timeout, &c) < 0)
		return NULL;
	q->peeking = 1;
	p->seq = c.msg.seq;
	p->len = (Py_ssize_t)c.msg.len;
	p->redelivered = (char)((c.msg.flags & SHMBUS_MSG_REDELIVERED) != 0);
	p->view = sbpy_view_new(q->h.bus, (PyObject *)q, (void *)c.msg.data, (Py_ssize_t)c.msg.len,
	                        1, -1, 0, NULL);
	if (p->view)
		p->mv = PyMemoryView_FromObject(p->view);
	if (!p->mv) {
		Py_CLEAR(p->view);
		q->peeking = 0;
		shmbus_queue_release(q->q);
		return NULL;
	}
	Py_INCREF(p->mv);
	return p->mv;
}

static PyObject *peek_exit(PyObject *self, PyObject *args)
{
	sbpy_peek *p = (sbpy_peek *)self;
	sbpy_queue *q = p->queue;
	PyObject *r;
	int rc = 0;

	(void)args;
	if (!p->view)
		Py_RETURN_FALSE;
	sbpy_view_invalidate(p->view);
	r = PyObject_CallMethod(p->mv, "release", NULL);
	if (!r)
		PyErr_Clear();  /* someone still holds a buffer of it; it goes stale now */
	Py_XDECREF(r);
	Py_CLEAR(p->mv);
	Py_CLEAR(p->view);
	if (q->peeking && q->q)
		rc = shmbus_queue_release(q->q);
	q->peeking = 0;
	if (rc)
		return sbpy_raise(rc);
	Py_RETURN_FALSE;
}

static void peek_dealloc(PyObject *self)
{
	sbpy_peek *p = (sbpy_peek *)self;

	if (p->view) {
		PyObject *r = peek_exit(self, NULL);

		if (!r)
			PyErr_WriteUnraisable(self);
		Py_XDECREF(r);
	}
	Py_DECREF(p->queue);
	PyObject_Free(self);
}

static PyMemberDef peek_members[] = {
	{"seq", T_ULONGLONG, offsetof(sbpy_peek, seq), READONLY, "the message's position in the queue"},
	{"len", T_PYSSIZET, offsetof(sbpy_peek, len), READONLY, "the message's length"},
	{"redelivered", T_BOOL, offsetof(sbpy_peek, redelivered), READONLY,
	 "True if a member that died held this message before"},
	{NULL, 0, 0, 0, NULL},
};

static PyMethodDef peek_methods[] = {
	{"__enter__", peek_enter, METH_NOARGS, NULL},
	{"__exit__", peek_exit, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

PyTypeObject sbpy_PeekType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus.QueuePeek",
	.tp_basicsize = sizeof(sbpy_peek),
	.tp_dealloc = peek_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Context manager from Queue.peek(): `with q.peek() as mv:` waits for the\n"
	          "next message and gives a read-only memoryview of it in shared memory,\n"
	          "valid inside the block; the slot is released when the block ends.",
	.tp_methods = peek_methods,
	.tp_members = peek_members,
};

/* ---- the rest -------------------------------------------------------- */

static PyObject *queue_detach(PyObject *self, PyObject *unused)
{
	(void)unused;
	if (sbpy_check_idle((sbpy_child *)self) < 0)
		return NULL;
	queue_close_fn((sbpy_child *)self);
	Py_RETURN_NONE;
}

static PyObject *queue_enter(PyObject *self, PyObject *unused)
{
	(void)unused;
	if (queue_check((sbpy_queue *)self) < 0)
		return NULL;
	Py_INCREF(self);
	return self;
}

static PyObject *queue_exit(PyObject *self, PyObject *args)
{
	(void)args;
	if (sbpy_check_idle((sbpy_child *)self) < 0)
		return NULL;
	queue_close_fn((sbpy_child *)self);
	Py_RETURN_FALSE;
}

static PyObject *queue_info(PyObject *self, PyObject *unused)
{
	sbpy_queue *q = (sbpy_queue *)self;
	shmbus_queue_info_t i = {.size_of = sizeof(i)};
	shmbus_group_info_t g[64];
	PyObject *groups, *d;
	uint32_t k;
	int r;

	(void)unused;
	if (queue_check(q) < 0)
		return NULL;
	memset(&i, 0, sizeof(i));
	i.size_of = sizeof(i);
	if ((r = shmbus_queue_info(q->q, &i, g, 64)))
		return sbpy_raise(r);
	groups = PyList_New(0);
	for (k = 0; groups && k < i.groups && k < 64; k++) {
		PyObject *name = sbpy_shm_name(g[k].name, sizeof(g[k].name), "group");

		if (!name) {
			Py_CLEAR(groups);
			break;
		}
		d = Py_BuildValue("{s:N,s:K,s:K,s:I,s:I,s:I}", "name", name, "cursor",
		                  (unsigned long long)g[k].cursor, "lag",
		                  (unsigned long long)g[k].lag, "members", g[k].members,
		                  "live_members", g[k].live_members, "flags", g[k].flags);
		if (!d || PyList_Append(groups, d) < 0)
			Py_CLEAR(groups);
		Py_XDECREF(d);
	}
	if (!groups)
		return NULL;
	/* "shut" as in C and the CLI's JSON; "closed" is its first name. */
	return Py_BuildValue("{s:I,s:K,s:K,s:K,s:K,s:I,s:O,s:O,s:N}", "slots", i.slots, "cell_bytes",
	                     (unsigned long long)i.cell_bytes, "max_msg",
	                     (unsigned long long)i.max_msg, "head", (unsigned long long)i.head,
	                     "depth", (unsigned long long)i.depth, "producers", i.producers,
	                     "shut", i.shut ? Py_True : Py_False,
	                     "closed", i.shut ? Py_True : Py_False, "groups", groups);
}

static PyObject *queue_set_wait(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"policy", "spin", NULL};
	sbpy_queue *q = (sbpy_queue *)self;
	PyObject *pol = NULL, *spin = NULL;
	int64_t ns;
	int p, r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:set_wait", kwlist, &pol, &spin))
		return NULL;
	if (queue_check(q) < 0 || sbpy_parse_wait(pol, spin, &p, &ns) < 0)
		return NULL;
	if ((r = shmbus_queue_set_wait(q->q, p, ns)))
		return sbpy_raise(r);
	Py_RETURN_NONE;
}

static PyObject *queue_get_closed(PyObject *self, void *c)
{
	sbpy_queue *q = (sbpy_queue *)self;

	(void)c;
	if (queue_check(q) < 0)
		return NULL;
	return PyBool_FromLong(shmbus_queue_is_shut(q->q));
}

static PyObject *queue_get_detached(PyObject *self, void *c)
{
	(void)c;
	return PyBool_FromLong(((sbpy_queue *)self)->q == NULL);
}

static PyObject *queue_repr(PyObject *self)
{
	sbpy_queue *q = (sbpy_queue *)self;

	if (q->cell_bytes)
		return PyUnicode_FromFormat("<shmbus.Queue %R slots=%u cell_bytes=%llu max_msg=%llu "
		                            "group=%R%s>", q->name, q->slots,
		                            (unsigned long long)q->cell_bytes,
		                            (unsigned long long)q->max_msg, q->group,
		                            q->q ? "" : " detached");
	return PyUnicode_FromFormat("<shmbus.Queue %R slots=%u max_msg=%llu group=%R%s>", q->name,
	                            q->slots, (unsigned long long)q->max_msg, q->group,
	                            q->q ? "" : " detached");
}

static void queue_dealloc(PyObject *self)
{
	sbpy_queue *q = (sbpy_queue *)self;

	if (q->h.weaklist)
		PyObject_ClearWeakRefs(self);
	queue_close_fn(&q->h);
	Py_XDECREF(q->name);
	Py_XDECREF(q->group);
	PyObject_Free(self);
}

SBPY_AIO_METHOD(queue_get_async, "queue_get")
SBPY_AIO_METHOD(queue_put_async, "queue_put")

static PyObject *queue_aiter(PyObject *self)
{
	return sbpy_aio_call("queue_aiter", self, NULL, NULL);
}

static PyAsyncMethods queue_as_async = {
	.am_aiter = queue_aiter,
};

static PyMethodDef queue_methods[] = {
	{"put", (PyCFunction)(void (*)(void))queue_put, METH_FASTCALL | METH_KEYWORDS,
	 "put(data, timeout=None)\n\nAppend one message (any bytes-like object of up to max_msg "
	 "bytes).\nWaits for room while the slowest group is a ring behind; Timeout after\n"
	 "`timeout` seconds (0: never wait). Closed after shut(); TooBig if too long."},
	{"wait_groups", (PyCFunction)(void (*)(void))queue_wait_groups, METH_VARARGS | METH_KEYWORDS,
	 "wait_groups(n=1, timeout=None)\n\nWait until at least n consumer groups receive this "
	 "queue's messages\n(joined, not detached); every message put afterwards reaches each of "
	 "them.\nA queue with no group overwrites its oldest message once the ring turns\nover: "
	 "a producer that must not lose messages calls this first.\nTimeout after `timeout` "
	 "seconds (0: never wait)."},
	{"get", (PyCFunction)(void (*)(void))queue_get, METH_FASTCALL | METH_KEYWORDS,
	 "get(timeout=None) -> bytes\n\nThe next message of this handle's group (join first). "
	 "Timeout after\n`timeout` seconds; Closed at end of stream (closed and drained)."},
	{"get_async", (PyCFunction)(void (*)(void))queue_get_async, METH_VARARGS | METH_KEYWORDS,
	 "get_async(timeout=None) -> bytes (a coroutine)\n\nget() for asyncio: awaits the next "
	 "message without blocking the event\nloop or using a thread. Cancelling it consumes "
	 "nothing. `async for m in q`\nyields messages until end of stream."},
	{"put_async", (PyCFunction)(void (*)(void))queue_put_async, METH_VARARGS | METH_KEYWORDS,
	 "put_async(data, timeout=None) (a coroutine)\n\nput() for asyncio: awaits room. "
	 "Cancelling it before it returns puts nothing."},
	{"get_with_info", (PyCFunction)(void (*)(void))queue_get_info, METH_VARARGS | METH_KEYWORDS,
	 "get_with_info(timeout=None) -> (bytes, seq, redelivered)"},
	{"get_into", (PyCFunction)(void (*)(void))queue_get_into, METH_VARARGS | METH_KEYWORDS,
	 "get_into(buffer, timeout=None) -> int\n\nCopy the next message into a writable buffer; "
	 "returns its length.\nTooBig (message stays queued) if the buffer is too small."},
	{"peek", (PyCFunction)(void (*)(void))queue_peek, METH_VARARGS | METH_KEYWORDS,
	 "peek(timeout=None) -> context manager\n\nZero-copy: `with q.peek() as mv:` gives a "
	 "read-only memoryview of the\nnext message in shared memory, valid inside the block; "
	 "the message is\nconsumed when the block ends."},
	{"join", (PyCFunction)(void (*)(void))queue_join, METH_VARARGS | METH_KEYWORDS,
	 "join(group, earliest=False, durable=False) -> self\n\nBecome a member of consumer group "
	 "`group`. Every group sees every\nmessage; members of one group share its messages. A "
	 "new group starts\nat the newest message, or the oldest still queued with earliest=True."},
	{"shut", queue_shut, METH_NOARGS,
	 "shut()\n\nMark end of stream: consumers drain what is queued, then get Closed\n"
	 "(iteration stops). Later puts raise Closed. Use detach() to free the handle."},
	{"close", queue_close_old, METH_NOARGS,
	 "close(): the old name of shut(); warns (DeprecationWarning). In shmbus 2.0\n"
	 "close() will release the handle, as detach() does now."},
	{"drop_group", queue_drop_group, METH_O,
	 "drop_group(name): remove a consumer group nobody will use again; it stops gating\n"
	 "producers at once. Busy while it has a live member, NotFound if there is none."},
	{"detach", queue_detach, METH_NOARGS,
	 "detach(): release this handle (the queue and its groups stay). Leaving a\n"
	 "`with bus.queue(...) as q:` block does this."},
	{"info", queue_info, METH_NOARGS,
	 "info() -> dict: slots, cell_bytes, max_msg, head, depth, producers, shut (also\n"
	 "under its first name, closed), groups\n"
	 "(with cells, head, depth and each group's cursor and lag count cells)."},
	{"set_wait", (PyCFunction)(void (*)(void))queue_set_wait, METH_VARARGS | METH_KEYWORDS,
	 "set_wait(policy, spin=None): 'spin_park' (default), 'spin' or 'park'."},
	{"__enter__", queue_enter, METH_NOARGS, NULL},
	{"__exit__", queue_exit, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static PyMemberDef queue_members[] = {
	{"name", T_OBJECT, offsetof(sbpy_queue, name), READONLY, "channel name"},
	{"group", T_OBJECT, offsetof(sbpy_queue, group), READONLY, "joined group, or None"},
	{"max_msg", T_ULONGLONG, offsetof(sbpy_queue, max_msg), READONLY, "largest message in bytes"},
	{"slots", T_UINT, offsetof(sbpy_queue, slots), READONLY,
	 "ring slots (with cell_bytes: cells)"},
	{"cell_bytes", T_ULONGLONG, offsetof(sbpy_queue, cell_bytes), READONLY,
	 "bytes per cell of a queue of cells; 0 for a queue of slots"},
	{NULL, 0, 0, 0, NULL},
};

static PyGetSetDef queue_getset[] = {
	{"is_shut", queue_get_closed, NULL, "True once end of stream is marked (shut())", NULL},
	{"closed", queue_get_closed, NULL, "the same as is_shut (its first name)", NULL},
	{"detached", queue_get_detached, NULL, "True once this handle is released", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject sbpy_QueueType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmbus.Queue",
	.tp_basicsize = sizeof(sbpy_queue),
	.tp_dealloc = queue_dealloc,
	.tp_repr = queue_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A queue channel: a lossless bounded stream of messages, many producers,\n"
	          "consumer groups. Made by Bus.queue(...). Iterating yields messages until\n"
	          "end of stream.",
	.tp_weaklistoffset = offsetof(sbpy_queue, h.weaklist),
	.tp_iter = queue_iter,
	.tp_iternext = queue_iternext,
	.tp_as_async = &queue_as_async,
	.tp_methods = queue_methods,
	.tp_members = queue_members,
	.tp_getset = queue_getset,
};

int sbpy_queue_init_types(PyObject *m)
{
	if (PyType_Ready(&sbpy_QueueType) < 0 || PyType_Ready(&sbpy_PeekType) < 0)
		return -1;
	Py_INCREF(&sbpy_QueueType);
	return PyModule_AddObject(m, "Queue", (PyObject *)&sbpy_QueueType);
}

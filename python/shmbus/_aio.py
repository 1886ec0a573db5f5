"""asyncio for shmbus: awaiting channels without a thread per call.

Each event loop gets one reactor: a WaitSet whose fd is registered with
loop.add_reader. An awaiting call first makes its own non-blocking call
(timeout 0); if that would block, it adds its handle to the reactor's set
under a fresh tag with a Future, and awaits the Future. When the fd polls
readable, the reactor calls wait(0), resolves the Futures of the ready tags
and removes those members. The coroutine then makes its non-blocking call
again; if another process was faster (Timeout / False), it waits again.

Why cancellation loses nothing: the wait set never consumes anything, and
the only call that does (get, put, acquire) is the coroutine's own
non-blocking call, which runs to its end with the GIL held and is followed
by `return` with no await in between. A cancellation is delivered only at
an await, so it lands either before that call (nothing was taken; the
member is removed in the finally) or after the coroutine returned (the
task holds the result; Task.cancel() then returns False).
"""
import asyncio
import weakref

from ._shmbus import Closed, Timeout, WaitSet

_AGAIN = object()


class _Reactor:
    """One loop's WaitSet, its fd on the loop, and the Futures waiting on it."""

    def __init__(self, loop):
        self.ws = WaitSet()
        self.futs = {}        # tag -> Future; a tag is here iff it is a member
        self.next = 0
        loop.add_reader(self.ws.fileno(), self._ready)

    def watch(self, loop, obj, cond, after):
        self.next += 1
        tag = self.next
        fut = loop.create_future()
        self.ws.add(obj, cond, tag, after)
        self.futs[tag] = fut
        return tag, fut

    def unwatch(self, tag):
        if self.futs.pop(tag, None) is not None:
            self.ws.remove(tag)

    def _ready(self):
        try:
            tags = self.ws.wait(0)
        except BaseException as e:  # e.g. a member's bus truncated: tell every waiter
            for tag in list(self.futs):
                fut = self.futs.pop(tag)
                self.ws.remove(tag)
                if not fut.done():
                    fut.set_exception(e)
            return
        for tag in tags:
            fut = self.futs.pop(tag, None)
            if fut is None:
                continue
            self.ws.remove(tag)   # it did its job; the coroutine adds it again if it must
            if not fut.done():
                fut.set_result(None)


_reactors = weakref.WeakKeyDictionary()


def _reactor(loop):
    r = _reactors.get(loop)
    if r is None:
        r = _reactors[loop] = _Reactor(loop)
    return r


def _wake(fut):
    if not fut.done():
        fut.set_result(None)


async def _until(obj, cond, attempt, last, timeout, after=None):
    """attempt(): the non-blocking call, its result or _AGAIN; last(): the
    call made once more when the timeout runs out (its result or exception
    is the coroutine's)."""
    v = attempt()
    if v is not _AGAIN:
        return v
    if timeout is not None and timeout <= 0:
        return last()
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    r = _reactor(loop)
    while True:
        tag, fut = r.watch(loop, obj, cond, after)
        timer = None if deadline is None else loop.call_at(deadline, _wake, fut)
        try:
            await fut
        finally:
            r.unwatch(tag)
            if timer is not None:
                timer.cancel()
        # no await from here to the return: this call's result is ours
        v = attempt()
        if v is not _AGAIN:
            return v
        if deadline is not None and loop.time() >= deadline:
            return last()


# ---- Queue ----------------------------------------------------------------

async def queue_get(q, timeout=None):
    def attempt():
        try:
            return q.get(0)
        except Timeout:
            return _AGAIN
    return await _until(q, "message", attempt, lambda: q.get(0), timeout)


async def queue_put(q, data, timeout=None):
    def attempt():
        try:
            return q.put(data, 0)
        except Timeout:
            return _AGAIN
    return await _until(q, "space", attempt, lambda: q.put(data, 0), timeout)


class QueueAsyncIterator:
    """`async for msg in q`: get_async() until end of stream."""

    __slots__ = ("q",)

    def __init__(self, q):
        self.q = q

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await queue_get(self.q)
        except Closed:
            raise StopAsyncIteration from None


def queue_aiter(q):
    return QueueAsyncIterator(q)


# ---- State ----------------------------------------------------------------

async def state_wait(st, newer_than=None, timeout=None):
    mark = st.last_seq if newer_than is None else newer_than

    def attempt():
        try:
            return st.wait(mark, 0)
        except Timeout:
            return _AGAIN
    return await _until(st, "state", attempt, lambda: st.wait(mark, 0), timeout, after=mark)


async def state_read(st, out=None, timeout=None):
    await state_wait(st, None, timeout)
    return st.read(out)


# ---- Lock, Semaphore, Turn, Event ----------------------------------------

async def sync_acquire(s, timeout=None):
    def attempt():
        return True if s.acquire(False) else _AGAIN
    return await _until(s, None, attempt, lambda: s.acquire(False), timeout)


async def event_wait(ev, timeout=None):
    def attempt():
        return True if ev.is_set() else _AGAIN
    return await _until(ev, None, attempt, ev.is_set, timeout)

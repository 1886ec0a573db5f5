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
import time
import weakref

from ._shmbus import Closed, Timeout, WaitSet

_AGAIN = object()

# Before it parks, an await whose loop has nothing else to run polls its
# call for up to this long, as the blocking calls spin before they sleep
# (the library's default spin budget): a reply that comes within it costs
# no thread wake-up. 0 turns it off.
SPIN_NS = 50_000
_now = time.perf_counter_ns


class _Reactor:
    """One loop's WaitSet, its fd on the loop, and the Futures waiting on it.

    A Queue or sync member stays in the set after it fired, keyed by
    (handle, cond), so the next await on it adds nothing (each add and
    remove wakes the set's fd thread); it leaves when it is reported ready
    with nobody waiting, or when its handle is closed (evict). A State
    member carries its caller's mark and is added per await."""

    def __init__(self, loop):
        self.ws = WaitSet(wait_policy="park")
        self.next = 0
        self.waiters = {}     # tag -> list of Futures; a tag is here iff it is a member
        self.cached = {}      # (id(handle), cond) -> tag, for the kept members
        self.key = {}         # tag -> (id(handle), cond), or None for a State member
        loop.add_reader(self.ws.fileno(), self._ready)

    def watch(self, loop, obj, cond, after):
        fut = loop.create_future()
        key = None if after is not None else (id(obj), cond)
        tag = self.cached.get(key) if key is not None else None
        if tag is None:
            self.next += 1
            tag = self.next
            self.ws.add(obj, cond, tag, after)
            self.waiters[tag] = []
            self.key[tag] = key
            if key is not None:
                self.cached[key] = tag
        self.waiters[tag].append(fut)
        return tag, fut

    def unwatch(self, tag, fut):
        futs = self.waiters.get(tag)
        if futs is None:
            return
        if fut in futs:
            futs.remove(fut)
        if not futs and self.key[tag] is None:
            self._drop(tag)

    def _drop(self, tag):
        key = self.key.pop(tag)
        del self.waiters[tag]
        if key is not None:
            del self.cached[key]
        self.ws.remove(tag)

    def evict(self, obj):
        for cond in ("message", "space", None):
            tag = self.cached.get((id(obj), cond))
            if tag is not None and not self.waiters[tag]:
                self._drop(tag)

    def _ready(self):
        try:
            tags = self.ws.wait(0)
        except BaseException as e:  # e.g. a member's bus truncated: tell every waiter
            for tag in list(self.waiters):
                futs = self.waiters[tag]
                self._drop(tag)
                for fut in futs:
                    if not fut.done():
                        fut.set_exception(e)
            return
        for tag in tags:
            futs = self.waiters.get(tag)
            if futs is None:
                continue
            if not futs or self.key[tag] is None:
                # ready with nobody waiting (or a State member, done): stop
                # watching it, or the fd would fire again and again
                self._drop(tag)
            for fut in futs:
                if not fut.done():
                    fut.set_result(None)
            futs.clear()


_reactors = weakref.WeakKeyDictionary()


def _reactor(loop):
    r = _reactors.get(loop)
    if r is None:
        r = _reactors[loop] = _Reactor(loop)
    return r


def evict(obj):
    """Called by a handle's close(): drop the members the reactors keep
    for it while no coroutine awaits it."""
    for r in list(_reactors.values()):
        r.evict(obj)


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
    if SPIN_NS > 0 and not getattr(loop, "_ready", True):   # nothing else is runnable
        end = _now() + (SPIN_NS if timeout is None else min(SPIN_NS, int(timeout * 1e9)))
        while _now() < end:
            v = attempt()
            if v is not _AGAIN:
                return v
    deadline = None if timeout is None else loop.time() + timeout
    r = _reactor(loop)
    while True:
        tag, fut = r.watch(loop, obj, cond, after)
        timer = None if deadline is None else loop.call_at(deadline, _wake, fut)
        try:
            await fut
        finally:
            r.unwatch(tag, fut)
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

async def state_wait(st, newer_than=None, timeout=None, *, after=None):
    # after= is another name for newer_than= (the name WaitSet.add uses).
    if after is not None:
        if newer_than is not None:
            raise TypeError("wait_async() takes newer_than= or after=, not both")
        newer_than = after
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

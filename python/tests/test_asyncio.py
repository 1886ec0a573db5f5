"""asyncio: get_async/put_async/async for/wait_async/acquire_async across
processes, timeouts, a cancellation storm that must lose and duplicate
nothing, and Ctrl+C while awaiting."""
import asyncio
import os
import signal
import struct
import subprocess
import sys
import time

import pytest

import shmbus
from conftest import scale
from test_waitset import Other, channels


@pytest.fixture
def other(bus, busname, child_env):
    ch = channels(bus, slots=4)
    o = Other(busname, child_env)
    o.ch = ch
    o.bus = bus
    yield o
    o.close()


async def in_thread(fn, *args):
    # the other process is driven through blocking pipe I/O: keep it off the loop
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def test_get_put_and_async_for_across_processes(other):
    q = other.ch["q"]

    async def main():
        # a get that must wait for the other process
        task = asyncio.create_task(q.get_async(timeout=30))
        await asyncio.sleep(0.05)
        assert not task.done()
        await in_thread(other, "put first")
        assert await task == b"first"
        # async for ends at end of stream
        for i in range(3):
            await in_thread(other, "put m%d" % i)
        await in_thread(other, "shut")
        got = [m async for m in q]
        assert got == [b"m0", b"m1", b"m2"]

    asyncio.run(main())


def test_put_async_waits_for_room(bus, busname, child_env):
    q = bus.queue("q", slots=2, group="g")
    prod = bus.queue("q")
    other = Other(busname, child_env)   # joins group g2 at the newest message
    try:
        async def main():
            await prod.put_async(b"1")
            await prod.put_async(b"2")
            task = asyncio.create_task(prod.put_async(b"3", timeout=30))
            await asyncio.sleep(0.1)
            assert not task.done()             # full for both groups
            assert q.get(timeout=0) == b"1"
            assert await in_thread(other, "get") == ["1"]
            await task
            with pytest.raises(shmbus.Timeout):
                await prod.put_async(b"4", timeout=0.1)
        asyncio.run(main())
        assert [q.get(timeout=0) for _ in range(2)] == [b"2", b"3"]
    finally:
        other.close()


def test_state_event_lock_semaphore_turn(other):
    ch = other.ch
    s, e, L, S, T = (ch[k] for k in "seLST")

    async def main():
        task = asyncio.create_task(s.wait_async(timeout=30))
        await asyncio.sleep(0.05)
        assert not task.done()
        await in_thread(other, "write 11")
        seq = await task
        assert seq == s.seq and s.last_seq == seq
        await in_thread(other, "write 12")
        assert await s.read_async(timeout=30) == 12
        with pytest.raises(shmbus.Timeout):
            await s.wait_async(timeout=0.1)      # nothing newer than 12
        # after= names the same mark as newer_than=
        assert await s.wait_async(after=s.seq - 1, timeout=0) == s.seq
        with pytest.raises(shmbus.Timeout):
            await s.wait_async(after=s.seq, timeout=0.1)
        with pytest.raises(TypeError):
            await s.wait_async(0, after=0)

        task = asyncio.create_task(e.wait_async())
        await asyncio.sleep(0.05)
        assert not task.done()
        await in_thread(other, "set")
        assert await task is True

        await in_thread(other, "lock")
        assert await L.acquire_async(timeout=0.1) is False
        task = asyncio.create_task(L.acquire_async(timeout=30))
        await asyncio.sleep(0.05)
        assert not task.done()
        await in_thread(other, "unlock")
        assert await task is True and L.held
        L.release()

        assert await S.acquire_async(timeout=0.05) is False
        task = asyncio.create_task(S.acquire_async())
        await in_thread(other, "post")
        assert await task is True

        assert await T.acquire_async(timeout=10) is True   # party 0 starts
        T.release()
        task = asyncio.create_task(T.acquire_async())
        await asyncio.sleep(0.05)
        assert not task.done()
        await in_thread(other, "turn")
        assert await task is True
        T.release()

    asyncio.run(main())


def test_cancellation_storm_loses_and_duplicates_nothing(other):
    """10,000 get_async calls cancelled -- half by task.cancel() at varying
    points, half by wait_for timeouts -- while the other process produces:
    every message is received exactly once, by a call that completed or by
    the drain at the end."""
    n_calls = max(1000, int(10000 * scale()))
    n_msgs = 3000
    # The ring holds every message: how many calls complete depends on the
    # machine's load, so the producer must never wait for them (with 256
    # slots it timed out whenever fewer than 2,744 completed).
    q = other.bus.queue("storm", slots=4096, max_msg=16, group="g")

    async def main():
        got = []
        producer = asyncio.ensure_future(in_thread(other, "produce %d storm" % n_msgs))
        cancelled = completed = 0
        for i in range(n_calls):
            if i % 2:
                t = asyncio.ensure_future(q.get_async())
                for _ in range(i % 3):
                    await asyncio.sleep(0)
                t.cancel()
                try:
                    got.append(await t)
                    completed += 1
                except asyncio.CancelledError:
                    cancelled += 1
            else:
                try:
                    got.append(await asyncio.wait_for(q.get_async(), timeout=(i % 4) * 1e-4))
                    completed += 1
                except asyncio.TimeoutError:
                    cancelled += 1
        await producer
        return got, cancelled, completed

    got, cancelled, completed = asyncio.run(main())
    while True:
        try:
            got.append(q.get(timeout=0))
        except shmbus.Timeout:
            break
    nums = [struct.unpack("<I", m)[0] for m in got]
    print("calls %d: %d cancelled, %d completed; %d messages" % (
        n_calls, cancelled, completed, len(nums)))
    assert cancelled > 0
    assert sorted(nums) == list(range(n_msgs))   # none lost, none twice


CTRL_C = r"""
import asyncio, sys, time, shmbus
bus = shmbus.Bus(sys.argv[1])
lk = bus.lock("L")
q = bus.queue("q", group="g")
async def main():
    print("ready", flush=True)
    await asyncio.gather(lk.acquire_async(), q.get_async())
try:
    asyncio.run(main())
    print("returned", flush=True)
except KeyboardInterrupt:
    print("interrupted %.6f %d" % (time.monotonic(), lk.held), flush=True)
bus.close()
"""


def test_ctrl_c_while_awaiting_holds_nothing(bus, busname, child_env):
    lk = bus.lock("L")
    q = bus.queue("q", group="g")
    lk.acquire()
    child = subprocess.Popen([sys.executable, "-c", CTRL_C, busname], env=child_env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)   # let it await
        assert child.poll() is None
        t0 = time.monotonic()
        os.kill(child.pid, signal.SIGINT)
        line = child.stdout.readline().split()
        assert child.wait(10) == 0      # a clean exit: bus.close() worked
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert line and line[0] == "interrupted", line
    assert line[2] == "0"               # its lock handle holds nothing
    assert float(line[1]) - t0 < 3.0    # promptly, with margin for a loaded machine
    lk.release()
    other = bus.lock("L")
    assert other.acquire(timeout=5) and not other.owner_died   # never taken by the child
    other.release()
    bus.queue("q").put(b"after")
    assert q.get(timeout=5) == b"after"   # the child's await consumed nothing


def test_docs_examples_run(busname):
    """The Python blocks of docs/python.md's "Waiting on many channels, and
    asyncio" section, run as written (with this test's bus names)."""
    from conftest import ROOT
    text = open(os.path.join(ROOT, "docs", "python.md")).read()
    sec = text[text.index("## Waiting on many channels, and asyncio"):]
    sec = sec[:sec.index("\n## ", 5)]
    blocks = [b.split("```", 1)[0] for b in sec.split("```python\n")[1:]]
    assert len(blocks) == 2
    for k, code in enumerate(blocks):
        for name in ("docs_waitset", "docs_asyncio"):
            code = code.replace('"%s"' % name, '"%s-%d"' % (busname, k))
        exec(compile(code, "docs/python.md block %d" % k, "exec"), {"__name__": "docs"})


def test_handle_closes_after_awaiting_but_not_during(bus):
    """The loop's set keeps a member for a handle between awaits; closing
    the handle drops it. While a coroutine awaits the handle, closing it
    is refused (RuntimeError), as for a thread blocked in a call."""
    q = bus.queue("q", group="g")
    prod = bus.queue("q")
    from shmbus import _aio

    async def main():
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, prod.put, b"x")
        _aio.SPIN_NS, spin = 0, _aio.SPIN_NS   # make it wait through the fd
        try:
            assert await q.get_async(timeout=10) == b"x"
            task = asyncio.ensure_future(q.get_async())
            await asyncio.sleep(0.05)
            with pytest.raises(RuntimeError):
                q.detach()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            _aio.SPIN_NS = spin
        q.detach()                               # nobody awaits it now
        assert q.detached

    asyncio.run(main())
    prod.detach()
    bus.close()

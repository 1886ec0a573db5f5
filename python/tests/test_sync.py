"""Locks, events, semaphores, turns and arrays from Python, across processes."""
import multiprocessing as mp
import time

import numpy as np
import pytest

import helpers
import shmbus
from conftest import scale


def test_lock_basics(bus):
    lk = bus.lock("L")
    assert lk.acquire() and lk.held
    lk.release()
    with lk:
        assert lk.held
    assert not lk.held
    with pytest.raises(shmbus.Error):
        lk.release()  # not held
    assert bus.lock("L", create=False).name == "L"
    with pytest.raises(shmbus.NotFound):
        bus.lock("nope", create=False)
    bus.state("s")
    with pytest.raises(shmbus.TypeMismatch):
        bus.lock("s")


def test_lock_timeout_against_other_process(bus, busname):
    ctx = mp.get_context("fork")
    held, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=helpers.hold_lock, args=(busname, held, release))
    p.start()
    try:
        assert held.wait(10)
        lk = bus.lock("L")
        t0 = time.monotonic()
        assert lk.acquire(timeout=0.1) is False
        assert time.monotonic() - t0 >= 0.09
        assert lk.acquire(blocking=False) is False
    finally:
        release.set()
        p.join(10)
    assert lk.acquire(timeout=5)
    lk.release()


def test_lock_holder_dies(bus, busname):
    ctx = mp.get_context("fork")
    held = ctx.Event()
    p = ctx.Process(target=helpers.hold_lock_then_die, args=(busname, held))
    p.start()
    assert held.wait(10)
    p.join(10)
    lk = bus.lock("L")
    assert lk.acquire(timeout=10)
    assert lk.owner_died
    lk.consistent()
    assert not lk.owner_died
    lk.release()
    assert lk.acquire(timeout=1) and not lk.owner_died
    lk.release()


def test_event(bus):
    e = bus.event("E")
    assert not e.is_set() and e.wait(0.01) is False
    e.set()
    assert e.is_set() and e.wait(0) and e.wait()
    e.clear()
    assert not e.is_set()


def test_semaphore(bus):
    s = bus.semaphore("S", initial=2)
    assert s.value == 2
    assert s.acquire() and s.acquire()
    assert s.acquire(timeout=0.01) is False
    assert s.acquire(blocking=False) is False
    s.release(3)
    assert s.value == 3
    with s:
        assert s.value == 2
    assert s.value == 3
    with pytest.raises(shmbus.InvalidArgument):
        bus.semaphore("S2", initial=-1)
    with pytest.raises(ValueError):
        s.release(0)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_turns_alternate_in_order(busname, method):
    n, rounds = 3, int(30 * scale())
    ctx = mp.get_context(method)
    with shmbus.Bus(busname, create=True, unlink=True) as bus:
        bus.turn("T", register=False)
        log = bus.array("log", dtype="int64", length=n * rounds)
        ctl = bus.array("ctl", dtype="int64", length=2)
        go = bus.event("go")
        procs = []
        for _ in range(n):  # start one at a time so parties register in order
            p = ctx.Process(target=helpers.turn_worker, args=(busname, rounds))
            p.start()
            procs.append(p)
            deadline = time.monotonic() + 20
            while ctl[0] < len(procs) and time.monotonic() < deadline:
                time.sleep(0.005)
        go.set()
        for p in procs:
            p.join(60)
        assert all(p.exitcode == 0 for p in procs)
        got = log.numpy().tolist()
        del log
    assert got == [k % n for k in range(n * rounds)], got[:20]


def test_turn_context_helper(bus):
    t = shmbus.turn(bus, "T1")
    assert shmbus.turn(bus, "T1") is t and t.party == 0
    for _ in range(3):
        with shmbus.turn(bus, "T1"):
            pass
    t2 = bus.turn("T1")
    assert t2.party == 1


def test_array_basics(bus):
    a = bus.array("a", dtype="int32", length=5)
    assert len(a) == 5 and a.dtype == "int32" and a.tolist() == [0] * 5
    a[0] = 7
    a[-1] = -3
    assert a[0] == 7 and a[4] == -3 and a[-1] == -3
    a[1] += 5
    a[1] -= 2
    assert a[1] == 3
    assert a.add(2, 10) == 0 and a[2] == 10
    assert a.exchange(2, 4) == 10 and a[2] == 4
    assert a.compare_and_swap(2, 4, 9) == (True, 4)
    assert a.compare_and_swap(2, 4, 1) == (False, 9)
    a[1:3] = [20, 30]
    assert a[0:3] == [7, 20, 30] and a[::2] == [7, 30, -3]
    x = a[0]
    assert x == 7 and isinstance(x, int) and repr(x) == "7" and x + 1 == 8
    y = a[0]
    y += 1  # a local now; the array only changes on assignment
    assert y == 8 and a[0] == 7
    with pytest.raises(IndexError):
        a[5]
    with pytest.raises(IndexError):
        a[5] = 1
    with pytest.raises(shmbus.InvalidArgument):
        a[0] = 1 << 40
    with pytest.raises(shmbus.TypeMismatch):
        a.add(0, 1.5)
    with pytest.raises(TypeError):
        a["x"]
    with pytest.raises(ValueError):
        a[0:2] = [1]
    f = bus.array("f", dtype="float32", length=2)
    f[0] += 1.5
    assert f[0] == 1.5 and f.add(0, 1) == 1.5 and f[0] == 2.5
    with pytest.raises(shmbus.TypeMismatch):
        f.exchange(0, 1)
    with pytest.raises(shmbus.TypeMismatch):
        bus.array("a", dtype="int64", length=5)
    assert bus.array("a").dtype == "int32"  # length 0: open as it is
    with pytest.raises(shmbus.NotFound):
        bus.array("nope")


def test_array_numpy_view(bus):
    a = bus.array("a", dtype="int64", length=1000)
    v = a.numpy()
    assert v.shape == (1000,) and v.dtype == np.int64 and v.flags.writeable
    v[:] = np.arange(1000)
    assert a[999] == 999 and a.add(10, 1) == 10 and v[10] == 11
    del v


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_array_plus_equals_exact_across_processes(busname, method):
    n, procs_n = int(20000 * scale()), 3
    ctx = mp.get_context(method)
    with shmbus.Bus(busname, create=True, unlink=True) as bus:
        a = bus.array("A", dtype="int64", length=4)
        f = bus.array("F", dtype="float64", length=1)
        bus.lock("L")
        procs = [ctx.Process(target=helpers.array_adder, args=(busname, n)) for _ in range(procs_n)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert all(p.exitcode == 0 for p in procs)
        assert a.tolist() == [procs_n * n, -2 * procs_n * n, 3 * procs_n * n, procs_n * (n // 10)]
        assert f[0] == 0.5 * procs_n * n


def test_second_handle_same_process_times_out(bus):
    lk = bus.lock("L")
    lk.acquire()
    other = bus.lock("L")
    t0 = time.monotonic()
    assert other.acquire(timeout=0.05) is False
    assert time.monotonic() - t0 < 5
    lk.release()
    assert other.acquire(timeout=1)
    other.release()

"""Queue channels from Python: every call, bad arguments, multi-process."""
import multiprocessing as mp
import subprocess
import sys
import time

import numpy as np
import pytest

import helpers
import shmbus
from conftest import scale


def test_put_get_in_order(bus):
    q = bus.queue("q", slots=8, max_msg=64, group="g")
    for i in range(5):
        q.put(b"m%d" % i)
    assert [q.get(timeout=1) for _ in range(5)] == [b"m%d" % i for i in range(5)]
    assert q.group == "g" and q.slots == 8 and q.max_msg == 64


def test_put_accepts_buffers(bus):
    q = bus.queue("q", group="g")
    q.put(bytearray(b"ab"))
    q.put(memoryview(b"cd"))
    q.put(np.arange(3, dtype=np.uint8))
    q.put(b"")
    assert [q.get(), q.get(), q.get(), q.get()] == [b"ab", b"cd", b"\x00\x01\x02", b""]
    with pytest.raises(TypeError):
        q.put("text")
    with pytest.raises(TypeError):
        q.put(12)


def test_get_timeout_and_nonblocking(bus):
    q = bus.queue("q", group="g")
    with pytest.raises(shmbus.Timeout):
        q.get(timeout=0)
    with pytest.raises(shmbus.Timeout) as e:
        q.get(timeout=0.05)
    assert "q" in str(e.value)


def test_full_ring_put_times_out(bus):
    q = bus.queue("q", slots=4, max_msg=16, group="g")
    for i in range(4):
        q.put(b"x", timeout=0)
    with pytest.raises(shmbus.Timeout):
        q.put(b"x", timeout=0)
    with pytest.raises(shmbus.Timeout):
        q.put(b"x", timeout=0.05)
    q.get()
    q.put(b"y", timeout=0)


def test_drop_group_frees_the_ring(bus):
    p = bus.queue("q", slots=4, max_msg=16)
    keep = bus.queue("q", group="keep", durable=True)
    for i in range(4):
        p.put(b"x", timeout=0)
    with pytest.raises(shmbus.Busy):
        p.drop_group("keep")             # a live member
    with pytest.raises(shmbus.Busy):
        keep.drop_group("keep")          # its own group
    keep.detach()
    with pytest.raises(shmbus.Timeout):
        p.put(b"x", timeout=0)           # the durable group still gates
    with pytest.raises(shmbus.NotFound):
        p.drop_group("nope")
    p.drop_group("keep")
    p.put(b"y", timeout=0)               # room at once
    assert p.info()["groups"] == []
    fresh = bus.queue("q", group="keep")  # the name starts afresh, at the newest
    p.put(b"z", timeout=0)
    assert fresh.get(timeout=1) == b"z"


def test_too_big(bus):
    q = bus.queue("q", max_msg=16, group="g")
    with pytest.raises(shmbus.TooBig):
        q.put(b"x" * 17)
    q.put(b"y" * 16)
    small = bytearray(4)
    with pytest.raises(shmbus.TooBig):
        q.get_into(small)
    big = bytearray(32)
    assert q.get_into(big) == 16 and bytes(big[:16]) == b"y" * 16


def test_close_is_the_old_name_of_shut_and_says_so(bus):
    # close() releases a handle everywhere else in shmbus; on a queue it
    # was the first name of shut(): it still marks end of stream, with a
    # DeprecationWarning naming shut().
    q = bus.queue("q_old", group="g")
    q.put(b"a")
    with pytest.warns(DeprecationWarning, match="shut"):
        q.close()
    assert q.is_shut
    assert list(q) == [b"a"]


def test_shut_ends_iteration_and_refuses_puts(bus):
    q = bus.queue("q", group="g")
    for i in range(3):
        q.put(b"%d" % i)
    assert not q.closed
    assert not q.info()["shut"] and not q.info()["closed"]
    q.shut()
    assert q.is_shut and q.closed
    # info() names it as C and `shmbus info --json` do, and by its first name
    assert q.info()["shut"] is True and q.info()["closed"] is True
    with pytest.raises(shmbus.Closed):
        q.put(b"late")
    assert list(q) == [b"0", b"1", b"2"]
    with pytest.raises(shmbus.Closed):
        q.get(timeout=1)


def test_groups_broadcast_and_share(bus):
    prod = bus.queue("q", slots=64)
    a = bus.queue("q", group="A")
    b1 = bus.queue("q").join("B")
    b2 = bus.queue("q").join("B")
    for i in range(10):
        prod.put(b"%d" % i)
    assert [a.get() for _ in range(10)] == [b"%d" % i for i in range(10)]
    got = []
    for _ in range(5):
        got.append(b1.get(timeout=1))
        got.append(b2.get(timeout=1))
    assert sorted(got, key=int) == [b"%d" % i for i in range(10)]
    info = prod.info()
    assert {g["name"] for g in info["groups"]} == {"A", "B"}
    assert info["head"] == 10


def test_group_earliest_and_latest(bus):
    prod = bus.queue("q", slots=16)
    prod.put(b"old")
    late = bus.queue("q", group="late")
    early = bus.queue("q", group="early", earliest=True)
    prod.put(b"new")
    assert late.get(timeout=1) == b"new"
    assert early.get(timeout=1) == b"old"


def test_get_with_info(bus):
    q = bus.queue("q", group="g")
    q.put(b"a")
    q.put(b"b")
    assert q.get_with_info() == (b"a", 0, False)
    data, seq, redelivered = q.get_with_info()
    assert (data, seq, redelivered) == (b"b", 1, False)


def test_peek_zero_copy_memoryview(bus):
    q = bus.queue("q", group="g")
    q.put(b"hello world")
    q.put(b"second")
    p = q.peek(timeout=1)
    with p as mv:
        assert isinstance(mv, memoryview) and mv.readonly
        assert bytes(mv) == b"hello world" and p.len == 11 and p.seq == 0
        with pytest.raises(RuntimeError):
            q.get()  # the peeked message is still held
        arr = np.frombuffer(mv, dtype=np.uint8)
        assert arr[0] == ord("h")
        del arr
    with pytest.raises(ValueError):
        bytes(mv)  # released at the end of the block
    assert q.get() == b"second"
    with pytest.raises(shmbus.Timeout):
        with q.peek(timeout=0.01):
            pass


def test_peek_released_on_exception(bus):
    q = bus.queue("q", group="g")
    q.put(b"one")
    q.put(b"two")
    with pytest.raises(KeyError):
        with q.peek() as mv:
            raise KeyError(bytes(mv))
    assert q.get() == b"two"


def test_bad_queue_arguments(bus):
    with pytest.raises((shmbus.InvalidArgument, shmbus.NoSpace)):
        bus.queue("q", slots=1 << 31)
    with pytest.raises(shmbus.InvalidArgument):
        bus.queue("q", slots=1 << 40)
    with pytest.raises(shmbus.InvalidArgument):
        bus.queue("q", max_msg=-1)
    with pytest.raises(shmbus.NotFound):
        bus.queue("nope", create=False)
    bus.state("st")
    with pytest.raises(shmbus.TypeMismatch):
        bus.queue("st")
    q = bus.queue("q2")
    with pytest.raises(shmbus.InvalidArgument):
        q.join("bad group name!")
    with pytest.raises(shmbus.Error):
        q.get(timeout=0)  # not joined
    with pytest.raises(ValueError):
        q.put(b"x", timeout=-2)
    with pytest.raises(TypeError):
        q.put()


def test_detach_and_context(bus):
    with bus.queue("q", group="g") as q:
        q.put(b"x")
    assert q.detached
    with pytest.raises(ValueError):
        q.get()
    q2 = bus.queue("q", group="g")
    assert q2.get(timeout=1) == b"x"  # the group's position survived the handle


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocess_exact_delivery(busname, method):
    ctx = mp.get_context(method)
    n = int(3000 * scale())
    with shmbus.Bus(busname, create=True, size=8 << 20, unlink=True) as bus:
        out = helpers.results_queue(bus)
        q = bus.queue("q", slots=64, max_msg=64)
        procs = [ctx.Process(target=helpers.consumer, args=(busname, g))
                 for g in ("all", "work", "work")]
        for p in procs:
            p.start()
        deadline = time.monotonic() + 60
        while True:  # wait for the consumers to join
            members = {g["name"]: g["live_members"] for g in q.info()["groups"]}
            if members.get("all") == 1 and members.get("work") == 2:
                break
            assert time.monotonic() < deadline and all(p.is_alive() for p in procs), members
            time.sleep(0.001)
        prods = [ctx.Process(target=helpers.producer, args=(busname, t, n)) for t in (1, 2)]
        for p in prods:
            p.start()
        for p in prods:
            p.join(60)
        q.shut()
        res = helpers.results(out, len(procs))
        for p in procs:
            p.join(10)
    assert all(p.exitcode == 0 for p in procs + prods)
    everything = sorted((t, i) for t in (1, 2) for i in range(n))
    full = [r[1] for r in res if r[0] == "all"][0]
    assert sorted(full) == everything
    for t in (1, 2):  # per-producer order is kept
        mine = [i for (tt, i) in full if tt == t]
        assert mine == list(range(n))
    work = sorted(x for r in res if r[0] == "work" for x in r[1])
    assert work == everything  # nothing lost, nothing duplicated


def test_subprocess_consumer(bus, busname, child_env):
    q = bus.queue("q", slots=32, max_msg=64)
    child = subprocess.Popen([sys.executable, helpers.__file__, "consume", busname, "sub"],
                             env=child_env, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while {g["name"] for g in q.info()["groups"]} != {"sub"}:
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.001)
    for i in range(500):
        q.put(helpers.msg(9, i), timeout=10)
    q.shut()
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0 and out.strip() == b"500"


def test_one_handle_one_thread(bus):
    import threading
    q = bus.queue("q", group="g")
    started = threading.Event()
    errors = []

    def getter():
        started.set()
        try:
            q.get(timeout=3.0)
        except shmbus.Timeout:
            pass
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    th = threading.Thread(target=getter)
    th.start()
    started.wait()
    raised = False
    buf = bytearray(64)
    while th.is_alive() and not raised:  # same handle, while the getter waits
        try:
            q.get_into(buf, timeout=0)
        except shmbus.Timeout:
            time.sleep(0.001)  # the getter has not started waiting yet
        except RuntimeError:
            raised = True
    th.join()
    assert not errors and raised, "a second thread on a waiting handle must get RuntimeError"
    # separate handles in separate threads are fine
    q2 = bus.queue("q")
    th = threading.Thread(target=lambda: q2.put(b"y"))
    th.start()
    th.join()
    assert q.get(timeout=1) == b"y"


# A producer written against the C API (through ctypes: the binding has no
# reserve) that reserves a slot, says so on stdout and waits to be killed.
_RESERVER = r"""
import ctypes, sys, time
lib = ctypes.CDLL(sys.argv[1])
bus, q, ptr = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
assert lib.shmbus_bus_open(sys.argv[2].encode(), None, ctypes.byref(bus)) == 0
assert lib.shmbus_queue_open(bus, b"q", None, ctypes.byref(q)) == 0
assert lib.shmbus_queue_reserve(q, ctypes.c_size_t(8), ctypes.byref(ptr),
                                ctypes.c_int64(5000000000)) == 0
print("reserved", flush=True)
time.sleep(60)
"""


def _kill_between_reserve_and_commit(busname):
    import os
    import signal
    from conftest import ROOT
    lib = os.path.join(ROOT, "build", "libshmbus.so.1")
    assert os.path.exists(lib), "make lib builds " + lib
    p = subprocess.Popen([sys.executable, "-c", _RESERVER, lib, busname],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "reserved"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()


def test_get_passes_a_dead_producers_reservation(bus, busname):
    """A producer killed between reserve and commit leaves a claimed slot
    that is never published; get (which waits in short slices) passes
    over it once the producer is known dead, well within its timeout."""
    q = bus.queue("q", slots=8, max_msg=64, group="g")
    for i in range(12):  # 12 kills turn the 8-slot ring over
        _kill_between_reserve_and_commit(busname)
        q.put(b"after %d" % i)
        t0 = time.monotonic()
        assert q.get(timeout=3) == b"after %d" % i
        # the liveness timeout is 0.2 s; 2 s is margin for a loaded machine
        assert time.monotonic() - t0 < 2.0
    with pytest.raises(shmbus.Timeout):
        q.get(timeout=0)


def _late_consumer(busname, group, n, out):
    time.sleep(0.3)
    with shmbus.Bus(busname) as b:
        q = b.queue("q", create=False, group=group)
        out.put([q.get(timeout=10) for _ in range(n)])


def test_wait_groups_before_putting(bus, busname):
    """A producer that waits for its consumers' groups loses nothing to
    consumers that start after it; without a group a queue overwrites."""
    q = bus.queue("q", slots=4, max_msg=16)
    for i in range(8):  # no group: never blocks, the oldest are overwritten
        q.put(b"%d" % i, timeout=0)
    with pytest.raises(shmbus.Timeout):
        q.wait_groups(1, timeout=0)
    t0 = time.monotonic()
    with pytest.raises(shmbus.Timeout) as e:
        q.wait_groups(timeout=0.1)
    assert time.monotonic() - t0 >= 0.1 and "0 consumer groups" in str(e.value)
    with pytest.raises(shmbus.InvalidArgument):
        q.wait_groups(17)  # the queue holds 16 groups
    q.wait_groups(0, timeout=0)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    p = ctx.Process(target=_late_consumer, args=(busname, "late", 40, out))
    p.start()
    try:
        q.wait_groups(1, timeout=10)
        for i in range(40):  # ten rings: only a group that receives drains them
            q.put(b"m%d" % i, timeout=10)
        assert out.get(timeout=20) == [b"m%d" % i for i in range(40)]
    finally:
        p.join(10)
        if p.is_alive():
            p.kill()
    assert p.exitcode == 0


def test_cells_carry_small_and_large_messages_in_one_ring(bus):
    # docs/python.md: cell_bytes=64 with 1024 cells is a 64 KiB ring whose
    # messages take as many cells as they need.
    q = bus.queue("cells", slots=1024, cell_bytes=64, group="g")
    sizes = [8, 64, 100, 4096, 30000, 8, 65536 // 2]
    msgs = [bytes([i % 251]) * n for i, n in enumerate(sizes * 20)]
    got = []
    for m in msgs:                   # interleaved: the ring wraps many times
        q.put(m, timeout=5)
        got.append(q.get(timeout=5))
    assert got == msgs
    assert q.max_msg == 1024 * 64    # max_msg 0: the whole ring
    with pytest.raises(shmbus.TooBig):
        q.put(b"x" * (1024 * 64 + 1), timeout=0)
    with pytest.raises(shmbus.InvalidArgument):
        bus.queue("cells_bad", cell_bytes=12)


def test_a_queue_says_whether_it_has_cells(bus):
    # docs/python.md: Queue.cell_bytes, info()["cell_bytes"] and a queue's
    # entry in bus.channels() give the cell size, 0 for a queue of slots;
    # with cells, head and depth count cells.
    c = bus.queue("cellsinfo", slots=16, cell_bytes=64, group="g")
    s = bus.queue("slotsinfo", slots=16, max_msg=128)
    assert (c.cell_bytes, c.slots, c.max_msg) == (64, 16, 16 * 64)
    assert (s.cell_bytes, s.slots, s.max_msg) == (0, 16, 128)
    c.put(b"x" * 100)                # 2 cells of 64
    c.put(b"y")                      # 1 cell
    i = c.info()
    assert (i["cell_bytes"], i["slots"], i["head"], i["depth"]) == (64, 16, 3, 3)
    assert s.info()["cell_bytes"] == 0
    chans = {ch["name"]: ch for ch in bus.channels()}
    assert chans["cellsinfo"]["cell_bytes"] == 64 and chans["cellsinfo"]["capacity"] == 16
    assert chans["slotsinfo"]["cell_bytes"] == 0
    assert "cell_bytes=64" in repr(c) and "cell_bytes" not in repr(s)
    # another handle on the same queue, opened without naming the cell size
    other = bus.queue("cellsinfo", create=False)
    assert other.cell_bytes == 64
    assert c.get() == b"x" * 100 and c.info()["depth"] == 1

"""Child-process bodies for the multi-process tests (importable by spawn)."""
import pickle
import struct
import sys
import zlib

import numpy as np

import shmbus


RESULT_SLOTS, RESULT_MAX = 8, 256 << 10


def results_queue(bus):
    """The parent's end of the results queue (children report through it;
    no multiprocessing semaphores, which spawn passes by name)."""
    return bus.queue("results", slots=RESULT_SLOTS, max_msg=RESULT_MAX, group="parent",
                     earliest=True)


def report(bus_name, obj):
    with shmbus.Bus(bus_name) as bus:
        bus.queue("results", create=False).put(pickle.dumps(obj), timeout=60)


def results(q, n):
    return [pickle.loads(q.get(timeout=120)) for _ in range(n)]


def torn_reader(bus_name, n_reads, out=None):
    """Read a big state until n_reads values were seen; every value must be
    uniform (the writer fills all elements with the same number)."""
    bad = seen = 0
    with shmbus.Bus(bus_name, wait=10) as bus:
        st = bus.state("big", dtype="int64", shape=(64, 1024))
        buf = np.empty((64, 1024), np.int64)
        st.wait(newer_than=0, timeout=10)
        while seen < n_reads:
            st.read(out=buf)
            if buf.min() != buf.max():
                bad += 1
            seen += 1
    report(bus_name, ("reader", seen, bad))


def torn_writer(bus_name, n_writes, out=None):
    with shmbus.Bus(bus_name, wait=10) as bus:
        st = bus.state("big", dtype="int64", shape=(64, 1024))
        buf = np.empty((64, 1024), np.int64)
        for i in range(1, n_writes + 1):
            buf.fill(i)
            st.write(buf)
    report(bus_name, ("writer", n_writes, 0))


def msg(pid_tag, i):
    body = struct.pack("<II", pid_tag, i) * (1 + i % 5)
    return struct.pack("<I", zlib.crc32(body)) + body


def check(m):
    crc, = struct.unpack_from("<I", m)
    if zlib.crc32(m[4:]) != crc:
        raise AssertionError("corrupt message")
    return struct.unpack_from("<II", m, 4)


def producer(bus_name, tag, n, out=None):
    with shmbus.Bus(bus_name, wait=10) as bus:
        q = bus.queue("q", create=False)
        for i in range(n):
            q.put(msg(tag, i), timeout=30)
    if out is not None:
        out.put(("producer", tag, n))


def consumer(bus_name, group, out=None):
    got = []
    with shmbus.Bus(bus_name, wait=10) as bus:
        q = bus.queue("q", create=False)
        q.join(group, earliest=True)
        for m in q:
            got.append(check(m))
    report(bus_name, (group, got))


def state_writer_then_exit(bus_name):
    with shmbus.Bus(bus_name) as bus:
        bus.state("w", dtype="float64").write(1.0)


def hold_writer_role(bus_name, ready, stop):
    with shmbus.Bus(bus_name) as bus:
        st = bus.state("w", dtype="float64")
        st.write(7.0)
        ready.set()
        stop.wait(20)


def write_many_writer(bus_name, ready, stop):
    """Another process writes the many-writer channel "m" and stays."""
    with shmbus.Bus(bus_name) as bus:
        st = bus.state("m", dtype="float64")    # opened as it was made
        st.write(7.0)
        ready.set()
        stop.wait(20)


if __name__ == "__main__":
    # subprocess entry: python helpers.py consume BUS GROUP -> prints count
    if sys.argv[1] == "consume":
        with shmbus.Bus(sys.argv[2], wait=10) as bus:
            q = bus.queue("q", create=False, group=sys.argv[3], earliest=True)
            n = 0
            for m in q:
                check(m)
                n += 1
        print(n)


def hold_lock_then_die(bus_name, held):
    """Take the lock and die without releasing it."""
    import os
    bus = shmbus.Bus(bus_name)
    lk = bus.lock("L")
    lk.acquire()
    held.set()
    os._exit(0)


def hold_lock(bus_name, held, release):
    with shmbus.Bus(bus_name) as bus:
        lk = bus.lock("L")
        with lk:
            held.set()
            release.wait(20)


def turn_worker(bus_name, rounds):
    with shmbus.Bus(bus_name) as bus:
        t = bus.turn("T")
        log = bus.array("log", dtype="int64", length=0, create=False)
        ctl = bus.array("ctl", dtype="int64", length=0, create=False)
        ctl[0] += 1  # registered
        go = bus.event("go")
        assert go.wait(20)
        for _ in range(rounds):
            with t:
                pos = ctl.add(1, 1)
                log[pos] = t.party


def array_adder(bus_name, n):
    with shmbus.Bus(bus_name) as bus:
        a = bus.array("A", dtype="int64", length=0, create=False)
        f = bus.array("F", dtype="float64", length=0, create=False)
        for i in range(n):
            a[0] += 1
            a[1] -= 2
            a.add(2, 3)
            f[0] += 0.5
        lock = bus.lock("L")
        for i in range(n // 10):
            with lock:  # a plain read-modify-write made safe by the lock
                a[3] = int(a[3]) + 1


def container_adder(bus_name, n, tag):
    with shmbus.Bus(bus_name) as bus:
        d = bus.dict("D")
        lst = bus.list("Li")
        for i in range(n):
            d["count"] += 1
            d["f"] += 0.5
            lst[0] += 1
            lst[1] += 1.5
        d["proc-%d" % tag] = n

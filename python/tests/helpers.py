"""Child-process bodies for the multi-process tests (importable by spawn)."""
import struct
import sys
import zlib

import numpy as np

import shmbus


def torn_reader(bus_name, n_reads, out):
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
    out.put(("reader", seen, bad))


def torn_writer(bus_name, n_writes, out):
    with shmbus.Bus(bus_name, wait=10) as bus:
        st = bus.state("big", dtype="int64", shape=(64, 1024))
        buf = np.empty((64, 1024), np.int64)
        for i in range(1, n_writes + 1):
            buf.fill(i)
            st.write(buf)
    out.put(("writer", n_writes, 0))


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


def consumer(bus_name, group, out):
    got = []
    with shmbus.Bus(bus_name, wait=10) as bus:
        q = bus.queue("q", create=False)
        q.join(group, earliest=True)
        for m in q:
            got.append(check(m))
    out.put((group, got))


def state_writer_then_exit(bus_name):
    with shmbus.Bus(bus_name) as bus:
        bus.state("w", dtype="float64").write(1.0)


def hold_writer_role(bus_name, ready, stop):
    with shmbus.Bus(bus_name) as bus:
        st = bus.state("w", dtype="float64")
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

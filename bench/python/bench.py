#!/usr/bin/env python3
"""shmbus from Python against the standard library's multiprocessing, in one run.

Measured, each the same work on both sides:
  state      write + read back one value (a float64, and 64 float64s)
             vs multiprocessing.shared_memory.ShareableList (item set + get)
  element    int64 element get and set through the numpy view of an Array,
             through Array indexing, atomic += ; vs ShareableList items;
             bulk element writes+reads through the numpy view
  dict       get and set on Bus.dict vs a Manager().dict()
  list       item get, set and += on Bus.list vs ShareableList
  queue      64-byte messages from one process to another: msgs/s
             vs multiprocessing.Queue and multiprocessing.Pipe
  ping-pong  round trip of a 64-byte message between two processes
             vs multiprocessing.Pipe and a pair of multiprocessing.Queue

Ops are timed in batches; a figure is the median of the per-op times over
the batches (and its p99). Ratios are shmbus's speed over the other's.
Writes docs/benchmarks-python.md (unless --no-write).

    PYTHONPATH=python /usr/bin/python3 bench/python/bench.py [--quick]
"""
import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from multiprocessing import shared_memory

import numpy as np

import shmbus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MSG = b"m" * 64
now = time.perf_counter_ns


def pct(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


class Result:
    def __init__(self, group, name, who, ns_per_op):
        self.group, self.name, self.who = group, name, who
        self.med = statistics.median(ns_per_op)
        self.p99 = pct(ns_per_op, 0.99)

    @property
    def ops(self):
        return 1e9 / self.med if self.med else float("inf")


RESULTS = []


def timed(group, name, who, fn, batches, per_batch):
    """fn(k) runs k ops; returns the Result of batches runs."""
    fn(min(per_batch, 100))  # warm up
    samples = []
    for _ in range(batches):
        t = now()
        fn(per_batch)
        samples.append((now() - t) / per_batch)
    r = Result(group, name, who, samples)
    RESULTS.append(r)
    print("  %-10s %-34s %-28s %10.0f ops/s  median %8.1f ns  p99 %8.1f ns"
          % (group, name, who, r.ops, r.med, r.p99), flush=True)
    return r


# ---------------------------------------------------------------------------
# in-process figures: state, elements, dict, list

def bench_local(bus, B, K):
    v1 = np.array([1.5])
    v64 = np.arange(64, dtype=np.float64)
    out64 = np.empty(64)
    st1 = bus.state("s1", dtype="float64", shape=(1,))
    st64 = bus.state("s64", dtype="float64", shape=(64,))
    sc = bus.state("sc")  # scalar: Python floats in and out

    def st_scalar(k):
        w, r = sc.write, sc.read
        for _ in range(k):
            w(1.5)
            r()

    def st_one(k):
        w, r = st1.write, st1.read
        for _ in range(k):
            w(v1)
            r(out=v1)

    def st_vec(k):
        w, r = st64.write, st64.read
        for _ in range(k):
            w(v64)
            r(out=out64)

    sl = shared_memory.ShareableList([0.0] * 64)
    try:
        def sl_one(k):
            for _ in range(k):
                sl[0] = 1.5
                sl[0]

        def sl_vec(k):
            vals = v64.tolist()
            for _ in range(k):
                for i in range(64):
                    sl[i] = vals[i]
                [sl[i] for i in range(64)]

        timed("state", "write+read 1 float64", "shmbus scalar", st_scalar, B, K)
        timed("state", "write+read 1 float64", "shmbus numpy out=", st_one, B, K)
        timed("state", "write+read 1 float64", "ShareableList", sl_one, B, K)
        timed("state", "write+read 64 float64", "shmbus numpy out=", st_vec, B, K)
        timed("state", "write+read 64 float64", "ShareableList", sl_vec, B, max(1, K // 50))

        arr = bus.array("arr", dtype="int64", length=1024)
        view = arr.numpy()

        def np_get(k):
            v = view
            for i in range(k):
                v[i & 1023]

        def np_set(k):
            v = view
            for i in range(k):
                v[i & 1023] = i

        def a_get(k):
            a = arr
            for i in range(k):
                a[i & 1023]

        def a_set(k):
            a = arr
            for i in range(k):
                a[i & 1023] = i

        def a_iadd(k):
            a = arr
            for i in range(k):
                a[i & 1023] += 1

        def a_add(k):
            add = arr.add
            for i in range(k):
                add(i & 1023, 1)

        def np_bulk(k):  # k elements written and read back, in blocks of 1024
            v = view
            src = np.arange(1024, dtype=np.int64)
            for _ in range(max(1, k // 1024)):
                v[:] = src
                src = v + 1

        sli = shared_memory.ShareableList([0] * 1024)
        try:
            def sl_get(k):
                s = sli
                for i in range(k):
                    s[i & 1023]

            def sl_set(k):
                s = sli
                for i in range(k):
                    s[i & 1023] = i

            def sl_iadd(k):
                s = sli
                for i in range(k):
                    s[i & 1023] += 1  # not atomic: the same work, without the guarantee

            timed("element", "int64 get", "shmbus numpy view", np_get, B, K)
            timed("element", "int64 get", "shmbus Array[i]", a_get, B, K)
            timed("element", "int64 get", "ShareableList", sl_get, B, K)
            timed("element", "int64 set", "shmbus numpy view", np_set, B, K)
            timed("element", "int64 set", "shmbus Array[i]", a_set, B, K)
            timed("element", "int64 set", "ShareableList", sl_set, B, K)
            timed("element", "int64 += 1 (atomic)", "shmbus Array[i] +=", a_iadd, B, K)
            timed("element", "int64 += 1 (atomic)", "shmbus Array.add", a_add, B, K)
            timed("element", "int64 += 1", "ShareableList (not atomic)", sl_iadd, B, K)
            timed("element", "int64 bulk write+read", "shmbus numpy view", np_bulk, B, K * 64)
        finally:
            sli.shm.close()
            sli.shm.unlink()
        del view

        try:
            d = bus.dict("d")
            lst = bus.list("l")
        except NotImplementedError:
            d = lst = None
        if d is not None:
            d["k"] = 1
            lst.extend([0] * 16)
            mgr = mp.Manager()
            md = mgr.dict()
            md["k"] = 1
            try:
                def d_get(k):
                    for _ in range(k):
                        d["k"]

                def d_set(k):
                    for i in range(k):
                        d["k"] = i

                def d_iadd(k):
                    for _ in range(k):
                        d["k"] += 1

                def m_get(k):
                    for _ in range(k):
                        md["k"]

                def m_set(k):
                    for i in range(k):
                        md["k"] = i

                def l_get(k):
                    for i in range(k):
                        lst[i & 15]

                def l_set(k):
                    for i in range(k):
                        lst[i & 15] = i

                def l_iadd(k):
                    for i in range(k):
                        lst[i & 15] += 1

                timed("dict", "get", "shmbus Dict", d_get, B, K // 4)
                timed("dict", "get", "Manager().dict()", m_get, B, K // 40)
                timed("dict", "set", "shmbus Dict", d_set, B, K // 4)
                timed("dict", "set", "Manager().dict()", m_set, B, K // 40)
                timed("dict", "+= 1 (atomic)", "shmbus Dict", d_iadd, B, K // 4)
                timed("list", "int64 get", "shmbus List", l_get, B, K // 4)
                timed("list", "int64 set", "shmbus List", l_set, B, K // 4)
                timed("list", "int64 += 1", "shmbus List (atomic)", l_iadd, B, K // 4)
            finally:
                mgr.shutdown()
    finally:
        sl.shm.close()
        sl.shm.unlink()


# ---------------------------------------------------------------------------
# two-process figures: queue throughput and ping-pong

def shm_consumer(name, n, ready, policy):
    with shmbus.Bus(name) as bus:
        q = bus.queue("tp", create=False, group="c", wait_policy=policy)
        ready.set()
        get = q.get
        for _ in range(n):
            get()


def mpq_consumer(q, n, ready):
    ready.set()
    for _ in range(n):
        q.get()


def pipe_consumer(conn, n, ready):
    ready.set()
    for _ in range(n):
        conn.recv_bytes()


def throughput(ctx, name, B, N):
    """B runs of N messages each, one producer process (us) to one consumer."""
    def run(kind):
        samples = []
        for _ in range(B):
            ready = ctx.Event()
            if kind.startswith("shmbus"):
                policy = kind.split(":")[1]
                with shmbus.Bus(name, create=True, size=32 << 20, unlink=True) as bus:
                    q = bus.queue("tp", slots=4096, max_msg=64, wait_policy=policy)
                    p = ctx.Process(target=shm_consumer, args=(name, N, ready, policy))
                    p.start()
                    ready.wait()
                    while not any(g["live_members"] for g in q.info()["groups"]):
                        time.sleep(0.001)
                    put = q.put
                    t = now()
                    for _ in range(N):
                        put(MSG)
                    p.join()
                    samples.append((now() - t) / N)
            elif kind == "queue":
                q = ctx.Queue()
                p = ctx.Process(target=mpq_consumer, args=(q, N, ready))
                p.start()
                ready.wait()
                t = now()
                for _ in range(N):
                    q.put(MSG)
                p.join()
                samples.append((now() - t) / N)
            else:
                a, b = ctx.Pipe(duplex=False)
                p = ctx.Process(target=pipe_consumer, args=(a, N, ready))
                p.start()
                ready.wait()
                t = now()
                for _ in range(N):
                    b.send_bytes(MSG)
                p.join()
                samples.append((now() - t) / N)
        return samples

    for kind, who in (("shmbus:spin_park", "shmbus Queue"),
                      ("shmbus:spin", "shmbus Queue (wait_policy=spin)"),
                      ("queue", "multiprocessing.Queue"), ("pipe", "multiprocessing.Pipe")):
        r = Result("queue", "64 B msgs, 1 -> 1 process", who, run(kind))
        RESULTS.append(r)
        print("  %-10s %-34s %-28s %10.0f msg/s  median %8.1f ns  p99 %8.1f ns"
              % (r.group, r.name, r.who, r.ops, r.med, r.p99), flush=True)


def shm_echo(name, n, policy):
    with shmbus.Bus(name) as bus:
        req = bus.queue("req", create=False, group="e", wait_policy=policy)
        rep = bus.queue("rep", create=False, wait_policy=policy)
        for _ in range(n):
            rep.put(req.get())


def pipe_echo(conn, n):
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


def mpq_echo(a, b, n):
    for _ in range(n):
        b.put(a.get())


def pingpong(ctx, name, N):
    def shm(policy):
        with shmbus.Bus(name, create=True, size=8 << 20, unlink=True) as bus:
            req = bus.queue("req", slots=64, max_msg=64, wait_policy=policy)
            rep = bus.queue("rep", slots=64, max_msg=64, group="p", wait_policy=policy)
            p = ctx.Process(target=shm_echo, args=(name, N + 100, policy))
            p.start()
            while not any(g["live_members"] for g in req.info()["groups"]):
                time.sleep(0.001)
            out = []
            for i in range(N + 100):
                t = now()
                req.put(MSG)
                rep.get()
                if i >= 100:
                    out.append(now() - t)
            p.join()
            return out

    def pipe():
        a, b = ctx.Pipe()
        p = ctx.Process(target=pipe_echo, args=(b, N + 100))
        p.start()
        out = []
        for i in range(N + 100):
            t = now()
            a.send_bytes(MSG)
            a.recv_bytes()
            if i >= 100:
                out.append(now() - t)
        p.join()
        return out

    def queues():
        a, b = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=mpq_echo, args=(a, b, N + 100))
        p.start()
        out = []
        for i in range(N + 100):
            t = now()
            a.put(MSG)
            b.get()
            if i >= 100:
                out.append(now() - t)
        p.join()
        return out

    for fn, who in ((lambda: shm("spin_park"), "shmbus Queue"),
                    (lambda: shm("spin"), "shmbus Queue (wait_policy=spin)"),
                    (lambda: shm("park"), "shmbus Queue (wait_policy=park)"),
                    (pipe, "multiprocessing.Pipe"), (queues, "multiprocessing.Queue x2")):
        r = Result("ping-pong", "64 B round trip, 2 processes", who, fn())
        RESULTS.append(r)
        print("  %-10s %-34s %-28s %10.0f rt/s   median %8.1f ns  p99 %8.1f ns"
              % (r.group, r.name, r.who, r.ops, r.med, r.p99), flush=True)


# ---------------------------------------------------------------------------
# report

def find(group, name, who):
    for r in RESULTS:
        if r.group == group and r.name == name and r.who == who:
            return r
    return None


def ratio_lines():
    """(description, shmbus result, other result) for the headline ratios."""
    pairs = [
        ("state write+read 1 float64", ("state", "write+read 1 float64", "shmbus scalar"),
         ("state", "write+read 1 float64", "ShareableList")),
        ("state write+read 64 float64", ("state", "write+read 64 float64", "shmbus numpy out="),
         ("state", "write+read 64 float64", "ShareableList")),
        ("int64 get, numpy view", ("element", "int64 get", "shmbus numpy view"),
         ("element", "int64 get", "ShareableList")),
        ("int64 set, numpy view", ("element", "int64 set", "shmbus numpy view"),
         ("element", "int64 set", "ShareableList")),
        ("int64 get, Array[i]", ("element", "int64 get", "shmbus Array[i]"),
         ("element", "int64 get", "ShareableList")),
        ("int64 set, Array[i]", ("element", "int64 set", "shmbus Array[i]"),
         ("element", "int64 set", "ShareableList")),
        ("int64 += 1, Array[i] (atomic) vs ShareableList (not)",
         ("element", "int64 += 1 (atomic)", "shmbus Array[i] +="),
         ("element", "int64 += 1", "ShareableList (not atomic)")),
        ("dict get", ("dict", "get", "shmbus Dict"), ("dict", "get", "Manager().dict()")),
        ("dict set", ("dict", "set", "shmbus Dict"), ("dict", "set", "Manager().dict()")),
        ("list get", ("list", "int64 get", "shmbus List"), ("element", "int64 get", "ShareableList")),
        ("list set", ("list", "int64 set", "shmbus List"), ("element", "int64 set", "ShareableList")),
        ("list += 1 (atomic) vs ShareableList (not)", ("list", "int64 += 1", "shmbus List (atomic)"),
         ("element", "int64 += 1", "ShareableList (not atomic)")),
        ("dict += 1 (atomic) vs Manager().dict() set", ("dict", "+= 1 (atomic)", "shmbus Dict"),
         ("dict", "set", "Manager().dict()")),
        ("queue throughput vs multiprocessing.Queue",
         ("queue", "64 B msgs, 1 -> 1 process", "shmbus Queue"),
         ("queue", "64 B msgs, 1 -> 1 process", "multiprocessing.Queue")),
        ("queue throughput, wait_policy=spin, vs multiprocessing.Queue",
         ("queue", "64 B msgs, 1 -> 1 process", "shmbus Queue (wait_policy=spin)"),
         ("queue", "64 B msgs, 1 -> 1 process", "multiprocessing.Queue")),
        ("queue throughput vs multiprocessing.Pipe",
         ("queue", "64 B msgs, 1 -> 1 process", "shmbus Queue"),
         ("queue", "64 B msgs, 1 -> 1 process", "multiprocessing.Pipe")),
        ("ping-pong vs multiprocessing.Pipe",
         ("ping-pong", "64 B round trip, 2 processes", "shmbus Queue"),
         ("ping-pong", "64 B round trip, 2 processes", "multiprocessing.Pipe")),
        ("ping-pong, wait_policy=spin, vs multiprocessing.Pipe",
         ("ping-pong", "64 B round trip, 2 processes", "shmbus Queue (wait_policy=spin)"),
         ("ping-pong", "64 B round trip, 2 processes", "multiprocessing.Pipe")),
        ("ping-pong, wait_policy=park, vs multiprocessing.Pipe",
         ("ping-pong", "64 B round trip, 2 processes", "shmbus Queue (wait_policy=park)"),
         ("ping-pong", "64 B round trip, 2 processes", "multiprocessing.Pipe")),
        ("ping-pong vs multiprocessing.Queue x2",
         ("ping-pong", "64 B round trip, 2 processes", "shmbus Queue"),
         ("ping-pong", "64 B round trip, 2 processes", "multiprocessing.Queue x2")),
    ]
    out = []
    for desc, a, b in pairs:
        ra, rb = find(*a), find(*b)
        if ra and rb:
            out.append((desc, ra, rb, rb.med / ra.med))
    return out


LOAD = "%.1f %.1f %.1f" % os.getloadavg()


def write_report(path, args, elapsed):
    lines = [
        "# Python benchmarks: shmbus against multiprocessing",
        "",
        "Generated by `bench/python/bench.py%s` (%s UTC, %.0f s). Machine: %s, %d CPUs, "
        "Python %s, numpy %s, shmbus %s. Figures depend on the machine and its load; "
        "rerun to compare." % (" --quick" if args.quick else "",
                               time.strftime("%Y-%m-%d %H:%M", time.gmtime()), elapsed,
                               platform.machine(), os.cpu_count(), platform.python_version(),
                               np.__version__, shmbus.library_version()),
        "",
        "Each figure: the same work done by both sides from Python, timed in batches; "
        "**median** time per operation over the batches and its **p99** (for ping-pong, "
        "per round trip). Ratio = the other's median time / shmbus's median time "
        "(above 1: shmbus is faster).",
        "",
        "## Ratios",
        "",
        "| comparison | shmbus (median) | other (median) | ratio |",
        "|---|---:|---:|---:|",
    ]
    for desc, ra, rb, x in ratio_lines():
        lines.append("| %s | %s | %s | **%.1fx** |" % (desc, fmt(ra.med), fmt(rb.med), x))
    lines += ["", "## All figures", "",
              "| group | work | implementation | ops/s | median | p99 |",
              "|---|---|---|---:|---:|---:|"]
    for r in RESULTS:
        lines.append("| %s | %s | %s | %s | %s | %s |"
                     % (r.group, r.name, r.who, fmt_ops(r.ops), fmt(r.med), fmt(r.p99)))
    lines += ["", "## Notes", "",
              "- `state`: shmbus publishes a whole value atomically (a reader never sees a "
              "torn value); ShareableList sets and gets items one at a time with no such "
              "guarantee across items.",
              "- `element` through the numpy view is plain memory access; `Array[i] +=` and "
              "`Array.add` are atomic across processes. ShareableList `+=` is a read then a "
              "write, not atomic: the same work, without the guarantee.",
              "- `int64 bulk write+read` counts elements moved by vectorised numpy "
              "operations on the shared view.",
              "- `queue`: one producer (the benchmark process) and one consumer process; "
              "time from the first put until the consumer has taken the last message.",
              "- `ping-pong`: the benchmark process sends a 64-byte message, an echo process "
              "sends it back; time per round trip.",
              "- `wait_policy`: the default `spin_park` spins 50 us, then sleeps on a futex. "
              "On a machine with more runnable processes than cores, a waiter that spun out "
              "its budget and slept is woken late, and both sides of a ping-pong can fall "
              "into sleeping every round; `spin` never sleeps (lowest latency, burns a core), "
              "`park` sleeps at once. The load average at the start of the run: %s." % LOAD,
              ""]
    # keep the section asyncio_bench.py writes
    begin, end = "<!-- asyncio-bench begin -->", "<!-- asyncio-bench end -->"
    old = open(path).read() if os.path.exists(path) else ""
    if begin in old and end in old:
        lines.append(old[old.index(begin):old.index(end) + len(end)])
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def fmt(ns):
    if ns >= 1e6:
        return "%.2f ms" % (ns / 1e6)
    if ns >= 1e3:
        return "%.2f us" % (ns / 1e3)
    return "%.1f ns" % ns


def fmt_ops(x):
    if x >= 1e6:
        return "%.2f M" % (x / 1e6)
    if x >= 1e3:
        return "%.1f k" % (x / 1e3)
    return "%.0f" % x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer and shorter batches")
    ap.add_argument("--no-write", action="store_true", help="do not write the report")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks-python.md"))
    args = ap.parse_args()
    B, K, N, P = (5, 2000, 20000, 2000) if args.quick else (15, 20000, 50000, 20000)
    name = "bench_py_%d" % os.getpid()
    ctx = mp.get_context("fork")
    t0 = time.monotonic()
    print("in-process (%d batches of %d ops):" % (B, K))
    with shmbus.Bus(name, create=True, size=16 << 20, unlink=True) as bus:
        bench_local(bus, B, K)
    print("two processes:")
    throughput(ctx, name + "_q", max(3, B // 3), N)
    pingpong(ctx, name + "_p", P)
    elapsed = time.monotonic() - t0
    print("\nratios (other's median time / shmbus's):")
    for desc, ra, rb, x in ratio_lines():
        print("  %-58s %7.1fx" % (desc, x))
    if not args.no_write:
        write_report(args.out, args, elapsed)
        print("wrote %s" % os.path.relpath(args.out, ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Processes taking turns on shared counters, then hammering them all at once.

Phase 1 (turns): N processes register on a Turn and, round after round,
each in its turn adds to its own item of a shared list, to a dict counter,
and checks that the process before it in the order had the previous turn.
Phase 2 (free for all): the same processes, no turns, add to one dict key
and one list item as fast as they can with plain `+=` -- atomic across
processes, so no update is lost. Run with 2 processes, then with N.
Exit 0 when every total is exact.
"""
import argparse
import multiprocessing as mp
import os
import sys
import time

import shmbus


def containers(bus):
    """The shared dict and list; (None, None) on a library built without
    them (then the counters live in an array instead)."""
    try:
        return bus.dict("counts"), bus.list("items")
    except NotImplementedError:
        return None, None


def worker(bus_name, n, rounds):
    with shmbus.Bus(bus_name) as bus:
        turn = bus.turn("turn")          # registers: our place in the order
        me = turn.party
        ctl = bus.array("ctl", length=0, create=False)
        ctl[0] += 1                       # tell the parent we registered
        if not bus.event("go").wait(30):
            return 2
        d, lst = containers(bus)
        arr = bus.array("fallback", length=0, create=False)
        out_of_order = 0
        for r in range(rounds):
            with turn:
                if d is not None:
                    if d["total"] and d["last"] != (me - 1) % n:
                        out_of_order += 1
                    d["last"] = me
                    d["total"] += 1
                    lst[me] += 1
                else:
                    if arr[n + 1] and arr[n] != (me - 1) % n:
                        out_of_order += 1
                    arr[n] = me
                    arr[n + 1] += 1
                    arr[me] += 1
        ctl[1] += 1
        while ctl[1] < n:                 # phase 2 starts together
            time.sleep(0.001)
        for r in range(rounds * 5):
            if d is not None:
                d["hits"] += 1
                lst[n] += 1.5
            else:
                arr[n + 2] += 1
        ctl[2] += out_of_order
    return 0


def run(n, rounds):
    name = "demo_py_counter_%d_%d" % (os.getpid(), n)
    ctx = mp.get_context("fork")
    with shmbus.Bus(name, create=True, size=8 << 20, unlink=True) as bus:
        bus.turn("turn", max_parties=max(n, 2), register=False)
        ctl = bus.array("ctl", dtype="int64", length=3)
        arr = bus.array("fallback", dtype="int64", length=n + 3)
        go = bus.event("go")
        d, lst = containers(bus)
        if d is not None:
            d.update({"total": 0, "last": -1, "hits": 0})
            lst.extend([0] * n + [0.0])
        procs = []
        for _ in range(n):  # one at a time, so the turn order is the start order
            p = ctx.Process(target=worker, args=(name, n, rounds))
            p.start()
            procs.append(p)
            deadline = time.monotonic() + 20
            while ctl[0] < len(procs) and time.monotonic() < deadline:
                time.sleep(0.002)
        t0 = time.monotonic()
        go.set()
        for p in procs:
            p.join(120)
        dt = time.monotonic() - t0
        bad = [p.exitcode for p in procs if p.exitcode != 0]
        if d is not None:
            items = lst.tolist()
            got = (d["total"], items[:n], d["hits"], items[n])
        else:
            items = arr.tolist()
            got = (items[n + 1], items[:n], items[n + 2], 1.5 * items[n + 2])
        want = (n * rounds, [rounds] * n, n * rounds * 5, 1.5 * n * rounds * 5)
        out_of_order = ctl[2]
        del d, lst
    ok = not bad and got == want and out_of_order == 0
    print("%d processes, %d turns each: total %d, per process %s, free-for-all %d and %.1f "
          "(want %d and %.1f), %d out of order, %.2f s: %s"
          % (n, rounds, got[0], got[1][:6], got[2], got[3],
             want[2], want[3], out_of_order, dt, "exact" if ok else "WRONG"))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--procs", type=int, default=4, help="N for the second run (default 4)")
    ap.add_argument("--rounds", type=int, default=300)
    a = ap.parse_args()
    ok = run(2, a.rounds)
    if a.procs != 2:
        ok = run(a.procs, a.rounds) and ok
    print("totals: %s" % ("exact" if ok else "WRONG"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

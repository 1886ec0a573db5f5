#!/usr/bin/env python3
"""One producer, 1-5 consumer processes, one shmbus queue.

The consumers form a work-queue group ("workers": each message goes to one
of them); one more process forms a broadcast-style audit group ("audit":
it sees every message, in order). The producer puts numbered messages whose
payload each consumer checks, then closes the queue: consumers drain what is
left and their iteration ends (graceful end). The parent checks that the
workers together got every message exactly once and the auditor got all of
them in order. Exit 0 only then.
"""
import argparse
from array import array
import hashlib
import multiprocessing as mp
import os
import struct
import sys
import time

import shmbus


def payload(i):
    body = hashlib.blake2b(struct.pack("<Q", i), digest_size=16).digest() * (1 + i % 8)
    return struct.pack("<Q", i) + body


def check(msg):
    (i,) = struct.unpack_from("<Q", msg)
    if msg != payload(i):
        raise AssertionError("message %d corrupted" % i)
    return i


def consumer(bus_name, group):
    got, bad = [], 0
    with shmbus.Bus(bus_name, wait=10) as bus:
        q = bus.queue("jobs", create=False, group=group, earliest=True)
        for msg in q:  # ends when the producer closed the queue and it is drained
            try:
                got.append(check(msg))
            except AssertionError:
                bad += 1
        # Report back on the same bus: group, pid, bad count, then the ids as int64s.
        bus.queue("results", create=False).put(
            struct.pack("<8sQQ", group.encode(), os.getpid(), bad) + array("q", got).tobytes())


def parse_result(b):
    group, pid, bad = struct.unpack_from("<8sQQ", b)
    ids = array("q")
    ids.frombytes(b[24:])
    return group.rstrip(b"\0").decode(), pid, ids.tolist(), bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--consumers", type=int, default=3, help="worker processes, 1-5 (default 3)")
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--bus", default="demo_py_pc_%d" % os.getpid())
    a = ap.parse_args()
    if not 1 <= a.consumers <= 5:
        ap.error("--consumers must be 1..5")
    ctx = mp.get_context("spawn")
    report_max = 8 * a.messages + 64
    with shmbus.Bus(a.bus, create=True, size=8 * report_max + (8 << 20), unlink=True) as bus:
        q = bus.queue("jobs", slots=256, max_msg=256)
        results = bus.queue("results", slots=8, max_msg=report_max, group="parent")
        procs = [ctx.Process(target=consumer, args=(a.bus, "workers"))
                 for _ in range(a.consumers)]
        procs.append(ctx.Process(target=consumer, args=(a.bus, "audit")))
        for p in procs:
            p.start()
        # Wait until every consumer has joined, so no group starts late.
        deadline = time.monotonic() + 60
        while True:
            members = {g["name"]: g["live_members"] for g in q.info()["groups"]}
            if members.get("workers", 0) == a.consumers and members.get("audit", 0) == 1:
                break
            if time.monotonic() > deadline or not all(p.is_alive() for p in procs):
                print("consumers did not join: %s" % members, file=sys.stderr)
                for p in procs:
                    p.terminate()
                return 1
            time.sleep(0.01)
        t0 = time.monotonic()
        for i in range(a.messages):
            q.put(payload(i), timeout=30)
        q.shut()  # end of stream
        outs = [parse_result(results.get(timeout=120)) for _ in procs]
        dt = time.monotonic() - t0
        for p in procs:
            p.join(10)
    ok = True
    workers = [o for o in outs if o[0] == "workers"]
    audit = [o for o in outs if o[0] == "audit"][0]
    all_ids = sorted(i for o in workers for i in o[2])
    if all_ids != list(range(a.messages)):
        missing = set(range(a.messages)) - set(all_ids)
        print("workers: %d messages, %d distinct, %d missing" %
              (len(all_ids), len(set(all_ids)), len(missing)), file=sys.stderr)
        ok = False
    if audit[2] != list(range(a.messages)):
        print("audit group did not see every message in order", file=sys.stderr)
        ok = False
    if any(o[3] for o in outs) or any(p.exitcode != 0 for p in procs):
        print("a consumer saw corrupt data or failed", file=sys.stderr)
        ok = False
    for o in workers:
        print("worker pid %d: %d messages" % (o[1], len(o[2])))
    print("%d messages to %d workers + 1 auditor in %.2f s (%.0f msg/s): %s"
          % (a.messages, a.consumers, dt, a.messages / dt, "ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

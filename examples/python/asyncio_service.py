"""An asyncio service on shmbus: two queues and a state channel in, one
queue out, all awaited in one thread with no thread per call.

The service (this process) starts a producer process (this file with
--producer), then runs three tasks on one event loop:

  * requests: `async for` over queue "requests"; each request (id, x) is
    answered on queue "replies" with (id, x * factor, factor);
  * control: `async for` over queue "control"; each "ping" is answered
    "pong" on "replies";
  * factor: `await factor.wait_async()` on state "factor", keeping the
    latest value for the request task.

The producer sends requests and pings, changes the factor now and then,
shuts both queues and checks every reply: each request answered exactly
once, x * factor right for a factor it wrote, every ping answered. The
service ends when both queues reach end of stream, cancels the factor task
and exits 0 when the producer's check held and its own counts agree.

    PYTHONPATH=python python3 examples/python/asyncio_service.py
"""
import argparse
import asyncio
import os
import struct
import subprocess
import sys
import time

import shmbus

REQ = struct.Struct("<Iq")        # id, x
REPLY = struct.Struct("<Iqq")     # id, x * factor, factor


async def serve(bus):
    requests = bus.queue("requests", create=False, group="svc")
    control = bus.queue("control", create=False, group="svc")
    replies = bus.queue("replies", create=False)
    factor = bus.state("factor", dtype="int64", create=False)
    seen = {"factor": 1, "factor_updates": 0, "requests": 0, "pings": 0}

    async def watch_factor():
        while True:
            await factor.wait_async()     # a value newer than the last one read
            seen["factor"] = factor.read()
            seen["factor_updates"] += 1

    async def answer_requests():
        async for msg in requests:        # ends at end of stream
            i, x = REQ.unpack(msg)
            f = seen["factor"]
            await replies.put_async(REPLY.pack(i, x * f, f))
            seen["requests"] += 1

    async def answer_control():
        async for msg in control:
            if msg == b"ping":
                await replies.put_async(b"pong")
                seen["pings"] += 1

    watcher = asyncio.create_task(watch_factor())
    await asyncio.gather(answer_requests(), answer_control())
    watcher.cancel()                      # cancelling an await leaves nothing behind
    try:
        await watcher
    except asyncio.CancelledError:
        pass
    for q in (requests, control, replies):
        q.detach()
    factor.close()
    return seen


def produce(name, n, pings):
    bus = shmbus.Bus(name, wait=10)
    replies = bus.queue("replies", create=False, group="producer", earliest=True)
    requests = bus.queue("requests", create=False)
    control = bus.queue("control", create=False)
    factor = bus.state("factor", dtype="int64", create=False)
    written = {1}
    answered, pongs, bad = set(), 0, 0

    def take_reply(timeout):
        nonlocal pongs, bad
        msg = replies.get(timeout=timeout)
        if msg == b"pong":
            pongs += 1
            return
        i, y, f = REPLY.unpack(msg)
        if i in answered or f not in written or y != (i + 1000) * f:
            bad += 1
        answered.add(i)

    def put(q, data):
        # the service may wait for room on "replies": read them meanwhile
        deadline = time.monotonic() + 30
        while True:
            try:
                return q.put(data, timeout=0.001)
            except shmbus.Timeout:
                if time.monotonic() > deadline:
                    raise
                try:
                    take_reply(0.001)
                except shmbus.Timeout:
                    pass

    for i in range(n):
        if i % 100 == 50:
            f = 2 + i // 100
            factor.write(f)
            written.add(f)
        if i % (n // pings) == 0:
            put(control, b"ping")
        put(requests, REQ.pack(i, i + 1000))
    requests.shut()
    control.shut()
    while len(answered) < n or pongs < pings:
        take_reply(30)
    print("producer: %d requests answered (%d wrong), %d of %d pings answered, factors %s"
          % (len(answered), bad, pongs, pings, sorted(written)))
    bus.close()
    return 0 if bad == 0 and len(answered) == n and pongs == pings else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bus", default="demo_asyncio_%d" % os.getpid())
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--pings", type=int, default=20)
    ap.add_argument("--producer", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.producer:
        return produce(a.bus, a.requests, a.pings)

    with shmbus.Bus(a.bus, create=True, size=8 << 20, unlink=True) as bus:
        # the groups exist before the producer puts anything
        bus.queue("requests", slots=64, group="svc").detach()
        bus.queue("control", slots=16, group="svc").detach()
        bus.queue("replies", slots=64, group="producer").detach()
        bus.state("factor", dtype="int64").write(1)
        producer = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--producer",
                                     "--bus", a.bus, "--requests", str(a.requests),
                                     "--pings", str(a.pings)])
        t0 = time.monotonic()
        seen = asyncio.run(serve(bus))
        rc = producer.wait(60)
        print("service: %d requests, %d pings, %d factor updates seen (last %d) in %.2f s"
              % (seen["requests"], seen["pings"], seen["factor_updates"], seen["factor"],
                 time.monotonic() - t0))
    ok = rc == 0 and seen["requests"] == a.requests and seen["pings"] == a.pings
    print("asyncio service: %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

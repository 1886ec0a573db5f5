"""Queues of cells from Python, as docs/python.md describes them:
bus.queue(..., cell_bytes=), Queue.cell_bytes, info()["cell_bytes"], head,
depth, cursor and lag counted in cells, a queue's entry in bus.channels(),
and messages of 0 bytes to max_msg between processes (a producer, and two
consumer processes in two groups: one iterating, one with zero-copy peek),
each message checked byte for byte."""
import hashlib
import os
import subprocess
import sys

import pytest

import shmbus

CELL = 64
SLOTS = 256
RING = CELL * SLOTS


def cells(n):
    """The cells a message of n bytes takes: max(1, ceil(n / cell_bytes))."""
    return max(1, -(-n // CELL))


def sizes(n):
    """n message lengths from 0 to the whole ring, fixed by a small LCG:
    mostly small, some of several cells, now and then a very large one;
    0, 1, a cell, a cell + 1 and the whole ring among the first ones."""
    out = [0, 1, CELL - 1, CELL, CELL + 1, RING, 7, RING // 2 + 1]
    x = 12345
    while len(out) < n:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        c = x % 100
        y = x >> 8
        if c < 40:
            out.append(y % 17)
        elif c < 70:
            out.append(17 + y % 112)
        elif c < 95:
            out.append(129 + y % 2000)
        else:
            out.append(2129 + y % (RING - 2129 + 1))
    return out[:n]


def payload(i, n):
    """Message i of n bytes: its index, then a pattern of both."""
    head = i.to_bytes(4, "little")
    body = bytes((i * 131 + k * 7) & 0xFF for k in range(max(0, n - 4)))
    return (head + body)[:n] if n >= 4 else bytes((i + k) & 0xFF for k in range(n))


def consume(busname, group, how, n):
    """Run in a child process: join group, check every message against the
    expected stream, then end of stream; print a digest."""
    bus = shmbus.Bus(busname)
    q = bus.queue("cells", group=group)
    assert q.cell_bytes == CELL, q.cell_bytes      # opened as it is
    lens = sizes(n)
    digest = hashlib.sha256()
    i = 0
    if how == "iter":
        for msg in q:                              # ends at end of stream
            assert i < n, "more than %d messages" % n
            assert bytes(msg) == payload(i, lens[i]), "message %d (%d bytes) differs" % (i, lens[i])
            digest.update(bytes(msg))
            i += 1
    else:
        while True:
            try:
                with q.peek(timeout=60) as mv:
                    assert i < n, "more than %d messages" % n
                    assert len(mv) == lens[i], "message %d: %d bytes, expected %d" % (i, len(mv), lens[i])
                    assert mv.tobytes() == payload(i, lens[i]), "message %d differs" % i
                    digest.update(mv.tobytes())
            except shmbus.Closed:
                break
            i += 1
    assert i == n, "end of stream after %d of %d messages" % (i, n)
    print("OK", i, digest.hexdigest())
    q.detach()
    bus.close()


def test_options_and_info_in_cells(bus):
    q = bus.queue("c", slots=64, cell_bytes=CELL)
    assert q.cell_bytes == CELL and q.slots == 64
    info = q.info()
    assert info["cell_bytes"] == CELL and info["slots"] == 64
    assert info["max_msg"] == 64 * CELL == q.max_msg     # max_msg: the whole ring
    entry = [c for c in bus.channels() if c["name"] == "c"][0]
    assert entry["cell_bytes"] == CELL and entry["capacity"] == 64

    # another cell size is TypeMismatch; a cell size not a multiple of 8 is refused
    with pytest.raises(shmbus.TypeMismatch):
        bus.queue("c", cell_bytes=128)
    with pytest.raises(shmbus.InvalidArgument):
        bus.queue("bad", slots=64, cell_bytes=12)
    # a queue of slots says 0
    s = bus.queue("s", slots=16, max_msg=256)
    assert s.cell_bytes == 0 and s.info()["cell_bytes"] == 0
    assert [c for c in bus.channels() if c["name"] == "s"][0]["cell_bytes"] == 0
    with pytest.raises(shmbus.TypeMismatch):
        bus.queue("s", cell_bytes=CELL)

    # head, depth, cursor and lag count cells
    g = bus.queue("c", group="g")
    lens = [0, 64, 65, 200, 8]
    for i, n in enumerate(lens):
        q.put(payload(i, n), timeout=0)
    info = q.info()
    assert info["head"] == sum(cells(n) for n in lens) == 9
    assert info["depth"] == 9
    (gi,) = info["groups"]
    assert gi["name"] == "g" and gi["cursor"] == 0 and gi["lag"] == 9
    data, seq, redelivered = g.get_with_info(timeout=5)
    assert data == b"" and seq == 0 and not redelivered
    data, seq, _ = g.get_with_info(timeout=5)
    assert data == payload(1, 64) and seq == 1
    data, seq, _ = g.get_with_info(timeout=5)
    assert data == payload(2, 65) and seq == 2
    (gi,) = q.info()["groups"]
    assert gi["cursor"] == 4 and gi["lag"] == 5 and q.info()["depth"] == 5
    with g.peek(timeout=5) as mv:
        assert mv.tobytes() == payload(3, 200)
    assert g.get(timeout=5) == payload(4, 8)
    info = q.info()
    assert info["depth"] == 0 and info["groups"][0]["cursor"] == 9 and info["groups"][0]["lag"] == 0

    # longer than max_msg: TooBig
    with pytest.raises(shmbus.TooBig):
        q.put(b"x" * (64 * CELL + 1), timeout=0)
    q.put(b"y" * (64 * CELL - 9 * CELL), timeout=0)    # 55 cells: to the ring's end
    assert g.get(timeout=5) == b"y" * (55 * CELL)
    q.put(payload(9, 64 * CELL), timeout=0)             # the whole ring, at its start
    assert g.get(timeout=5) == payload(9, 64 * CELL)
    q.shut()
    with pytest.raises(shmbus.Closed):
        g.get(timeout=5)
    g.detach()
    q.detach()
    s.detach()


def test_mixed_sizes_between_processes(bus, busname, child_env):
    n = max(300, int(3000 * float(os.environ.get("SHMBUS_TEST_SCALE", "1") or 1)))
    q = bus.queue("cells", slots=SLOTS, cell_bytes=CELL)
    assert q.cell_bytes == CELL and q.info()["cell_bytes"] == CELL and q.max_msg == RING
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(child_env)
    env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
    code = "import sys, test_outsider_cells as t; t.consume(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))"
    kids = [subprocess.Popen([sys.executable, "-c", code, busname, grp, how, str(n)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for grp, how in (("a", "iter"), ("b", "peek"))]
    try:
        q.wait_groups(2, timeout=60)
        lens = sizes(n)
        digest = hashlib.sha256()
        head = 0
        for i, ln in enumerate(lens):
            p = payload(i, ln)
            q.put(p, timeout=60)
            digest.update(p)
            k = cells(ln)
            if head % SLOTS + k > SLOTS:       # a pad fills the ring's end first
                head += SLOTS - head % SLOTS
            head += k
        q.shut()
        outs = [kid.communicate(timeout=300) for kid in kids]
    finally:
        for kid in kids:
            if kid.poll() is None:
                kid.kill()
                kid.wait()
    for kid, (out, err) in zip(kids, outs):
        assert kid.returncode == 0, err
        assert out.split() == ["OK", str(n), digest.hexdigest()], (out, err)
    info = q.info()
    assert info["closed"] and info["head"] == head and info["depth"] == 0
    assert sorted(g["name"] for g in info["groups"]) == ["a", "b"]
    for g in info["groups"]:
        assert g["cursor"] == head and g["lag"] == 0
    q.detach()

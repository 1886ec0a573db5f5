"""WaitSet and shmbus.wait(): every kind of member made ready by another
process, timeouts, add/remove, the State mark, the fd under select/selectors,
and Ctrl+C."""
import os
import selectors
import signal
import subprocess
import sys
import time

import pytest

import shmbus

HERE = os.path.dirname(os.path.abspath(__file__))


class Other:
    """tests/waitset_child.py in another process, driven line by line."""

    def __init__(self, busname, env):
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "waitset_child.py"),
                                   busname], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "ready"

    def __call__(self, cmd):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().split()
        assert line[:2] == ["ok", cmd.split()[0]], (cmd, line)
        return line[2:]

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("exit\n")
                self.p.stdin.close()
                self.p.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()


def channels(bus, slots=8):
    """The channels waitset_child.py uses, made here first (this process is
    party 0 of turn "T")."""
    return dict(q=bus.queue("q", slots=slots, group="g"), s=bus.state("s", dtype="int64"),
                e=bus.event("e"), L=bus.lock("L"), S=bus.semaphore("S"), T=bus.turn("T"))


@pytest.fixture
def other(bus, busname, child_env):
    ch = channels(bus)
    o = Other(busname, child_env)
    o.ch = ch
    yield o
    o.close()


def test_every_kind_is_reported_when_another_process_makes_it_ready(other):
    ch = other.ch
    q, s, e, L, S, T = (ch[k] for k in "qseLST")
    other("lock")           # the other process holds L
    T.acquire(timeout=10)   # party 0 first; hand the turn to the other process
    T.release()
    with shmbus.WaitSet() as ws:
        ws.add(q)
        ws.add(s, tag="state")
        ws.add(e, tag="event")
        ws.add(L, tag="lock")
        ws.add(S, tag="sem")
        ws.add(T, tag="turn")
        assert len(ws) == 6
        assert ws.wait(0) == []
        steps = [("put hello", q), ("write 7", "state"), ("set", "event"), ("unlock", "lock"),
                 ("post", "sem"), ("turn", "turn")]
        for cmd, key in steps:
            other(cmd)
            ready = ws.wait(timeout=10)
            assert ready == [key], (cmd, ready)
            # make it not ready again, as a user would: take what is there
            if key is q:
                assert q.get(timeout=0) == b"hello"
            elif key == "state":
                assert s.read() == 7
            elif key == "event":
                e.clear()
            elif key == "lock":
                assert L.acquire(timeout=0)
            elif key == "sem":
                assert S.acquire(timeout=0)
            elif key == "turn":
                assert T.acquire(timeout=0)
                T.release()   # this party has the turn until it hands it on
            assert ws.wait(0) == [], cmd
        L.release()


def test_queue_conditions_space_and_end(bus, busname, child_env):
    q = bus.queue("q", slots=2, group="g")
    other = Other(busname, child_env)
    try:
        prod = bus.queue("q")
        prod.put(b"1")
        prod.put(b"2")   # full for group g
        with shmbus.WaitSet() as ws:
            ws.add(prod, "space", tag="space")
            ws.add(q, "end", tag="end")
            assert ws.wait(0) == []
            assert q.get(timeout=0) == b"1"
            assert ws.wait(timeout=0.1) == []  # group g2 of the other process still gates
            assert other("get") == ["1"]       # now a slot is free for both groups
            assert ws.wait(timeout=10) == ["space"]
            assert q.get(timeout=0) == b"2"
            assert other("get") == ["2"]
            other("shut")
            assert sorted(ws.wait(timeout=10)) == ["end", "space"]
    finally:
        other.close()


def test_wait_times_out_with_an_empty_list(bus):
    q = bus.queue("q", group="g")
    with shmbus.WaitSet() as ws:
        ws.add(q)
        t0 = time.monotonic()
        assert ws.wait(timeout=0.2) == []
        assert time.monotonic() - t0 >= 0.15
    with shmbus.WaitSet() as ws:
        assert ws.wait(timeout=0) == []
        with pytest.raises(shmbus.InvalidArgument):
            ws.wait()   # nothing could ever wake it


def test_wait_policy_of_a_set(bus):
    st = bus.state("pol", dtype="int64", shape=())
    for pol in ("park", "spin_park", "spin"):
        with shmbus.WaitSet(wait_policy=pol, spin=0.0001) as ws:
            ws.add(st, tag="s", after=st.seq)
            assert ws.wait(timeout=0.05) == []
            st.write(1)
            assert ws.wait(timeout=5) == ["s"]
    with pytest.raises(shmbus.InvalidArgument):
        shmbus.WaitSet(wait_policy="bogus")


def test_add_remove_keys_and_errors(bus):
    q = bus.queue("q", group="g")
    e = bus.event("e")
    s = bus.state("s", dtype="int64")
    ws = shmbus.WaitSet()
    try:
        add_remove(bus, ws, q, e, s)
    finally:
        ws.close()


def add_remove(bus, ws, q, e, s):
    ws.add(q)
    ws.add(q, "space", tag="room")
    ws.add(e, tag="e1")
    with pytest.raises(shmbus.Exists):
        ws.add(e, tag="e1")
    with pytest.raises(shmbus.Exists):
        ws.add(q)
    with pytest.raises(shmbus.InvalidArgument):
        ws.add(q, "lock", tag="x")
    with pytest.raises(shmbus.InvalidArgument):
        ws.add(e, "message", tag="y")
    with pytest.raises(shmbus.InvalidArgument):
        ws.add(q, tag="z", after=3)
    with pytest.raises(shmbus.TypeMismatch):
        ws.add(object())
    assert len(ws) == 3 and set(ws.keys()) == {q, "room", "e1"}
    # a member's handle cannot be closed: the set would point at nothing
    with pytest.raises(RuntimeError):
        e.close()
    with pytest.raises(RuntimeError):
        bus.close()
    e.set()
    assert sorted(map(str, ws.wait(0))) == ["e1", "room"]
    ws.remove("e1")
    e.close()                     # no longer a member
    ws.remove(q)                  # the member keyed q
    assert set(ws.keys()) == {"room"}
    ws.add(q)
    ws.remove("room")
    ws.add(q, "end", tag="end")
    ws.remove(q)                  # a key first; then, again, every member of handle q
    ws.remove(q)
    assert len(ws) == 0
    with pytest.raises(shmbus.NotFound):
        ws.remove("e1")
    ws.add(s)
    ws.close()
    assert ws.closed
    s.close()                     # the closed set let go of it
    with pytest.raises(ValueError):
        ws.add(q)


def test_state_member_reports_each_new_value_once(bus):
    s = bus.state("s", dtype="int64")
    w = bus.state("s", dtype="int64")
    w.write(1)
    assert s.read() == 1 and s.last_seq == 1
    with shmbus.WaitSet() as ws:
        ws.add(s)                        # mark: s.last_seq, the value it has read
        assert ws.wait(0) == []
        w.write(2)
        assert ws.wait(0) == [s]
        assert ws.wait(0) == []          # the mark moved to the value reported
        ws.add(s, tag="all", after=0)    # a mark by hand: every value
        assert ws.wait(0) == ["all"]


def test_module_wait_on_handles_and_pairs(bus):
    q = bus.queue("q", slots=2, group="g")
    s = bus.state("s", dtype="int64")
    s.write(5)
    s.read()
    prod = bus.queue("q")
    assert shmbus.wait([q, s], timeout=0.05) == []
    s.write(6)                           # newer than what s read
    assert shmbus.wait([q, s], timeout=0) == [s]
    assert shmbus.wait([(prod, "space"), q], timeout=0) == [(prod, "space")]
    prod.put(b"a")
    prod.put(b"b")
    assert shmbus.wait([(prod, "space"), q], timeout=5) == [q]


def test_fd_with_selectors_and_select(other):
    q = other.ch["q"]
    import select
    with shmbus.WaitSet() as ws, selectors.DefaultSelector() as sel:
        ws.add(q)
        fd = ws.fileno()
        assert fd == ws.fileno() and fd >= 0
        sel.register(fd, selectors.EVENT_READ)
        assert sel.select(timeout=0.1) == []
        other("put m1")
        events = sel.select(timeout=10)
        assert [k.fd for k, _ in events] == [fd]
        assert ws.wait(0) == [q]
        assert q.get(timeout=0) == b"m1"
        assert ws.wait(0) == []          # re-arms the fd; nothing ready now
        assert sel.select(timeout=0.2) == []
        other("put m2")
        r, _, _ = select.select([fd], [], [], 10)
        assert r == [fd]
        assert ws.wait(0) == [q]


CTRL_C = r"""
import sys, time, shmbus
bus = shmbus.Bus(sys.argv[1])
q = bus.queue("q", group="g")
ws = shmbus.WaitSet()
ws.add(q)
try:
    print("ready", flush=True)
    ws.wait()
    print("returned", flush=True)
except KeyboardInterrupt:
    print("interrupted %.6f" % time.monotonic(), flush=True)
ws.remove(q)
q.detach()
"""


def test_ctrl_c_interrupts_wait(bus, busname, child_env):
    bus.queue("q", group="g")
    child = subprocess.Popen([sys.executable, "-c", CTRL_C, busname], env=child_env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # let it block
        assert child.poll() is None
        t0 = time.monotonic()
        os.kill(child.pid, signal.SIGINT)
        line = child.stdout.readline().split()
        assert child.wait(10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert line and line[0] == "interrupted", line
    # The promise is 100 ms (a 50 ms slice); generous for a loaded machine.
    assert float(line[1]) - t0 < 1.0

"""The promises docs/python.md and docs/cli.md make about many-writer state
channels, SharedMemoryTransport, Queue.wait_groups, foreign-owner buses,
blocking calls on a truncated file: bus, the conversion rule, error codes,
and `shmbus gc`/`ls` with creators' temporaries -- checked from the docs
alone, across processes where the docs promise cross-process behaviour."""
import itertools
import multiprocessing
import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
ROOT = os.path.dirname(PYDIR)
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)

import shmbus  # noqa: E402

np = pytest.importorskip("numpy")

CLI = os.path.join(ROOT, os.environ.get("BUILD", "build"), "shmbus")
_count = itertools.count()
CTX = multiprocessing.get_context("fork")


@pytest.fixture
def name():
    """t-out-<n>-<pid>: removed after the test, whatever happened."""
    n = "t-out-%d-%d" % (next(_count), os.getpid())
    yield n
    try:
        shmbus.unlink(n)
    except shmbus.NotFound:
        pass


def cli(*args, timeout=20):
    return subprocess.run([CLI] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout)


# --- 1. several writers -------------------------------------------------

def _many_writer(name, k, n):
    with shmbus.Bus(name) as bus:
        st = bus.state("s", create=False)
        for i in range(n):
            st.write(np.array([k, i, k * 1000003 + i], dtype=np.int64))


def test_many_writers_across_processes(name):
    with shmbus.Bus(name, create=True) as bus:
        st = bus.state("s", dtype="int64", shape=(3,), writers="many")
        assert st.info()["writers"] == "many"
        with pytest.raises(shmbus.TypeMismatch) as e:
            bus.state("s", dtype="int64", shape=(3,), writers="one")
        assert e.value.code == shmbus.ETYPE
        st.write(np.array([-1, 0, -1000003], dtype=np.int64))  # we write too, and stay
        n = 500
        ps = [CTX.Process(target=_many_writer, args=(name, k, n)) for k in range(3)]
        for p in ps:
            p.start()
        for p in ps:
            p.join(20)
            assert p.exitcode == 0
        v, seq = st.read_with_seq()
        assert seq == 1 + 3 * n
        assert v[1] == n - 1 and v[2] == v[0] * 1000003 + v[1]
        # the CLI's put takes a turn too, while this process holds the channel
        r = cli("put", name, "s", "7 8 9")
        assert r.returncode == 0, r.stderr
        assert list(st.read()) == [7, 8, 9]
        assert st.seq == 2 + 3 * n


def test_one_writer_default_is_busy_from_another_process(name):
    with shmbus.Bus(name, create=True) as bus:
        st = bus.state("y")
        st.write(1.0)
        assert st.info()["writers"] == "one"
        r = cli("put", name, "y", "2")
        assert r.returncode == 5, (r.returncode, r.stderr)
        assert st.read() == 1.0


def test_cli_put_create_writers_many(name):
    r = cli("put", "--create", "--writers", "many", name, "sp", "5")
    assert r.returncode == 0, r.stderr
    with shmbus.Bus(name) as bus:
        st = bus.state("sp", create=False)
        assert st.info()["writers"] == "many"
        st.write(6.0)
        r = cli("put", name, "sp", "5.5")   # works while this program writes it
        assert r.returncode == 0, r.stderr
        assert st.read() == 5.5
    r = cli("put", "--create", "--writers", "one", name, "sp", "1")
    assert r.returncode == 1, (r.returncode, r.stderr)


def _transport_controller(name):
    channels = {"y": ("float64", (1,)), "u": ("float64", (1,))}
    with shmbus.SharedMemoryTransport(name, channels, timeout=10) as t:
        s = t.wait("y", newer_than=0, timeout=10)
        assert s >= 1
        y = t.read("y")
        t.write("u", np.array([y[0] * 2]))


def test_transport_both_sides_write(name):
    channels = {"y": ("float64", (1,)), "u": ("float64", (1,))}
    try:
        with shmbus.SharedMemoryTransport(name, channels, create=True) as t:
            assert list(t.read("u")) == [0.0]        # zeros until the first write
            t.write("u", np.array([0.0]))            # the plant writes u = 0 at start
            p = CTX.Process(target=_transport_controller, args=(name,))
            p.start()
            t.write("y", np.array([21.0]))
            p.join(20)
            assert p.exitcode == 0
            assert list(t.read("u")) == [42.0]       # the controller's write won
            assert t.seq("u") == 2
    finally:
        try:
            shmbus.unlink(name)
        except shmbus.NotFound:
            pass


_TRANSPORT_CHILD = """
import sys, numpy as np
sys.path.insert(0, %r)
import shmbus
ch = {"y": ("float64", (1,)), "img": np.zeros((4, 6), np.uint8),
      "d": {"dtype": "int32", "shape": (3,)}, "s": (2,)}
with shmbus.SharedMemoryTransport(%r, ch, timeout=15) as t:
    t.wait("y", newer_than=0, timeout=15)
    t.write("img", np.full((4, 6), 9, np.uint8))
    t.write("d", np.array([1, 2, 3], np.int32))
    t.write("s", [5.0, t.read("y")[0]])
"""


def test_transport_other_side_first_and_creator_unlinks(name):
    """The controller side starts before the bus exists and waits for it;
    every channel form (tuple, template array, dict, shape) works across
    processes; the side that created the bus removes it on close."""
    ch = {"y": ("float64", (1,)), "img": np.zeros((4, 6), np.uint8),
          "d": {"dtype": "int32", "shape": (3,)}, "s": (2,)}
    child = subprocess.Popen([sys.executable, "-c", _TRANSPORT_CHILD % (PYDIR, name)])
    try:
        time.sleep(0.3)                         # most likely waiting by now; either way works
        t = shmbus.SharedMemoryTransport(name, ch, create=True)
        t.write("y", np.array([3.0]))
        assert child.wait(20) == 0
        assert (t.read("img") == 9).all() and t.read("img").dtype == np.uint8
        assert list(t.read("d")) == [1, 2, 3]
        assert list(t.read("s")) == [5.0, 3.0]
        assert [t.seq(c) for c in ("y", "img", "d", "s")] == [1, 1, 1, 1]
        with shmbus.Bus(name) as b:
            assert b.state("img", create=False).info()["writers"] == "many"
        t.close()
        assert name not in shmbus.list_buses()
        with shmbus.Bus(name, create=True) as b:       # a one-writer channel is refused
            b.state("y", dtype="float64", shape=(1,))
            with pytest.raises(shmbus.TypeMismatch) as e:
                shmbus.SharedMemoryTransport(name, {"y": (1,)}, timeout=1)
            assert e.value.code == shmbus.ETYPE
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# --- 2. a producer waiting for its consumers ----------------------------

def _consumer(name, n, started):
    with shmbus.Bus(name) as bus:
        q = bus.queue("jobs", group="g")
        started.set()
        got = [q.get(timeout=10) for _ in range(n)]
        assert got == [b"%d" % i for i in range(n)]
        with pytest.raises(shmbus.Closed):
            q.get(timeout=10)


def test_wait_groups(name):
    with shmbus.Bus(name, create=True) as bus:
        q = bus.queue("jobs", slots=16)
        q.wait_groups(0, timeout=0)
        with pytest.raises(shmbus.Timeout) as e:
            q.wait_groups(1, timeout=0.05)
        assert e.value.code == shmbus.ETIMEDOUT
        r = cli("put", "--wait-groups", "1", "--timeout", "0.2", name, "jobs")
        assert r.returncode == 3, (r.returncode, r.stderr)
        started = CTX.Event()
        p = CTX.Process(target=_consumer, args=(name, 100, started))
        p.start()
        q.wait_groups(1, timeout=15)
        for i in range(100):                     # 100 > 16 slots: gated, none lost
            q.put(b"%d" % i, timeout=10)
        q.shut()
        p.join(20)
        assert p.exitcode == 0
        r = cli("put", "--wait-groups", "1", "--timeout", "1", name, "jobs")
        assert r.returncode == 0, r.stderr       # the group persists in the bus


# --- 3. buses shared by several users -----------------------------------

def test_widened_mode_needs_allow_foreign_owner(name):
    with shmbus.Bus(name, create=True, mode=0o600) as bus:
        bus.state("y").write(1.5)
        os.chmod("/dev/shm/shmbus-" + name, 0o660)
        with pytest.raises(shmbus.PermissionDenied) as e:
            shmbus.Bus(name)
        assert e.value.code == shmbus.EPERM
        assert "allow_foreign_owner" in str(e.value)
        with shmbus.Bus(name, allow_foreign_owner=True) as b2:
            assert b2.state("y", create=False).read() == 1.5
        r = cli("info", name)
        assert r.returncode == 4, (r.returncode, r.stderr)
        assert "--allow-foreign-owner" in r.stderr
        r = cli("--allow-foreign-owner", "get", name, "y")
        assert r.returncode == 0 and r.stdout.strip() == "1.5", (r.returncode, r.stderr)
        r = cli("get", "--allow-foreign-owner", name, "y")
        assert r.returncode == 0 and r.stdout.strip() == "1.5", (r.returncode, r.stderr)


def test_group_mode_at_creation_opens_plainly(name):
    r = cli("create", "--mode", "0660", name)
    assert r.returncode == 0, r.stderr
    with shmbus.Bus(name) as bus:
        assert bus.info() is not None


# --- 4. blocking calls on a truncated file: bus ---------------------------

def test_truncated_file_bus_wakes_blocked_calls(tmp_path):
    path = str(tmp_path / ("t-out-trunc-%d" % os.getpid()))
    bus = shmbus.Bus("file:" + path, create=True, size=1 << 20)
    try:
        st = bus.state("y")
        st.write(1.0)
        q = bus.queue("q", group="g")
        child = subprocess.Popen([sys.executable, "-c",
                                  "import os,time; time.sleep(0.5); os.truncate(%r, 0)" % path])
        t0 = time.monotonic()
        with pytest.raises(shmbus.Corrupt) as e:
            st.wait(newer_than=st.seq, timeout=15)
        # promised within 1 s of the truncation (0.5 s after t0): < 3.5 s under load
        assert time.monotonic() - t0 < 3.5
        assert e.value.code == shmbus.ECORRUPT
        child.wait(10)
        t0 = time.monotonic()
        with pytest.raises(shmbus.Corrupt) as e:
            q.get(timeout=15)
        assert time.monotonic() - t0 < 3
        assert e.value.code == shmbus.ECORRUPT
    finally:
        try:
            bus.close()
        except shmbus.Error:
            pass
        os.unlink(path)


# --- 5. values and dtypes: stored as given, or refused --------------------

def test_conversion_rule(name):
    with shmbus.Bus(name, create=True) as bus:
        u8 = bus.state("u8", dtype="uint8", shape=())
        i8 = bus.state("i8", dtype="int8", shape=())
        b = bus.state("b", dtype="bool", shape=())
        f4 = bus.state("f4", dtype="float32", shape=())
        f8 = bus.state("f8", dtype="float64", shape=(2,))
        u8.write(255)
        assert u8.read() == 255
        u8.write(np.uint8(3))
        assert u8.read() == 3
        u8.write(True)
        assert u8.read() == 1
        for bad, cls, code in ((300, shmbus.InvalidArgument, shmbus.EINVAL),
                               (-1, shmbus.InvalidArgument, shmbus.EINVAL),
                               (2.0, shmbus.TypeMismatch, shmbus.ETYPE),
                               (None, shmbus.TypeMismatch, shmbus.ETYPE),
                               ("1", shmbus.TypeMismatch, shmbus.ETYPE),
                               (1j, shmbus.TypeMismatch, shmbus.ETYPE)):
            with pytest.raises(cls) as e:
                u8.write(bad)
            assert e.value.code == code, (bad, e.value.code)
            assert u8.read() == 1, bad                # nothing stored
        i8.write(-128)
        assert i8.read() == -128
        b.write(1)
        assert b.read() is True or b.read() == 1
        with pytest.raises(shmbus.InvalidArgument):
            b.write(2)
        with pytest.raises(shmbus.TypeMismatch):
            b.write(1.0)
        f4.write(0.1)
        assert f4.read() == float(np.float32(0.1))
        f4.write(3)
        assert f4.read() == 3.0
        with pytest.raises(shmbus.InvalidArgument) as e:
            f4.write(1e39)
        assert e.value.code == shmbus.EINVAL
        f4.write(float("inf"))                         # not finite: stored as given
        assert f4.read() == float("inf")
        with pytest.raises(shmbus.TypeMismatch):
            f4.write(None)
        # lists element by element, buffers byte for byte
        f8.write([1, 2.5])
        assert list(f8.read()) == [1.0, 2.5]
        with pytest.raises(shmbus.TypeMismatch):
            f8.write([1.0, None])
        assert list(f8.read()) == [1.0, 2.5]
        with pytest.raises(shmbus.TypeMismatch):
            f8.write(np.zeros(2, np.float32))
        f8.write(np.array([3.0, 4.0]).tobytes())       # raw bytes for any dtype
        assert list(f8.read()) == [3.0, 4.0]
        with pytest.raises(shmbus.InvalidArgument):
            f8.write(b"\0" * 8)                        # wrong size
        # Array: +=, add, exchange, compare_and_swap under the same rule
        a = bus.array("a", dtype="int8", length=2)
        a[0] = 126
        a[0] += 1
        assert a[0] == 127
        with pytest.raises(shmbus.InvalidArgument):
            a[0] += 1
        assert a[0] == 127
        with pytest.raises(shmbus.InvalidArgument):
            a.add(0, 1)
        with pytest.raises(shmbus.TypeMismatch):
            a[1] = 2.0
        with pytest.raises(shmbus.InvalidArgument):
            a.exchange(1, 200)
        with pytest.raises(shmbus.InvalidArgument):
            a.compare_and_swap(1, 0, -129)
        assert a[1] == 0
        with pytest.raises(shmbus.TypeMismatch):
            a[0:2] = [1, 2.5]
        # the transport writes under the same rule
    tname = name + "-tr"
    try:
        with shmbus.SharedMemoryTransport(tname, {"c": ("uint8", (2,))}, create=True) as t:
            with pytest.raises(shmbus.InvalidArgument):
                t.write("c", [1, 300])
            with pytest.raises(shmbus.TypeMismatch):
                t.write("c", [1, None])
            t.write("c", [1, 255])
            assert list(t.read("c")) == [1, 255]
    finally:
        try:
            shmbus.unlink(tname)
        except shmbus.NotFound:
            pass


def test_binding_errors_carry_code(name):
    with shmbus.Bus(name, create=True) as bus:
        cases = [
            (lambda: bus.state("x", dtype="nosuchtype"), shmbus.EINVAL),
            (lambda: bus.state("x2", shape=(-1,)), shmbus.EINVAL),
            (lambda: bus.queue("qq").get(timeout=-5), shmbus.EINVAL),
            (lambda: shmbus.Bus(name + "-absent"), shmbus.ENOENT),
            (lambda: shmbus.Bus(name, create=True), shmbus.EEXIST),
            (lambda: bus.state("never", dtype="int32").read(), shmbus.ENODATA),
            (lambda: bus.queue("q1", max_msg=8).put(b"x" * 9), shmbus.ETOOBIG),
        ]
        for fn, code in cases:
            with pytest.raises(shmbus.Error) as e:
                fn()
            assert isinstance(e.value.code, int), e.value
            assert e.value.code == code, (e.value, e.value.code, code)


def test_bus_argument_errors_name_the_values(name):
    """An out-of-range size or mode is InvalidArgument with .code, and its
    message names the values (no printf directive left in it)."""
    for kw in ({"size": -1}, {"mode": 0o70000}):
        with pytest.raises(shmbus.InvalidArgument) as e:
            shmbus.Bus(name, create=True, **kw)
        assert e.value.code == shmbus.EINVAL
        msg = str(e.value)
        assert "%" not in msg, msg
        assert "max_peers 0" in msg, msg
    assert name not in shmbus.list_buses()

# --- 6. gc and ls with a dead creator's temporary -------------------------

def test_ls_never_lists_or_removes_temporaries_gc_dry_run_reports():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    tag = ".tmp-%d-t-out-%d" % (dead.pid, os.getpid())
    path = "/dev/shm/shmbus-" + tag
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, 4096)
        os.close(fd)
        r = cli("ls")
        assert r.returncode == 0, r.stderr
        assert tag not in r.stdout
        r = cli("ls", "--json")
        assert r.returncode == 0 and tag not in r.stdout
        assert tag not in shmbus.list_buses()
        assert os.path.exists(path)
        r = cli("gc", "--dry-run")
        assert r.returncode == 0, r.stderr
        assert "temporary" in r.stdout, r.stdout
        assert os.path.exists(path)
    finally:
        if os.path.exists(path):
            os.unlink(path)


# --- findings: the conversion rule not kept on two write paths -------------

def test_float_array_add_refuses_a_delta_beyond_float32(name):
    """docs/python.md: the rule covers `+=` and `add()`; a float32 channel
    refuses "a finite value beyond float32's range, e.g. 1e39"."""
    with shmbus.Bus(name, create=True) as bus:
        a = bus.array("a", dtype="float32", length=2)
        with pytest.raises(shmbus.InvalidArgument) as e:
            a[0] = 1e39                                 # item assignment refuses it
        assert e.value.code == shmbus.EINVAL
        with pytest.raises(shmbus.InvalidArgument):
            a.add(0, 1e39)                              # add() stores inf instead
        assert a[0] == 0.0
        with pytest.raises(shmbus.InvalidArgument):
            a[1] += 1e39                                # and so does +=
        assert a[1] == 0.0


def test_bytes_channels_follow_the_table(name):
    """docs/python.md's table: the elements of a `bytes` Array take integers
    within 0..255; a `bytes` State takes a bytes-like value of its size; a
    scalar one (read as an integer) also an integer in 0..255; a longer one
    refuses numbers and lists (TypeMismatch, the message offers no number)."""
    with shmbus.Bus(name, create=True) as bus:
        ba = bus.array("ba", dtype="bytes", length=1)
        ba[0] = 65
        assert ba[0] == 65
        with pytest.raises(shmbus.InvalidArgument):
            ba[0] = 300
        st = bus.state("b1", dtype="bytes", shape=())
        st.write(65)
        assert st.read() == 65
        with pytest.raises(shmbus.InvalidArgument):
            st.write(300)
        st.write(b"B")
        assert st.read() == 66
        sv = bus.state("b2", dtype="bytes", shape=(2,))
        with pytest.raises(shmbus.TypeMismatch) as e:
            sv.write(65)
        assert e.value.code == shmbus.ETYPE and "number" not in str(e.value)
        with pytest.raises(shmbus.TypeMismatch):
            sv.write([65, 66])
        sv.write(b"AB")
        assert sv.read() == b"AB"

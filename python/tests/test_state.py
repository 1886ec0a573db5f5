"""State channels from Python: every call, bad arguments, multi-process."""
import multiprocessing as mp
import subprocess
import sys

import numpy as np
import pytest

import helpers
import shmbus
from conftest import scale


def test_write_read_roundtrip_all_dtypes(bus):
    for dt in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
               "float32", "float64", "bool"):
        st = bus.state("s_" + dt, dtype=dt, shape=(3, 2))
        v = (np.arange(6).reshape(3, 2) % 2 if dt == "bool" else np.arange(6).reshape(3, 2)).astype(dt)
        st.write(v)
        r = st.read()
        assert r.dtype == np.dtype(dt) and r.shape == (3, 2) and np.array_equal(r, v)
        assert st.dtype == dt and st.shape == (3, 2) and st.nbytes == v.nbytes


def test_dtype_forms(bus):
    assert bus.state("a", dtype=np.float32, shape=2).dtype == "float32"
    assert bus.state("b", dtype=np.dtype("i4"), shape=2).dtype == "int32"
    assert bus.state("c", dtype=float).dtype == "float64"
    assert bus.state("d", dtype=int).dtype == "int64"
    assert bus.state("e", dtype="f8", shape=[2, 2]).shape == (2, 2)


def test_scalar_values_are_python_numbers(bus):
    st = bus.state("x")  # float64 scalar
    st.write(2.5)
    v = st.read()
    assert v == 2.5 and isinstance(v, float) and st.shape == ()
    i = bus.state("i", dtype="int32")
    i.write(-7)
    assert i.read() == -7
    with pytest.raises(shmbus.InvalidArgument):
        i.write(1 << 40)


def test_read_out_fills_in_place(bus):
    st = bus.state("m", dtype="float64", shape=(4, 4))
    st.write(np.eye(4))
    out = np.zeros((4, 4))
    assert st.read(out=out) is out and np.array_equal(out, np.eye(4))
    out2 = bytearray(128)
    st.read(out=out2)
    assert np.array_equal(np.frombuffer(out2).reshape(4, 4), np.eye(4))


def test_bytes_dtype_reads_bytes(bus):
    st = bus.state("raw", dtype="bytes", shape=5)
    st.write(b"hello")
    assert st.read() == b"hello"


def test_write_accepts_lists_and_buffers(bus):
    st = bus.state("l", dtype="int16", shape=3)
    st.write([1, 2, 3])
    assert st.read().tolist() == [1, 2, 3]
    st.write(np.array([4, 5, 6], np.int16).tobytes())
    assert st.read().tolist() == [4, 5, 6]
    st.write(memoryview(np.array([7, 8, 9], np.int16)))
    assert st.read().tolist() == [7, 8, 9]


def test_seq_and_read_with_seq(bus):
    st = bus.state("s", dtype="int64")
    assert st.seq == 0
    with pytest.raises(shmbus.NoData):
        st.read()
    for k in range(1, 6):
        st.write(k * 10)
    v, seq = st.read_with_seq()
    assert (v, seq, st.seq, st.last_seq) == (50, 5, 5, 5)


def test_wrong_dtype_shape_size(bus):
    st = bus.state("w", dtype="float64", shape=(2, 3))
    with pytest.raises(shmbus.TypeMismatch):
        st.write(np.zeros((2, 3), np.float32))
    with pytest.raises(shmbus.InvalidArgument, match="48-byte"):
        st.write(np.zeros(5))
    with pytest.raises(shmbus.InvalidArgument):
        st.read(out=np.zeros(5))
    with pytest.raises(shmbus.TypeMismatch):
        st.read(out=np.zeros((2, 3), np.int64))
    with pytest.raises(shmbus.TypeMismatch) as e:
        bus.state("w", dtype="int32", shape=(2, 3))
    assert "float64" in str(e.value) and "int32" in str(e.value)
    with pytest.raises(shmbus.TypeMismatch):
        bus.state("w", dtype="float64", shape=(3, 2))
    with pytest.raises(shmbus.InvalidArgument):
        bus.state("z", dtype="complex256")
    with pytest.raises(shmbus.InvalidArgument):
        bus.state("z", shape=(0, 3))
    with pytest.raises(shmbus.InvalidArgument):
        bus.state("z", shape=(1, 1, 1, 1, 1))
    with pytest.raises(TypeError):
        st.write(object())
    with pytest.raises((TypeError, BufferError)):
        st.read(out=b"immutable" * 10)


def test_open_existing_without_type(bus):
    bus.state("t", dtype="uint16", shape=(5,)).write(np.arange(5, dtype=np.uint16))
    st = bus.state("t", create=False)
    assert st.dtype == "uint16" and st.shape == (5,)
    assert st.read().tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(shmbus.NotFound):
        bus.state("missing", create=False)


def test_wait_and_timeout(bus):
    st = bus.state("w", dtype="int64")
    with pytest.raises(shmbus.Timeout):
        st.wait(timeout=0.05)
    st.write(1)
    assert st.wait(newer_than=0, timeout=1) == 1
    with pytest.raises(shmbus.Timeout):
        st.wait(timeout=0)  # the handle has seen seq 1 already
    st.write(2)
    assert st.wait(timeout=0) == 2 and st.last_seq == 2
    with pytest.raises(ValueError):
        st.wait(timeout=-1)


def test_peek_zero_copy(bus):
    st = bus.state("p", dtype="float64", shape=(100, 100))
    st.write(np.full((100, 100), 3.0))
    p = st.peek()
    with p as m:
        assert m.shape == (100, 100) and m.dtype == np.float64 and not m.flags.writeable
        assert m.sum() == 30000.0
        st2 = bus.state("p", dtype="float64", shape=(100, 100))
        assert m.ctypes.data != st2.read().ctypes.data
    assert p.valid and p.seq == 1
    # the writer overwrites twice more than the buffers rotate: the view was not stable
    p = st.peek()
    with p as m:
        for k in range(4):
            st.write(np.full((100, 100), float(k)))
    assert not p.valid


def test_peek_view_keeps_mapping_alive_after_close(busname):
    b = shmbus.Bus(busname, create=True, unlink=True)
    st = b.state("p", dtype="int64", shape=1000)
    st.write(np.arange(1000))
    with st.peek() as m:
        pass
    b.close()  # m still refers to the mapping: it must stay mapped
    assert int(m[999]) == 999
    del m


def test_second_writer_is_busy(bus, busname):
    ctx = mp.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    p = ctx.Process(target=helpers.hold_writer_role, args=(busname, ready, stop))
    p.start()
    try:
        assert ready.wait(10)
        st = bus.state("w", dtype="float64")
        with pytest.raises(shmbus.Busy):
            st.write(1.0)
        assert st.read() == 7.0
    finally:
        stop.set()
        p.join(10)
    assert p.exitcode == 0
    st.write(2.0)  # the writer closed: the role is free
    assert st.read() == 2.0


def test_many_writers_take_turns(bus, busname):
    st = bus.state("m", dtype="float64", writers="many")
    st.write(1.0)                    # this process writes first ...
    assert st.info()["writers"] == "many"
    ctx = mp.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    p = ctx.Process(target=helpers.write_many_writer, args=(busname, ready, stop))
    p.start()
    try:
        assert ready.wait(10)
        assert st.read_with_seq() == (7.0, 2)    # ... another then writes
        st.write(3.0)                # and this one again while it lives
        assert st.read_with_seq() == (3.0, 3)
    finally:
        stop.set()
        p.join(10)
    assert p.exitcode == 0
    with pytest.raises(shmbus.TypeMismatch, match="many writers"):
        bus.state("m", dtype="float64", writers="one")
    with pytest.raises(shmbus.InvalidArgument, match="writers"):
        bus.state("x", writers="several")
    assert bus.state("one").info()["writers"] == "one"


def test_state_close_and_context(bus):
    with bus.state("c") as st:
        st.write(1.0)
    assert st.closed
    with pytest.raises(ValueError):
        st.read()
    st.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_reader_never_sees_torn_value_multiprocess(busname, method):
    ctx = mp.get_context(method)
    n = int(2000 * scale())
    with shmbus.Bus(busname, create=True, size=8 << 20, unlink=True) as bus:
        out = helpers.results_queue(bus)
        r = ctx.Process(target=helpers.torn_reader, args=(busname, n))
        w = ctx.Process(target=helpers.torn_writer, args=(busname, n))
        r.start()
        w.start()
        res = dict((k, (a, b)) for k, a, b in helpers.results(out, 2))
        r.join(10)
        w.join(10)
    assert r.exitcode == 0 and w.exitcode == 0
    assert res["reader"] == (n, 0), "torn reads: %r" % (res,)


def test_subprocess_sees_value(bus, busname, child_env):
    bus.state("v", dtype="int32", shape=(2,)).write(np.array([11, 22], np.int32))
    code = ("import shmbus; b = shmbus.Bus(%r); "
            "print(b.state('v', dtype='int32', shape=(2,)).read().tolist())" % busname)
    out = subprocess.check_output([sys.executable, "-c", code], env=child_env, timeout=30)
    assert out.strip() == b"[11, 22]"


def test_same_array_written_and_read_again(bus):
    st = bus.state("c", dtype="float64", shape=(3,))
    src, dst = np.zeros(3), np.zeros(3)
    for k in range(5):
        src[:] = k
        st.write(src)            # the same array each time: its current contents
        assert st.read(out=dst) is dst and dst.tolist() == [k] * 3
    other = np.empty(3)
    st.read(out=other)
    assert other.tolist() == [4.0] * 3
    st.close()                   # lets go of the arrays it held
    dst.resize(4, refcheck=False)
    src.resize(4, refcheck=False)

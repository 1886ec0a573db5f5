"""One conversion rule for every write into a typed channel (docs/python.md,
"Values and dtypes"): a value is stored as it is or refused -- never
wrapped, truncated or invented -- and a refused write leaves the channel as
it was. Each write path is checked: state write (number, sequence,
buffer), SharedMemoryTransport.write, array item/slice set, += and add(),
exchange, compare_and_swap; dict/list values are exact; queue messages are
bytes only."""
import numpy as np
import pytest

import shmbus


def refused(cls, fn, *args):
    with pytest.raises(cls) as ei:
        fn(*args)
    assert ei.value.code == (shmbus.ETYPE if cls is shmbus.TypeMismatch else shmbus.EINVAL)


# ---- state.write ------------------------------------------------------------

def test_state_none_is_not_nan(bus):
    st = bus.state("f", dtype="float64", shape=(2,))
    st.write([1.0, 2.0])
    refused(shmbus.TypeMismatch, st.write, None)
    refused(shmbus.TypeMismatch, st.write, [None, 3.0])
    assert st.read().tolist() == [1.0, 2.0]
    sc = bus.state("sc")                     # float64 scalar
    refused(shmbus.TypeMismatch, sc.write, None)
    refused(shmbus.TypeMismatch, sc.write, "1.5")


def test_state_out_of_range_is_not_wrapped(bus):
    st = bus.state("u", dtype="uint8", shape=(3,))
    st.write([1, 2, 3])
    refused(shmbus.InvalidArgument, st.write, [1, 2, 300])
    refused(shmbus.InvalidArgument, st.write, [-1, 2, 3])
    refused(shmbus.InvalidArgument, st.write, [1, 2, 1 << 70])
    assert st.read().tolist() == [1, 2, 3]
    sc = bus.state("i8", dtype="int8")
    refused(shmbus.InvalidArgument, sc.write, 128)
    sc.write(-128)
    assert sc.read() == -128


def test_state_floats_are_not_truncated_into_ints(bus):
    st = bus.state("i", dtype="int32", shape=(2,))
    st.write([7, 8])
    refused(shmbus.TypeMismatch, st.write, [1.5, 2.5])   # the list ...
    refused(shmbus.TypeMismatch, st.write, [1.0, 2.0])   # even when integral
    sc = bus.state("s", dtype="int32")
    refused(shmbus.TypeMismatch, sc.write, 1.7)           # ... as the scalar
    refused(shmbus.TypeMismatch, sc.write, 2.0)
    assert st.read().tolist() == [7, 8]
    sc.write(np.int64(5))                    # integers of any width, by value
    assert sc.read() == 5


def test_state_floats_round_but_do_not_overflow(bus):
    st = bus.state("f32", dtype="float32", shape=(2,))
    st.write([0.1, 3])                       # rounding to float32 is its nature
    assert st.read().tolist() == [np.float32(0.1), 3.0]
    refused(shmbus.InvalidArgument, st.write, [1e39, 0.0])
    refused(shmbus.InvalidArgument, st.write, [1 << 200, 0])
    sc = bus.state("f32s", dtype="float32")
    refused(shmbus.InvalidArgument, sc.write, 1e39)
    sc.write(float("inf"))                   # infinity is exactly infinity
    assert sc.read() == float("inf")
    f64 = bus.state("f64", dtype="float64")
    f64.write(3)
    assert f64.read() == 3.0


def test_state_bool(bus):
    st = bus.state("b", dtype="bool", shape=(2,))
    st.write([True, 0])
    refused(shmbus.InvalidArgument, st.write, [2, 0])
    refused(shmbus.TypeMismatch, st.write, [0.5, 0])
    sc = bus.state("bs", dtype="bool")
    refused(shmbus.InvalidArgument, sc.write, 2)
    refused(shmbus.TypeMismatch, sc.write, "yes")
    sc.write(np.True_)
    assert sc.read() is True and st.read().tolist() == [True, False]


def test_state_buffers_must_have_the_channels_type(bus):
    st = bus.state("f32", dtype="float32", shape=(2,))
    refused(shmbus.TypeMismatch, st.write, np.zeros(2, np.float64)[:2].astype(np.float16))
    refused(shmbus.TypeMismatch, st.write, np.zeros(1, np.float64))   # same size, other type
    st.write(np.array([1.5, 2.5], np.float32))
    assert st.read().tolist() == [1.5, 2.5]


def test_transport_write_follows_the_rule(busname):
    with shmbus.SharedMemoryTransport(busname, {"u": ("uint8", (2,))}, create=True) as t:
        t.write("u", [1, 2])
        refused(shmbus.InvalidArgument, t.write, "u", [1, 256])
        refused(shmbus.TypeMismatch, t.write, "u", [1.5, 2])
        refused(shmbus.TypeMismatch, t.write, "u", None)
        assert t.read("u").tolist() == [1, 2]


# ---- arrays -------------------------------------------------------------------

def test_array_plus_equals_does_not_wrap(bus):
    a = bus.array("a", dtype="int8", length=2)
    a[0] = 127

    def inc():
        a[0] += 1

    refused(shmbus.InvalidArgument, inc)
    assert a[0] == 127                       # as refused as a[0] = 128
    refused(shmbus.InvalidArgument, a.__setitem__, 0, 128)
    refused(shmbus.InvalidArgument, a.add, 0, 1)
    a[1] = -128
    refused(shmbus.InvalidArgument, a.add, 1, -1)
    assert a.add(1, 255) == -128 and a[1] == 127
    u = bus.array("u", dtype="uint64", length=1)
    u[0] = (1 << 64) - 1
    refused(shmbus.InvalidArgument, u.add, 0, 1)
    assert u.add(0, -1) == (1 << 64) - 1 and u[0] == (1 << 64) - 2
    z = bus.array("z", dtype="uint16", length=1)
    refused(shmbus.InvalidArgument, z.add, 0, -1)
    assert z[0] == 0


def test_array_set_and_slices(bus):
    a = bus.array("a", dtype="uint8", length=3)
    a[0:3] = [1, 2, 3]
    refused(shmbus.InvalidArgument, a.__setitem__, slice(0, 3), [4, 5, 300])
    assert a.tolist() == [1, 2, 3]           # nothing of the refused slice stored
    refused(shmbus.TypeMismatch, a.__setitem__, 0, 1.5)
    refused(shmbus.TypeMismatch, a.__setitem__, 0, None)
    f = bus.array("f", dtype="float32", length=1)
    f[0] = 2
    refused(shmbus.TypeMismatch, f.__setitem__, 0, None)
    refused(shmbus.InvalidArgument, f.__setitem__, 0, 1e39)
    refused(shmbus.TypeMismatch, f.add, 0, None)
    assert f[0] == 2.0


def test_array_exchange_and_cas_in_range(bus):
    a = bus.array("a", dtype="int8", length=1)
    a[0] = 44
    refused(shmbus.InvalidArgument, a.exchange, 0, 200)
    # 300 would truncate to 44 and match: refused instead.
    refused(shmbus.InvalidArgument, a.compare_and_swap, 0, 300, 1)
    refused(shmbus.InvalidArgument, a.compare_and_swap, 0, 44, 1000)
    assert a[0] == 44
    assert a.compare_and_swap(0, 44, -5) == (True, 44) and a[0] == -5
    u = bus.array("u", dtype="uint64", length=1)
    assert u.exchange(0, 1 << 63) == 0 and u.exchange(0, 1) == 1 << 63


# ---- containers and queues ------------------------------------------------------

def test_dict_and_list_values_are_exact(bus):
    d = bus.dict("d")
    d["n"] = (1 << 63) - 1
    d["n"] += 1                              # past int64: exact, not wrapped
    assert d["n"] == 1 << 63
    d["x"] = 0.1
    assert d["x"] == 0.1 and isinstance(d["x"], float)
    lst = bus.list("l")
    lst.append(None)
    assert lst[0] is None
    refused(shmbus.TypeMismatch, lst.append, {1, 2})


def test_queue_takes_bytes_only(bus):
    q = bus.queue("q", group="g")
    refused(shmbus.TypeMismatch, q.put, 1.5)
    refused(shmbus.TypeMismatch, q.put, None)
    refused(shmbus.TypeMismatch, q.put, "text")
    q.put(np.array([1, 2], np.int32))        # a buffer: its bytes
    assert q.get(timeout=1) == np.array([1, 2], np.int32).tobytes()

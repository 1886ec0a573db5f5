"""Shared Dict and List: Python values, atomic +=, across processes."""
import multiprocessing as mp

import pytest

import helpers
import shmbus
from conftest import scale

VALUES = [None, True, False, 0, -1, (1 << 63) - 1, -(1 << 63), 1 << 100, 1.5, float("inf"),
          "", "héllo", b"", b"\x00\xff", (), [], {}, (1, "a", [2.5, None]),
          {"k": {"nested": (b"x", [1, 2])}, 3: None}]


def test_encoding_roundtrip():
    for v in VALUES:
        assert shmbus.decode(shmbus.encode(v)) == v
        assert type(shmbus.decode(shmbus.encode(v))) is type(v)


def test_encoding_refuses_other_types_and_garbage():
    with pytest.raises(TypeError):
        shmbus.encode(object())
    with pytest.raises(TypeError):
        shmbus.encode({1, 2})
    for junk in (b"", b"?", b"i\x00", b"l\xff\xff\xff\xff", b"t\x01\x00\x00\x00\x09\x00\x00\x00i"):
        with pytest.raises(shmbus.Corrupt):
            shmbus.decode(junk)


def _dict(bus, name="D"):
    try:
        return bus.dict(name)
    except NotImplementedError:
        pytest.skip("the library has no shared dict/list yet")


def _list(bus, name="Li"):
    try:
        return bus.list(name)
    except NotImplementedError:
        pytest.skip("the library has no shared dict/list yet")


def test_dict_operations(bus):
    d = _dict(bus)
    for i, v in enumerate(VALUES):
        d[i] = v
    d["key"] = "value"
    d[("tuple", 1)] = 2
    assert len(d) == len(VALUES) + 2
    for i, v in enumerate(VALUES):
        assert d[i] == v
    assert d[("tuple", 1)] == 2 and "key" in d and "nokey" not in d
    assert set(d.keys()) == set(range(len(VALUES))) | {"key", ("tuple", 1)}
    del d["key"]
    with pytest.raises(KeyError):
        d["key"]
    with pytest.raises(KeyError):
        del d["key"]
    assert d.get("key", 5) == 5
    d["n"] = 1
    d["n"] += 2
    d["n"] -= 0.5
    assert d["n"] == 2.5
    d["s"] = "a"
    d["s"] += "b"  # not a number: a plain read then store
    assert d["s"] == "ab"
    d.apply("s", lambda s: s * 2)
    assert d["s"] == "abab"
    assert d.setdefault("new", 1) == 1 and d.setdefault("new", 2) == 1
    assert d.pop("new") == 1 and d.pop("new", None) is None
    d.update({"u": 1, "v": 2})
    assert d.to_dict()["v"] == 2
    d.clear()
    assert len(d) == 0
    with pytest.raises(TypeError):
        d["x"] = object()
    with pytest.raises(KeyError):
        d["missing"] += 1


def test_dict_grows_past_initial_capacity(bus):
    d = _dict(bus)
    n = 2000
    for i in range(n):
        d["k%d" % i] = "v" * (i % 50)
    assert len(d) == n and d["k1999"] == "v" * (1999 % 50)


def test_space_freed_by_small_values_takes_large_ones(bus):
    d = bus.dict("frag", area_bytes=256 << 10)
    for _ in range(3):
        n = 0
        with pytest.raises(shmbus.NoSpace):
            while True:
                d["s%d" % n] = b"x" * 200
                n += 1
        assert n > 500
        d.clear()
        for i in range(10):                 # ~160 KiB in the space the small ones left
            d["b%d" % i] = b"y" * 12000
        assert len(d) == 10 and d["b9"] == b"y" * 12000
        d.clear()


def test_list_operations(bus):
    lst = _list(bus)
    lst.extend([1, 2.5, "s", None])
    lst.insert(0, "first")
    lst.append([1, 2])
    assert len(lst) == 6 and lst[0] == "first" and lst[-1] == [1, 2]
    assert lst[1:3] == [1, 2.5] and lst[::-1][0] == [1, 2]
    lst[1] += 10
    lst[2] += 0.25
    lst[-3] = "t"
    assert lst.tolist() == ["first", 11, 2.75, "t", None, [1, 2]]
    assert lst.pop() == [1, 2] and lst.pop(0) == "first"
    del lst[0]
    assert lst.tolist() == [2.75, "t", None] and "t" in lst and lst.index(None) == 2
    lst[0:2] = ["a", "b"]
    assert lst[:2] == ["a", "b"]
    del lst[0:2]
    assert lst.tolist() == [None]
    with pytest.raises(IndexError):
        lst[5]
    with pytest.raises(IndexError):
        lst[5] = 1
    lst.clear()
    assert len(lst) == 0
    with pytest.raises(IndexError):
        lst.pop()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_plus_equals_exact_across_processes(busname, method):
    n, procs_n = int(2000 * scale()), 3
    ctx = mp.get_context(method)
    with shmbus.Bus(busname, create=True, unlink=True) as bus:
        d = _dict(bus)
        lst = _list(bus)
        d["count"] = 0
        d["f"] = 0.0
        lst.extend([0, 0.0])
        procs = [ctx.Process(target=helpers.container_adder, args=(busname, n, k))
                 for k in range(procs_n)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert all(p.exitcode == 0 for p in procs)
        assert d["count"] == procs_n * n and d["f"] == 0.5 * procs_n * n
        assert lst.tolist() == [procs_n * n, 1.5 * procs_n * n]
        assert {d["proc-%d" % k] for k in range(procs_n)} == {n}


def test_defaults_follow_a_small_bus(busname):
    # A 1 MiB bus has less than 1 MiB of heap: the default dict and list
    # take part of what is free instead of refusing.
    b = shmbus.Bus(busname, create=True, size=1 << 20, unlink=True)
    try:
        d = _dict(b)
        d["k"] = [1, 2]
        li = _list(b)
        li.append("x")
        assert d["k"] == [1, 2] and li[0] == "x"
        info = {c["name"]: c for c in b.channels()}
        assert info["D"]["area_size"] < 1 << 20
    finally:
        b.close()

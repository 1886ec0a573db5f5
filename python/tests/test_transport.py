"""SharedMemoryTransport: named arrays over one bus."""
import multiprocessing as mp

import numpy as np
import pytest

import shmbus

CH = {"y": ("float64", (1,)), "img": ("uint8", (4, 5)), "v": (3,)}


def _child(name):
    with shmbus.SharedMemoryTransport(name, CH, create=False, timeout=10) as t:
        t.wait("y", newer_than=0, timeout=10)
        t.write("v", np.array([t.read("y")[0], float(t.read("img").sum()), 3.0]))


def test_transport_roundtrip(busname):
    with shmbus.SharedMemoryTransport(busname, CH, create=True) as t:
        assert t.channels == ("y", "img", "v")
        assert t.read("y").tolist() == [0.0] and t.seq("y") == 0  # zeros before any write
        ctx = mp.get_context("spawn")
        p = ctx.Process(target=_child, args=(busname,))
        p.start()
        t.write("img", np.ones((4, 5), np.uint8))
        t.write("y", np.array([4.5]))
        t.wait("v", newer_than=0, timeout=30)
        buf = np.zeros(3)
        assert t.read("v", out=buf) is buf and buf.tolist() == [4.5, 20.0, 3.0]
        p.join(10)
        assert p.exitcode == 0
        with pytest.raises(KeyError):
            t.read("nope")
        with pytest.raises(shmbus.TypeMismatch):
            t.write("img", np.ones((4, 5), np.float64))
    assert busname not in shmbus.list_buses()


def test_transport_spec_forms_and_mismatch(busname):
    with shmbus.SharedMemoryTransport(busname, {"a": np.zeros((2, 2), np.int32), "b": 4,
                                                "c": {"dtype": "int8", "shape": 3}},
                                      create=True) as t:
        assert t.read("a").dtype == np.int32 and t.read("b").shape == (4,)
        assert t.read("c").dtype == np.int8
        with pytest.raises(shmbus.TypeMismatch):
            shmbus.SharedMemoryTransport(busname, {"a": ("float64", (2, 2))})
    with pytest.raises(TypeError):
        shmbus.SharedMemoryTransport(busname, {"a": object()}, create=True)
    with pytest.raises(ValueError):
        shmbus.SharedMemoryTransport(busname, {}, create=True)
    with pytest.raises(shmbus.Timeout):
        shmbus.SharedMemoryTransport(busname, {"a": 1}, timeout=0.05)

"""Bus lifecycle: create, open, open-or-create, wait, close, unlink, info."""
import os
import tempfile

import pytest

import shmbus


def test_create_then_open_sees_same_segment(busname):
    with shmbus.Bus(busname, create=True, size=1 << 20, unlink=True) as a:
        assert a.created and not a.closed
        with shmbus.Bus(busname) as b:
            assert not b.created
            a.state("x", dtype="int64").write(42)
            assert b.state("x", dtype="int64").read() == 42
            assert b.info()["size"] == a.info()["size"] >= 1 << 20
    assert a.closed
    with pytest.raises(shmbus.NotFound):
        shmbus.Bus(busname)


def test_create_twice_raises_exists(bus, busname):
    with pytest.raises(shmbus.Exists) as e:
        shmbus.Bus(busname, create=True)
    assert busname in str(e.value) and e.value.code == -3
    assert isinstance(e.value, shmbus.Error)


def test_open_missing_raises_notfound_with_name(busname):
    with pytest.raises(shmbus.NotFound) as e:
        shmbus.Bus(busname)
    assert busname in str(e.value)


def test_classmethods(busname):
    with shmbus.Bus.create(busname, size=1 << 20, unlink=True) as a:
        assert a.created and isinstance(a, shmbus.Bus)
        with shmbus.Bus.open(busname) as b, shmbus.Bus.open_or_create(busname) as c:
            assert not b.created and not c.created
    with pytest.raises(shmbus.NotFound):
        shmbus.Bus.open(busname)
    with pytest.raises(shmbus.Timeout):
        shmbus.Bus.open(busname, wait=0.05)


def test_open_or_create(busname):
    with shmbus.Bus(busname, create=None, unlink=True) as a:
        assert a.created
        with shmbus.Bus(busname, create=None) as b:
            assert not b.created


def test_wait_for_bus_times_out(busname):
    with pytest.raises(shmbus.Timeout):
        shmbus.Bus(busname, wait=0.1)


def test_unlink_on_close_only_for_creator(busname):
    a = shmbus.Bus(busname, create=True, unlink=True)
    b = shmbus.Bus(busname, unlink=True)  # not the creator: leaves the name
    b.close()
    assert busname in shmbus.list_buses()
    a.close()
    assert busname not in shmbus.list_buses()


def test_close_unlink_argument(busname):
    a = shmbus.Bus(busname, create=True)
    a.close(unlink=True)
    with pytest.raises(shmbus.NotFound):
        shmbus.unlink(busname)


def test_closed_bus_refuses_calls(busname):
    b = shmbus.Bus(busname, create=True, unlink=True)
    st = b.state("s")
    q = b.queue("q")
    b.close()
    for call in (lambda: b.state("t"), lambda: b.queue("r"), b.info, b.channels, b.gc,
                 lambda: st.write(1.0), st.read, q.get, lambda: q.put(b"x")):
        with pytest.raises(ValueError, match="closed"):
            call()
    b.close()  # twice is fine


def test_bad_names_and_sizes(busname):
    with pytest.raises(shmbus.InvalidArgument):
        shmbus.Bus("bad/name", create=True)
    with pytest.raises(shmbus.InvalidArgument):
        shmbus.Bus("x" * 300, create=True)
    with pytest.raises(shmbus.Error):
        shmbus.Bus(busname, create=True, size=100)  # too small for the tables
    with pytest.raises(TypeError):
        shmbus.Bus(123)
    with pytest.raises(shmbus.InvalidArgument):
        shmbus.Bus(busname, create=True, size=-5)
    with shmbus.Bus(busname, create=True, size=1 << 20, unlink=True) as b:
        with pytest.raises(shmbus.InvalidArgument):
            b.state("bad name!")


def test_info_channels_peers_gc(bus):
    bus.state("a", dtype="float32", shape=(2, 3))
    bus.queue("b", slots=16, max_msg=32)
    info = bus.info()
    assert info["channels"] == 2 and info["live_peers"] >= 1 and not info["persistent"]
    chans = {c["name"]: c for c in bus.channels()}
    assert chans["a"]["kind"] == "state" and chans["a"]["dtype"] == "float32"
    assert chans["a"]["shape"] == (2, 3)
    assert chans["b"]["kind"] == "queue" and chans["b"]["capacity"] == 16
    assert any(p["pid"] == os.getpid() for p in bus.peers())
    assert bus.gc() >= 0
    bus.delete_channel("a")
    assert "a" not in {c["name"] for c in bus.channels()}
    with pytest.raises(shmbus.NotFound):
        bus.delete_channel("a")
    bus.set_liveness(0.5)


def test_file_bus_persists():
    d = tempfile.mkdtemp()
    path = "file:" + os.path.join(d, "b")
    try:
        with shmbus.Bus(path, create=True, size=1 << 20) as b:
            b.state("v", dtype="int32", shape=3).write(bytes(range(12)))
            assert b.info()["persistent"]
        with shmbus.Bus(path) as b:
            assert b.state("v", dtype="int32", shape=3).read().tobytes() == bytes(range(12))
    finally:
        shmbus.unlink(path)
        os.rmdir(d)


def test_repr_and_help():
    assert "name" in shmbus.Bus.__doc__ and "state" in shmbus.Bus.state.__doc__
    assert shmbus.library_version().count(".") == 2


def test_exception_hierarchy():
    assert issubclass(shmbus.Timeout, TimeoutError)
    assert issubclass(shmbus.TypeMismatch, TypeError)
    assert issubclass(shmbus.NotFound, LookupError)
    for e in (shmbus.Timeout, shmbus.Closed, shmbus.NotFound, shmbus.Exists,
              shmbus.TypeMismatch, shmbus.Corrupt):
        assert issubclass(e, shmbus.Error)


def test_corrupt_file_refused():
    d = tempfile.mkdtemp()
    p = os.path.join(d, "junk")
    try:
        with open(p, "wb") as f:
            f.write(b"\xff" * (1 << 20))
        with pytest.raises(shmbus.Corrupt):
            shmbus.Bus("file:" + p)
    finally:
        os.unlink(p)
        os.rmdir(d)


def test_forked_child_closing_inherited_bus_leaves_parent_registered(busname):
    with shmbus.Bus(busname, create=True, unlink=True) as bus:
        st = bus.state("s", dtype="int64")
        st.write(1)
        q = bus.queue("q", group="g")
        pid = os.fork()
        if pid == 0:  # the child closes what it inherited, then exits
            try:
                bus.close()
                os._exit(0 if st.closed and q.detached else 3)
            except BaseException:
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert any(p["pid"] == os.getpid() for p in bus.peers())
        groups = {g["name"]: g["members"] for g in q.info()["groups"]}
        assert groups == {"g": 1}
        st.write(2)
        assert st.read() == 2


def test_allow_foreign_owner_opt_in(busname):
    # A bus whose mode was widened after creation is refused like one owned
    # by another user, with the same opt-in (tests/test_multiuser.sh runs the
    # real multi-user case as other uids).
    with shmbus.Bus(busname, create=True, size=1 << 20, mode=0o600) as owner:
        owner.state("y", writers="many").write(1.5)  # as the transport makes it
        os.chmod("/dev/shm/shmbus-" + busname, 0o660)
        with pytest.raises(shmbus.PermissionDenied, match="allow_foreign_owner=True"):
            shmbus.Bus(busname)
        with shmbus.Bus(busname, allow_foreign_owner=True) as other:
            assert other.state("y").read() == 1.5
        with shmbus.Bus.open(busname, wait=1, allow_foreign_owner=True) as other:
            assert other.info()["channels"] == 1
        with shmbus.SharedMemoryTransport(busname, {"y": ("float64", ())},
                                          allow_foreign_owner=True, timeout=1) as t:
            assert t.read("y") == 1.5

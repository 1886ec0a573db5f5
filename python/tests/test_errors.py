"""Every error the package raises is a shmbus.Error subclass with .code (the
SHMBUS_E* value), as docs/python.md promises -- including the errors the
binding finds itself (bad dtype, bad shape, wrong size, ...), not only those
the C library reports."""
import glob
import os
import re

import numpy as np
import pytest

import shmbus
from conftest import PYDIR, ROOT


def check(exc_info, cls, code):
    e = exc_info.value
    assert isinstance(e, shmbus.Error), repr(e)
    assert type(e) is cls, "%r is %s, expected %s" % (e, type(e).__name__, cls.__name__)
    assert getattr(e, "code", None) == code, "%r has code %r, expected %r" % (
        e, getattr(e, "code", None), code)


def raises(cls, code, fn, *args, **kw):
    with pytest.raises(shmbus.Error) as ei:
        fn(*args, **kw)
    check(ei, cls, code)
    return ei.value


INVAL = (shmbus.InvalidArgument, shmbus.EINVAL)
TYPE = (shmbus.TypeMismatch, shmbus.ETYPE)


def test_codes_are_the_library_codes():
    assert shmbus.EINVAL == -1 and shmbus.ENOENT == -2 and shmbus.ETYPE == -4
    assert shmbus.ECORRUPT == -5 and shmbus.EPERM == -14 and shmbus.ETIMEDOUT == -8
    assert issubclass(shmbus.PermissionDenied, shmbus.Error)
    assert issubclass(shmbus.PermissionDenied, PermissionError)


def _header_errors():
    """The header's error table, SHMBUS_ERRORS: [(name, value, words)],
    read from include/shmbus.h as a C programmer reads it."""
    lines = open(os.path.join(ROOT, "include", "shmbus.h")).read().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("#define SHMBUS_ERRORS(X)"))
    block = []
    for line in lines[start:]:
        block.append(line)
        if not line.rstrip().endswith("\\"):
            break
    table = [("SHMBUS_" + n, int(v), w) for n, v, w in
             re.findall(r'\bX\(\s*(\w+)\s*,\s*(-?\d+)\s*,\s*"([^"]*)"\s*\)', "\n".join(block))]
    assert len(table) >= 22, table
    return table


def test_every_code_of_the_header_has_its_class():
    """Each SHMBUS_ERRORS entry but SHMBUS_OK has a class of its own, an
    Error subclass exported by the package, with the code and its name as
    class attributes; the E* constants, ERRORS and errname() agree with the
    header."""
    table = _header_errors()
    seen = {}
    for name, value, words in table:
        assert shmbus.ERRORS[value] == name, (value, shmbus.ERRORS.get(value), name)
        assert shmbus.errname(value) == name
        if value == 0:
            continue
        assert getattr(shmbus, name[len("SHMBUS_"):]) == value, name
        classes = [c for c in vars(shmbus).values() if isinstance(c, type) and
                   issubclass(c, shmbus.Error) and c.__dict__.get("code") == value]
        assert len(classes) == 1, "%s: classes %r" % (name, classes)
        cls = classes[0]
        assert cls.errname == name and cls.code == value, (cls, cls.errname, cls.code)
        assert cls.__name__ in shmbus.__all__, cls.__name__
        assert cls.__module__ == "shmbus", cls
        assert cls not in seen, "%s shared by %s and %s" % (cls.__name__, seen.get(cls), name)
        seen[cls] = name
    assert sorted(shmbus.ERRORS) == sorted(v for _, v, _ in table)
    assert shmbus.errname(1) == shmbus.errname(-10 ** 6) == shmbus.errname(10 ** 40) == "SHMBUS_E?"


def test_raising_from_c_gives_the_codes_class():
    """For every code, the C side's raise (the path of every library error
    and of the binding's own) raises the code's class with .code, .errname
    and the library's words for it."""
    for name, value, words in _header_errors():
        if value == 0:
            continue
        e = shmbus._shmbus._error(value, "provoked")
        with pytest.raises(shmbus.Error) as ei:
            raise e
        cls = [c for c in vars(shmbus).values() if isinstance(c, type) and
               issubclass(c, shmbus.Error) and c.__dict__.get("code") == value][0]
        check(ei, cls, value)
        assert ei.value.errname == name, (ei.value, ei.value.errname)
        if value != shmbus.ETYPE:   # the binding says "type mismatch" for a value's type
            assert str(ei.value) == words + ": provoked", str(ei.value)


def test_classes_keep_the_hierarchy_handlers_rely_on():
    """The classes that existed before one class per code still catch what
    they caught: a would-block is a Timeout, another ABI version Corrupt,
    an unrecoverable lock OwnerDead; the builtin bases stay."""
    for cls, bases in [
            (shmbus.WouldBlock, (shmbus.Timeout, TimeoutError)),
            (shmbus.VersionMismatch, (shmbus.Corrupt,)),
            (shmbus.NotRecoverable, (shmbus.OwnerDead,)),
            (shmbus.Timeout, (TimeoutError,)), (shmbus.NotFound, (LookupError,)),
            (shmbus.TypeMismatch, (TypeError,)), (shmbus.TooBig, (ValueError,)),
            (shmbus.InvalidArgument, (ValueError,)), (shmbus.PermissionDenied, (PermissionError,)),
            (shmbus.OutOfMemory, (MemoryError,)), (shmbus.Interrupted, (InterruptedError,)),
            (shmbus.SystemCallFailed, (OSError,))]:
        for b in bases + (shmbus.Error,):
            assert issubclass(cls, b), (cls, b)


def test_a_would_block_is_a_timeout(bus):
    q = bus.queue("q", group="g")
    e = raises(shmbus.WouldBlock, shmbus.EAGAIN, q.get, timeout=0)
    assert isinstance(e, shmbus.Timeout) and e.errname == "SHMBUS_EAGAIN"


def test_argument_errors_found_by_the_binding(bus, busname):
    raises(*INVAL, bus.state, "x", dtype="complex256")
    raises(*INVAL, bus.state, "x", dtype=object())
    raises(*INVAL, bus.state, "x", shape=(0, 3))
    raises(*INVAL, bus.state, "x", shape=-2)
    raises(*INVAL, bus.state, "x", shape="3")
    raises(*INVAL, bus.state, "x", shape=(1.5,))
    raises(*INVAL, bus.state, "x", shape=(1, 1, 1, 1, 1))
    raises(*INVAL, bus.state, "x", nbuf=-1)
    raises(*INVAL, bus.state, "x", wait_policy="fast")
    raises(*INVAL, bus.queue, "q", wait_policy="fast")
    raises(*INVAL, bus.queue, "q", group=5)
    raises(*INVAL, bus.array, "a", length=-1)
    raises(*INVAL, bus.dict, "d", area_bytes=-1)
    raises(*INVAL, bus.semaphore, "s", initial=-1)
    raises(*INVAL, bus.turn, "t", max_parties=-1)
    for make in (bus.state, bus.queue, bus.lock, bus.event, bus.semaphore, bus.turn,
                 bus.array, bus.dict, bus.list, bus.delete_channel):
        raises(*INVAL, make, "bad\udcff")            # not encodable: not a name
    raises(*INVAL, bus.state, "x", dtype="f\udcff")
    raises(*INVAL, bus.state, "x", wait_policy="s\udcff")
    raises(*INVAL, shmbus.Bus, busname + "\udcff")
    raises(*INVAL, shmbus.Bus, busname + "x", create=True, size=-1)
    raises(*INVAL, shmbus.SharedMemoryTransport, busname + "x", {}, create=True)
    raises(*TYPE, shmbus.SharedMemoryTransport, busname + "x", {"a": object()}, create=True)


def test_value_errors_found_by_the_binding(bus):
    st = bus.state("v", dtype="float64", shape=(2,))
    raises(*INVAL, st.write, b"123")                       # wrong size
    raises(*TYPE, st.write, np.zeros(2, np.int32).view("f4"))  # wrong element type
    raises(*TYPE, st.write, object())
    raises(*INVAL, st.read, out=np.zeros(3))
    raises(*INVAL, st.wait, timeout=-1)
    raises(*INVAL, st.wait, timeout="soon")
    i = bus.state("i", dtype="int32")
    raises(*TYPE, i.write, 1.7)
    raises(*INVAL, i.write, 1 << 40)

    q = bus.queue("q", group="g")
    raises(*TYPE, q.put, "text")
    raises(*INVAL, q.put, b"x", timeout=-2)

    lock = bus.lock("L")
    raises(*INVAL, lock.acquire, False, 1)
    sem = bus.semaphore("S")
    raises(*INVAL, sem.release, 0)

    a = bus.array("a", dtype="int8", length=2)
    raises(*INVAL, a.__setitem__, slice(0, 2), [1])
    raises(*TYPE, a.add, 0, 1.5)
    raises(*INVAL, a.__setitem__, 0, 1 << 40)

    d = bus.dict("d")
    raises(*TYPE, d.__setitem__, "k", object())
    raises(*TYPE, d.add, "k", "1")
    lst = bus.list("l")
    lst.append(1)
    raises(*INVAL, lst.__setitem__, slice(0, 1), [1, 2])
    raises(*TYPE, lst.add, 0, None)
    raises(*TYPE, shmbus.encode, {1, 2})
    raises(shmbus.Corrupt, shmbus.ECORRUPT, shmbus.decode, b"")
    raises(shmbus.Corrupt, shmbus.ECORRUPT, shmbus.decode, b"?")


def test_library_errors_keep_their_code(bus, busname):
    raises(shmbus.NotFound, shmbus.ENOENT, shmbus.Bus, busname + "-missing")
    raises(shmbus.Exists, shmbus.EEXIST, shmbus.Bus, busname, create=True)
    bus.state("st")
    raises(shmbus.TypeMismatch, shmbus.ETYPE, bus.queue, "st")
    raises(shmbus.InvalidArgument, shmbus.EINVAL, shmbus.Bus, "bad/name", create=True)


def test_wait_for_a_bus_reports_the_wait_asked_for(busname):
    e = raises(shmbus.Timeout, shmbus.ETIMEDOUT, shmbus.Bus, busname, wait=0.5)
    assert "0.500 s" in str(e), str(e)


def test_permission_refusal_is_permission_denied(busname):
    # A bus whose mode was widened after creation is refused (EPERM): someone
    # else may have opened it to more users than its creator chose.
    with shmbus.Bus(busname, create=True, size=1 << 20, mode=0o600):
        os.chmod("/dev/shm/shmbus-" + busname, 0o666)
        e = raises(shmbus.PermissionDenied, shmbus.EPERM, shmbus.Bus, busname)
        assert isinstance(e, PermissionError)
        assert "mode" in str(e)


def test_no_error_is_raised_without_a_code():
    """Enumerate the raise sites: in the C files, shmbus classes are raised
    only through sbpy_raise/sbpy_fail (which set .code), and the only plain
    Python exceptions left are the protocol ones docs/python.md lists
    (IndexError, KeyError, a closed handle's ValueError, call-signature
    TypeErrors, RuntimeError for two threads on one handle, BufferError for
    a released view); the Python files raise shmbus errors through _error()."""
    bad = []
    for path in sorted(glob.glob(os.path.join(PYDIR, "src", "*.c"))):
        src = open(path).read()
        for m in re.finditer(r"PyErr_(?:SetString|Format|SetObject)\(\s*([^,]+),\s*([^;]*)", src):
            cls, rest = m.group(1).strip(), m.group(2)
            line = src.count("\n", 0, m.start()) + 1
            where = "%s:%d" % (os.path.basename(path), line)
            if cls.startswith("sbpy_"):
                bad.append("%s raises %s without .code" % (where, cls))
            elif cls in ("PyExc_ValueError",) and "is closed" not in rest:
                bad.append("%s raises ValueError" % where)
            elif cls in ("PyExc_OverflowError",):
                bad.append("%s raises OverflowError" % where)
            elif cls == "PyExc_TypeError" and not re.match(r'(how == 0 \? )?"[a-z_]*\(|"array ', rest):
                bad.append("%s raises TypeError: %s" % (where, rest[:60]))
    for path in sorted(glob.glob(os.path.join(os.path.dirname(shmbus.__file__), "*.py"))):
        for n, line in enumerate(open(path), 1):
            m = re.search(r"raise (\w+(?:\.\w+)?)\(", line)
            # a call-signature TypeError names its function, as in C
            if m and m.group(1) == "TypeError" and re.search(r'raise TypeError\("[a-z_]*\(', line):
                continue
            if m and m.group(1) not in ("KeyError", "_shmbus._error", "_corrupt", "_type_error",
                                        "_range_error"):
                bad.append("%s:%d raises %s" % (os.path.basename(path), n, m.group(1)))
    assert not bad, "\n".join(bad)


def _damage(busname, name, junk):
    """Overwrite every copy of `name` in the bus's file (the bus stays mapped
    by the caller, which sees the change: MAP_SHARED) with `junk`."""
    path = "/dev/shm/shmbus-" + busname
    with open(path, "r+b") as f:
        data = f.read()
        pos = data.find(name)
        assert pos >= 0, "name %r not found in %s" % (name, path)
        while pos >= 0:
            f.seek(pos)
            f.write(junk[:len(name)].ljust(len(name), b"\x07"))
            pos = data.find(name, pos + 1)


def test_damaged_channel_name_is_corrupt(bus, busname):
    # A directory entry whose name bytes are not a valid name (here: not
    # UTF-8 at all, and an escape sequence) is damage, reported as Corrupt.
    bus.state("chan-name-to-damage")
    bus.state("other")
    _damage(busname, b"chan-name-to-damage", b"\xff\xfe\x1b[2J")
    e = raises(shmbus.Corrupt, shmbus.ECORRUPT, bus.channels)
    assert "not a valid name" in str(e)


def test_damaged_group_name_is_corrupt(bus, busname):
    q = bus.queue("q", group="group-name-to-damage")
    q.put(b"x")
    _damage(busname, b"group-name-to-damage", b"\xc3\x28\x07")
    raises(shmbus.Corrupt, shmbus.ECORRUPT, q.info)


def test_hostile_file_names_do_not_break_list_buses(busname):
    # Any local user can create a file with the bus prefix; listing must not
    # fail for everyone (names decode as os.listdir's do).
    hostile = b"/dev/shm/shmbus-" + busname.encode() + b"\xff\x1b"
    with open(hostile, "wb") as f:
        f.write(b"not a bus")
    try:
        names = shmbus.list_buses()
        assert os.fsdecode(busname.encode() + b"\xff\x1b") in names
        raises(*INVAL, shmbus.Bus, os.fsdecode(busname.encode() + b"\xff\x1b"))
    finally:
        os.unlink(hostile)

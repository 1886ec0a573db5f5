"""Shared fixtures: unique bus names (prefixed t-py- so the suite's leftover
check sees them) that are removed after each test."""
import atexit
import itertools
import os
import signal
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
ROOT = os.path.dirname(PYDIR)
for p in (PYDIR, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

import shmbus  # noqa: E402

_count = itertools.count()
_PID = os.getpid()


def _remove_leftovers():
    """Remove every bus this test process named (t-py-...-<pid>...), however
    the run ends: fixtures unlink after each test, this catches the rest
    (a test killed by the suite's timeout, a subprocess's bus named after
    our pid, a failure between create and the fixture). A forked child has
    another pid and leaves its parent's buses alone."""
    if os.getpid() != _PID:
        return
    tag = "-%d" % _PID
    try:
        names = os.listdir("/dev/shm")
    except OSError:
        return
    for n in names:
        if not n.startswith("shmbus-t-py-"):
            continue
        rest = n[len("shmbus-t-py"):]
        i = rest.find(tag)
        while i >= 0:
            end = i + len(tag)
            if end == len(rest) or rest[end] in "-.":
                try:
                    os.unlink(os.path.join("/dev/shm", n))
                    sys.stderr.write("conftest: removed /dev/shm/%s left by this run\n" % n)
                except OSError:
                    pass
                break
            i = rest.find(tag, end)


def _on_signal(sig, frame):
    _remove_leftovers()
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


atexit.register(_remove_leftovers)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    if signal.getsignal(_sig) == signal.SIG_DFL:
        signal.signal(_sig, _on_signal)


def scale():
    try:
        return max(0.1, float(os.environ.get("SHMBUS_TEST_SCALE", "1")))
    except ValueError:
        return 1.0


@pytest.fixture
def busname():
    name = "t-py-%d-%d" % (os.getpid(), next(_count))
    yield name
    try:
        shmbus.unlink(name)
    except shmbus.NotFound:
        pass


@pytest.fixture
def bus(busname):
    b = shmbus.Bus(busname, create=True, size=16 << 20, unlink=True)
    yield b
    b.close()


@pytest.fixture
def child_env():
    """Environment for subprocesses: the package importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PYDIR + os.pathsep + HERE + os.pathsep + env.get("PYTHONPATH", "")
    return env

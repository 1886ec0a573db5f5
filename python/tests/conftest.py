"""Shared fixtures: unique bus names (prefixed t-py- so the suite's leftover
check sees them) that are removed after each test."""
import itertools
import os
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

"""The Python examples run end to end and check their own results."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

EX = os.path.join(ROOT, "examples", "python")
WRITER = os.path.join(ROOT, "build", "examples", "matrix_stream", "matrix_writer")


def run(child_env, *args, timeout=300):
    p = subprocess.run([sys.executable] + list(args), env=child_env, cwd=ROOT, timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert p.returncode == 0, p.stdout[-3000:]
    return p.stdout


def test_plant_controller(child_env):
    out = run(child_env, os.path.join(EX, "plant_controller.py"), "--steps", "80",
              "--bus", "t-py-plant-%d" % os.getpid())
    assert "converging toward 5.0: ok" in out


@pytest.mark.parametrize("consumers", [1, 5])
def test_producer_consumers(child_env, consumers):
    out = run(child_env, os.path.join(EX, "producer_consumers.py"), "--consumers",
              str(consumers), "--messages", "5000", "--bus", "t-py-pc-%d" % os.getpid())
    assert out.rstrip().endswith(": ok")


def test_persistent(child_env):
    out = run(child_env, os.path.join(EX, "persistent.py"))
    assert "100 log entries back: ok" in out


@pytest.mark.skipif(not os.access(WRITER, os.X_OK), reason="build/examples not built")
def test_matrix_reader(child_env):
    out = run(child_env, os.path.join(EX, "matrix_reader.py"), "--writer", WRITER, "--rows", "256",
              "--cols", "512", "--frames", "30", "--bus", "t-py-matrix-%d" % os.getpid())
    assert "0 wrong" in out


def test_shared_counter(child_env):
    path = os.path.join(EX, "shared_counter.py")
    if not os.path.exists(path):
        pytest.skip("no shared_counter.py")
    out = run(child_env, path, "--procs", "3", "--rounds", "50")
    assert out.rstrip().endswith("exact")


def test_asyncio_service(child_env):
    out = run(child_env, os.path.join(EX, "asyncio_service.py"), "--requests", "500",
              "--bus", "t-py-aio-%d" % os.getpid())
    assert out.rstrip().endswith("asyncio service: ok"), out

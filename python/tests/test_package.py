"""The package: stubs agree with the module, help is useful, pip installs it."""
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

import shmbus
from conftest import PYDIR, ROOT


def test_stubs_match_module():
    # the stub beside the package imported (the installed one when the
    # suite runs against an installed wheel: tests/test_wheel.sh)
    tree = ast.parse(open(os.path.join(os.path.dirname(shmbus.__file__), "__init__.pyi")).read())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    consts = {n.target.id: ast.unparse(n.annotation) for n in tree.body
              if isinstance(n, ast.AnnAssign) and n.target.id != "__version__"}
    for name in shmbus.__all__:
        assert name in classes or name in funcs or name in consts, name
    for name, ann in consts.items():
        want = {"int": int, "Mapping[int, str]": dict}[ann]
        assert isinstance(getattr(shmbus, name), want), (name, ann)
    for cname, node in classes.items():
        obj = getattr(shmbus, cname, None)
        if obj is None:  # StatePeek, QueuePeek: returned, not exported
            continue
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                assert hasattr(obj, item.name), "%s.%s in the stub only" % (cname, item.name)
        for attr in dir(obj):
            if not attr.startswith("_") and cname not in ("Dict", "List") and \
                    not isinstance(getattr(obj, attr, None), type):
                stubbed = {getattr(i, "name", None) for i in node.body} | \
                    {getattr(getattr(i, "target", None), "id", None) for i in node.body}
                if issubclass(obj, BaseException):
                    continue
                assert attr in stubbed, "%s.%s missing from the stub" % (cname, attr)


def test_version_is_the_source_trees():
    """__version__ is the VERSION file's, as the C library says it."""
    want = open(os.path.join(ROOT, "VERSION")).read().strip()
    assert shmbus.__version__ == want == shmbus.library_version()
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", want), want


def test_docstrings():
    for obj in (shmbus.Bus, shmbus.State, shmbus.Queue, shmbus.Lock, shmbus.Array, shmbus.Dict,
                shmbus.List, shmbus.SharedMemoryTransport, shmbus.Bus.state, shmbus.Bus.queue,
                shmbus.State.read, shmbus.Queue.get, shmbus.Queue.peek, shmbus.turn):
        assert obj.__doc__ and len(obj.__doc__) > 20, obj


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs /usr/bin/python3")
@pytest.mark.parametrize("from_source", [False, True], ids=["static-lib", "from-source"])
def test_pip_install_into_venv(from_source):
    """pip installs ./python: with the built libshmbus.a, and as on a fresh
    checkout (no build/: setup.py compiles the library's sources, which
    must leave out the test library's kill-point hook, src/fault.c)."""
    with tempfile.TemporaryDirectory() as d:
        venv = os.path.join(d, "venv")
        subprocess.check_call(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv])
        py = os.path.join(venv, "bin", "python")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SHMBUS_FROM_SOURCE")}
        src = PYDIR
        if from_source:
            # what a fresh checkout holds: no build/, no built extension
            tree = os.path.join(d, "tree")
            os.mkdir(tree)
            for f in ("src", "include", "VERSION"):
                subprocess.check_call(["cp", "-r", os.path.join(ROOT, f), tree])
            shutil.copytree(PYDIR, os.path.join(tree, "python"), ignore=shutil.ignore_patterns(
                "build", "*.so", "*.egg-info", "__pycache__"))
            src = os.path.join(tree, "python")
        # no index here: build with Debian's setuptools, not an isolated
        # environment pip would fill from PyPI (docs/python.md)
        r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", src],
                           env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=400)
        assert r.returncode == 0, r.stdout[-2000:]
        out = subprocess.check_output(
            [py, "-c", "import shmbus; print(shmbus.__file__); "
             "b = shmbus.Bus('t-py-pip-%d', create=True, unlink=True); "
             "b.state('x').write(2.0); print(b.state('x').read()); b.close(); "
             "print(shmbus.__version__)" % os.getpid()],
            env=env, cwd=d, text=True)
        assert out.split()[0].startswith(venv) and out.split()[1] == "2.0"
        assert out.split()[2] == open(os.path.join(ROOT, "VERSION")).read().strip()
    for p in (os.path.join(PYDIR, "shmbus.egg-info"),):
        if os.path.isdir(p):
            subprocess.call(["rm", "-rf", p])

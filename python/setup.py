"""Build the shmbus Python package: a CPython extension written in C against
libshmbus. The distribution's metadata is in pyproject.toml; this file adds
what cannot be declared there: the version (the VERSION file's), the
extension and the library sources an sdist carries.

Where the library comes from, first match wins:

- an sdist (or a tree unpacked from one): the library's C sources, headers
  and VERSION that the sdist carries in libshmbus/, compiled into the
  extension (SHMBUS_BUILD_DIR still picks a built library, if given);
- the source tree, with the static library from the build directory named by
  SHMBUS_BUILD_DIR (default: ../build, as made by `make lib`), linked whole so
  every part of the library is present;
- the source tree without a built library (e.g. `pip install ./python` on a
  fresh checkout), or with SHMBUS_FROM_SOURCE=1: ../src and ../include,
  compiled into the extension.

`python3 -m build` (and pip) make the sdist from python/, which cannot reach
../: the sdist command below copies ../src, ../include, ../VERSION and
../LICENSE into it, so that a wheel builds from the sdist alone.
"""
import glob
import os
import re
import shutil

from setuptools import Extension, setup
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUNDLED = os.path.join(HERE, "libshmbus")     # what an sdist carries of ROOT
IN_SDIST = os.path.isfile(os.path.join(BUNDLED, "include", "shmbus.h"))
LIBROOT = BUNDLED if IN_SDIST else ROOT

if "SHMBUS_BUILD_DIR" in os.environ or not IN_SDIST:
    BUILD = os.environ.get("SHMBUS_BUILD_DIR", os.path.join(ROOT, "build"))
    if not os.path.isabs(BUILD):
        BUILD = os.path.join(HERE, BUILD)
    STATIC = os.path.join(BUILD, "libshmbus.a")
else:
    STATIC = None


def version():
    """The VERSION file of the source tree (the one source of the version),
    else the numbers in the public header it is kept equal to."""
    path = os.path.join(LIBROOT, "VERSION")
    if os.path.exists(path):
        return open(path).read().strip()
    header = open(os.path.join(LIBROOT, "include", "shmbus.h")).read()
    return ".".join(re.search(r"#define SHMBUS_VERSION_%s (\d+)" % part, header).group(1)
                    for part in ("MAJOR", "MINOR", "PATCH"))


def library_sources(root):
    """The library's sources, as the Makefile's LIB_SRC: src/fault.c is the
    test library's kill-point hook, never part of the library."""
    return sorted(p for p in glob.glob(os.path.join(root, "src", "*.c"))
                  if os.path.basename(p) != "fault.c")


class SelfContainedSdist(sdist):
    """An sdist that builds without the source tree around python/: it
    carries the library's sources and headers in libshmbus/ (setup.py
    compiles them into the extension when it finds them there), and the
    VERSION and LICENSE files."""

    def make_release_tree(self, base_dir, files):
        # The file list names ../src/*.c when the extension compiles them
        # (no built library): never write outside the release tree.
        super().make_release_tree(base_dir, [f for f in files if not f.startswith("..")])
        dest = os.path.join(base_dir, "libshmbus")
        for sub, pattern in (("src", "*.[ch]"), ("include", "*.h")):
            os.makedirs(os.path.join(dest, sub), exist_ok=True)
            for p in sorted(glob.glob(os.path.join(LIBROOT, sub, pattern))):
                if os.path.basename(p) != "fault.c":   # fault.h: internal.h's hooks
                    shutil.copy2(p, os.path.join(dest, sub))
        for name in ("VERSION", "LICENSE"):
            src = os.path.join(LIBROOT, name)
            if os.path.exists(src):
                shutil.copy2(src, os.path.join(dest, name))
                if name == "LICENSE":
                    shutil.copy2(src, os.path.join(base_dir, name))


sources = sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, "src", "*.c")))
extra_link = []
if STATIC and os.path.exists(STATIC) and not os.environ.get("SHMBUS_FROM_SOURCE"):
    extra_link = ["-Wl,--whole-archive", STATIC, "-Wl,--no-whole-archive"]
else:
    sources += [os.path.relpath(p, HERE) for p in library_sources(LIBROOT)]

ext = Extension(
    "shmbus._shmbus",
    sources=sources,
    include_dirs=[os.path.join(LIBROOT, "include"), os.path.join(LIBROOT, "src"),
                  os.path.join(HERE, "src")],
    define_macros=[("_GNU_SOURCE", "1")],
    extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
                        "-Wno-cast-function-type", "-pthread"],
    extra_link_args=extra_link + ["-pthread", "-lrt"],
    # The library too, so that a rebuilt library relinks the extension.
    depends=glob.glob(os.path.join(HERE, "src", "*.h")) + [os.path.join(LIBROOT, "include", "shmbus.h")]
    + ([STATIC] if extra_link else []),
)

setup(
    version=version(),
    packages=["shmbus"],
    package_data={"shmbus": ["py.typed", "*.pyi"]},
    ext_modules=[ext],
    cmdclass={"sdist": SelfContainedSdist},
)

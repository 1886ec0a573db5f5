"""Build the shmbus Python package: a CPython extension written in C against
libshmbus.

The extension links the static library from the build directory named by
SHMBUS_BUILD_DIR (default: ../build, as made by `make lib`), whole, so every
part of the library is present. Without a built library (e.g. `pip install
./python` on a fresh checkout) it compiles the library's sources from ../src
into the extension instead.
"""
import glob
import os
import re

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("SHMBUS_BUILD_DIR", os.path.join(ROOT, "build"))
if not os.path.isabs(BUILD):
    BUILD = os.path.join(HERE, BUILD)
STATIC = os.path.join(BUILD, "libshmbus.a")


def version():
    """The VERSION file of the source tree (the one source of the version),
    else the numbers in the public header it is kept equal to."""
    path = os.path.join(ROOT, "VERSION")
    if os.path.exists(path):
        return open(path).read().strip()
    header = open(os.path.join(ROOT, "include", "shmbus.h")).read()
    return ".".join(re.search(r"#define SHMBUS_VERSION_%s (\d+)" % part, header).group(1)
                    for part in ("MAJOR", "MINOR", "PATCH"))


sources = sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, "src", "*.c")))
extra_objects = []
extra_link = []
if os.path.exists(STATIC) and not os.environ.get("SHMBUS_FROM_SOURCE"):
    extra_link = ["-Wl,--whole-archive", STATIC, "-Wl,--no-whole-archive"]
else:
    # the library's sources, as the Makefile's LIB_SRC: src/fault.c is the
    # test library's kill-point hook, never part of the library
    sources += sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(ROOT, "src", "*.c"))
                      if os.path.basename(p) != "fault.c")

ext = Extension(
    "shmbus._shmbus",
    sources=sources,
    include_dirs=[os.path.join(ROOT, "include"), os.path.join(ROOT, "src"), os.path.join(HERE, "src")],
    define_macros=[("_GNU_SOURCE", "1")],
    extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
                        "-Wno-cast-function-type", "-pthread"],
    extra_link_args=extra_link + ["-pthread", "-lrt"],
    # The library too, so that a rebuilt library relinks the extension.
    depends=glob.glob(os.path.join(HERE, "src", "*.h")) + [os.path.join(ROOT, "include", "shmbus.h")]
    + ([STATIC] if extra_link else []),
)

setup(
    name="shmbus",
    version=version(),
    description="Shared-memory channels between processes: state, queues, locks, containers",
    packages=["shmbus"],
    package_data={"shmbus": ["py.typed", "*.pyi"]},
    ext_modules=[ext],
    python_requires=">=3.8",
)

#!/usr/bin/env bash
# test_wheel.sh -- the Python distribution: python/ builds an sdist and a
# wheel with Debian's tools and no package index, the sdist builds alone,
# and the installed package passes the Python suite.
#
#   1. copies the tree (the files git tracks or would track, so uncommitted
#      changes are tested too, and no build/: a fresh checkout) to a
#      temporary directory; the worktree is never written;
#   2. there, runs docs/python.md's `python3 -m build --no-isolation` on
#      python/: one sdist and one wheel, named after the VERSION file; the
#      sdist carries the library's sources (the Makefile's LIB_SRC, never
#      the test hook src/fault.c), its headers and VERSION, and no path
#      outside itself;
#   3. unpacks the sdist in a directory with nothing else around it and
#      builds a wheel from it alone, which compiles the carried sources;
#   4. installs that wheel into a fresh venv (--system-site-packages, for
#      Debian's numpy and pytest) and runs python/tests from a copy outside
#      the tree (next to links to the built CLI, library and examples it
#      uses), with the venv's python, after checking that `shmbus` comes
#      from the venv and its __version__ is the VERSION file's; the one
#      test left out, test_pip_install_into_venv, builds from the source
#      tree, which the installed package has no copy of (step 5 does it);
#   5. runs docs/python.md's venv lines as written, in the copy:
#      `pip install --no-build-isolation ./python`, then `pip install` of
#      the wheel step 2 made; after each, imports the installed package,
#      checks its version and writes and reads a value.
#
# Needs python3-build, python3-setuptools, python3-wheel, python3-venv,
# python3-pytest (scripts/deps.sh), and `make all` done (the suite runs the
# CLI and examples of BUILD, default build).
#
#   env BUILD=build bash tests/test_wheel.sh
set -u
cd "$(dirname "$0")/.."
SRC=$PWD
BUILD=${BUILD:-build}
PY=/usr/bin/python3
V=$(cat VERSION)
fail=0; checks=0
bad() { echo "FAIL  $*"; fail=$((fail + 1)); }
ok() { checks=$((checks + 1)); echo "ok    $*"; }
T=$(mktemp -d /tmp/shmbus-whl.XXXXXX)
BUS=t-whl-$$
cleanup() {
	rc=$?
	rm -f "/dev/shm/shmbus-$BUS"
	rm -rf "$T"
	[ $fail -eq 0 ] || [ $rc -ne 0 ] || rc=1
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for m in build setuptools wheel venv pytest; do
	"$PY" -c "import $m" 2>/dev/null || { echo "FAIL  $PY cannot import $m: bash scripts/deps.sh installs it"; exit 1; }
done
for f in "$BUILD/shmbus" "$BUILD/libshmbus.so.1"; do
	[ -e "$f" ] || { echo "FAIL  $f is not built (make all)"; exit 1; }
done

# 1. a copy of the tree
status0=$(git status --porcelain --ignored 2>&1; echo .)
mkdir -p "$T/tree"
git ls-files -z -c -o --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$T/tree"

# 2. sdist and wheel, as docs/python.md builds them
t0=$(date +%s)
DIST=$T/tree/dist
if (cd "$T/tree" && "$PY" -m build --no-isolation --outdir dist python) >"$T/build.log" 2>&1; then
	ok "python3 -m build --no-isolation --outdir dist python ($(( $(date +%s) - t0 )) s)"
else
	bad "python3 -m build --no-isolation python:"; tail -30 "$T/build.log"; exit 1
fi
sdist=$DIST/shmbus-$V.tar.gz
wheels=$(cd "$DIST" && ls shmbus-"$V"-*.whl 2>/dev/null)
[ -f "$sdist" ] && ok "sdist $(basename "$sdist")" || bad "no sdist shmbus-$V.tar.gz in: $(ls "$DIST")"
[ "$(echo "$wheels" | grep -c .)" = 1 ] && ok "wheel $wheels" || bad "not one wheel shmbus-$V-*.whl in: $(ls "$DIST")"
if [ -n "$wheels" ]; then
	inwheel=$("$PY" -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$DIST/$wheels")
	for f in shmbus/__init__.py shmbus/__init__.pyi shmbus/py.typed "shmbus-$V.dist-info/METADATA"; do
		echo "$inwheel" | grep -qx "$f" && ok "the wheel has $f" || bad "the wheel has no $f"
	done
	echo "$inwheel" | grep -q '^shmbus/_shmbus\..*\.so$' && ok "the wheel has the extension" || bad "the wheel has no shmbus/_shmbus*.so"
fi
[ -f "$sdist" ] || exit 1
insdist=$(tar tzf "$sdist" | sed "s|^shmbus-$V/||" | sort)
echo "$insdist" | grep -q '\.\.' && bad "the sdist has paths outside itself: $(echo "$insdist" | grep '\.\.')"
want=$(cd "$T/tree" && ls src/*.c | grep -vx src/fault.c | sed 's|^|libshmbus/|')
missing=$(comm -23 <(echo "$want" | sort) <(echo "$insdist"))
[ -z "$missing" ] && ok "the sdist carries the library's $(echo "$want" | wc -l) sources in libshmbus/src" \
	|| bad "the sdist lacks: $missing"
echo "$insdist" | grep -qx libshmbus/src/fault.c && bad "the sdist carries the test hook src/fault.c"
for f in libshmbus/include/shmbus.h libshmbus/src/internal.h libshmbus/VERSION setup.py pyproject.toml \
	src/module.c src/sbpy.h shmbus/__init__.pyi shmbus/py.typed PKG-INFO; do
	echo "$insdist" | grep -qx "$f" && ok "the sdist has $f" || bad "the sdist has no $f"
done

# 3. a wheel from the sdist alone, far from the tree
mkdir -p "$T/far"
tar xzf "$sdist" -C "$T/far"
t0=$(date +%s)
if (cd "$T/far/shmbus-$V" && "$PY" -m build --no-isolation --wheel --outdir "$T/dist-sdist" .) >"$T/build-sdist.log" 2>&1; then
	ok "a wheel from the unpacked sdist ($(( $(date +%s) - t0 )) s)"
else
	bad "python3 -m build --wheel in the unpacked sdist:"; tail -30 "$T/build-sdist.log"; exit 1
fi
[ "$(cat "$T/far/shmbus-$V/libshmbus/VERSION")" = "$V" ] && ok "the sdist's VERSION: $V" || bad "the sdist's VERSION is not $V"
n=$(grep -c -- "-c libshmbus/src/[a-z_]*\.c" "$T/build-sdist.log")
[ "$n" -eq "$(echo "$want" | wc -l)" ] && ok "it compiled the $n library sources the sdist carries" \
	|| bad "it compiled $n of the sdist's $(echo "$want" | wc -l) library sources"
whl=$(ls "$T/dist-sdist"/shmbus-"$V"-*.whl 2>/dev/null)
[ -n "$whl" ] || { bad "no wheel from the sdist"; exit 1; }

# 4. that wheel installed in a fresh venv, the suite run against it
"$PY" -m venv --system-site-packages "$T/venv" || { bad "$PY -m venv"; exit 1; }
if "$T/venv/bin/python" -m pip install -q --no-index "$whl" >"$T/pip.log" 2>&1; then
	ok "pip install $(basename "$whl") into a venv"
else
	bad "pip install the wheel:"; tail -20 "$T/pip.log"
fi
# the tests, copied; beside them (as ../.. and .. of the tests), what they
# use of the tree: the built CLI and library, the examples, VERSION, the
# C sources a lint test reads. No python/shmbus: the installed one is used.
R=$T/run
mkdir -p "$R/python"
cp -r python/tests "$R/python/tests"
find "$R/python/tests" -name __pycache__ -prune -exec rm -rf {} +
ln -s "$SRC/$BUILD" "$R/build"
for f in examples VERSION src include docs; do ln -s "$SRC/$f" "$R/$f"; done
ln -s "$SRC/python/src" "$R/python/src"
# (a module: multiprocessing's spawn children import the parent's __main__)
cat >"$T/runtests.py" <<'EOF'
import os, sys
import pytest
import shmbus

if __name__ == "__main__":
    venv = os.environ["VENV"] + os.sep
    assert shmbus.__file__.startswith(venv), "shmbus imported from %s, not the venv" % shmbus.__file__
    assert shmbus.__version__ == os.environ["V"], shmbus.__version__
    print("shmbus %s from %s" % (shmbus.__version__, shmbus.__file__), flush=True)
    rc = pytest.main(["-q", "-p", "no:cacheprovider", "-k", "not test_pip_install_into_venv",
                      os.path.join(os.environ["R"], "python", "tests")])
    # the tests ran against that same module (conftest puts the copy's
    # parent, which has no shmbus, first on sys.path; a module is imported
    # once)
    assert sys.modules["shmbus"].__file__.startswith(venv), sys.modules["shmbus"].__file__
    sys.exit(rc)
EOF
t0=$(date +%s)
if (cd "$T" && env -u PYTHONPATH VENV="$T/venv" V="$V" R="$R" BUILD="$BUILD" \
	"$T/venv/bin/python" "$T/runtests.py") >"$T/pytest.log" 2>&1; then
	ok "$(head -1 "$T/pytest.log"): python/tests, $(grep -E '[0-9]+ passed' "$T/pytest.log" | tail -1) ($(( $(date +%s) - t0 )) s)"
else
	bad "python/tests against the installed wheel:"; tail -40 "$T/pytest.log"
fi

# 5. docs/python.md's venv lines, in the copy of the tree: pip install
# ./python, then the wheel of step 2 (in dist/ there), each imported from
# outside the tree
check_venv() {
	local out
	out=$(cd "$T" && env -u PYTHONPATH "$T/tree/venv/bin/python" -c "
import shmbus
b = shmbus.Bus('$BUS', create=True, unlink=True)
b.state('x').write(2.5)
print(shmbus.__file__, shmbus.__version__, float(b.state('x').read()))
b.close()" 2>&1)
	set -- $out
	case ${1:-} in "$T/tree/venv/"*) ok "$what: imported from the venv";; *) bad "$what: not imported from the venv: $out";; esac
	[ "${2:-}" = "$V" ] && [ "${3:-}" = 2.5 ] && ok "$what: __version__ $2, a value written and read" || bad "$what: $out"
}
doc_lines() { sed -n "$1" "$SRC/docs/python.md" | sed 's/ *#.*//'; }
for step in '/^\/usr\/bin\/python3 -m venv/,/pip install/p' '/^venv\/bin\/pip install --no-index/p'; do
	what=$(doc_lines "$step" | tail -1)
	[ -n "$what" ] || { bad "no line $step in docs/python.md"; continue; }
	t0=$(date +%s)
	if (cd "$T/tree" && env -u PYTHONPATH bash -ec "$(doc_lines "$step")") >"$T/pip-tree.log" 2>&1; then
		ok "docs/python.md: $what ($(( $(date +%s) - t0 )) s)"
		check_venv
	else
		bad "docs/python.md: $what:"; tail -20 "$T/pip-tree.log"
	fi
done

status1=$(git status --porcelain --ignored 2>&1; echo .)
[ "$status0" = "$status1" ] && ok "the worktree is as it was" || bad "the worktree changed: $(diff <(echo "$status0") <(echo "$status1"))"

echo "$checks passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# test_versions.sh -- one version everywhere: the VERSION file (the one
# source, MAJOR.MINOR.PATCH) is what include/shmbus.h's SHMBUS_VERSION_*
# say, what the library's shmbus_version() returns (through the CLI's
# `shmbus --version`), what the shared library is named after (real name
# libshmbus.so.VERSION, soname libshmbus.so.MAJOR), what python/setup.py
# names the distribution, and Python's shmbus.__version__ (when the
# extension is built: `make python`). shmbus.pc and the CMake package carry
# it too (tests/test_install.sh checks those from an installed tree).
#
#   env BUILD=build bash tests/test_versions.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
fail=0
bad() { echo "FAIL  $*"; fail=1; }
ok() { echo "ok    $*"; }

[ -f VERSION ] || { echo "FAIL  no VERSION file"; exit 1; }
V=$(cat VERSION)
[[ $V =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || { echo "FAIL  VERSION holds '$V', not MAJOR.MINOR.PATCH"; exit 1; }
MAJOR=${BASH_REMATCH[1]}
echo "VERSION: $V"

h=$(for p in MAJOR MINOR PATCH; do
	sed -n "s/^#define SHMBUS_VERSION_$p  *\([0-9][0-9]*\)$/\1/p" include/shmbus.h
done | paste -sd.)
[ "$h" = "$V" ] && ok "include/shmbus.h: $h" || bad "include/shmbus.h says '$h'"

c=$("$BUILD/shmbus" --version 2>&1)
[ "$c" = "shmbus $V" ] && ok "shmbus --version: $c" || bad "shmbus --version says '$c'"

lib=$BUILD/libshmbus.so.$V
if [ -f "$lib" ] && [ ! -L "$lib" ]; then
	so=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
	[ "$so" = "libshmbus.so.$MAJOR" ] && ok "$lib, soname $so" || bad "$lib has soname '$so'"
	for l in "libshmbus.so.$MAJOR:libshmbus.so.$V" "libshmbus.so:libshmbus.so.$MAJOR"; do
		t=$(readlink "$BUILD/${l%%:*}")
		[ "$t" = "${l#*:}" ] && ok "$BUILD/${l%%:*} -> $t" || bad "$BUILD/${l%%:*} -> '$t', not ${l#*:}"
	done
else
	bad "$lib is not built (make lib)"
fi

s=$(cd python && "$PY" setup.py --version 2>/dev/null | tail -1)
[ "$s" = "$V" ] && ok "python/setup.py --version: $s" || bad "python/setup.py --version says '$s'"

if ls python/shmbus/_shmbus*.so >/dev/null 2>&1; then
	p=$(cd python && "$PY" -c 'import shmbus; print(shmbus.__version__)' 2>&1)
	[ "$p" = "$V" ] && ok "shmbus.__version__: $p" || bad "shmbus.__version__ is '$p'"
else
	echo "note  the Python extension is not built (make python): __version__ not checked here"
fi
[ $fail -eq 0 ] && echo "test_versions: all passed"
exit $fail

#!/usr/bin/env bash
# test_install.sh -- an outside program builds and runs against the
# *installed* shmbus, the three ways C and C++ projects find libraries.
#
#   1. `make install DESTDIR=$tmp/root PREFIX=/usr` lays out the header, the
#      static library, libshmbus.so.VERSION with its soname link and
#      libshmbus.so, shmbus.pc, the CMake package and the CLI (and
#      shmbus-bridge when built); shmbus.pc names the real directories and
#      the VERSION.
#   2. A small C program (create a bus, write a state value, read it back,
#      compare shmbus_version() with the header's) is built against that
#      tree with pkg-config (PKG_CONFIG_SYSROOT_DIR), with CMake
#      (find_package(shmbus VERSION CONFIG) -> shmbus::shmbus and
#      shmbus::shmbus_static; and a C++17 one with shmbus.hpp) and with meson (dependency('shmbus')), then
#      run with LD_LIBRARY_PATH to the installed lib only (ldd must show
#      that lib); the installed CLI reads back each value.
#   3. CMake refuses a version request the installed one does not meet.
#   4. Another layout (PREFIX=/opt/sb, multiarch LIBDIR, INCLUDEDIR, BINDIR,
#      MANDIR given): everything lands where asked, shmbus.pc says so, and
#      the CMake package (relative paths) finds that tree too.
#
# Installs the plain build (build/); under another BUILD (ASan, TSan) it
# says so and stops, as that build's library needs its sanitizer's runtime.
# Needs cc, c++, pkg-config, cmake, meson, ninja (scripts/deps.sh).
#
#   env BUILD=build bash tests/test_install.sh
set -u
cd "$(dirname "$0")/.."
REPO=$PWD
BUILD=${BUILD:-build}
if [ "$BUILD" != build ]; then
	echo "skip  test_install installs the plain build; run with BUILD=build"
	exit 0
fi
V=$(cat VERSION)
MAJOR=${V%%.*}
MM=${V%.*}
for c in cc c++ pkg-config cmake meson ninja; do
	command -v $c >/dev/null || { echo "FAIL  $c is not installed (bash scripts/deps.sh)"; exit 1; }
done
TMP=$(mktemp -d /tmp/shmbus-install.XXXXXX)
BUS=t-inst-$$
trap 'rm -rf "$TMP"; rm -f /dev/shm/shmbus-$BUS-*' EXIT
fail=0
bad() { echo "FAIL  $*"; fail=1; }
ok() { echo "ok    $*"; }
step() { local what=$1 log=$TMP/log.$RANDOM; shift
	if "$@" >"$log" 2>&1; then ok "$what"; return 0; fi
	bad "$what"; tail -20 "$log" | sed 's/^/      | /'; return 1; }

R=$TMP/root
step "make install DESTDIR=\$tmp/root PREFIX=/usr" make -s install DESTDIR="$R" PREFIX=/usr || exit 1
for f in usr/include/shmbus.h usr/include/shmbus.hpp usr/lib/libshmbus.a usr/lib/libshmbus.so.$V usr/lib/pkgconfig/shmbus.pc \
	usr/lib/cmake/shmbus/shmbus-config.cmake usr/lib/cmake/shmbus/shmbus-config-version.cmake usr/bin/shmbus; do
	[ -f "$R/$f" ] || bad "not installed: /$f"
done
[ -x build/bridge/shmbus-bridge ] && { [ -x "$R/usr/bin/shmbus-bridge" ] || bad "shmbus-bridge is built but not installed"; }
[ "$(readlink "$R/usr/lib/libshmbus.so.$MAJOR")" = "libshmbus.so.$V" ] || bad "libshmbus.so.$MAJOR is not a link to libshmbus.so.$V"
[ "$(readlink "$R/usr/lib/libshmbus.so")" = "libshmbus.so.$MAJOR" ] || bad "libshmbus.so is not a link to libshmbus.so.$MAJOR"
pc=$R/usr/lib/pkgconfig/shmbus.pc
grep -qx 'prefix=/usr' "$pc" && grep -qx 'libdir=${prefix}/lib' "$pc" &&
	grep -qx 'includedir=${prefix}/include' "$pc" && grep -qx "Version: $V" "$pc" ||
	{ bad "shmbus.pc does not name /usr, /usr/lib, /usr/include and $V:"; sed 's/^/      | /' "$pc"; }
[ $fail -eq 0 ] && ok "laid out under /usr: header, libshmbus.so.$V + links, libshmbus.a, shmbus.pc ($V), CMake package, CLI"

mkdir -p "$TMP/app"
cat >"$TMP/app/app.c" <<'C'
/* app BUS VALUE: create BUS, write VALUE to its state y, read it back. */
#include <shmbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	shmbus_bus_t *bus;
	shmbus_state_t *y;
	shmbus_state_opts_t o;
	double v, got = 0;
	uint64_t seq;
	int major, minor, patch, r;

	if (argc != 3)
		return 2;
	v = atof(argv[2]);
	shmbus_version(&major, &minor, &patch);
	if (major != SHMBUS_VERSION_MAJOR || minor != SHMBUS_VERSION_MINOR || patch != SHMBUS_VERSION_PATCH) {
		fprintf(stderr, "library %d.%d.%d, header %d.%d.%d\n", major, minor, patch,
			SHMBUS_VERSION_MAJOR, SHMBUS_VERSION_MINOR, SHMBUS_VERSION_PATCH);
		return 1;
	}
	shmbus_state_opts_init(&o);
	if ((r = shmbus_bus_create(argv[1], NULL, &bus)) || (r = shmbus_state_open(bus, "y", &o, &y)) ||
	    (r = shmbus_state_write(y, &v, sizeof(v))) || (r = shmbus_state_read(y, &got, sizeof(got), &seq))) {
		fprintf(stderr, "%s: %s\n", shmbus_strerror(r), shmbus_last_error());
		return 1;
	}
	printf("%s y = %g (seq %llu, shmbus %s)\n", argv[1], got, (unsigned long long)seq,
	       shmbus_version(NULL, NULL, NULL));
	shmbus_state_close(y);
	shmbus_bus_close(bus);
	return got == v ? 0 : 1;
}
C

cat >"$TMP/app/app.cpp" <<'CPP'
// app BUS VALUE, in C++17 with shmbus.hpp
#include <shmbus.hpp>
#include <cstdio>
#include <cstdlib>

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	try {
		shmbus::Bus bus = shmbus::Bus::create(argv[1]);
		shmbus::State<double> y(bus, "y");
		y.write(std::atof(argv[2]));
		uint64_t seq;
		double got = y.read(&seq);
		std::printf("%s y = %g (seq %llu, shmbus %s, C++)\n", argv[1], got, (unsigned long long)seq,
			    shmbus::version().c_str());
		return got == std::atof(argv[2]) ? 0 : 1;
	} catch (const shmbus::error &e) {
		std::fprintf(stderr, "%d: %s\n", e.code(), e.what());
		return 1;
	}
}
CPP

# run WHAT APP VALUE: APP, with the installed lib only, makes its bus and
# writes VALUE; ldd shows the installed lib (unless static); the installed
# CLI reads VALUE back from another process; the bus is removed.
n=0
run() {
	local what=$1 app=$2 val=$3 lib=$4 out b=$BUS-$((++n))
	[ -x "$app" ] || { bad "$what: $app was not built"; return; }
	if [ -n "$lib" ]; then
		LD_LIBRARY_PATH=$lib ldd "$app" | grep -q "libshmbus.so.$MAJOR => $lib/libshmbus.so.$MAJOR" ||
			{ bad "$what: does not load $lib/libshmbus.so.$MAJOR:"; LD_LIBRARY_PATH=$lib ldd "$app" | sed 's/^/      | /'; return; }
	elif ldd "$app" | grep -q libshmbus; then
		bad "$what: linked statically, yet loads a libshmbus"; return
	fi
	out=$(LD_LIBRARY_PATH=$lib "$app" "$b" "$val" 2>&1) || { bad "$what: $out"; return; }
	got=$("$R/usr/bin/shmbus" get "$b" y 2>&1)
	"$R/usr/bin/shmbus" rm "$b" >/dev/null 2>&1
	[ "$got" = "$val" ] || { bad "$what: the installed CLI reads '$got', not $val"; return; }
	ok "$what: $out; shmbus get: $got"
}

# pkg-config, as a Makefile would use it
PC="env PKG_CONFIG_SYSROOT_DIR=$R PKG_CONFIG_LIBDIR=$R/usr/lib/pkgconfig PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 pkg-config"
[ "$($PC --modversion shmbus)" = "$V" ] || bad "pkg-config --modversion shmbus: $($PC --modversion shmbus 2>&1)"
step "pkg-config: cc app.c \$(pkg-config --cflags --libs shmbus)" \
	bash -c "cc -std=c11 -Wall -Wextra -Werror -o '$TMP/app-pc' '$TMP/app/app.c' \$($PC --cflags --libs shmbus)"
run "pkg-config build" "$TMP/app-pc" 1.5 "$R/usr/lib"

# CMake: find_package(shmbus MAJOR.MINOR CONFIG) from CMAKE_PREFIX_PATH
cat >"$TMP/app/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.13)
project(app C CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(shmbus \${WANT} CONFIG REQUIRED)
add_executable(app_cpp app.cpp)
target_link_libraries(app_cpp PRIVATE shmbus::shmbus)
add_executable(app app.c)
target_link_libraries(app PRIVATE shmbus::shmbus)
add_executable(app_static app.c)
target_link_libraries(app_static PRIVATE shmbus::shmbus_static)
CM
cmake_build() {  # cmake_build DIR PREFIX WANT
	cmake -S "$TMP/app" -B "$1" -G Ninja -DCMAKE_PREFIX_PATH="$2" -DWANT="$3" -DCMAKE_C_FLAGS="-Wall -Werror" -DCMAKE_CXX_FLAGS="-Wall -Werror" &&
		cmake --build "$1"
}
step "CMake: find_package(shmbus $MM CONFIG), shmbus::shmbus and shmbus::shmbus_static" \
	cmake_build "$TMP/cm" "$R/usr" "$MM"
run "CMake build (shmbus::shmbus)" "$TMP/cm/app" 2.5 "$R/usr/lib"
run "CMake build (shmbus::shmbus_static)" "$TMP/cm/app_static" 3.5 ""
run "CMake build of C++17 with shmbus.hpp" "$TMP/cm/app_cpp" 3.25 "$R/usr/lib"
if cmake -S "$TMP/app" -B "$TMP/cm-new" -DCMAKE_PREFIX_PATH="$R/usr" -DWANT=$((MAJOR + 1)).0 >"$TMP/cm-new.log" 2>&1; then
	bad "CMake: find_package(shmbus $((MAJOR + 1)).0 CONFIG) accepted $V"
elif grep -q "shmbus-config.cmake, version: $V" "$TMP/cm-new.log"; then
	ok "CMake: find_package(shmbus $((MAJOR + 1)).0 CONFIG) refuses the installed $V"
else
	bad "CMake: find_package(shmbus $((MAJOR + 1)).0) failed without naming the installed $V:"
	tail -15 "$TMP/cm-new.log" | sed 's/^/      | /'
fi

# meson: dependency('shmbus') through pkg-config
cat >"$TMP/app/meson.build" <<MB
project('app', 'c', default_options: ['warning_level=2', 'werror=true'])
executable('app', 'app.c', dependencies: dependency('shmbus', version: '>=$MM'))
MB
step "meson: dependency('shmbus', version: '>=$MM')" \
	env PKG_CONFIG_SYSROOT_DIR="$R" PKG_CONFIG_LIBDIR="$R/usr/lib/pkgconfig" \
	PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 \
	bash -c "meson setup '$TMP/ms' '$TMP/app' && ninja -C '$TMP/ms'"
run "meson build" "$TMP/ms/app" 4.5 "$R/usr/lib"

# Another layout: every directory given
R2=$TMP/root2
ARCH=$(gcc -dumpmachine)
step "make install PREFIX=/opt/sb LIBDIR=/opt/sb/lib/$ARCH INCLUDEDIR=/opt/sb/include/sb BINDIR=/opt/sb/sbin MANDIR=/opt/sb/man" \
	make -s install DESTDIR="$R2" PREFIX=/opt/sb LIBDIR=/opt/sb/lib/$ARCH INCLUDEDIR=/opt/sb/include/sb \
	BINDIR=/opt/sb/sbin MANDIR=/opt/sb/man
L2=$R2/opt/sb/lib/$ARCH
for f in "$L2/libshmbus.so.$V" "$L2/libshmbus.a" "$L2/pkgconfig/shmbus.pc" "$L2/cmake/shmbus/shmbus-config.cmake" \
	"$R2/opt/sb/include/sb/shmbus.h" "$R2/opt/sb/sbin/shmbus"; do
	[ -f "$f" ] || bad "not installed: ${f#$R2}"
done
[ -e "$R2/opt/sb/lib/libshmbus.so.$V" ] && bad "installed into PREFIX/lib although LIBDIR was given"
# the man pages, built from man/*.scd when scdoc is there (docs/install.md)
if command -v scdoc >/dev/null 2>&1; then
	for f in man1/shmbus.1 man1/shmbus-bridge.1 man3/libshmbus.3 man7/shmbus.7; do
		[ -f "$R2/opt/sb/man/$f" ] || bad "not installed: /opt/sb/man/$f (MANDIR)"
	done
fi
grep -qx "libdir=\${prefix}/lib/$ARCH" "$L2/pkgconfig/shmbus.pc" &&
	grep -qx 'includedir=${prefix}/include/sb' "$L2/pkgconfig/shmbus.pc" ||
	{ bad "shmbus.pc does not name the given LIBDIR and INCLUDEDIR:"; sed 's/^/      | /' "$L2/pkgconfig/shmbus.pc"; }
step "CMake finds the multiarch tree (CMAKE_PREFIX_PATH=\$tmp/root2/opt/sb)" \
	cmake_build "$TMP/cm2" "$R2/opt/sb" "$MM"
run "CMake build against /opt/sb/lib/$ARCH" "$TMP/cm2/app" 5.5 "$L2"
step "make uninstall leaves no shmbus file" bash -c "make -s uninstall DESTDIR='$R2' PREFIX=/opt/sb LIBDIR=/opt/sb/lib/$ARCH \
	INCLUDEDIR=/opt/sb/include/sb BINDIR=/opt/sb/sbin MANDIR=/opt/sb/man && ! find '$R2' -type f -o -type l | grep ."

[ $fail -eq 0 ] && echo "test_install: all passed"
exit $fail

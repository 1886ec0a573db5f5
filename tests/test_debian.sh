#!/usr/bin/env bash
# test_debian.sh -- the Debian packages build, are lintian clean, install,
# and work installed, as a user of them would use them.
#
#   1. copies the tree (the files git tracks or would track, so uncommitted
#      changes are tested too) to a temporary directory and builds there
#      with `dpkg-buildpackage -b -us -uc`: the worktree is never written;
#   2. checks that the four packages came out, each with the version of
#      the VERSION file, and runs lintian on them (no error, no warning);
#   3. installs libshmbus1, libshmbus-dev, shmbus-tools and python3-shmbus:
#      as root with `apt-get install ./*.deb` (then purges them, and
#      whatever that install pulled in, at exit, even on failure or
#      Ctrl+C), otherwise unpacked into a throwaway root;
#   4. from the installed files only, outside the source tree: runs
#      `shmbus --help` and `--version`, renders the installed man pages,
#      builds a C program against libshmbus-dev with pkg-config (shared,
#      and static with --static) that writes a value, reads it back with
#      the installed `shmbus get`, and with /usr/bin/python3 imports the
#      installed shmbus package, reads the C program's value and writes
#      one that the CLI reads.
#
# Skips (exit 0, saying so) only when dpkg-buildpackage is missing and
# cannot be installed (not root, no sudo). The other build tools are
# installed by scripts/deps.sh when missing. SHMBUS_DEB_MODE=extract uses
# the throwaway root even as root.
#
#   bash tests/test_debian.sh
set -u
cd "$(dirname "$0")/.."
SRC=$PWD
V=$(cat VERSION)
PKGS=(libshmbus1 libshmbus-dev shmbus-tools python3-shmbus)
fail=0; checks=0
bad() { echo "FAIL  $*"; fail=$((fail + 1)); }
ok() { checks=$((checks + 1)); echo "ok    $*"; }
can_install() { [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; }

if ! command -v dpkg-buildpackage >/dev/null 2>&1; then
	if ! can_install; then
		echo "SKIP  dpkg-buildpackage is not installed and cannot be installed here (not root, no sudo): the Debian packages are not tested"
		exit 0
	fi
	bash scripts/deps.sh || { echo "FAIL  scripts/deps.sh could not install the build tools"; exit 1; }
fi
if ! dpkg-checkbuilddeps >/dev/null 2>&1 || ! command -v lintian >/dev/null 2>&1; then
	bash scripts/deps.sh || { echo "FAIL  scripts/deps.sh could not install the build dependencies"; exit 1; }
	dpkg-checkbuilddeps || { echo "FAIL  build dependencies missing after scripts/deps.sh (debian/control and scripts/deps.sh disagree)"; exit 1; }
fi

MODE=${SHMBUS_DEB_MODE:-}
[ -z "$MODE" ] && { [ "$(id -u)" -eq 0 ] && MODE=apt || MODE=extract; }
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
T=$(mktemp -d /tmp/shmbus-deb.XXXXXX)
BUS=t-deb-$$
installed_by_us=0

uninstall() {
	[ $installed_by_us -eq 1 ] || return 0
	installed_by_us=0
	# ours, and what their install brought in (nothing else: another
	# process may install packages meanwhile), so the machine's package set
	# is as it was
	apt-get purge -y -qq -o DPkg::Lock::Timeout=300 "${PKGS[@]}" $(cat "$T/pulled") >"$T/purge.log" 2>&1 \
		|| { bad "apt-get purge ${PKGS[*]} $(cat "$T/pulled"):"; tail -5 "$T/purge.log"; }
	left=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${PKGS[@]}" $(cat "$T/pulled") 2>/dev/null \
		| awk '$1 != "un" && $1 != "pn" { print $2 }')
	[ -z "$left" ] && ok "purged ${PKGS[*]} $(cat "$T/pulled")" || bad "still installed after the purge: $left"
}
cleanup() {
	rc=$?
	rm -f "/dev/shm/shmbus-$BUS"
	uninstall
	rm -rf "$T"
	[ $fail -eq 0 ] || [ $rc -ne 0 ] || rc=1
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. build from a copy
mkdir -p "$T/src/shmbus-$V"
status0=; ingit=0
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	ingit=1
	status0=$(git status --porcelain --ignored 2>&1; echo .)
	status0=${status0%.}
	git ls-files -z -c -o --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$T/src/shmbus-$V"
else
	tar --exclude='./build*' --exclude=./.git --exclude='./python/build' -cf - . | tar -xf - -C "$T/src/shmbus-$V"
fi
t0=$(date +%s)
if (cd "$T/src/shmbus-$V" && dpkg-buildpackage -b -us -uc) >"$T/build.log" 2>&1; then
	ok "dpkg-buildpackage -b -us -uc ($(( $(date +%s) - t0 )) s)"
else
	bad "dpkg-buildpackage failed:"; tail -30 "$T/build.log"; exit 1
fi
debs=()
for p in "${PKGS[@]}"; do
	d=$(ls "$T/src/${p}_"*.deb 2>/dev/null | head -1)
	if [ -z "$d" ]; then bad "no package $p was built"; continue; fi
	pv=$(dpkg-deb -f "$d" Version)
	[ "$pv" = "$V" ] && ok "$p $pv" || bad "$p has version $pv, VERSION says $V"
	debs+=("$d")
done
[ ${#debs[@]} -eq ${#PKGS[@]} ] || exit 1
if [ $ingit -eq 1 ]; then
	now=$(git status --porcelain --ignored 2>&1; echo .)
	[ "${now%.}" = "$status0" ] && ok "the worktree is as it was" \
		|| bad "building the packages changed the worktree: $(git status --porcelain --ignored | head -5)"
fi

# 2. lintian, at its default level: nothing at all (errors and warnings;
# overrides, if any, live in debian/*.lintian-overrides with their reason)
if lintian --fail-on error,warning "$T/src/shmbus_${V}_"*.changes >"$T/lintian.log" 2>&1 \
	&& ! grep -qE '^[EW]: ' "$T/lintian.log"; then
	ok "lintian"
else
	bad "lintian:"; grep -E '^[EWI]: |rror' "$T/lintian.log" | head -20
fi

# 3. install
if [ "$MODE" = apt ]; then
	for p in "${PKGS[@]}"; do
		if dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^[a-z]i'; then
			bad "$p is already installed on this machine; this test would replace it (remove it first: apt-get purge ${PKGS[*]})"
			exit 1
		fi
	done
	# what the install will do: it may add the dependencies that are
	# missing (purged again at exit), it must not remove anything
	apt-get install -s --no-install-recommends "${debs[@]}" >"$T/sim.log" 2>&1 \
		|| { bad "apt-get install -s:"; tail -20 "$T/sim.log"; exit 1; }
	if grep -q '^Remv ' "$T/sim.log"; then
		bad "installing the packages would remove:" $(awk '/^Remv / { print $2 }' "$T/sim.log"); exit 1
	fi
	awk '/^Inst / { print $2 }' "$T/sim.log" | grep -vxF -f <(printf '%s\n' "${PKGS[@]}") >"$T/pulled" || true
	[ -s "$T/pulled" ] && echo "note: the install pulls in (purged at exit):" $(cat "$T/pulled")
	installed_by_us=1
	if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		-o DPkg::Lock::Timeout=300 "${debs[@]}" >"$T/install.log" 2>&1; then
		ok "apt-get install ./*.deb"
	else
		bad "apt-get install:"; tail -20 "$T/install.log"; exit 1
	fi
	R=
	export PATH=/usr/bin:$PATH
else
	R=$T/root
	for d in "${debs[@]}"; do dpkg-deb -x "$d" "$R"; done
	ok "unpacked into the throwaway root $R"
	export PATH=$R/usr/bin:$PATH LD_LIBRARY_PATH=$R/usr/lib/$MA
	export PKG_CONFIG_SYSROOT_DIR=$R PKG_CONFIG_LIBDIR=$R/usr/lib/$MA/pkgconfig
	export PYTHONPATH=$R/usr/lib/python3/dist-packages
fi
cd "$T"         # outside the source tree from here on

# 4a. the CLI and the man pages
cli=$(command -v shmbus)
[ "$cli" = "$R/usr/bin/shmbus" ] && ok "shmbus is $cli" || bad "shmbus is '$cli', not the installed $R/usr/bin/shmbus"
if shmbus --help >help.txt 2>&1 && grep -q '^Commands:' help.txt; then ok "shmbus --help"; else bad "shmbus --help:"; head -5 help.txt; fi
out=$(shmbus --version 2>&1)
case $out in *"$V"*) ok "shmbus --version: $out";; *) bad "shmbus --version says '$out', not $V";; esac
[ -x "$R/usr/bin/shmbus-bridge" ] && ok "shmbus-bridge installed" || bad "shmbus-bridge is not in shmbus-tools"
for m in man1/shmbus.1 man1/shmbus-bridge.1 man7/shmbus.7 man3/libshmbus.3; do
	f=$R/usr/share/man/$m.gz
	if [ ! -f "$f" ]; then bad "$m is not installed"; continue; fi
	LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$f" >page.txt 2>page.err
	if [ -s page.txt ] && [ ! -s page.err ]; then ok "man -l $m"; else bad "man -l $m:"; head -5 page.err; fi
done
if [ "$MODE" = apt ]; then
	w=$(man -w shmbus 2>&1)
	[ "$w" = /usr/share/man/man1/shmbus.1.gz ] && ok "man -w shmbus: $w" || bad "man -w shmbus says '$w'"
fi

# 4b. a C program built against libshmbus-dev with pkg-config
cat >writer.c <<'EOF'
#include <stdio.h>
#include <string.h>
#include <shmbus.h>

int main(int argc, char **argv)
{
	shmbus_bus_t *bus;
	shmbus_state_t *st;
	double y = 2.5;
	int major, rc;

	if (argc != 2)
		return 2;
	/* the library it runs with is the one it was compiled for */
	if (strcmp(shmbus_version(&major, NULL, NULL), VERSION) || major != SHMBUS_VERSION_MAJOR) {
		fprintf(stderr, "library %s, header %d.%d.%d, expected %s\n", shmbus_version(NULL, NULL, NULL),
			SHMBUS_VERSION_MAJOR, SHMBUS_VERSION_MINOR, SHMBUS_VERSION_PATCH, VERSION);
		return 1;
	}
	rc = shmbus_bus_open_or_create(argv[1], NULL, &bus, NULL);
	if (rc == 0) {
		rc = shmbus_state_open(bus, "y", NULL, &st);
		if (rc == 0) {
			rc = shmbus_state_write(st, &y, sizeof(y));
			shmbus_state_close(st);
		}
		shmbus_bus_close(bus);
	}
	if (rc < 0)
		fprintf(stderr, "writer: %s: %s\n", shmbus_strerror(rc), shmbus_last_error());
	return rc < 0;
}
EOF
# shellcheck disable=SC2046
if cc -Wall -Wextra -Werror -DVERSION="\"$V\"" $(pkg-config --cflags shmbus) -o writer writer.c $(pkg-config --libs shmbus) 2>cc.err; then
	ok "cc writer.c \$(pkg-config --cflags --libs shmbus)"
else
	bad "building against the installed libshmbus-dev:"; cat cc.err
fi
so=$(ldd ./writer 2>/dev/null | awk '$1 == "libshmbus.so.1" { print $3 }')
# (compared resolved: with merged /usr, the loader names /lib/MA)
[ -n "$so" ] && [ "$(readlink -f "$so")" = "$(readlink -f "$R/usr/lib/$MA/libshmbus.so.1")" ] \
	&& ok "writer runs with $so" || bad "writer links '$so', not $R/usr/lib/$MA/libshmbus.so.1"
if ./writer "$BUS" 2>run.err; then ok "writer ran"; else bad "writer:"; cat run.err; fi
got=$(shmbus get "$BUS" y 2>&1)
[ "$got" = 2.5 ] && ok "shmbus get reads the C program's value: $got" || bad "shmbus get $BUS y says '$got', not 2.5"
# shellcheck disable=SC2046
if cc -DVERSION="\"$V\"" $(pkg-config --cflags shmbus) -o writer-static writer.c \
	$(pkg-config --static --libs shmbus | sed 's/-lshmbus\b/-l:libshmbus.a/') 2>cc.err \
	&& ! ldd ./writer-static | grep -q libshmbus && ./writer-static "$BUS"; then
	ok "static link with libshmbus.a and pkg-config --static"
else
	bad "static link:"; cat cc.err
fi

# 4c. python3-shmbus with Debian's python3
cat >check.py <<EOF
import os, sys
import shmbus
root = os.environ.get("R", "")
where = os.path.dirname(shmbus.__file__)
assert where == root + "/usr/lib/python3/dist-packages/shmbus", "imported from " + where
assert shmbus.__version__ == "$V", shmbus.__version__
bus = shmbus.Bus("$BUS")
y = bus.state("y", create=False)
assert float(y.read()) == 2.5, y.read()
z = bus.state("z")
z.write(7.25)
bus.close()
print("python3-shmbus", shmbus.__version__, "from", where)
EOF
if R=$R /usr/bin/python3 -s check.py >py.out 2>&1; then ok "$(cat py.out)"; else bad "python3-shmbus:"; cat py.out; fi
got=$(shmbus get "$BUS" z 2>&1)
[ "$got" = 7.25 ] && ok "shmbus get reads Python's value: $got" || bad "shmbus get $BUS z says '$got', not 7.25"
shmbus rm "$BUS" >/dev/null 2>&1 || bad "shmbus rm $BUS"
cd "$SRC"
uninstall

echo "$checks passed, $fail failed"
[ $fail -eq 0 ]

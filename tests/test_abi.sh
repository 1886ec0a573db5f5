#!/usr/bin/env bash
# test_abi.sh -- the shared library exports exactly the functions it should.
#
# Compares what $BUILD/libshmbus.so.VERSION exports (nm -D --defined-only,
# with symbol versions) with the committed list src/libshmbus.symbols, so an
# accidental export (an internal sb_* function, a test hook) or a removed
# function fails here rather than in a user's program. Also: every exported
# name is a function declared in include/shmbus.h and every function
# declared there is exported; every export carries a version node of
# src/libshmbus.map; the soname is libshmbus.so.MAJOR; the kill-point hook
# of the test library is not in it.
#
# When a change of the list is intended:
#   - a new function: declare it in include/shmbus.h, put it in a new node
#     of src/libshmbus.map named after the release that adds it (never in
#     an old node), then `bash tests/test_abi.sh --update` rewrites
#     src/libshmbus.symbols from the built library; commit both.
#   - a removed or renamed function (or a changed signature, which this
#     list cannot see): a new major version, hence a new soname.
#
#   env BUILD=build bash tests/test_abi.sh [--update]
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
V=$(cat VERSION)
LIB=$BUILD/libshmbus.so.$V
LIST=src/libshmbus.symbols
[ -f "$LIB" ] || { echo "FAIL  $LIB is not built (make lib)"; exit 1; }
fail=0
bad() { echo "FAIL  $*"; fail=1; }

exported() {
	nm -D --defined-only --with-symbol-versions "$LIB" | awk '$2 != "A" { print $3 }' | LC_ALL=C sort
}

if [ "${1:-}" = --update ]; then
	{
		echo "# The functions libshmbus.so exports, with their version nodes."
		echo "# Checked by tests/test_abi.sh; rewritten by"
		echo "# \`bash tests/test_abi.sh --update\` when a change is intended (see there)."
		exported
	} >"$LIST"
	echo "wrote $LIST: $(grep -vc '^#' "$LIST") symbols"
	exit 0
fi

so=$(readelf -d "$LIB" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$so" = "libshmbus.so.${V%%.*}" ] || bad "soname is '$so', not libshmbus.so.${V%%.*}"

got=$(exported)
want=$(grep -v '^#' "$LIST" | grep -v '^$' | LC_ALL=C sort)
extra=$(LC_ALL=C comm -23 <(echo "$got") <(echo "$want"))
gone=$(LC_ALL=C comm -13 <(echo "$got") <(echo "$want"))
[ -z "$extra" ] || bad "exported but not in $LIST (an accidental export, or a new function: see tests/test_abi.sh):" $extra
[ -z "$gone" ] || bad "in $LIST but no longer exported (a removal breaks programs linked before):" $gone

unversioned=$(echo "$got" | grep -v '@@\?SHMBUS_' || true)
[ -z "$unversioned" ] || bad "exported without a version node of src/libshmbus.map:" $unversioned
notours=$(echo "$got" | grep -v '^shmbus_' || true)
[ -z "$notours" ] || bad "exported without the shmbus_ prefix:" $notours

# No test switch in the installed library: the kill-point hook (src/fault.c,
# SHMBUS_FAULT_INJECT) lives only in the test library, not even as a local.
hook=$(nm "$LIB" | awk '{ print $NF }' | grep '^sb_fault_' || true)
[ -z "$hook" ] || bad "the kill-point hook is in the shared library:" $hook

names=$(echo "$got" | sed 's/@.*//' | LC_ALL=C sort -u)
declared=$(grep -o '\bshmbus_[a-z0-9_]*(' include/shmbus.h | tr -d '(' | LC_ALL=C sort -u)
undeclared=$(LC_ALL=C comm -23 <(echo "$names") <(echo "$declared"))
missing=$(LC_ALL=C comm -13 <(echo "$names") <(echo "$declared"))
[ -z "$undeclared" ] || bad "exported but not declared in include/shmbus.h:" $undeclared
[ -z "$missing" ] || bad "declared in include/shmbus.h but not exported:" $missing

if [ $fail -eq 0 ]; then
	echo "$LIB (soname $so): $(echo "$got" | wc -l) symbols, as $LIST lists; all declared in include/shmbus.h"
	echo "test_abi: all passed"
fi
exit $fail

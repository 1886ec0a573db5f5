#!/bin/bash
# test_multiuser.sh -- a bus shared by a group of users, through the CLI and
# Python, run as real other users (setpriv), as docs/design.md's "Buses
# shared by several users" recipe says:
#
#   creator (uid 65534, group 65534):  shmbus create --mode 0660 BUS
#   member  (uid 65533, group 65534):  refused by default (exit 4, a message
#                                      naming --allow-foreign-owner); with
#                                      --allow-foreign-owner (before or after
#                                      the command) info/get/put/ls work, and
#                                      Python's Bus(..., allow_foreign_owner=True)
#   outsider (uid 65532, other group): refused by the file's mode even with
#                                      the opt-in
#
# Needs root (to act as those users) and setpriv; otherwise it says SKIP and
# exits 0.
#   env BUILD=build bash tests/test_multiuser.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
S=$(readlink -f "$BUILD/shmbus")
PYDIR=$(readlink -f python)
[ -x "$S" ] || { echo "FAIL: $S is not built"; exit 1; }
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
	echo "SKIP: needs root and setpriv to run as other users"
	exit 0
fi

B=t-mu-$$
CREATOR=(setpriv --reuid=65534 --regid=65534 --clear-groups)
MEMBER=(setpriv --reuid=65533 --regid=65534 --clear-groups)
OUTSIDER=(setpriv --reuid=65532 --regid=65532 --clear-groups)
TMP=$(mktemp -d /tmp/test_multiuser.XXXXXX)
chmod 755 "$TMP"
pass=0; fail=0

cleanup() { rm -f "/dev/shm/shmbus-$B"; rm -rf "$TMP"; }
trap cleanup EXIT

# as WHO ARGS...: run shmbus as that user (from a directory all can enter);
# sets rc, and the output in $TMP/out, $TMP/err.
as() {
	local -n who=$1; shift
	last="$*"
	(cd "$TMP" && "${who[@]}" "$S" "$@") >"$TMP/out" 2>"$TMP/err"
	rc=$?
}
ok() { pass=$((pass+1)); echo "ok    $1"; }
bad() {
	fail=$((fail+1)); echo "FAIL  $1 (last: shmbus $last; exit $rc)"
	sed 's/^/      out| /' "$TMP/out"; sed 's/^/      err| /' "$TMP/err"
}
expect() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
code() { [ "$rc" -eq "$1" ]; }
out_is() { [ "$(cat "$TMP/out")" = "$1" ]; }
err_has() { grep -qE -- "$1" "$TMP/err"; }

as CREATOR create --mode 0660 --size 1M "$B"
expect "the creator makes a group bus" code 0
expect "it is the creator's, mode 0660" [ "$(stat -c '%u %a' "/dev/shm/shmbus-$B")" = "65534 660" ]
as CREATOR put --create "$B" y 1.5
expect "the creator writes y" code 0

as MEMBER info "$B"
expect "a group member is refused by default (exit 4)" code 4
expect "... saying whose bus it is" err_has "owned by uid 65534"
expect "... and how to accept it" err_has "--allow-foreign-owner"

as MEMBER --allow-foreign-owner info "$B"
expect "with --allow-foreign-owner before the command, info works" code 0
as MEMBER get --allow-foreign-owner "$B" y
expect "with it after the command, get reads the creator's value" out_is "1.5"
as MEMBER --allow-foreign-owner put "$B" y 2.5
expect "the member writes" code 0
as CREATOR get "$B" y
expect "the creator reads the member's value" out_is "2.5"
as MEMBER --allow-foreign-owner ls --json
expect "ls with the opt-in sees the bus as healthy" \
	/usr/bin/python3 -c "import json,sys; L=json.load(open('$TMP/out')); L=L if isinstance(L, list) else L['buses']; b=[x for x in L if x['name']=='$B']; sys.exit(0 if b and b[0]['status'] != 'bad' else 1)"

as OUTSIDER --allow-foreign-owner info "$B"
expect "a user outside the group is refused by the file's mode (exit 4)" code 4
expect "... as permission denied" err_has "[Pp]ermission"

# Python, as the member (the extension is built by `make python`, which
# scripts/test.sh runs before this test).
if ! ls "$PYDIR"/shmbus/_shmbus*.so >/dev/null 2>&1; then
	echo "SKIP: the Python part (the extension is not built; make python)"
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit
fi
pyrun() {
	(cd "$TMP" && "${MEMBER[@]}" env PYTHONPATH="$PYDIR" /usr/bin/python3 -c "$1") \
		>"$TMP/out" 2>"$TMP/err"
	rc=$?
}
last="python as the member"
pyrun "
import shmbus
try:
    shmbus.Bus('$B')
except shmbus.PermissionDenied as e:
    assert e.code == shmbus.EPERM and 'allow_foreign_owner=True' in str(e), str(e)
    print('refused')
"
expect "Python: Bus() refuses a group bus with PermissionDenied naming the keyword" out_is "refused"
pyrun "
import shmbus
with shmbus.Bus('$B', allow_foreign_owner=True) as bus:
    y = bus.state('y')
    print(y.read())
    y.write(3.5)
"
expect "Python: Bus(..., allow_foreign_owner=True) reads and writes" out_is "2.5"
as CREATOR get "$B" y
expect "the creator reads the Python member's value" out_is "3.5"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

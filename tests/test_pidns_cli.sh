#!/usr/bin/env bash
# test_pidns_cli.sh -- the `shmbus` command across pid namespaces, as a user
# with containers that share /dev/shm would meet it.
#
# A writer (tests/multiproc/cli_writer) runs under
#   unshare --pid --fork --mount --mount-proc
# (pid 1 in its own pid namespace) and keeps writing. From the root
# namespace: `shmbus ls` and `info` show the bus live with 1 live peer,
# `shmbus put` to its channel is refused (exit 5, writer role held), `rm` is
# refused, `gc` keeps the bus. Then the other way round: the writer in the
# root namespace, the command in a new pid namespace: the same. After the
# writer's SIGKILL: stale, `put` takes the role (exit 0), `gc` removes it.
# Needs root for unshare; without it prints SKIP and passes.
#
#   env BUILD=build bash tests/test_pidns_cli.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
S=$(realpath "$BUILD/shmbus")
W=$(realpath "$BUILD/tests/multiproc/cli_writer")
for f in "$S" "$W"; do
	[ -x "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done
if ! unshare --pid --fork --mount --mount-proc true 2>/dev/null; then
	echo "SKIP: unshare --pid --fork --mount --mount-proc is refused here (needs root)"
	exit 0
fi

B=t-pidcli-$$
TMP=$(mktemp -d /tmp/test_pidns_cli.XXXXXX)
pass=0; fail=0; pids=()

cleanup() {
	local p
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -f "/dev/shm/shmbus-$B"
	rm -rf "$TMP"
}
trap cleanup EXIT

# run [ns] ARGS...: the shmbus command (in a new pid namespace with "ns")
run() {
	if [ "$1" = ns ]; then
		shift
		unshare --pid --fork --mount --mount-proc "$S" "$@" >"$TMP/out" 2>"$TMP/err"
	else
		"$S" "$@" >"$TMP/out" 2>"$TMP/err"
	fi
	rc=$?
}
expect() {  # expect WHAT COND...
	local what=$1; shift
	if "$@"; then
		pass=$((pass + 1)); echo "ok    $what"
	else
		fail=$((fail + 1)); echo "FAIL  $what (exit $rc)"
		sed 's/^/      out: /' "$TMP/out"; sed 's/^/      err: /' "$TMP/err"
	fi
}
out_has() { grep -Eq "$1" "$TMP/out"; }
exists() { [ -e "/dev/shm/shmbus-$B" ]; }

# start_writer [ns]: cli_writer on $B, in a new pid namespace with "ns";
# sets WPID to the writer's pid in our namespace.
start_writer() {
	rm -f "/dev/shm/shmbus-$B"
	if [ "${1:-}" = ns ]; then
		unshare --pid --fork --mount --mount-proc "$W" "$B" 20 600 >"$TMP/w.out" 2>&1 &
		local u=$! i
		pids+=("$u")
		for i in $(seq 1 100); do
			WPID=$(cat "/proc/$u/task/$u/children" 2>/dev/null | awk '{print $1}')
			[ -n "$WPID" ] && break
			sleep 0.05
		done
	else
		"$W" "$B" 20 600 >"$TMP/w.out" 2>&1 &
		WPID=$!
	fi
	pids+=("$WPID")
	for i in $(seq 1 200); do
		grep -q ready "$TMP/w.out" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "FAIL  writer did not start"; cat "$TMP/w.out"; exit 1
}

live_checks() {  # live_checks WHERE [ns]: the command judges the writer alive
	local where=$1 ns=${2:-}
	run $ns ls
	expect "$where: ls shows the bus live (1/1)" out_has "^$B +.* 1/1 +live$"
	run $ns info "$B"
	expect "$where: info says live" out_has "^bus $B: .*, live$"
	run $ns put "$B" y 7
	expect "$where: put refused, writer role held (exit 5)" test $rc -eq 5
	run $ns rm "$B"
	expect "$where: rm refused while the writer lives (exit 5)" eval "test $rc -eq 5 && exists"
	run $ns gc "$B"
	expect "$where: gc keeps the live bus" eval "test $rc -eq 0 && exists"
	expect "$where: the writer still runs" kill -0 "$WPID"
}

dead_checks() {  # dead_checks WHERE [ns]: after the writer's SIGKILL
	local where=$1 ns=${2:-}
	kill -KILL "$WPID"
	wait "$WPID" 2>/dev/null
	for _ in $(seq 1 100); do kill -0 "$WPID" 2>/dev/null || break; sleep 0.05; done
	run $ns info "$B"
	expect "$where: info says stale after SIGKILL" out_has "^bus $B: .*, stale$"
	run $ns put "$B" y 7
	expect "$where: put takes the dead writer's role (exit 0)" test $rc -eq 0
	run $ns gc "$B"
	expect "$where: gc removes the stale bus" eval "test $rc -eq 0 && ! exists"
}

echo "== writer in a new pid namespace, shmbus in ours"
start_writer ns
live_checks "writer pid 1 elsewhere"
dead_checks "writer pid 1 elsewhere"

echo "== writer in ours, shmbus in a new pid namespace"
start_writer
live_checks "shmbus elsewhere" ns
dead_checks "shmbus elsewhere" ns

echo "test_pidns_cli: $pass passed, $fail failed"
[ $fail -eq 0 ]

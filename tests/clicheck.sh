# clicheck.sh -- the check helpers of the CLI's shell tests (sourced by
# tests/test_cli.sh and tests/test_watch.sh). The sourcing script sets S
# (the shmbus binary), TMP (a scratch directory), pass=0 and fail=0.

# run ARGS...: run shmbus; sets rc, out, err (stdin passes through).
run() {
	last="$*"
	"$S" "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?
	out=$(cat "$TMP/out"); err=$(cat "$TMP/err")
}
ok() { pass=$((pass+1)); echo "ok    $1"; }
bad() {
	fail=$((fail+1))
	echo "FAIL  $1"
	echo "      command: shmbus $last"
	echo "      exit code: $rc"
	echo "      stdout: $(head -c 1200 "$TMP/out" | sed '2,$s/^/              /')"
	echo "      stderr: $(head -c 800 "$TMP/err" | sed '2,$s/^/              /')"
}
# expect NAME CMD...: a check on the last run; passes if CMD succeeds.
expect() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
code() { [ "$rc" -eq "$1" ]; }
out_is() { [ "$out" = "$1" ]; }
out_has() { grep -qE -- "$1" "$TMP/out"; }
err_has() { grep -qE -- "$1" "$TMP/err"; }
exists() { [ -e "/dev/shm/shmbus-$1" ]; }

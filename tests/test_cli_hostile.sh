#!/usr/bin/env bash
# test_cli_hostile.sh -- the `shmbus` command facing names and files it did
# not make, as any local user can leave them in /dev/shm.
#
# Proves: looking never deletes (`ls`, `ls --json`, `info`, `gc --dry-run`
# leave a bus named like a temporary file, `rv.tmp-999999`, in place);
# a creator's abandoned temporary file is never listed, and only `gc`
# without --dry-run removes it (never one whose creator lives); names and
# reasons from /dev/shm and from segments reach the terminal escaped (no
# control byte, no invalid UTF-8, no C1 control on stdout or stderr) and
# `--json` stays valid JSON; a `file:` bus whose file grew is reported as
# grown, not as truncated.
#
# `gc` without BUS walks every bus in /dev/shm, so the test runs in a
# private /dev/shm (a mount namespace, `unshare -rm`) when it can; without
# one, the checks of `gc` without BUS are skipped (said so in the output).
#
#   env BUILD=build bash tests/test_cli_hostile.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [ -z "${SHMBUS_T_PRIVATE:-}" ]; then
	if unshare -rm true 2>/dev/null; then
		exec env SHMBUS_T_PRIVATE=1 unshare -rm bash -c \
			'mount -t tmpfs -o size=64m shmbus-test /dev/shm 2>/dev/null || export SHMBUS_T_PRIVATE=0; exec bash "$0"' "$0"
	fi
	export SHMBUS_T_PRIVATE=0
fi
S=$BUILD/shmbus
PY=/usr/bin/python3
[ -x "$S" ] || { echo "FAIL: $S is not built"; exit 1; }

P=t-clih-$$
TMP=$(mktemp -d /tmp/test_cli_hostile.XXXXXX)
pass=0; fail=0

cleanup() {
	rm -f /dev/shm/shmbus-"$P"* /dev/shm/shmbus-.tmp-*-"$P"*
	rm -rf "$TMP"
}
trap cleanup EXIT

run() {
	last="$*"
	"$S" "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?
}
ok() { pass=$((pass+1)); echo "ok    $1"; }
bad() {
	fail=$((fail+1))
	echo "FAIL  $1"
	echo "      command: shmbus $last"
	echo "      exit code: $rc"
	echo "      stdout: $(head -c 600 "$TMP/out" | od -c | head -8 | sed '2,$s/^/              /')"
	echo "      stderr: $(head -c 600 "$TMP/err" | od -c | head -8 | sed '2,$s/^/              /')"
}
expect() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
code() { [ "$rc" -eq "$1" ]; }
out_has() { grep -qaE -- "$1" "$TMP/out"; }
err_has() { grep -qaE -- "$1" "$TMP/err"; }
exists() { [ -e "/dev/shm/shmbus-$1" ]; }
json() { "$PY" -c "import json,sys; d=json.load(open('$TMP/out')); sys.exit(0 if ($1) else 1)" 2>>"$TMP/err"; }
# clean FILE: nothing a terminal acts on: no C0 control but newline, no
# DEL, valid UTF-8, no C1 control (U+0080..U+009F).
clean() {
	"$PY" - "$1" <<'EOF'
import sys
b = open(sys.argv[1], 'rb').read()
bad = [c for c in b if (c < 0x20 and c != 0x0a) or c == 0x7f]
try:
    t = b.decode('utf-8')
except UnicodeDecodeError as e:
    sys.exit('invalid UTF-8: %s' % e)
c1 = [ch for ch in t if 0x80 <= ord(ch) <= 0x9f]
sys.exit('control bytes %r, C1 %r' % (bad, c1) if bad or c1 else 0)
EOF
}
both_clean() { clean "$TMP/out" 2>>"$TMP/err" && clean "$TMP/err" 2>/dev/null; }

echo "== looking never deletes"
R=$P.tmp-999999                  # a bus named like an old temporary file
run create "$R"
expect "create a bus named like a temporary file" code 0
run ls
expect "ls lists it" eval "code 0 && out_has '^$R '"
expect "ls leaves it in /dev/shm" exists "$R"
run ls --json
expect "ls --json lists it and leaves it" eval "json \"any(b['name']=='$R' for b in d)\" && exists $R"
run gc --dry-run
expect "gc --dry-run leaves it" eval "code 0 && exists $R"
run gc --dry-run "$R"
expect "gc --dry-run BUS leaves it" eval "code 0 && exists $R"
run info "$R"
expect "info still opens it" eval "code 0 && out_has '^bus $R'"

echo "== a dead creator's temporary file"
T=/dev/shm/shmbus-.tmp-999999-1f-$P      # pid 999999 is above any pid_max
L=/dev/shm/shmbus-.tmp-$$-2f-$P          # its creator (this shell) lives
head -c 4096 /dev/zero >"$T"; head -c 4096 /dev/zero >"$L"
run ls --json
expect "ls does not list a temporary file" eval "json \"not any('.tmp' in b['name'] and '$P' in b['name'] and b['name'] != '$R' for b in d)\""
expect "ls leaves the temporary files" eval "[ -e $T ] && [ -e $L ]"
run gc --dry-run
expect "gc --dry-run counts the dead creator's file, removes nothing" \
	eval "code 0 && out_has 'would remove [0-9]+ temporary file' && [ -e $T ] && [ -e $L ]"
if [ "$SHMBUS_T_PRIVATE" = 1 ]; then
	run gc
	expect "gc removes the dead creator's file, keeps a live one's and the bus" \
		eval "code 0 && out_has 'removed 1 temporary file' && [ ! -e $T ] && [ -e $L ] && exists $R"
else
	echo "skip  gc without BUS (no private /dev/shm here; it would touch other buses)"
fi
rm -f "$T" "$L"
run rm "$R"
expect "rm of the bus named like a temporary file" eval "code 0 && ! exists $R"

echo "== names from /dev/shm reach the terminal escaped"
E="$P-"$'\e]0;pwned\a\e[31m\x7f'$'\xff\xc2\x9bx'   # OSC title, BEL, SGR, DEL, bad UTF-8, C1 CSI
head -c 100 /dev/urandom >"/dev/shm/shmbus-$E"
run ls
expect "ls: the name and the reason are escaped" \
	eval "code 0 && both_clean && out_has '$P-\\\\x1b\\]0;pwned\\\\x07' && out_has 'bad: '"
run ls --json
expect "ls --json: valid JSON with the name" \
	eval "code 0 && both_clean && json \"any(b['name'].startswith('$P-\x1b]0;pwned\x07') and b['status']=='bad' for b in d)\""
run gc --dry-run
expect "gc --dry-run: the skipped bus's name and reason are escaped" \
	eval "code 0 && both_clean && err_has 'skipped bus .$P-\\\\x1b'"
run info "$E"
expect "info: the error names the bus escaped" eval "! code 0 && both_clean && err_has '$P-\\\\x1b'"
rm -f "/dev/shm/shmbus-$E"

echo "== names from a segment reach the terminal escaped"
F=$TMP/chan.bus
run create --size 1M "file:$F"
run put --create "file:$F" zzhostilezz 1.5
run put --create --kind queue --slots 4 --max-msg 64 "file:$F" zzqueuezz m
run get --group zzgroupzzz "file:$F" zzqueuezz
expect "a file: bus with a state, a queue and a group" code 0
"$PY" - "$F" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
for old, new in ((b'zzhostilezz', b'\x1b[2J\x07\xff\xc2\x9bzzz'),
                 (b'zzgroupzzz', b'\x1b]0;xy\x07\xc2\x9b!')):
    i = b.find(old)
    assert i >= 0 and len(old) == len(new), old
    b[i:i + len(old)] = new
open(p, 'r+b').write(b)
EOF
run info "file:$F"
expect "info: channel and group names from the segment are escaped" \
	eval "both_clean && (out_has '\\\\x1b\\[2J\\\\x07' || err_has '\\\\x1b\\[2J\\\\x07')"
run info --json "file:$F"
expect "info --json: valid JSON" eval "both_clean && json \"isinstance(d, dict)\""
run get "file:$F" zzqueuezz
expect "get: a message naming the segment's names is escaped" both_clean

echo "== a file: bus whose file grew"
G=$TMP/grow.bus
run create --size 1M "file:$G"
printf 'appended' >>"$G"
run info "file:$G"
expect "info of a grown file: says grown, not truncated" \
	eval "code 4 && err_has 'has grown' && ! err_has 'truncated'"
truncate -s 1M "$G"
run info "file:$G"
expect "truncated back to its size it opens again" code 0
truncate -s 512K "$G"
run info "file:$G"
expect "info of a truncated file: says truncated" eval "code 4 && err_has 'is truncated'"

echo "== leftovers"
left=$(ls -a /dev/shm | grep -a -- "$P" || true)
last="ls /dev/shm"; rc=0; echo "$left" >"$TMP/out"; : >"$TMP/err"
expect "nothing left in /dev/shm" [ -z "$left" ]

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

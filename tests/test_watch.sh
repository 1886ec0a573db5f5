#!/usr/bin/env bash
# test_watch.sh -- `shmbus watch BUS:CHANNEL ...`: several channels on two
# buses followed by one process, changed by other processes (shmbus put,
# tests/multiproc/watch_poke), one change at a time, each line checked
# exactly.
#
# Proves: each change prints one line naming BUS:CHANNEL (state: the current
# value first, then each new one with its seq; queue: each message put
# after watch started, on a queue of cells too; end of stream; event set
# and clear); --json gives one object per line with bus, channel and
# kind; watching a queue takes no
# message from the consumer groups that were there, and watch's own group
# is gone once it ends; --count, --timeout (exit 3), Ctrl+C (exit 0) and
# every queue ending (exit 0) stop it; names from outside are printed
# escaped; a channel it cannot follow, or that does not exist, is refused
# with the documented code; `watch BUS CHANNEL` keeps its meaning.
# Nothing is left in /dev/shm.
#
#   env BUILD=build bash tests/test_watch.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
S=$BUILD/shmbus
P=$BUILD/tests/multiproc/watch_poke
PY=/usr/bin/python3
for f in "$S" "$P"; do
	[ -x "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done

A=t-watch-a-$$
B=t-watch-b-$$
C=t-watch-c-$$
TMP=$(mktemp -d /tmp/test_watch.XXXXXX)
F="file:$TMP/odd"$'\x1b'"name"     # a bus name with ESC in it
pass=0; fail=0; pids=()

cleanup() {
	local p
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -f "/dev/shm/shmbus-$A" "/dev/shm/shmbus-$B" "/dev/shm/shmbus-$C"
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

. tests/clicheck.sh
lines() { local n; n=$(grep -c . "$1" 2>/dev/null); echo "${n:-0}"; }
# wait_for SECONDS CMD...: poll until CMD succeeds (generous: a loaded box).
wait_for() {
	local end=$((SECONDS + $1)); shift
	until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.05; done
}
# start ARGS...: run watch in the background into $TMP/w.out (emptied
# first: the shell truncates it only once the child runs, and lines of the
# last watch must not count as this one's).
start() {
	last="watch $*"
	: >"$TMP/w.out"
	"$S" watch "$@" >"$TMP/w.out" 2>"$TMP/w.err" &
	wp=$!; pids+=("$wp")
}
# step N CMD...: do CMD, then wait until watch printed N lines in all.
step() {
	local n=$1; shift
	"$@" >/dev/null || echo "      (setup command failed: $*)"
	wait_for 30 eval '[ "$(lines "$TMP/w.out")" -ge '"$n"' ]'
}
# finish: wait for the background watch (up to 30 s); rc, out, err.
finish() {
	local end=$((SECONDS + 30))
	while kill -0 "$wp" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.05; done
	kill -9 "$wp" 2>/dev/null
	wait "$wp"; rc=$?
	cp "$TMP/w.out" "$TMP/out"; cp "$TMP/w.err" "$TMP/err"; out=$(cat "$TMP/out")
}
# A watch that has joined its queue groups: `info` lists a watch-* group.
has_watch_group() { "$S" info --json "$1" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if any(g["name"].startswith("watch-") for c in d["channels"]
                  if c.get("queue") for g in c["queue"]["groups"]) else 1)'; }

echo "== two buses, four channels, one line per change"
"$S" put --create "$A" y 1.5 >/dev/null
"$S" put --create --kind queue "$A" jobs early >/dev/null
"$S" get --group workers "$A" jobs >/dev/null      # workers: took 'early'
"$S" put "$A" jobs w1 >/dev/null                   # ... and 'w1' waits for them
"$S" create "$B" >/dev/null
"$P" "$B" event go create
"$S" put --create --dtype int32 --shape 3 "$B" v 0 0 0 >/dev/null
start -n 9 -t 60 "$A:y" "$A:jobs" "$B:v" "$B:go"
wait_for 30 eval '[ "$(lines "$TMP/w.out")" -ge 2 ]'
wait_for 30 has_watch_group "$A"
step 3 "$S" put "$A" jobs hello
step 4 "$S" put "$B" v 4 5 6
step 5 "$P" "$B" event go set
step 6 "$P" "$B" event go clear
step 7 "$S" put --hex "$A" jobs 62616c1b07
step 8 "$S" put "$A" y 2
step 9 "$S" put --shut "$A" jobs
finish
first2=$(head -2 "$TMP/out" | sort)
expect "the current values first: y, then v (either order)" \
	[ "$first2" = "$(printf '%s\n' "$A:y 1: 1.5" "$B:v 1: [0, 0, 0]" | sort)" ]
out=$(tail -n +3 "$TMP/out")
expect "then exactly one line per change, in order, ending at --count 9" eval "code 0 && out_is \"\$(printf '%s\n' \
	'$A:jobs 2: hello' '$B:v 2: [4, 5, 6]' '$B:go set' '$B:go clear' \
	'$A:jobs 3: bal\\x1b\\x07' '$A:y 2: 2' '$A:jobs end of stream')\""
run get --group workers -n 5 "$A" jobs
expect "the workers group still gets every message watch printed, then end of stream" \
	eval "code 6 && out_is \$'w1\nhello\nbal\\\\x1b\\\\x07'"
run info --json "$A"
expect "watch's own group is gone once it ended" \
	eval "code 0 && ! grep -q '\"watch-' '$TMP/out' && grep -q '\"workers\"' '$TMP/out'"

echo "== --json"
"$S" put --create --kind queue "$C" jobs before >/dev/null  # not printed: watch
"$S" put --create "$C" y 7 >/dev/null                      # starts at the newest
start --json -n 4 -t 60 "$C:y" "$C:jobs" "$B:go"
wait_for 30 eval '[ "$(lines "$TMP/w.out")" -ge 1 ]'
wait_for 30 has_watch_group "$C"
step 2 "$S" put "$C" jobs m1
step 3 "$P" "$B" event go set
step 4 "$P" "$B" event go clear
finish
expect "--json: one object per line with bus, channel, kind and the change" \
	eval "code 0 && \"$PY\" - '$TMP/out' '$C' '$B' <<'EOF'
import json, sys
L = [json.loads(l) for l in open(sys.argv[1])]
a, b = sys.argv[2], sys.argv[3]
want = [
    {'bus': a, 'channel': 'y', 'kind': 'state', 'seq': 1, 'dtype': 'float64',
     'shape': [1], 'value': 7},
    {'bus': a, 'channel': 'jobs', 'kind': 'queue', 'len': 2,
     'redelivered': False, 'data': 'm1'},
    {'bus': b, 'channel': 'go', 'kind': 'event', 'set': True},
    {'bus': b, 'channel': 'go', 'kind': 'event', 'set': False},
]
got = [{k: v for k, v in x.items() if k != 'seq' or x['kind'] != 'queue'} for x in L]
if got != want:
    print(got, file=sys.stderr)
    sys.exit(1)
EOF"

echo "== a queue of cells"
"$S" put --create --kind queue --slots 16 --cell-bytes 64 "$C" cells before >/dev/null
big=$(printf 'z%.0s' $(seq 150))                  # 3 cells of 64 B
start -n 3 -t 60 "$C:cells"
wait_for 30 has_watch_group "$C"
step 1 "$S" put "$C" cells small
step 2 "$S" put "$C" cells "$big"
step 3 "$S" put "$C" cells tail
finish
expect "watch BUS:Q on a queue of cells: each message whole, its seq counting cells" \
	eval "code 0 && out_is \"\$(printf '%s\n' '$C:cells 1: small' '$C:cells 2: $big' '$C:cells 5: tail')\""
"$S" get -g mine --latest -t 0 "$C" cells >/dev/null 2>&1    # makes the group at the newest
"$S" put "$C" cells mine1 >/dev/null
run watch -n 1 -t 30 -g mine "$C:cells"
expect "watch -g GROUP BUS:Q on a queue of cells: the group's next message" \
	eval "code 0 && out_is '$C:cells 6: mine1'"

echo "== a whole bus, stops, errors"
"$P" "$B" event go set
run watch -n 2 -t 30 "$B"
expect "BUS alone: its state and event channels (v, go), one line each" \
	eval "code 0 && [ \"\$(sort <<<\"\$out\")\" = \"\$(printf '%s\n' '$B:go set' '$B:v 2: [4, 5, 6]' | sort)\" ]"
run watch -t 0.3 "$C:y"
expect "--timeout: the current value, then exit 3 when nothing new comes" \
	eval "code 3 && out_is '$C:y 1: 7' && err_has 'nothing new'"
start "$C:y" "$B:v"
wait_for 30 eval '[ "$(lines "$TMP/w.out")" -ge 2 ]'
kill -INT "$wp"
finish
expect "Ctrl+C: exit 0" code 0
"$S" put --shut "$C" jobs >/dev/null
run watch -t 30 "$C:jobs"
expect "a shut, drained queue: 'end of stream', exit 0 (nothing left to follow)" \
	eval "code 0 && out_is '$C:jobs end of stream'"
"$P" "$A" lock mutex
run watch -t 1 "$A:mutex"
expect "a lock channel is refused: exit 1, naming its kind" eval "code 1 && err_has 'is a lock'"
run watch -t 1 "$A:y" "$A:nope"
expect "a missing channel: exit 2" eval "code 2 && err_has \"nope\""
run watch -t 1 "$A:y" "t-watch-none-$$:y"
expect "a missing bus: exit 2" code 2
run watch -n 1 "$C" y
expect "watch BUS CHANNEL keeps its form: 'SEQ: VALUE'" eval "code 0 && out_is '1: 7'"
"$S" put --create "$F" y 3 >/dev/null
run watch -n 1 "$F:y"
expect "a bus name from outside is printed escaped" \
	eval "code 0 && out_is 'file:$TMP/odd\\x1bname:y 1: 3'"
run watch --help
expect "--help describes both forms" \
	eval "code 0 && grep -q 'BUS:CHANNEL' '$TMP/out' && grep -q 'end of stream' '$TMP/out'"

echo
echo "test_watch: $pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# test_cli.sh -- the `shmbus` command, driven as a user would, against a bus
# that another process (tests/multiproc/cli_writer) writes while we look.
#
# Proves: ls/info/get/put/watch/create/rm/gc print what the bus holds and
# exit with the codes `shmbus --help` documents; --json output parses and
# carries the same facts; values are formatted and parsed by dtype and
# shape; bad input gives the documented code and a message that says what
# was wrong; Ctrl+C stops watch cleanly; a live writer blocks `rm` and
# `put`, a killed one makes its bus stale and `gc` removes it; the queue
# subcommands move messages in order through consumer groups to end of
# stream. Nothing is left in /dev/shm.
#
#   env BUILD=build bash tests/test_cli.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
S=$BUILD/shmbus
W=$BUILD/tests/multiproc/cli_writer
PY=/usr/bin/python3
for f in "$S" "$W"; do
	[ -x "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done

B=t-cli-$$            # written by cli_writer, live then stale
Q=t-cli-$$-q          # queue channels
C=t-cli-$$-c          # made by `shmbus create`
K=t-cli-$$-k          # one live and one dead peer, for gc's reaping
X=t-cli-$$-x          # random bytes, not a bus
NONE=t-cli-$$-none    # never exists
TMP=$(mktemp -d /tmp/test_cli.XXXXXX)
pass=0; fail=0; pids=()

cleanup() {
	local p b
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	# Every bus this run named (t-cli-$$...), however it ends.
	for b in /dev/shm/shmbus-t-cli-$$ /dev/shm/shmbus-t-cli-$$-*; do
		[ -e "$b" ] && rm -f "$b"
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

. tests/clicheck.sh
# json PYTHON: d is the parsed stdout; the expression must be true.
json() { "$PY" -c "import json,sys; d=json.load(open('$TMP/out')); sys.exit(0 if ($1) else 1)" 2>>"$TMP/err"; }
# jsonl PYTHON: L is the list of parsed stdout lines.
jsonl() { "$PY" -c "import json,sys; L=[json.loads(l) for l in open('$TMP/out') if l.strip()]; sys.exit(0 if ($1) else 1)" 2>>"$TMP/err"; }
# interrupt PID: Ctrl+C until it ends (a signal that lands before the
# command installed its handler is ignored, as in any background job);
# sets rc to its exit code.
interrupt() {
	local end=$((SECONDS + 30))
	while kill -INT "$1" 2>/dev/null && [ $SECONDS -lt $end ]; do
		sleep 0.3
		kill -0 "$1" 2>/dev/null || break
	done
	kill -9 "$1" 2>/dev/null
	wait "$1"; rc=$?
}
lines() { grep -c . "$1" 2>/dev/null || true; }
# wait_for SECONDS CMD...: poll until CMD succeeds.
wait_for() {
	local end=$((SECONDS + $1)); shift
	until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.05; done
}

echo "== help, version, usage errors"
run --help
expect "--help exits 0" code 0
for c in 0 1 2 3 4 5 6 130; do
	expect "--help documents exit code $c" out_has "^  $c +[a-z]"
done
for c in ls info get put watch create rm gc; do
	run "$c" --help
	expect "$c --help exits 0 with its usage" eval 'code 0 && out_has "^Usage: shmbus $c"'
done
run help watch
expect "help watch is watch --help" eval 'code 0 && out_has "^Usage: shmbus watch"'
run --version
expect "--version prints the version" eval 'code 0 && out_has "^shmbus [0-9]+\.[0-9]+\.[0-9]+$"'
run
expect "no command: usage, exit 1" eval 'code 1 && err_has "^Usage: shmbus"'
run frobnicate
expect "unknown command: exit 1, named" eval "code 1 && err_has \"unknown command 'frobnicate'\""
run ls --bogus
expect "unknown option: exit 1, named" eval "code 1 && err_has \"unknown option '--bogus'\""
run info
expect "info without a bus: exit 1" eval 'code 1 && err_has "missing the bus name"'
run get "$B"
expect "get without a channel: exit 1" eval 'code 1 && err_has "needs BUS and CHANNEL"'

echo "== a bus another process writes"
"$W" "$B" 20 900 >"$TMP/writer.out" 2>&1 &
wpid=$!; pids+=("$wpid")
last="(cli_writer $B)"; rc=0; : >"$TMP/out"; : >"$TMP/err"
expect "the writer starts" wait_for 30 grep -q ready "$TMP/writer.out"

run ls
expect "ls lists the bus as live with 1/1 peers" eval "code 0 && out_has '^$B +[0-9.]+ [KMG]?i?B +2 +1/1 +live$'"
run ls --json
expect "ls --json: the bus, live, 1 live peer, 2 channels" \
	json "[b for b in d if b['name']=='$B' and b['status']=='live' and b['live_peers']==1 and b['channels']==2]"

run info "$B"
expect "info's first line: name, size, status" out_has "^bus $B: 16 MiB, ABI [0-9]+, live$"
expect "info shows y as a float64 scalar state" eval "code 0 && out_has '^  y +state +float64 +\[1\] +8 B +[1-9][0-9]*$'"
expect "info shows vec as int32 [3]" out_has '^  vec +state +int32 +\[3\] +12 B +[1-9]'
expect "info shows the writer as a live peer" out_has "^  $wpid +yes "
run info --json "$B"
expect "info --json: writer pid alive, 1 live peer" \
	json "d['live_peers']==1 and [p for p in d['peers'] if p['pid']==$wpid and p['alive']]"
expect "info --json: y and vec with kind, dtype, shape, size, seq" \
	json "{c['name']:(c['kind'],c['dtype'],c['shape'],c['value_size'],c['seq']>0) for c in d['channels']}=={'y':('state','float64',[1],8,True),'vec':('state','int32',[3],12,True)}"

run get "$B" y
expect "get prints the scalar as a bare number" eval "code 0 && out_has '^[1-9][0-9]*$'"
run get --json "$B" y
expect "get --json: value is the writer's count, equal to seq" json "d['value']==d['seq']>=1 and d['dtype']=='float64' and d['shape']==[1]"
seq1=$("$PY" -c "import json; print(json.load(open('$TMP/out'))['seq'])" 2>/dev/null || echo 0)
advanced() { run get --json "$B" y; json "d['seq'] > $seq1"; }
wait_for 20 advanced
expect "the sequence number advances while the writer writes" json "d['seq'] > $seq1"
run get --json "$B" vec
expect "get --json of int32 [3]: [k, 2k, 3k] with k = seq" json "d['value']==[d['seq'],2*d['seq'],3*d['seq']]"
run get -s "$B" vec
expect "get -s: 'SEQ: [a, b, c]'" eval "code 0 && out_has '^[1-9][0-9]*: \[[0-9]+, [0-9]+, [0-9]+\]$'"

run watch -n 3 --json "$B" y
expect "watch -n 3 --json: 3 values, seq increasing, value == seq" \
	eval 'code 0 && jsonl "len(L)==3 and all(x[\"value\"]==x[\"seq\"] for x in L) and L[0][\"seq\"]<L[1][\"seq\"]<L[2][\"seq\"]"'
run watch -n 2 "$B" vec
expect "watch prints 'SEQ: VALUE' lines" eval "code 0 && [ \$(grep -cE '^[0-9]+: \[[0-9]+, [0-9]+, [0-9]+\]$' '$TMP/out') -eq 2 ]"

"$S" watch "$B" y >"$TMP/watch.out" 2>"$TMP/watch.err" &
p=$!; pids+=("$p")
wait_for 30 eval '[ "$(lines "$TMP/watch.out")" -ge 2 ]'
interrupt "$p"
cp "$TMP/watch.out" "$TMP/out"; cp "$TMP/watch.err" "$TMP/err"; last="watch $B y  (then Ctrl+C)"
expect "watch stops on Ctrl+C with exit 0" code 0
expect "watch printed several increasing values before Ctrl+C" \
	"$PY" -c "import sys; s=[int(l.split(':')[0]) for l in open('$TMP/out')]; sys.exit(0 if len(s)>=2 and s==sorted(set(s)) else 1)"

run put "$B" y 5
expect "put while another live process writes: exit 5, writer's pid named" eval "code 5 && err_has '^shmbus: put: ' && err_has '$wpid'"
run rm "$B"
expect "rm with a live peer: exit 5, pid named, bus kept" eval "code 5 && err_has 'live peer' && err_has '$wpid' && exists $B"
run gc "$B"
expect "gc leaves a live bus alone" eval "code 0 && out_has '1 bus checked, 0 removed' && exists $B"

echo "== values, types and bad input"
run put "$B" nosuch 1
expect "put to a missing channel: exit 2, hint to --create" eval "code 2 && err_has \"no channel 'nosuch'\" && err_has -- '--create'"
run get "$B" nosuch
expect "get of a missing channel: exit 2" eval "code 2 && err_has nosuch"
run get "$NONE" y
expect "get on a missing bus: exit 2" eval "code 2 && err_has '^shmbus: get: .*$NONE'"
run info "$NONE"
expect "info on a missing bus: exit 2" code 2
run info 'bad/name'
expect "an invalid bus name: exit 1 and the library's reason" eval "code 1 && err_has 'character'"
run put -c -d int16 -S 2,2 "$B" m '[[1,-2],[3,4]]'
expect "put --create int16 [2,2] from nested lists" code 0
run get "$B" m
expect "get prints int16 [2,2] as nested lists" out_is "[[1, -2], [3, 4]]"
run put "$B" m 1 2 3
expect "too few values: exit 1, says how many" eval "code 1 && err_has 'holds 4 int16 values \(shape \[2,2\]\); got 3'"
run put "$B" m 1 2 3 x
expect "a non-number: exit 1, names it" eval "code 1 && err_has \"'x' \(element 3\) is not a valid int16\""
run put "$B" m 1 2 3 40000
expect "out of range: exit 1, gives the range" eval "code 1 && err_has 'out of range for int16'"
run put -d float32 "$B" m 1 2 3 4
expect "another dtype than the channel's: exit 1" eval "code 1 && err_has 'has dtype int16, not float32'"
run put -S 4 "$B" m 1 2 3 4
expect "another shape than the channel's: exit 1" eval "code 1 && err_has 'has shape \[2,2\], not \[4\]'"
run put -c -d float32 "$B" f 0.1
run get "$B" f
expect "float32 0.1 prints as 0.1" eval 'code 0 && out_is 0.1'
run put -c -d int32 "$B" neg -5
run get "$B" neg
expect "a negative number is a value, not an option" eval 'code 0 && out_is -5'
run put -c -d uint16 -S 2 "$B" dec 010 0x10
run get "$B" dec
expect "integers are decimal unless 0x: 010 is ten" eval "code 0 && out_is '[10, 16]'"
run put -c -d bool "$B" flag true
run get --json "$B" flag
expect "bool round-trips" eval "code 0 && json \"d['value'] is True\""
run put "$B" flag maybe
expect "a bad bool: exit 1" eval "code 1 && err_has 'not a valid bool'"
run put -c -d bytes -S 16 "$B" s 'hello world'
run get "$B" s
expect "a bytes value prints as text" eval "code 0 && out_is 'hello world'"
run get --hex "$B" s
expect "get --hex: the bytes, NUL-padded" out_is 68656c6c6f20776f726c640000000000
run put "$B" s 'this string is far too long'
expect "a string longer than the channel: exit 1, both sizes" eval "code 1 && err_has 'value is 27 bytes; channel .s. holds 16'"
run put -c -d nonsense "$B" z 1
expect "an unknown dtype: exit 1" eval "code 1 && err_has \"dtype 'nonsense'\""
run put -c -S 0 "$B" z 1
expect "a zero shape: exit 1" eval "code 1 && err_has 'shape'"
run get -t soon "$B" y
expect "a bad duration: exit 1" eval "code 1 && err_has 'not a duration'"
run get -f "$B" y
expect "queue options on a state channel: exit 1" eval "code 1 && err_has 'state channel'"
run put -c -d uint8 -S 3 "$B" u 1 2 256
expect "uint8 256: exit 1 (channel made, nothing written)" eval "code 1 && err_has 'out of range for uint8'"
run get "$B" u
expect "get of a never-written value: exit 3" eval "code 3 && err_has '^shmbus: get: '"
run get -t 300ms "$B" u
expect "get --timeout with no writer: exit 3" code 3
(sleep 0.5; "$S" put "$B" u 1 2 3) &
run get -t 20s "$B" u
expect "get --timeout returns the value written meanwhile" eval "code 0 && out_is '[1, 2, 3]'"
run put -c -d uint8 -S 1 "$B" empty 1 2   # the channel is made, the write refused
"$S" get -t forever "$B" empty >/dev/null 2>"$TMP/int.err" &
p=$!; pids+=("$p")
sleep 0.5
interrupt "$p"; cp "$TMP/int.err" "$TMP/err"; : >"$TMP/out"
last="get -t forever $B empty  (then Ctrl+C)"
expect "a blocked one-shot get interrupted by Ctrl+C: exit 130" code 130

run put -c -d uint64 -S 16 "$B" _bridge.t 1 4242 1 1 2 3 3 0 1000 2000 50 60 7 0 12345 0
run info "$B"
expect "info decodes a bridge's status channel" eval "code 0 && out_has '^      bridge t: pid 4242, running, connected to NATS, 2 reconnects; links 3 ' && out_has '^      out 1000 \(50/s\), in 2000 \(60/s\), lag 7, errors 0, up 12.3 s$'"
run info --json "$B"
expect "info --json: the bridge's fields" json "[c['bridge'] for c in d['channels'] if c['name']=='_bridge.t'][0]['lag']==7"
run rm "$B" dec
expect "rm BUS CHANNEL with a live peer: exit 5" eval "code 5 && err_has 'live peer'"
run rm --force "$B" dec
expect "rm --force BUS CHANNEL removes the channel" eval "code 0 && ! grep -q '\"dec\"' <(\"$S\" info --json \"$B\")"
run get "$B" dec
expect "get of the removed channel: exit 2" code 2

echo "== create, rm"
run create --size 1M --mode 0640 "$C"
expect "create --size 1M --mode 0640" eval "code 0 && exists $C"
expect "the mode is applied" [ "$(stat -c %a "/dev/shm/shmbus-$C" 2>/dev/null)" = 640 ]
run ls
expect "ls shows the new bus as idle, 1.0 MiB, no channels" out_has "^$C +1\.0 MiB +0 +0/0 +idle$"
run create "$C"
expect "create of an existing bus: exit 4" eval "code 4 && err_has 'exists'"
run create --size lots "$C-x"
expect "create --size lots: exit 1" eval "code 1 && err_has 'not a size'"
run create --mode 999 "$C-x"
expect "create --mode 999: exit 1" eval "code 1 && err_has 'octal'"
run gc --dry-run --idle "$C"
expect "gc --dry-run --idle reports, keeps" eval "code 0 && out_has 'would remove idle bus $C' && exists $C"
run gc "$C"
expect "gc keeps an idle bus without --idle" eval "code 0 && exists $C"
run rm "$C"
expect "rm of an idle bus" eval "code 0 && ! exists $C"
run rm "$C"
expect "rm of a missing bus: exit 2" code 2

F=$TMP/bus.file
run create --size 256K "file:$F"
expect "create a file: bus" eval "code 0 && [ -f '$F' ]"
run put -c -d float64 -S 2 "file:$F" p 1.5 -2.25
run get "file:$F" p
expect "put and get on a file: bus" eval "code 0 && out_is '[1.5, -2.25]'"
run info --json "file:$F"
expect "info --json of a file: bus says persistent" json "d['persistent'] is True and d['size']==262144"
run rm "file:$F"
expect "rm of a file: bus removes the file" eval "code 0 && [ ! -e '$F' ]"
run get "file:$TMP/nothing" p
expect "a missing file: bus: exit 2" code 2
head -c 8192 /dev/urandom >"$TMP/junk"
run info "file:$TMP/junk"
expect "a file that is not a bus: exit 4, the library's reason" eval "code 4 && err_has '^shmbus: info: cannot open bus'"
run rm "file:$TMP/junk"
expect "rm refuses a bus it cannot open" eval "code 4 && err_has -- '--force' && [ -e '$TMP/junk' ]"
run rm --force "file:$TMP/junk"
expect "rm --force removes it" eval "code 0 && [ ! -e '$TMP/junk' ]"

head -c 8192 /dev/urandom >"/dev/shm/shmbus-$X"
run ls
expect "ls marks a segment that is not a bus as bad, with the reason" out_has "^$X +- +- +- +bad: ."
run ls --json
expect "ls --json: status bad and an error" json "[b for b in d if b['name']=='$X' and b['status']=='bad' and b['error']]"
run gc "$X"
expect "gc reports and skips a bad bus" eval "code 0 && err_has \"skipped bus '$X'\" && exists $X"
run rm --force "$X"
expect "rm --force removes it" eval "code 0 && ! exists $X"

echo "== a killed writer: stale bus, gc"
kill -9 "$wpid"; wait "$wpid" 2>/dev/null
run ls
expect "ls marks the bus stale (0/1 peers)" out_has "^$B +.* 0/1 +stale$"
run ls --json
expect "ls --json: status stale" json "[b for b in d if b['name']=='$B' and b['status']=='stale' and b['live_peers']==0 and b['peers']==1]"
run info "$B"
expect "info says stale too" out_has "^bus $B: .*, stale$"
run put "$B" y 42
expect "put takes over the dead writer's role" code 0
run get "$B" y
expect "and the value is there" out_is 42
run gc --dry-run "$B"
expect "gc --dry-run names the stale bus, keeps it" eval "code 0 && out_has 'would remove stale bus $B \(1 dead peer\)' && exists $B"
run gc "$B"
expect "gc removes the stale bus" eval "code 0 && out_has 'removed stale bus $B \(1 dead peer\)' && ! exists $B"
run info "$B"
expect "info after gc: exit 2" code 2

"$W" "$K" 20 900 a >"$TMP/wa.out" 2>&1 &
wa=$!; pids+=("$wa")
wait_for 30 grep -q ready "$TMP/wa.out"
"$W" "$K" 20 900 b >"$TMP/wb.out" 2>&1 &
wb=$!; pids+=("$wb")
wait_for 30 grep -q ready "$TMP/wb.out"
kill -9 "$wb"; wait "$wb" 2>/dev/null
run ls
expect "a bus with one live, one dead peer is live (1/2)" out_has "^$K +.* 1/2 +live$"
run gc "$K"
expect "gc reaps the dead peer on a live bus" eval "code 0 && out_has 'reaped [1-9][0-9]* dead peer.* on bus $K' && exists $K"
run info --json "$K"
expect "after gc only the live peer is registered" json "[p['pid'] for p in d['peers']]==[$wa]"
kill -TERM "$wa"; wait "$wa"; rc=$?
last="(cli_writer $K, SIGTERM)"
run ls
expect "a writer that closed cleanly leaves the bus idle" out_has "^$K +.* 0/0 +idle$"
run rm "$K"
expect "rm of the idle bus" eval "code 0 && ! exists $K"

echo "== queues"
run create "$Q"
run put -c --kind queue --slots 4 --max-msg 64 "$Q" jobs m1 'm 2'
expect "put --create --kind queue with two messages" code 0
run info --json "$Q"
expect "info --json: queue with slots, max_msg, head, no groups" \
	json "[(q['slots'],q['cell_bytes'],q['max_msg'],q['head'],q['shut'],q['groups']) for c in d['channels'] if c['name']=='jobs' and c['kind']=='queue' for q in [c['queue']]]==[(4,0,64,2,False,[])]"
run info "$Q"
expect "info shows the queue line" out_has '^      queue: 4 slots of 64 B, head 2'
run get "$Q" jobs
expect "get takes the first message" eval "code 0 && out_is m1"
run info --json "$Q"
expect "info --json: group cli at cursor 1, lag 1" \
	json "[g for c in d['channels'] for g in c.get('queue',{}).get('groups',[]) if g['name']=='cli' and g['cursor']==1 and g['lag']==1]"
run info "$Q"
expect "info shows the group line" out_has '^      group cli +cursor 1 +lag 1 '
run get -s "$Q" jobs
expect "get -s: 'SEQ: message'" out_is '1: m 2'
run get "$Q" jobs
expect "get on an empty queue: exit 3" eval "code 3 && err_has \"no message for group 'cli'\""
run get -g other -n 2 "$Q" jobs
expect "another group sees every message from the oldest" out_is $'m1\nm 2'
run put "$Q" jobs "$(printf 'x%.0s' $(seq 65))"
expect "a message over max_msg: exit 1, both sizes" eval "code 1 && err_has '65' && err_has '64'"

"$S" get -f --json -g f "$Q" jobs >"$TMP/follow.out" 2>"$TMP/follow.err" &
fp=$!; pids+=("$fp")
wait_for 20 eval "\"$S\" info --json \"$Q\" | grep -q '\"name\": \"f\"'"
run put "$Q" jobs a b c
expect "put three more" code 0
run put --shut "$Q" jobs
expect "put --shut marks end of stream" code 0
wait_for 20 eval "! kill -0 $fp 2>/dev/null"
kill -9 "$fp" 2>/dev/null; wait "$fp"; rc=$?
cp "$TMP/follow.out" "$TMP/out"; cp "$TMP/follow.err" "$TMP/err"; last="get -f --json -g f $Q jobs"
expect "get --follow ends at end of stream with exit 0" code 0
expect "get --follow --json: every message in order, seq 0..4" \
	jsonl "[(x['seq'],x['data'],x['redelivered']) for x in L]==[(0,'m1',False),(1,'m 2',False),(2,'a',False),(3,'b',False),(4,'c',False)]"
run get -n 10 "$Q" jobs
expect "get drains the rest, then exit 6 (end of stream)" eval "code 6 && out_is \$'a\nb\nc'"
run put "$Q" jobs more
expect "put after shut: exit 6" eval "code 6 && err_has 'shut'"
run info --json "$Q"
expect "info --json: shut" json "[c for c in d['channels'] if c['name']=='jobs' and c['queue']['shut']]"

run put -c -k queue --slots 16 --cell-bytes 64 "$Q" cells before
expect "put --create --kind queue --cell-bytes makes a queue of cells" code 0
run info "$Q"
expect "info: a queue of slots says 'slots of N B'" out_has '^      queue: 4 slots of 64 B, head 5'
expect "info: a queue of cells says 'cells of N B', its largest message and depth in cells" \
	out_has '^      queue: 16 cells of 64 B, max message 1024 B, head 1, depth 0 cells, '
run get -g cg -t 0 "$Q" cells
expect "get on a queue of cells makes its group at the oldest message" \
	eval "code 0 && out_is before"
big=$(printf 'c%.0s' $(seq 150))        # 3 cells of 64 B
run put "$Q" cells small "$big" tail
expect "put to the queue of cells" code 0
run info --json "$Q"
expect "info --json: cell_bytes 64 for the queue of cells (depth in cells), 0 for slots" \
	json "sorted((c['name'],c['queue']['cell_bytes'],c['queue']['slots'],c['queue']['max_msg'],c['queue']['head'],c['queue']['depth'] if c['name']=='cells' else None) for c in d['channels'] if c['name'] in ('jobs','cells'))==[('cells',64,16,1024,6,5),('jobs',0,4,64,5,None)]"
run get -g cg -n 3 -s "$Q" cells
expect "get takes its messages whole, seqs counting cells" \
	eval "code 0 && out_is \$'1: small\n2: $big\n5: tail'"
run put "$Q" cells "$(printf 'c%.0s' $(seq 1025))"
expect "a message over the queue of cells' max_msg: exit 1, both sizes" \
	eval "code 1 && err_has '1025' && err_has '1024'"
run put --cell-bytes 128 "$Q" cells other
expect "put --cell-bytes to a queue of other cells: exit 1, both sizes, puts nothing" \
	eval "code 1 && err_has 'cell_bytes 64, asked for 128' && \"$S\" info --json \"$Q\" | grep -q '\"cell_bytes\": 64, \"max_msg\": 1024, \"head\": 6,'"
run put --slots 8 "$Q" jobs other
expect "put --slots to a queue of other slots: exit 1, both counts, puts nothing" \
	eval "code 1 && err_has 'slots 4, asked for 8' && \"$S\" info --json \"$Q\" | grep -q '\"cell_bytes\": 0, \"max_msg\": 64, \"head\": 5,'"
run put --slots 16 --cell-bytes 64 "$Q" cells same
expect "put with the queue's own --slots and --cell-bytes puts" \
	eval "code 0 && \"$S\" info --json \"$Q\" | grep -q '\"cell_bytes\": 64, \"max_msg\": 1024, \"head\": 7,'"
run info "$Q"
expect "info: one cell deep is 'depth 1 cell'" out_has '^      queue: 16 cells of 64 B, max message 1024 B, head 7, depth 1 cell, '
run put -c -k queue --cell-bytes 12 "$Q" badcells x
expect "--cell-bytes not a multiple of 8: exit 1, the library's words" \
	eval "code 1 && err_has 'multiple of 8'"
run put -c --cell-bytes 64 "$Q" y 1
expect "--cell-bytes alone makes a queue, as --slots does" \
	eval "code 0 && \"$S\" info --json \"$Q\" | grep -q '\"cell_bytes\": 64, \"max_msg\": 65536'"

run put -c -k queue --stdin "$Q" lines <<<$'x1\nx2\nx3'
expect "put --stdin: one message per line" code 0
run get -n 3 "$Q" lines
expect "and they come back in order" out_is $'x1\nx2\nx3'
run watch -n 2 -g w "$Q" lines
expect "watch on a queue: 'SEQ: message'" eval "code 0 && out_is \$'0: x1\n1: x2'"
run put --hex "$Q" lines 00ff41
run get --json "$Q" lines
expect "binary message: JSON data with \\u escapes" eval "code 0 && json \"d['data']=='\\x00\\xffA' and d['len']==3\""
run put -c -k queue --slots 2 "$Q" small a
run get -g g "$Q" small
expect "a group is made by its first get" out_is a
run put -t 0 "$Q" small b c
expect "the ring (2 slots) takes two more" code 0
run put -t 0 "$Q" small d
expect "put -t 0 on a full ring: exit 3, says full" eval "code 3 && err_has 'is full'"
run put -t 20s "$Q" small d
expect "a group with no live member stops gating after the liveness timeout" code 0
run get -g g -n 5 -t 0 "$Q" small
expect "its next get reports the skipped messages (library's words), then the rest" \
	eval "code 3 && err_has \"group 'g' was overtaken\" && [ \"\$(tail -n 1 '$TMP/out')\" = d ]"

run rm "$Q" small --group nope
expect "rm --group of a missing group: exit 2, names it" eval "code 2 && err_has \"no group 'nope'\""
run rm "$Q" --group g
expect "rm --group without the queue: exit 1" code 1
"$S" get -f -g live "$Q" small >/dev/null 2>"$TMP/live.err" &
lp=$!; pids+=("$lp")
wait_for 20 eval "\"$S\" info --json \"$Q\" | grep -q '\"name\": \"live\"'"
run rm "$Q" small --group live
expect "rm --group of a group with a live member: exit 5" eval "code 5 && err_has 'live member'"
interrupt "$lp"
run rm "$Q" small --group live
expect "once its member is gone, rm --group removes it" code 0
run rm "$Q" small --group g
run info --json "$Q"
expect "info --json: the removed groups are gone" \
	json "[g['name'] for c in d['channels'] if c['name']=='small' for g in c['queue']['groups']]==[]"

run put -c -k queue --slots 2 "$Q" wg a b c
expect "a queue with no group never blocks put: it overwrites the oldest" code 0
run put --wait-groups 1 -t 0.2 "$Q" wg
expect "put --wait-groups with no group: exit 3, says how many there are" \
	eval "code 3 && err_has '0 consumer groups; waiting for 1'"
"$S" put --wait-groups 1 -t 20 "$Q" wg after >"$TMP/wg.out" 2>"$TMP/wg.err" &
wp=$!; pids+=("$wp")
sleep 0.3
kill -0 "$wp" 2>/dev/null; rc=$?; last="put --wait-groups 1 -t 20 $Q wg after"
expect "put --wait-groups waits while no group exists" code 0
run get -g late -n 3 -t 10 "$Q" wg
expect "a group that joins later gets the oldest in the ring, then the waiting put's message" \
	eval "code 0 && out_is \$'b\nc\nafter'"
wait "$wp"; rc=$?; last="put --wait-groups 1 -t 20 $Q wg after"
expect "the waiting put ends once the group joined" code 0
run put --wait-groups 1 -t 0 "$Q" wg
expect "put --wait-groups 1 without messages: returns at once with a group" code 0
run put --wait-groups 17 "$Q" wg x
expect "put --wait-groups over the queue's max_groups: exit 1" eval "code 1 && err_has 'at most 16 groups'"

echo "== containers"
run put -c -k array -d int64 "$Q" arr 1 2 -3
expect "put --create --kind array" code 0
run put --wait-groups 1 "$Q" arr 1 2 3
expect "--wait-groups on an array: exit 1 (a usage error)" eval "code 1 && err_has 'only --hex applies'"
run get "$Q" arr
expect "get of an array: its elements" out_is '[1, 2, -3]'
run put "$Q" arr 4 5
expect "an array takes all its elements: exit 1" eval "code 1 && err_has 'holds 3 int64 values'"
run get --json "$Q" arr
expect "get --json of an array" json "d['kind']=='array' and d['dtype']=='int64' and d['value']==[1,2,-3]"
run put -c -k list "$Q" li one 'two words'
run put "$Q" li three
run get "$Q" li
expect "a list: put appends, get prints one per line" eval "code 0 && out_is \$'one\ntwo words\nthree'"
run put -c -k dict "$Q" di a=1 'b=x=y'
run get --json "$Q" di
expect "a dict: KEY=VALUE in, a JSON object out" eval "code 0 && json \"d['value']=={'a':'1','b':'x=y'}\""
run put "$Q" di nokey
expect "a dict entry without '=': exit 1" eval "code 1 && err_has 'KEY=VALUE'"

echo "== state channels with many writers"
# A live writer holds each channel open: `put --stdin` from a FIFO has
# written its first value and waits for the next line.
run put -c --writers many -d float64 "$Q" mw 0
expect "put --create --writers many" code 0
run put -c -d float64 "$Q" sw 0
expect "put --create: one writer by default" code 0
mkfifo "$TMP/fifo"
"$S" put --stdin "$Q" mw <"$TMP/fifo" >"$TMP/hold.out" 2>&1 &
hold=$!; pids+=("$hold")
exec 9>"$TMP/fifo"
echo 1 >&9
last="(put --stdin $Q mw)"; rc=0; : >"$TMP/out"; : >"$TMP/err"
expect "the holding writer wrote its first value" wait_for 30 eval '[ "$("$S" get "$Q" mw)" = 1 ]'
run put "$Q" mw 2.5
expect "put to a many-writer channel beside a live writer: exit 0" code 0
run get --json "$Q" mw
expect "the last write wins, seq counts all three" json "d['value']==2.5 and d['seq']==3"
echo 4 >&9
last="(put --stdin $Q mw)"; rc=0; : >"$TMP/out"; : >"$TMP/err"
expect "the first writer writes again after it" wait_for 30 eval '[ "$("$S" get "$Q" mw)" = 4 ]'
exec 9>&-
wait "$hold"
run info --json "$Q"
expect "info --json: writers many / one" json "[c['writers'] for c in d['channels'] if c['name'] in ('mw','sw')]==['many','one']"
"$S" put --stdin "$Q" sw <"$TMP/fifo" >"$TMP/hold.out" 2>&1 &
hold=$!; pids+=("$hold")
exec 9>"$TMP/fifo"
echo 1 >&9
last="(put --stdin $Q sw)"; rc=0; : >"$TMP/out"; : >"$TMP/err"
expect "a writer holds the single-writer channel" wait_for 30 eval '[ "$("$S" get "$Q" sw)" = 1 ]'
run put "$Q" sw 2
expect "put to a single-writer channel with a live writer: exit 5" eval "code 5 && err_has 'one writer at a time'"
exec 9>&-
wait "$hold"
run put -c --writers one "$Q" mw 1
expect "--writers one on a many-writer channel: exit 1, both named" eval "code 1 && err_has 'many writers' && err_has 'one writer'"
run put -c --writers lots "$Q" mw2 1
expect "--writers lots: a usage error" eval "code 1 && err_has 'one or many'"

run rm "$Q"
expect "rm of the queue bus" eval "code 0 && ! exists $Q"

echo "== leftovers"
left=$(ls /dev/shm | grep "^shmbus-t-cli-$$" || true)
last="ls /dev/shm"; rc=0; echo "$left" >"$TMP/out"; : >"$TMP/err"
expect "nothing left in /dev/shm" [ -z "$left" ]

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

#!/usr/bin/env bash
# test_bench.sh -- the benchmark programs build, say how to use them, and
# still measure what they claim to: a figure run (scripts/bench.sh) is
# long and rare, so bit rot in bench/ would otherwise go unseen.
#
#   env BUILD=build bash tests/test_bench.sh
#
# Checked, with no timing at all (the figures of a run on a loaded machine
# mean nothing; docs/benchmarks.md):
#   - `make -C bench all` builds every program warning-free (-Werror),
#     against the library in build/;
#   - each program's --help exits 0 and prints its usage; an unknown
#     option exits 2;
#   - mixbench's memory figure, which is a count, not a time: a 4 MiB ring
#     of 64-byte cells holds the 90% 64 B / 10% 64 KiB stream's messages at
#     its documented cost (slots x (16 + cell_bytes) bytes), at least 8x as
#     many as a ring of 64 KiB slots of about the same memory;
#   - fanout and ipcbench's shmbus-cells run a few thousand messages with
#     every one checked (a lost, repeated, reordered or torn message fails
#     them).
# The benches link the plain library of build/, so under ASan (BUILD=
# build-asan) there is nothing new to check: the script says so and passes.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
fail=0
bad() { echo "FAIL  $*"; fail=1; }
ok() { echo "ok    $*"; }

if [ "$BUILD" != build ]; then
	echo "ok    the benches link build/'s plain library: nothing to check with BUILD=$BUILD"
	exit 0
fi
[ -f build/libshmbus.a ] || { echo "FAIL  build/libshmbus.a missing: run make first"; exit 1; }

T=$(mktemp -d /tmp/shmbus-t-bench.XXXXXX)
trap 'rm -rf "$T"' EXIT

if make -s -C bench SHMBUS_BUILD=build all >"$T/build.log" 2>&1; then
	ok "make -C bench all"
else
	tail -30 "$T/build.log"; bad "make -C bench all failed"; exit 1
fi

for p in ipcbench statebench queuebench waitbench mixbench fanout qcost; do
	[ -x "bench/$p" ] || { bad "bench/$p was not built"; continue; }
	out=$("bench/$p" --help 2>&1); rc=$?
	if [ $rc -eq 0 ] && grep -qi "usage" <<<"$out"; then
		ok "$p --help"
	else
		bad "$p --help: exit $rc, output: $(head -3 <<<"$out")"
	fi
done
for p in ipcbench waitbench mixbench fanout; do
	"bench/$p" --no-such-option >/dev/null 2>&1; rc=$?
	[ $rc -eq 2 ] && ok "$p --no-such-option: exit 2" || bad "$p --no-such-option: exit $rc, not 2"
done

# The memory figure: a count, the same on any machine.
if timeout -k 5 120 bench/mixbench --only memory --json "$T/mix.json" >"$T/mix.out" 2>&1; then
	if "$PY" - "$T/mix.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
m = {x["layout"]: x for x in d["memory"]}
c, s = m["cells"], m["slots"]
assert c["status"] == "ok" and s["status"] == "ok", (c["status"], s["status"])
# The documented cost of a ring of cells, and what the library reports.
assert c["ring_bytes"] == c["slots"] * (16 + c["cell_bytes"]) == c["ring_bytes_area_size"], c
assert c["slots"] * c["cell_bytes"] == 4 << 20, c
# The stream: 9 of every 10 messages take one cell, the tenth 1024 cells
# (64 KiB exactly): 65536 cells hold about 65536 / (9 + 1024) x 10 of them,
# less what a pad at the ring's end takes.
assert 600 <= c["held"] <= 640, c["held"]
assert s["held"] == s["slots"] == 64, s
assert c["held"] >= 8 * s["held"], (c["held"], s["held"])
print(f"cells hold {c['held']} messages in {c['ring_bytes']} B; slots {s['held']} in {s['ring_bytes']} B")
EOF
	then ok "mixbench: a 4 MiB ring of cells holds >= 8x the messages of 64 KiB slots"
	else bad "mixbench memory figure"; cat "$T/mix.out"
	fi
else
	bad "mixbench --only memory failed"; cat "$T/mix.out"
fi

# Every message checked; the figures are not looked at.
if timeout -k 5 300 bench/fanout --only shmbus --groups 1,4 --n 3000 --runs 1 --timeout 240 \
	>"$T/fanout.out" 2>&1; then
	ok "fanout: 3000 messages to 1 and 4 groups, each checked in order"
else
	bad "fanout --only shmbus failed"; tail -20 "$T/fanout.out"
fi
if timeout -k 5 300 bench/ipcbench --only shmbus-cells --sizes 64,64K --tests oneway,pingpong \
	--runs 1 --time 0.05 --results "$T" --json "$T/ipc.json" >"$T/ipc.out" 2>&1 &&
   "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; bad=[x for x in r if x["status"]!="ok"]; sys.exit(1 if bad or not r else 0)' "$T/ipc.json"; then
	ok "ipcbench shmbus-cells: one-way and round trips at 64 B and 64 KiB, every message checked"
else
	bad "ipcbench --only shmbus-cells failed"; tail -20 "$T/ipc.out"
fi

exit $fail

#!/usr/bin/env bash
# bench-ab.sh -- A/B two revisions of shmbus in one run: build the library
# and the benchmarks of each into a scratch directory, run them in
# interleaved rounds (A B, B A, ...), print the median of each figure and the
# ratio B/A.
#
#   bash scripts/bench-ab.sh OLD [NEW] [ROUNDS]
#     OLD, NEW  git revisions (NEW defaults to HEAD); ROUNDS defaults to 9
#
# Figures: statebench (--quick: state spin and park one-way latency, and
# their ratios to the raw cache line and the bare futex of the same blocks),
# ipcbench's shmbus queue (one-way 8 B and 4 KiB, ping-pong p50), queuebench
# (delivered messages/s per scenario, median of 3 runs). On a shared or
# virtual machine the absolute figures swing with the vCPUs' placement; the
# within-run ratios (spin / raw, park / futex) are the steadiest.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench-ab.sh OLD [NEW] [ROUNDS]}
NEW=${2:-HEAD}
ROUNDS=${3:-9}
WORK=$(mktemp -d /tmp/shmbus-ab.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
for v in old new; do
  rev=$OLD; [ $v = new ] && rev=$NEW
  mkdir -p "$WORK/$v"
  git archive "$rev" | tar -x -C "$WORK/$v"
  make -C "$WORK/$v" -j2 lib >/dev/null
  make -C "$WORK/$v/bench" NO_ZMQ=1 NO_ICEORYX=1 ipcbench statebench queuebench >/dev/null
done
echo "A = $OLD ($(git rev-parse --short "$OLD")), B = $NEW ($(git rev-parse --short "$NEW"))"
${PYTHON:-/usr/bin/python3} bench/ab.py "$WORK/old/bench" "$WORK/new/bench" "$ROUNDS" "$WORK"

#!/usr/bin/env bash
# bench.sh -- build shmbus and its benchmarks, run them all in one go, print
# the tables and the targets (met / not met).
#
#   bash scripts/bench.sh            full run (about 10 minutes): also writes
#                                    the generated part of docs/benchmarks.md
#                                    and docs/benchmarks-latency.png
#   bash scripts/bench.sh --quick    smoke run (well under a minute): every
#                                    program, every transport, briefly; writes
#                                    nothing under docs/ (figures meaningless)
#   bash scripts/bench.sh --no-docs  full run, leave docs/ alone
#   bash scripts/bench.sh --nice     run the benches (and iox-roudi) in a session of
#                                    their own at nice -20 (the scheduler shares the
#                                    CPUs between sessions first): other work on the
#                                    machine disturbs them far less, and is slowed
#                                    down meanwhile
#   bash scripts/bench.sh --only shmbus,rawring,...   ipcbench transports to run
#
# Environment: BENCH_BUILD  the library's build directory (default build)
#              PYTHON       interpreter with matplotlib (default /usr/bin/python3)
#
# What runs (all pinned to CPUs 0 and 1, see docs/benchmarks.md "Method"):
#   bench/ipcbench    shmbus queues and state channels against a raw ring, a
#                     cache line, a futex mailbox, pipe, Unix socket, POSIX mq,
#                     ZeroMQ ipc:// and iceoryx; throughput and round trips
#   bench/statebench  state channels against the raw cache line and a futex
#   bench/queuebench  many producers and consumer groups; frame writing
#   bench/waitbench   wake-ups through a wait set, its fd in epoll, a set of
#                     1000, against same-run baselines (park and spin-park)
#   bench/mixbench    a stream of 90% 64 B and 10% 64 KiB messages: queue of
#                     cells, of slots, a raw ring; messages a ring holds
#   bench/fanout      one producer to 1, 4, 16, 64 broadcast groups, shmbus
#                     beside iceoryx (its own iox-roudi, more chunks); plot
# iceoryx needs its daemon: this script starts iox-roudi with
# bench/roudi.toml and stops it by pid at the end (also on Ctrl+C).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
docs=1
NICE=0
ONLY=()
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --no-docs) docs=0 ;;
    --nice) NICE=1 ;;
    --only) [ $# -ge 2 ] || { echo "bench.sh: --only needs a list" >&2; exit 2; }
            ONLY=(--only "$2"); shift ;;
    -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ $quick -eq 1 ] && docs=0

# The peers (ZeroMQ, iceoryx, NATS), matplotlib and the compilers come from
# Debian, installed by the same script the tests use.
bash scripts/deps.sh

BUILD=${BENCH_BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
if [ $quick -eq 1 ]; then
  RES=bench/results-quick
  IPC_ARGS=(--quick --runs 1 --sizes 8,64,4K,1M,8M)
  SB_ARGS=(--quick)
  QB_ARGS=(--quick)
else
  RES=bench/results
  IPC_ARGS=(--runs 5 --time 0.5 --sizes 8,64,4K,1M,8M)
  SB_ARGS=()
  QB_ARGS=(--runs 5)
fi

read -r load1 _ < /proc/loadavg
if awk -v l="$load1" 'BEGIN { exit !(l > 1.0) }'; then
  echo "bench.sh: load average $load1: other work is running; spinning transports and round trips" >&2
  echo "          will be disturbed (see the cache-line round trip before/after in the report)" >&2
fi

echo "== build (library in $BUILD/, benches in bench/)"
make -s BUILD="$BUILD" lib
make -s -C bench SHMBUS_BUILD="$BUILD" all
mkdir -p "$RES"

# spawn CMD...: starts CMD in the background, as $! itself (no shell in
# between); with --nice in a new session (so a new scheduler autogroup,
# whose process group id is $!) at nice -20, autogroup and process alike.
spawn() {
  if [ "$NICE" = 1 ]; then
    ( exec setsid bash -c 'echo -20 > /proc/self/autogroup 2>/dev/null || true; exec nice -n -20 "$@"' spawn "$@" ) &
  else
    ( exec "$@" ) &
  fi
}
# fg CMD...: spawn CMD and wait for it; Ctrl+C reaches it through cleanup
# (in another session it does not get the terminal's signal itself).
child=
fg() {
  spawn "$@"
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=
  return $rc
}

roudi_pid=
roudi_log=
cleanup() {
  if [ -n "$child" ]; then
    kill -INT -- "-$child" 2>/dev/null || kill -INT "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
    child=
  fi
  if [ -n "$roudi_pid" ]; then
    kill -TERM "$roudi_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$roudi_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$roudi_pid" 2>/dev/null || true
    wait "$roudi_pid" 2>/dev/null || true
    roudi_pid=
  fi
  if [ -n "$roudi_log" ]; then rm -f "$roudi_log"; fi
  roudi_log=
  return 0
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

if bench/ipcbench --list | grep -q '^iceoryx ' && command -v iox-roudi >/dev/null; then
  roudi_log=$(mktemp /tmp/shmbus-bench-roudi.XXXXXX)
  spawn iox-roudi -c bench/roudi.toml -m off -l warning >"$roudi_log" 2>&1
  roudi_pid=$!
  for _ in $(seq 100); do
    grep -q "RouDi is ready for clients" "$roudi_log" && break
    kill -0 "$roudi_pid" 2>/dev/null || break
    sleep 0.1
  done
  if grep -q "RouDi is ready for clients" "$roudi_log"; then
    echo "== iox-roudi started (pid $roudi_pid)"
    export IPCBENCH_ROUDI_EXTERNAL=1
  else
    echo "== iox-roudi did not start (another RouDi running?); log:" >&2
    sed 's/^/   /' "$roudi_log" >&2
    kill -KILL "$roudi_pid" 2>/dev/null || true
    wait "$roudi_pid" 2>/dev/null || true
    roudi_pid=
  fi
fi

status=0
echo "== ipcbench ${IPC_ARGS[*]}"
fg bench/ipcbench "${IPC_ARGS[@]}" "${ONLY[@]}" --results "$RES" --json "$RES/ipcbench.json" || status=1
cleanup   # RouDi is only needed by ipcbench

echo
echo "== statebench ${SB_ARGS[*]}"
fg bench/statebench "${SB_ARGS[@]}" --json "$RES/statebench.json" || status=1

echo
echo "== queuebench ${QB_ARGS[*]}"
fg bench/queuebench "${QB_ARGS[@]}" --json "$RES/queuebench.json" || status=1

echo
echo "== waitbench ${SB_ARGS[*]}"
fg bench/waitbench "${SB_ARGS[@]}" --json "$RES/waitbench-park.json" || status=1
fg bench/waitbench "${SB_ARGS[@]}" --policy spin-park --json "$RES/waitbench-spin-park.json" || status=1

echo
echo "== mixbench ${QB_ARGS[*]}"
fg bench/mixbench "${QB_ARGS[@]}" --json "$RES/mixbench.json" || status=1

# fanout starts an iox-roudi of its own, with chunks for 64 subscribers'
# queues (the one above was stopped after ipcbench).
if [ $quick -eq 1 ]; then FO_ARGS=(--quick); else FO_ARGS=(--runs 3 --n 100000); fi
echo
echo "== fanout ${FO_ARGS[*]}"
unset IPCBENCH_ROUDI_EXTERNAL
fg bench/fanout "${FO_ARGS[@]}" --json "$RES/fanout.json" || status=1

# The Python binding against multiprocessing, and a queue across the NATS
# bridge against NATS used directly: full runs only (they write their own
# docs/benchmarks-python.md and the table for docs/benchmarks-bridge.md).
if [ $quick -eq 0 ]; then
  if make python PYTHON="$PY" >/dev/null 2>&1; then
    echo
    echo "== Python (bench/python/bench.py)"
    py_args=(); [ $docs -eq 1 ] || py_args=(--no-write)
    PYTHONPATH=python fg "$PY" bench/python/bench.py "${py_args[@]}" || status=1
  fi
  if [ -x build/bridge/shmbus-bridge ] && command -v nats-server >/dev/null; then
    echo
    echo "== queue across the NATS bridge (bench/bridge/bench.sh)"
    BUILD=build fg bash bench/bridge/bench.sh || status=1
  fi
fi

echo
report_args=(--results "$RES")
if [ $docs -eq 1 ]; then
  report_args+=(--doc docs/benchmarks.md)
  if "$PY" -c 'import matplotlib' 2>/dev/null; then
    "$PY" bench/plot.py --json "$RES/ipcbench.json" --size 8 --out docs/benchmarks-latency.png || status=1
    if [ -f "$RES/fanout.json" ]; then
      "$PY" bench/plot_fanout.py "$RES/fanout.json" docs/benchmarks-fanout.png || status=1
    fi
  else
    echo "bench.sh: $PY has no matplotlib: no latency plot" >&2
  fi
fi
"$PY" bench/mkreport.py "${report_args[@]}" || status=1
exit $status

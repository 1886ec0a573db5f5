#!/usr/bin/env bash
# bench.sh -- a shmbus queue carried across two bridges and a NATS server,
# versus the same messages sent with NATS directly (core pub/sub, and
# JetStream with acks, which gives the same no-loss promise as the bridge).
# Everything on loopback on this host. Prints a markdown table; the numbers
# in docs/benchmarks-bridge.md come from it.
#
#   BUILD=build bash bench/bridge/bench.sh     (N, LAT_N, SIZES overridable)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
NB=$BUILD/bridge/natsbench
BR=$BUILD/bridge/shmbus-bridge
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
N=${N:-50000}
LAT_N=${LAT_N:-3000}
LAT_RATE=${LAT_RATE:-1000}
SIZES=${SIZES:-"64 1024"}
[ -x "$NB" ] && [ -x "$BR" ] || { echo "build first: make BUILD=$BUILD"; exit 1; }
TMP=$(mktemp -d /tmp/shmbus-bridge-bench.XXXXXX)
PORT=$((18000 + $$ % 1000))   # below the ephemeral port range
URL=nats://127.0.0.1:$PORT
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -f /dev/shm/shmbus-bench_br_$$_*
  rm -rf "$TMP"
}
trap cleanup EXIT
"$NATS" -js -a 127.0.0.1 -p $PORT -sd "$TMP/store" >"$TMP/nats.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do grep -q "Server is ready" "$TMP/nats.log" && break; sleep 0.1; done

bridge_run() {  # bridge_run TAG N SIZE RATE
  local a=bench_br_$$_$1a b=bench_br_$$_$1b pa pb out
  "$BR" --name bx$1 --nats $URL --prefix bench$1 --export $a:bench 2>>"$TMP/bridges.log" & pa=$!
  "$BR" --name by$1 --nats $URL --prefix bench$1 --import-queue $b:bench --max-msg 4096 2>>"$TMP/bridges.log" & pb=$!
  out=$("$NB" bridge $a $b "$2" "$3" "$4")
  kill -TERM $pa $pb; wait $pa $pb
  echo "$out"
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

echo "| size | transport | msgs/s | one-way latency at ${LAT_RATE}/s: p50 / p99 / max (us) |"
echo "|---:|---|---:|---|"
i=0
for size in $SIZES; do
  for mode in core js bridge; do
    i=$((i+1))
    if [ $mode = bridge ]; then
      tp=$(bridge_run t$i "$N" "$size" 0); lat=$(bridge_run l$i "$LAT_N" "$size" "$LAT_RATE")
    else
      tp=$("$NB" $mode $URL "$N" "$size" 0); lat=$("$NB" $mode $URL "$LAT_N" "$size" "$LAT_RATE")
    fi
    case $mode in core) name="NATS core pub/sub (no persistence, no acks)";;
      js) name="NATS JetStream, async publish + pull consumer with acks";;
      bridge) name="shmbus queue -> bridge -> JetStream -> bridge -> shmbus queue";; esac
    echo "| $size | $name | $(field "$tp" msgs_per_s) | $(field "$lat" p50_us) / $(field "$lat" p99_us) / $(field "$lat" max_us) |"
  done
done

#!/usr/bin/env bash
# run.sh -- the plant/controller demo across machines: the plant runs on one
# bus, the controller on another, and two shmbus-bridge processes carry the
# state channels between them through a NATS server (JetStream enabled).
# On real machines each half runs on its own host against a shared server;
# here everything runs on loopback. Then a queue crosses the same way.
#
#   plant --bus A  <->  bridge "plant-side"  <->  nats-server  <->
#                       bridge "ctl-side"    <->  controller --bus B
#
# Exit 0 when the loop converged through NATS and the queue arrived whole.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BR=$BUILD/bridge/shmbus-bridge
EX=$BUILD/examples/plant_controller
TOOL=$BUILD/bridge/bridgetool
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
for f in "$BR" "$EX/plant" "$EX/controller" "$NATS"; do
  [ -x "$f" ] || { echo "bridge demo: $f is missing (make; apt install nats-server libnats-dev)"; exit 1; }
done

TMP=$(mktemp -d /tmp/shmbus-bridge-demo.XXXXXX)
PORT=$((17000 + $$ % 1000))   # below the ephemeral port range
A=demo_bridge_plant_$$
B=demo_bridge_ctl_$$
PRE=demo$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  [ -x "$TOOL" ] && "$TOOL" rm "$A" "$B" 2>/dev/null
  rm -f "/dev/shm/shmbus-$A" "/dev/shm/shmbus-$B"
  rm -rf "$TMP"
}
trap cleanup EXIT

"$NATS" -js -a 127.0.0.1 -p $PORT -sd "$TMP/store" >"$TMP/nats.log" 2>&1 & nats=$!; pids+=($nats)
for _ in $(seq 50); do grep -q "Server is ready" "$TMP/nats.log" && break; sleep 0.1; done
URL=nats://127.0.0.1:$PORT
echo "nats-server (JetStream) on $URL"

# the plant's machine: export y and done, import the controller's u
"$BR" --name plant-side --nats $URL --prefix $PRE \
  --export $A:y --export $A:done --import-state $A:u 2>"$TMP/plant-side.log" & b1=$!; pids+=($b1)
# the controller's machine: export u, import y and done
"$BR" --name ctl-side --nats $URL --prefix $PRE \
  --export $B:u --import-state $B:y --import-state $B:done 2>"$TMP/ctl-side.log" & b2=$!; pids+=($b2)

"$EX/plant" --bus $A & plant=$!; pids+=($plant)
sleep 0.5
"$EX/controller" --bus $B & ctl=$!; pids+=($ctl)
wait $plant; p=$?
wait $ctl; c=$?
echo "plant exit $p, controller exit $c"
rc=$((p + c))

if [ -x "$TOOL" ]; then
  echo
  echo "a queue across the same bridges: 20000 checked messages from a producer on bus A"
  echo "to two consumer groups on bus B (each group gets every message, in order)"
  kill -TERM $b1 $b2; wait $b1 $b2
  "$TOOL" produce $A jobs 0 0 >/dev/null
  "$BR" --name plant-side --nats $URL --prefix $PRE --export $A:jobs 2>>"$TMP/plant-side.log" & b1=$!; pids+=($b1)
  "$BR" --name ctl-side --nats $URL --prefix $PRE --import-queue $B:jobs --max-msg 256 2>>"$TMP/ctl-side.log" & b2=$!; pids+=($b2)
  "$TOOL" consume $B jobs workers 20000 60 eos & cons=$!; pids+=($cons)
  "$TOOL" consume $B jobs audit 20000 60 eos & cons2=$!; pids+=($cons2)
  # the exporting bridge's consumer group must exist before the producer
  # starts, or a producer with no group to gate it may overwrite the ring
  for _ in $(seq 100); do
    [ "$("$TOOL" get $A _bridge.plant-side 2>/dev/null | awk '{print $8}')" = 1 ] && break; sleep 0.1
  done
  "$TOOL" produce $A jobs 20000 1 shut || rc=1
  wait $cons || rc=1
  wait $cons2 || rc=1
fi

echo
echo "bridge status in bus $B (_bridge.ctl-side: version pid running connected reconnects links running failed out in ...):"
[ -x "$TOOL" ] && "$TOOL" get $B _bridge.ctl-side
kill -TERM $b1 $b2
wait $b1; s1=$?; wait $b2; s2=$?
[ $s1 -eq 0 ] && [ $s2 -eq 0 ] || { echo "a bridge did not stop cleanly ($s1, $s2)"; rc=1; }
kill -TERM $nats; wait $nats 2>/dev/null
# a server that crashed is a failure, and its panic is shown
if grep -qE '^(panic: |fatal error: )' "$TMP/nats.log"; then
  echo "nats-server crashed:"; sed -nE '/^(panic: |fatal error: )/,$p' "$TMP/nats.log" | head -40
  rc=1
fi
if [ $rc -ne 0 ]; then
  echo "--- bridge logs"; tail -n 15 "$TMP/plant-side.log" "$TMP/ctl-side.log"
fi
exit $rc

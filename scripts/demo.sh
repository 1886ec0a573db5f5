#!/usr/bin/env bash
# demo.sh -- the README's first command: build shmbus and run its use cases
# end to end, each as separate processes that check their own results.
set -u
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
B=build/examples
ok=0; bad=0

step() { printf '\n=== %s\n' "$*"; }
check() { if [ "$1" -eq 0 ]; then ok=$((ok+1)); echo "--- ok: $2"; else bad=$((bad+1)); echo "--- FAILED ($1): $2"; fi; }

bash scripts/deps.sh || exit 1
make -j"$(nproc)" all >/tmp/shmbus-demo-build.log 2>&1 || { tail -30 /tmp/shmbus-demo-build.log; exit 1; }

step "1. plant (20 Hz) and PI controller (40 Hz) in two processes, latest-value state channels"
$B/plant_controller/controller --bus demo_plant & ctl=$!
sleep 0.3
$B/plant_controller/plant --bus demo_plant; p=$?
wait $ctl; c=$?
check $((p + c)) "plant/controller (C)"

step "1b. the controller waiting on y, a setpoint and a command queue at once (one wait set)"
$B/plant_controller/controller_ws --bus demo_plant_ws & ctl=$!
$B/plant_controller/operator --bus demo_plant_ws; p=$?
wait $ctl; c=$?
check $((p + c)) "controller on a wait set: setpoint change, reset and stop commands"

step "1c. a socket and a shmbus queue in one epoll loop (the wait set's fd), the other side in a second process"
$B/epoll/epoll_loop --bus demo_epoll; check $? "epoll loop: socket and queue"

if [ -x $B/producer_consumers/demo ]; then
  step "2. one producer fanning out to consumer processes: broadcast and work queue"
  $B/producer_consumers/demo; check $? "producer/consumers (C)"
fi

step "3. a 1024x1024 float64 matrix (8 MiB) per frame, written and read in place"
$B/matrix_stream/matrix_reader demo_matrix & rd=$!
$B/matrix_stream/matrix_writer --bus demo_matrix --frames 120 --hz 60 --wait-reader 10; w=$?
wait $rd; check $((w + $?)) "matrix stream C -> C"
if [ -f examples/python/matrix_reader.py ] && make python >/dev/null 2>&1; then
  step "3b. the same frames into numpy"
  PYTHONPATH=python $PY examples/python/matrix_reader.py --writer $B/matrix_stream/matrix_writer
  check $? "matrix stream C -> Python"
  if [ -x $B/matrix_stream/matrix_writer_cpp ]; then
    step "3c. the simulation in C++ (shmbus.hpp), the frames into numpy"
    PYTHONPATH=python $PY examples/python/matrix_reader.py --writer $B/matrix_stream/matrix_writer_cpp
    check $? "matrix stream C++ -> Python"
  fi
fi

if [ -d examples/python ] && make python >/dev/null 2>&1; then
  for ex in plant_controller.py producer_consumers.py shared_counter.py persistent.py asyncio_service.py; do
    [ -f examples/python/$ex ] || continue
    step "Python: $ex"
    PYTHONPATH=python $PY examples/python/$ex; check $? "python $ex"
  done
fi

if [ -f examples/bridge/run.sh ] && [ -x build/bridge/shmbus-bridge ]; then
  step "6. the plant/controller pair on two buses joined through NATS (JetStream)"
  bash examples/bridge/run.sh; check $? "across NATS"
fi

echo
echo "demo: $ok passed, $bad failed"
left=$(ls /dev/shm | grep '^shmbus-demo' || true)
[ -n "$left" ] && echo "demo: left in /dev/shm: $left"
[ $bad -eq 0 ]

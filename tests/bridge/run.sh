#!/usr/bin/env bash
# run.sh -- tests of shmbus-bridge against real nats-server processes on
# loopback (high ports, a store directory under a temp dir; every server and
# bridge is stopped by its pid, every bus removed at the end).
#
# Each check is named for what it proves and can fail:
#   state_round_trip_types     values of several dtypes/shapes cross intact;
#                              a type mismatch stops the import with an error
#                              naming both types; the status channel counts
#   late_joiner_gets_value     an importer started after the exporter stopped
#                              gets the current value from the KV bucket
#   late_joiner_after_last_write
#                              an importer that starts just after the last
#                              write (published live before it subscribed,
#                              its KV store deferred) gets that value within
#                              one KV interval, not the older stored one
#   seed000_two_buses          seed 000's plant (bus A) and controller (bus B),
#                              its code as written, joined by two bridges: the
#                              plant's own write of u meets the imported u
#                              without stopping the link; y converges to 5
#   local_writer_meets_import  a live local single writer keeps an import out
#                              without stopping the link (the value waits and
#                              lands when it stops); a channel exported and
#                              imported by both bridges does not echo, and
#                              when both sides write it at once both keep
#                              the later write
#   token_auth_and_config_file a server with a token: a bridge with a wrong
#                              one stops with a clear error; one started
#                              before the server, with the token in a config
#                              file, connects when it comes up and carries
#   malformed_nats_url         --nats "this is not a url" (and a bad port,
#                              a bad scheme, in a config file too) is a
#                              configuration error: exit 2 at once, the URL
#                              and the reason named; not an endless retry
#   state_survives_server_restart
#                              the server is SIGKILLed and restarted; both
#                              bridges reconnect and values cross again
#   queue_exact_N              N messages (checksums, order, nothing missing or
#                              duplicated, end of stream) cross the bridge
#   queue_of_cells_exact_N     the same through queues of 64-byte cells at both
#                              ends (messages of 1 to 4 cells; the importing
#                              bridge makes its queue with --cell-bytes)
#   queue_nats_server_killed   the server is SIGKILLed mid-stream and restarted
#   queue_bridges_killed       each bridge is SIGKILLed mid-stream and restarted
#   queue_cluster_node_killed  a 3-node JetStream cluster (3 replicas) loses
#                              the node the bridges use, mid-stream
#
# Environment: BUILD (default build), SHMBUS_TEST_SCALE (default 1; scales the
# message counts), ONLY="name ..." runs only those checks (by check name,
# e.g. local_writer_meets_import, or function, t_local_meets), KEEP=1 keeps the
# temp dir, NATS_TRACE=1 runs the servers with -DV, FAILED_LOGS=DIR is where
# the logs of a failed check are copied (default /tmp/shmbus-bridge-failed.PID).
# A nats-server that panics fails the check that started it, and its panic
# is printed.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BR=$BUILD/bridge/shmbus-bridge
TOOL=$BUILD/bridge/bridgetool
SCALE=${SHMBUS_TEST_SCALE:-1}
ONLY=${ONLY:-}

if [ ! -x "$BR" ] || [ ! -x "$TOOL" ]; then
  echo "bridge tests: $BR not built (libnats missing?): skipped"; exit 0
fi
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$NATS" ] || { echo "bridge tests: nats-server not installed"; exit 1; }

TMP=$(mktemp -d /tmp/shmbus-bridge-test.XXXXXX)
PIDS=()
NATS_NAMES=()
TAG=$$
# 100 ports of our own, below the ephemeral range (32768..)
BASE=$((20000 + (TAG % 120) * 100))
pass=0; fail=0; failed=()

remove_buses() {
  local f
  for f in /dev/shm/shmbus-t-br$TAG-*; do
    [ -e "$f" ] && "$TOOL" rm "${f#/dev/shm/shmbus-}"
  done
}
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  remove_buses
  if [ -n "${KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bus() { echo "t-br$TAG-$1"; }

# The servers run as docs/bridge.md recommends: JetStream fsyncs every write
# before it acknowledges (`sync_interval: always`, nats-server 2.10 and
# later). An older server does not know the setting; it then runs with its
# built-in periodic sync and the tests say so (what they prove does not
# depend on it: no test cuts a host's power).
printf 'jetstream {\n  sync_interval: always\n}\n' >"$TMP/sync-always.conf"
if "$NATS" -c "$TMP/sync-always.conf" -js -sd "$TMP/probe.store" -t >/dev/null 2>&1; then
  NATS_SYNC=(-c "$TMP/sync-always.conf")
  SYNC_NOTE="sync_interval: always"
else
  NATS_SYNC=()
  SYNC_NOTE="server's periodic sync (this nats-server has no sync_interval)"
fi

# start_nats NAME PORT [args...]: a JetStream server with its own store and
# a monitor port (PORT + 50); ready when it logged "Server is ready" and its
# /healthz?js-enabled-only=true answers ok (JetStream enabled). Bridges start
# only after that. NATS_TRACE=1 adds -DV (protocol trace) to every server.
start_nats() {
  local name=$1 port=$2; shift 2
  local mport=$((port + 50)) before pid
  before=$(grep -c 'Server is ready' "$TMP/$name.log" 2>/dev/null || echo 0)
  "$NATS" ${NATS_SYNC[@]+"${NATS_SYNC[@]}"} -js -a 127.0.0.1 -p "$port" -m "$mport" \
    -sd "$TMP/$name.store" ${NATS_TRACE:+-DV} "$@" >>"$TMP/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid"); echo "$pid" >"$TMP/$name.pid"
  NATS_NAMES+=("$name")
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "nats-server $name on port $port exited while starting"; return 1
    fi
    if [ "$(grep -c 'Server is ready' "$TMP/$name.log" 2>/dev/null)" -gt "$before" ] &&
       healthz "$mport" js-enabled-only=true; then
      return 0
    fi
    sleep 0.1
  done
  echo "nats-server $name on port $port not ready after 15 s"
  return 1
}
# healthz MPORT QUERY: the monitor's /healthz says ok (no curl needed)
healthz() {
  local r
  r=$(exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null &&
      printf 'GET /healthz?%s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3 &&
      timeout 2 cat <&3) || return 1
  [[ $r == *'"status":"ok"'* || $r == *'"status": "ok"'* ]]
}
# server_deaths: print (and fail on) every Go panic or fatal error in the
# logs of the servers this check started: a crash is never hidden, even
# when the check's own assertions happened to pass
server_deaths() {
  local n f found=0
  for n in $(printf '%s\n' "${NATS_NAMES[@]:$1}" | sort -u); do
    f="$TMP/$n.log"
    [ -f "$f" ] || continue
    if grep -qE '^(panic: |fatal error: |SIG[A-Z]+: )' "$f"; then
      found=1
      echo "    !! nats-server $n crashed; its log from the panic on (first 60 lines):"
      sed -nE '/^(panic: |fatal error: |SIG[A-Z]+: )/,$p' "$f" | head -60 | sed 's/^/    ! /'
    fi
  done
  [ $found -eq 0 ]
}
kill_pid() { local p; p=$(cat "$TMP/$1.pid"); echo "$p" >>"$TMP/killed"; kill -"$2" "$p" 2>/dev/null; wait "$p" 2>/dev/null; return 0; }

# start_bridge NAME args...: a bridge in the background, log in $TMP/NAME.log
start_bridge() {
  local name=$1; shift
  "$BR" --name "$name" --status-ms 200 "$@" >>"$TMP/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid"); echo "$pid" >"$TMP/$name.pid"
}
# stop_bridge NAME: SIGTERM, and the bridge must exit 0 within 10 s
stop_bridge() {
  local p rc; p=$(cat "$TMP/$1.pid")
  kill -TERM "$p" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then echo "bridge $1 did not stop on SIGTERM"; kill -KILL "$p"; wait "$p"; return 1; fi
  wait "$p"; rc=$?
  [ $rc -eq 0 ] || echo "bridge $1 exited $rc after SIGTERM"
  return $rc
}

# wait_for SECONDS CMD...: poll until CMD succeeds
wait_for() {
  local limit=$1; shift
  local end=$(( $(date +%s) + limit ))
  while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# status field BUS BRIDGE INDEX
status_field() {
  "$TOOL" get "$1" "_bridge.$2" 2>/dev/null | awk -v i="$3" '{ printf "%d\n", $(i + 2) }'
}

check() {  # check NAME FUNCTION
  local name=$1 fn=$2 t0 rc
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $fn "* && " $ONLY " != *" $name "* ]]; then return; fi
  local npids=${#PIDS[@]} nnats=${#NATS_NAMES[@]} i deaths
  t0=$(date +%s)
  { $fn; } >"$TMP/check-$fn.out" 2>&1; rc=$?
  # a server of this check that is gone though the check did not stop it
  for ((i = nnats; i < ${#NATS_NAMES[@]}; i++)); do
    local sp; sp=$(cat "$TMP/${NATS_NAMES[$i]}.pid" 2>/dev/null)
    if [ -n "$sp" ] && ! kill -0 "$sp" 2>/dev/null && ! grep -qx "$sp" "$TMP/killed" 2>/dev/null; then
      echo "nats-server ${NATS_NAMES[$i]} (pid $sp) died without being stopped" >>"$TMP/check-$fn.out"
      echo "$sp" >>"$TMP/killed"; rc=1
    fi
  done
  # whatever this check left running is stopped now
  for ((i = npids; i < ${#PIDS[@]}; i++)); do kill -KILL "${PIDS[$i]}" 2>/dev/null; wait "${PIDS[$i]}" 2>/dev/null; done
  # a server that crashed fails the check, whatever the check found
  deaths=$(server_deaths "$nnats") || rc=1
  if [ $rc -eq 0 ]; then
    pass=$((pass+1)); printf 'PASS  %-40s %4ss\n' "$name" $(( $(date +%s) - t0 ))
    sed 's/^/      /' "$TMP/check-$fn.out" | tail -8
  else
    fail=$((fail+1)); failed+=("$name")
    printf 'FAIL  %-40s %4ss\n' "$name" $(( $(date +%s) - t0 ))
    sed 's/^/    | /' "$TMP/check-$fn.out" | tail -40
    [ -n "$deaths" ] && echo "$deaths"
    # this check's logs: servers in full (without -DV trace lines), bridges'
    # last lines; all of them are also kept in FAILED_LOGS
    for ((i = nnats; i < ${#NATS_NAMES[@]}; i++)); do echo "${NATS_NAMES[$i]}"; done | sort -u >"$TMP/check-$fn.servers"
    for f in "$TMP"/*.log; do
      local n; n=$(basename "$f" .log)
      if grep -qx "$n" "$TMP/check-$fn.servers"; then
        # (a panic's goroutine dump, already shown above, is cut)
        echo "    == $n.log (nats-server, whole up to any crash)"
        grep -vE '\[(TRC|DBG)\]' "$f" | sed -E '/^(panic: |fatal error: |SIG[A-Z]+: )/,$d' |
          tail -200 | sed 's/^/    | /'
      else
        echo "    == $n.log"; grep -v ' debug: ' "$f" | tail -12 | sed 's/^/    | /'
      fi
    done
    local keep=${FAILED_LOGS:-/tmp/shmbus-bridge-failed.$TAG}
    mkdir -p "$keep/$fn" && cp "$TMP"/*.log "$TMP/check-$fn.out" "$keep/$fn/" 2>/dev/null &&
      echo "    (all logs of this run so far kept in $keep/$fn)"
  fi
}

# --------------------------------------------------------------------------

t_state() {
  local A B C url P=$((BASE + 1)) pre="t$TAG.st"
  A=$(bus stA); B=$(bus stB); C=$(bus stC)
  url=nats://127.0.0.1:$P
  start_nats st $P || return 1
  # values written before the bridges start (they travel through the KV bucket)
  "$TOOL" put "$A" f64 float64 3 1.5 -2.25 3e300 || return 1
  "$TOOL" put "$A" i32 int32 2,3 1 -2 3 -4 5 -2147483648 || return 1
  start_bridge st-a --nats $url --prefix $pre --export "$A:f64" --export "$A:i32" \
    --export "$A:u8" --export "$A:flag" --export "$A:big=renamed"
  "$TOOL" put "$A" u8 uint8 5 0 1 127 128 255 || return 1
  "$TOOL" put "$A" flag bool 1 1 || return 1
  "$TOOL" put "$A" big float32 64,16 $(seq 1 1024) >/dev/null || return 1
  start_bridge st-b --nats $url --prefix $pre --import "$B:f64" --import "$B:i32" \
    --import-state "$B:u8" --import-state "$B:flag" --import-state "$B:big2=renamed"
  "$TOOL" expect "$B" f64 10000 float64 3 1.5 -2.25 3e300 || return 1
  "$TOOL" expect "$B" i32 10000 int32 2,3 1 -2 3 -4 5 -2147483648 || return 1
  "$TOOL" expect "$B" u8 10000 uint8 5 0 1 127 128 255 || return 1
  "$TOOL" expect "$B" flag 10000 bool 1 1 || return 1
  "$TOOL" expect "$B" big2 10000 float32 64,16 $(seq 1 1024) || return 1
  # live updates after both are running
  for v in 1 2 3 4 5; do "$TOOL" put "$A" f64 float64 3 $v $v $v >/dev/null || return 1; done
  "$TOOL" expect "$B" f64 5000 float64 3 5 5 5 || return 1
  # the status channel: running, connected, values in counted
  in_ge() { local v; v=$(status_field "$B" st-b 9); [ -n "$v" ] && [ "$v" -ge 6 ]; }
  wait_for 5 in_ge || { echo "status of st-b: $("$TOOL" get "$B" _bridge.st-b)"; return 1; }
  [ "$(status_field "$B" st-b 2)" = 1 ] && [ "$(status_field "$B" st-b 3)" = 1 ] || {
    echo "status of st-b not running+connected: $("$TOOL" get "$B" _bridge.st-b)"; return 1; }
  # a local channel of another type: the import stops with a clear error
  "$TOOL" put "$C" f64 int32 2 7 8 >/dev/null || return 1
  "$BR" --name st-c --nats $url --prefix $pre --import-state "$C:f64" >"$TMP/st-c.log" 2>&1 &
  local cp=$!; PIDS+=("$cp")
  for _ in $(seq 1 100); do kill -0 $cp 2>/dev/null || break; sleep 0.1; done
  if kill -0 $cp 2>/dev/null; then echo "the mismatched import did not stop"; return 1; fi
  wait $cp; local rc=$?
  [ $rc -ne 0 ] || { echo "mismatched import exited 0"; return 1; }
  grep -q "type mismatch.*float64\[3\].*int32\[2\]" "$TMP/st-c.log" || {
    echo "no clear mismatch message:"; cat "$TMP/st-c.log"; return 1; }
  "$TOOL" expect "$C" f64 100 int32 2 7 8 || { echo "mismatched local channel was touched"; return 1; }
  stop_bridge st-a && stop_bridge st-b || return 1
  [ "$(status_field "$B" st-b 2)" = 0 ] || { echo "status still says running after stop"; return 1; }
  kill_pid st TERM
  echo "state round trip ok; mismatch message: $(grep -o 'type mismatch.*' "$TMP/st-c.log" | head -1)"
}

t_state_restart() {
  local A B url P=$((BASE + 6)) pre="t$TAG.sr" v
  A=$(bus srA); B=$(bus srB)
  url=nats://127.0.0.1:$P
  start_nats sr $P || return 1
  start_bridge sr-a --nats $url --prefix $pre --export "$A:v" --status-ms 100
  start_bridge sr-b --nats $url --prefix $pre --import-state "$B:v"
  "$TOOL" put "$A" v int64 4 1 2 3 4 >/dev/null || return 1
  "$TOOL" expect "$B" v 10000 int64 4 1 2 3 4 || return 1
  kill_pid sr KILL
  echo "server SIGKILLed"
  sleep 1
  start_nats sr $P || return 1
  # both bridges reconnect by themselves: a value written at once (maybe
  # before either is back) arrives, live or from the bucket after the
  # importer's reconnect; so does a value written later
  v=5
  "$TOOL" put "$A" v int64 4 5 5 5 5 >/dev/null || return 1
  "$TOOL" expect "$B" v 10000 int64 4 5 5 5 5 || return 1
  v=6
  "$TOOL" put "$A" v int64 4 6 6 6 6 >/dev/null || return 1
  "$TOOL" expect "$B" v 10000 int64 4 6 6 6 6 || return 1
  reconnected() { [ "$(status_field "$A" sr-a 4)" -ge 1 ] 2>/dev/null; }
  wait_for 5 reconnected || { echo "status does not count the reconnect: $("$TOOL" get "$A" _bridge.sr-a)"; return 1; }
  echo "value $v crossed after the restart; exporter status: $("$TOOL" get "$A" _bridge.sr-a)"
  stop_bridge sr-a && stop_bridge sr-b || return 1
  kill_pid sr TERM
}

t_bad_url() {
  local u rc A
  A=$(bus buA)
  printf 'nats nats://127.0.0.1:4222,nats://bad host:4222\n' >"$TMP/bu.conf"
  for u in "this is not a url" "nats://127.0.0.1:99999" "http://127.0.0.1:4222" "nats://" "config"; do
    if [ "$u" = config ]; then
      timeout 20 "$BR" --name bu --config "$TMP/bu.conf" --export "$A:v" >"$TMP/bu.log" 2>&1; rc=$?
      u="nats://bad host:4222"
    else
      timeout 20 "$BR" --name bu --nats "$u" --export "$A:v" >"$TMP/bu.log" 2>&1; rc=$?
    fi
    [ $rc -eq 2 ] || { echo "--nats '$u': exit $rc, expected 2 (124: still retrying after 20 s)"; cat "$TMP/bu.log"; return 1; }
    grep -qF "'$u' is not a NATS server URL" "$TMP/bu.log" || { echo "--nats '$u': no clear message:"; cat "$TMP/bu.log"; return 1; }
    echo "exit 2: $(head -1 "$TMP/bu.log")"
  done
}

t_auth() {
  local A B P=$((BASE + 7)) pre="t$TAG.au" url rc
  A=$(bus auA); B=$(bus auB); url=nats://127.0.0.1:$P
  # the importer starts before its server (it must keep trying) and reads
  # its settings, token included, from a config file
  printf 'nats %s\ntoken s3cret-%s\nprefix %s\n' "$url" "$TAG" "$pre" >"$TMP/au.conf"
  start_bridge au-b --config "$TMP/au.conf" --import-state "$B:v"
  sleep 1
  start_nats au $P --auth "s3cret-$TAG" || return 1
  "$TOOL" put "$A" v uint16 2 7 9 >/dev/null || return 1
  # a wrong token is a clear error, not an endless retry
  timeout 20 "$BR" --name au-x --nats $url --prefix $pre --token wrong --export "$A:v" >"$TMP/au-x.log" 2>&1; rc=$?
  [ $rc -eq 3 ] || { echo "bridge with a wrong token exited $rc, expected 3"; return 1; }
  grep -qi "authorization" "$TMP/au-x.log" || { echo "no clear message:"; cat "$TMP/au-x.log"; return 1; }
  echo "wrong token: $(grep -o 'connecting to.*' "$TMP/au-x.log")"
  start_bridge au-a --nats $url --prefix $pre --token "s3cret-$TAG" --export "$A:v"
  "$TOOL" expect "$B" v 10000 uint16 2 7 9 || return 1
  grep -h "late start" "$TMP/au-b.log"
  stop_bridge au-a && stop_bridge au-b || return 1
  kill_pid au TERM
}

t_late() {
  local A B url P=$((BASE + 2)) pre="t$TAG.late"
  A=$(bus laA); B=$(bus laB)
  url=nats://127.0.0.1:$P
  start_nats late $P || return 1
  "$TOOL" put "$A" pos float64 2 1 1 >/dev/null || return 1
  # a long KV interval: the last two values reach the bucket only through
  # the flush the exporter does when it stops
  start_bridge late-a --nats $url --prefix $pre --export "$A:pos" --kv-interval 60000
  sleep 0.5
  "$TOOL" put "$A" pos float64 2 2 2 >/dev/null || return 1
  "$TOOL" put "$A" pos float64 2 42 -42 >/dev/null || return 1
  sleep 0.3
  stop_bridge late-a || return 1
  # the exporter is gone; a bridge that starts now still gets the latest value
  local t0; t0=$(date +%s%N)
  start_bridge late-b --nats $url --prefix $pre --import "$B:pos"
  "$TOOL" expect "$B" pos 10000 float64 2 42 -42 || return 1
  echo "late joiner had the current value $(( ($(date +%s%N) - t0) / 1000000 )) ms after it started"
  stop_bridge late-b || return 1
  kill_pid late TERM
}

# The exporter stores v1 in the bucket at once, then v2 arrives within its
# 3 s KV interval: v2 goes out live at once but reaches the bucket only when
# the interval ends. An importer that starts after v2 went out (the status
# counts it) and before that store finds v1 in the bucket and missed v2 on
# the subject; it must still have v2 within one interval (+ margin: < 6.5 s
# from its start on a loaded machine), not v1 until the next write.
t_late_kv() {
  local A B url P=$((BASE + 5)) pre="t$TAG.lk" t0 ms out2
  A=$(bus lkA); B=$(bus lkB)
  url=nats://127.0.0.1:$P
  start_nats lk $P || return 1
  "$TOOL" put "$A" p float64 1 1 >/dev/null || return 1
  start_bridge lk-a --nats $url --prefix $pre --export "$A:p" --kv-interval 3000
  out1() { [ "$(status_field "$A" lk-a 8)" -ge 1 ] 2>/dev/null; }
  wait_for 10 out1 || { echo "v1 not exported"; return 1; }
  sleep 0.5                                   # v1 is in the bucket (the first store is at once)
  "$TOOL" put "$A" p float64 1 2 >/dev/null || return 1
  out2() { [ "$(status_field "$A" lk-a 8)" -ge 2 ] 2>/dev/null; }
  wait_for 10 out2 || { echo "v2 not exported"; return 1; }
  t0=$(date +%s%N)
  start_bridge lk-b --nats $url --prefix $pre --import-state "$B:p"
  "$TOOL" expect "$B" p 10000 float64 1 1 >/dev/null 2>&1 ||
    "$TOOL" expect "$B" p 100 float64 1 2 >/dev/null || { echo "no value at all"; return 1; }
  "$TOOL" expect "$B" p 8000 float64 1 2 || { echo "the late joiner kept v1: $("$TOOL" get "$B" p)"; return 1; }
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ $ms -lt 6500 ] || { echo "v2 only after $ms ms"; return 1; }
  echo "late joiner had the last value $ms ms after it started (KV interval 3000 ms)"
  stop_bridge lk-a && stop_bridge lk-b || return 1
  kill_pid lk TERM
}

# seed 000 (python/tests/seed000: the seed's plant.py and controller.py as
# written) across two buses: plant on A, controller on B, y and u carried by
# two bridges. The plant writes u = 0 on A and then the bridge writes the
# controller's u there: before several writers, that write failed and the
# import link stopped ("writing the local value: ... this link stops").
t_seed000() {
  local A B url P=$((BASE + 3)) pre="t$TAG.s0" PY=/usr/bin/python3 seed=python/tests/seed000
  A=$(bus s0A); B=$(bus s0B)
  url=nats://127.0.0.1:$P
  start_nats s0 $P || return 1
  start_bridge s0-a --nats $url --prefix $pre --export "$A:y" --import-state "$A:u"
  start_bridge s0-b --nats $url --prefix $pre --export "$B:u" --import-state "$B:y"
  (cd $seed && SEED000_BUS=$A PYTHONPATH=../..:${PYTHONPATH:-} exec $PY plant.py) >"$TMP/s0-plant.log" 2>&1 &
  local plant=$!; PIDS+=("$plant")
  (cd $seed && SEED000_BUS=$B PYTHONPATH=../..:${PYTHONPATH:-} exec $PY controller.py) >"$TMP/s0-ctl.log" 2>&1 &
  local ctl=$!; PIDS+=("$ctl")
  # watch y on the plant's bus until the plant ends (~12 s)
  PYTHONPATH=python${PYTHONPATH:+:$PYTHONPATH} $PY - "$A" $plant >"$TMP/s0-watch.log" 2>&1 <<'PYEOF'
import os, sys, time, shmbus
name, plant = sys.argv[1], int(sys.argv[2])
ys = []
with shmbus.Bus(name, wait=30) as bus:
    y = None
    while True:
        try:
            os.kill(plant, 0)
        except ProcessLookupError:
            break
        if os.path.exists("/proc/%d/stat" % plant) and open("/proc/%d/stat" % plant).read().split(") ")[1][0] == "Z":
            break
        try:
            if y is None:
                y = bus.state("y", create=False)
            ys.append(float(y.read()[0]))
        except (shmbus.NotFound, shmbus.NoData):
            pass
        time.sleep(0.1)
print("y trace:", [round(v, 2) for v in ys[::10]], "end", ys[-1] if ys else None)
sys.exit(0 if ys and max(ys) > 4.0 and 4.0 < ys[-1] < 5.5 else 1)
PYEOF
  local wrc=$?
  cat "$TMP/s0-watch.log"
  wait $plant; local prc=$?
  kill -INT $ctl 2>/dev/null; wait $ctl
  [ $prc -eq 0 ] || { echo "the plant failed ($prc):"; tail -20 "$TMP/s0-plant.log"; return 1; }
  [ $wrc -eq 0 ] || { echo "y did not converge toward 5 on bus A"; tail -5 "$TMP/s0-ctl.log"; return 1; }
  if grep -h "this link stops\|failed" "$TMP/s0-a.log" "$TMP/s0-b.log"; then
    echo "a link stopped"; return 1
  fi
  stop_bridge s0-a && stop_bridge s0-b || return 1
  kill_pid s0 TERM
}

# A local program that holds the writer role of a (single-writer) channel
# the bridge imports into: the import waits, says so once, and does not
# stop; the value lands when that program ends. The program starts after
# the importer has written the channel (the importer holds the role only
# while it writes: last writer wins). Then a channel that both bridges
# export and import under one name: a value written on either side reaches
# the other once, and nothing bounces (the sequence numbers settle).
# Every wait is for an event (a value, a seq, a log line, a status
# counter), bounded generously: the bridges' intervals here are 100 ms (KV)
# and 200 ms (status), their second look at the bucket 350 ms after
# subscribing.
t_local_meets() {
  local A B url P=$((BASE + 4)) pre="t$TAG.lm" S=$BUILD/shmbus hold sa sb
  A=$(bus lmA); B=$(bus lmB)
  url=nats://127.0.0.1:$P
  start_nats lm $P || return 1
  "$TOOL" put "$B" v float64 1 0 >/dev/null || return 1    # single writer (the default)
  "$TOOL" put "$A" v float64 1 0 >/dev/null || return 1
  start_bridge lm-a --nats $url --prefix $pre --export "$A:v"
  start_bridge lm-b --nats $url --prefix $pre --import-state "$B:v"
  # A:v's 0 imported into B:v (seq 2: B's own put was seq 1), live or from
  # the bucket; from here on nothing is imported until A is written again
  "$TOOL" waitseq "$B" v 20000 2 || { echo "A:v's value not imported into B:v"; return 1; }
  "$TOOL" expect "$B" v 100 float64 1 0 || return 1
  # (the FIFO's write end is opened after the bridges started: they must
  # not hold it, or the holder would never see its end)
  mkfifo "$TMP/lm.fifo"
  "$S" put --stdin "$B" v <"$TMP/lm.fifo" >"$TMP/lm-hold.log" 2>&1 &
  hold=$!; PIDS+=("$hold")
  exec 8>"$TMP/lm.fifo"
  echo 1 >&8                                   # the holder is B:v's writer now
  "$TOOL" expect "$B" v 10000 float64 1 1 8>&- || {
    echo "a local writer after an import: $(cat "$TMP/lm-hold.log")"; exec 8>&-; return 1; }
  "$TOOL" put "$A" v float64 1 7 8>&- >/dev/null || return 1
  waits() { grep -q "import $B:v: .*the remote value waits" "$TMP/lm-b.log"; }
  wait_for 10 waits || { echo "no word about the waiting value"; return 1; }
  sleep 0.5
  kill -0 "$(cat "$TMP/lm-b.pid")" 2>/dev/null || { echo "the importing bridge stopped"; return 1; }
  [ "$(status_field "$B" lm-b 7)" = 0 ] || { echo "a link failed: $("$TOOL" get "$B" _bridge.lm-b)"; return 1; }
  "$TOOL" expect "$B" v 100 float64 1 1 8>&- || { echo "the held channel changed under its writer"; exec 8>&-; return 1; }
  exec 8>&-                                    # the holder ends
  wait "$hold"
  "$TOOL" expect "$B" v 10000 float64 1 7 || { echo "the waiting value did not land"; return 1; }
  echo "value kept out by a live writer landed when it ended: $(grep -o 'import .*waits.*' "$TMP/lm-b.log" | head -1)"

  # both ways: many-writer channels e on A and B, each bridge exports and imports e
  "$S" put --create --writers many "$A" e 0 >/dev/null || return 1
  "$S" put --create --writers many "$B" e 0 >/dev/null || return 1
  start_bridge lm-c --nats $url --prefix $pre --export "$A:e" --import-state "$A:e"
  start_bridge lm-d --nats $url --prefix $pre --export "$B:e" --import-state "$B:e"
  "$TOOL" expect "$A" e 100 float64 1 0 || return 1
  # both links of each bridge running (a value that comes before an import
  # subscribed still arrives, through the bucket; the stamps order them)
  links_up() { [ "$(status_field "$A" lm-c 6)" = 2 ] && [ "$(status_field "$B" lm-d 6)" = 2 ]; }
  wait_for 20 links_up || { echo "lm-c/lm-d links not running"; return 1; }
  "$S" put "$A" e 1 >/dev/null || return 1
  "$TOOL" expect "$B" e 10000 float64 1 1 || return 1
  "$S" put "$B" e 2 >/dev/null || return 1
  "$TOOL" expect "$A" e 10000 float64 1 2 || return 1
  sleep 1
  sa=$("$TOOL" get "$A" e); sb=$("$TOOL" get "$B" e)
  sleep 1
  [ "$sa" = "$("$TOOL" get "$A" e)" ] && [ "$sb" = "$("$TOOL" get "$B" e)" ] || {
    echo "values still moving (echo): A '$sa' -> '$("$TOOL" get "$A" e)', B '$sb' -> '$("$TOOL" get "$B" e)'"; return 1; }
  # A: 0, 1 (local), 2 (imported); B: 0, 1 (imported), 2 (local); the first
  # 0 of each may also have come across once through the bucket
  [ "${sa%% *}" -le 4 ] && [ "${sb%% *}" -le 4 ] || { echo "too many writes: A '$sa', B '$sb'"; return 1; }
  echo "both ways, no echo: A seq/value '$sa', B '$sb'"
  # both sides write at once: with the server stopped, A writes 10, then
  # B writes 20; both values are on their way when it resumes. The later
  # write (20) must win on both buses, not each bus keep the other's value.
  # Each write counts as sent (status field 8, values out) once its
  # exporter has read and stamped it: B's 20 is written only after A's 10
  # was stamped, and the server resumes only after 20 was.
  local sp o; sp=$(cat "$TMP/lm.pid")
  out_gt() { [ "$(status_field "$1" "$2" 8)" -gt "$3" ]; }
  kill -STOP "$sp"
  o=$(status_field "$A" lm-c 8)
  "$S" put "$A" e 10 >/dev/null || { kill -CONT "$sp"; return 1; }
  wait_for 20 out_gt "$A" lm-c "$o" || { kill -CONT "$sp"; echo "lm-c did not send A's 10"; return 1; }
  o=$(status_field "$B" lm-d 8)
  "$S" put "$B" e 20 >/dev/null || { kill -CONT "$sp"; return 1; }
  wait_for 20 out_gt "$B" lm-d "$o" || { kill -CONT "$sp"; echo "lm-d did not send B's 20"; return 1; }
  kill -CONT "$sp"
  "$TOOL" expect "$A" e 10000 float64 1 20 || { echo "A kept '$("$TOOL" get "$A" e)', B has '$("$TOOL" get "$B" e)'"; return 1; }
  sleep 1
  "$TOOL" expect "$B" e 100 float64 1 20 || { echo "B kept '$("$TOOL" get "$B" e)' (A has '$("$TOOL" get "$A" e)'): the two sides disagree"; return 1; }
  echo "written at once on both sides: both keep the later write ($("$TOOL" get "$A" e) / $("$TOOL" get "$B" e))"
  for b in lm-a lm-b lm-c lm-d; do stop_bridge $b || return 1; done
  kill_pid lm TERM
}

# queue_pipeline PREFIX URL A B N: bridges + consumer + producer; leaves
# pids in $TMP/q-*.pid; the caller waits for the consumer.
queue_start() {
  local pre=$1 url=$2 A=$3 B=$4 n=$5; shift 5
  "$TOOL" produce "$A" q 0 0 >/dev/null || return 1     # create the queue
  start_bridge q-a --nats "$url" --prefix "$pre" --export "$A:q" "$@"
  start_bridge q-b --nats "$url" --prefix "$pre" ${IMPORT_FLAG:---import-queue} "$B:q" --max-msg 256 --ack-wait 2000 "$@"
  "$TOOL" consume "$B" q c "$n" 240 eos >"$TMP/consumer.out" 2>&1 &
  echo $! >"$TMP/consumer.pid"; PIDS+=("$(cat "$TMP/consumer.pid")")
  # the exporter's group must be joined before the producer starts: a queue
  # with no group does not hold its producer back
  exporter_up() { [ "$(status_field "$A" q-a 6)" = 1 ]; }
  wait_for 30 exporter_up || { echo "exporting bridge not running after 30 s"; return 1; }
  "$TOOL" produce "$A" q "$n" 1 shut >"$TMP/producer.out" 2>&1 &
  echo $! >"$TMP/producer.pid"; PIDS+=("$(cat "$TMP/producer.pid")")
}
queue_finish() {
  local rc
  wait "$(cat "$TMP/consumer.pid")"; rc=$?
  cat "$TMP/consumer.out"
  wait "$(cat "$TMP/producer.pid")" || { echo "producer failed: $(cat "$TMP/producer.out")"; rc=1; }
  stop_bridge q-a || rc=1
  stop_bridge q-b || rc=1
  return $rc
}
# wait until the importing bridge has carried at least N messages
# messages the importing side has put into its local queue (all runs)
carried() { "$TOOL" qhead "$1" q 2>/dev/null; }
carried_ge() { local v; v=$(carried "$1"); [ -n "$v" ] && [ "$v" -ge "$2" ]; }
wait_carried() { wait_for 120 carried_ge "$1" "$2"; }

t_exact() {
  local A B P=$((BASE + 3)) n=$((100000 * SCALE)) t0 rc
  A=$(bus exA); B=$(bus exB)
  start_nats ex $P || return 1
  t0=$(date +%s%N)
  # --import (kind found from the local queue) rather than --import-queue
  IMPORT_FLAG=--import queue_start "t$TAG.ex" nats://127.0.0.1:$P "$A" "$B" $n || return 1
  queue_finish; rc=$?
  echo "$n messages across the bridge in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  kill_pid ex TERM
  return $rc
}

# A queue of cells at both ends: messages of 24..232 bytes take 1..4 cells
# of 64 B; the importing bridge makes its queue so (--cell-bytes).
t_cells() {
  local A B P=$((BASE + 8)) n=$((20000 * SCALE)) rc
  A=$(bus ceA); B=$(bus ceB)
  start_nats ce $P || return 1
  export BRIDGETOOL_CELL_BYTES=64
  queue_start "t$TAG.ce" nats://127.0.0.1:$P "$A" "$B" $n --slots 1024 --cell-bytes 64 || return 1
  queue_finish; rc=$?
  unset BRIDGETOOL_CELL_BYTES
  "$BUILD/shmbus" info --json "$B" | grep -q '"cell_bytes": 64, "max_msg": 256,' ||
    { echo "the importing bridge did not make a queue of 64-byte cells:"; "$BUILD/shmbus" info "$B"; rc=1; }
  kill_pid ce TERM
  return $rc
}

t_server_kill() {
  local A B P=$((BASE + 4)) n=$((30000 * SCALE)) rc
  A=$(bus skA); B=$(bus skB)
  start_nats sk $P || return 1
  queue_start "t$TAG.sk" nats://127.0.0.1:$P "$A" "$B" $n || return 1
  wait_carried "$B" $((n / 4)) || { echo "nothing carried before the kill"; return 1; }
  kill_pid sk KILL
  echo "server SIGKILLed with $(carried "$B") messages carried"
  sleep 1
  start_nats sk $P || return 1
  wait_carried "$B" $((n / 2)) || { echo "stalled after the restart"; }
  kill_pid sk KILL
  echo "server SIGKILLed again with $(carried "$B") messages carried"
  sleep 0.5
  start_nats sk $P || return 1
  queue_finish; rc=$?
  grep -h "stored after\|reconnected\|redelivered" "$TMP"/q-*.log | head -5
  kill_pid sk TERM
  return $rc
}

t_bridge_kill() {
  local A B P=$((BASE + 5)) n=$((30000 * SCALE)) rc url
  A=$(bus bkA); B=$(bus bkB); url=nats://127.0.0.1:$P
  start_nats bk $P || return 1
  queue_start "t$TAG.bk" $url "$A" "$B" $n || return 1
  wait_carried "$B" $((n / 5)) || { echo "nothing carried before the kill"; return 1; }
  kill_pid q-a KILL
  echo "exporting bridge SIGKILLed with $(carried "$B") carried"
  sleep 0.3
  start_bridge q-a --nats $url --prefix "t$TAG.bk" --export "$A:q"
  wait_carried "$B" $((2 * n / 5)) || { echo "stalled after the exporter restart"; return 1; }
  local k
  for k in 1 2 3 4; do
    kill_pid q-b KILL
    echo "importing bridge SIGKILLed ($k) with $(carried "$B") carried"
    sleep 0.2
    start_bridge q-b --nats $url --prefix "t$TAG.bk" --import-queue "$B:q" --max-msg 256 --ack-wait 2000
    wait_carried "$B" $(( (2 + k) * n / 8 )) || { echo "stalled after importer restart $k"; return 1; }
  done
  kill_pid q-a KILL; kill_pid q-b KILL
  echo "both bridges SIGKILLed at once"
  sleep 0.3
  start_bridge q-a --nats $url --prefix "t$TAG.bk" --export "$A:q"
  start_bridge q-b --nats $url --prefix "t$TAG.bk" --import-queue "$B:q" --max-msg 256 --ack-wait 2000
  queue_finish; rc=$?
  echo "importer restarts that found a put in progress: $(grep -c 'was put before\|was not put by' "$TMP/q-b.log")"
  grep -h 'was put before\|was not put by\|handed out again' "$TMP"/q-*.log | head -5
  kill_pid bk TERM
  return $rc
}

t_cluster() {
  local A B n=$((20000 * SCALE)) rc i urls="" routes=""
  A=$(bus clA); B=$(bus clB)
  for i in 1 2 3; do routes="$routes${routes:+,}nats://127.0.0.1:$((BASE + 20 + i))"; done
  for i in 1 2 3; do
    start_nats n$i $((BASE + 10 + i)) -n n$i --cluster_name tc$TAG \
      --cluster nats://127.0.0.1:$((BASE + 20 + i)) --routes "$routes" || return 1
    urls="$urls${urls:+,}nats://127.0.0.1:$((BASE + 10 + i))"
  done
  queue_start "t$TAG.cl" "$urls" "$A" "$B" $n --replicas 3 || return 1
  wait_carried "$B" $((n / 4)) || { echo "nothing carried (cluster not formed?)"; return 1; }
  # kill the node the exporting bridge talks to
  local port victim=n1
  port=$(grep -o 'connected to nats://127.0.0.1:[0-9]*' "$TMP/q-a.log" | tail -1 | sed 's/.*://')
  for i in 1 2 3; do [ "$port" = $((BASE + 10 + i)) ] && victim=n$i; done
  kill_pid $victim KILL
  echo "node $victim (the exporter's server) SIGKILLed with $(carried "$B") carried"
  queue_finish; rc=$?
  for i in 1 2 3; do kill_pid n$i TERM; done
  return $rc
}

echo "bridge tests: $BR, nats-server $("$NATS" --version 2>&1 | head -1) ($SYNC_NOTE), ports $BASE.., scale $SCALE"
check state_round_trip_types t_state
check late_joiner_gets_value t_late
check late_joiner_after_last_write t_late_kv
if PYTHONPATH=python${PYTHONPATH:+:$PYTHONPATH} /usr/bin/python3 -c 'import shmbus' 2>/dev/null; then
  check seed000_two_buses t_seed000
else
  echo "seed000_two_buses: the Python binding is not built (make python): skipped"
fi
check local_writer_meets_import t_local_meets
check malformed_nats_url t_bad_url
check state_survives_server_restart t_state_restart
check token_auth_and_config_file t_auth
check "queue_exact_$((100000 * SCALE))" t_exact
check "queue_of_cells_exact_$((20000 * SCALE))" t_cells
check queue_nats_server_killed t_server_kill
check queue_bridges_killed t_bridge_kill
check queue_cluster_node_killed t_cluster
echo "bridge: $pass passed, $fail failed${failed[*]:+ (${failed[*]})}"
[ $fail -eq 0 ]

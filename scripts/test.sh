#!/usr/bin/env bash
# test.sh -- the whole test suite (README's second command, and CI's).
#
#   1. install what is missing (scripts/deps.sh)
#   2. build everything warning-free (-Wall -Wextra -Werror)
#   3. run every C test program, the CLI and other shell tests, the Debian
#      packages' test, the Python suite (in the tree, and installed from the
#      sdist's wheel: tests/test_wheel.sh), the bridge tests against a real
#      nats-server, the model checks and a bounded fuzz run
#   4. rebuild under AddressSanitizer + UBSan and run the C tests again
#   5. rebuild under ThreadSanitizer and run the concurrency tests
#
# Environment: SHMBUS_TEST_SCALE (default 1) scales stress durations;
# FUZZ_SECONDS (default 60; FUZZ_SECONDS=600 bash tests/fuzz/run.sh for
# a longer one) bounds the fuzz run; SOAK_SECONDS (default 60)
# the soak; SKIP="asan tsan fuzz debian ..."
# skips stages. Ends with "N passed, N failed"; exit status 0 only if all passed.
#
#   scripts/test.sh --under-load N
# runs the whole suite N times in a row, each run with two CPU-burning
# processes beside it (started before the run and stopped after it, by
# pid), then prints one line per run and, last, "N passed, N failed" over
# all the runs' test cases; exit status 0 only if every run passed.
set -u
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--under-load" ]; then
  runs=${2:-}
  case $runs in ''|*[!0-9]*|0) echo "usage: scripts/test.sh [--under-load N]" >&2; exit 2;; esac
  ULOG=$(mktemp -d /tmp/shmbus-load.XXXXXX)
  burners=()
  stop_burners() {
    local p
    for p in "${burners[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    burners=()
  }
  trap 'stop_burners' EXIT
  trap 'stop_burners; exit 130' INT TERM
  tp=0; tf=0; ok=0; lines=()
  for i in $(seq 1 "$runs"); do
    for b in 1 2; do ( while :; do :; done ) & burners+=($!); done
    echo "== run $i of $runs (burners: ${burners[*]})"
    t0=$(date +%s)
    bash "$0" 2>&1 | tee "$ULOG/run$i.log"
    rc=${PIPESTATUS[0]}
    stop_burners
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$ULOG/run$i.log" | tail -1)
    p=$(echo "${last:-0 passed, 1 failed}" | awk '{print $1}')
    f=$(echo "${last:-0 passed, 1 failed}" | awk '{print $3}')
    tp=$((tp + p)); tf=$((tf + f))
    [ "$rc" -eq 0 ] && [ "$f" -eq 0 ] && ok=$((ok + 1))
    lines+=("run $i: $p passed, $f failed, exit $rc, $(( $(date +%s) - t0 )) s")
  done
  echo
  echo "== under load (2 CPU burners), $runs runs, logs in $ULOG"
  printf '%s\n' "${lines[@]}"
  echo "$ok of $runs runs passed"
  echo "$tp passed, $tf failed"
  [ "$ok" -eq "$runs" ]
  exit
fi
ROOT=$PWD
export SHMBUS_TEST_SCALE=${SHMBUS_TEST_SCALE:-1}
export FUZZ_SECONDS=${FUZZ_SECONDS:-60}
export SOAK_SECONDS=${SOAK_SECONDS:-60}
PY=/usr/bin/python3
SKIP=${SKIP:-}
LOG=$(mktemp -d /tmp/shmbus-test.XXXXXX)
pass=0; fail=0; failed=()

# Twice as many build jobs as CPUs: a compiler waiting on the disk leaves
# its CPU to another, and beside CPU burners the build gets a fair share.
JOBS=$(( $(nproc) * 2 ))

skip() { case " $SKIP " in *" $1 "*) echo "== skipping $1"; return 0;; esac; return 1; }

# Ctrl+C or a kill of this script stops the test case under way (timeout
# puts it in a process group of its own, out of reach of the terminal's
# Ctrl+C; timeout passes the TERM on) and the model checks started below.
cur_pid=; model_pid=
on_signal() {
  [ -n "$cur_pid" ] && kill -TERM "$cur_pid" 2>/dev/null
  if [ -n "$model_pid" ]; then
    pkill -TERM -P "$model_pid" 2>/dev/null; kill "$model_pid" 2>/dev/null
  fi
  exit 130
}
trap on_signal INT TERM

# run NAME TIMEOUT CMD...: one test case; its output goes to a log shown on
# failure. It runs in the background and is waited for, so that a signal
# to this script is handled now, not when the test case ends.
run() {
  local name=$1 limit=$2; shift 2
  local log="$LOG/$(echo "$name" | tr '/ ' '__').log" t0=$(date +%s.%N) rc
  timeout -k 5 "$limit" "$@" >"$log" 2>&1 </dev/null &
  cur_pid=$!
  wait "$cur_pid"; rc=$?; cur_pid=
  local dt=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
  if [ $rc -eq 0 ]; then
    pass=$((pass+1)); printf 'PASS  %-44s %6ss\n' "$name" "$dt"
  else
    fail=$((fail+1)); failed+=("$name")
    printf 'FAIL  %-44s %6ss (exit %d)\n' "$name" "$dt" "$rc"
    tail -25 "$log" | sed 's/^/      | /'
  fi
}

c_tests() {  # c_tests BUILD [LIST]
  local build=$1 list=${2:-} t
  if [ -n "$list" ]; then
    while read -r t; do
      [ -z "$t" ] && continue
      [ -x "$build/$t" ] && run "${build}:${t#tests/}" 300 "$build/$t"
    done < "$list"
  else
    for t in $(cd "$build" && find tests -type f -perm -u+x | sort); do
      run "${build}:${t#tests/}" 300 "$build/$t"
    done
  fi
}

ls /dev/shm | grep '^shmbus-t-' | sort >"$LOG/shm-before" || true

echo "== dependencies"
bash scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }

echo "== build (warnings are errors)"
if ! make -j"$JOBS" all >"$LOG/build.log" 2>&1; then
  tail -40 "$LOG/build.log"; echo "build failed"; echo "0 passed, 1 failed"; exit 1
fi

# The model checks need nothing built and touch nothing the tests use
# (spin and pan in a directory of their own under /tmp): they run from
# here, beside the tests, and their result is reported in its place below.
if ! skip model && [ -f tests/model/run.sh ]; then
  model_t0=$(date +%s.%N)
  ( timeout -k 5 900 bash tests/model/run.sh >"$LOG/model.log" 2>&1; echo $? >"$LOG/model.rc"
    date +%s.%N >"$LOG/model.t1" ) &
  model_pid=$!   # on_signal stops the checks too (pan included)
fi

# The Python extension is built with the rest: the shell tests below use
# it too (tests/test_multiuser.sh runs the multi-user recipe from Python).
pybuilt=0
if ! skip python && [ -d python ] && [ -f python/setup.py ]; then
  make python PYTHON=$PY >"$LOG/python-build.log" 2>&1 && pybuilt=1
fi

echo "== C tests"
c_tests build
for t in tests/test_*.sh; do [ -f "$t" ] && [ "$t" != tests/test_debian.sh ] && [ "$t" != tests/test_wheel.sh ] && run "$t" 300 env BUILD=build bash "$t"; done

if ! skip debian && [ -f tests/test_debian.sh ]; then
  echo "== Debian packages (build from a copy, lintian, install, use, purge)"; run "tests/test_debian.sh" 900 bash tests/test_debian.sh
fi

if ! skip python && [ -d python ] && [ -f python/setup.py ]; then
  echo "== Python"
  if [ $pybuilt -eq 1 ]; then
    # The whole Python suite runs once, against the package installed from
    # the wheel (tests/test_wheel.sh, below); from the source tree only the
    # tests that need it (pip install of python/ into a venv).
    sel=""; [ -f tests/test_wheel.sh ] && sel="-k test_pip_install_into_venv"
    run "python/pytest" 600 bash -c "cd python && $PY -m pytest -q -p no:cacheprovider $sel tests; r=\$?; [ \$r -eq 5 ] && r=0; exit \$r"
  else
    fail=$((fail+1)); failed+=("python build"); tail -30 "$LOG/python-build.log"
  fi
  [ -f tests/test_wheel.sh ] && run "tests/test_wheel.sh" 900 env BUILD=build bash tests/test_wheel.sh
fi

if [ -f tests/bridge/run.sh ] && ! skip bridge; then
  echo "== NATS bridge"; run "bridge" 900 bash tests/bridge/run.sh
fi
if [ -n "$model_pid" ]; then
  echo "== model checking (started after the build, beside the tests above)"
  wait "$model_pid"; rc=$(cat "$LOG/model.rc" 2>/dev/null || echo 1)
  dt=$(printf '%.1f' "$(echo "$(cat "$LOG/model.t1") - $model_t0" | bc)")
  if [ "$rc" -eq 0 ]; then
    pass=$((pass+1)); printf 'PASS  %-44s %6ss\n' "model" "$dt"
  else
    fail=$((fail+1)); failed+=("model")
    printf 'FAIL  %-44s %6ss (exit %d)\n' "model" "$dt" "$rc"
    tail -25 "$LOG/model.log" | sed 's/^/      | /'
  fi
fi
if ! skip fuzz && [ -f tests/fuzz/run.sh ]; then
  echo "== fuzzing (${FUZZ_SECONDS}s)"; run "fuzz" $((FUZZ_SECONDS + 600)) bash tests/fuzz/run.sh
fi

if ! skip soak && [ -f tests/soak/run.sh ]; then
  echo "== soak (${SOAK_SECONDS}s of mixed work with kills; make soak runs it for 30 min)"
  run "soak" $((SOAK_SECONDS + 300)) env BUILD=build bash tests/soak/run.sh
fi

if ! skip asan; then
  echo "== AddressSanitizer + UBSan"
  if make -j"$JOBS" SAN=asan lib tools tests >"$LOG/asan-build.log" 2>&1; then
    export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    c_tests build-asan
    for t in tests/test_*.sh; do [ -f "$t" ] && [ "$t" != tests/test_debian.sh ] && [ "$t" != tests/test_wheel.sh ] && run "asan:$t" 300 env BUILD=build-asan bash "$t"; done
    unset ASAN_OPTIONS UBSAN_OPTIONS
  else
    fail=$((fail+1)); failed+=("asan build"); tail -30 "$LOG/asan-build.log"
  fi
fi

if ! skip tsan; then
  echo "== ThreadSanitizer (concurrency tests in tests/tsan.list)"
  if make -j"$JOBS" SAN=tsan lib tests >"$LOG/tsan-build.log" 2>&1; then
    export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
    c_tests build-tsan tests/tsan.list
    unset TSAN_OPTIONS
  else
    fail=$((fail+1)); failed+=("tsan build"); tail -30 "$LOG/tsan-build.log"
  fi
fi

# Test objects this run left behind (ones that existed before it started,
# e.g. from another run on a shared machine, are not counted, nor are ones
# whose creator -- the pid their name ends with -- is still running: every
# process of this run has ended by now, so those belong to someone else).
left=""
for f in $(ls /dev/shm | grep '^shmbus-t-' | sort | comm -23 - "$LOG/shm-before" || true); do
  pid=${f##*-}
  case $pid in ''|*[!0-9]*) ;; *) kill -0 "$pid" 2>/dev/null && continue ;; esac
  left="$left $f"
done
left=${left# }
if [ -n "$left" ]; then
  echo "FAIL  tests left objects in /dev/shm:" $left; fail=$((fail+1)); failed+=("leftovers")
  for f in $left; do rm -f "/dev/shm/$f"; done
fi

echo
[ $fail -gt 0 ] && printf 'failed: %s\n' "${failed[*]}"
echo "logs: $LOG"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

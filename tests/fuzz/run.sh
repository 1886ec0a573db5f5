#!/usr/bin/env bash
# run.sh -- build the segment fuzz target with clang and run it.
#
#   1. libFuzzer + ASan + UBSan build of fuzz_segment.c and the library
#   2. replay of the checked-in corpus (tests/fuzz/corpus) -- must not crash
#   3. FUZZ_SECONDS (default 60) of fuzzing starting from that corpus
#   4. the AFL++ build of the same source (if afl-clang-fast is installed),
#      replaying the corpus; FUZZ_AFL_SECONDS (default 0) of afl-fuzz on top
# Fails on any crash, sanitizer report, leak or hang (-timeout). New inputs
# found go to a scratch directory, not into the checked-in corpus; crash
# inputs are kept in $FUZZ_OUT (default /tmp/shmbus-fuzz-out) to reproduce:
#   build-fuzz/fuzz_segment CRASH_FILE
# Environment: FUZZ_SECONDS, FUZZ_AFL_SECONDS, FUZZ_JOBS (parallel workers, 1),
# REGEN_SEEDS=1 rewrites the corpus with mkseeds.
set -u
cd "$(dirname "$0")"
HERE=$PWD
ROOT=$(cd ../.. && pwd)
SECS=${FUZZ_SECONDS:-60}
AFL_SECS=${FUZZ_AFL_SECONDS:-0}
OUT=${FUZZ_OUT:-/tmp/shmbus-fuzz-out}
B=$ROOT/build-fuzz
mkdir -p "$B" "$OUT"
command -v clang >/dev/null || { echo "clang is not installed"; exit 1; }
SRCS=$(ls "$ROOT"/src/*.c | grep -v /fault.c)   # fault.c: test library only
CFL="-g -O1 -std=gnu11 -D_GNU_SOURCE -pthread -I$ROOT/include -I$ROOT/src -w"

echo "== building libFuzzer target"
clang $CFL -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -o "$B/fuzz_segment" "$HERE/fuzz_segment.c" $SRCS -lrt -lm || exit 1

if [ "${REGEN_SEEDS:-0}" = 1 ] || [ ! -d "$HERE/corpus" ]; then
  echo "== regenerating seeds"
  clang $CFL -o "$B/mkseeds" "$HERE/mkseeds.c" $SRCS -lrt -lm && "$B/mkseeds" "$HERE/corpus" || exit 1
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
FLAGS="-timeout=20 -rss_limit_mb=2048 -max_len=131072 -artifact_prefix=$OUT/ -print_final_stats=1"

echo "== replaying the corpus ($(ls "$HERE/corpus" | wc -l) seeds)"
"$B/fuzz_segment" $FLAGS -runs=0 "$HERE/corpus" >"$OUT/replay.log" 2>&1 || { tail -40 "$OUT/replay.log"; exit 1; }

echo "== fuzzing for ${SECS}s"
WORK=$(mktemp -d /tmp/shmbus-fuzz-corpus.XXXXXX)
trap 'rm -rf "$WORK"; rm -f /dev/shm/shmbus-fuzz-*.bus' EXIT
"$B/fuzz_segment" $FLAGS -max_total_time="$SECS" -jobs="${FUZZ_JOBS:-1}" -workers="${FUZZ_JOBS:-1}" \
  "$WORK" "$HERE/corpus" >"$OUT/fuzz.log" 2>&1
rc=$?
grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" "$OUT/fuzz.log" | tail -3
if [ $rc -ne 0 ]; then
  echo "fuzzer found a failure (exit $rc):"; grep -B5 -A40 -m1 -E "ERROR|runtime error|timeout|deadly" "$OUT/fuzz.log" | head -80
  ls -1 "$OUT"/crash-* "$OUT"/timeout-* "$OUT"/leak-* 2>/dev/null | head
  exit 1
fi
echo "   $(ls "$WORK" | wc -l) new inputs beyond the seeds"

if command -v afl-clang-fast >/dev/null; then
  echo "== AFL++ harness"
  AFL_QUIET=1 afl-clang-fast $CFL -DFUZZ_MAIN -o "$B/fuzz_segment_afl" "$HERE/fuzz_segment.c" $SRCS -lrt -lm >"$OUT/afl-build.log" 2>&1 \
    || { tail -20 "$OUT/afl-build.log"; exit 1; }
  "$B/fuzz_segment_afl" "$HERE"/corpus/* || { echo "AFL++ harness crashed on the corpus"; exit 1; }
  if [ "$AFL_SECS" -gt 0 ]; then
    rm -rf "$OUT/afl"
    env -u ASAN_OPTIONS -u UBSAN_OPTIONS AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 \
      timeout -k 5 "$((AFL_SECS + 60))" afl-fuzz -V "$AFL_SECS" -i "$HERE/corpus" -o "$OUT/afl" \
      -t 20000 -- "$B/fuzz_segment_afl" @@ >"$OUT/afl.log" 2>&1
    [ -f "$OUT/afl/default/fuzzer_stats" ] || { echo "afl-fuzz did not run:"; tail -5 "$OUT/afl.log"; exit 1; }
    grep -E "execs_done|saved_hangs" "$OUT/afl/default/fuzzer_stats" | tr -s ' ' | sed 's/^/   /'
    n=$(ls "$OUT"/afl/default/crashes 2>/dev/null | grep -vc README || true)
    [ "${n:-0}" -eq 0 ] || { echo "afl-fuzz found $n crashes in $OUT/afl/default/crashes"; exit 1; }
    echo "   afl-fuzz ${AFL_SECS}s: no crashes"
  fi
fi
echo "fuzz: ok"

#!/usr/bin/env bash
# run.sh -- the soak: a bounded mixed workload (state writer/readers,
# producers, consumer groups, lock holders) with a SIGKILL every
# SOAK_KILL_MS (default 150) and restarts, checking totals at the end.
# SOAK_SECONDS (default 60; `make soak` uses 1800). Builds the driver
# against the library in $BUILD (default build) and fails if it fails.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
SECS=${SOAK_SECONDS:-60}
[ -f "$BUILD/libshmbus.a" ] || make BUILD="$BUILD" lib >/dev/null || exit 1
${CC:-cc} -std=gnu11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Iinclude -Itests \
  -o "$BUILD/soak" tests/soak/soak.c "$BUILD/libshmbus.a" -pthread -lrt -lm || exit 1
timeout -k 10 $((SECS + 180)) "$BUILD/soak" "$SECS"
rc=$?
left=$(ls /dev/shm | grep '^shmbus-t-soak-' || true)
if [ -n "$left" ]; then
  echo "soak left behind: $left"; for f in $left; do rm -f "/dev/shm/$f"; done; rc=1
fi
exit $rc

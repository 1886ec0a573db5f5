#!/usr/bin/env bash
# deps.sh -- install the Debian packages shmbus needs to build, package, test, demo
# and benchmark. Installs only what is missing; needs root (or sudo).
set -u

PKGS=(
  gcc g++ make pkg-config bc cmake meson ninja-build
  python3-dev python3-numpy python3-pytest python3-setuptools python3-matplotlib python3-venv
  python3-wheel python3-build
  libnats-dev nats-server
  libzmq3-dev iceoryx libiceoryx-binding-c-dev
  clang libclang-rt-14-dev afl++ spin valgrind
  gnuplot-nox hyperfine
  scdoc man-db groff-base
  dpkg-dev debhelper dh-python python3-all-dev lintian
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "deps: all ${#PKGS[@]} packages present"; exit 0; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "deps: missing ${missing[*]} and not root (no sudo); install them and re-run" >&2
    exit 1
  fi
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || { echo "deps: apt-get update failed" >&2; exit 1; }
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/shmbus-apt.log 2>&1 || {
  tail -20 /tmp/shmbus-apt.log >&2; echo "deps: apt-get install failed" >&2; exit 1; }
echo "deps: done"

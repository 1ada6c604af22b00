#!/usr/bin/env bash
# Install every Debian package and npm test peer that building and testing
# libpusher needs.  Idempotent; run as root on Debian 12.
#   scripts/install-deps.sh          build deps + test deps + npm peers
#   scripts/install-deps.sh --build  only what the build needs
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
build_pkgs=(build-essential cmake pkg-config libuv1-dev libssl-dev
  libjansson-dev libcurl4-openssl-dev libsodium-dev libhttp-parser-dev
  libhiredis-dev)
test_pkgs=(libcmocka-dev clang libclang-rt-14-dev redis-server stunnel4 nodejs npm prometheus
  curl openssl python3 valgrind procps iproute2 mandoc groff-base doxygen
  dpkg-dev systemd)
want=("${build_pkgs[@]}")
[ "${1:-}" = "--build" ] || want+=("${test_pkgs[@]}")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# nodejs/npm may come from elsewhere (a preinstalled Node); accept them on PATH.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do case "$p" in nodejs|npm) ;; *) tmp+=("$p");; esac; done
  missing=("${tmp[@]}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ "${1:-}" != "--build" ]; then
  "$root/tests/peers/setup.sh"
fi
echo "install-deps: OK"

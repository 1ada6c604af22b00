#!/usr/bin/env bash
# make-debs.sh [BUILD_DIR [OUT_DIR]] [-- CMAKE_ARGS...]
# Builds the three Debian packages (libpusher0, libpusher-dev, pusher-tools;
# cmake/packaging.cmake) from a tree configured for them: CMAKE_INSTALL_PREFIX
# /usr, so that GNUInstallDirs puts the library, pusher.pc and the CMake
# package under /usr/lib/<multiarch>.  Tests, benchmarks and examples are
# not built there.
#   BUILD_DIR  the dedicated tree (default build-deb), reused if present
#   OUT_DIR    where the .deb files go (default BUILD_DIR/debs)
#   CMAKE_ARGS extra configure arguments (e.g. -DPUSHER_SANITIZE=ON)
# Prints the paths of the packages written.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
args=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
[ $# -gt 0 ] && shift
bdir="${args[0]:-build-deb}"
out="${args[1]:-$bdir/debs}"
jobs="$(nproc 2>/dev/null || echo 2)"
mkdir -p "$bdir"
log="$bdir/make-debs"

cmake -S "$src" -B "$bdir" -DCMAKE_INSTALL_PREFIX=/usr -DPUSHER_PC_RELOCATABLE=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPUSHER_TESTS=OFF -DPUSHER_BENCH=OFF \
  -DPUSHER_EXAMPLES=OFF -DPUSHER_FUZZ=OFF "$@" >"$log.configure.log" 2>&1 || {
  cat "$log.configure.log" >&2; echo "make-debs: configure failed" >&2; exit 1; }
cmake --build "$bdir" -j"$jobs" >"$log.build.log" 2>&1 || {
  tail -40 "$log.build.log" >&2; echo "make-debs: build failed" >&2; exit 1; }
mkdir -p "$out"
rm -f "$out"/*.deb
cpack -G DEB --config "$bdir/CPackConfig.cmake" -B "$out" >"$log.cpack.log" 2>&1 || {
  cat "$log.cpack.log" >&2; echo "make-debs: cpack failed" >&2; exit 1; }
rm -rf "$out/_CPack_Packages"
ls -1 "$out"/*.deb

#!/usr/bin/env bash
# install: libpusher installed into a temporary prefix, then moved (the
# files must not depend on where they were installed), and the examples
# built from it the four ways a user links it and run against pusherd
# (tests/examples/run_examples.sh):
#   pkg-config, shared   cc ... $(pkg-config --cflags --libs pusher)
#   pkg-config, static   $(pkg-config --static --define-variable=pusher_link=-l:libpusher.a --libs pusher)
#   CMake, shared        find_package(pusher) + pusher::pusher
#   CMake, static        find_package(pusher COMPONENTS static) + pusher::pusher_static
# Shared builds must need libpusher.so.<major> from the prefix; static ones
# must not need libpusher at all.
# Ports: pusherd 7920, 7922, 7924, 7926 (auth server on the next port).
. "$(dirname "$0")/lib.sh"
. "$PUSHER_SOURCE_DIR/tests/examples/run_examples.sh"
PUSHERD_BIN="$PUSHER_BUILD_DIR/pusherd"
[ -x "$PUSHERD_BIN" ] || fail "pusherd is not built ($PUSHERD_BIN)"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
command -v pkg-config >/dev/null || fail "pkg-config not found (scripts/install-deps.sh)"

cache() { sed -n "s/^$1:[A-Z]*=//p" "$PUSHER_BUILD_DIR/CMakeCache.txt"; }
CC="$(cache CMAKE_C_COMPILER)"
# A sanitized library needs the same runtime in the programs linked with it.
SAN=()
[ "$(cache PUSHER_SANITIZE)" = ON ] && SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all)
[ "$(cache PUSHER_TSAN)" = ON ] && SAN=(-fsanitize=thread)
EXAMPLES=(hello hello_loop presence_chat encrypted publish)

# ---- install, then relocate
staged="$RUN_DIR/staged"
cmake --install "$PUSHER_BUILD_DIR" --prefix "$staged" >"$RUN_DIR/install.log" 2>&1 ||
  fail "cmake --install failed: $(tail -5 "$RUN_DIR/install.log")"
P="$RUN_DIR/prefix"
mv "$staged" "$P"
pc="$(find "$P" -name pusher.pc)"
cfg="$(find "$P" -name pusherConfig.cmake)"
[ -n "$pc" ] && [ -n "$cfg" ] || fail "pusher.pc or pusherConfig.cmake not installed: $(cd "$P" && find . -type f)"
for h in pusher.h channels.h common.h rest.h version.h; do
  [ -f "$P/include/pusher/$h" ] || fail "include/pusher/$h not installed"
done
for m in man1/pusher.1 man8/pusherd.8 man3/libpusher.3; do
  [ -f "$P/share/man/$m" ] || fail "share/man/$m not installed"
done
if grep -rlF -e "$staged" -e "$PUSHER_BUILD_DIR" "$(dirname "$pc")" "$(dirname "$cfg")"; then
  fail "installed pkg-config/CMake files name the install or build directory"
fi
export PKG_CONFIG_PATH="$(dirname "$pc")"
libdir="$(cd "$(pkg-config --variable=libdir pusher)" && pwd)"
[ "$libdir" = "$(cd "$(dirname "$pc")/.." && pwd)" ] || fail "pkg-config libdir is $libdir"
[ -f "$libdir/libpusher.a" ] && [ -e "$libdir/libpusher.so" ] || fail "libpusher.a/.so not in $libdir"
log "installed and moved to $P; pkg-config: $(pkg-config --modversion pusher) $(pkg-config --cflags --libs pusher)"
log "pkg-config --static: $(pkg-config --static --define-variable=pusher_link=-l:libpusher.a --libs pusher)"

needs_libpusher() { grep -q 'NEEDED.*libpusher\.so' <<<"$(readelf -d "$1")"; }
check_linkage() {   # DIR shared|static
  local ex f
  for ex in "${EXAMPLES[@]}"; do
    f="$1/$ex"
    [ -x "$f" ] || fail "$f was not built"
    if [ "$2" = shared ]; then
      needs_libpusher "$f" || fail "$f does not use libpusher.so"
      grep -qF "$libdir/libpusher.so" <<<"$(LD_TRACE_LOADED_OBJECTS=1 "$f")" ||
        fail "$f does not load libpusher.so from $libdir: $(LD_TRACE_LOADED_OBJECTS=1 "$f")"
    else
      ! needs_libpusher "$f" || fail "$f is linked statically but needs libpusher.so"
    fi
  done
}

# ---- pkg-config
build_pc() {   # OUT_DIR shared|static
  local out="$1" ex extra=()
  mkdir -p "$out"
  for ex in "${EXAMPLES[@]}"; do
    extra=()
    [ "$ex" = hello_loop ] && extra=($(pkg-config --cflags --libs libuv))
    if [ "$2" = shared ]; then
      # shellcheck disable=SC2046
      "$CC" -Wall -Werror "${SAN[@]}" -o "$out/$ex" "$PUSHER_SOURCE_DIR/examples/$ex.c" \
        $(pkg-config --cflags --libs pusher) "${extra[@]}" -pthread -Wl,-rpath,"$libdir" \
        >>"$out.log" 2>&1 || fail "pkg-config shared build of $ex failed: $(cat "$out.log")"
    else
      # shellcheck disable=SC2046
      "$CC" -Wall -Werror "${SAN[@]}" -o "$out/$ex" "$PUSHER_SOURCE_DIR/examples/$ex.c" \
        $(pkg-config --cflags pusher) \
        $(pkg-config --static --define-variable=pusher_link=-l:libpusher.a --libs pusher) \
        "${extra[@]}" >>"$out.log" 2>&1 || fail "pkg-config static build of $ex failed: $(cat "$out.log")"
    fi
  done
  check_linkage "$out" "$2"
  log "pkg-config $2: built ${EXAMPLES[*]}"
}

# ---- CMake (examples/CMakeLists.txt as a project of its own)
build_cmake() {   # OUT_DIR shared|static
  local out="$1" static=OFF
  [ "$2" = static ] && static=ON
  cmake -S "$PUSHER_SOURCE_DIR/examples" -B "$out" -DCMAKE_PREFIX_PATH="$P" \
    -DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="-Wall -Werror ${SAN[*]}" \
    -DCMAKE_EXE_LINKER_FLAGS="${SAN[*]}" -DPUSHER_EXAMPLES_STATIC=$static >"$out.log" 2>&1 ||
    fail "CMake ($2) configure failed: $(cat "$out.log")"
  grep -q "pusher_DIR:PATH=$P/" "$out/CMakeCache.txt" || fail "CMake ($2) did not find pusher in $P"
  cmake --build "$out" -j 2 >>"$out.log" 2>&1 || fail "CMake ($2) build failed: $(tail -30 "$out.log")"
  check_linkage "$out" "$2"
  log "CMake $2: built ${EXAMPLES[*]}"
}

build_pc "$RUN_DIR/pc-shared" shared
build_pc "$RUN_DIR/pc-static" static
build_cmake "$RUN_DIR/cmake-shared" shared
build_cmake "$RUN_DIR/cmake-static" static

# A CMake project asking for the static component where it cannot be had
# fails with the reason (here: no pkg-config found).
mkdir -p "$RUN_DIR/nostatic"
cat >"$RUN_DIR/nostatic/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(nostatic LANGUAGES C)
find_package(pusher REQUIRED COMPONENTS static)
CM
if cmake -S "$RUN_DIR/nostatic" -B "$RUN_DIR/nostatic/build" -DCMAKE_PREFIX_PATH="$P" \
    -DPKG_CONFIG_EXECUTABLE=/nonexistent/pkg-config >"$RUN_DIR/nostatic.log" 2>&1; then
  fail "find_package(pusher COMPONENTS static) succeeded without pkg-config"
fi
grep -q "pusher::pusher_static needs" "$RUN_DIR/nostatic.log" ||
  fail "no reason given for the missing static component: $(cat "$RUN_DIR/nostatic.log")"

run_examples "$RUN_DIR/pc-shared" 7920 pc-shared
run_examples "$RUN_DIR/pc-static" 7922 pc-static
run_examples "$RUN_DIR/cmake-shared" 7924 cmake-shared
run_examples "$RUN_DIR/cmake-static" 7926 cmake-static
log "PASS"

#!/usr/bin/env bash
# packages_deb: the Debian packages of cmake/packaging.cmake, built with
# scripts/make-debs.sh (cpack -G DEB in a tree configured with
# CMAKE_INSTALL_PREFIX=/usr, $PUSHER_BUILD_DIR/debs-tree, with this tree's
# compiler, build type and sanitizers) and checked without installing them
# on this machine (scripts/check-debs-clean-debian.sh installs them on a
# clean Debian 12; not run here: it needs the network and minutes):
#  - multiarch: the library, pusher.pc and the CMake package are under
#    /usr/lib/<DEB_HOST_MULTIARCH>, nothing directly in /usr/lib; cpack in
#    a tree configured for another prefix refuses the DEB generator;
#  - dpkg-deb -I: names libpusher0, libpusher-dev, pusher-tools; libpusher0
#    depends (dpkg-shlibdeps) on the libraries libpusher.so.0 needs and has
#    a shlibs file; libpusher-dev depends on libpusher0 of the same version;
#    pusher-tools depends on adduser, on what pusher/pusherd need and on
#    libcurl4 (declared: pusherd dlopen()s it for webhooks), has a
#    postinst and postrm, and /etc/pusherd/pusherd.json is a conffile;
#  - dpkg-deb -c: each package holds its files and nothing of the others';
#  - postinst is a POSIX sh script; run twice (with recording stand-ins for
#    getent, adduser, addgroup, dpkg-statoverride, systemctl) it creates the
#    pusherd group, user and the config's statoverride once;
#  - the unit pusherd.service: the hardening directives, SIGTERM stop,
#    Restart=on-failure, the config read-only; `systemd-analyze verify`
#    prints nothing (ExecStart pointed at the extracted pusherd), and
#    `systemd-analyze security --offline` rates its exposure below 4;
#  - libpusher0 + libpusher-dev + pusher-tools extracted (dpkg-deb -x) into
#    one temporary root: the examples compile and link against it with
#    pkg-config (the packaged pusher.pc says prefix=/usr and gives plain
#    flags; --define-variable=prefix points it into the root), load
#    libpusher.so.0 from the root, and run (tests/examples/run_examples.sh)
#    against the extracted pusherd; the extracted pusherd also starts with
#    the packaged example configuration and stops with status 0 on SIGTERM.
# Ports: pusherd 7940 (auth server 7941), 7943.
# Packaging only (the code it runs is run by the other tests under the
# sanitizers); building debs-tree takes about 2 minutes on 2 cores.
# ctest-labels: packaging
# ctest-timeout: 600
. "$(dirname "$0")/lib.sh"
. "$PUSHER_SOURCE_DIR/tests/examples/run_examples.sh"
command -v dpkg-deb >/dev/null || fail "dpkg-deb not found"
command -v dpkg-shlibdeps >/dev/null || fail "dpkg-shlibdeps not found (dpkg-dev; scripts/install-deps.sh)"
command -v pkg-config >/dev/null || fail "pkg-config not found (scripts/install-deps.sh)"
command -v node >/dev/null || fail "node not found (scripts/install-deps.sh)"
command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (systemd; scripts/install-deps.sh)"

cache() { sed -n "s/^$1:[A-Z]*=//p" "$PUSHER_BUILD_DIR/CMakeCache.txt"; }
CC="$(cache CMAKE_C_COMPILER)"
CPACK="$(dirname "$(cache CMAKE_COMMAND)")/cpack"
[ -x "$CPACK" ] || fail "cpack not found next to $(cache CMAKE_COMMAND)"
SAN=()
[ "$(cache PUSHER_SANITIZE)" = ON ] && SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all)
[ "$(cache PUSHER_TSAN)" = ON ] && SAN=(-fsanitize=thread)
VERSION="$(cache CMAKE_PROJECT_VERSION)"
[ -n "$VERSION" ] || fail "no CMAKE_PROJECT_VERSION in the cache"

command -v dpkg-architecture >/dev/null || fail "dpkg-architecture not found (dpkg-dev; scripts/install-deps.sh)"
MA="$(dpkg-architecture -qDEB_HOST_MULTIARCH)"
[ -n "$MA" ] || fail "dpkg-architecture -qDEB_HOST_MULTIARCH printed nothing"
LIBDIR="/usr/lib/$MA"

# ---- build the packages
out="$RUN_DIR/debs"
if [ "$(cache CMAKE_INSTALL_PREFIX)" = /usr ] && [ "$(cache CMAKE_INSTALL_LIBDIR)" = "lib/$MA" ]; then
  "$CPACK" -G DEB --config "$PUSHER_BUILD_DIR/CPackConfig.cmake" -B "$out" >"$RUN_DIR/cpack.log" 2>&1 ||
    fail "cpack failed: $(tail -20 "$RUN_DIR/cpack.log")"
else
  # This tree installs elsewhere (e.g. /usr/local/lib): cpack must refuse it.
  if "$CPACK" -G DEB --config "$PUSHER_BUILD_DIR/CPackConfig.cmake" -B "$RUN_DIR/refused" \
    >"$RUN_DIR/cpack-refused.log" 2>&1; then
    fail "cpack -G DEB in a tree with prefix $(cache CMAKE_INSTALL_PREFIX) wrote packages: $(ls "$RUN_DIR/refused")"
  fi
  # (cmake wraps the message: compare with the line breaks made spaces)
  tr -s ' \n' '  ' <"$RUN_DIR/cpack-refused.log" | grep -qF "the Debian packages need $LIBDIR." ||
    fail "cpack refused without the multiarch explanation: $(tail -5 "$RUN_DIR/cpack-refused.log")"
  ! find "$RUN_DIR/refused" -name '*.deb' 2>/dev/null | grep -q . || fail "cpack left a .deb after refusing"
  log "cpack in this tree (prefix $(cache CMAKE_INSTALL_PREFIX)) refuses: the Debian packages need $LIBDIR"
  bt="$(cache CMAKE_BUILD_TYPE)"
  PATH="$(dirname "$CPACK"):$PATH" bash "$PUSHER_SOURCE_DIR/scripts/make-debs.sh" \
    "$PUSHER_BUILD_DIR/debs-tree" "$out" -- -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE="${bt:-RelWithDebInfo}" \
    -DPUSHER_SANITIZE="$(cache PUSHER_SANITIZE)" -DPUSHER_TSAN="$(cache PUSHER_TSAN)" \
    -DPUSHER_WERROR="$(cache PUSHER_WERROR)" >"$RUN_DIR/make-debs.log" 2>&1 ||
    fail "scripts/make-debs.sh failed: $(tail -30 "$RUN_DIR/make-debs.log")"
fi
deb() { printf '%s/%s_%s_%s.deb' "$out" "$1" "$VERSION" "$(dpkg --print-architecture)"; }
for p in libpusher0 libpusher-dev pusher-tools; do
  [ -f "$(deb "$p")" ] || fail "cpack did not write $(basename "$(deb "$p")"): $(ls "$out")"
done
n="$(find "$out" -maxdepth 1 -name '*.deb' | wc -l)"
[ "$n" = 3 ] || fail "cpack wrote $n packages: $(ls "$out")"
log "cpack wrote $(cd "$out" && echo *.deb)"

field() { dpkg-deb -f "$(deb "$1")" "$2"; }
has_dep() {   # PACKAGE REGEX: one of its Depends entries matches
  tr ',' '\n' <<<"$(field "$1" Depends)" | sed 's/^ *//' | grep -qE -- "^($2)\$" ||
    fail "$1 Depends lacks /$2/: $(field "$1" Depends)"
}
files() { dpkg-deb -c "$(deb "$1")" | awk '{ print $6 }' | sed 's|^\./|/|'; }
has_file() { grep -qxE -- "$2" <<<"$(files "$1")" || fail "$1 lacks $2: $(files "$1" | tr '\n' ' ')"; }
lacks_file() { ! grep -qE -- "$2" <<<"$(files "$1")" || fail "$1 must not hold $2"; }
ctrl() { dpkg-deb --ctrl-tarfile "$(deb "$1")" | tar -xO "./$2" 2>/dev/null; }

# ---- every package: its copyright file (Debian policy 12.5)
for p in libpusher0 libpusher-dev pusher-tools; do
  has_file "$p" "/usr/share/doc/$p/copyright"
  dpkg-deb --fsys-tarfile "$(deb "$p")" | tar -xO "./usr/share/doc/$p/copyright" |
    cmp -s - "$PUSHER_SOURCE_DIR/packaging/deb/copyright" || fail "$p: copyright differs from packaging/deb/copyright"
done

# ---- libpusher0
[ "$(field libpusher0 Package)" = libpusher0 ] || fail "libpusher0 is named $(field libpusher0 Package)"
[ "$(field libpusher0 Version)" = "$VERSION" ] || fail "libpusher0 version $(field libpusher0 Version)"
for d in 'libc6 \(>= [0-9.]+\)' 'libuv1 \(>= [0-9.]+\)' 'libssl3 \(>= [0-9.]+\)' \
  'libjansson4 \(>= [0-9.]+\)' 'libcurl4 \(>= [0-9.]+\)' 'libsodium23 \(>= [0-9.]+\)'; do
  has_dep libpusher0 "$d"
done
has_file libpusher0 "$LIBDIR/libpusher\\.so\\.0"
has_file libpusher0 "$LIBDIR/libpusher\\.so\\.$VERSION"
lacks_file libpusher0 '^/usr/lib/libpusher'
lacks_file libpusher0 '\.h$|\.a$|libpusher\.so$|/bin/|\.pc$'
ctrl libpusher0 shlibs | grep -qxF "libpusher 0 libpusher0 (>= $VERSION)" ||
  fail "libpusher0 shlibs: '$(ctrl libpusher0 shlibs)'"

# ---- libpusher-dev
has_dep libpusher-dev "libpusher0 \\(= $VERSION\\)"
for d in libuv1-dev libssl-dev libjansson-dev libsodium-dev pkg-config; do has_dep libpusher-dev "$d"; done
for f in /usr/include/pusher/pusher.h /usr/include/pusher/rest.h /usr/include/pusher/version.h \
  "$LIBDIR/libpusher\\.a" "$LIBDIR/libpusher\\.so" "$LIBDIR/pkgconfig/pusher\\.pc" \
  "$LIBDIR/cmake/pusher/pusherConfig\\.cmake" "$LIBDIR/cmake/pusher/pusherConfigVersion\\.cmake" \
  "$LIBDIR/cmake/pusher/pusherTargets\\.cmake" "$LIBDIR/cmake/pusher/pusherStaticTargets\\.cmake" \
  /usr/share/man/man3/libpusher.3; do
  has_file libpusher-dev "$f"
done
lacks_file libpusher-dev '^/usr/lib/(libpusher|pkgconfig/|cmake/)|^/usr/local/'
lacks_file libpusher-dev 'libpusher\.so\.|/bin/|/etc/|/man1/|/man8/'

# ---- pusher-tools
has_dep pusher-tools adduser
# pusherd opens libcurl.so.4 with dlopen() (docs/webhooks.md), invisible to
# dpkg-shlibdeps: the dependency is declared in cmake/packaging.cmake.
has_dep pusher-tools 'libcurl4 \(>= 7\.85\.0\)'
# pusher and pusherd link libpusher statically.
! grep -q libpusher <<<"$(field pusher-tools Depends)" || fail "pusher-tools depends on libpusher: $(field pusher-tools Depends)"
# libsodium23: pusherd's HMAC-SHA256 (docs/architecture.md, "Hashing
# without OpenSSL"); libssl3: its TLS port.
for d in 'libuv1 \(>= [0-9.]+\)' 'libhttp-parser2\.9 \(>= [0-9.]+\)' 'libsodium23 \(>= [0-9.]+\)' \
  'libssl3 \(>= [0-9.]+\)'; do
  has_dep pusher-tools "$d"
done
for f in /usr/bin/pusher /usr/bin/pusherd /usr/share/man/man1/pusher.1 /usr/share/man/man8/pusherd.8 \
  /usr/lib/systemd/system/pusherd.service /etc/pusherd/pusherd.json; do
  has_file pusher-tools "$f"
done
lacks_file pusher-tools '\.h$|\.a$|libpusher\.so|/man3/'
[ "$(ctrl pusher-tools conffiles)" = /etc/pusherd/pusherd.json ] ||
  fail "pusher-tools conffiles: '$(ctrl pusher-tools conffiles)'"
ctrl pusher-tools postinst >"$RUN_DIR/postinst"
ctrl pusher-tools postrm >"$RUN_DIR/postrm"
for s in postinst postrm; do
  head -1 "$RUN_DIR/$s" | grep -qx '#!/bin/sh' || fail "$s is not a /bin/sh script"
  sh -n "$RUN_DIR/$s" || fail "$s has a syntax error"
done
# Run postinst twice with stand-ins for getent, addgroup, adduser,
# dpkg-statoverride and systemctl that record into a state file (nothing of
# this machine is touched): the second run must change nothing.
stubs="$RUN_DIR/stubs" state="$RUN_DIR/stubs/state"
mkdir -p "$stubs" && : >"$state"
cat >"$stubs/getent" <<'SH'
#!/bin/sh
grep -qx "$1 $2" "$STUB_STATE"
SH
cat >"$stubs/addgroup" <<'SH'
#!/bin/sh
echo "addgroup $*" >>"$STUB_STATE.calls"; for a; do n="$a"; done; echo "group $n" >>"$STUB_STATE"
SH
cat >"$stubs/adduser" <<'SH'
#!/bin/sh
echo "adduser $*" >>"$STUB_STATE.calls"; for a; do n="$a"; done; echo "passwd $n" >>"$STUB_STATE"
SH
cat >"$stubs/dpkg-statoverride" <<'SH'
#!/bin/sh
case "$1" in
  --list) grep -q "^override .* $2\$" "$STUB_STATE" ;;
  --update) echo "dpkg-statoverride $*" >>"$STUB_STATE.calls"; shift 2; echo "override $*" >>"$STUB_STATE" ;;
  *) exit 1 ;;
esac
SH
printf '#!/bin/sh
exit 0
' >"$stubs/systemctl"
chmod +x "$stubs"/*
for i in 1 2; do
  STUB_STATE="$state" PATH="$stubs:$PATH" sh "$RUN_DIR/postinst" configure ||
    fail "postinst configure (run $i) failed"
done
calls="$(cat "$state.calls")"
[ "$(grep -c '^addgroup --system' <<<"$calls")" = 1 ] && [ "$(grep -c '^adduser --system' <<<"$calls")" = 1 ] &&
  grep -q -- '--ingroup pusherd' <<<"$calls" &&
  [ "$(grep -cx 'dpkg-statoverride --update --add root pusherd 0640 /etc/pusherd/pusherd.json' <<<"$calls")" = 1 ] ||
  fail "postinst run twice made these changes: $calls"
log "dpkg-deb -I/-c: names, dependencies, files, conffiles, maintainer scripts as expected; postinst run twice: one user, one group, one statoverride"

# ---- extract into a root
root="$RUN_DIR/root"
for p in libpusher0 libpusher-dev pusher-tools; do dpkg-deb -x "$(deb "$p")" "$root"; done

# ---- the systemd unit
unit="$root/usr/lib/systemd/system/pusherd.service"
for d in 'User=pusherd' 'Group=pusherd' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' \
  'PrivateTmp=yes' 'ReadOnlyPaths=/etc/pusherd' 'KillSignal=SIGTERM' 'Restart=on-failure' \
  'ExecStart=/usr/bin/pusherd --config /etc/pusherd/pusherd.json' 'WantedBy=multi-user.target'; do
  grep -qxF -- "$d" "$unit" || fail "pusherd.service lacks $d"
done
mkdir -p "$RUN_DIR/unit"
sed "s|^ExecStart=/usr/bin/pusherd|ExecStart=$root/usr/bin/pusherd|" "$unit" >"$RUN_DIR/unit/pusherd.service"
v="$(systemd-analyze verify --man=no "$RUN_DIR/unit/pusherd.service" 2>&1)" ||
  fail "systemd-analyze verify: $v"
[ -z "$v" ] || fail "systemd-analyze verify: $v"
sec="$(systemd-analyze security --offline=yes "$RUN_DIR/unit/pusherd.service" 2>&1 | tail -1)"
exposure="$(grep -oE 'level for pusherd.service: [0-9.]+' <<<"$sec" | grep -oE '[0-9.]+$')"
[ -n "$exposure" ] && awk -v e="$exposure" 'BEGIN { exit !(e < 4.0) }' ||
  fail "systemd-analyze security: $sec"
log "systemd-analyze verify: clean; security exposure $exposure"

# ---- the extracted pusherd with the packaged configuration; SIGTERM stops it
PUSHERD_BIN="$root/usr/bin/pusherd"
"$PUSHERD_BIN" --version | grep -qx "pusherd $VERSION (.*)" || fail "pusherd --version: $("$PUSHERD_BIN" --version)"
_port_free 7943 || fail "port 7943 is in use"
"$PUSHERD_BIN" --config "$root/etc/pusherd/pusherd.json" --port 7943 >"$RUN_DIR/conf-pusherd.log" 2>&1 &
pd=$!
_PIDS+=("$pd")
wait_until 10 "pusherd with the packaged config on :7943" eval '! _port_free 7943' ||
  fail "pusherd did not start with the packaged config: $(cat "$RUN_DIR/conf-pusherd.log")"
kill -TERM "$pd"
wait_until 10 "pusherd to exit after SIGTERM" eval '! _alive '"$pd" || fail "pusherd did not exit after SIGTERM"
rc=0; wait "$pd" || rc=$?
[ "$rc" -eq 0 ] || fail "pusherd exited with status $rc after SIGTERM (want 0)"
log "the packaged pusherd.json is accepted; SIGTERM: exit 0"

# ---- the examples against the extracted library, run against the extracted pusherd
pc="$(find "$root" -name pusher.pc)"
export PKG_CONFIG_PATH="$(dirname "$pc")"
[ "$(dirname "$pc")" = "$root$LIBDIR/pkgconfig" ] || fail "pusher.pc is at $pc, not in $root$LIBDIR/pkgconfig"
# The packaged pusher.pc names /usr, so pkg-config knows its directories as
# the system's and prints plain flags: nothing for --cflags, -lpusher alone.
[ "$(pkg-config --variable=prefix pusher)" = /usr ] ||
  fail "packaged pusher.pc: prefix=$(pkg-config --variable=prefix pusher) (want /usr)"
[ "$(pkg-config --variable=libdir pusher)" = "$LIBDIR" ] ||
  fail "packaged pusher.pc: libdir=$(pkg-config --variable=libdir pusher) (want $LIBDIR)"
flags="$(pkg-config --cflags --libs pusher)"
[ "$(echo $flags)" = "-lpusher" ] || fail "pkg-config --cflags --libs pusher: '$flags' (want -lpusher)"
log "packaged pusher.pc: prefix=/usr, --cflags --libs: $flags"
# Here the packages are unpacked under $root, not installed in /usr: point
# the prefix there.
PC=(pkg-config --define-variable=prefix="$root/usr")
libdir="$(cd "$("${PC[@]}" --variable=libdir pusher)" && pwd)"
[ "$libdir" = "$root$LIBDIR" ] || fail "pkg-config libdir $libdir is not $root$LIBDIR"
incdir="$(cd "$("${PC[@]}" --variable=includedir pusher)" && pwd)"
[ "$incdir" = "$root/usr/include" ] && grep -qF -- "-I$root/usr/include" <<<"$("${PC[@]}" --cflags pusher)" ||
  fail "pkg-config --cflags pusher: $("${PC[@]}" --cflags pusher) (want $root/usr/include)"
EXAMPLES=(hello hello_loop presence_chat encrypted publish)
bin="$RUN_DIR/examples"
mkdir -p "$bin"
for ex in "${EXAMPLES[@]}"; do
  extra=()
  [ "$ex" = hello_loop ] && extra=($(pkg-config --cflags --libs libuv))
  # shellcheck disable=SC2046
  "$CC" -Wall -Werror "${SAN[@]}" -o "$bin/$ex" "$PUSHER_SOURCE_DIR/examples/$ex.c" \
    $("${PC[@]}" --cflags --libs pusher) "${extra[@]}" -pthread -Wl,-rpath,"$libdir" \
    >>"$bin.log" 2>&1 || fail "build of $ex against the packages failed: $(cat "$bin.log")"
  grep -qF "$libdir/libpusher.so.0" <<<"$(LD_TRACE_LOADED_OBJECTS=1 "$bin/$ex")" ||
    fail "$ex does not load libpusher.so.0 from $libdir: $(LD_TRACE_LOADED_OBJECTS=1 "$bin/$ex")"
done
log "built ${EXAMPLES[*]} with $("${PC[@]}" --cflags --libs pusher)"
run_examples "$bin" 7940 deb
log "PASS"

#!/usr/bin/env bash
# check-debs-clean-debian.sh: install the three Debian packages on a clean
# Debian 12 (bookworm, debootstrap --variant=minbase, in a chroot) and use
# them as a user would.  NOT run by CI or ctest: it needs root, network
# access to a Debian mirror (from the host's network namespace) and several
# minutes.  Nothing is installed on this machine except into the chroot.
#
#   sudo scripts/check-debs-clean-debian.sh [options] [DEB_DIR]
#     DEB_DIR          holds libpusher0_*.deb, libpusher-dev_*.deb,
#                      pusher-tools_*.deb; without it scripts/make-debs.sh
#                      builds them into build-deb/debs first
#     --tarball FILE   debootstrap from this tarball of .debs (written by
#                      `debootstrap --make-tarball`); written first if absent
#     --mirror URL     Debian mirror (http://deb.debian.org/debian)
#     --workdir DIR    where the chroot is made (a new directory under
#                      /var/tmp); removed at the end unless --keep
#     --keep           keep the chroot (it is unmounted all the same)
#
# Steps, each printed as PASS or FAIL with its duration (the first FAIL
# ends the run; the exit status is then 1):
#  1. debootstrap bookworm minbase;
#  2. apt-get install --no-install-recommends ./libpusher0_*.deb
#     ./libpusher-dev_*.deb ./pusher-tools_*.deb: apt resolves the declared
#     Depends from Debian alone; what it pulled in is printed;
#  3. files in place: the library, pusher.pc and the CMake package under
#     /usr/lib/<multiarch>, ld.so finds libpusher.so.0 without a path,
#     /etc/pusherd/pusherd.json a conffile; the postinst made the system
#     group and user pusherd and the config root:pusherd 0640;
#     pusher/pusherd --version run on this minimal system;
#  4. build-essential, cmake, pkg-config and systemd installed;
#     `systemd-analyze verify` of the installed pusherd.service is clean;
#  5. examples/hello.c and examples/publish.c built with `pkg-config
#     --cflags --libs pusher` (shared) and `pkg-config --static` (libpusher.a),
#     and with a CMake project using find_package(pusher): pusher::pusher
#     and pusher::pusher_static; the shared builds load
#     /usr/lib/<multiarch>/libpusher.so.0, the static ones no libpusher;
#  6. in a fresh network namespace (loopback only): /usr/bin/pusherd as the
#     user pusherd with /etc/pusherd/pusherd.json; the four hello builds
#     connect and subscribe, an event published with `pusher trigger` and
#     one published by each publish build reach all four; SIGINT stops the
#     hellos and SIGTERM pusherd, each with status 0;
#  7. apt-get remove pusher-tools keeps the (edited) conffile, dpkg -P
#     removes it and its statoverride; purging libpusher-dev and libpusher0
#     leaves no libpusher file.
set -uo pipefail

src="$(cd "$(dirname "$0")/.." && pwd)"
mirror=http://deb.debian.org/debian
tarball="" workdir="" keep=0 debdir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tarball) tarball="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --workdir) workdir="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) debdir="$1"; shift ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, chroot, mount)" >&2; exit 2; }
for t in debootstrap chroot unshare mount umount ip dpkg-deb; do
  command -v "$t" >/dev/null || { echo "$t not found (apt-get install debootstrap iproute2)" >&2; exit 2; }
done

T0=$SECONDS
say() { printf '%s\n' "$*"; }
FAILED=""
step() {   # NAME CMD...: run, print PASS/FAIL NAME (seconds); the first FAIL ends the run
  local name="$1" t=$SECONDS rc=0; shift
  say "---- $name"
  "$@" || rc=$?
  if [ "$rc" = 0 ]; then
    say "PASS  $name ($((SECONDS - t)) s)"
  else
    say "FAIL  $name ($((SECONDS - t)) s, status $rc)"
    FAILED="$name"
    exit 1
  fi
}

# ---- the packages
if [ -z "$debdir" ]; then
  say "---- building the packages: scripts/make-debs.sh build-deb"
  (cd "$src" && scripts/make-debs.sh build-deb) || { say "FAIL  make-debs"; exit 1; }
  debdir="$src/build-deb/debs"
fi
debdir="$(cd "$debdir" && pwd)"
debs=()
for p in libpusher0 libpusher-dev pusher-tools; do
  f=("$debdir/${p}"_*.deb)
  [ "${#f[@]}" = 1 ] && [ -f "${f[0]}" ] || { say "FAIL  want one ${p}_*.deb in $debdir: ${f[*]}"; exit 1; }
  debs+=("${f[0]}")
done
say "packages:"
for f in "${debs[@]}"; do
  say "  $(basename "$f"): $(stat -c %s "$f") bytes, Installed-Size $(dpkg-deb -f "$f" Installed-Size) KiB"
  say "    Depends: $(dpkg-deb -f "$f" Depends)"
done
MA="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)"
[ -n "$MA" ] || { say "FAIL  no multiarch triplet (dpkg-architecture, gcc -print-multiarch)"; exit 1; }

# ---- the chroot, its mounts, and the clean-up
[ -n "$workdir" ] || workdir="$(mktemp -d /var/tmp/pusher-debs-clean.XXXXXX)"
mkdir -p "$workdir"
R="$workdir/root"
MOUNTS=()
cleanup() {
  local m pid
  # Processes still running inside the chroot were started by this script.
  for pid in /proc/[0-9]*; do pid="${pid#/proc/}"
    [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$R" ] && kill -KILL "$pid" 2>/dev/null
  done
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    m="${MOUNTS[$i]}"
    umount "$m" 2>/dev/null || { sleep 1; umount "$m"; } || say "WARNING: could not unmount $m"
  done
  if grep -qF " $R" /proc/mounts; then
    say "WARNING: still mounted under $R; not removing it"
  elif [ "$keep" = 0 ]; then
    rm -rf "$workdir"
  else
    say "kept $R (nothing mounted)"
  fi
  if [ -n "$FAILED" ]; then say "RESULT: FAIL at '$FAILED' after $((SECONDS - T0)) s"
  else say "RESULT: $([ "$DONE" = 1 ] && echo PASS || echo FAIL) after $((SECONDS - T0)) s"; fi
}
DONE=0
trap cleanup EXIT
trap 'exit 130' INT TERM

mnt() {   # mount ARGS... TARGET
  mount "$@" || return 1
  MOUNTS+=("${!#}")
}
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  DEBIAN_FRONTEND=noninteractive "$@"; }
# Runs a bash script (stdin) in the chroot.
in_root_sh() { in_root /bin/bash -euo pipefail -s "$@"; }

bootstrap() {
  if [ -n "$tarball" ]; then
    if [ ! -f "$tarball" ]; then
      say "writing $tarball (debootstrap --make-tarball)"
      debootstrap --variant=minbase --make-tarball="$tarball" bookworm "$workdir/mk" "$mirror" \
        >"$workdir/make-tarball.log" 2>&1 || { tail -20 "$workdir/make-tarball.log"; return 1; }
      rm -rf "$workdir/mk"
    fi
    debootstrap --variant=minbase --unpack-tarball="$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")" \
      bookworm "$R" "$mirror" >"$workdir/debootstrap.log" 2>&1
  else
    debootstrap --variant=minbase bookworm "$R" "$mirror" >"$workdir/debootstrap.log" 2>&1
  fi || { tail -20 "$workdir/debootstrap.log"; return 1; }
  grep -q '^VERSION_ID="12"' "$R/etc/os-release" || { say "not Debian 12: $(cat "$R/etc/os-release")"; return 1; }
  mnt -t proc proc "$R/proc" && mnt --bind /dev "$R/dev" && mnt --bind /dev/pts "$R/dev/pts" || return 1
  cp /etc/resolv.conf "$R/etc/resolv.conf"
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://security.debian.org/debian-security bookworm-security main\n' \
    "$mirror" "$mirror" >"$R/etc/apt/sources.list"
  in_root apt-get update -q >"$workdir/apt-update.log" 2>&1 || { tail -20 "$workdir/apt-update.log"; return 1; }
  say "$(in_root dpkg-query -W -f='${Package}\n' | wc -l) packages in the minimal system"
}

install_debs() {
  mkdir -p "$R/tmp/debs" && cp "${debs[@]}" "$R/tmp/debs/"
  in_root dpkg-query -W -f='${Package}\n' | sort >"$workdir/before"
  in_root sh -c 'cd /tmp/debs && apt-get install -y --no-install-recommends \
      ./libpusher0_*.deb ./libpusher-dev_*.deb ./pusher-tools_*.deb' >"$workdir/apt-install.log" 2>&1 ||
    { tail -30 "$workdir/apt-install.log"; return 1; }
  in_root dpkg-query -W -f='${Package}\n' | sort >"$workdir/after"
  local new
  new="$(comm -13 "$workdir/before" "$workdir/after" | grep -vxE 'libpusher0|libpusher-dev|pusher-tools')"
  say "apt installed $(wc -l <<<"$new") packages from Debian for the Depends: $(tr '\n' ' ' <<<"$new")"
  grep -E '^(Need to get|After this operation)' "$workdir/apt-install.log" | sed 's/^/  apt: /'
  for p in libpusher0 libpusher-dev pusher-tools; do
    [ "$(in_root dpkg-query -W -f='${Status}' "$p")" = "install ok installed" ] ||
      { say "$p: $(in_root dpkg-query -W -f='${Status}' "$p")"; return 1; }
  done
}

check_files() {
  in_root_sh "$MA" <<'SH'
ma="$1" L="/usr/lib/$1"
for f in "$L/libpusher.so.0" "$L/libpusher.so" "$L/libpusher.a" "$L/pkgconfig/pusher.pc" \
  "$L/cmake/pusher/pusherConfig.cmake" "$L/cmake/pusher/pusherTargets.cmake" \
  "$L/cmake/pusher/pusherStaticTargets.cmake" /usr/include/pusher/pusher.h \
  /usr/bin/pusher /usr/bin/pusherd /usr/lib/systemd/system/pusherd.service /etc/pusherd/pusherd.json \
  /usr/share/man/man3/libpusher.3 /usr/share/man/man8/pusherd.8; do
  [ -e "$f" ] || { echo "missing $f"; exit 1; }
done
if ls /usr/lib/libpusher* /usr/lib/pkgconfig/pusher.pc /usr/lib/cmake/pusher 2>/dev/null; then
  echo "files outside the multiarch libdir"; exit 1
fi
# (bookworm's /lib is /usr/lib: ldconfig may name either)
cached="$(ldconfig -p | sed -n 's/^[[:space:]]*libpusher\.so\.0 (.*) => //p')"
[ -n "$cached" ] && [ "$(readlink -f "$(dirname "$cached")")" = "$(readlink -f "$L")" ] ||
  { echo "ld.so cache: $(ldconfig -p | grep pusher)"; exit 1; }
echo "library: $(readlink -f "$L/libpusher.so.0") (in the ld.so cache)"
[ "$(cat /var/lib/dpkg/info/pusher-tools.conffiles)" = /etc/pusherd/pusherd.json ] || { echo "conffiles"; exit 1; }
g="$(getent group pusherd)" || { echo "no group pusherd"; exit 1; }
u="$(getent passwd pusherd)" || { echo "no user pusherd"; exit 1; }
echo "postinst: group $g; user $u"
IFS=: read -r _ _ uid gid _ home shell <<<"$u"
[ "$uid" -lt 1000 ] && [ "$gid" = "$(cut -d: -f3 <<<"$g")" ] && [ "$shell" = /usr/sbin/nologin ] &&
  [ "$home" = /nonexistent ] || { echo "user pusherd is not a system user with nologin: $u"; exit 1; }
[ ! -e /nonexistent ] || { echo "/nonexistent exists"; exit 1; }
st="$(stat -c '%U:%G %a' /etc/pusherd/pusherd.json)"
[ "$st" = "root:pusherd 640" ] || { echo "pusherd.json is $st (want root:pusherd 640)"; exit 1; }
dpkg-statoverride --list /etc/pusherd/pusherd.json | grep -qxE 'root pusherd 0?640 /etc/pusherd/pusherd.json' ||
  { echo "statoverride: $(dpkg-statoverride --list)"; exit 1; }
echo "pusherd.json: $st (statoverride)"
pusher --version && pusherd --version
# The user pusherd can read the config, other users cannot.
setpriv --reuid=pusherd --regid=pusherd --init-groups cat /etc/pusherd/pusherd.json >/dev/null ||
  { echo "the user pusherd cannot read its config"; exit 1; }
if setpriv --reuid=nobody --regid=nogroup --init-groups cat /etc/pusherd/pusherd.json >/dev/null 2>&1; then
  echo "the user nobody can read the config"; exit 1
fi
SH
}

tools() {
  in_root apt-get install -y --no-install-recommends build-essential cmake pkg-config systemd \
    >"$workdir/apt-tools.log" 2>&1 || { tail -30 "$workdir/apt-tools.log"; return 1; }
  grep -E '^(Need to get|After this operation)' "$workdir/apt-tools.log" | sed 's/^/  apt: /'
  in_root_sh <<'SH'
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed"; exit 1; }
out="$(systemd-analyze verify --man=no /usr/lib/systemd/system/pusherd.service 2>&1)" || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "systemd-analyze verify: $out"; exit 1; }
echo "systemd-analyze verify pusherd.service: clean ($(systemd --version | head -1))"
SH
}

build_examples() {
  mkdir -p "$R/tmp/ex"
  cp "$src/examples/hello.c" "$src/examples/publish.c" "$R/tmp/ex/"
  cat >"$R/tmp/ex/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(uses_pusher LANGUAGES C)
option(STATIC "link pusher::pusher_static" OFF)
if(STATIC)
  find_package(pusher 0.1 REQUIRED COMPONENTS static)
  set(lib pusher::pusher_static)
else()
  find_package(pusher 0.1 REQUIRED)
  set(lib pusher::pusher)
endif()
message(STATUS "pusher_DIR=${pusher_DIR}")
find_package(Threads REQUIRED)
foreach(ex hello publish)
  add_executable(${ex} ${ex}.c)
  target_link_libraries(${ex} PRIVATE ${lib} Threads::Threads)
endforeach()
CM
  in_root_sh "$MA" <<'SH'
L="/usr/lib/$1"
cd /tmp/ex && mkdir -p bin
echo "pkg-config --cflags --libs pusher: $(pkg-config --cflags --libs pusher)"
[ "$(pkg-config --variable=libdir pusher)" = "$L" ] || [ "$(realpath "$(pkg-config --variable=libdir pusher)")" = "$L" ] ||
  { echo "pkg-config libdir $(pkg-config --variable=libdir pusher) (want $L)"; exit 1; }
for ex in hello publish; do
  cc -Wall -Werror -o "bin/$ex-pc" "$ex.c" $(pkg-config --cflags --libs pusher)
  cc -Wall -Werror -o "bin/$ex-pc-static" "$ex.c" \
    $(pkg-config --static --define-variable=pusher_link=-l:libpusher.a --cflags --libs pusher)
done
for v in shared static; do
  s=OFF; [ "$v" = static ] && s=ON
  cmake -S . -B "build-$v" -DSTATIC=$s >"cmake-$v.log" 2>&1 || { cat "cmake-$v.log"; exit 1; }
  grep -F "pusher_DIR=$L/cmake/pusher" "cmake-$v.log" || { echo "found elsewhere: $(grep pusher_DIR "cmake-$v.log")"; exit 1; }
  cmake --build "build-$v" >>"cmake-$v.log" 2>&1 || { cat "cmake-$v.log"; exit 1; }
  for ex in hello publish; do
    suf=-cmake; [ "$v" = static ] && suf=-cmake-static
    cp "build-$v/$ex" "bin/$ex$suf"
  done
done
for b in bin/*; do
  deps="$(ldd "$b")"
  case "$b" in
    *static) ! grep -q libpusher <<<"$deps" || { echo "$b loads libpusher: $deps"; exit 1; } ;;
    *) got="$(sed -n 's/^[[:space:]]*libpusher\.so\.0 => \([^ ]*\) .*/\1/p' <<<"$deps")"
       [ -n "$got" ] && [ "$(readlink -f "$got")" = "$(readlink -f "$L/libpusher.so.0")" ] ||
         { echo "$b does not load $L/libpusher.so.0: $(grep pusher <<<"$deps")"; exit 1; }
       ! readelf -d "$b" | grep -qE 'RPATH|RUNPATH' || { echo "$b has an rpath"; exit 1; } ;;
  esac
done
echo "built: $(cd bin && echo *)"
SH
}

run_pusherd() {
  # A new network namespace: loopback only, no port of this machine taken.
  unshare --net sh -c 'ip link set lo up && exec chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 /bin/bash -euo pipefail -s' sh "$R" <<'SH'
cd /tmp/ex
secret="$(sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p' /etc/pusherd/pusherd.json)"
port="$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' /etc/pusherd/pusherd.json | head -1)"
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap stop_all EXIT
wait_for() {   # SECONDS FILE STRING
  local i
  for ((i = 0; i < $1 * 10; i++)); do grep -qF -- "$3" "$2" 2>/dev/null && return 0; sleep 0.1; done
  echo "timeout: $2 lacks '$3':"; cat "$2"; return 1
}
setpriv --reuid=pusherd --regid=pusherd --init-groups /usr/bin/pusherd --config /etc/pusherd/pusherd.json >pusherd.log 2>&1 &
pd=$!; PIDS+=("$pd")
for ((i = 0; i < 100; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "pusherd not listening on $port:"; cat pusherd.log; exit 1; }
[ "$(stat -c %U "/proc/$pd")" = pusherd ] || { echo "pusherd runs as $(stat -c %U "/proc/$pd")"; exit 1; }
echo "pusherd (pid $pd, user pusherd) listens on 127.0.0.1:$port"
export PUSHER_HOST=127.0.0.1 PUSHER_PORT="$port" PUSHER_APP_ID=app-id PUSHER_APP_KEY=app-key PUSHER_APP_SECRET="$secret"
declare -A H
for b in hello-pc hello-pc-static hello-cmake hello-cmake-static; do
  "bin/$b" greetings >"$b.out" 2>&1 &
  H[$b]=$!; PIDS+=("$!")
done
for b in "${!H[@]}"; do
  wait_for 20 "$b.out" "connected, socket_id " || exit 1
  wait_for 20 "$b.out" "pusher:subscription_succeeded on greetings" || exit 1
done
pusher trigger --no-tls --host 127.0.0.1 --port "$port" --app-id app-id --key app-key --secret "$secret" \
  greetings from-cli '{"via":"pusher trigger"}'
for b in "${!H[@]}"; do wait_for 20 "$b.out" 'from-cli on greetings: {"via":"pusher trigger"}' || exit 1; done
echo "pusher trigger: the event reached ${!H[*]}"
for p in publish-pc publish-pc-static publish-cmake publish-cmake-static; do
  "bin/$p" greetings "by-$p" '{"n":1}' >"$p.out" 2>&1 || { echo "$p failed:"; cat "$p.out"; exit 1; }
  grep -qF "published by-$p on greetings: HTTP 200" "$p.out" || { cat "$p.out"; exit 1; }
  for b in "${!H[@]}"; do wait_for 20 "$b.out" "by-$p on greetings: {\"n\":1}" || exit 1; done
done
echo "publish (4 builds): each event reached all four hello builds"
for b in "${!H[@]}"; do
  kill -INT "${H[$b]}"; rc=0; wait "${H[$b]}" || rc=$?
  [ "$rc" = 0 ] || { echo "$b exited $rc after SIGINT:"; cat "$b.out"; exit 1; }
done
kill -TERM "$pd"; rc=0; wait "$pd" || rc=$?
[ "$rc" = 0 ] || { echo "pusherd exited $rc after SIGTERM:"; cat pusherd.log; exit 1; }
echo "SIGINT: the hellos exit 0; SIGTERM: pusherd exits 0"
SH
}

remove_purge() {
  in_root_sh "$MA" <<'SH'
L="/usr/lib/$1"
echo '' >>/etc/pusherd/pusherd.json   # an edit by the administrator
sum="$(md5sum </etc/pusherd/pusherd.json)"
apt-get remove -y pusher-tools >/tmp/remove.log 2>&1 || { cat /tmp/remove.log; exit 1; }
[ "$(dpkg-query -W -f='${Status}' pusher-tools)" = "deinstall ok config-files" ] ||
  { echo "after remove: $(dpkg-query -W -f='${Status}' pusher-tools)"; exit 1; }
[ ! -e /usr/bin/pusherd ] && [ ! -e /usr/lib/systemd/system/pusherd.service ] || { echo "remove left the programs"; exit 1; }
[ "$(md5sum </etc/pusherd/pusherd.json)" = "$sum" ] || { echo "remove did not keep the edited conffile"; exit 1; }
echo "remove: programs gone, edited /etc/pusherd/pusherd.json kept"
dpkg -P pusher-tools >/tmp/purge.log 2>&1 || { cat /tmp/purge.log; exit 1; }
[ ! -e /etc/pusherd/pusherd.json ] || { echo "purge kept the conffile"; exit 1; }
[ ! -e /etc/pusherd ] || { echo "purge left /etc/pusherd: $(ls -la /etc/pusherd)"; exit 1; }
! dpkg-statoverride --list /etc/pusherd/pusherd.json >/dev/null || { echo "purge kept the statoverride"; exit 1; }
st="$(dpkg-query -W -f='${Status}' pusher-tools 2>/dev/null || true)"
case "$st" in ""|*not-installed) ;; *) echo "pusher-tools after purge: $st"; exit 1 ;; esac
getent passwd pusherd >/dev/null || { echo "purge removed the user pusherd (postrm keeps it)"; exit 1; }
echo "purge: conffile, /etc/pusherd and statoverride gone (user pusherd kept, by policy)"
dpkg -P libpusher-dev libpusher0 >/tmp/purge-lib.log 2>&1 || { cat /tmp/purge-lib.log; exit 1; }
left="$(find / -xdev \( -name 'libpusher*' -o -name 'pusher.pc' -o -path '*/cmake/pusher' -o -path /usr/include/pusher \) \
  -not -path '/tmp/*' 2>/dev/null)"
[ -z "$left" ] || { echo "left after purge: $left"; exit 1; }
if ldconfig -p | grep -q libpusher; then echo "ld.so cache still has libpusher"; exit 1; fi
echo "purge libpusher-dev libpusher0: no libpusher file left"
SH
}

say "clean-install check of $(basename "${debs[0]}") $(basename "${debs[1]}") $(basename "${debs[2]}") on Debian 12 in $R ($MA)"
step "1 debootstrap bookworm minbase" bootstrap
step "2 apt-get install the three packages (Depends from Debian)" install_debs
step "3 files, multiarch libdir, postinst (user, group, statoverride), programs run" check_files
step "4 build tools + systemd; systemd-analyze verify pusherd.service" tools
step "5 examples built with pkg-config and CMake, shared and static" build_examples
step "6 pusherd as user pusherd with /etc/pusherd/pusherd.json; pusher trigger and publish reach hello" run_pusherd
step "7 remove keeps the conffile, purge removes it; no file left" remove_purge
DONE=1

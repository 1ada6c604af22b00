#!/usr/bin/env bash
# The manuals docs/man/pusher.1, docs/man/pusherd.8 and docs/man/libpusher.3:
#  - mandoc -Tlint -Wstyle and groff -man -ww report nothing;
#  - libpusher(3) names every public function (PUSHER_EXTERN) and every
#    PUSHER_ERR_* code of include/pusher/*.h;
#  - pusher(1) names every long option that `pusher listen --help`,
#    `pusher trigger --help` and `pusher bench --help` document;
#  - pusherd(8) names every long option of `pusherd --help` and every
#    configuration key that src/server/core/config.c accepts.
#   check_manuals.sh SOURCE_DIR PUSHER_BINARY PUSHERD_BINARY
set -euo pipefail
src="$1" bin="$2" pd_bin="$3"
man="$src/docs/man"
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v mandoc >/dev/null || fail "mandoc not found (scripts/install-deps.sh)"
command -v groff >/dev/null || fail "groff not found (scripts/install-deps.sh)"

for page in "$man/pusher.1" "$man/pusherd.8" "$man/libpusher.3"; do
  out="$(mandoc -Tlint -Wstyle "$page" 2>&1)" || fail "mandoc -Tlint $page: $out"
  [ -z "$out" ] || fail "mandoc -Tlint $page: $out"
  out="$(groff -man -ww -z "$page" 2>&1)" || fail "groff $page: $out"
  [ -z "$out" ] || fail "groff -man -ww $page: $out"
done

# Names as the page renders them (hyphens and escapes resolved).
lib_text="$(mandoc -Tascii "$man/libpusher.3" | sed "s/.\x08//g")"
missing=()
for f in $(grep -ho '^PUSHER_EXTERN[^;]*(' "$src"/include/pusher/*.h | grep -o '[a-z_0-9]*($' | tr -d '('); do
  grep -qw -- "$f" <<<"$lib_text" || missing+=("$f")
done
for e in $(grep -ho 'PUSHER_ERR_[A-Z_]*' "$src/include/pusher/common.h" | sort -u); do
  grep -qw -- "$e" <<<"$lib_text" || missing+=("$e")
done
[ "${#missing[@]}" -eq 0 ] || fail "libpusher.3 does not document: ${missing[*]}"

cli_text="$(mandoc -Tascii "$man/pusher.1" | sed "s/.\x08//g")"
for cmd in listen trigger bench; do
  for opt in $("$bin" "$cmd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
    grep -qF -- "$opt" <<<"$cli_text" || missing+=("$cmd $opt")
  done
done
[ "${#missing[@]}" -eq 0 ] || fail "pusher.1 does not document: ${missing[*]}"
pd_text="$(mandoc -Tascii "$man/pusherd.8" | sed "s/.\x08//g")"
pd_opts="$("$pd_bin" --help | grep -o -- '--[a-z][a-z-]*' | sort -u)"
[ -n "$pd_opts" ] || fail "pusherd --help lists no options"
for opt in $pd_opts; do
  grep -qF -- "$opt" <<<"$pd_text" || missing+=("$opt")
done
# Configuration keys: the app_keys table and the top-level strcmp(k, ...).
cfg="$src/src/server/core/config.c"
keys="$(sed -n '/app_keys\[\] = {/,/};/p' "$cfg" | grep -o '"[a-z_]*"' | tr -d '"')
$(grep -o 'strcmp(k, "[a-z_]*")' "$cfg" | grep -o '"[a-z_]*"' | tr -d '"')"
[ "$(wc -w <<<"$keys")" -ge 20 ] || fail "found only $(wc -w <<<"$keys") keys in $cfg"
for k in $keys; do
  grep -qw -- "$k" <<<"$pd_text" || missing+=("config key $k")
done
[ "${#missing[@]}" -eq 0 ] || fail "pusherd.8 does not document: ${missing[*]}"
echo "manuals: lint clean; $(grep -c '^PUSHER_EXTERN' "$src"/include/pusher/*.h | awk -F: '{ n += $2 } END { print n }') public functions and every error code in libpusher.3; every listen/trigger/bench option in pusher.1; $(wc -w <<<"$pd_opts") pusherd options and $(wc -w <<<"$keys") config keys in pusherd.8"

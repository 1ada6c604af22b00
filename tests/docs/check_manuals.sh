#!/usr/bin/env bash
# The manuals docs/man/pusher.1 and docs/man/libpusher.3:
#  - mandoc -Tlint -Wstyle and groff -man -ww report nothing;
#  - libpusher(3) names every public function (PUSHER_EXTERN) and every
#    PUSHER_ERR_* code of include/pusher/*.h;
#  - pusher(1) names every long option that `pusher listen --help` and
#    `pusher trigger --help` document.
#   check_manuals.sh SOURCE_DIR PUSHER_BINARY
set -euo pipefail
src="$1" bin="$2"
man="$src/docs/man"
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v mandoc >/dev/null || fail "mandoc not found (scripts/install-deps.sh)"
command -v groff >/dev/null || fail "groff not found (scripts/install-deps.sh)"

for page in "$man/pusher.1" "$man/libpusher.3"; do
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
for cmd in listen trigger; do
  for opt in $("$bin" "$cmd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
    grep -qF -- "$opt" <<<"$cli_text" || missing+=("$cmd $opt")
  done
done
[ "${#missing[@]}" -eq 0 ] || fail "pusher.1 does not document: ${missing[*]}"
echo "manuals: lint clean; $(grep -c '^PUSHER_EXTERN' "$src"/include/pusher/*.h | awk -F: '{ n += $2 } END { print n }') public functions and every error code in libpusher.3; every listen/trigger option in pusher.1"

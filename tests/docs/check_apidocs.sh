#!/usr/bin/env bash
# The Doxygen API reference of include/pusher/ (docs/Doxyfile): it builds
# with no warning (none undocumented), and it has a page entry for every
# public function (PUSHER_EXTERN).
#   check_apidocs.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src="$1" bld="$2"
out="$bld/apidocs"
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v doxygen >/dev/null || fail "doxygen not found (scripts/install-deps.sh)"
rm -rf "$out"
mkdir -p "$out"
{
  cat "$src/docs/Doxyfile"
  echo "INPUT = $src/include/pusher $bld/include/pusher"
  echo "INPUT_FILTER = $src/docs/doxygen-filter.sh"
  echo "OUTPUT_DIRECTORY = $out"
  echo "WARN_LOGFILE = $out/warnings.log"
} | doxygen - >"$out/doxygen.log" 2>&1 || fail "doxygen failed: $(cat "$out/doxygen.log")"
[ ! -s "$out/warnings.log" ] || fail "doxygen warnings: $(cat "$out/warnings.log")"
[ -f "$out/html/index.html" ] || fail "no html/index.html"
missing=()
for f in $(grep -ho '^PUSHER_EXTERN[^;]*(' "$src"/include/pusher/*.h | grep -o '[a-z_0-9]*($' | tr -d '('); do
  grep -qsw -- "$f" "$out"/html/*_8h.html || missing+=("$f")
done
[ "${#missing[@]}" -eq 0 ] || fail "not in the reference: ${missing[*]}"
echo "apidocs: $out/html/index.html, no warnings, $(grep -c '^PUSHER_EXTERN' "$src"/include/pusher/*.h | awk -F: '{ n += $2 } END { print n }') public functions"

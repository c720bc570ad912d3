#!/usr/bin/env bash
# lib_symbols: libringcask exports exactly the functions of its export list.
#   check_symbols.sh MAP HEADER SHARED_LIB STATIC_LIB
# Fails when the export list (engine/ringcask.map) and the RC_API functions of
# ringcask.h differ, or when either built library defines a global symbol
# outside the list or lacks one in it.
set -euo pipefail
map=$1 header=$2 so=$3 a=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

grep -E '^ +rc_[a-z_]+;$' "$map" | tr -d ' ;' | sort -u >"$tmp/list"
grep -oE '^RC_API [^(]*[^a-z_]rc_[a-z_]+\(' "$header" | grep -oE 'rc_[a-z_]+\($' | tr -d '(' |
    sort -u >"$tmp/header"
[ -s "$tmp/list" ] || { echo "no names in $map"; exit 1; }

compare() { # WHAT FILE: report names outside the list and listed names missing
    local what=$1 file=$2 extra missing
    extra=$(comm -13 "$tmp/list" "$file")
    missing=$(comm -23 "$tmp/list" "$file")
    if [ -n "$extra" ]; then
        echo "FAIL: $what has names outside $(basename "$map"):"; echo "$extra" | sed 's/^/  /'
        fail=1
    fi
    if [ -n "$missing" ]; then
        echo "FAIL: $what lacks listed names:"; echo "$missing" | sed 's/^/  /'
        fail=1
    fi
}

compare "ringcask.h (RC_API functions)" "$tmp/header"
# dynamic symbols the shared library defines (A: the version node itself)
nm -D --defined-only "$so" | awk '$2 != "A" {print $3}' | sed 's/@.*//' | sort -u >"$tmp/so"
compare "$(basename "$so") (nm -D)" "$tmp/so"
# global symbols the static archive defines
nm -g --defined-only "$a" | awk 'NF == 3 {print $3}' | sort -u >"$tmp/a"
compare "$(basename "$a") (nm -g)" "$tmp/a"
# the shared library's SONAME carries the major version only
soname=$(objdump -p "$so" | awk '$1 == "SONAME" {print $2}')
case "$soname" in
libringcask.so.[0-9]*) ;;
*) echo "FAIL: SONAME is '$soname'"; fail=1 ;;
esac
[ "$fail" = 0 ] && echo "lib_symbols: $(wc -l <"$tmp/list") exported names, both libraries match; SONAME $soname"
exit "$fail"

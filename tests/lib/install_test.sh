#!/usr/bin/env bash
# lib_install: `cmake --install` into a temporary prefix, then build against
# the installed tree the way an embedder does, with pkg-config alone:
#   - the README's example, linked with libringcask.so.0 and with libringcask.a
#     (pkg-config --static), run and its output checked;
#   - collide_main.c plus generated functions named like every internal of the
#     library (old unprefixed names included), both ways, run.
# install_test.sh BUILD_DIR SOURCE_DIR CC "SANITIZE" "BINARIES" ARCHIVE...
# SANITIZE is the build's RC_SANITIZE: a sanitized library needs the
# sanitizer runtime in the program, so the programs are built with it too.
set -euo pipefail
build=$1 src=$2 cc=$3 sanitize=$4 bins=$5
shift 5
archives=("$@")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
pc=$(find "$prefix" -name ringcask.pc)
[ -n "$pc" ] || { echo "FAIL: no ringcask.pc installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
want_version=$(awk '/^#define RC_VERSION_(MAJOR|MINOR|PATCH) /{printf "%s%s", sep, $3; sep="."}' \
    "$src/engine/include/ringcask.h")
for f in "$prefix/include/ringcask.h" "$libdir/libringcask.a" "$libdir/libringcask.so" \
    "$libdir/libringcask.so.${want_version%%.*}" "$libdir/libringcask.so.$want_version"; do
    [ -e "$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
for b in $bins; do
    [ -x "$prefix/bin/$b" ] || { echo "FAIL: bin/$b not installed"; exit 1; }
done

export PKG_CONFIG_PATH=$(dirname "$pc")
got_version=$(pkg-config --modversion ringcask)
[ "$got_version" = "$want_version" ] ||
    { echo "FAIL: ringcask.pc says $got_version, ringcask.h $want_version"; exit 1; }
cflags=(-std=gnu17 -Wall -Wextra -Werror -O1)
if [ -n "$sanitize" ]; then
    cflags+=("-fsanitize=$sanitize")
fi

# the README's example: the first C block after "## Using the engine"
awk '/^## Using the engine/{s=1} s&&/^```c$/{c=1; next} c&&/^```$/{exit} c' "$src/README.md" \
    >"$tmp/example.c"
grep -q 'int main' "$tmp/example.c" || { echo "FAIL: no example in README.md"; exit 1; }

# collide: a function for every non-exported global of the library's
# objects, and for each rci_ internal its old name without the prefix
nm -g --defined-only "${archives[@]}" | awk 'NF == 3 {print $3}' | grep -E '^[a-z][a-z0-9_]*$' |
    grep -vxF -f <(nm -D --defined-only "$libdir/libringcask.so" | awk '{print $3}' | sed 's/@.*//') |
    sort -u >"$tmp/internal"
{ cat "$tmp/internal"; sed -n 's/^rci_//p' "$tmp/internal"; } | sort -u >"$tmp/names"
for must in recover log_append seg_open thread_index fmt_record_encode rc_fail; do
    grep -qx "$must" "$tmp/names" || { echo "FAIL: $must is not among the internal names"; exit 1; }
done
{
    i=0
    while read -r n; do i=$((i + 1)); echo "int $n(void) { return $i; }"; done <"$tmp/names"
    echo 'int (*const collide_fns[])(void) = {'; sed 's/$/,/' "$tmp/names"; echo '};'
    echo 'const char *const collide_names[] = {'; sed 's/.*/"&",/' "$tmp/names"; echo '};'
    echo "const int collide_n = $i;"
} >"$tmp/collide_names.c"

# shellcheck disable=SC2046 # pkg-config output is a list of words
build_both() { # NAME SOURCES...: NAME-shared and NAME-static
    local name=$1
    shift
    "$cc" "${cflags[@]}" "$@" $(pkg-config --cflags --libs ringcask) -o "$tmp/$name-shared"
    "$cc" "${cflags[@]}" "$@" $(pkg-config --cflags ringcask) \
        -Wl,-Bstatic $(pkg-config --static --libs ringcask) -Wl,-Bdynamic -o "$tmp/$name-static"
    local needed
    needed=$(objdump -p "$tmp/$name-shared" | awk '$1 == "NEEDED" {print $2}')
    grep -qx 'libringcask\.so\.[0-9]*' <<<"$needed" ||
        { echo "FAIL: $name-shared does not use libringcask.so: $needed"; exit 1; }
    needed=$(objdump -p "$tmp/$name-static" | awk '$1 == "NEEDED" {print $2}')
    if grep -q libringcask <<<"$needed"; then
        echo "FAIL: $name-static uses the shared library"; exit 1
    fi
}
build_both example "$tmp/example.c"
build_both collide "$src/tests/lib/collide_main.c" "$tmp/collide_names.c" -Wno-missing-prototypes

cd "$tmp"
for kind in shared static; do
    rm -rf data collide-data
    out=$(LD_LIBRARY_PATH=$libdir "./example-$kind")
    grep -qx 'a = 42' <<<"$out" || { echo "FAIL: example-$kind printed: $out"; exit 1; }
    grep -qx "libringcask $want_version" <<<"$out" ||
        { echo "FAIL: example-$kind printed: $out"; exit 1; }
    LD_LIBRARY_PATH=$libdir "./collide-$kind"
done
echo "lib_install: $prefix held the libraries, header, ringcask.pc and: $bins;" \
    "example and collide built with pkg-config and ran, shared and static"

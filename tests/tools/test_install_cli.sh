#!/bin/sh
# cmake --install puts the five programs, their manual pages (help2man, made
# at build time from --help) and the bash and zsh completion under the
# prefix; every long option of each program's --help is in its page; the
# installed bash completion completes kv's commands, a command's options and
# kvd's options from the installed programs.
# Usage: test_install_cli.sh BUILD_DIR
set -eu
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
export ASAN_OPTIONS=detect_leaks=0
fail() { echo "test_install_cli: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
for p in kvd kv kvdump kvload kvbench; do
    [ -x "$prefix/bin/$p" ] || fail "no bin/$p"
    page="$prefix/share/man/man1/$p.1"
    [ -s "$page" ] || fail "no man1/$p.1"
    [ -s "$prefix/share/bash-completion/completions/$p" ] || fail "no bash completion for $p"
    # the page holds every long option the program's --help lists
    for opt in $("$prefix/bin/$p" --help | sed -nE 's/^ +(-[a-zA-Z0-9], )?(--[a-z][a-z0-9-]*).*/\2/p'); do
        sed 's/\\-/-/g' "$page" | grep -q -- "$opt" || fail "$p.1 lacks $opt"
    done
    head -5 "$page" | grep -q "^\.TH" || fail "$p.1 is not a manual page"
done
[ -s "$prefix/share/man/man7/ringcask-http.7" ] || fail "no man7/ringcask-http.7"
grep -q "^\.SH KEYS" "$prefix/share/man/man7/ringcask-http.7" || fail "ringcask-http.7 lacks KEYS"
[ -s "$prefix/share/zsh/vendor-completions/_ringcask" ] || fail "no zsh completion"

# bash completion, as bash-completion loads it for "kv"
out=$(PATH="$prefix/bin:$PATH" bash -c '
    . "$1/share/bash-completion/completions/kv"
    COMP_WORDS=(kv se); COMP_CWORD=1; _ringcask_kv; echo "cmds: ${COMPREPLY[*]}"
    COMP_WORDS=(kv set --if); COMP_CWORD=2; _ringcask_kv; echo "set: ${COMPREPLY[*]}"
    COMP_WORDS=(kv bucket r); COMP_CWORD=2; _ringcask_kv; echo "bucket: ${COMPREPLY[*]}"
    COMP_WORDS=(kvd --print); COMP_CWORD=1; _ringcask_prog; echo "kvd: ${COMPREPLY[*]}"
' _ "$prefix")
echo "$out" | grep -qx "cmds: serve set setnx" || fail "kv commands: $out"
echo "$out" | grep -qx "set: --if-absent --if-match" || fail "kv set options: $out"
echo "$out" | grep -qx "bucket: rotate" || fail "kv bucket subcommands: $out"
echo "$out" | grep -qx "kvd: --print-config" || fail "kvd options: $out"
echo "test_install_cli: ok"

# bash completion for ringcask's programs (kv, kvd, kvdump, kvload, kvbench).
# Installed as share/bash-completion/completions/<program>. The long options
# are read from the program's own --help when Tab is pressed (the help is
# generated from each program's option table, so this never drifts); kv's
# commands from the "Commands:" list of `kv --help`.

# the long options that "$@ --help" prints
_ringcask_longopts()
{
    "$@" --help 2>/dev/null | sed -nE 's/^ +(-[a-zA-Z0-9], )?(--[a-z][a-z0-9-]*).*/\2/p'
}

_ringcask_kv()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd="" i
    case $prev in
        --url | --bucket | --key | --ttl | --perm | --prefix | --limit | --since | --if-match | --keys | --timeout | --count)
            return ;;
    esac
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            --url | --bucket | --key) ((i++)) ;;
            -*) ;;
            *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_ringcask_longopts "${COMP_WORDS[0]}" $cmd)" -- "$cur"))
    elif [[ -z $cmd ]]; then
        local cmds
        cmds=$("${COMP_WORDS[0]}" --help 2>/dev/null |
            awk '/^Commands:/ { f = 1; next } f && /^  [a-z]/ { print $1; next } f { exit }')
        COMPREPLY=($(compgen -W "$cmds help" -- "$cur"))
    elif [[ $cmd == bucket && $prev == bucket ]]; then
        COMPREPLY=($(compgen -W "create delete info rotate" -- "$cur"))
    elif [[ $cmd == script && $prev == script ]]; then
        COMPREPLY=($(compgen -W "put get run ls rm" -- "$cur"))
    elif [[ $cmd == token && $prev == token ]]; then
        COMPREPLY=($(compgen -W "create" -- "$cur"))
    elif [[ $cur == *=@* ]]; then # k=@FILE: complete the file name
        local head=${cur%%=@*}=@
        COMPREPLY=($(compgen -f -P "$head" -- "${cur#*=@}"))
    fi
}

# kvd, kvdump, kvload, kvbench: options from --help, else file names
_ringcask_prog()
{
    local cur=${COMP_WORDS[COMP_CWORD]}
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_ringcask_longopts "${COMP_WORDS[0]}")" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}

complete -F _ringcask_kv kv
complete -F _ringcask_prog kvd kvdump kvload kvbench

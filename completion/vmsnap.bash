# bash completion for vmsnap: its commands, each command's options, and the values of
# --category, --detail, --format and --by. Installed to bash-completion's completions directory.
_vmsnap()
{
    local cur prev words cword
    _init_completion 2>/dev/null || {
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    }
    local commands="snap record list show diff growth mark report query import merge"
    local global="-d --db -j --json -h --help -V --version"
    case $prev in
    -c | --category)
        COMPREPLY=($(compgen -W "heap stack image file anon shm guard reserve kernel" -- "$cur"))
        return
        ;;
    -D | --detail)
        COMPREPLY=($(compgen -W "maps rollup smaps" -- "$cur"))
        return
        ;;
    -F | --format)
        # import's --format; growth's and report's -F is --from (a snapshot)
        local w
        for w in "${words[@]}"; do
            [ "$w" = import ] && { COMPREPLY=($(compgen -W "maps smaps pmap core" -- "$cur")); return; }
        done
        COMPREPLY=($(compgen -W "first last" -- "$cur"))
        return
        ;;
    -b | --by)
        COMPREPLY=($(compgen -W "path category" -- "$cur"))
        return
        ;;
    -d | --db | -o | --output)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    -p | --pid)
        COMPREPLY=($(compgen -W "$(cd /proc 2>/dev/null && ls -d [0-9]* 2>/dev/null)" -- "$cur"))
        return
        ;;
    esac
    local cmd="" i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        -d | --db) i=$((i + 1)) ;;
        -*) ;;
        *) cmd=${words[i]}; break ;;
        esac
    done
    if [ -z "$cmd" ]; then
        COMPREPLY=($(compgen -W "$commands $global" -- "$cur"))
        return
    fi
    local opts
    case $cmd in
    snap) opts="-p --pid -f --follow -l --label -D --detail" ;;
    record) opts="-p --pid -f --follow --no-follow -i --interval -n --count -t --duration -D --detail -L --label-prefix --stacks --" ;;
    list) opts="-T --target" ;;
    show) opts="-c --category -T --target first last" ;;
    diff) opts="-m --min-size -c --category -s --summary -f --fail-on-growth -T --target -b --by first last" ;;
    growth) opts="-T --target --tree -F --from -t --to -c --category -n --top -f --fail-on-rate" ;;
    mark) opts="-l --label" ;;
    report) opts="-o --output -T --target -F --from -t --to" ;;
    query) opts="--timeout --max-memory --max-rows" ;;
    import) opts="-F --format -l --label -T --taken-at -N --target-name" ;;
    merge) opts="" ;;
    *) opts="" ;;
    esac
    if [[ $cur == -* ]] || [ "$cmd" != import ] && [ "$cmd" != merge ]; then
        COMPREPLY=($(compgen -W "$opts -d --db -j --json -h --help" -- "$cur"))
    fi
    if [ "$cmd" = import ] || [ "$cmd" = merge ]; then
        [[ $cur == -* ]] || COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -F _vmsnap vmsnap

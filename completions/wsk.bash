# bash completion for wsk(1): commands, each command's options, and values
# where they are a known set (--backend, --mode, --payload) or files and directories.
# Installed as share/bash-completion/completions/wsk. The option lists follow
# `wsk COMMAND --help`; tests/integration/docs_test.sh checks that they do.

_wsk()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local opts

    if ((COMP_CWORD == 1)); then
        mapfile -t COMPREPLY < <(compgen -W 'serve connect bench http danmaku version help
            --help --version' -- "$cur")
        return
    fi

    case ${COMP_WORDS[1]} in
    serve)
        opts='--listen --broadcast --echo --exec --binary --proxy --max-procs --exec-grace
            --auth-token --rate-limit --publish-token --redis --redis-max-queue --threads --metrics --log-format --static --list-dirs --path --origin --subprotocol --backend --reuse-port --max-message
            --max-queue --max-connections --ping-interval --handshake-timeout --idle-timeout
            --udp-peer-timeout --tls-cert --tls-key --deflate --no-deflate --deflate-window --deflate-shared
            --verbose --quiet --help'
        ;;
    connect)
        opts='--header --subprotocol --origin --binary --echo --backend --max-message
            --connect-timeout --cacert --insecure --cert --key --wait --no-close --base64 --user-agent --ping-interval --show-ping --reconnect --proxy --no-deflate --verbose --quiet --help'
        ;;
    bench)
        opts='--connections --size --in-flight --duration --binary --mode --threads --rate
            --source-base --payload --deflate --cacert --insecure --json --verbose --quiet --help'
        ;;
    http)
        opts='--method --request --data --data-binary --header --user-agent --include --head
            --location --max-redirs --max-time --connect-timeout --cacert --insecure --backend
            --verbose --quiet --help'
        ;;
    danmaku)
        opts='--server --json --heartbeat --login-timeout --connect-timeout --max-packet
            --origin --cacert --insecure --verbose --quiet --help'
        ;;
    *) return ;;
    esac

    case $prev in
    --backend)
        mapfile -t COMPREPLY < <(compgen -W 'epoll poll select io_uring' -- "$cur")
        return
        ;;
    --mode)
        mapfile -t COMPREPLY < <(compgen -W 'echo raw-echo connect idle fanout' -- "$cur")
        return
        ;;
    --payload)
        mapfile -t COMPREPLY < <(compgen -W 'pattern chat' -- "$cur")
        return
        ;;
    --cacert | --tls-cert | --tls-key)
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return
        ;;
    --static)
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
        return
        ;;
    --exec)
        mapfile -t COMPREPLY < <(compgen -c -- "$cur")
        return
        ;;
    esac

    if [[ $cur == -* ]]; then
        # shellcheck disable=SC2086
        mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
    fi
}
complete -F _wsk wsk

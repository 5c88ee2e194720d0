# warden shell: asks `warden shell` before every command this bash runs.
#
# Sourced through BASH_ENV by every non-interactive bash started under `warden shell`
# (the -c command, scripts, `bash x.sh`, `./x.sh` with a bash shebang, the interactive
# loop). Installs a DEBUG trap that, before each simple command, sends the command text
# ($BASH_COMMAND, unexpanded) and $PWD to `warden shell` over a loopback TCP connection
# (bash's /dev/tcp) and waits for the verdict. See docs/SHELL.md.
if [[ -z ${__warden_hooked-} ]]; then
readonly __warden_hooked=1
IFS=: read -r __warden_host __warden_port __warden_token <<<"$__WARDEN_SHELL_HOOK"
readonly __warden_host __warden_port __warden_token

# A refused command. With extdebug, a DEBUG trap that fails skips the command, but bash
# then reports $? = 0. So when the command word is a plain word, not a function, and the
# command has no output redirection, it is pointed at a one-shot function of that name that
# returns 126 (125: no decision): $?, `set -e`, `||` and `if` see a command that failed
# with that status, exactly as bash would. Otherwise the command is skipped (nothing is
# expanded, nothing runs).
__warden_refuse() {
    local -
    set +eux
    local name=${BASH_COMMAND%%[[:space:]]*} status=$1
    case $name in
        '' | *[!A-Za-z0-9_./+:@%-]* | if | then | else | elif | fi | case | esac | for | select | while | until | do | done | function | time | coproc | '!' | '{' | '}' | '[[' | ']]')
            return "$status" ;;
    esac
    # Redirections happen before a function runs: only those without side effects (fd
    # duplication, /dev/null, input) may stay; an output file would be created.
    local rest=$BASH_COMMAND
    rest=${rest//&>\/dev\/null/}
    rest=${rest//[0-9]>\/dev\/null/}
    rest=${rest//>\/dev\/null/}
    rest=${rest//> \/dev\/null/}
    rest=${rest//[0-9]>&[0-9]/}
    rest=${rest//>&[0-9]/}
    case $rest in
        *'>'* | *'<('*) return "$status" ;;
    esac
    # A function of that name (the user's) is not shadowed: restoring it afterwards
    # would mean eval'ing text a command could have changed. Skip the command instead.
    if declare -F -- "$name" >/dev/null; then
        return "$status"
    fi
    __warden_pending=$name
    eval "function $name { __warden_refused $status; }" 2>/dev/null || return "$status"
    # Its call enters the function: let that one trap through (see __warden_check).
    __warden_last_command=$BASH_COMMAND
    __warden_last_depth=$((${#FUNCNAME[@]} - 1))
    return 0
}

# The body of the one-shot function: remove it, fail with the status. Called any other
# way it at most removes the caller's function.
__warden_refused() {
    if [[ -n ${__warden_pending-} && ${FUNCNAME[1]-} == "$__warden_pending" ]]; then
        unset -f -- "$__warden_pending"
    fi
    __warden_pending=
    return "$1"
}

__warden_check() {
    # The user's set -e/-u/-x must not act on the hook itself (`local -` restores them).
    local -
    set +eux
    # Enabled here rather than at source time: extdebug set while startup files run
    # makes bash try to load its debugger.
    shopt -s extdebug
    # Warden's own functions (read-only, so no user function can take their names).
    case ${FUNCNAME[1]-} in
        __warden_refused | __warden_next | __warden_ret) return 0 ;;
    esac
    # A refused command calling its one-shot function, whose only command is this.
    [[ $BASH_COMMAND == '__warden_refused '12[56] ]] && return 0
    # The interactive loop's own bookkeeping (exact texts, only in the loop file).
    case $BASH_COMMAND in
        __warden_next | '__warden_ret "$__warden_status"' | 'eval "$__warden_line"' | '__warden_status=$?' | 'exit "$__warden_status"')
            [[ ${BASH_SOURCE[1]-} == "${__WARDEN_SHELL_LOOP-}" ]] && return 0 ;;
    esac
    # Ctrl-C was pressed during this typed line: drop the rest of it.
    if [[ -n ${__warden_interrupted-} ]]; then
        return 130
    fi
    # Entering a function runs the trap again for the call just allowed, with the
    # function's name on top of FUNCNAME: let that one through, once.
    if [[ $BASH_COMMAND == "${__warden_last_command-}" && ${#FUNCNAME[@]} -eq $((${__warden_last_depth:-0} + 1)) && ${BASH_COMMAND%%[[:space:]]*} == "${FUNCNAME[1]-}" ]]; then
        __warden_last_command=
        return 0
    fi
    __warden_last_command=
    # A one-shot function whose call never came (expansion failed, Ctrl-C, or this is a
    # command substitution in its arguments) must not answer for this command.
    if [[ -n ${__warden_pending-} ]]; then
        unset -f -- "$__warden_pending"
        __warden_pending=
    fi
    local fd verdict='' status=126 message=''
    if ! { exec {fd}<>"/dev/tcp/$__warden_host/$__warden_port"; } 2>/dev/null; then
        printf 'warden: refused: the warden shell that started this bash is gone; nothing was run\n' >&2
        __warden_refuse 125
        return
    fi
    printf 'check\0%s\0%s\0%s\0' "$__warden_token" "$PWD" "$BASH_COMMAND" >&"$fd"
    IFS=' ' read -r verdict status <&"$fd"
    IFS= read -r -d '' message <&"$fd"
    exec {fd}>&-
    [[ -n $message ]] && printf '%s' "$message" >&2
    if [[ $verdict == allow ]]; then
        __warden_last_command=$BASH_COMMAND
        __warden_last_depth=${#FUNCNAME[@]}
        return 0
    fi
    __warden_refuse "${status:-126}"
}

# The interactive loop (see loop.bash): asks `warden shell` for the next typed line,
# telling it the last status and the working directory (for the prompt). Fails at EOF.
__warden_next() {
    local -
    set +eux
    local fd verdict=''
    if [[ -n ${__warden_interrupted-} ]]; then
        __warden_status=130
        __warden_interrupted=
    fi
    { exec {fd}<>"/dev/tcp/$__warden_host/$__warden_port"; } 2>/dev/null || return 1
    printf 'next\0%s\0%s\0%s\0' "$__warden_token" "$PWD" "$__warden_status" >&"$fd"
    IFS= read -r verdict <&"$fd"
    __warden_line=''
    IFS= read -r -d '' __warden_line <&"$fd"
    exec {fd}>&-
    [[ $verdict == line ]]
}

# Sets $? for the next typed line to the status of the previous one.
__warden_ret() {
    return "$1"
}

readonly -f __warden_check __warden_refuse __warden_refused __warden_next __warden_ret
readonly BASH_ENV __WARDEN_SHELL_HOOK __WARDEN_SHELL_LOOP
if [[ $0 == "${__WARDEN_SHELL_LOOP-}" ]]; then
    # The interactive loop: typed lines may use aliases; Ctrl-C interrupts the running
    # command and not this bash (trapped, so commands get the default disposition), and
    # as in an interactive bash the rest of the line is dropped, with status 130.
    __warden_status=0
    shopt -s expand_aliases
    trap '__warden_interrupted=1' INT
fi
set -o functrace
trap '__warden_check' DEBUG
fi

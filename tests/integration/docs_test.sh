#!/usr/bin/env bash
# The man page (docs/wsk.1) and the bash and zsh completions against the
# source of truth, `wsk COMMAND --help`, so that they cannot drift apart:
# - every command `wsk --help` lists has its section in the man page;
# - every long option a command's --help lists is in that command's section,
#   and every option the section describes is one --help lists;
# - the completions offer every command and every such option;
# - with man installed, the page renders without warnings (else the roff
#   source is read as it is).
source "$(dirname "$0")/lib.sh"

MAN_PAGE=$WSK_SOURCE_DIR/docs/wsk.1
BASH_COMP=$WSK_SOURCE_DIR/completions/wsk.bash
ZSH_COMP=$WSK_SOURCE_DIR/completions/_wsk

# The commands from `wsk --help`: the lines under "commands:".
mapfile -t COMMANDS < <("$WSK_BIN" --help |
    awk '/^commands:/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/ { print $1 }')

# help_options CMD: the long options of CMD's option table (lines indented
# by at most 8 spaces that start with an option, not the prose after them).
help_options()
{
    "$WSK_BIN" "$1" --help | grep -E '^ {1,8}(-[A-Za-z], )?--[a-z]' |
        grep -oE -- '--[a-z][a-z0-9-]*' | sort -u
}

# The page as text, laid out as man renders it: headings (.SH) at column 0,
# subsections (.SS) at 3, the tags of option lists (.TP) at 7, their text
# further in.
page_text()
{
    if command -v man >/dev/null; then
        MANWIDTH=200 LC_ALL=C.UTF-8 man -P cat -l "$MAN_PAGE" 2>/dev/null
    else
        sed -e '/^\.\\"/d' -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\(aq/'"'"'/g' \
            -e 's/^\.[BIR]\{1,2\} //' "$MAN_PAGE" |
            awk '/^\.SH / { sub(/^\.SH "?/, ""); sub(/"$/, ""); print; next }
                 /^\.SS / { sub(/^\.SS "?/, ""); sub(/"$/, ""); print "   " $0; next }
                 /^\.TP/ { tag = 1; next }
                 { print (tag ? "       " : "              ") $0; tag = 0 }'
    fi
}
page_text >"$TEST_TMP/page.txt"

# section CMD: the text of the man page's subsection for CMD.
section()
{
    awk -v cmd="$1" '
        on && /^ ? ? ?[^ ]/ { exit }
        $0 ~ "^   wsk " cmd "( |$)" { on = 1; next }
        on { print }' "$TEST_TMP/page.txt"
}

# arm FILE CMD: the `CMD)` case arm of a completion script, up to its ';;'.
arm()
{
    awk -v cmd="$2" '$0 ~ "^ *" cmd "\\)" { on = 1 } on { print } on && /;;/ { exit }' "$1"
}

# has_option OPT TEXT: TEXT mentions OPT as a whole word. In bash, since
# this runs a few hundred times.
has_option()
{
    local re="(^|[^a-z0-9-])$1([^a-z0-9-]|\$)"
    [[ $2 =~ $re ]]
}

if command -v man >/dev/null; then
    check "man renders docs/wsk.1 without warnings" bash -c \
        "! MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -P cat -l '$MAN_PAGE' 2>&1 >/dev/null | grep ."
else
    echo "(man is not installed: reading the roff source)"
fi

check "wsk --help lists the commands (${COMMANDS[*]})" test "${#COMMANDS[@]}" -ge 7

for cmd in "${COMMANDS[@]}"; do
    section "$cmd" >"$TEST_TMP/section.$cmd"
    check "the man page has a section for wsk $cmd" test -s "$TEST_TMP/section.$cmd"
    check "bash completion offers $cmd" grep -qE "(^|[' ])$cmd( |$)" "$BASH_COMP"
    check "zsh completion offers $cmd" grep -q "'$cmd:" "$ZSH_COMP"
    [[ $cmd == help || $cmd == version ]] && continue

    mapfile -t opts < <(help_options "$cmd")
    check "wsk $cmd --help lists options (${#opts[@]})" test "${#opts[@]}" -ge 3
    arm "$BASH_COMP" "$cmd" >"$TEST_TMP/bash.$cmd"
    # The zsh arms share -v, -q and -h from the common list.
    { arm "$ZSH_COMP" "$cmd"; sed -n '/^ *common=(/,/^ *)/p' "$ZSH_COMP"; } >"$TEST_TMP/zsh.$cmd"
    missing_man=() missing_bash=() missing_zsh=()
    man_text=$(<"$TEST_TMP/section.$cmd")
    bash_text=$(<"$TEST_TMP/bash.$cmd")
    zsh_text=$(<"$TEST_TMP/zsh.$cmd")
    for opt in "${opts[@]}"; do
        has_option "$opt" "$man_text" || missing_man+=("$opt")
        has_option "$opt" "$bash_text" || missing_bash+=("$opt")
        has_option "$opt" "$zsh_text" || missing_zsh+=("$opt")
    done
    check "the man page's wsk $cmd has every option of its --help" \
        test -z "${missing_man[*]}" || echo "    missing: ${missing_man[*]}"
    check "bash completion of wsk $cmd has every option" \
        test -z "${missing_bash[*]}" || echo "    missing: ${missing_bash[*]}"
    check "zsh completion of wsk $cmd has every option" \
        test -z "${missing_zsh[*]}" || echo "    missing: ${missing_zsh[*]}"

    # The other way: options the page describes (the tags of its option
    # list, at column 7) that --help does not list.
    stale=()
    while read -r opt; do
        [[ " ${opts[*]} " == *" $opt "* ]] || stale+=("$opt")
    done < <(grep -E '^ {7}-' "$TEST_TMP/section.$cmd" | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
    check "the man page's wsk $cmd describes no option its --help lacks" \
        test -z "${stale[*]}" || echo "    not in --help: ${stale[*]}"
done

finish

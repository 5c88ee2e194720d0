# warden shell: the interactive loop. hook.bash is already sourced (BASH_ENV); each
# typed line comes from `warden shell` (which owns the terminal and the line editor) and
# is eval'd here, at top level, so cd, export, functions and aliases persist. hook.bash
# has set up the rest ($? of the first line, aliases, Ctrl-C).
while __warden_next; do
    __warden_ret "$__warden_status"
    eval "$__warden_line"
    __warden_status=$?
done
exit "$__warden_status"

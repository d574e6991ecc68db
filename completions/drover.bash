# bash completion for drover: commands, flags, and run ids, step names,
# artifact names, agent names and contexts, all from `drover __complete`
# (the CLI itself, so they follow its version; droverd is asked for runs,
# steps and agents on the endpoint the command line names).
# Installed as /usr/share/bash-completion/completions/drover.

_drover()
{
    local cur words line
    cur="${COMP_WORDS[COMP_CWORD]}"
    words=("${COMP_WORDS[@]:1:COMP_CWORD-1}")
    COMPREPLY=()
    local -a found=()
    while IFS= read -r line; do
        if [[ "$line" == ":files" ]]; then
            while IFS= read -r line; do found+=("$line"); done < <(compgen -f -- "$cur")
            compopt -o filenames 2>/dev/null
        elif [[ -n "$line" ]]; then
            found+=("$line")
        fi
    done < <(DROVER_API_TIMEOUT_MS="${DROVER_API_TIMEOUT_MS:-2000}" \
             "${COMP_WORDS[0]}" __complete "${words[@]}" "$cur" 2>/dev/null)
    COMPREPLY=("${found[@]}")
}

complete -F _drover drover

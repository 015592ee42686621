#!/usr/bin/env bash
# options.sh — what every tool says of an option it does not take (lib/cli.c
# cli_unknown_option): one line naming the option, with the options its usage lists that
# the user most likely meant, and for "--name=value" how the tools take a value.
# The arity check runs over every option every tool's --help lists: "--opt=1" must say
# "give the value as the next argument" exactly for the options that, given alone, say
# "needs a value", and "takes no value" exactly for the others the tool accepts.
source "$(dirname "$0")/helpers.bash" dr-tokenize dr-split dr-cat dr-meta dr-score dr-filter dr-train

BIN=$(realpath "$BIN")
cd "$TMP"   # no tool may find an input here
# ---- --name=value over every listed option ------------------------------------------
for t in dr-cat dr-filter dr-meta dr-score dr-split dr-tokenize dr-train; do
    for o in $("$BIN/$t" --help | grep -oE -- "--[a-z0-9][a-z0-9-]+" | sort -u); do
        alone=$(timeout 10 "$BIN/$t" "$o" </dev/null 2>&1 | head -n 1)
        case "$alone" in
            *"needs a value"*)
                expect_error "$t $o=1" "^$t: unknown option $o=1: give the value as the next argument, $o 1 \(see --help\)$" \
                    timeout 10 "$BIN/$t" "$o=1" ;;
            *"unknown option $o"*)   # named in the text (another tool's, or grad's), not taken here
                expect_error "$t $o=1 (not its option)" "^$t: unknown option $o=1" timeout 10 "$BIN/$t" "$o=1"
                if grep -q "takes no value" "$TMP/stderr"; then fail "$t $o=1: an option it does not take 'takes no value'"; fi ;;
            *)
                expect_error "$t $o=1" "^$t: unknown option $o=1: $o takes no value \(see --help\)$" \
                    timeout 10 "$BIN/$t" "$o=1" ;;
        esac
    done
done </dev/null
cd - >/dev/null

# ---- suggestions ---------------------------------------------------------------------
sugg() {  # tool, args, the expected line after "<tool>: "
    local t=$1 a=$2 want=$3
    # shellcheck disable=SC2086
    expect_error "$t $a" "^$t: $(sed 's/[][().?*+|]/\\&/g' <<< "$want")$" "$BIN/$t" $a
}
sugg dr-train "--split train_b" "unknown option --split (did you mean --train-split or --val-split? see --help)"
sugg dr-train "--step 5" "unknown option --step (did you mean --steps? see --help)"
sugg dr-train "--stop_at 5" "unknown option --stop_at (did you mean --stop-at? see --help)"
sugg dr-cat "--seq_len 8" "unknown option --seq_len (did you mean --seq-len? see --help)"
sugg dr-cat "--min_tokens 8" "unknown option --min_tokens (did you mean --min-tokens? see --help)"
sugg dr-filter "--keep-mid 0.5" "unknown option --keep-mid (did you mean --keep-middle? see --help)"
sugg dr-split "--dedupe" "unknown option --dedupe (did you mean --dedup? see --help)"
sugg dr-split "--vla 0.1" "unknown option --vla (did you mean --val? see --help)"
sugg dr-tokenize "--vocab x" "unknown option --vocab (did you mean --vocab-dir? see --help)"
sugg dr-tokenize "--train_bpe 9" "unknown option --train_bpe (did you mean --train-bpe? see --help)"
sugg dr-meta "grad --resum" "unknown option --resum for grad (did you mean --resume? see --help)"
sugg dr-meta "--lm-init x" "unknown option --lm-init: the usage lists it for the command's other form (see --help)"
sugg dr-filter "--kep=0.5" "unknown option --kep=0.5 (did you mean --keep? see --help)"
# nothing close: no guess; another tool's option named in a sentence is not offered
sugg dr-tokenize "--frobnicate" "unknown option --frobnicate (see --help)"
sugg dr-filter "--foo=1" "unknown option --foo=1 (see --help)"
sugg dr-cat "-x" "unknown option -x (see --help)"
sugg dr-cat "--formt lines" "unknown option --formt (see --help)"
finish

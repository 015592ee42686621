#!/bin/sh
# ablations.sh REPRO_OUT AOUT [ABLATION ...] — the ablation table ($AOUT/ablations.md)
# from the files of the main run (REPRO_OUT, a pipelines/repro.mk output) and of each
# ablation ($AOUT/<name>/, made by pipelines/ablations.mk). Shell + awk; unfinished
# ablations show as "(not run)". Columns:
#   meta gain   mean of L_val(uniform) − L_val(rater) over the last half of the meta-steps
#               (criterion 1's number; > 0: the rater helped inside the unroll)
#   final L_val the final LM's Val loss after training on what the rater kept
#   Δ           against all data (no rater) and against the main run's rater (full)
set -eu
REPRO=${1:?usage: ablations.sh REPRO_OUT AOUT [ABLATION ...]}; REPRO=${REPRO%/}
AOUT=${2:?usage: ablations.sh REPRO_OUT AOUT [ABLATION ...]}; AOUT=${AOUT%/}
shift 2
ABLS=${*:-detach shuffle constant classifier keep0.5 keep0.7 keep0.85 T-short T-long K1 K3 first-order}
mkdir -p "$AOUT"
MD=$AOUT/ablations.md.tmp.$$
trap 'rm -f "$MD"' EXIT

AWK_NUM='function num(line, key,    re, s) {
    re = "\"" key "\"[ \t]*:[ \t]*-?[0-9][0-9.eE+-]*"
    if (!match(line, re)) return ""
    s = substr(line, RSTART, RLENGTH); sub(/^[^:]*:[ \t]*/, "", s); return s + 0
}'
meta_gain() {  # metrics.jsonl -> "mean_gain n_steps seconds" or nothing
    [ -s "$1" ] || return 0
    awk "$AWK_NUM"'{ s = num($0, "meta_step"); if (s == "") next; n++
            g = num($0, "l_val_gain"); if (g == "") { a = num($0, "l_val_uniform"); b = num($0, "l_val"); g = (a == "" || b == "") ? "" : a - b }
            gain[n] = g; sec = num($0, "seconds") }
        END { if (!n) exit; m = 0; k = 0
              for (i = int(n / 2) + 1; i <= n; i++) if (gain[i] != "") { m += gain[i]; k++ }
              printf "%s %d %s\n", (k ? sprintf("%+.5f", m / k) : "-"), n, (sec == "" ? "-" : sprintf("%.0f", sec)) }' "$1"
}
final_val() {  # train log -> final l_val, or nothing while its run has not finished
    [ -s "$1" ] && [ -f "${1%.jsonl}.done" ] || return 0
    awk "$AWK_NUM"'{ v = num($0, "l_val"); if (v != "") lv = v } END { if (lv != "") printf "%.4f\n", lv }' "$1"
}
set_of() {  # the META_SET an ablation ran with, from its meta/params record, else the planned
            # one that ablations.mk passes as ABL_SET_<name, - as _>
    if [ -s "$AOUT/$1/meta/params" ]; then
        sed -n 's/.*meta_set=\(.*\) device=.*/\1/p' "$AOUT/$1/meta/params"
    else
        printenv "ABL_SET_$(printf '%s' "$1" | tr -c 'A-Za-z0-9_' '_')" || true
    fi
}
BASE=$(final_val "$REPRO/train/baseline.jsonl")
FULL=$(final_val "$REPRO/train/datarater.jsonl")
KEEP=$(awk '/^kept /{ printf "%.2f", $2 / $4; exit }' "$REPRO/filter/datarater.summary" 2>/dev/null || true)
delta() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.4f", a - b }' || printf '–'; }
row() {  # name change metrics.jsonl train.jsonl [random.jsonl]
    m=$(meta_gain "$3"); v=$(final_val "$4"); r=
    [ -n "${5:-}" ] && r=$(final_val "$5")
    set -- "$1" "$2" "$m" "$v" "$r"
    gain=$(echo "$3" | awk '{ print $1 }'); steps=$(echo "$3" | awk '{ print $2 }'); sec=$(echo "$3" | awk '{ print $3 }')
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "${gain:-–}" "${steps:-–}" "${sec:-–}" \
        "${4:-(not run)}" "$(delta "$4" "$BASE")" "$(delta "$4" "$FULL")" "${5:-–}"
}

{
echo "# DataRater ablations"
echo
echo "Main run \`$REPRO\` (keep ${KEEP:-?}); ablations under \`$AOUT\`; written $(date -u '+%Y-%m-%d %H:%M UTC') by \`pipelines/ablations.sh\`."
echo "Every final LM has the main run's config and budget and is evaluated on the same Val split. Meta gain: mean of L_val(uniform) − L_val(rater) over the last half of the meta-steps (> 0: the rater helped inside the unroll). Δ: final Val loss minus that of all data (no rater) and of the main run's rater (full); negative is better."
echo
echo "| ablation | change | meta gain | meta-steps | meta s | final L_val | Δ no rater | Δ full | random at same keep |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
row no-rater "all of train_b, no filter" /dev/null "$REPRO/train/baseline.jsonl"
row full "the main run: rater as configured, keep ${KEEP:-?}" "$REPRO/meta/metrics.jsonl" "$REPRO/train/datarater.jsonl" "$REPRO/train/random.jsonl"
for a in $ABLS; do
    case $a in
        keep*) row "$a" "the main rater, keep ${a#keep}" "$REPRO/meta/metrics.jsonl" "$AOUT/$a/train/datarater.jsonl" "$AOUT/$a/train/random.jsonl" ;;
        *)     s=$(set_of "$a"); row "$a" "\`${s:-?}\`" "$AOUT/$a/meta/metrics.jsonl" "$AOUT/$a/train/datarater.jsonl" ;;
    esac
done
echo
LOGS="no-rater=$REPRO/train/baseline.jsonl full=$REPRO/train/datarater.jsonl"
for a in $ABLS; do [ -f "$AOUT/$a/train/datarater.done" ] && LOGS="$LOGS $a=$AOUT/$a/train/datarater.jsonl"; done
if [ -f "$REPRO/train/baseline.done" ] && [ -f "$REPRO/train/datarater.done" ]; then
    # shellcheck disable=SC2086
    sh "$(dirname "$0")/compare.sh" --md $LOGS || true
fi
echo
echo "Sanity expectations: constant trains with w = 1, so its meta gain is 0 and its rater is its initialisation (filtering by it is close to random); detach leaves the rater at its initialisation too; shuffle keeps the weights' distribution but not which example gets which, so its gain should vanish. A rater whose final L_val beats these and random at the same keep has learned something about the data."
} > "$MD"
mv -f "$MD" "$AOUT/ablations.md"
echo "ablations.sh: wrote $AOUT/ablations.md" >&2

#!/bin/sh
# report.sh OUT — writes OUT/report.md and OUT/plots/*.png for one run of
# pipelines/repro.mk, from that run's files only (every number is parsed from them with
# awk; plots are drawn by gnuplot; shell + awk + gnuplot, nothing else):
#
#   OUT/run.env                     the pipeline's variables (written by repro.mk)
#   OUT/meta/metrics.jsonl          dr-meta: per meta-step l_val, l_val_uniform, score_* …
#   OUT/train/<run>.jsonl           dr-train: step, tokens, l_val at eval steps (flops if logged)
#   OUT/score/datarater.tsv         dr-score with the rater; OUT/score/ppl.tsv with the LM
#   OUT/filter/<run>.summary        dr-filter: kept examples overall and per source
#   OUT/examples/{top,bottom}.txt   dr-cat --scores … --top/--bottom N
#   the split manifest (MANIFEST in run.env): split sizes from its comment lines
#
# Without gnuplot the report has the same tables and no plots. Missing inputs are
# reported in the text (the report of a half-finished run is still written); the two
# success criteria are always stated, with PASS, FAIL or "NOT EVALUATED" and the numbers.
# Environment: CRITERION_TOL (nats, default 0): criterion 2 passes when the filtered
# run's Val loss is at most the baseline's + CRITERION_TOL; GNUPLOT (default gnuplot;
# "none": the report without plots).
set -eu
NBSP=$(printf '\302\240')   # U+00A0: a space inside a source name in the .dat files
OUT=${1:?usage: report.sh OUT (a pipelines/repro.mk output directory)}
OUT=${OUT%/}
PIPE=$(cd "$(dirname "$0")" && pwd)
[ -d "$OUT" ] || { echo "report.sh: $OUT: no such directory" >&2; exit 1; }
TOL=${CRITERION_TOL:-0}
PLOTS=$OUT/plots
DAT=$PLOTS/data
mkdir -p "$DAT"
rm -f "$PLOTS"/*.png   # every plot is drawn again (or, without gnuplot, none is shown)
MD=$OUT/report.md.tmp.$$
trap 'rm -f "$MD" "$MD".*' EXIT
trap 'exit 130' INT TERM   # (sh runs no EXIT trap when a signal kills it)

env_get() { [ -f "$OUT/run.env" ] && sed -n "s/^$1=//p" "$OUT/run.env" | head -n 1 || true; }
CONFIG=$(env_get CONFIG); VAL_MODE=$(env_get VAL_MODE); KEEP=$(env_get KEEP)
MANIFEST=$(env_get MANIFEST); RUNS=$(env_get RUNS); ONLINE=$(env_get ONLINE)
PPL_REF=$(env_get PPL_REF); RATER=$(env_get RATER)
if [ -z "$RUNS" ]; then
    RUNS=$(for f in "$OUT"/train/*.jsonl; do [ -f "$f" ] && basename "$f" .jsonl; done | tr '\n' ' ')
fi
if [ -z "$KEEP" ] && [ -f "$OUT/filter/datarater.summary" ]; then
    KEEP=$(awk '/^kept /{ printf "%.2f", $2 / $4; exit }' "$OUT/filter/datarater.summary")
fi
META_DIR=$(env_get META_DIR); SCORE_DIR=$(env_get SCORE_DIR)
META=${META_DIR:-$OUT/meta}/metrics.jsonl
SCORES=${SCORE_DIR:-$OUT/score}/datarater.tsv
PPL=${SCORE_DIR:-$OUT/score}/ppl.tsv

# gnuplot with a PNG terminal (pngcairo, else libgd's png), if there is one
# (GNUPLOT=none: no plots, the text-only report)
GP= GP_CMD=${GNUPLOT:-gnuplot}
if command -v "$GP_CMD" >/dev/null 2>&1; then
    if "$GP_CMD" -e 'set terminal pngcairo' >/dev/null 2>&1; then GP_TERM='pngcairo enhanced font "DejaVu Sans,10"'
    elif "$GP_CMD" -e 'set terminal png' >/dev/null 2>&1; then GP_TERM='png'
    fi
    [ -n "${GP_TERM:-}" ] && GP=$GP_CMD
fi
plot() {  # plot NAME.png WIDTH HEIGHT <<script   (gnuplot script on stdin)
    [ -n "$GP" ] || return 0
    { echo "set terminal $GP_TERM size $2,$3"; echo "set output '$PLOTS/$1'"; cat; } > "$DAT/${1%.png}.gp"
    if ! $GP "$DAT/${1%.png}.gp" 2> "$DAT/${1%.png}.err"; then
        echo "report.sh: gnuplot failed on $1:" >&2; cat "$DAT/${1%.png}.err" >&2; rm -f "$PLOTS/$1"
    fi
}
image() {  # image NAME.png ALT  -> markdown image line, when the plot exists
    if [ -f "$PLOTS/$1" ]; then printf '![%s](plots/%s)\n\n' "$2" "$1"
    elif [ "$GP_CMD" = none ]; then printf '_(no plot: plots turned off, GNUPLOT=none)_\n\n'
    elif [ -z "$GP" ]; then printf '_(no plot: gnuplot with a PNG terminal is not installed)_\n\n'
    fi
}
# the complete lines of a JSON-lines log: a line cut short (a run killed while writing,
# a copy cut off) would otherwise give a truncated number ("l_val":4.9) as a value
complete() { [ -f "$1" ] && awk '/^[ \t]*\{.*\}[ \t\r]*$/' "$1" || true; }
ncut() { [ -f "$1" ] && awk '!/^[ \t]*$/ && !/^[ \t]*\{.*\}[ \t\r]*$/ { n++ } END { print n + 0 }' "$1" || echo 0; }
# a final run counts once its .done exists (written when dr-train succeeded): the log of
# an interrupted or diverged run ends early, and its last Val loss is no final one
finished() { [ -s "$OUT/train/$1.jsonl" ] && [ -f "$OUT/train/$1.done" ]; }
# value of "key":number in a flat JSON line (awk function, pasted into programs)
AWK_NUM='function num(line, key,    re, s) {
    re = "\"" key "\"[ \t]*:[ \t]*-?[0-9][0-9.eE+-]*"
    if (!match(line, re)) return ""
    s = substr(line, RSTART, RLENGTH); sub(/^[^:]*:[ \t]*/, "", s); return s + 0
}'

# ---- meta-training ----------------------------------------------------------------------
# meta.dat: meta_step l_val l_val_uniform gain score_mean score_std score_min score_max entropy frac_min frac_max
C1_LINE="no meta-training log $META"
C1_STATUS="NOT EVALUATED"
META_DONE=${META_DIR:-$OUT/meta}/rater.done
if [ -s "$META" ]; then
    awk "$AWK_NUM"'
    { s = num($0, "meta_step"); if (s == "") next
      lv = num($0, "l_val"); lu = num($0, "l_val_uniform"); g = num($0, "l_val_gain")
      if (g == "" && lv != "" && lu != "") g = lu - lv
      printf "%s %s %s %s %s %s %s %s %s %s %s\n", s, v(lv), v(lu), v(g), v(num($0, "score_mean")), v(num($0, "score_std")),
          v(num($0, "score_min")), v(num($0, "score_max")), v(num($0, "score_entropy")), v(num($0, "frac_at_min")), v(num($0, "frac_at_max")) }
    function v(x) { return x == "" ? "NaN" : x }' <<EOF > "$DAT/meta.dat"
$(complete "$META")
EOF
    # criterion 1: mean gain over the last half of the meta-steps
    eval "$(awk '
        { n++; g[n] = $4; s[n] = $1 }
        END {
            if (n == 0) { print "C1_N=0"; exit }
            first = int(n / 2) + 1; m = 0; k = 0; pos = 0; allpos = 0; ss = 0
            for (i = 1; i <= n; i++) if (g[i] != "NaN") { if (g[i] > 0) allpos++ }
            for (i = first; i <= n; i++) if (g[i] != "NaN") { m += g[i]; k++; if (g[i] > 0) pos++ }
            if (k) m /= k
            for (i = first; i <= n; i++) if (g[i] != "NaN") ss += (g[i] - m) ^ 2
            # the standard error of that mean (steps taken as independent), from 2 steps on
            printf "C1_N=%d C1_FROM=%s C1_TO=%s C1_K=%d C1_POS=%d C1_ALLPOS=%d C1_MEAN=%s C1_SE=%s\n", n, s[first], s[n], k, pos, allpos,
                (k ? sprintf("%.6g", m) : ""), (k > 1 ? sprintf("%.2g", sqrt(ss / (k - 1) / k)) : "")
        }' "$DAT/meta.dat")"
    if [ "$C1_N" -gt 0 ] && [ -n "$C1_MEAN" ]; then
        C1_STATUS=$(awk -v m="$C1_MEAN" 'BEGIN { print (m > 0) ? "PASS" : "FAIL" }')
        C1_NOISE=
        [ -n "$C1_SE" ] && C1_NOISE=$(awk -v m="$C1_MEAN" -v se="$C1_SE" 'BEGIN {
            if (m > 2 * se) print "; more than twice its standard error " se
            else if (m > 0) print "; but within twice its standard error " se ": not distinguishable from no gain"
            else print "; standard error " se }')
        C1_LINE="mean of L_val(uniform) − L_val(rater) over meta-steps $C1_FROM–$C1_TO (the last half of $C1_N) = $C1_MEAN nats (> 0 required$C1_NOISE; positive in $C1_POS of those $C1_K steps, $C1_ALLPOS of all $C1_N)"
        if [ ! -f "$META_DONE" ]; then
            C1_STATUS="NOT EVALUATED (meta-training not finished: no $META_DONE)"
            C1_LINE="so far, over the $C1_N meta-steps logged: $C1_LINE"
        fi
    else
        C1_LINE="the meta-training log has no l_val_uniform (meta.track_uniform off?): cannot compare with the uniform baseline"
    fi
    n=$(ncut "$META"); [ "$n" -eq 0 ] || C1_LINE="$C1_LINE ($n incomplete line(s) of \`$META\` ignored)"
    XT=$(awk 'END { print (NR <= 12) ? "set xtics 1" : "set xtics" }' "$DAT/meta.dat")
    [ -n "${C1_MEAN:-}" ] && printf '%s %s\n%s %s\n' "$C1_FROM" "$C1_MEAN" "$C1_TO" "$C1_MEAN" > "$DAT/meta_c1.dat" || echo "NaN NaN" > "$DAT/meta_c1.dat"
    plot meta_lval.png 1000 700 <<EOF
set multiplot layout 2,1 title "Meta-training: Val loss after the inner unroll"
set grid; set key top right; $XT
set lmargin 12; set rmargin 3; set offsets graph 0.02, graph 0.02, graph 0.05, graph 0.05
set ylabel "L_{val} (nats/token)"
plot '$DAT/meta.dat' using 1:3 with linespoints pt 7 ps 0.5 lw 2 lc rgb "#888888" title "uniform weights (w = 1)", \
     '' using 1:2 with linespoints pt 7 ps 0.5 lw 2 lc rgb "#d62728" title "rater-weighted"
set ylabel "L_{val}(uniform) − L_{val}(rater)"
set xlabel "meta-step"
set key top left
plot '$DAT/meta.dat' using 1:4 with impulses lw 3 lc rgb "#1f77b4" title "gain per meta-step (> 0: the rater helps)", \
     '$DAT/meta_c1.dat' using 1:2 with lines lw 2 dt 2 lc rgb "#d62728" title "mean over the last half (criterion 1)", \
     0 with lines lc rgb "black" notitle
unset multiplot
EOF
    plot meta_scores.png 1000 700 <<EOF
set multiplot layout 2,1 title "Meta-training: rater scores (logits z) on the Train_A batches"
set grid; set key outside right; $XT
set lmargin 12; set rmargin at screen 0.74; set offsets graph 0.02, graph 0.02, graph 0.05, graph 0.05
set ylabel "score z"
plot '$DAT/meta.dat' using 1:(\$5-\$6):(\$5+\$6) with filledcurves lc rgb "#c6dbef" title "mean ± std", \
     '' using 1:5 with lines lw 2 lc rgb "#1f77b4" title "mean", \
     '' using 1:7 with lines dt 2 lc rgb "#555555" title "min", \
     '' using 1:8 with lines dt 2 lc rgb "#555555" title "max"
set xlabel "meta-step"
set ylabel "fraction / nats"
set yrange [0:*]
plot '$DAT/meta.dat' using 1:9 with lines lw 2 lc rgb "#2ca02c" title "mean entropy of sigmoid(z)", \
     '' using 1:10 with lines lw 2 lc rgb "#d62728" title "weights at w_{min}", \
     '' using 1:11 with lines lw 2 lc rgb "#9467bd" title "weights at w_{max}"
unset multiplot
EOF
fi

# ---- final training runs -------------------------------------------------------------
# (finished runs only: compare.sh, the plots and the criteria use nothing else)
LOGS=
rm -f "$DAT"/val_*.dat
for r in $RUNS; do finished "$r" && LOGS="$LOGS $r=$OUT/train/$r.jsonl"; done
for r in $RUNS; do
    finished "$r" || continue
    complete "$OUT/train/$r.jsonl" | awk "$AWK_NUM"'{ v = num($0, "l_val"); t = num($0, "tokens"); if (v != "" && t != "") print t, v }' \
        > "$DAT/val_$r.dat"
done
final() {  # final RUN -> "tokens l_val seconds" of the finished run's last eval (empty if none)
    finished "$1" || return 0
    complete "$OUT/train/$1.jsonl" | awk "$AWK_NUM"'{ v = num($0, "l_val"); t = num($0, "tokens"); s = num($0, "seconds")
        if (s != "") sec = s; if (v != "" && t != "") { lt = t; lv = v } }
        END { if (lv != "") printf "%s %.10g %s\n", lt, lv, (sec == "" ? "NaN" : sec) }'
}
why_missing() {  # RUN -> why it has no final Val loss
    if [ ! -s "$OUT/train/$1.jsonl" ]; then printf 'not run'
    elif [ ! -f "$OUT/train/$1.done" ]; then
        complete "$OUT/train/$1.jsonl" | awk "$AWK_NUM"'{ v = num($0, "l_val"); t = num($0, "tokens"); if (v != "" && t != "") { lt = t; lv = v } }
            END { printf "not finished (no .done: interrupted, diverged or running)"; if (lv != "") printf "; last Val loss %.4f after %d tokens", lv, lt }'
    else printf 'no Val loss in its log'
    fi
}
run_style() {  # fixed colours per run; the second baseline seed dashed in the baseline's
    case $1 in
        baseline)       echo "lc rgb '#7b3294'" ;;
        baseline-seed*) echo "lc rgb '#7b3294' dt 2" ;;
        datarater)      echo "lc rgb '#1a9850'" ;;
        datarater-seed*) echo "lc rgb '#1a9850' dt 2" ;;
        random)         echo "lc rgb '#4393c3'" ;;
        random-seed*)   echo "lc rgb '#4393c3' dt 2" ;;
        ppl)            echo "lc rgb '#e08214'" ;;
        online)         echo "lc rgb '#b2182b'" ;;
        *)              echo "" ;;
    esac
}
if [ -n "$LOGS" ] && [ -n "$GP" ]; then
    {
        echo 'set multiplot layout 1,2 title "Final training: Val loss at equal training tokens"'
        maxt=$(for r in $RUNS; do [ -s "$DAT/val_$r.dat" ] && tail -n 1 "$DAT/val_$r.dat"; done | awk '$1 > m { m = $1 } END { print m + 0 }')
        if [ "$maxt" -ge 2000000 ]; then XS=1e6 XL="training tokens (millions)"
        elif [ "$maxt" -ge 2000 ]; then XS=1e3 XL="training tokens (thousands)"
        else XS=1 XL="training tokens"; fi
        echo "set grid; set xlabel '$XL'; set ylabel 'L_{val} (nats/token)'"
        echo 'set key top right'
        printf 'plot'; sep=' '
        for r in $RUNS; do [ -s "$DAT/val_$r.dat" ] && { printf "%s'%s' using (\$1/%s):2 with linespoints pt 7 ps 0.6 lw 2 %s title '%s'" "$sep" "$DAT/val_$r.dat" "$XS" "$(run_style "$r")" "$r"; sep=', '; }; done
        echo
        # zoom: the last 60% of the shortest run
        zmin=$(for r in $RUNS; do [ -s "$DAT/val_$r.dat" ] && tail -n 1 "$DAT/val_$r.dat"; done | awk 'NR == 1 || $1 < m { m = $1 } END { printf "%d", 0.4 * m }')
        echo "set title 'the last 60% (from $zmin tokens)'; set key bottom left"
        echo "set xrange [$zmin/$XS:*]; set autoscale y"
        printf 'plot'; sep=' '
        for r in $RUNS; do [ -s "$DAT/val_$r.dat" ] && { printf "%s'%s' using (\$1/%s):(\$1 >= %s ? \$2 : NaN) with linespoints pt 7 ps 0.6 lw 2 %s title '%s'" "$sep" "$DAT/val_$r.dat" "$XS" "$zmin" "$(run_style "$r")" "$r"; sep=', '; }; done
        echo
        echo 'unset multiplot'
    } | plot val_curves.png 1200 500
fi

# criterion 2: DataRater-filtered vs all data, final Val loss at the same budget. With the
# second-seed runs (NOISE=1) it is judged on the two-seed means, and the seed spread (the
# largest |seed s − seed s+1| among baseline, datarater, random; random's two seeds also
# train on two different random subsets) says which differences are larger than the noise.
C2_STATUS="NOT EVALUATED"
B=$(final baseline); D=$(final datarater)
if [ -z "$B" ] || [ -z "$D" ]; then
    C2_LINE="needs the final Val loss of both the 'baseline' and the 'datarater' runs ($( [ -n "$B" ] || printf 'baseline: %s' "$(why_missing baseline)"; [ -n "$B$D" ] || printf '; '; [ -n "$D" ] || printf 'datarater: %s' "$(why_missing datarater)"))"
else
    set -- $B; BT=$1 BL=$2; set -- $D; DT=$1 DL=$2
    R=$(final random); S=$(final baseline-seed2); D2=$(final datarater-seed2); R2=$(final random-seed2)
    inrange=$(awk -v k="$KEEP" 'BEGIN { print (k + 0 >= 0.5 && k + 0 <= 0.7) ? 1 : 0 }')
    if [ -n "$S" ] && [ -n "$D2" ]; then
        # two seeds: means, spread, verdict on the means
        eval "$(printf '%s\n%s\n%s\n%s\n%s\n%s\n' "b1 $B" "b2 $S" "d1 $D" "d2 $D2" "r1 ${R:-- - -}" "r2 ${R2:-- - -}" | awk -v t="$TOL" -v k="$KEEP" '
            { v[$1] = $3 }
            function ab(x) { return x < 0 ? -x : x }
            END {
                mb = (v["b1"] + v["b2"]) / 2; md = (v["d1"] + v["d2"]) / 2
                n = ab(v["b1"] - v["b2"]); if (ab(v["d1"] - v["d2"]) > n) n = ab(v["d1"] - v["d2"])
                hasr = (v["r1"] != "-" && v["r2"] != "-"); if (hasr) { mr = (v["r1"] + v["r2"]) / 2; if (ab(v["r1"] - v["r2"]) > n) n = ab(v["r1"] - v["r2"]) }
                printf "C2_STATUS=%s\n", (md <= mb + t) ? "PASS" : "FAIL"
                printf "C2_LINE=\"final Val loss, mean of two seeds (experiment.seed s and s+1; the same training data, except that random draws its subset with each seed): DataRater-filtered (keep %s) %.4f (%.4f, %.4f) vs all data %.4f (%.4f, %.4f): Δ = %+.4f nats (%+.2f%%; ≤ %s required)", k, md, v["d1"], v["d2"], mb, v["b1"], v["b2"], md - mb, 100 * (md - mb) / mb, (t + 0 == 0 ? "0" : "+" t)
                if (hasr) printf "; random filtering at the same keep: %.4f (%.4f, %.4f), DataRater − random = %+.4f", mr, v["r1"], v["r2"], md - mr
                printf "; seed spread (largest |seed s − seed s+1| of these runs) %.4f nats, so DataRater vs all data is %s", n, (ab(md - mb) <= n) ? "within seed noise: a tie, whatever the label says" : "larger than seed noise"
                if (hasr) printf ", and DataRater vs random is %s", (ab(md - mr) <= n) ? "within seed noise" : "larger than seed noise"
                printf "\"\n"
            }')"
    else
        C2_STATUS=$(awk -v d="$DL" -v b="$BL" -v t="$TOL" 'BEGIN { print (d <= b + t) ? "PASS" : "FAIL" }')
        C2_LINE=$(awk -v d="$DL" -v b="$BL" -v dt="$DT" -v bt="$BT" -v k="$KEEP" -v t="$TOL" 'BEGIN {
            printf "final Val loss, DataRater-filtered (keep %s) %.4f after %d tokens vs all data %.4f after %d tokens: Δ = %+.4f nats (%+.2f%%; ≤ %s required)",
                k, d, dt, b, bt, d - b, 100 * (d - b) / b, (t + 0 == 0 ? "0" : "+" t) }')
        # context: random filtering at the same keep, and the seed-to-seed spread of the baseline
        [ -n "$R" ] && C2_LINE="$C2_LINE$(echo "$R" | awk -v d="$DL" '{ printf "; for reference, random filtering at the same keep: %.4f (DataRater − random = %+.4f)", $2, d - $2 }')"
        if [ -n "$S" ]; then
            C2_LINE="$C2_LINE$(echo "$S" | awk -v b="$BL" -v d="$DL" -v r="${R:-}" '{
                n = (b > $2 ? b - $2 : $2 - b); dd = (d > b ? d - b : b - d)
                printf "; seed noise: the baseline with the next seed reached %.4f (|Δ| = %.4f)", $2, n
                if (dd <= n) printf ", so DataRater vs all data (|Δ| = %.4f) is within seed noise: a tie, whatever the label says", dd
                else printf ", so DataRater vs all data (|Δ| = %.4f) is larger than seed noise", dd
                if (r != "") { split(r, a, " "); dr = (d > a[2] ? d - a[2] : a[2] - d)
                    printf "; DataRater vs random (|Δ| = %.4f) is %s", dr, (dr <= n) ? "within seed noise" : "larger than seed noise" } }')"
        else
            C2_LINE="$C2_LINE; seed noise not measured in this run (NOISE=1 adds second-seed runs)"
        fi
    fi
    [ "$inrange" = 1 ] || C2_STATUS="NOT EVALUATED (keep $KEEP is outside 0.5–0.7)"
    # a run that ends no lower than its step-0 Val loss learned nothing (diverged, or a
    # budget too small): comparing its losses says nothing about the data
    for r in baseline datarater; do
        first=$(awk 'NR == 1 { print $2 }' "$DAT/val_$r.dat" 2>/dev/null)
        last=$(final "$r" | awk '{ print $2 }')
        if [ -n "$first" ] && [ -n "$last" ] && awk -v a="$first" -v b="$last" 'BEGIN { exit !(b >= a) }'; then
            C2_STATUS="NOT EVALUATED (the $r run learned nothing: its Val loss went from $first at the start to $last; diverged, or too few steps)"
            break
        fi
    done
fi

# ---- scores per source -------------------------------------------------------------------
# sources.dat: source n tokens mean std min max kept%(datarater) kept%(random) kept%(ppl) ppl_mean
if [ -s "$SCORES" ]; then
    # kept% per source from the filters' summaries ("source examples kept kept%" lines; a
    # name may hold spaces: the last three fields are the numbers). In the .dat files a
    # space in a source name is a no-break space (U+00A0), which awk and gnuplot do not
    # split on and the report shows as a space.
    for f in datarater random ppl online; do
        if [ -s "$OUT/filter/$f.summary" ]; then
            awk -v nb="$NBSP" 'f { name = $1; for (i = 2; i <= NF - 3; i++) name = name nb $i; print name, $(NF - 2), $(NF - 1) }
                /^source[ \t]+examples/ { f = 1 }' "$OUT/filter/$f.summary" > "$DAT/kept_$f.dat"
        else
            : > "$DAT/kept_$f.dat"
        fi
    done
    [ -s "$PPL" ] && awk -F '\t' -v nb="$NBSP" 'NR > 1 { gsub(/ /, nb, $3); print $3, $2 }' "$PPL" > "$DAT/ppl_scores.dat" || : > "$DAT/ppl_scores.dat"
    awk -F '\t' -v nb="$NBSP" 'NR > 1 { gsub(/ /, nb, $3); print $3, $2, $4 }' "$SCORES" > "$DAT/scores.dat"
    awk '
        FILENAME ~ /kept_datarater/ { kd[$1] = ($2 > 0) ? 100 * $3 / $2 : 0; next }
        FILENAME ~ /kept_random/    { kr[$1] = ($2 > 0) ? 100 * $3 / $2 : 0; next }
        FILENAME ~ /kept_ppl/       { kp[$1] = ($2 > 0) ? 100 * $3 / $2 : 0; next }
        FILENAME ~ /ppl_scores/     { pn[$1]++; ps[$1] += $2; next }
        { s = $1; n[s]++; tok[s] += $3; sum[s] += $2; sq[s] += $2 * $2
          if (!(s in mn) || $2 < mn[s]) mn[s] = $2; if (!(s in mx) || $2 > mx[s]) mx[s] = $2 }
        END {
            for (s in n) {
                m = sum[s] / n[s]; var = sq[s] / n[s] - m * m; if (var < 0) var = 0
                printf "%s %d %d %.6g %.6g %.6g %.6g %s %s %s %s\n", s, n[s], tok[s], m, sqrt(var), mn[s], mx[s],
                    (s in kd) ? sprintf("%.1f", kd[s]) : "-", (s in kr) ? sprintf("%.1f", kr[s]) : "-",
                    (s in kp) ? sprintf("%.1f", kp[s]) : "-", (s in pn) ? sprintf("%.4f", ps[s] / pn[s]) : "-"
            }
        }' "$DAT/kept_datarater.dat" "$DAT/kept_random.dat" "$DAT/kept_ppl.dat" "$DAT/ppl_scores.dat" "$DAT/scores.dat" \
        | sort -k4,4gr > "$DAT/sources.dat"
    # the score above which the top KEEP fraction lies (for the histograms)
    CUT=$(awk '{ print $2 }' "$DAT/scores.dat" | sort -gr | awk -v k="${KEEP:-0}" '{ a[NR] = $1 } END { i = int(k * NR + 0.5); if (i < 1) i = 1; if (i > NR) i = NR; print a[i] }')
    # histograms: 40 bins over the global range; per source, the fraction of its examples per bin
    awk -v nb=40 '
        { s[NR] = $1; x[NR] = $2; if (NR == 1 || $2 < lo) lo = $2; if (NR == 1 || $2 > hi) hi = $2 }
        END {
            if (hi == lo) hi = lo + 1e-9
            w = (hi - lo) / nb
            for (i = 1; i <= NR; i++) { b = int((x[i] - lo) / w); if (b >= nb) b = nb - 1; c[s[i], b]++; n[s[i]]++ }
            while ((getline line < order) > 0) { split(line, f, " "); src[++ns] = f[1] }
            for (k = 1; k <= ns; k++) {
                printf "# %s (%d examples)\n", src[k], n[src[k]]
                for (b = 0; b < nb; b++) printf "%.6g %.6g\n", lo + (b + 0.5) * w, c[src[k], b] / n[src[k]]
                printf "\n\n"
            }
            pad = 0.04 * (hi - lo)
            printf "%.6g %.6g\n", lo - pad, hi + pad > binfile
        }' order="$DAT/sources.dat" binfile="$DAT/hist_range.dat" "$DAT/scores.dat" > "$DAT/hist.dat"
    NS=$(wc -l < "$DAT/sources.dat")
    if [ -n "$GP" ] && [ "$NS" -gt 0 ]; then
        COLS=4; [ "$NS" -le 4 ] && COLS=$NS
        ROWS=$(( (NS + COLS - 1) / COLS ))
        set -- $(cat "$DAT/hist_range.dat")
        {
            echo "set multiplot layout $ROWS,$COLS title 'Rater scores per source (fraction of the source''s train\\_b examples per bin; red: the keep-$KEEP threshold)'"
            echo "set style fill solid 0.6 noborder; set grid ytics; set xrange [$1:$2]; set yrange [0:*]"
            echo "set tics font ',8'; set format y '%.2f'; set xlabel 'rater score (logit)' font ',8' offset 0,0.5"
            i=0
            while read -r src n tok m sd mn mx kd rest; do
                t=$(printf '%s' "$src" | sed 's/_/\\\\_/g')
                [ ${#t} -gt 40 ] && t="$(printf '%s' "$t" | cut -c1-38)…"
                printf 'set title "%s\\n%s examples, kept by the filter: %s" font ",8"\n' "$t" "$n" "$( [ "$kd" = - ] && printf '?' || printf '%s%%' "$kd")"
                echo "set arrow 1 from $CUT, graph 0 to $CUT, graph 1 nohead front lc rgb '#d62728' lw 2 dt 2"
                echo "plot '$DAT/hist.dat' index $i using 1:2 with boxes lc rgb '#1f77b4' notitle"
                i=$((i + 1))
            done < "$DAT/sources.dat"
            echo 'unset multiplot'
        } | plot score_hist.png $((COLS * 330 < 900 ? 900 : COLS * 330)) $((ROWS * 235 + 40))   # the title's width
    fi
fi

# ---- the report ----------------------------------------------------------------------------
{
echo "# DataRater reproduction report"
echo
echo "Run \`$OUT\`, written $(date -u '+%Y-%m-%d %H:%M UTC') by \`pipelines/report.sh\` from this run's files."
echo
q() { if [ -n "$1" ]; then printf '%s' "$1"; else printf '?'; fi; }
[ -f "$OUT/run.env" ] || { echo "_(\`run.env\` is missing: this directory was not made by pipelines/repro.mk, or not to the end; settings unknown)_"; echo; }
TOK=$(env_get TOKENIZER)
echo "| setting | value |"
echo "|---|---|"
echo "| config | \`$(q "$CONFIG")\` |"
echo "| corpus | \`$(q "$(env_get CORPUS)")\` |"
echo "| Val | $(q "$VAL_MODE")$( [ "$VAL_MODE" = prose ] && printf ': held-out documents (%s of them) of %s' "$(env_get VAL_FRAC)" "$(env_get VAL_SOURCES)"; [ "$VAL_MODE" = mixture ] && printf ': held-out documents (%s) of the whole training mixture' "$(env_get VAL_FRAC)") |"
echo "| tokenizer | $(q "$TOK")$( [ "$TOK" = bpe ] && printf ' (%s tokens, trained on the corpus)' "$(env_get BPE_VOCAB)") |"
echo "| keep rate | $(q "$KEEP") |"
echo "| final-run budget | $( b=$(env_get BUDGET); [ -n "$b" ] && printf '`%s`' "$b" || printf 'train.steps / train.tokens of the config') |"
echo "| overrides | SET=\`$(env_get SET)\` META_SET=\`$(env_get META_SET)\` TRAIN_SET=\`$(env_get TRAIN_SET)\` DEVICE=\`$(env_get DEVICE)\` |"
echo "| deployed rater | \`$(q "$RATER")\` |"
echo
echo "## The seed's success criteria"
echo
echo "- **Criterion 1 — L_val after the inner unroll is below the uniform baseline: $C1_STATUS.** $C1_LINE."
echo "- **Criterion 2 — filtering at keep 0.5–0.7 gives equal or better Val loss than all data at the same training budget: $C2_STATUS.** ${C2_LINE}."
echo

CORPUS_USED=$(env_get CORPUS)
case $VAL_MODE:$CORPUS_USED in
    prose:*/data/corpus/corpus.jsonl|prose:data/corpus/corpus.jsonl|prose:) echo "Val here is clean prose, unlike most of the training mixture, so part of any gain is a shift of the mix toward Val's domain (DESIGN §9). The DataRater paper's setting, Val drawn from the training mixture itself: \`make -f pipelines/repro.mk VAL_MODE=mixture\` (report in \`runs/repro-mixture/\`)."; echo ;;
    prose:*) echo "Val here is held-out documents of the sources \`$(env_get VAL_SOURCES)\` only, so part of any gain can be a shift of the training mix toward those sources rather than better data. Val drawn from the whole mixture (the DataRater paper's setting): the same \`make\` command with \`VAL_MODE=mixture\` added."; echo ;;
    mixture:*/data/corpus/corpus.jsonl|mixture:data/corpus/corpus.jsonl|mixture:) echo "Val here is drawn from the training mixture itself (the DataRater paper's setting): a gain cannot come from moving the mix toward a different Val domain. The prose-Val setting: \`make -f pipelines/repro.mk\` (report in \`runs/repro/\`)."; echo ;;
    mixture:*) echo "Val here is drawn from the training mixture itself (the DataRater paper's setting): a gain cannot come from moving the mix toward a different Val domain."; echo ;;
esac
echo "## Data"
echo
if [ -n "$MANIFEST" ] && [ -f "$MANIFEST" ]; then
    echo "Splits (\`$MANIFEST\`):"
    echo
    echo "| split | documents | tokens | role |"
    echo "|---|---:|---:|---|"
    awk '/^# (train_a|val|train_b): / { s = $2; sub(/:$/, "", s); d = $3; t = $5
            role = (s == "train_a") ? "meta-training (inner LMs)" : (s == "val") ? "Val: the meta-objective and every L_val below" : "scored, filtered, final training"
            printf "| %s | %s | %s | %s |\n", s, d, t, role }' "$MANIFEST"
    echo
    grep -E '^# (val-sources|dedup):' "$MANIFEST" | sed 's/^# /- /' || true
    echo
else
    echo "_(split manifest not found)_"; echo
fi

echo "## Meta-training"
echo
if [ -s "$META" ] && [ -s "$DAT/meta.dat" ]; then
    echo "Each meta-step: the population's inner LMs run their unroll on Train_A with the rater's weights, and, from the same states, a shadow with uniform weights; both are evaluated on Val. Red below grey means the rater's weighting helped within the unroll."
    echo
    image meta_lval.png "L_val rater vs uniform over meta-steps"
    awk 'NR == 1 { f = $0 } { l = $0; n++ } END {
        split(f, a, " "); split(l, b, " ")
        print "| meta-step | L_val (rater) | L_val (uniform) | gain | score mean | score std | score min | score max |"
        print "|---:|---:|---:|---:|---:|---:|---:|---:|"
        printf "| %s | %.4f | %.4f | %+.5f | %.4g | %.4g | %.4g | %.4g |\n", a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
        if (n > 1) printf "| %s | %.4f | %.4f | %+.5f | %.4g | %.4g | %.4g | %.4g |\n", b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]
    }' "$DAT/meta.dat"
    echo
    awk "$AWK_NUM"'{ s = num($0, "seconds"); if (s != "") last = s; m = num($0, "meta_step"); if (m != "") steps = m }
        END { if (last != "") printf "Meta-training took %.0f s (%d meta-steps).\n\n", last, steps }' <<EOF
$(complete "$META")
EOF
    image meta_scores.png "rater score statistics over meta-steps"
else
    echo "_(no meta-training log: \`$META\`)_"; echo
fi

echo "## Final training at equal budget"
echo
echo "Every run trains the same LM with the same config and budget; only the training data differ: **baseline** = all of train_b, **datarater** = the top ${KEEP:-?} of train_b by the rater's score, **random** = a random ${KEEP:-?} of it, **ppl** = the middle ${KEEP:-?} by the mean token loss of the ${PPL_REF:-baseline} LM (perplexity filtering)$(case " $RUNS " in *" online "*) printf ', **online** = all of train_b with the rater dropping the bottom of every batch while training';; esac). Val loss is nats per token on the Val split."
echo
case " $RUNS " in *-seed2" "*) echo "Runs named \`…-seed2\` train with \`experiment.seed\` + 1 (another initialisation and data order) on the same data as their namesake, except \`random-seed2\`, which draws its own random subset with that seed: their differences from it are seed noise (for random, seed and subset noise). Dashed lines in the plot."; echo ;; esac
case $ONLINE in no*) echo "The online bottom-K run is not in this report: ${ONLINE#no: }."; echo ;; esac
image val_curves.png "Val loss curves of the final runs"
if [ -n "$LOGS" ]; then
    # epochs: the tokens a run trained on over the tokens of its training data (the filter's
    # kept tokens; all of train_b's examples for baseline and online; the manifest's train_a)
    data_tokens() {
        case $1 in
            datarater*|random*|ppl) f=$1; [ "$1" = datarater-seed2 ] && f=datarater   # random-seed2 has its own subset
                awk '/^kept / { print $(NF - 4); exit }' "$OUT/filter/$f.summary" 2>/dev/null ;;
            ref-train_a) awk '/^# train_a: / { print $5; exit }' "$MANIFEST" 2>/dev/null ;;
            *) { awk '/^kept / { print $(NF - 2); exit }' "$OUT/filter/datarater.summary" 2>/dev/null; \
                 awk '/^# train_b: / { print $5; exit }' "$MANIFEST" 2>/dev/null; } | head -n 1 ;;
        esac
    }
    echo "| run | final L_val | Δ vs baseline | tokens | epochs of its data | wall seconds |"
    echo "|---|---:|---:|---:|---:|---:|"
    : > "$DAT/epochs.dat"
    for r in $RUNS; do
        f=$(final "$r"); [ -n "$f" ] || { echo "| $r | ($(why_missing "$r")) | | | | |"; continue; }
        echo "$f" | awk -v r="$r" -v b="$(final baseline | awk '{ print $2 }')" -v n="$(data_tokens "$r")" -v ep="$DAT/epochs.dat" '{
            e = (n + 0 > 0) ? $1 / n : ""; if (e != "") print r, e >> ep
            printf "| %s | %.4f | %s | %d | %s | %s |\n", r, $2, (b == "" || r == "baseline") ? "" : sprintf("%+.4f", $2 - b), $1,
                (e == "") ? "" : sprintf("%.2g", e), ($3 == "NaN") ? "" : sprintf("%.1f", $3) }'
    done
    echo
    awk '$2 > 4 { n++; names = names (n > 1 ? ", " : "") $1; if ($2 > m) m = $2 }
        END { if (n) printf "**Note: %s saw %s training data more than 4 times (up to %.3g epochs).** Past about 4 epochs repeated tokens are worth much less than new ones (Muennighoff et al., 2023, *Scaling Data-Constrained Language Models*), so these Val losses say how the runs overfit their subsets as much as which data is better: a larger train_b (`TRAIN_B_FRAC`) or a smaller budget (`STEPS` / `TOKENS`) keeps the comparison about the data.\n\n", names, (n > 1 ? "their" : "its"), m }' "$DAT/epochs.dat"
    # the one-time scoring of train_b that an offline filter needs (dr-score prints its
    # FLOPs): counted in the equal-FLOPs table for the runs that use it
    sflops() { [ -s "$1" ] && sed -n 's/.* \([0-9.eE+-]*\) FLOPs (.*/\1/p' "$1" | tail -n 1 || true; }
    FR=$(sflops "${SCORE_DIR:-$OUT/score}/datarater.log"); FP=$(sflops "${SCORE_DIR:-$OUT/score}/ppl.log")
    OFFS=
    [ -n "$FR" ] && OFFS="$OFFS --offset datarater=$FR --offset datarater-seed2=$FR"
    [ -n "$FP" ] && OFFS="$OFFS --offset ppl=$FP"
    if [ -n "$OFFS" ]; then
        echo "In the FLOPs table, the offline filters also pay for scoring all of train_b once: datarater$(case " $RUNS " in *" datarater-seed2 "*) printf ' (both seeds)';; esac) $( [ -n "$FR" ] && printf '%s FLOPs (rater forward)' "$FR" || printf 'not counted'), ppl $( [ -n "$FP" ] && printf '%s FLOPs (reference-LM forward)' "$FP" || printf 'not counted') (from dr-score; random needs no scores). Meta-training and the reference LM's own training are not counted."
        echo
    fi
    # shellcheck disable=SC2086
    sh "$PIPE/compare.sh" --md $OFFS $LOGS || echo "_(compare.sh failed)_"
    echo
else
    echo "_(no finished final run under \`$OUT/train/\`)_"; echo
    for r in $RUNS; do echo "- $r: $(why_missing "$r")"; done; echo
fi

echo "## What the rater keeps, per source"
echo
if [ -s "$DAT/sources.dat" ]; then
    echo "Scores are the rater's logits on the train_b examples (\`score/datarater.tsv\`), sorted by mean; kept % is each filter's share of the source's examples (\`filter/*.summary\`); the last column is the mean over the source's examples of each one's mean token loss (nats/token) under the perplexity filter's reference LM."
    echo
    echo "| source | examples | tokens | mean score | std | min | max | kept % datarater | kept % random | kept % ppl | mean LM loss (nats/token) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk '{ printf "| %s | %d | %d | %.4g | %.3g | %.4g | %.4g | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' "$DAT/sources.dat"
    echo
    [ -s "$OUT/filter/datarater.summary" ] && { echo "DataRater filter: $(head -n 1 "$OUT/filter/datarater.summary")."; echo; }
    # how finely the scores rank: a rater whose scores pile up at two values is a binary
    # classifier, and the keep threshold then falls inside one pile (ties broken by noise)
    awk -v cut="${CUT:-}" '{ x[NR] = $2; if (NR == 1 || $2 < lo) lo = $2; if (NR == 1 || $2 > hi) hi = $2 }
        END {
            if (NR == 0 || hi == lo) exit
            e = 0.01 * (hi - lo); nl = 0; nh = 0
            for (i = 1; i <= NR; i++) { if (x[i] <= lo + e) nl++; else if (x[i] >= hi - e) nh++ }
            printf "Score resolution: %.1f%% of the %d examples lie within 1%% of the score range from its lowest value (%.4g) and %.1f%% within 1%% from its highest (%.4g); %.1f%% in between.",
                100 * nl / NR, NR, lo, 100 * nh / NR, hi, 100 * (NR - nl - nh) / NR
            if (nl + nh >= 0.9 * NR) {
                printf " The rater is close to a binary classifier of examples"
                if (cut != "" && cut <= lo + e) printf "; the keep threshold (%.6g) falls inside the low pile, so the examples kept from it are picked by score differences below %.2g", cut, e
                else if (cut != "" && cut >= hi - e) printf "; the keep threshold (%.6g) falls inside the high pile, so the examples dropped from it are picked by score differences below %.2g", cut, e
                printf "."
            }
            printf "\n\n"
        }' "$DAT/scores.dat"
    image score_hist.png "score histogram per source"
else
    echo "_(no scores: \`$SCORES\`)_"; echo
fi

echo "## Highest- and lowest-scored examples"
echo
for which in top bottom; do
    f=$OUT/examples/$which.txt
    [ "$which" = top ] && echo "### Highest scores (kept first)" || echo "### Lowest scores (dropped first)"
    echo
    echo "(text as decoded from the tokens; runs of blank lines squeezed to one; at most 15 lines, 600 characters)"
    echo
    if [ -s "$f" ]; then
        # dr-cat --scores blocks: "### <id> score <s> source <src>" then the text; runs of
        # blank lines are squeezed to one, at most 600 characters and 15 lines are shown
        awk -v max=600 -v maxl=15 '
            function flush(   t, extra) { if (hdr == "") return
                t = txt; extra = ""
                if (length(t) > max) { t = substr(t, 1, max); extra = " …" }
                print hdr; print ""; print "~~~~"; print t extra; print "~~~~"; print "" }
            /^### / { flush(); split($0, h, " "); src = $0; sub(/^### [^ ]+ score [^ ]+ source /, "", src)   # a name may hold spaces
                      hdr = sprintf("%d. score **%s**, source `%s`, example `%s`", ++k, h[4], src, h[2]); txt = ""; nl = 0; blank = 0; next }
            { line = $0; gsub(/\r/, "", line)
              if (line ~ /^[ \t]*$/) { if (blank++ || nl == 0) next; line = "" } else blank = 0
              if (nl == maxl) { txt = txt "\n…"; nl++ } else if (nl < maxl) txt = (nl++ ? txt "\n" : "") line }
            END { flush() }' "$f"
    else
        echo "_(missing: \`$f\`)_"; echo
    fi
done

echo "## Files"
echo
echo "- meta-training: \`meta/metrics.jsonl\`, \`meta/rater.safetensors\`, \`meta/rater.ema.safetensors\`"
echo "- scores: \`score/datarater.tsv\` (rater), \`score/ppl.tsv\` (reference LM); filters: \`filter/<run>/\`, \`filter/<run>.summary\`"
echo "- final runs: \`train/<run>.jsonl\` (metrics), \`train/<run>.safetensors\` (Hugging Face GPT-2 layout)"
if [ -n "$GP" ]; then echo "- plots: \`plots/*.png\`; their data and gnuplot scripts: \`plots/data/\`"
else echo "- plots: none drawn ($( [ "$GP_CMD" = none ] && echo 'GNUPLOT=none' || echo 'no gnuplot with a PNG terminal')); their data: \`plots/data/\`"
fi
echo "- compare any logs again: \`pipelines/compare.sh $OUT/train/*.jsonl\`"
} > "$MD"
mv -f "$MD" "$OUT/report.md"
echo "report.sh: wrote $OUT/report.md$( [ -n "$GP" ] && printf ' and %s/*.png' "$PLOTS")" >&2

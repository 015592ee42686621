#!/bin/sh
# compare.sh — compares dr-train runs from their metric logs (JSON lines with step,
# tokens, l_val at eval steps, and flops when the trainer logs it): Val loss at equal
# training tokens, at equal FLOPs, and where one run reaches another's final Val loss,
# how many fewer tokens it needed. Plain POSIX sh + awk; reads only the logs.
#
#   pipelines/compare.sh [options] [NAME=]metrics.jsonl ...
#
#   NAME=FILE      label of a run (default: the file name without .jsonl)
#   --md           Markdown tables (default: aligned text)
#   --at N[,N..]   token counts to compare at (default: 1/4, 1/2, 3/4 and all of the
#                  largest count every run reached; FLOPs: of the reference's budget)
#   --ref NAME     the reference run of the "fewer tokens" lines (default: the first);
#                  --all-pairs compares every ordered pair instead
#   --offset NAME=F  add F FLOPs to every flops value of run NAME (a one-time cost the
#                  trainer does not log, e.g. scoring the data before filtering it)
#
# Curves are interpolated linearly between eval points, never extrapolated: a run that
# stopped before a column's count shows "-" there (within 2% of its end: its last value),
# as does one whose first point comes after it (an --offset larger than the column's
# FLOPs); a line under the table says which. "Reaches" means the first point
# (interpolated between evals) where a run's Val loss is at or below the other's final.
# Exit status 1 when a log is missing or has no l_val at all.
set -eu
fmt=text at= ref= allpairs=0 offsets=
runs=
while [ $# -gt 0 ]; do
    case $1 in
        --md) fmt=md ;;
        --at) at=${2:?--at needs a value}; shift ;;
        --ref) ref=${2:?--ref needs a value}; shift ;;
        --all-pairs) allpairs=1 ;;
        --offset) offsets="$offsets ${2:?--offset needs NAME=FLOPS}"; shift ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
        *) [ -r "${1#*=}" ] || { echo "compare.sh: ${1#*=}: cannot read" >&2; exit 1; }
           runs="$runs$1
" ;;
    esac
    shift
done
[ -n "$runs" ] || { echo "compare.sh: no logs given (see --help)" >&2; exit 2; }

# One stream for awk: "#RUN name<TAB>path" before each file's lines.
printf '%s' "$runs" | while IFS= read -r r; do
    case $r in *=*) name=${r%%=*}; path=${r#*=} ;; *) path=$r; name=$(basename "$r" .jsonl) ;; esac
    [ -r "$path" ] || { echo "compare.sh: $path: cannot read" >&2; exit 1; }
    printf '#RUN %s\t%s\n' "$name" "$path"
    cat "$path"
    echo
done | awk -v fmt="$fmt" -v q="$( [ "$fmt" = md ] && printf '`')" -v at="$at" -v ref="$ref" -v allpairs="$allpairs" -v offsets="$offsets" '
function num(line, key,    re, s) {   # value of "key":number in a flat JSON object, or ""
    re = "\"" key "\"[ \t]*:[ \t]*-?[0-9][0-9.eE+-]*"
    if (!match(line, re)) return ""
    s = substr(line, RSTART, RLENGTH); sub(/^[^:]*:[ \t]*/, "", s)
    return s + 0
}
function interp(r, axis, x,    k, x0, x1, y0, y1) {   # l_val of run r at axis value x, or ""
    for (k = 1; k <= ne[r]; k++) {
        x1 = (axis == "t") ? et[r, k] : ef[r, k]
        if (x1 == "") return ""
        if (x1 == x) return ev[r, k]
        if (x1 > x) {
            if (k == 1) return ""
            x0 = (axis == "t") ? et[r, k - 1] : ef[r, k - 1]
            y0 = ev[r, k - 1]; y1 = ev[r, k]
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        }
    }
    # a budget within 2% past the end of a run: its last value (runs of the same budget
    # end a few tokens apart)
    if (x1 != "" && x <= 1.02 * x1) return ev[r, ne[r]]
    return ""
}
function reach(r, target,    k, t0, t1, y0, y1) {   # tokens at which run r first gets <= target
    for (k = 1; k <= ne[r]; k++) {
        if (ev[r, k] <= target) {
            if (k == 1) return et[r, 1]
            t0 = et[r, k - 1]; t1 = et[r, k]; y0 = ev[r, k - 1]; y1 = ev[r, k]
            return t0 + (t1 - t0) * (y0 - target) / (y0 - y1)
        }
    }
    return ""
}
function human(x) {
    if (x == "") return "-"
    if (x >= 1e12) return sprintf("%.3gT", x / 1e12)
    if (x >= 1e9) return sprintf("%.3gG", x / 1e9)
    if (x >= 1e6) return sprintf("%.3gM", x / 1e6)
    if (x >= 1e3) return sprintf("%.3gk", x / 1e3)
    return sprintf("%d", x)
}
function cell(v) { return v == "" ? "-" : sprintf("%.4f", v) }
function row(n, c,    i, s) {   # prints cells c[1..n]
    if (fmt == "md") {
        s = "|"; for (i = 1; i <= n; i++) s = s " " c[i] " |"
        print s
    } else {
        s = sprintf("%-14s", c[1]); for (i = 2; i <= n; i++) s = s sprintf(" %10s", c[i])
        print s
    }
}
function rule(n,    i, s) {
    if (fmt != "md") return
    s = "|---|"; for (i = 2; i <= n; i++) s = s "---:|"
    print s
}
function table(axis, label,    levels, n, i, r, c, m, maxx, lv, xr) {
    # levels: the given --at list (tokens), else quarters of the common reach
    m = 0
    if (axis == "t" && at != "") {
        n = split(at, lv, ",")
    } else if (axis == "f") {
        xr = ef[refi, ne[refi]]          # the budget of the reference run
        n = 4
        for (i = 1; i <= 4; i++) lv[i] = xr * i / 4
    } else {
        xr = -1
        for (r = 1; r <= nr; r++) {
            maxx = (axis == "t") ? et[r, ne[r]] : ef[r, ne[r]]
            if (maxx <= 0) continue      # a run that never trained (only its step-0 eval)
            if (xr < 0 || maxx < xr) xr = maxx
        }
        if (xr < 0) xr = 0
        n = 4
        for (i = 1; i <= 4; i++) lv[i] = xr * i / 4
    }
    c[1] = (fmt == "md") ? "run \\ " label : "run \\ " label
    for (i = 1; i <= n; i++) c[i + 1] = human(lv[i] + 0)
    c[n + 2] = "final"; c[n + 3] = "at " label
    row(n + 3, c); rule(n + 3)
    early = ""; late = ""
    for (r = 1; r <= nr; r++) {
        c[1] = name[r]
        for (i = 1; i <= n; i++) {
            c[i + 1] = cell(interp(r, axis, lv[i] + 0))
            if (c[i + 1] != "-") continue
            if (lv[i] + 0 < ((axis == "t") ? et[r, 1] : ef[r, 1])) { if (index(" " early " ", " " name[r] " ") == 0) early = early (early == "" ? "" : " ") name[r] }
            else if (index(" " late " ", " " name[r] " ") == 0) late = late (late == "" ? "" : " ") name[r]
        }
        c[n + 2] = cell(ev[r, ne[r]])
        c[n + 3] = human((axis == "t") ? et[r, ne[r]] : ef[r, ne[r]])
        row(n + 3, c)
    }
    # what a "-" means
    if (early != "" || late != "") print ""
    gsub(/ /, ", ", early); gsub(/ /, ", ", late)
    if (early != "") printf "%s-%s for %s: the run has no Val loss that early: its first evaluation comes later%s.\n", q, q, early,
        (axis == "f" && offsets != "") ? " (with --offset, the one-time cost the run pays before training, such as scoring the data it is filtered from, may alone exceed that budget)" : ""
    if (late != "") printf "%s-%s for %s: the run stopped before it reached that %s.\n", q, q, late, (axis == "t") ? "count" : "budget"
}
BEGIN { n = split(offsets, o, " "); for (i = 1; i <= n; i++) { k = o[i]; sub(/=.*/, "", k); v = o[i]; sub(/^[^=]*=/, "", v); off[k] = v + 0 } }
/^#RUN / {
    nr++; line = substr($0, 6); split(line, p, "\t"); name[nr] = p[1]; path[nr] = p[2]
    ne[nr] = 0; nf[nr] = 0; allflops[nr] = 1; next
}
/^[ \t]*$/ { next }
# a line cut short (a run killed while writing it) would give a truncated number
!/^[ \t]*\{.*\}[ \t\r]*$/ { printf "compare.sh: %s: ignoring an incomplete line\n", path[nr] > "/dev/stderr"; next }
{
    t = num($0, "tokens"); f = num($0, "flops"); if (f != "") f += off[name[nr]]
    if (t != "" && f != "") { nf[nr]++; ft[nr, nf[nr]] = t; fv[nr, nf[nr]] = f }
    v = num($0, "l_val")
    if (v == "" || t == "") next
    k = ne[nr]
    if (k > 0 && et[nr, k] == t) { ev[nr, k] = v; efl[nr, k] = f; next }   # repeated eval
    ne[nr] = k + 1; et[nr, k + 1] = t; ev[nr, k + 1] = v; efl[nr, k + 1] = f
}
END {
    bad = 0
    for (r = 1; r <= nr; r++) if (ne[r] == 0) { printf "compare.sh: %s: no l_val in the log\n", path[r] > "/dev/stderr"; bad = 1 }
    if (bad) exit 1
    # flops at each eval point: the logged value, else interpolated from (tokens, flops) lines
    haveflops = 1
    for (r = 1; r <= nr; r++) {
        for (k = 1; k <= ne[r]; k++) {
            f = efl[r, k]
            if (f == "" && et[r, k] == 0) f = off[name[r]] + 0
            if (f == "") {
                for (j = 2; j <= nf[r]; j++) if (ft[r, j] >= et[r, k] && ft[r, j - 1] <= et[r, k]) {
                    if (ft[r, j] == ft[r, j - 1]) f = fv[r, j]
                    else f = fv[r, j - 1] + (fv[r, j] - fv[r, j - 1]) * (et[r, k] - ft[r, j - 1]) / (ft[r, j] - ft[r, j - 1])
                    break
                }
            }
            if (f == "") haveflops = 0
            ef[r, k] = f
        }
    }
    if (ref == "") refi = 1
    else { refi = 0; for (r = 1; r <= nr; r++) if (name[r] == ref) refi = r
           if (!refi) { printf "compare.sh: --ref %s: no such run\n", ref > "/dev/stderr"; exit 1 } }
    if (fmt == "md") print "Val loss (nats/token) at equal training tokens:\n"
    else print "Val loss (nats/token) at equal training tokens"
    table("t", "tokens")
    print ""
    if (haveflops) {
        if (fmt == "md") printf "Val loss at equal FLOPs, up to %s'"'"'s budget (the logs'"'"' `flops`: LM training, plus the rater where the trainer counts it, plus any --offset):\n\n", name[refi]
        else printf "Val loss at equal FLOPs (up to %s'"'"'s budget)\n", name[refi]
        table("f", "FLOPs")
    } else {
        print "Equal FLOPs: not every log carries a `flops` field; with one LM shape for every run, equal tokens are equal LM training FLOPs (rater inference and meta-training costs are not counted)."
    }
    print ""
    # reaching another run'"'"'s final loss with fewer tokens
    if (fmt == "md") print "Tokens needed to reach another run'"'"'s final Val loss:\n"
    else print "Tokens needed to reach another run'"'"'s final Val loss"
    lines = 0
    for (b = 1; b <= nr; b++) for (a = 1; a <= nr; a++) {
        if (a == b) continue
        if (!allpairs && b != refi) continue
        target = ev[b, ne[b]]; tb = et[b, ne[b]]
        ta = reach(a, target)
        pre = (fmt == "md") ? "- " : "  "
        if (ta == "") {
            printf "%s%s never reaches %s'"'"'s final Val loss %.4f (its best: %.4f)\n", pre, name[a], name[b], target, best(a)
        } else if (ta < tb) {
            printf "%s%s reaches %s'"'"'s final Val loss %.4f after %s tokens: %s fewer than %s'"'"'s %s (%.1f%% saved)\n", pre, name[a], name[b], target, human(ta), human(tb - ta), name[b], human(tb), 100 * (1 - ta / tb)
        } else {
            printf "%s%s reaches %s'"'"'s final Val loss %.4f after %s tokens: %s more than %s'"'"'s %s\n", pre, name[a], name[b], target, human(ta), human(ta - tb), name[b], human(tb)
        }
        lines++
    }
}
function best(r,    k, m) { m = ev[r, 1]; for (k = 2; k <= ne[r]; k++) if (ev[r, k] < m) m = ev[r, k]; return m }
'

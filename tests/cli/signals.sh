#!/usr/bin/env bash
# signals.sh — every tool interrupted by a real signal (SIGINT, SIGTERM, SIGHUP) early,
# mid-run and near the end, and with its stdout closed (SIGPIPE):
#  - dr-tokenize, dr-filter, dr-score -o, dr-split: no half-written file at a final name,
#    no temporary file (*.tmp.<pid>, DIR/.dr-split.<pid>/), an output directory the run
#    created is gone again, an earlier complete output at the same place is byte for byte
#    as it was, and the status is 128 + the signal (130 for Ctrl-C) with at most one line
#    on stderr; a tool started with SIGHUP ignored (nohup) is not ended by it; dr-split
#    also under a second Ctrl-C, and under Ctrl-Cs while it moves its shards into place
#    (DIR then all old or all new);
#  - a closed stdout (`| head -1`, or a pipe nobody reads, also under a parent that ignores
#    SIGPIPE): the tool ends quietly with status 141 (as zcat), within seconds, and a tool
#    whose output is a directory leaves it complete: this run's shards alone (no stale
#    ones of an earlier run next to them);
#  - dr-cat, stdout on a full disk (/dev/full): one error line at the first failed write,
#    not after the whole corpus (its last shard is corrupt: a run to the end says so);
#  - dr-train and dr-meta stopped by SIGTERM (dr-train: SIGHUP too, unless nohup) mid-run
#    save their state (status 130), and
#    --resume gives the model (rater and EMA) of an uninterrupted run, bit for bit
#    (SIGINT is train.sh's and meta.sh's).
# The signal lands in a known state: dr-tokenize reads stdin from a FIFO this script feeds
# (it blocks there, however loaded the machine); the other tools are frozen (SIGSTOP) once
# the awaited state is seen (a temporary file, log lines), the state is checked again while
# frozen, then the signal is sent and the tool let go (SIGCONT): never a bare sleep. A run
# that got past the state before it could be frozen is tried again (5 tries). A signal
# inside a given system call (dr-split's renames into place) is raised by the tool itself,
# through a preloaded rename() ($SIG_AT_RENAME).
source "$(dirname "$0")/helpers.bash" dr-tokenize dr-split dr-cat dr-meta dr-score dr-filter dr-train
set -o pipefail
t_start=$SECONDS

# $SIGH: runs a tool as an interactive shell's foreground job would (SIGINT, SIGTERM,
# SIGHUP, SIGPIPE at their defaults: a script's background job has SIGINT ignored), or
#   ign SIG cmd…       with SIG ignored (nohup);
#   closed cmd…        with stdout a pipe whose reader is gone;
#   closed-ign cmd…    the same under a parent that ignores SIGPIPE.
SIGH=$TMP/sigh
cat >"$TMP/sigh.c" <<'EOF'
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int a = 1, closed = 0, ign = 0;
    if (argc > 2 && !strcmp(argv[a], "ign")) { ign = atoi(argv[a + 1]); a += 2; }
    else if (argc > 1 && !strcmp(argv[a], "closed")) { closed = 1; a++; }
    else if (argc > 1 && !strcmp(argv[a], "closed-ign")) { closed = 1; ign = SIGPIPE; a++; }
    if (a >= argc) return 127;
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT};
    for (int k = 0; k < 5; k++) signal(sigs[k], sigs[k] == ign ? SIG_IGN : SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (closed) {
        int fd[2];
        if (pipe(fd) != 0) return 127;
        close(fd[0]);
        dup2(fd[1], 1);
        close(fd[1]);
    }
    execvp(argv[a], argv + a);
    perror(argv[a]);
    return 127;
}
EOF
cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -o "$SIGH" "$TMP/sigh.c" || { echo "cannot build sigh" >&2; exit 1; }
# LD_PRELOAD=$SIG_AT_RENAME SIGNAL_FROM_RENAME=PATH cmd…: cmd raises SIGINT on itself right
# after its rename() onto PATH, and again after every rename() that follows (a user who
# presses Ctrl-C again and again while the outputs are moved into place)
SIG_AT_RENAME=$TMP/sig_at_rename.so
cat >"$TMP/sig_at_rename.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
int rename(const char *from, const char *to) {
    static int (*real)(const char *, const char *);
    static int on;
    if (!real) real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    int rc = real(from, to);
    const char *at = getenv("SIGNAL_FROM_RENAME");
    if (at && strcmp(to, at) == 0) on = 1;
    if (on) raise(SIGINT);
    return rc;
}
EOF
cc -std=c11 -O2 -shared -fPIC -o "$SIG_AT_RENAME" "$TMP/sig_at_rename.c" -ldl ||
    { echo "cannot build sig_at_rename.so" >&2; exit 1; }

# ---- helpers -----------------------------------------------------------------------------
signum() { case $1 in INT) echo 2;; TERM) echo 15;; HUP) echo 1;; PIPE) echo 13;; esac; }
# Polling is fork-free (builtins only), so a short window is not missed on a busy machine:
# pstate PID sets STATE to the process state letter (R, S, T, Z…), empty once reaped;
# tick waits 5 ms (read on a FIFO nobody writes).
pstate() { STATE=; local s; { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 0; s=${s##*) }; STATE=${s%% *}; }
running() { pstate "$1"; [ -n "$STATE" ] && [ "$STATE" != Z ]; }
gone() { ! running "$1"; }
frozen() { pstate "$1"; [ "$STATE" != R ] && [ "$STATE" != S ] && [ "$STATE" != D ]; }
# is_tool PID: PID runs a dr-* program by now (not still the shell that forks it: a signal
# to that one would run the shell's EXIT trap)
is_tool() { local c; { read -r c <"/proc/$1/comm"; } 2>/dev/null && [[ $c == dr-* ]]; }
mkfifo "$TMP/tick"
exec 9<>"$TMP/tick"
tick() { read -r -t 0.005 -u 9 _ || :; }
# wait_until CMD…: polls until CMD succeeds (at most 60 s)
wait_until() { local t=$((SECONDS + 60)); until "$@"; do [ $SECONDS -lt $t ] || return 1; tick; done; }
# has GLOB: a file matches
has() { compgen -G "$1" >/dev/null; }
# snapshot DIR: every file under DIR with its md5, every directory (what must not change)
snapshot() { (cd "$1" && find . -type d | sort && find . -type f -print0 | sort -z | xargs -0r md5sum); }
same_tree() { [ "$(snapshot "$1")" = "$(snapshot "$2")" ]; }
# leftovers ROOT [NAME]: temporary files and staging directories of any run under ROOT
# (with NAME: ROOT's own temporary files of NAME)
leftovers() {
    if [ $# -gt 1 ]; then find "$1" -maxdepth 1 -name "$2.tmp.*"; return; fi
    find "$1" \( -name '*.tmp.*' -o -name '.dr-split.*' \) -print
}
# stderr_ok FILE PATTERN: at most one line, matching PATTERN when there is one
stderr_ok() { [ "$(wc -l <"$1")" -le 1 ] && { [ ! -s "$1" ] || grep -Eq -- "$2" "$1"; }; }

# mid_run SIG COND CMD…: starts CMD (as $SIGH runs it; stdout, stderr in $TMP/mid.out, .err),
# waits until COND (a command) holds while CMD runs, freezes CMD, and, COND still holding,
# sends SIG and lets CMD go on. Sets mid_rc to CMD's status; returns 1 when CMD ended or got
# past COND before it was frozen (nothing was sent: try again).
mid_run() {
    local sig=$1 cond=$2; shift 2
    "$SIGH" "$@" >"$TMP/mid.out" 2>"$TMP/mid.err" &
    MID_PID=$!
    local hit=1
    if wait_until eval "(is_tool $MID_PID && $cond) || gone $MID_PID" && running $MID_PID; then
        kill -STOP $MID_PID 2>/dev/null
        wait_until frozen $MID_PID
        if running $MID_PID && eval "$cond"; then kill -"$sig" $MID_PID; hit=0; fi
        kill -CONT $MID_PID 2>/dev/null
    fi
    mid_rc=0
    { wait $MID_PID; } 2>/dev/null || mid_rc=$?
    return $hit
}
# tries N FN: runs FN (which restores its scene, then calls mid_run) until a signal landed
tries() {
    local k
    for ((k = 1; k <= $1; k++)); do
        if "$2"; then [ $k -eq 1 ] || echo "note: $2 caught its run at try $k"; return 0; fi
    done
    return 1
}
# each_signal_mid_run NAME TRY NOW LEFT: for SIGINT, SIGTERM and SIGHUP, TRY (which reads
# $sig) catches a run mid-way (tries 5); it must exit 128 + the signal, leave its output as
# it was (NOW prints its state, compared with $before), leave nothing behind (LEFT prints
# what is left) and say one line on stderr
each_signal_mid_run() {
    local name=$1 try=$2 now=$3 left=$4 sig want
    for sig in INT TERM HUP; do
        want=$((128 + $(signum $sig)))
        if tries 5 "$try"; then
            check "$name SIG$sig mid-run: status $want" [ $mid_rc -eq $want ]
            check "$name SIG$sig mid-run: the earlier output is as it was" [ "$(eval "$now")" = "$before" ]
            check "$name SIG$sig mid-run: nothing left behind" [ -z "$(eval "$left")" ]
            check "$name SIG$sig mid-run: one line on stderr" stderr_ok "$TMP/mid.err" "interrupted"
        else
            fail "$name SIG$sig: could not catch a run mid-way in 5 tries (status $mid_rc: $(tail -n 1 "$TMP/mid.err"))"
        fi
    done
}

# closed_stdout NAME REF OUT EARLIER -- CMD...: EARLIER (a function) leaves in OUT an
# earlier output with more shards; CMD rewrites OUT with its stdout closed (plain, and with
# SIGPIPE ignored): status 141, nothing on stderr, OUT holds this run's shards alone (= REF)
closed_stdout() {
    local name=$1 ref=$2 out=$3 earlier=$4 mode rc
    shift 5
    for mode in closed closed-ign; do
        rm -rf "$out"; "$earlier"
        rc=0; timeout 60 "$SIGH" $mode "$@" 2>"$TMP/pipe.err" || rc=$?
        check "$name, stdout closed ($mode): status 141, nothing on stderr" eval '[ $rc -eq 141 ] && [ ! -s "$TMP/pipe.err" ]'
        check "$name, stdout closed ($mode): the output is this run's alone" same_tree "$ref" "$out"
    done
}

# ---- data: a toy corpus (one shard) and a bigger one (runs of a second or more) ----------
D=$TMP/d
mkdir -p "$D"
tests/data/gen_toy.sh 600 400 1 >"$D/toy.jsonl"
tests/data/gen_toy.sh 12000 8000 3 >"$D/big.jsonl"
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$D/toy" "$D/toy.jsonl" >/dev/null 2>&1
"$BIN/dr-split" --val 0.3 --val-sources clean -o "$D/toysplit" "$D/toy" >"$D/toy.tsv" 2>/dev/null
"$BIN/dr-tokenize" --tokenizer byte --shard-size 0.5 -o "$D/big" "$D/big.jsonl" >/dev/null 2>&1
"$BIN/dr-split" --val 0.3 -o "$D/bigsplit" "$D/big" >"$D/big.tsv" 2>/dev/null
CFG=(--config configs/tiny.yaml)
"$BIN/dr-meta" "${CFG[@]}" -o "$D/rater.safetensors" "$D/toy.tsv" 2>/dev/null
"$BIN/dr-score" "${CFG[@]}" --rater "$D/rater.safetensors" --split train_a "$D/big.tsv" >"$D/big.scores" 2>/dev/null
[ -s "$D/big.scores" ] || { echo "signals.sh: setup failed" >&2; exit 1; }
head -n 9000 "$D/big.jsonl" >"$D/big9k.jsonl"   # > 1 MiB: dr-tokenize's first batch is full

# =========================================================================================
# dr-tokenize: stdin is a FIFO; the run blocks reading it wherever this script stops feeding
# =========================================================================================
echo "-- dr-tokenize ($((SECONDS - t_start)) s)"
FIFO=$TMP/fifo
mkfifo "$FIFO"
# tok_run SIG DIR COND FEED options…: dr-tokenize options… -o DIR - < FIFO; FEED (a file, or
# /dev/null) is written into the FIFO, the FIFO stays open (no EOF), SIG is sent once COND
# holds; the FIFO is closed only when the tool is gone. Sets tok_rc, $TMP/tok.err.
tok_run() {
    local sig=$1 dir=$2 cond=$3 feed=$4; shift 4
    "$SIGH" "$BIN/dr-tokenize" "$@" -o "$dir" - <"$FIFO" >"$TMP/tok.out" 2>"$TMP/tok.err" &
    local pid=$!
    exec 7>"$FIFO"
    cat "$feed" >&7
    TOK_PID=$pid
    wait_until eval "(is_tool $pid && $cond) || gone $pid"
    if [ -n "$sig" ]; then kill -"$sig" $pid 2>/dev/null; wait_until gone $pid; fi
    exec 7>&-
    tok_rc=0
    { wait $pid; } 2>/dev/null || tok_rc=$?
}
# tmp_shards DIR N: N shards of this run under their temporary names
tmp_shards() { local f=("$1"/shard-*.drs.tmp.$TOK_PID); [ -e "${f[0]}" ] && [ ${#f[@]} -ge "$2" ]; }

for sig in INT TERM HUP; do
    want=$((128 + $(signum $sig)))
    # early: the -o directory (and its parents) made, nothing read yet
    rm -rf "$D/t-new"
    tok_run $sig "$D/t-new/a/b" "[ -d '$D/t-new/a/b' ]" /dev/null --tokenizer byte
    check "dr-tokenize SIG$sig early: status $want" [ $tok_rc -eq $want ]
    check "dr-tokenize SIG$sig early: the -o directory it created is gone" [ ! -e "$D/t-new" ]
    check "dr-tokenize SIG$sig early: one line on stderr" stderr_ok "$TMP/tok.err" "interrupted"
    # mid-run: shards finished (under temporary names) and one open, into a directory
    # that holds an earlier complete output
    rm -rf "$D/t-out"
    "$BIN/dr-tokenize" --tokenizer byte --shard-size 0.1 -o "$D/t-out" "$D/toy.jsonl" >/dev/null 2>&1
    before=$(snapshot "$D/t-out")
    tok_run $sig "$D/t-out" "tmp_shards '$D/t-out' 2" "$D/big9k.jsonl" --tokenizer byte --shard-size 0.25
    check "dr-tokenize SIG$sig mid-run: status $want" [ $tok_rc -eq $want ]
    check "dr-tokenize SIG$sig mid-run: the earlier output is as it was" [ "$(snapshot "$D/t-out")" = "$before" ]
    check "dr-tokenize SIG$sig mid-run: no temporary file" [ -z "$(leftovers "$D/t-out")" ]
    check "dr-tokenize SIG$sig mid-run: one line on stderr" stderr_ok "$TMP/tok.err" "interrupted"
done
# near the end: all input read but the end of file, into a directory the run created
rm -rf "$D/t-end"
tok_run INT "$D/t-end/x" "tmp_shards '$D/t-end/x' 4" "$D/big.jsonl" --tokenizer byte --shard-size 0.25
check "dr-tokenize SIGINT near the end: status 130" [ $tok_rc -eq 130 ]
check "dr-tokenize SIGINT near the end: no shard, no directory left" [ ! -e "$D/t-end" ]
# --train-bpe, interrupted while it reads the corpus: its vocabulary directory goes too
rm -rf "$D/t-bpe"
tok_run INT "$D/t-bpe/v" "[ -d '$D/t-bpe/v' ]" "$D/toy.jsonl" --train-bpe 300
check "dr-tokenize --train-bpe SIGINT: status 130, no directory left" eval '[ $tok_rc -eq 130 ] && [ ! -e "$D/t-bpe" ]'
# nohup: SIGHUP ignored by the parent stays ignored; the run completes
rm -rf "$D/t-nohup"
"$SIGH" ign 1 "$BIN/dr-tokenize" --tokenizer byte -o "$D/t-nohup" - <"$FIFO" >/dev/null 2>"$TMP/tok.err" &
pid=$! TOK_PID=$!
exec 7>"$FIFO"
cat "$D/big9k.jsonl" >&7
wait_until eval "(is_tool $pid && tmp_shards '$D/t-nohup' 1) || gone $pid"
kill -HUP $pid
exec 7>&-
rc=0; { wait $pid; } 2>/dev/null || rc=$?
check "dr-tokenize under nohup: SIGHUP ignored, the run completes" eval '[ $rc -eq 0 ] && [ -s "$D/t-nohup/shard-00000.drs" ]'

# closed stdout (after the shards are complete): the directory holds this run's shards
# alone, the earlier run's surplus ones removed, and the tool ends quietly
"$BIN/dr-tokenize" --tokenizer byte --shard-size 0.1 -o "$D/t-ref" "$D/toy.jsonl" >/dev/null 2>&1
t_pipe_earlier() { "$BIN/dr-tokenize" --tokenizer byte --shard-size 0.03 -o "$D/t-pipe" "$D/toy.jsonl" >/dev/null 2>&1; }
closed_stdout dr-tokenize "$D/t-ref" "$D/t-pipe" t_pipe_earlier -- \
    "$BIN/dr-tokenize" --tokenizer byte --shard-size 0.1 -o "$D/t-pipe" "$D/toy.jsonl"

rm -rf "$D"/t-*   # what the section left (the checks above look only at their own files)

# =========================================================================================
# dr-filter: kept shards are written under temporary names, renamed together at the end
# =========================================================================================
echo "-- dr-filter ($((SECONDS - t_start)) s)"
# many small shards: a run of a few tenths of a second, most of it with shards finished
FILT=("$BIN/dr-filter" "${CFG[@]}" --scores "$D/big.scores" --split train_a --shard-size 0.001)
"${FILT[@]}" --keep 0.5 --shard-size 0.05 -o "$D/f-earlier" "$D/big.tsv" >/dev/null 2>&1
n_filt=$("${FILT[@]}" --keep 0.9 -o "$D/f-ref" "$D/big.tsv" 2>/dev/null | wc -l)
check "dr-filter: the reference run writes many shards" [ "$n_filt" -gt 1000 ]
last_filt=$(printf 'filtered-%05d.drs' $((n_filt - 1)))
# mid-run: shard 3 under its temporary name, the last one not yet begun (so no rename yet)
f_mid() { has "$1/filtered-00003.drs.tmp.$MID_PID" && ! has "$1/$last_filt*"; }
f_try() {
    rm -rf "$D/f-out"; cp -a "$D/f-earlier" "$D/f-out"
    mid_run "$sig" "f_mid '$D/f-out'" "${FILT[@]}" --keep 0.9 -o "$D/f-out" "$D/big.tsv"
}
before=$(snapshot "$D/f-earlier")
each_signal_mid_run dr-filter f_try 'snapshot "$D/f-out"' 'leftovers "$D/f-out"'
f_try_new() {
    rm -rf "$D/f-new"
    mid_run INT "f_mid '$D/f-new/x'" "${FILT[@]}" --keep 0.9 -o "$D/f-new/x" "$D/big.tsv"
}
if tries 5 f_try_new; then
    check "dr-filter SIGINT mid-run: status 130, the -o directory it created is gone" eval '[ $mid_rc -eq 130 ] && [ ! -e "$D/f-new" ]'
else
    fail "dr-filter SIGINT (new directory): could not catch a run mid-way in 5 tries"
fi
f_pipe_earlier() {   # more shards than the next run
    cp -a "$D/f-earlier" "$D/f-pipe"; "${FILT[@]}" --keep 1 -o "$D/f-pipe" "$D/big.tsv" >/dev/null 2>&1
}
closed_stdout dr-filter "$D/f-ref" "$D/f-pipe" f_pipe_earlier -- "${FILT[@]}" --keep 0.9 -o "$D/f-pipe" "$D/big.tsv"

rm -rf "$D"/f-*   # what the section left (the checks above look only at their own files)

# =========================================================================================
# dr-score: -o is written under a temporary name; stdout is a stream
# =========================================================================================
echo "-- dr-score ($((SECONDS - t_start)) s)"
SCORE=("$BIN/dr-score" "${CFG[@]}" --rater "$D/rater.safetensors")
"${SCORE[@]}" --split val "$D/toy.tsv" -o "$D/s.scores" 2>/dev/null
before=$(md5sum <"$D/s.scores")
s_mid() { [ -s "$D/s.scores.tmp.$MID_PID" ]; }   # scores written, more to come
s_try() { mid_run "$sig" s_mid "${SCORE[@]}" --split val "$D/big.tsv" -o "$D/s.scores"; }
each_signal_mid_run "dr-score -o" s_try 'md5sum <"$D/s.scores"' 'leftovers "$D" s.scores'
# | head -1: one line, then a quiet end (progress lines aside, nothing on stderr)
progress_only() { ! grep -Evq '^[a-z-]+: [0-9.]+/[0-9.]+ ' "$1"; }
rc=0; out=$(timeout 60 "${SCORE[@]}" --split train_a "$D/big.tsv" 2>"$TMP/s.err" | head -n 1) || rc=$?
check "dr-score | head -1: status 141, quiet" eval '[ $rc -eq 141 ] && progress_only "$TMP/s.err"'
check "dr-score | head -1: the header" [ "$out" = "$(printf 'example_id\tscore\tsource\tn_tokens')" ]
rc=0; timeout 60 "$SIGH" closed-ign "${SCORE[@]}" --split train_a "$D/big.tsv" 2>"$TMP/s.err" || rc=$?
check "dr-score, stdout closed, SIGPIPE ignored by the parent: status 141, quiet" eval '[ $rc -eq 141 ] && progress_only "$TMP/s.err"'

rm -f "$D"/s.scores*   # what the section left (the checks above look only at their own files)

# =========================================================================================
# dr-cat: output streams only
# =========================================================================================
echo "-- dr-cat ($((SECONDS - t_start)) s)"
for args in "" "--jsonl" "--ids" "--list" "--examples --seq-len 32" "--scores $D/big.scores --top 50000 --seq-len 32 --split train_a"; do
    rc=0; n=$(timeout 60 "$BIN/dr-cat" $args "$D/big.tsv" 2>"$TMP/c.err" | head -n 1 | wc -l) || rc=$?
    check "dr-cat $args | head -1: status 141, one line, nothing on stderr" eval '[ $rc -eq 141 ] && [ "$n" -eq 1 ] && [ ! -s "$TMP/c.err" ]'
    rc=0; timeout 60 "$SIGH" closed-ign "$BIN/dr-cat" $args "$D/big.tsv" 2>"$TMP/c.err" || rc=$?
    check "dr-cat $args, stdout closed, SIGPIPE ignored by the parent: status 141, quiet" eval '[ $rc -eq 141 ] && [ ! -s "$TMP/c.err" ]'
done
# a full disk: one line at the first failed write. The corpus's last shard has a corrupt
# block, so a run that went on to the end would report that instead (no timing involved)
cp -a "$D/big" "$D/c-bad"
last=$(ls "$D/c-bad"/*.drs | tail -n 1)
printf '\x55\x55\x55\x55' | dd of="$last" bs=1 seek=$(($(stat -c %s "$last") / 2)) conv=notrunc status=none
for args in "" "--examples --seq-len 32"; do
    expect_error "dr-cat $args on a corpus with a corrupt last shard: a run to the end finds it" \
        "${last##*/}: block [0-9]+: checksum" bash -c '"$0" $1 "$2" >/dev/null' "$BIN/dr-cat" "$args" "$D/c-bad"
    expect_error "dr-cat $args > /dev/full: one line at the first failed write" "cannot write the output: No space left" \
        bash -c '"$0" $1 "$2" >/dev/full' "$BIN/dr-cat" "$args" "$D/c-bad"
done
rm -rf "$D/c-bad"

# =========================================================================================
# dr-split: shards go to DIR/.dr-split.<pid>/, then into place together with the manifest
# =========================================================================================
echo "-- dr-split ($((SECONDS - t_start)) s)"
SPLIT_FAST=("$BIN/dr-split" --val 0.3 --shard-size 0.1)
SPLIT=("${SPLIT_FAST[@]}" --level 19 --threads 1)   # level 19: a run of seconds
"$BIN/dr-split" --val 0.2 --seed 5 -o "$D/sp-earlier" "$D/big" >/dev/null 2>&1
"${SPLIT_FAST[@]}" -o "$D/sp-ref" "$D/big" >/dev/null 2>&1
before=$(snapshot "$D/sp-earlier")
# mid-run: a shard being written in the staging directory (so before the last block),
# wherever in it (the layout inside is dr-split's own)
sp_mid() { has "$1/.dr-split.$MID_PID/*.drs.tmp.*" || has "$1/.dr-split.$MID_PID/*/*.drs.tmp.*"; }
sp_try() { rm -rf "$D/sp-out"; cp -a "$D/sp-earlier" "$D/sp-out"; mid_run "$sig" "sp_mid '$D/sp-out'" "${SPLIT[@]}" -o "$D/sp-out" "$D/big"; }
each_signal_mid_run dr-split sp_try 'snapshot "$D/sp-out"' 'leftovers "$D/sp-out"'
for mode in closed closed-ign; do
    rm -rf "$D/sp-pipe"; cp -a "$D/sp-earlier" "$D/sp-pipe"
    rc=0; timeout 60 "$SIGH" $mode "${SPLIT_FAST[@]}" -o "$D/sp-pipe" "$D/big" 2>"$TMP/sp.err" || rc=$?
    check "dr-split, stdout closed ($mode): status 141, nothing on stderr" eval '[ $rc -eq 141 ] && [ ! -s "$TMP/sp.err" ]'
    check "dr-split, stdout closed ($mode): the output is complete, no staging left" same_tree "$D/sp-ref" "$D/sp-pipe"
done
# mid-run into a directory the run creates (with a parent): both are gone again
sp_new() { rm -rf "$D/sp-new"; mid_run INT "sp_mid '$D/sp-new/x'" "${SPLIT[@]}" -o "$D/sp-new/x" "$D/big"; }
if tries 5 sp_new; then
    check "dr-split SIGINT mid-run: status 130, the -o directory it created is gone" \
        eval '[ $mid_rc -eq 130 ] && [ ! -e "$D/sp-new" ]'
else
    fail "dr-split SIGINT (new directory): could not catch a run mid-way in 5 tries"
fi
# a second Ctrl-C, mid-run after the first one's handler ran (SIGINT no longer caught, as
# /proc's SigCgt shows for a handler that resets itself, or the run gone): whatever the
# tool does with the first, the second must not cut its cleanup short
caught_int() { local m; m=$(awk '/^SigCgt:/ { print $2 }' "/proc/$1/status" 2>/dev/null); [ -n "$m" ] && (( (16#$m >> 1) & 1 )); }
sp_two() {
    rm -rf "$D/sp-two"; cp -a "$D/sp-earlier" "$D/sp-two"
    "$SIGH" "${SPLIT[@]}" -o "$D/sp-two" "$D/big" >/dev/null 2>"$TMP/two.err" &
    local pid=$! hit=1
    MID_PID=$pid
    if wait_until eval "(is_tool $pid && sp_mid '$D/sp-two') || gone $pid" && running $pid; then
        kill -STOP $pid; wait_until frozen $pid
        if running $pid && sp_mid "$D/sp-two"; then
            hit=0
            kill -INT $pid; kill -CONT $pid
            wait_until eval "! caught_int $pid || gone $pid"
            kill -STOP $pid 2>/dev/null; wait_until frozen $pid
            kill -INT $pid 2>/dev/null
        fi
        kill -CONT $pid 2>/dev/null
    fi
    two_rc=0; { wait $pid; } 2>/dev/null || two_rc=$?
    return $hit
}
if tries 5 sp_two; then
    check "dr-split, two Ctrl-Cs mid-run: status 130" [ $two_rc -eq 130 ]
    check "dr-split, two Ctrl-Cs mid-run: the earlier output is as it was" [ "$(snapshot "$D/sp-two")" = "$before" ]
    check "dr-split, two Ctrl-Cs mid-run: no staging directory, no temporary file" [ -z "$(leftovers "$D/sp-two")" ]
else
    fail "dr-split, two Ctrl-Cs: could not catch a run mid-way in 5 tries"
fi
# Ctrl-C after each rename from the first shard moved into place on: the move and the
# manifest complete (DIR all new, as the reference run left it), then the signal acts
rm -rf "$D/sp-pub"; cp -a "$D/sp-earlier" "$D/sp-pub"
rc=0; LD_PRELOAD=$SIG_AT_RENAME SIGNAL_FROM_RENAME=$D/sp-pub/train_a/train_a-00000.drs \
    timeout 60 "$SIGH" "${SPLIT_FAST[@]}" -o "$D/sp-pub" "$D/big" >/dev/null 2>"$TMP/pub.err" || rc=$?
check "dr-split, Ctrl-Cs while the shards move into place: status 130, one line" \
    eval '[ $rc -eq 130 ] && stderr_ok "$TMP/pub.err" interrupted'
check "dr-split, Ctrl-Cs while the shards move into place: DIR all new, no staging left" same_tree "$D/sp-ref" "$D/sp-pub"
# nohup: SIGHUP ignored by the parent stays ignored; the run completes
sp_nohup() { rm -rf "$D/sp-nh"; mid_run HUP "sp_mid '$D/sp-nh'" ign 1 "${SPLIT[@]}" -o "$D/sp-nh" "$D/big"; }
if tries 5 sp_nohup; then
    check "dr-split under nohup: SIGHUP ignored, the run completes" \
        eval '[ $mid_rc -eq 0 ] && [ -s "$D/sp-nh/manifest.tsv" ] && [ -z "$(leftovers "$D/sp-nh")" ]'
else
    fail "dr-split under nohup: could not catch a run mid-way in 5 tries"
fi

rm -rf "$D"/sp-*   # what the section left (the checks above look only at their own files)

# =========================================================================================
# dr-train and dr-meta: SIGTERM (a batch system's stop) saves the state; --resume = one run
# =========================================================================================
echo "-- dr-train and dr-meta ($((SECONDS - t_start)) s)"
no_seconds() { sed -E 's/,"(step_)?seconds":[^,}]*//g' "$1"; }
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
# log_between FILE LO HI: FILE has LO to HI-1 lines
log_between() { local a=(); [ -f "$1" ] && mapfile -t a <"$1"; [ ${#a[@]} -ge "$2" ] && [ ${#a[@]} -lt "$3" ]; }
TR=("$BIN/dr-train" "${CFG[@]}" --steps 200 --set data.batch_size=16 --set lm.d_model=64 --set train.log_every=1
    --set train.eval_every=100 "$D/toy.tsv")   # about a second
"${TR[@]}" -o "$D/tr-full.safetensors" --log "$D/tr-full.jsonl" 2>/dev/null
tr_try() {
    rm -f "$D"/tr-int.*
    mid_run TERM "log_between '$D/tr-int.jsonl' 5 190" \
        "${TR[@]}" -o "$D/tr-int.safetensors" --log "$D/tr-int.jsonl"
}
if tries 5 tr_try; then
    check "dr-train SIGTERM mid-run: status 130, checkpoint and .state saved" \
        eval '[ $mid_rc -eq 130 ] && [ -s "$D/tr-int.safetensors" ] && [ -s "$D/tr-int.safetensors.state" ]'
    check "dr-train SIGTERM mid-run: no temporary file" [ -z "$(leftovers "$D" 'tr-int.*')" ]
    check "dr-train SIGTERM mid-run: a line at once that it saves after this step" \
        grep -qx "dr-train: saving a checkpoint after this step (again: quit now, unsaved)" "$TMP/mid.err"
    n_int=$(lines "$D/tr-int.jsonl")
    "${TR[@]}" --resume -o "$D/tr-int.safetensors" --log "$D/tr-int.jsonl" 2>/dev/null
    check "dr-train SIGTERM at step $((n_int - 1)) + --resume: the model of an uninterrupted run, bit for bit" \
        cmp -s "$D/tr-full.safetensors" "$D/tr-int.safetensors"
    check "dr-train SIGTERM + --resume: the log of an uninterrupted run" \
        cmp -s <(no_seconds "$D/tr-full.jsonl") <(no_seconds "$D/tr-int.jsonl")
else
    fail "dr-train SIGTERM: could not catch a run mid-way in 5 tries"
fi
# SIGHUP (a closed terminal or ssh session) saves the checkpoint as SIGTERM does ...
tr_hup() {
    rm -f "$D"/tr-hup.*
    mid_run HUP "log_between '$D/tr-hup.jsonl' 5 190" "${TR[@]}" -o "$D/tr-hup.safetensors" --log "$D/tr-hup.jsonl"
}
if tries 5 tr_hup; then
    check "dr-train SIGHUP mid-run: status 130, checkpoint and .state saved" \
        eval '[ $mid_rc -eq 130 ] && [ -s "$D/tr-hup.safetensors" ] && [ -s "$D/tr-hup.safetensors.state" ]'
    "${TR[@]}" --resume -o "$D/tr-hup.safetensors" --log "$D/tr-hup.jsonl" 2>/dev/null
    check "dr-train SIGHUP + --resume: the model of an uninterrupted run, bit for bit" \
        cmp -s "$D/tr-full.safetensors" "$D/tr-hup.safetensors"
else
    fail "dr-train SIGHUP: could not catch a run mid-way in 5 tries"
fi
# ... unless the parent ignores it (nohup): then the run goes on to its end
tr_nohup() {
    rm -f "$D"/tr-nh.*
    mid_run HUP "log_between '$D/tr-nh.jsonl' 5 190" ign 1 "${TR[@]}" -o "$D/tr-nh.safetensors" --log "$D/tr-nh.jsonl"
}
if tries 5 tr_nohup; then
    check "dr-train under nohup: SIGHUP ignored, the run completes as an uninterrupted one" \
        eval '[ $mid_rc -eq 0 ] && cmp -s "$D/tr-full.safetensors" "$D/tr-nh.safetensors"'
else
    fail "dr-train under nohup: could not catch a run mid-way in 5 tries"
fi
ME=("$BIN/dr-meta" "${CFG[@]}" --set meta.rounds=12 --set meta.reset_every=3 "$D/toy.tsv")
"${ME[@]}" -o "$D/me-full.safetensors" --log "$D/me-full.jsonl" 2>/dev/null
me_try() {
    rm -f "$D"/me-int.*
    mid_run TERM "log_between '$D/me-int.jsonl' 1 11" \
        "${ME[@]}" -o "$D/me-int.safetensors" --log "$D/me-int.jsonl"
}
if tries 5 me_try; then
    check "dr-meta SIGTERM mid-run: status 130, state saved" eval '[ $mid_rc -eq 130 ] && [ -s "$D/me-int.safetensors.state" ]'
    check "dr-meta SIGTERM mid-run: no temporary file" [ -z "$(leftovers "$D" 'me-int.*')" ]
    check "dr-meta SIGTERM mid-run: a line at once that it saves after this meta-step" \
        grep -qx "dr-meta: saving a checkpoint after this meta-step (again: quit now, unsaved)" "$TMP/mid.err"
    n_int=$(lines "$D/me-int.jsonl")
    "${ME[@]}" --resume -o "$D/me-int.safetensors" --log "$D/me-int.jsonl" 2>/dev/null
    check "dr-meta SIGTERM after meta-step $n_int + --resume: rater and EMA of an uninterrupted run" \
        eval 'cmp -s "$D/me-full.safetensors" "$D/me-int.safetensors" && cmp -s "$D/me-full.ema.safetensors" "$D/me-int.ema.safetensors"'
    check "dr-meta SIGTERM + --resume: the log of an uninterrupted run" \
        cmp -s <(no_seconds "$D/me-full.jsonl") <(no_seconds "$D/me-int.jsonl")
else
    fail "dr-meta SIGTERM: could not catch a run mid-way in 5 tries"
fi

echo "signals.sh: $((SECONDS - t_start)) s"
finish

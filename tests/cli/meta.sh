#!/usr/bin/env bash
# meta.sh — dr-meta end to end on the toy corpus (tests/data/gen_toy.sh):
#   --help/--version; a manifest on stdin (dr-split | dr-meta -) writes the rater, its
#   EMA, the state and one metrics line per meta-step; --stop-at + --resume and Ctrl-C +
#   --resume are bit-identical to an uninterrupted run; --resume --stop-at at or before the
#   state's meta-step stops at once; --resume refuses a state beyond meta.rounds and a
#   config that changes the run (naming the key); an option naming a file given twice is
#   refused; meta.host_checkpoints logs the
#   same numbers; Val sharing documents with
#   Train_A is refused; diverged inner LMs stop the run with the step number and keep the
#   last good rater; `dr-meta grad` is deterministic, names every rater tensor, and the
#   float and double builds agree.
set -eu
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
DBIN=${DBIN:-${BUILD_ROOT:-build}/double/bin}
tmp=$(mktemp -d /tmp/dr-meta-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
no_seconds() { sed 's/,"seconds":[^,}]*//; s/,"step_seconds":[^,}]*//' "$1"; }

# tiny models, deterministic single thread
CFG=(--config configs/tiny.yaml --set experiment.threads=1 --set experiment.device=cpu
     --set data.batch_size=8 --set meta.T=3 --set meta.checkpoint_every=2)

# ---- toy corpus ---------------------------------------------------------------------
tests/data/gen_toy.sh 200 150 7 > "$tmp/toy.jsonl"
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$tmp/shards" "$tmp/toy.jsonl" >/dev/null 2>&1
"$BIN/dr-split" --val 0.3 --val-sources clean -o "$tmp/splits" "$tmp/shards" > "$tmp/manifest.tsv" 2>/dev/null

# ---- help, version, bad usage -------------------------------------------------------
"$BIN/dr-meta" --help | grep -q '^usage: dr-meta' || fail "--help"
"$BIN/dr-meta" --version | grep -q 'dr-meta' || fail "--version"
if "$BIN/dr-meta" "${CFG[@]}" --bogus x 2>/dev/null; then fail "unknown option accepted"; fi
if "$BIN/dr-meta" "${CFG[@]}" </dev/null 2>/dev/null; then fail "empty stdin accepted"; fi

# ---- manifest on stdin (no input arguments) ------------------------------------------
"$BIN/dr-split" --val 0.3 --val-sources clean -o "$tmp/splits2" "$tmp/shards" 2>/dev/null |
    "$BIN/dr-meta" "${CFG[@]}" -o "$tmp/r.safetensors" --log "$tmp/m.jsonl" 2>"$tmp/err" ||
    { cat "$tmp/err"; fail "dr-split | dr-meta -"; }
for f in r.safetensors r.ema.safetensors r.safetensors.state; do
    [ -s "$tmp/$f" ] || fail "missing $f"
done
[ "$(wc -l < "$tmp/m.jsonl")" -eq 3 ] || fail "expected 3 metrics lines"
for k in meta_step step l_train l_val l_val_uniform l_val_gain score_mean score_std score_min \
         score_max score_entropy frac_at_min frac_at_max meta_grad_norm seconds step_seconds; do
    grep -q "\"$k\":" "$tmp/m.jsonl" || fail "metrics lack $k"
done
/usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert o["step"] == o["meta_step"], line' "$tmp/m.jsonl" || fail "a metrics line whose step is not its meta_step"
ls "$tmp" | grep -q '\.tmp\.' && fail "temporary file left behind"

# ---- --stop-at + --resume = one run --------------------------------------------------
R=(--set meta.rounds=5 --set meta.reset_every=2 --set rater.lr=1e-2)
"$BIN/dr-meta" "${CFG[@]}" "${R[@]}" -o "$tmp/a.safetensors" --log "$tmp/a.jsonl" "$tmp/manifest.tsv" 2>/dev/null
rc=0; "$BIN/dr-meta" "${CFG[@]}" "${R[@]}" -o "$tmp/b.safetensors" --log "$tmp/b.jsonl" --stop-at 2 \
    "$tmp/manifest.tsv" 2>/dev/null || rc=$?
[ $rc -eq 0 ] || fail "--stop-at exit status $rc, expected 0 (a requested stop)"
# a run killed after its last checkpoint has logged further: the resumed run drops those lines
echo '{"meta_step":3,"step":3,"l_train":1}' >> "$tmp/b.jsonl"
"$BIN/dr-meta" "${CFG[@]}" "${R[@]}" -o "$tmp/b.safetensors" --log "$tmp/b.jsonl" --resume \
    "$tmp/manifest.tsv" 2>/dev/null || fail "--resume"
cmp -s "$tmp/a.safetensors" "$tmp/b.safetensors" || fail "resumed rater differs"
cmp -s "$tmp/a.ema.safetensors" "$tmp/b.ema.safetensors" || fail "resumed EMA differs"
diff <(no_seconds "$tmp/a.jsonl") <(no_seconds "$tmp/b.jsonl") >/dev/null || fail "resumed metrics differ"
# a finished run resumed: nothing runs, and its progress says so (not a rate over no time);
# the rater, its EMA, the state and the log stay as they were (the state was rewritten)
md5sum "$tmp"/b.safetensors* "$tmp/b.ema.safetensors" "$tmp/b.jsonl" > "$tmp/b.md5"
"$BIN/dr-meta" "${CFG[@]}" "${R[@]}" -o "$tmp/b.safetensors" --log "$tmp/b.jsonl" --resume \
    "$tmp/manifest.tsv" 2>"$tmp/again.err" || fail "--resume of a finished run"
grep -q "meta-step: done, 5 steps (nothing left to run)" "$tmp/again.err" ||
    fail "--resume of a finished run: $(cat "$tmp/again.err")"
md5sum -c --quiet "$tmp/b.md5" || fail "--resume of a finished run changed its files"
# a fresh run over an unfinished run's state: refused (it replaced it without a word);
# --restart starts over
"$BIN/dr-meta" "${CFG[@]}" "${R[@]}" -o "$tmp/u.safetensors" --stop-at 2 "$tmp/manifest.tsv" 2>/dev/null || fail "--stop-at 2 (u)"
md5sum "$tmp"/u.* > "$tmp/u.md5"
"$BIN/dr-meta" "${CFG[@]}" "${R[@]}" -o "$tmp/u.safetensors" "$tmp/manifest.tsv" 2>"$tmp/u.err" &&
    fail "a fresh run over an unfinished run's state was accepted"
grep -q "u.safetensors.state holds an unfinished run (meta-step 2 of 5): --resume continues it, --restart starts over" "$tmp/u.err" ||
    fail "a fresh run over an unfinished run's state: $(cat "$tmp/u.err")"
md5sum -c --quiet "$tmp/u.md5" || fail "the refused run changed the files"
"$BIN/dr-meta" "${CFG[@]}" "${R[@]}" -o "$tmp/u.safetensors" --restart "$tmp/manifest.tsv" 2>/dev/null &&
    cmp -s "$tmp/a.safetensors" "$tmp/u.safetensors" || fail "--restart: not the uninterrupted run's rater"
# --stop-at at or before a resumed state's meta-step stops at once: nothing runs, nothing is
# logged, the rater stays that of the state (it used to run one more meta-step first)
"$BIN/dr-meta" "${CFG[@]}" "${R[@]}" -o "$tmp/s.safetensors" --log "$tmp/s.jsonl" --stop-at 2 \
    "$tmp/manifest.tsv" 2>/dev/null || fail "--stop-at 2"
cp "$tmp/s.safetensors" "$tmp/s2.before"
for at in 1 2; do
    "$BIN/dr-meta" "${CFG[@]}" "${R[@]}" -o "$tmp/s.safetensors" --log "$tmp/s.jsonl" --stop-at $at --resume \
        "$tmp/manifest.tsv" 2>"$tmp/s.err" || fail "--resume --stop-at $at of a state after meta-step 2"
    grep -q "stopped after meta-step 2 of 5" "$tmp/s.err" || fail "--resume --stop-at $at: $(cat "$tmp/s.err")"
    cmp -s "$tmp/s.safetensors" "$tmp/s2.before" || fail "--resume --stop-at $at ran a meta-step past the stop"
    [ "$(wc -l < "$tmp/s.jsonl")" -eq 2 ] || fail "--resume --stop-at $at logged a meta-step past the stop"
done
# the rest of that run is still the uninterrupted one
"$BIN/dr-meta" "${CFG[@]}" "${R[@]}" -o "$tmp/s.safetensors" --log "$tmp/s.jsonl" --resume "$tmp/manifest.tsv" \
    2>/dev/null || fail "--resume after --stop-at 1 --resume"
cmp -s "$tmp/a.safetensors" "$tmp/s.safetensors" || fail "--stop-at 1 --resume + --resume: the rater differs"
diff <(no_seconds "$tmp/a.jsonl") <(no_seconds "$tmp/s.jsonl") >/dev/null || fail "--stop-at 1 --resume + --resume: metrics differ"
# a state beyond meta.rounds is refused, as dr-train refuses a step beyond --steps
refused() {  # pattern, args...: exit 1, one line on stderr matching the pattern
    local pat=$1; shift
    if "$BIN/dr-meta" "$@" 2>"$tmp/r.err"; then fail "accepted: $*"; fi
    [ "$(wc -l < "$tmp/r.err")" -eq 1 ] && grep -Eq -- "$pat" "$tmp/r.err" || fail "expected /$pat/ for $*, got: $(cat "$tmp/r.err")"
}
cp "$tmp/s.safetensors" "$tmp/s5.before"
refused "^dr-meta: --resume: .*s\.safetensors\.state is after meta-step 5, beyond the 4 meta-steps of this run \(meta\.rounds\)$" \
    "${CFG[@]}" "${R[@]}" --set meta.rounds=4 -o "$tmp/s.safetensors" --resume "$tmp/manifest.tsv"
cmp -s "$tmp/s.safetensors" "$tmp/s5.before" || fail "a refused --resume changed the rater"
# --resume with a key that changes the run's numbers is refused, naming the key (the state
# holds the config); the run's length, lm.lr and lm.clip (docs/meta.md §3), the intervals
# and the memory options may change
refused "^dr-meta: --resume: .*s\.safetensors\.state was written with meta\.T = 3, the config has 2: " \
    "${CFG[@]}" "${R[@]}" --set meta.rounds=6 --set meta.T=2 -o "$tmp/s.safetensors" --resume "$tmp/manifest.tsv"
refused "was written with lm\.optimizer = adamw, the config has sgd: " \
    "${CFG[@]}" "${R[@]}" --set meta.rounds=6 --set lm.optimizer=sgd -o "$tmp/s.safetensors" --resume "$tmp/manifest.tsv"
refused "was written with experiment\.seed = 0, the config has 3: " \
    "${CFG[@]}" "${R[@]}" --set meta.rounds=6 --set experiment.seed=3 -o "$tmp/s.safetensors" --resume "$tmp/manifest.tsv"
refused "was written with meta\.track_uniform = true, the config has false: " \
    "${CFG[@]}" "${R[@]}" --set meta.rounds=6 --set meta.track_uniform=false -o "$tmp/s.safetensors" --resume "$tmp/manifest.tsv"
cmp -s "$tmp/s.safetensors" "$tmp/s5.before" || fail "a refused --resume changed the rater"
"$BIN/dr-meta" "${CFG[@]}" "${R[@]}" --set meta.rounds=6 --set lm.lr=2e-3 --set lm.clip=0.5 --set meta.checkpoint_every=1 \
    --set meta.keep_activations=0 --set meta.save_every=1 --set meta.log_every=2 -o "$tmp/s.safetensors" --resume \
    "$tmp/manifest.tsv" 2>"$tmp/s.err" || fail "--resume with a longer run, another lr, clip, c and intervals: $(cat "$tmp/s.err")"
# an option naming a file given twice is refused, not the last one taken
refused "^dr-meta: option -o given twice" "${CFG[@]}" -o "$tmp/x1.safetensors" -o "$tmp/x2.safetensors" "$tmp/manifest.tsv"
refused "^dr-meta: option --log given twice" "${CFG[@]}" --log "$tmp/x1.jsonl" --log "$tmp/x2.jsonl" "$tmp/manifest.tsv"
[ -e "$tmp/x1.safetensors" ] || [ -e "$tmp/x2.safetensors" ] && fail "a refused run wrote a rater"
# the checkpoints in host memory: the same run, number for number and tensor for tensor
# (the files differ only in the config recorded in their header)
"$BIN/dr-meta" "${CFG[@]}" "${R[@]}" --set meta.host_checkpoints=true -o "$tmp/h.safetensors" \
    --log "$tmp/h.jsonl" "$tmp/manifest.tsv" 2>"$tmp/h.err" || fail "meta.host_checkpoints run"
grep -q "MB of checkpoints in host memory" "$tmp/h.err" || fail "meta.host_checkpoints: no host checkpoints reported"
diff <(no_seconds "$tmp/a.jsonl") <(no_seconds "$tmp/h.jsonl") >/dev/null || fail "meta.host_checkpoints changes the metrics"
tensors() { local hl; hl=$(od -An -t u8 -N8 "$1" | tr -d ' '); tail -c +$((9 + hl)) "$1"; }
cmp -s <(tensors "$tmp/a.safetensors") <(tensors "$tmp/h.safetensors") || fail "meta.host_checkpoints changes the rater"

# ---- Ctrl-C + --resume = one run -----------------------------------------------------
C=(--set meta.rounds=12 --set meta.reset_every=3)
"$BIN/dr-meta" "${CFG[@]}" "${C[@]}" -o "$tmp/c.safetensors" --log "$tmp/c.jsonl" "$tmp/manifest.tsv" 2>/dev/null
"$BIN/dr-meta" "${CFG[@]}" "${C[@]}" -o "$tmp/d.safetensors" --log "$tmp/d.jsonl" "$tmp/manifest.tsv" 2>"$tmp/d.err" &
pid=$!
for _ in $(seq 1 200); do   # wait for the first metrics line, then interrupt
    [ -s "$tmp/d.jsonl" ] && break
    sleep 0.05
done
# SIGTERM, the same stop request as Ctrl-C's SIGINT: a script's background job has SIGINT
# ignored, and dr-meta keeps it so (nohup), so a SIGINT here would never arrive
kill -TERM $pid 2>/dev/null || true
rc=0; wait $pid || rc=$?
if [ $rc -eq 130 ]; then
    [ -s "$tmp/d.safetensors.state" ] || fail "Ctrl-C did not save the state"
    # the first Ctrl-C is answered at once, before the meta-step in progress ends
    grep -q "^dr-meta: saving a checkpoint after this meta-step (again: quit now, unsaved)$" "$tmp/d.err" ||
        fail "Ctrl-C: no line saying the run stops after this meta-step: $(cat "$tmp/d.err")"
    done_steps=$(wc -l < "$tmp/d.jsonl" | tr -d ' ')
    "$BIN/dr-meta" "${CFG[@]}" "${C[@]}" -o "$tmp/d.safetensors" --log "$tmp/d.jsonl" --resume \
        "$tmp/manifest.tsv" 2>/dev/null || fail "--resume after Ctrl-C"
    echo "Ctrl-C: interrupted after $done_steps of 12 meta-steps, resumed"
elif [ $rc -ne 0 ]; then
    fail "interrupted dr-meta exited $rc"
else
    echo "Ctrl-C: the run finished before the signal arrived"   # the comparison still holds
fi
cmp -s "$tmp/c.safetensors" "$tmp/d.safetensors" || fail "rater after Ctrl-C + --resume differs"
diff <(no_seconds "$tmp/c.jsonl") <(no_seconds "$tmp/d.jsonl") >/dev/null || fail "metrics after Ctrl-C + --resume differ"

# ---- one stop request delivered twice at once, as `timeout` does (SIGTERM to the child,
# then to its process group): one request, the run saves (before: the second copy was taken
# as a second signal, "interrupted (SIGTERM)", nothing saved). 2 ms apart, so that the
# first copy's handler has run when the second comes (else the kernel merges them). SIGTERM:
# a script's background job has SIGINT ignored, which dr-meta keeps ------------------------
"$BIN/dr-meta" "${CFG[@]}" --set meta.rounds=200 -o "$tmp/e.safetensors" --log "$tmp/e.jsonl" \
    "$tmp/manifest.tsv" 2>"$tmp/e.err" &
pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/e.jsonl" ] && break; sleep 0.05; done
kill -TERM $pid 2>/dev/null || true; sleep 0.002; kill -TERM $pid 2>/dev/null || true   # it may be gone already
rc=0; wait $pid || rc=$?
if [ $rc -eq 0 ]; then
    echo "double SIGTERM: the run finished before the signals arrived"
else
    [ $rc -eq 130 ] && [ -s "$tmp/e.safetensors.state" ] && ! grep -q "interrupted (SIG" "$tmp/e.err" ||
        fail "one SIGTERM delivered twice: exit $rc, state $([ -s "$tmp/e.safetensors.state" ] && echo saved || echo missing): $(cat "$tmp/e.err")"
    echo "double SIGTERM: one stop request, state saved after $(wc -l < "$tmp/e.jsonl" | tr -d ' ') meta-steps"
fi

# ---- Val sharing documents with Train_A ----------------------------------------------
if "$BIN/dr-meta" "${CFG[@]}" -o "$tmp/o.safetensors" --train "$tmp/splits/train_a" \
       --train "$tmp/splits/val" --val "$tmp/splits/val" 2>"$tmp/err"; then
    fail "overlapping Val and Train_A accepted"
fi
grep -q "share" "$tmp/err" || fail "overlap message: $(cat "$tmp/err")"
[ -e "$tmp/o.safetensors" ] && fail "a rater was written for refused inputs"

# ---- diverged inner LMs stop the run, the last good rater stays, nothing is logged ---
if "$BIN/dr-meta" "${CFG[@]}" --set lm.optimizer=sgd --set lm.lr=1000 --set lm.clip=0 -o "$tmp/n.safetensors" \
       --log "$tmp/n.jsonl" "$tmp/manifest.tsv" 2>"$tmp/err"; then
    fail "a run with SGD lr 1000 succeeded"
fi
grep -q "^dr-meta: meta-step 1: the inner losses are not finite (l_train .*): the inner LMs diverged" "$tmp/err" ||
    fail "divergence message: $(cat "$tmp/err")"
[ -s "$tmp/n.safetensors" ] || fail "the last good rater was not kept"
[ -s "$tmp/n.jsonl" ] && fail "a diverged meta-step was logged: $(cat "$tmp/n.jsonl")"
grep -q "the state after meta-step" "$tmp/err" && fail "a state named where none was saved: $(cat "$tmp/err")"
# a divergence after a save (resumed with a far larger lr) names the state a --resume would take
"$BIN/dr-meta" "${CFG[@]}" --set lm.optimizer=sgd --set lm.clip=0 --stop-at 1 -o "$tmp/n3.safetensors" \
    "$tmp/manifest.tsv" 2>/dev/null || fail "dr-meta --stop-at 1 (SGD)"
if "$BIN/dr-meta" "${CFG[@]}" --set lm.optimizer=sgd --set lm.clip=0 --set lm.lr=1000 --resume \
       -o "$tmp/n3.safetensors" "$tmp/manifest.tsv" 2>"$tmp/err"; then
    fail "a resumed run with SGD lr 1000 succeeded"
fi
grep -q "^dr-meta: meta-step 2: .*diverged.*; the last good rater is kept in .*n3\.safetensors; the state after meta-step 1 is in .*n3\.safetensors\.state (--resume with the same settings meets this again)$" \
    "$tmp/err" || fail "divergence after a save: $(cat "$tmp/err")"
# the same in mode constant (no meta-gradient at all), which used to log nulls and exit 0
if "$BIN/dr-meta" "${CFG[@]}" --set meta.mode=constant --set lm.optimizer=sgd --set lm.lr=1000 --set lm.clip=0 \
       -o "$tmp/n2.safetensors" "$tmp/manifest.tsv" 2>"$tmp/err"; then
    fail "mode constant with SGD lr 1000 succeeded"
fi
grep -q "meta-step 1: the inner losses are not finite" "$tmp/err" || fail "constant divergence: $(cat "$tmp/err")"

# a Val smaller than one L_val's batches is said to repeat (a tiny corpus's Val)
nval=$("$BIN/dr-cat" --examples --split val --seq-len 32 "$tmp/manifest.tsv" | wc -l)
"$BIN/dr-meta" "${CFG[@]}" --set meta.rounds=1 --set meta.val_batches=$((nval + 1)) --set data.batch_size=1 \
    -o "$tmp/vnote.safetensors" "$tmp/manifest.tsv" 2>"$tmp/vnote.err" || { cat "$tmp/vnote.err"; fail "dr-meta, many Val batches"; }
grep -q "^dr-meta: note: Val has $nval examples, fewer than the $((nval + 1)) (meta.val_batches $((nval + 1)) × data.batch_size 1) each L_val reads" "$tmp/vnote.err" ||
    fail "no note on a Val that repeats: $(cat "$tmp/vnote.err")"

# ---- dr-meta grad ----------------------------------------------------------------------
"$BIN/dr-train" --config configs/tiny.yaml --set experiment.threads=1 --set data.batch_size=8 \
    --steps 3 -o "$tmp/lm.safetensors" "$tmp/manifest.tsv" >/dev/null 2>&1 || fail "dr-train for grad"
G=(grad "${CFG[@]}" --lm-init "$tmp/lm.safetensors" --rater-init "$tmp/r.safetensors"
   --train "$tmp/splits/train_a" --val "$tmp/splits/val")
"$BIN/dr-meta" "${G[@]}" -o "$tmp/g1.safetensors" 2>"$tmp/g1.err" || { cat "$tmp/g1.err"; fail "grad"; }
"$BIN/dr-meta" "${G[@]}" -o "$tmp/g2.safetensors" 2>/dev/null || fail "grad (2nd)"
refused "^dr-meta: option --rater-init given twice" "${G[@]}" --rater-init "$tmp/r.ema.safetensors" -o "$tmp/g3.safetensors"
[ -e "$tmp/g3.safetensors" ] && fail "a refused grad wrote its output"
refused "^dr-meta: the meta-gradient is not finite \(l_val -?nan, objective -?nan, a non-finite dJ/dphi element\): the inner run diverged" \
    "${G[@]}" --set lm.optimizer=sgd --set lm.momentum=0 --set lm.lr=1000 --set lm.clip=0 -o "$tmp/g4.safetensors"
[ -e "$tmp/g4.safetensors" ] && fail "a diverged grad wrote its output"
cmp -s "$tmp/g1.safetensors" "$tmp/g2.safetensors" || fail "grad is not deterministic"
# the LM checkpoint gives the shapes, the config how they run: lm.checkpointing (and
# lm.head_chunk) used to be taken from the checkpoint, i.e. off, whatever the config said
# (a reference-scale grad then ran out of GPU memory); recomputation gives the same bits
grep -q "^dr-meta: grad: LM [0-9.]*M params (blocks kept), rater [0-9.]*M params, T 3, checkpoint every 2, 2 activation tapes; " "$tmp/g1.err" ||
    fail "grad's summary line: $(cat "$tmp/g1.err")"
"$BIN/dr-meta" "${G[@]}" --set lm.checkpointing=true --set lm.head_chunk=2 -o "$tmp/gk.safetensors" 2>"$tmp/gk.err" ||
    { cat "$tmp/gk.err"; fail "grad with lm.checkpointing"; }
grep -q "^dr-meta: grad: LM [0-9.]*M params (blocks recomputed, head in chunks of 2 examples), .* 0 activation tapes; " "$tmp/gk.err" ||
    fail "grad ignores the config's lm.checkpointing / lm.head_chunk: $(cat "$tmp/gk.err")"
"$BIN/dr-meta" "${G[@]}" --set lm.checkpointing=true -o "$tmp/gk.safetensors" 2>/dev/null || fail "grad, recomputed"
# the tensors' bytes (the header holds the config, which differs)
st_data() { python3 -c 'import struct, sys; b = open(sys.argv[1], "rb").read()
sys.stdout.buffer.write(b[8 + struct.unpack("<Q", b[:8])[0]:])' "$1"; }
cmp -s <(st_data "$tmp/g1.safetensors") <(st_data "$tmp/gk.safetensors") ||
    fail "grad with lm.checkpointing differs from without"
for name in rater.wte.weight rater.h.0.attn.c_attn.weight rater.ln_f.bias rater.head.fc.weight \
            rater.head.out.bias '"l_val"' '"objective"'; do
    head -c 20000 "$tmp/g1.safetensors" | grep -aq "$name" || fail "grad lacks $name"
done
if [ -x "$DBIN/dr-meta" ]; then
    "$DBIN/dr-meta" "${G[@]}" -o "$tmp/gd.safetensors" 2>"$tmp/gd.err" || { cat "$tmp/gd.err"; fail "grad (double)"; }
    # "grad: l_val X, objective Y, |dJ/dphi| Z": float and double agree
    paste <(sed -n 's/.*grad: l_val \([^,]*\),.*|dJ\/dphi| \([^,]*\),.*/\1 \2/p' "$tmp/g1.err") \
          <(sed -n 's/.*grad: l_val \([^,]*\),.*|dJ\/dphi| \([^,]*\),.*/\1 \2/p' "$tmp/gd.err") |
        awk '{ dl = $1 - $3; if (dl < 0) dl = -dl; dn = ($2 - $4) / $4; if (dn < 0) dn = -dn;
               if (dl > 1e-4 || dn > 1e-2) { print "float/double grad disagree: " $0; exit 1 } }' ||
        fail "float and double meta-gradients disagree"
fi
echo "meta.sh: ok"

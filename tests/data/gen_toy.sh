#!/usr/bin/env bash
# gen_toy.sh — the toy problem of the meta-learning tests, as JSON lines on stdout:
#   {"text": "...", "source": "clean"}    the pattern: the 16 letters a..p in a cycle
#                                          from a random phase ("klmnopabcd…"), so the
#                                          next byte is a function of the current one;
#   {"text": "...", "source": "corrupt"}  random characters from [A-Za-z0-9]: nothing
#                                          to learn, and harmful to a model of the pattern.
# Tokenize with the byte tokenizer, then split with Val restricted to the clean source:
#   tests/data/gen_toy.sh 600 400 1 > toy.jsonl
#   dr-tokenize --tokenizer byte --source-field source -o shards toy.jsonl
#   dr-split --val 0.3 --val-sources clean -o splits shards > manifest.tsv
# so Train_A is about half corrupt and Val is clean. A good rater scores clean above
# corrupt (AUROC near 1) and lowers L_val below uniform training.
# Usage: gen_toy.sh [N_CLEAN=600] [N_CORRUPT=400] [SEED=1] [MIN_LEN=48] [MAX_LEN=160]
# Deterministic in its arguments (a Park–Miller generator in awk: exact in doubles).
set -eu
n_clean=${1:-600}; n_corrupt=${2:-400}; seed=${3:-1}; min_len=${4:-48}; max_len=${5:-160}
awk -v nc="$n_clean" -v nx="$n_corrupt" -v seed="$seed" -v lo="$min_len" -v hi="$max_len" '
function rnd(n) { x = (x * 16807) % 2147483647; return int(x / 2147483647 * n) }
BEGIN {
    x = (seed * 7919 + 12345) % 2147483647; if (x == 0) x = 1
    cyc = "abcdefghijklmnop"
    al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    total = nc + nx; left_c = nc; left_x = nx
    for (d = 0; d < total; d++) {
        # interleave the two sources at random, each keeping its count
        clean = rnd(left_c + left_x) < left_c
        if (clean) left_c--; else left_x--
        len = lo + rnd(hi - lo + 1); s = ""
        if (clean) {
            ph = rnd(16)
            for (i = 0; i < len; i++) s = s substr(cyc, (ph + i) % 16 + 1, 1)
        } else {
            for (i = 0; i < len; i++) s = s substr(al, rnd(62) + 1, 1)
        }
        printf "{\"text\": \"%s\", \"source\": \"%s\"}\n", s, clean ? "clean" : "corrupt"
    }
}'

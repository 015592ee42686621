#!/usr/bin/env bash
# gen_corpus.sh DIR [N_DOCS] — writes DIR/corpus.jsonl: a tiny deterministic corpus for
# the tests, one JSON object {"text": …, "source": …} per line, with structure a small
# LM learns in a few dozen steps (a small vocabulary of words in fixed templates).
# Three sources: "story" (templated sentences), "count" (counting runs of numbers),
# "mail" (templated e-mails with headers). No network, no randomness but a fixed LCG
# (MINSTD, exact in awk's doubles), so every machine writes the same bytes.
set -eu
dir=${1:?usage: gen_corpus.sh DIR [N_DOCS]}
n_docs=${2:-300}
mkdir -p "$dir"
LC_ALL=C awk -v n_docs="$n_docs" '
function rnd(n) { seed = (seed * 48271) % 2147483647; return seed % n }
function pick(list,   a, k) { k = split(list, a, " "); return a[rnd(k) + 1] }
function story(   s, k, i) {
    s = ""
    k = 3 + rnd(6)
    for (i = 0; i < k; i++) {
        s = s (i ? " " : "") "the " pick(ADJ) " " pick(ANIMAL) " " pick(VERB) " the " pick(ADJ) " " pick(THING) "."
        if (rnd(3) == 0) s = s " it was " pick(ADJ) "."
    }
    return s
}
function count(   s, start, k, i) {
    start = rnd(90); k = 8 + rnd(20); s = "count:"
    for (i = 0; i < k; i++) s = s " " (start + i)
    return s "."
}
function mail(   from, to, s) {
    from = pick(NAME); to = pick(NAME)
    s = "From: " from "@example.com\nTo: " to "@example.com\nSubject: " pick(THING) "\n\n"
    s = s "hi " to ", the " pick(THING) " is " pick(ADJ) " today. see you at " (1 + rnd(12)) " pm.\n" from
    return s
}
function json(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\n/, "\\n", s); return "\"" s "\"" }
BEGIN {
    seed = 20240601
    ADJ = "red green small big quick lazy old young happy quiet"
    ANIMAL = "cat dog fox bird horse mouse"
    VERB = "jumps walks runs looks sleeps"
    THING = "fence house river tree garden hill"
    NAME = "alice bob carol dave erin frank"
    for (d = 0; d < n_docs; d++) {
        r = rnd(10)
        if (r < 6) { text = story(); src = "story" }
        else if (r < 8) { text = count(); src = "count" }
        else { text = mail(); src = "mail" }
        print "{\"text\":" json(text) ",\"source\":" json(src) "}"
    }
}' > "$dir/corpus.jsonl.tmp"
mv "$dir/corpus.jsonl.tmp" "$dir/corpus.jsonl"

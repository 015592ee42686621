#!/bin/sh
# cfg.sh — prints the value of one key of a datarater YAML config, as the tools would
# see it when the key is not overridden: from CONFIG if set there, else from
# configs/base.yaml (which restates the built-in defaults). For the pipelines only
# (default keep rate, meta.T, …); the tools themselves parse configs with libyaml.
#
#   pipelines/cfg.sh deploy.keep configs/cpu.yaml      -> 0.6
#
# Understands the two-level "section:\n  key: value  # comment" layout of configs/*.yaml;
# prints nothing (exit 1) when the key is in neither file.
key=${1:?usage: cfg.sh section.key CONFIG.yaml}
cfg=${2:?usage: cfg.sh section.key CONFIG.yaml}
base=$(dirname "$0")/../configs/base.yaml
for f in "$cfg" "$base"; do
    [ -f "$f" ] || continue
    v=$(awk -v want="$key" '
        { sub(/\r$/, "") }
        /^[A-Za-z_][A-Za-z0-9_]*:[ \t]*(#.*)?$/ { sec = $0; sub(/:.*/, "", sec); next }
        /^[ \t]+[A-Za-z_][A-Za-z0-9_]*:/ {
            line = $0; sub(/^[ \t]+/, "", line)
            k = line; sub(/:.*/, "", k)
            if (sec "." k != want) next
            v = line; sub(/^[^:]*:[ \t]*/, "", v)
            if (v !~ /^["\047]/) sub(/[ \t]*#.*$/, "", v)
            sub(/[ \t]+$/, "", v)
            if (v ~ /^".*"$/ || v ~ /^\047.*\047$/) v = substr(v, 2, length(v) - 2)
            print v; found = 1; exit
        }
        END { exit !found }' "$f") && { printf '%s\n' "$v"; exit 0; }
done
exit 1

# prelude.bash — sourced by the cross-checks (tests/xcheck/run.sh, formats.sh; not a test):
# the reference's Python, the repository root, and xcheck_setup.
set -u
PY=${XCHECK_PYTHON:-/usr/bin/python3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# xcheck_setup NAME "MODULES" BIN TOOL...: exits 77 ("SKIPPED: …") when $PY cannot import
# the modules, 2 when a tool is missing from BIN; else makes the work dir $W (removed at
# exit unless KEEP=1), enters it and keeps the tools on one thread.
xcheck_setup() {
    local name=$1 mods=$2 bin=$3 t
    shift 3
    if ! "$PY" -c "import ${mods// /, }" >/dev/null 2>&1; then
        echo "SKIPPED: $PY cannot import ${mods// /, }"
        exit 77
    fi
    for t in "$@"; do
        [ -x "$bin/$t" ] || { echo "$name: $bin/$t missing (make; make PRECISION=double for build/double)"; exit 2; }
    done
    W=$(mktemp -d "/tmp/$name.XXXXXX")
    if [ "${KEEP:-0}" = 1 ]; then echo "# work dir: $W"; else trap 'rm -rf "$W"' EXIT; fi
    cd "$W" || exit 2
    export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
}

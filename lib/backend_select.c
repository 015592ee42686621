/* backend_select.c — --device auto|cpu|cuda: which Backend the tools compute with.
 *
 * The CUDA backend lives in a shared library next to the tools (bin/libdr_cuda.so, built
 * when nvcc is found; `make install` puts it into <prefix>/lib/datarater/). It is loaded
 * with dlopen only when it can be used — `cuda` asked for, or `auto` on a machine with an
 * NVIDIA driver — so a CPU run never pays for loading cuBLAS. `auto` falls back to the
 * CPU when no GPU answers; `cuda` without one is an error with the reason, never a crash.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "ops/cpu_util.h"

#ifdef DR_HAVE_CUDA
#include <dlfcn.h>
#include <limits.h>

/* the CUDA library's precision setter (backend_cuda_set_gemm_precision), once loaded */
static int (*cuda_set_precision)(const char *name);
static const Backend *cuda_backend;

/* libdr_cuda.so: in the directory of the running executable (bin/ of a build), else in
 * <exe dir>/../lib/datarater (where `make install` puts it, so a staged or moved install
 * finds its own). */
static const Backend *load_cuda(char *why, size_t n) {
    char dir[PATH_MAX], path[PATH_MAX + 64], installed[PATH_MAX + 64];
    ssize_t len = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (len <= 0) {
        snprintf(why, n, "cannot locate the executable to find libdr_cuda.so");
        return NULL;
    }
    dir[len] = 0;
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    snprintf(path, sizeof path, "%s/libdr_cuda.so", dir);
    snprintf(installed, sizeof installed, "%s/../lib/datarater/libdr_cuda.so", dir);
    if (access(path, F_OK) != 0) {
        if (access(installed, F_OK) != 0) {
            snprintf(why, n, "cannot load the CUDA backend: no %.200s, no %.200s", path, installed);
            return NULL;
        }
        strcpy(path, installed);
    }
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(why, n, "cannot load the CUDA backend: %s", dlerror());
        return NULL;
    }
    const Backend *(*get)(char *, size_t) =
        (const Backend *(*)(char *, size_t))dlsym(lib, "backend_cuda_get");
    if (!get) {
        snprintf(why, n, "%.300s has no backend_cuda_get", path);
        return NULL;
    }
    cuda_set_precision = (int (*)(const char *))dlsym(lib, "backend_cuda_set_gemm_precision");
    cuda_backend = get(why, n);   /* the library stays loaded for the process's lifetime */
    return cuda_backend;
}

static int nvidia_driver_present(void) {
    return access("/proc/driver/nvidia/version", F_OK) == 0 || access("/dev/nvidiactl", F_OK) == 0;
}
#endif

const Backend *backend_select(const char *device) {
    if (!device) device = "auto";
    int want_cuda = !strcmp(device, "cuda"), want_auto = !strcmp(device, "auto");
    if (!want_cuda && !want_auto && strcmp(device, "cpu")) {
        dr_seterr("--device %s: unknown device (expected auto, cpu or cuda)", device);
        return NULL;
    }
#ifdef DR_HAVE_CUDA
    if (want_cuda || (want_auto && nvidia_driver_present())) {
        char why[512];
        const Backend *be = load_cuda(why, sizeof why);
        if (be) return be;
        if (want_cuda) {
            /* without a driver the CUDA runtime's reason ("driver version is insufficient")
             * reads like an old driver: say what is missing */
            if (!nvidia_driver_present())
                dr_seterr("--device cuda: no NVIDIA driver on this machine (no /proc/driver/nvidia/version, "
                          "no /dev/nvidiactl): use --device cpu or auto (%s)", why);
            else
                dr_seterr("--device cuda: %s", why);
            return NULL;
        }
    }
#else
    if (want_cuda) {
        dr_seterr("--device cuda: this build has no CUDA backend (built without nvcc, or in double)");
        return NULL;
    }
#endif
    ops_blas_init();
    return &backend_cpu;
}

int backend_set_precision(const Backend *be, const char *precision) {
    if (!precision || !strcmp(precision, "fp32")) {
#ifdef DR_HAVE_CUDA
        if (be && be == cuda_backend && cuda_set_precision) cuda_set_precision("fp32");
#endif
        return 0;
    }
#ifdef DR_HAVE_CUDA
    if (be && be == cuda_backend && cuda_set_precision) {
        if (cuda_set_precision(precision) == 0) return 0;
        return dr_seterr("experiment.precision = %s: the CUDA backend does not know it", precision);
    }
#endif
    (void)be;
    return dr_seterr("experiment.precision = %s needs the CUDA backend (bf16 GEMM inputs with fp32 "
                     "accumulation); this run computes on the CPU: use fp32 or --device cuda",
                     precision);
}

const Backend *backend_select_from(const char *option, const char *config_device) {
    const Backend *be = backend_select(option ? option : config_device);
    if (!be && !option) {   /* the config chose: say so, not "--device" */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dr_lasterr());
        if (strncmp(msg, "--device ", 9) == 0) dr_seterr("experiment.device %s", msg + 9);
    }
    return be;
}

/* dist.c — the distribution layer's world and collectives (see dist.h). One process
 * unless dist_init (lib/mpi/dist_mpi.c, the only file compiled with MPI) installed an MPI
 * world; then every collective goes through its table (lib/mpi/dist_world.h).
 * Must never: reference MPI itself (programs that never call dist_init must not need
 * libmpi), or reduce in an order that depends on timing.
 */
#include "dist.h"

#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "check.h"
#include "mpi/dist_world.h"

static int g_rank = 0, g_size = 1;
static const DistOps *g_ops;        /* NULL: one process */
static char g_prog[256];            /* the program's name without the rank */
static FILE *g_sink;

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_active(void) { return g_ops != NULL; }

const char *dist_prog(void) { return g_prog[0] ? g_prog : dr_progname(); }

void dist_set_world(int rank, int size, const DistOps *ops) {
    snprintf(g_prog, sizeof g_prog, "%s", dr_progname());
    g_rank = rank;
    g_size = size;
    g_ops = ops;
    static char named[300];   /* ranks > 0 name themselves in every message */
    if (size > 1 && rank > 0) {
        snprintf(named, sizeof named, "%s: rank %d", g_prog, rank);
        dr_set_progname(named);
    }
}

void dist_world_finalize(void) {
    const DistOps *ops = g_ops;
    g_ops = NULL;             /* collectives are no-ops from here on */
    if (ops) ops->finalize();
}

long dist_launcher_size(int *srun_without_pmi) {
    *srun_without_pmi = 0;
    const char *names[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE" };
    for (int i = 0; i < 2; i++) {
        const char *s = getenv(names[i]);
        if (s && atol(s) > 0) return atol(s);
    }
    /* PMIx gives the rank only; SLURM_NTASKS alone is no launch (every sbatch script has
     * it, and a tool run there is one plain process) */
    const char *pmix = getenv("PMIX_RANK");
    if (pmix) return atol(pmix) > 0 ? 2 : -1;
    const char *steps = getenv("SLURM_STEP_NUM_TASKS");
    if (steps && atol(steps) > 1) {
        *srun_without_pmi = 1;
        return atol(steps);
    }
    return 0;
}

FILE *dist_log(void) {
    if (g_rank == 0) return stderr;
    if (!g_sink) g_sink = fopen("/dev/null", "w");
    return g_sink ? g_sink : stderr;
}

void dist_slice(long n, long unit, int rank, long *lo, long *hi) {
    if (unit < 1) unit = 1;
    long m = (n + unit - 1) / unit;
    long a = (long)((int64_t)m * rank / g_size), b = (long)((int64_t)m * (rank + 1) / g_size);
    *lo = a * unit < n ? a * unit : n;
    *hi = b * unit < n ? b * unit : n;
}

void dist_allreduce_sum_real(real *x, size_t n) {
    if (g_ops && n) g_ops->sum_real(x, n);
}
void dist_allreduce_sum_double(double *x, size_t n) {
    if (g_ops && n) g_ops->sum_double(x, n);
}
long dist_allreduce_max_long(long v) { return g_ops ? g_ops->max_long(v) : v; }
void dist_bcast(void *buf, size_t bytes, int root) {
    if (g_ops && bytes) g_ops->bcast(buf, bytes, root);
}
int dist_same_on_all_ranks(const void *bytes, size_t n) {
    if (!g_ops) return 1;
    uint64_t h = XXH64(bytes, n, 0), root_h = h;
    dist_bcast(&root_h, sizeof root_h, 0);
    return dist_allreduce_max_long(root_h != h) == 0;
}
void dist_move(void *buf, size_t bytes, int from, int to) {
    if (g_ops && bytes && from != to && (g_rank == from || g_rank == to)) g_ops->move(buf, bytes, from, to);
}
void dist_barrier(void) {
    if (g_ops) g_ops->barrier();
}

void dist_allgather(void *buf, size_t elem_bytes, long n, long unit) {
    if (!g_ops || n <= 0) return;
    CHECK((size_t)n * elem_bytes < (size_t)INT_MAX, "dist_allgather: %ld items of %zu bytes is too large",
          n, elem_bytes);
    int *counts = xmalloc((size_t)g_size * sizeof *counts), *displs = xmalloc((size_t)g_size * sizeof *displs);
    for (int r = 0; r < g_size; r++) {
        long lo, hi;
        dist_slice(n, unit, r, &lo, &hi);
        counts[r] = (int)((size_t)(hi - lo) * elem_bytes);
        displs[r] = (int)((size_t)lo * elem_bytes);
    }
    g_ops->allgatherv(buf, counts, displs);
    free(counts);
    free(displs);
}

int dist_agree_failure(int rc) {
    if (g_size <= 1) return rc;
    long first = dist_allreduce_max_long(rc != 0 ? g_size - g_rank : 0);   /* lowest failing rank */
    if (first == 0) return 0;
    const int from = g_size - (int)first;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", g_rank == from ? dr_lasterr() : "");
    dist_bcast(msg, sizeof msg, from);
    if (from == 0) return dr_seterr("%s", msg);
    return dr_seterr("rank %d: %s", from, msg);
}

noreturn void dist_await_root_exit(void) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    for (int s = 0; s < 600; s++) sleep(1);   /* rank 0's exit stops this rank long before */
    dr_die("rank 0 did not end the job after the error it reported");
}

void dist_abort(int code, const char *fmt, ...) {
    /* ranks > 0 carry "rank N" in their program name already (dist_set_world) */
    const char *prefix = g_size > 1 && g_rank == 0 ? "rank 0: " : "";
    va_list ap;
    va_start(ap, fmt);
    dr_vreport_fatal(prefix, fmt, ap);   /* one line, as dr_die prints it; temp files removed */
    va_end(ap);
    if (g_ops) g_ops->abort(code ? code : 1);
    exit(code ? code : 1);
}

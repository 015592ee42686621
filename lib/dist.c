/* dist.c — the distribution layer (see dist.h): MPI when the build has it (DR_HAVE_MPI)
 * and a launcher started us, one plain process otherwise.
 *
 * Layout: what both builds share (launcher detection, slices, the log sink, the exit
 * hook's message), then the MPI collectives, then the single-process stubs.
 * Must never: call MPI without a launcher, or reduce in an order that depends on timing.
 */
#include "dist.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifdef DR_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_active = 0;
#ifdef DR_HAVE_MPI
static int g_finalized = 0;
#endif
static char g_prog[256] = "datarater";     /* the program's own name, without the rank */
static FILE *g_sink;

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_active(void) { return g_active; }

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

/* How many processes the launcher says it started: > 0 a count, -1 launched but the
 * count unknown (PMIx gives only the rank), 0 not launched. SLURM_NTASKS alone is not a
 * launch: it is set in every sbatch script, where a tool runs as one plain process. */
static long env_long(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end;
    long v = strtol(s, &end, 10);
    return *end ? 0 : v;
}
static long launcher_size(int *srun_without_pmi) {
    *srun_without_pmi = 0;
    long n = env_long("OMPI_COMM_WORLD_SIZE");
    if (n > 0) return n;
    n = env_long("PMI_SIZE");
    if (n > 0) return n;
    if (getenv("PMIX_RANK")) return env_long("PMIX_RANK") > 0 ? 2 : -1;
    n = env_long("SLURM_STEP_NUM_TASKS");
    if (n > 1) { *srun_without_pmi = 1; return n; }
    return 0;
}

void dist_abort(int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (g_size > 1) fprintf(stderr, "%s: rank %d: %s\n", g_prog, g_rank, msg);
    else fprintf(stderr, "%s: %s\n", g_prog, msg);
    fflush(stderr);
#ifdef DR_HAVE_MPI
    if (g_active && !g_finalized) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#endif
    exit(code ? code : 1);
}

#ifdef DR_HAVE_MPI
/* ================================================================================
 * MPI
 * ================================================================================ */

/* Ranks other than 0 prefix every message with their rank (dr_die's "prog: …"). */
static void name_ranks(void) {
    static char g_prog_rank[300];
    if (g_size > 1 && g_rank > 0) {
        snprintf(g_prog_rank, sizeof g_prog_rank, "%s: rank %d", g_prog, g_rank);
        dr_set_progname(g_prog_rank);
    }
}

/* A non-zero exit of any rank (dr_die, CHECK, main's return) stops the whole job. */
static void on_process_exit(int status, void *arg) {
    (void)arg;
    if (!g_active || g_finalized) return;
    if (status == 0) {
        dist_finalize();
        return;
    }
    fflush(stdout);
    fprintf(stderr, "%s: rank %d of %d exited with status %d: stopping all ranks\n", g_prog,
            g_rank, g_size, status);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
}

void dist_init(int *argc, char ***argv) {
    snprintf(g_prog, sizeof g_prog, "%s", dr_progname());
    int srun_only;
    long launched = launcher_size(&srun_only);
    if (launched == 0) return;
    if (srun_only)
        dr_die("srun started %ld tasks without an MPI process-management plugin: run "
               "srun --mpi=pmix (or pmi2), or mpirun", launched);
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    g_active = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    on_exit(on_process_exit, NULL);
    name_ranks();
    if (launched > 1 && g_size != launched)
        dist_abort(1, "the launcher started %ld processes but MPI sees %d: is this binary "
                   "linked against the MPI of that launcher?", launched, g_size);
}

void dist_finalize(void) {
    if (!g_active || g_finalized) return;
    g_finalized = 1;
    fflush(stdout);
    fflush(stderr);
    MPI_Finalize();
}

#define CHUNK_BYTES (1L << 30)   /* one message; MPI counts are ints */

void dist_bcast(void *buf, size_t bytes, int root) {
    if (g_size == 1) return;
    for (size_t off = 0; off < bytes; off += CHUNK_BYTES) {
        size_t n = bytes - off < (size_t)CHUNK_BYTES ? bytes - off : (size_t)CHUNK_BYTES;
        MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
    }
}

void dist_move(void *buf, size_t bytes, int from, int to) {
    if (g_size == 1 || from == to || (g_rank != from && g_rank != to)) return;
    for (size_t off = 0; off < bytes; off += CHUNK_BYTES) {
        int n = (int)(bytes - off < (size_t)CHUNK_BYTES ? bytes - off : (size_t)CHUNK_BYTES);
        if (g_rank == from) MPI_Send((char *)buf + off, n, MPI_BYTE, to, 0x6472, MPI_COMM_WORLD);
        else MPI_Recv((char *)buf + off, n, MPI_BYTE, from, 0x6472, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
}

void dist_barrier(void) {
    if (g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
}

long dist_allreduce_max_long(long v) {
    if (g_size == 1) return v;
    long out;
    MPI_Allreduce(&v, &out, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
    return out;
}

void dist_allgather(void *buf, size_t elem_bytes, long n, long unit) {
    if (g_size == 1 || n <= 0) return;
    CHECK((size_t)n * elem_bytes < (size_t)INT_MAX, "dist_allgather: %ld items of %zu bytes is too large",
          n, elem_bytes);
    int *counts = xmalloc((size_t)g_size * sizeof *counts), *displs = xmalloc((size_t)g_size * sizeof *displs);
    for (int r = 0; r < g_size; r++) {
        long lo, hi;
        dist_slice(n, unit, r, &lo, &hi);
        counts[r] = (int)((size_t)(hi - lo) * elem_bytes);
        displs[r] = (int)((size_t)lo * elem_bytes);
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_BYTE, buf, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
    free(counts);
    free(displs);
}

/* The deterministic sum: each rank owns a segment of the chunk, receives every rank's
 * copy of it (MPI_Alltoallv), adds them in rank order, and the sums are gathered back to
 * every rank (MPI_Allgatherv). Element i is summed by one rank, always as
 * ((x_0 + x_1) + x_2) + …: the same bits for any timing and on every rank. */
#define SUM_CHUNK (1L << 22)    /* elements per round: bounds the scratch (size·chunk/size) */

#define DEFINE_ALLREDUCE(NAME, TYPE, MPITYPE)                                                  \
    void NAME(TYPE *x, size_t n) {                                                             \
        if (g_size == 1 || n == 0) return;                                                     \
        const int P = g_size, me = g_rank;                                                     \
        int *sc = xmalloc((size_t)P * sizeof *sc), *sd = xmalloc((size_t)P * sizeof *sd);      \
        int *rc = xmalloc((size_t)P * sizeof *rc), *rd = xmalloc((size_t)P * sizeof *rd);      \
        long seg = (SUM_CHUNK + P - 1) / P + 1;                                                \
        TYPE *scratch = xmalloc((size_t)P * (size_t)seg * sizeof *scratch);                    \
        for (size_t off = 0; off < n; off += SUM_CHUNK) {                                      \
            long c = (long)(n - off < (size_t)SUM_CHUNK ? n - off : (size_t)SUM_CHUNK);        \
            TYPE *xc = x + off;                                                                \
            long mlo, mhi;                                                                     \
            dist_slice(c, 1, me, &mlo, &mhi);                                                  \
            const int mine = (int)(mhi - mlo);                                                 \
            for (int r = 0; r < P; r++) {                                                      \
                long lo, hi;                                                                   \
                dist_slice(c, 1, r, &lo, &hi);                                                 \
                sc[r] = (int)(hi - lo);                                                        \
                sd[r] = (int)lo;                                                               \
                rc[r] = mine;                                                                  \
                rd[r] = r * mine;                                                              \
            }                                                                                  \
            MPI_Alltoallv(xc, sc, sd, MPITYPE, scratch, rc, rd, MPITYPE, MPI_COMM_WORLD);      \
            for (int i = 0; i < mine; i++) {                                                   \
                TYPE acc = scratch[i];                                                         \
                for (int r = 1; r < P; r++) acc += scratch[(size_t)r * mine + i];              \
                xc[mlo + i] = acc;                                                             \
            }                                                                                  \
            MPI_Allgatherv(MPI_IN_PLACE, 0, MPITYPE, xc, sc, sd, MPITYPE, MPI_COMM_WORLD);     \
        }                                                                                      \
        free(scratch);                                                                         \
        free(sc); free(sd); free(rc); free(rd);                                                \
    }

DEFINE_ALLREDUCE(dist_allreduce_sum_double, double, MPI_DOUBLE)
#ifdef DR_DOUBLE
void dist_allreduce_sum_real(real *x, size_t n) { dist_allreduce_sum_double(x, n); }
#else
DEFINE_ALLREDUCE(dist_allreduce_sum_real, real, MPI_FLOAT)
#endif

#else
/* ================================================================================
 * No MPI in this build: one process. Launched as several, refuse (each copy would
 * believe it is alone and write the same files).
 * ================================================================================ */

void dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(g_prog, sizeof g_prog, "%s", dr_progname());
    int srun_only;
    long launched = launcher_size(&srun_only);
    if (launched > 1)
        dr_die("started as %ld processes (mpirun/srun), but this build has no MPI: install "
               "libopenmpi-dev and rebuild (make), or run it as one process", launched);
}

void dist_finalize(void) {}
void dist_bcast(void *buf, size_t bytes, int root) { (void)buf; (void)bytes; (void)root; }
void dist_move(void *buf, size_t bytes, int from, int to) { (void)buf; (void)bytes; (void)from; (void)to; }
void dist_barrier(void) {}
long dist_allreduce_max_long(long v) { return v; }
void dist_allgather(void *buf, size_t elem_bytes, long n, long unit) {
    (void)buf; (void)elem_bytes; (void)n; (void)unit;
}
void dist_allreduce_sum_double(double *x, size_t n) { (void)x; (void)n; }
void dist_allreduce_sum_real(real *x, size_t n) { (void)x; (void)n; }

#endif

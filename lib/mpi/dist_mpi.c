/* dist_mpi.c — dist_init and dist_finalize (dist.h), and the MPI collectives behind
 * lib/dist.c's table: the only file of libdr compiled with MPI (-DDR_HAVE_MPI and MPI's
 * include flags come from lib/mpi/mpi.mk). Only the programs that call dist_init (dr-train,
 * dr-meta) link it, hence libmpi. Without DR_HAVE_MPI: a one-process dist_init that
 * refuses to run as several processes.
 *
 * Must never: call MPI without a launcher (tests and plain runs must not start daemons),
 * or sum in an order that depends on timing or on the rank.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dist.h"
#include "dist_world.h"

#ifdef DR_HAVE_MPI
#include <mpi.h>

static int g_up, g_done;   /* MPI_Init called; MPI_Finalize called or MPI_Abort under way */

static void mpi_finalize(void) {
    if (!g_up || g_done) return;
    g_done = 1;
    fflush(stdout);
    fflush(stderr);
    MPI_Finalize();
}

static void mpi_abort(int code) {
    g_done = 1;
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);   /* not reached */
}

#define CHUNK_BYTES (1L << 30)   /* one message; MPI counts are ints */

static void mpi_bcast(void *buf, size_t bytes, int root) {
    for (size_t off = 0; off < bytes; off += CHUNK_BYTES) {
        size_t n = bytes - off < (size_t)CHUNK_BYTES ? bytes - off : (size_t)CHUNK_BYTES;
        MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
    }
}

static void mpi_move(void *buf, size_t bytes, int from, int to) {
    int me = dist_rank();
    for (size_t off = 0; off < bytes; off += CHUNK_BYTES) {
        int n = (int)(bytes - off < (size_t)CHUNK_BYTES ? bytes - off : (size_t)CHUNK_BYTES);
        if (me == from) MPI_Send((char *)buf + off, n, MPI_BYTE, to, 0x6472, MPI_COMM_WORLD);
        else MPI_Recv((char *)buf + off, n, MPI_BYTE, from, 0x6472, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
}

static void mpi_barrier(void) { MPI_Barrier(MPI_COMM_WORLD); }

static long mpi_max_long(long v) {
    long out;
    MPI_Allreduce(&v, &out, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
    return out;
}

static void mpi_allgatherv(void *buf, const int *counts, const int *displs) {
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_BYTE, buf, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
}

/* The deterministic sum. Each rank owns a segment of the chunk (dist_slice), receives
 * every rank's copy of it (MPI_Alltoallv), adds them in rank order, and the sums go back
 * to every rank (MPI_Allgatherv). Element i is summed by one rank, always as
 * ((x_0 + x_1) + x_2) + …: the same bits for any timing, on every rank. Each rank sends
 * and receives about 2·n elements, as a ring all-reduce does. */
#define SUM_CHUNK (1L << 22)   /* elements per round: bounds the scratch at ~chunk */

#define DEFINE_SUM(NAME, TYPE, MPITYPE)                                                         \
    static void NAME(TYPE *x, size_t n) {                                                       \
        const int P = dist_size(), me = dist_rank();                                            \
        int *sc = xmalloc((size_t)P * sizeof *sc), *sd = xmalloc((size_t)P * sizeof *sd);       \
        int *rc = xmalloc((size_t)P * sizeof *rc), *rd = xmalloc((size_t)P * sizeof *rd);       \
        TYPE *scratch = xmalloc(((size_t)SUM_CHUNK + (size_t)P) * sizeof *scratch);             \
        for (size_t off = 0; off < n; off += SUM_CHUNK) {                                       \
            long c = (long)(n - off < (size_t)SUM_CHUNK ? n - off : (size_t)SUM_CHUNK);         \
            TYPE *xc = x + off;                                                                 \
            long mlo, mhi;                                                                      \
            dist_slice(c, 1, me, &mlo, &mhi);                                                   \
            const int mine = (int)(mhi - mlo);                                                  \
            for (int r = 0; r < P; r++) {                                                       \
                long lo, hi;                                                                    \
                dist_slice(c, 1, r, &lo, &hi);                                                  \
                sc[r] = (int)(hi - lo);                                                         \
                sd[r] = (int)lo;                                                                \
                rc[r] = mine;                                                                   \
                rd[r] = r * mine;                                                               \
            }                                                                                   \
            MPI_Alltoallv(xc, sc, sd, MPITYPE, scratch, rc, rd, MPITYPE, MPI_COMM_WORLD);       \
            for (int i = 0; i < mine; i++) {                                                    \
                TYPE acc = scratch[i];                                                          \
                for (int r = 1; r < P; r++) acc += scratch[(size_t)r * mine + i];               \
                xc[mlo + i] = acc;                                                              \
            }                                                                                   \
            MPI_Allgatherv(MPI_IN_PLACE, 0, MPITYPE, xc, sc, sd, MPITYPE, MPI_COMM_WORLD);      \
        }                                                                                       \
        free(scratch);                                                                          \
        free(sc); free(sd); free(rc); free(rd);                                                 \
    }

DEFINE_SUM(mpi_sum_double, double, MPI_DOUBLE)
#ifdef DR_DOUBLE
static void mpi_sum_real(real *x, size_t n) { mpi_sum_double(x, n); }
#else
DEFINE_SUM(mpi_sum_real, real, MPI_FLOAT)
#endif

static const DistOps mpi_ops = {
    .finalize = mpi_finalize, .abort = mpi_abort, .sum_real = mpi_sum_real,
    .sum_double = mpi_sum_double, .max_long = mpi_max_long, .bcast = mpi_bcast,
    .allgatherv = mpi_allgatherv, .move = mpi_move, .barrier = mpi_barrier,
};

/* A non-zero exit of any rank (dr_die, CHECK, main's return) stops the whole job; a
 * zero exit without dist_finalize finalizes. */
static void on_process_exit(int status, void *arg) {
    (void)arg;
    if (!g_up || g_done) return;
    if (status == 0) {
        dist_finalize();
        return;
    }
    fflush(stdout);
    fprintf(stderr, "%s: rank %d of %d exited with status %d: stopping all ranks\n", dist_prog(),
            dist_rank(), dist_size(), status);
    fflush(stderr);
    mpi_abort(status);
}

void dist_init(int *argc, char ***argv) {
    int srun_only;
    long launched = dist_launcher_size(&srun_only);
    if (launched == 0) return;   /* a plain process: no MPI at all */
    if (srun_only)
        dr_die("srun started %ld tasks without an MPI process-management plugin: run "
               "srun --mpi=pmix (or pmi2), or mpirun", launched);
    int provided, rank, size;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    g_up = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    on_exit(on_process_exit, NULL);
    /* whole lines: the launcher merges the ranks' stderr, and a message printed in pieces
     * (dr_die writes "prog: ", the message, "\n") would interleave with another rank's */
    if (size > 1) setvbuf(stderr, NULL, _IOLBF, 0);
    dist_set_world(rank, size, &mpi_ops);
    if (launched > 1 && size != launched)
        dist_abort(1, "the launcher started %ld processes but MPI sees %d: is this binary "
                   "linked against the MPI of that launcher?", launched, size);
}

#else
/* ================================================================================
 * No MPI in this build: one process. Started as several, refuse: each copy would believe
 * it is alone and write the same files.
 * ================================================================================ */

void dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    int srun_only;
    long launched = dist_launcher_size(&srun_only);
    if (launched > 1)
        dr_die("started as %ld processes (mpirun/srun), but this build has no MPI: install "
               "libopenmpi-dev and rebuild (make), or run it as one process", launched);
}

#endif

void dist_finalize(void) { dist_world_finalize(); }

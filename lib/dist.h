/* dist.h — the distribution layer (DESIGN §6): who am I among how many processes, and
 * the few collectives dr-train (data-parallel) and dr-meta (population over ranks) need.
 *
 * One process unless launched by mpirun/srun: dist_init calls MPI_Init only when the
 * environment says a launcher started us (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK;
 * SLURM_STEP_NUM_TASKS > 1 without them is srun lacking --mpi=pmix and is refused; bare
 * SLURM_NTASKS is not a launch: every sbatch script has it) and the build has MPI
 * (DR_HAVE_MPI, lib/mpi/mpi.mk); otherwise rank 0 of 1, no MPI call ever, every
 * collective a no-op. A build without MPI started by mpirun as several processes refuses
 * to run (N copies would write the same files).
 * Files: lib/dist.c (the collectives, no MPI in it), lib/mpi/dist_mpi.c (dist_init and
 * the MPI calls: only programs that call dist_init link libmpi), lib/mpi/dist_world.h.
 *
 * Reductions are DETERMINISTIC: every element is summed in rank order,
 * ((x_0 + x_1) + x_2) + …, by exactly one rank, and every rank receives those same bits.
 * (MPI_Allreduce promises neither: its algorithm, hence the association, depends on the
 * message size and the library.) Gathers move bits unchanged.
 *
 * Failure: after dist_init, a rank that exits with a non-zero status (dr_die, CHECK,
 * return from main) prints "prog: rank R of N exited with status S: stopping all ranks"
 * and calls MPI_Abort, so one failing rank stops the whole job instead of leaving the
 * others blocked in a collective. Ranks other than 0 prefix their messages with
 * "prog: rank R:". A clean exit must call dist_finalize (a status-0 exit does it too).
 *
 * Must never: use MPI when not launched by a launcher, or let two ranks hold different
 * bits after a reduction.
 */
#ifndef DR_DIST_H
#define DR_DIST_H

#include <stddef.h>
#include <stdio.h>
#include <stdnoreturn.h>

#include "real.h"

/* Call first thing in main (after dr_set_progname); argc/argv may be changed by MPI. */
void dist_init(int *argc, char ***argv);
/* MPI_Finalize when MPI is in use; idempotent. Call before returning from main. */
void dist_finalize(void);

int dist_rank(void);          /* 0 … size−1 */
int dist_size(void);          /* 1 without a launcher */
int dist_active(void);        /* MPI in use (launched, MPI build) */

/* Where logs go: stderr on rank 0, a sink on the other ranks (logs only on rank 0). */
FILE *dist_log(void);

/* Rank r's part [lo, hi) of n items cut in whole units of `unit` items (unit ≥ 1):
 * with m = ceil(n/unit) units, rank r takes units [r·m/size, (r+1)·m/size). Contiguous,
 * in rank order, their union is [0, n). */
void dist_slice(long n, long unit, int rank, long *lo, long *hi);

/* Deterministic in-place sums over ranks (see above). */
void dist_allreduce_sum_real(real *x, size_t n);
void dist_allreduce_sum_double(double *x, size_t n);
/* The largest v over ranks (integers: exact). */
long dist_allreduce_max_long(long v);

/* Every rank gets root's bytes. */
void dist_bcast(void *buf, size_t bytes, int root);
/* 1 on every rank when every rank passed rank 0's bytes (compared by xxh64), else 0 on
 * every rank: a run whose ranks were started with different settings is refused before
 * its collectives disagree (a hang, a truncated message, a silently other result). */
int dist_same_on_all_ranks(const void *bytes, size_t n);
/* buf holds n items of elem_bytes; rank r has filled its dist_slice(n, unit, r) part;
 * afterwards every rank holds every part (bits unchanged). */
void dist_allgather(void *buf, size_t elem_bytes, long n, long unit);
/* Moves bytes from rank `from` to rank `to` (both call it; others may too: no-op). */
void dist_move(void *buf, size_t bytes, int from, int to);
void dist_barrier(void);

/* An error every rank calls this on at the same point (a read error on one rank, a
 * log write on rank 0), so that all stop together and rank 0 can save first: rc is this
 * rank's result (0 or -1 with dr_seterr). Returns 0 when no rank failed; otherwise -1 on
 * every rank, with the message of the lowest failing rank (prefixed "rank R: " when R > 0)
 * as every rank's dr_lasterr. One process: rc. */
int dist_agree_failure(int rc);
/* After such an agreed failure, ranks other than 0 wait here for rank 0, which reports
 * it, to end the job (its exit stops every rank): rank 0's message is then the one
 * printed, never another rank's that happened to end first. SIGINT/SIGTERM/SIGHUP end
 * the wait (their default action is put back). */
noreturn void dist_await_root_exit(void);

/* Prints "prog: rank R: message" and stops every rank (exit in a single process). */
noreturn void dist_abort(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

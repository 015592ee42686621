/* dist_world.h — private to the distribution layer: how lib/mpi/dist_mpi.c (dist_init,
 * the only part compiled with MPI) hands the world to lib/dist.c (the collectives every
 * library file calls). The collectives go through this table, so a program that never
 * calls dist_init (dr-score, dr-filter, …) never references an MPI symbol and, linked
 * with --as-needed, does not even load libmpi. Not for use outside the layer.
 */
#ifndef DR_DIST_WORLD_H
#define DR_DIST_WORLD_H

#include <stddef.h>

#include "real.h"

typedef struct {
    void (*finalize)(void);
    void (*abort)(int code);                                  /* never returns */
    void (*sum_real)(real *x, size_t n);                      /* fixed order (dist.h) */
    void (*sum_double)(double *x, size_t n);
    long (*max_long)(long v);
    void (*bcast)(void *buf, size_t bytes, int root);
    /* every rank r contributes bytes [displs[r], displs[r] + counts[r]) of buf */
    void (*allgatherv)(void *buf, const int *counts, const int *displs);
    void (*move)(void *buf, size_t bytes, int from, int to);
    void (*barrier)(void);
} DistOps;

/* Called once by dist_init when MPI is up: this process is `rank` of `size`. Also names
 * the ranks > 0 in messages ("prog: rank R: …"). */
void dist_set_world(int rank, int size, const DistOps *ops);
/* The program name dist_init saw, without any rank. */
const char *dist_prog(void);
/* How many processes a launcher started: > 0 a count, −1 launched but the count unknown,
 * 0 not launched; *srun_without_pmi set when only srun's task count says so. */
long dist_launcher_size(int *srun_without_pmi);
/* dist_finalize's second half (finalize through the table, once). */
void dist_world_finalize(void);

#endif

/* dist.h: the processes of a data-parallel tgpt-train run (MPI ranks) and
 * the few collective operations the trainer needs. Built with -DTGPT_MPI
 * (make MPI=1) it is Open MPI (or any MPI); without, one process of rank 0,
 * so the trainer calls the same functions either way. The model knows
 * nothing of it. */
#ifndef TGPT_DIST_H
#define TGPT_DIST_H

#include <stddef.h>
#include <stdint.h>

/* "Open MPI v4.1.4" or the like in the MPI build (callable before
 * dist_init), else NULL. */
const char *dist_library(void);

/* Joins the run (MPI_Init). Without MPI, exits EX_USAGE when mpirun started
 * this process as one of several: each would train alone. */
void dist_init(int *argc, char ***argv);
/* Leaves it (MPI_Finalize); every rank calls it, after the last collective. */
void dist_finalize(void);

int dist_rank(void);        /* 0 .. dist_size() - 1 */
int dist_size(void);        /* ranks in the run */
int dist_local_size(void);  /* ranks on this host (they share its cores) */

/* In place: x[i] becomes the sum over the ranks of their x[i], the same
 * bits on every rank. */
void dist_sum_floats(float *x, size_t n);
void dist_sum_doubles(double *x, size_t n);
/* 1 on every rank when flag is non-zero on any. */
int dist_any(int flag);
/* 1 on every rank when all passed the same v. */
int dist_same(uint64_t v);

#endif

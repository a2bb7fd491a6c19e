/* parallel.h: OpenMP for the model's loops, kept deterministic: a loop is
 * split only where every output element is computed by one thread in the
 * serial order (elementwise, per row, per column block, per head), so the
 * results are the same bits for any thread count. Without -fopenmp it all
 * compiles to plain loops. */
#ifndef TGPT_PARALLEL_H
#define TGPT_PARALLEL_H

#define PAR_PRAGMA_(x) _Pragma(#x)
#ifdef _OPENMP
#include <omp.h>
/* A parallel for over a loop doing about `work` element operations; small
 * loops stay serial (a parallel region costs a few microseconds). */
#define PAR_FOR(work) PAR_PRAGMA_(omp parallel for schedule(static) if ((work) >= 32768))
/* One iteration per work item (a head), round robin over nthreads threads. */
#define PAR_ITEMS(nthreads) PAR_PRAGMA_(omp parallel for schedule(static, 1) num_threads(nthreads))
/* The next update of a shared scalar is atomic. */
#define PAR_ATOMIC PAR_PRAGMA_(omp atomic)
static inline int par_thread(void) { return omp_get_thread_num(); }
static inline int par_max_threads(void) { return omp_get_max_threads(); }
#else
#define PAR_FOR(work)
#define PAR_ITEMS(nthreads)
#define PAR_ATOMIC
static inline int par_thread(void) { return 0; }
static inline int par_max_threads(void) { return 1; }
#endif

#endif

/* dist.c: dist.h over MPI (compiled with -DTGPT_MPI by mpicc), or a run of
 * one process. Only the main thread calls MPI (MPI_THREAD_FUNNELED): BLIS
 * and OpenMP threads stay inside the model. */
#include <stdlib.h>

#include "cli.h"
#include "dist.h"

#ifdef TGPT_MPI
#include <limits.h>
#include <mpi.h>
#include <string.h>

static int rank, size = 1, local_size = 1;

const char *dist_library(void)
{
	static char v[MPI_MAX_LIBRARY_VERSION_STRING];
	int len;
	MPI_Get_library_version(v, &len);
	v[strcspn(v, ",\n")] = '\0';	/* Open MPI's goes on with its package */
	return v;
}

void dist_init(int *argc, char ***argv)
{
	int provided;
	MPI_Comm host;
	MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host);
	MPI_Comm_size(host, &local_size);
	MPI_Comm_free(&host);
}

void dist_finalize(void)
{
	MPI_Finalize();
}

/* MPI counts in int: a large buffer goes in pieces. */
static void sum_in_place(void *x, size_t n, size_t elem, MPI_Datatype type)
{
	const size_t piece = (size_t)INT_MAX / 2;
	for (size_t off = 0; off < n; off += piece) {
		size_t k = n - off < piece ? n - off : piece;
		MPI_Allreduce(MPI_IN_PLACE, (char *)x + off * elem, (int)k, type, MPI_SUM,
			MPI_COMM_WORLD);
	}
}

void dist_sum_floats(float *x, size_t n)
{
	sum_in_place(x, n, sizeof *x, MPI_FLOAT);
}

void dist_sum_doubles(double *x, size_t n)
{
	sum_in_place(x, n, sizeof *x, MPI_DOUBLE);
}

int dist_any(int flag)
{
	int any = flag != 0;
	MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
	return any;
}

/* The largest v and the largest ~v are v and ~v only when every rank has v. */
int dist_same(uint64_t v)
{
	uint64_t w[2] = { v, ~v };
	MPI_Allreduce(MPI_IN_PLACE, w, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
	return w[0] == v && w[1] == ~v;
}

#else

static const int rank = 0, size = 1, local_size = 1;

const char *dist_library(void)
{
	return NULL;
}

/* The process count Open MPI's mpirun or a PMI launcher (MPICH, Slurm)
 * gives each of the processes it starts. */
static long launched_ranks(void)
{
	static const char *const vars[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE" };
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
		const char *v = getenv(vars[i]);
		if (v && atol(v) > 1)
			return atol(v);
	}
	return 1;
}

void dist_init(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	long n = launched_ranks();
	if (n > 1)
		errx(EX_USAGE, "started as one of %ld processes (mpirun?), but built without MPI: "
			"each would train alone; build with make MPI=1", n);
}

void dist_finalize(void)
{
}

void dist_sum_floats(float *x, size_t n)
{
	(void)x, (void)n;
}

void dist_sum_doubles(double *x, size_t n)
{
	(void)x, (void)n;
}

int dist_any(int flag)
{
	return flag != 0;
}

int dist_same(uint64_t v)
{
	(void)v;
	return 1;
}

#endif

int dist_rank(void)
{
	return rank;
}

int dist_size(void)
{
	return size;
}

int dist_local_size(void)
{
	return local_size;
}

/* boost.c: realism-eval's classifier on XGBoost's C API (see boost.h):
 * dense matrices in, the most probable class out. */
#include "boost.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <xgboost/c_api.h>

#include "cli.h"

/* Every XGBoost call goes through here: a failure is a bug or a resource
 * problem, not bad input (that was checked before). */
#define XGB(call) do { \
	if ((call) != 0) \
		errx(EX_SOFTWARE, "XGBoost: %s: %s", #call, XGBGetLastError()); \
} while (0)

const char *boost_version(void)
{
	static char v[48];
	int major, minor, patch;
	XGBoostVersion(&major, &minor, &patch);
	snprintf(v, sizeof v, "xgboost %d.%d.%d", major, minor, patch);
	return v;
}

static void set_param(BoosterHandle b, const char *name, const char *fmt, double value)
{
	char text[64];
	snprintf(text, sizeof text, fmt, value);
	XGB(XGBoosterSetParam(b, name, text));
}

static BoosterHandle train(const struct boost_params *bp, DMatrixHandle dtrain)
{
	BoosterHandle b;
	XGB(XGBoosterCreate(&dtrain, 1, &b));
	XGB(XGBoosterSetParam(b, "objective", bp->n_classes > 2 ? "multi:softprob" : "binary:logistic"));
	if (bp->n_classes > 2)
		set_param(b, "num_class", "%.0f", bp->n_classes);
	XGB(XGBoosterSetParam(b, "tree_method", "hist"));
	set_param(b, "max_depth", "%.0f", bp->depth);
	set_param(b, "eta", "%.17g", bp->eta);
	set_param(b, "nthread", "%.0f", bp->threads);
	/* XGBoost takes the seed as a signed 64-bit number */
	char seed[32];
	snprintf(seed, sizeof seed, "%lld", (long long)(bp->seed & INT64_MAX));
	XGB(XGBoosterSetParam(b, "seed", seed));
	XGB(XGBoosterSetParam(b, "verbosity", "0"));
	for (int i = 0; i < bp->rounds; i++)
		XGB(XGBoosterUpdateOneIter(b, i, dtrain));
	return b;
}

void boost_fit_predict(const struct boost_params *bp, const float *x_train, const int *y_train,
		       size_t n_train, const float *x_test, size_t n_test, size_t ncol, int *pred)
{
	XGB(XGBSetGlobalConfig("{\"verbosity\": 0}"));
	DMatrixHandle dtrain, dtest;
	XGB(XGDMatrixCreateFromMat(x_train, n_train, ncol, NAN, &dtrain));
	float *labels = xmalloc((n_train ? n_train : 1) * sizeof *labels);
	for (size_t i = 0; i < n_train; i++)
		labels[i] = (float)y_train[i];
	XGB(XGDMatrixSetFloatInfo(dtrain, "label", labels, n_train));
	free(labels);
	BoosterHandle b = train(bp, dtrain);

	XGB(XGDMatrixCreateFromMat(x_test, n_test, ncol, NAN, &dtest));
	const bst_ulong *shape;
	bst_ulong dim;
	const float *prob;
	XGB(XGBoosterPredictFromDMatrix(b, dtest, "{\"type\": 0, \"training\": false, "
				       "\"iteration_begin\": 0, \"iteration_end\": 0, \"strict_shape\": false}",
				       &shape, &dim, &prob));
	for (size_t i = 0; i < n_test; i++) {
		if (bp->n_classes <= 2) {
			pred[i] = prob[i] > 0.5f;
			continue;
		}
		const float *row = prob + i * (size_t)bp->n_classes;
		int best = 0;
		for (int c = 1; c < bp->n_classes; c++)
			if (row[c] > row[best])
				best = c;
		pred[i] = best;
	}
	XGB(XGBoosterFree(b));
	XGB(XGDMatrixFree(dtest));
	XGB(XGDMatrixFree(dtrain));
}

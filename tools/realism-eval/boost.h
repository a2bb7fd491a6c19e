/* boost.h: gradient-boosted trees through XGBoost's C API, as
 * realism-eval(1) uses them: train on rows of numbers with a class each,
 * then predict the classes of other rows. Deterministic for given
 * parameters: the seed and the number of threads are fixed. */
#ifndef TGPT_BOOST_H
#define TGPT_BOOST_H

#include <stddef.h>
#include <stdint.h>

struct boost_params {
	int n_classes;  /* 2: binary:logistic, more: multi:softprob */
	int rounds;     /* boosting rounds */
	int depth;      /* max_depth */
	double eta;     /* learning rate */
	int threads;    /* nthread */
	uint64_t seed;
};

/* Trains on x_train (n_train rows of ncol floats, NAN for missing) with
 * classes y_train (0 .. n_classes - 1), and writes the predicted class of
 * each of the n_test rows of x_test into pred (the most probable one; for
 * two classes, class 1 when its probability exceeds 1/2). Exits 70 with
 * XGBoost's message when XGBoost fails. */
void boost_fit_predict(const struct boost_params *bp, const float *x_train, const int *y_train,
		       size_t n_train, const float *x_test, size_t n_test, size_t ncol, int *pred);

/* "xgboost 1.7.4" (the library's own version). */
const char *boost_version(void);

#endif

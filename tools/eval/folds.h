/* folds.h: how realism-eval(1) splits its data and sums up its folds:
 * seeded shuffles (splitmix64, hash.h), stratified k-fold assignment, and
 * the mean and standard deviation of the folds' scores. Pure computation,
 * the same on every machine. */
#ifndef TGPT_FOLDS_H
#define TGPT_FOLDS_H

#include <stddef.h>
#include <stdint.h>

/* Fisher-Yates over n indices, from the generator at *state. */
void shuffle(size_t *idx, size_t n, uint64_t *state);

/* Assigns each of n items with class y[i] (0 .. n_classes - 1) a fold in
 * 0 .. k - 1: each class is shuffled (seeded) and dealt round the folds, so
 * every fold holds each class in proportion (counts differ by at most 1). */
void stratified_folds(const int *y, size_t n, int n_classes, int k, uint64_t seed, int *fold);

/* Mean and sample standard deviation (n - 1; 0 for a single value). */
void mean_std(const double *x, size_t n, double *mean, double *std);

#endif

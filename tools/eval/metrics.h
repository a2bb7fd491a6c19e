/* metrics.h: what realism-eval(1)'s classifiers are scored with and how
 * their data are split: a seeded random generator, stratified k-fold
 * assignment, the confusion matrix and the F1 scores, accuracy, mean and
 * standard deviation. Pure computation, the same on every machine. */
#ifndef TGPT_METRICS_H
#define TGPT_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64: the next number of the sequence seeded by *state. */
uint64_t rng_next(uint64_t *state);
/* Uniform in [0, n), n > 0. */
uint64_t rng_below(uint64_t *state, uint64_t n);
/* Fisher-Yates over n indices. */
void shuffle(size_t *idx, size_t n, uint64_t *state);

/* Assigns each of n items with class y[i] (0 .. n_classes - 1) a fold in
 * 0 .. k - 1: each class is shuffled (seeded) and dealt round the folds, so
 * every fold holds each class in proportion (counts differ by at most 1). */
void stratified_folds(const int *y, size_t n, int n_classes, int k, uint64_t seed, int *fold);

/* counts[t * k + p]: items of true class t predicted as p. */
struct confusion {
	int k;
	uint64_t *counts;
};
void confusion_init(struct confusion *c, int k);
void confusion_add(struct confusion *c, int truth, int predicted);
void confusion_free(struct confusion *c);
uint64_t confusion_total(const struct confusion *c);
/* Items of class t (as truth: row sum; as prediction: column sum). */
uint64_t confusion_true(const struct confusion *c, int t);
uint64_t confusion_predicted(const struct confusion *c, int p);

/* Precision, recall and F1 of one class; 0 where a denominator is 0. */
struct class_score {
	double precision, recall, f1;
};
struct class_score class_score(const struct confusion *c, int cls);
/* The mean F1 over the classes that occur, as truth or as prediction
 * (scikit-learn's f1_score(average="macro")); NAN when none does. */
double macro_f1(const struct confusion *c);
double accuracy(const struct confusion *c);

/* Mean and sample standard deviation (n - 1; 0 for a single value). */
void mean_std(const double *x, size_t n, double *mean, double *std);

#endif

/* metrics.h: the one scorer of tgpt's classifiers: tgpt-infer classify,
 * tgpt-train's validation and realism-eval (its discriminator and
 * --baseline) count predictions against the truth here and report the same
 * figures the same way.
 *
 *   accuracy   correct / predictions scored
 *   precision  TP / (TP + FP)  of a class; recall TP / (TP + FN);
 *   F1         2 TP / (2 TP + FP + FN): each 0 when its denominator is 0
 *              (scikit-learn's zero_division=0): a class never predicted
 *              has precision 0, one absent from the truth recall 0, one in
 *              neither F1 0
 *   macro-F1   the mean F1 over the classes that occur in the truth or the
 *              predictions (scikit-learn's f1_score(average="macro")); a
 *              class in neither does not count
 * Accuracy and macro-F1 are NAN when nothing was scored. */
#ifndef TGPT_METRICS_H
#define TGPT_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Counts of predictions against the truth, by class: TP, FP and FN always,
 * the whole confusion matrix when asked for (it takes n_classes^2 cells). */
struct scores {
	uint32_t n_classes;
	uint64_t n, correct;
	uint64_t *tp, *fp, *fn;  /* (n_classes) */
	uint64_t *confusion;     /* (n_classes, n_classes) truth x predicted, or NULL */
};

void scores_init(struct scores *s, uint32_t n_classes, int with_confusion);
void scores_reset(struct scores *s);
void scores_add(struct scores *s, uint32_t truth, uint32_t predicted);
void scores_free(struct scores *s);

/* Predictions of true class t as class p (the confusion matrix is kept). */
uint64_t scores_cell(const struct scores *s, uint32_t t, uint32_t p);
/* Whether class c occurs in the truth or the predictions. */
int scores_occurs(const struct scores *s, uint32_t c);

struct class_score {
	double precision, recall, f1;
	uint64_t support;        /* true items of the class */
};
struct class_score class_score(const struct scores *s, uint32_t c);

double scores_accuracy(const struct scores *s);
/* *classes, when not NULL, gets the number of classes averaged over. */
double scores_macro_f1(const struct scores *s, uint32_t *classes);

#endif

/* t-metrics.c: unit tests of the one scorer of tgpt's classifiers
 * (tools/eval/metrics.h): scikit-learn's documented figures, the edge
 * cases (nothing scored, a class in neither the truth nor the
 * predictions, a class never predicted, one absent from the truth: every
 * zero denominator gives 0), and random predictions against a naive
 * reference that counts each figure straight from the pairs. */
#include <math.h>
#include <stdlib.h>

#include "../../tools/eval/metrics.h"
#include "hash.h"
#include "../tap.h"

static void add_all(struct scores *s, const uint32_t *truth, const uint32_t *pred, int n)
{
	for (int i = 0; i < n; i++)
		scores_add(s, truth[i], pred[i]);
}

/* scikit-learn's f1_score example: y_true [0 1 2 0 1 2], y_pred
 * [0 2 1 0 0 1]: F1 per class [0.8 0 0], macro 0.2667; precision macro
 * 0.2222, recall macro 0.3333. */
static void test_sklearn_example(void)
{
	const uint32_t truth[] = { 0, 1, 2, 0, 1, 2 }, pred[] = { 0, 2, 1, 0, 0, 1 };
	struct scores s;
	uint32_t classes;
	scores_init(&s, 3, 1);
	add_all(&s, truth, pred, 6);
	is_near(class_score(&s, 0).f1, 0.8, 1e-12, "scikit-learn's example: F1 of class 0 0.8");
	ok(class_score(&s, 1).f1 == 0 && class_score(&s, 2).f1 == 0, "classes 1 and 2: F1 0");
	is_near(scores_macro_f1(&s, &classes), 0.8 / 3, 1e-12, "macro-F1 0.2667");
	is_int(classes, 3, "over 3 classes");
	double p = 0, r = 0;
	for (uint32_t c = 0; c < 3; c++)
		p += class_score(&s, c).precision, r += class_score(&s, c).recall;
	is_near(p / 3, 2.0 / 9, 1e-12, "macro precision 0.2222");
	is_near(r / 3, 1.0 / 3, 1e-12, "macro recall 0.3333");
	is_near(scores_accuracy(&s), 2.0 / 6, 1e-12, "accuracy 2 of 6");
	is_u64(scores_cell(&s, 1, 2), 1, "confusion: one 1 taken for a 2");
	is_u64(scores_cell(&s, 1, 0), 1, "and one for a 0");
	is_u64(scores_cell(&s, 0, 0), 2, "both 0s right");
	scores_free(&s);
}

static void test_edges(void)
{
	struct scores s;
	uint32_t classes = 99;
	scores_init(&s, 4, 0);
	ok(s.confusion == NULL, "no confusion matrix unless asked for");
	ok(isnan(scores_accuracy(&s)) && isnan(scores_macro_f1(&s, &classes)),
		"nothing scored: accuracy and macro-F1 NAN");
	is_int(classes, 0, "over no class");
	struct class_score cs = class_score(&s, 2);
	ok(cs.precision == 0 && cs.recall == 0 && cs.f1 == 0 && cs.support == 0,
		"nothing scored: a class's figures 0, not NAN");

	/* truth 0 0 1 1, predictions 0 0 0 2: class 1 is never predicted,
	 * class 2 never true, class 3 in neither */
	const uint32_t truth[] = { 0, 0, 1, 1 }, pred[] = { 0, 0, 0, 2 };
	add_all(&s, truth, pred, 4);
	cs = class_score(&s, 1);
	ok(cs.precision == 0 && cs.recall == 0 && cs.f1 == 0, "a class never predicted: "
		"precision 0 (no predictions), recall 0, F1 0");
	is_u64(cs.support, 2, "its support 2");
	cs = class_score(&s, 2);
	ok(cs.precision == 0 && cs.recall == 0 && cs.f1 == 0, "a class never true: recall 0 "
		"(no support), precision 0, F1 0");
	is_u64(cs.support, 0, "its support 0");
	cs = class_score(&s, 3);
	ok(cs.precision == 0 && cs.recall == 0 && cs.f1 == 0 && !scores_occurs(&s, 3),
		"a class in neither: 0 0 0, and it does not occur");
	is_near(class_score(&s, 0).f1, 0.8, 1e-12, "class 0: 2 TP, 1 FP: F1 0.8");
	/* scikit-learn: f1_score([0,0,1,1], [0,0,0,2], average="macro") = 0.8 / 3 */
	is_near(scores_macro_f1(&s, &classes), 0.8 / 3, 1e-12,
		"macro-F1 over the 3 classes that occur, those never predicted or never true at 0");
	is_int(classes, 3, "class 3 left out");
	is_near(scores_accuracy(&s), 0.5, 1e-12, "accuracy 2 of 4");

	scores_reset(&s);
	ok(isnan(scores_accuracy(&s)), "reset: nothing scored");
	scores_add(&s, 3, 3);
	is_near(scores_macro_f1(&s, &classes), 1, 0, "reset: one right answer, macro-F1 1");
	is_int(classes, 1, "over the one class that occurs");
	scores_free(&s);
}

/* Random truths and predictions (k classes, some never drawn) against the
 * figures counted straight from the pairs. */
static void test_random(void)
{
	enum { K = 6, N = 200 };
	uint64_t rng = 11;
	double worst = 0;
	int agree = 1;
	for (int round = 0; round < 50; round++) {
		uint32_t truth[N], pred[N];
		int n = 1 + (int)splitmix64_below(&rng, N);
		for (int i = 0; i < n; i++) {	/* classes 4 and 5 are rare or absent */
			truth[i] = (uint32_t)splitmix64_below(&rng, round % 2 ? 4 : K);
			pred[i] = (uint32_t)splitmix64_below(&rng, round % 3 ? 5 : 4);
		}
		struct scores s;
		scores_init(&s, K, round % 2);
		add_all(&s, truth, pred, n);
		double f1_sum = 0;
		int present = 0, right = 0;
		for (int i = 0; i < n; i++)
			right += truth[i] == pred[i];
		for (uint32_t c = 0; c < K; c++) {
			int tp = 0, is_true = 0, is_pred = 0;
			for (int i = 0; i < n; i++) {
				tp += truth[i] == c && pred[i] == c;
				is_true += truth[i] == c;
				is_pred += pred[i] == c;
			}
			double p = is_pred ? (double)tp / is_pred : 0;
			double r = is_true ? (double)tp / is_true : 0;
			double f1 = p + r > 0 ? 2 * p * r / (p + r) : 0;	/* the harmonic mean */
			struct class_score cs = class_score(&s, c);
			worst = fmax(worst, fabs(cs.f1 - f1));
			agree &= cs.precision == p && cs.recall == r && cs.support == (uint64_t)is_true;
			if (is_true || is_pred)
				f1_sum += f1, present++;
		}
		double macro = scores_macro_f1(&s, NULL);
		worst = fmax(worst, fabs(macro - f1_sum / present));
		agree &= scores_accuracy(&s) == (double)right / n;
		scores_free(&s);
	}
	ok(agree, "50 random rounds: precision, recall, support and accuracy as counted");
	ok(worst < 1e-12, "F1 and macro-F1 as the harmonic mean over the classes present "
		"(to 1e-12)");
	printf("#   largest difference %.3g\n", worst);
}

int main(void)
{
	test_sklearn_example();
	test_edges();
	test_random();
	return tap_done();
}

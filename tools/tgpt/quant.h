/* quant.h: the products of a recurrent step from reduced-precision copies
 * of the weights (quant.c), as recurrent.c calls them; private to the two.
 * rec_set_precision (recurrent.h) makes the copies. */
#ifndef TGPT_QUANT_H
#define TGPT_QUANT_H

#include <stdint.h>

#include "recurrent.h"

/* The input of a product: float rows, and for int8 weights the same rows
 * as integers (rows of ldq) with their scales. */
struct act {
	const float *x;
	const int16_t *q;
	const float *qs;
	int n, C, ldq;
};

/* The n rows (C) of x as integers q (rows of ldq >= C, zeros after C) and
 * scales qs: the input of int8 products. */
void quant_rows(int16_t *q, int ldq, float *qs, const float *x, int n, int C);

/* out (rows of ldo) columns [j0, j1) = beta * out + a . w^T + bias, from
 * r's f16 or int8 copy of the matrix w (one of the model's parameters). */
void quant_cols(const struct rec *r, float *out, int ldo, const struct act *a, const float *w,
	const float *bias, int j0, int j1, float beta);

/* Frees r's copies (back to the parameters). */
void quant_free(struct rec *r);

#endif

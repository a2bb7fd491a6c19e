/* json.h: the few JSON writers the evaluators' reports need: a string with
 * its escapes, and a number (null for NAN, six significant digits). */
#ifndef TGPT_JSON_H
#define TGPT_JSON_H

#include <stdio.h>

void json_string(FILE *f, const char *s);
/* The first len bytes of s (not NUL-terminated). */
void json_string_n(FILE *f, const char *s, size_t len);
void json_number(FILE *f, double x);

#endif

/* json.h: the JSON the tools' reports are written with: a string with its
 * escapes, and a number (null when it is not finite). */
#ifndef TGPT_JSON_H
#define TGPT_JSON_H

#include <stdio.h>

void json_string(FILE *f, const char *s);
/* The first len bytes of s (not NUL-terminated). */
void json_string_n(FILE *f, const char *s, size_t len);
/* x with `digits` significant digits (printf's %.*g): JSON_DIGITS for a
 * report's figures, JSON_DIGITS_EXACT for a float that must read back the
 * same. */
void json_number(FILE *f, double x, int digits);
#define JSON_DIGITS 6
#define JSON_DIGITS_EXACT 9

#endif

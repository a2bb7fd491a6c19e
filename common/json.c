/* json.c: JSON strings and numbers for the tools' reports (json.h). */
#include "json.h"

#include <math.h>
#include <string.h>

void json_string_n(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

void json_string(FILE *f, const char *s)
{
	json_string_n(f, s, strlen(s));
}

void json_number(FILE *f, double x, int digits)
{
	if (isfinite(x))
		fprintf(f, "%.*g", digits, x);
	else
		fputs("null", f);
}

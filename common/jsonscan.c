/* jsonscan.c: see jsonscan.h. */
#include "jsonscan.h"

const char *
jsonscan_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

bool
jsonscan_plain_string(const char **pp, const char *end, const char **s, size_t *len)
{
	const char *p = *pp;
	const char *start;

	if (p == end || *p != '"')
		return false;
	start = ++p;
	while (p < end && *p != '"') {
		if (*p < 0x20 || *p > 0x7e || *p == '\\')
			return false;
		p++;
	}
	if (p == end)
		return false;
	*s = start;
	*len = (size_t)(p - start);
	*pp = p + 1;
	return true;
}

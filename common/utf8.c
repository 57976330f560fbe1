/* utf8.c: UTF-8 validation and repair for text echoed in replies. */
#include "utf8.h"

#include <string.h>

/* Bytes of the longest prefix of s (valid UTF-8) of at
 * most max bytes that does not cut a character: text echoed in the reply must
 * stay valid UTF-8, or the reply's JSON loses it. */
size_t
utf8_prefix(const char *s, size_t max)
{
	if (strlen(s) <= max)
		return strlen(s);
	while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	return max;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 (jansson's rules: no
 * overlong forms, surrogates or code points above U+10FFFF); its code point
 * in *out. */
size_t
utf8_decode(const unsigned char *s, unsigned *out)
{
	unsigned c = s[0], cp, min;
	size_t n;

	if (c < 0x80) {
		*out = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80) /* also stops at the terminating NUL */
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	*out = cp;
	return n;
}

size_t
utf8_seq(const unsigned char *s)
{
	unsigned cp;

	return utf8_decode(s, &cp);
}

/* jansson's error text quotes the input around the error and may cut a
 * character there: replace each byte that is not valid UTF-8 by '?'. */
void
utf8_clean(char *s)
{
	for (size_t i = 0, n; s[i] != '\0'; i += n) {
		if ((n = utf8_seq((const unsigned char *)s + i)) == 0) {
			s[i] = '?';
			n = 1;
		}
	}
}

bool
utf8_valid(const char *s)
{
	for (size_t i = 0, n; s[i] != '\0'; i += n)
		if ((n = utf8_seq((const unsigned char *)s + i)) == 0)
			return false;
	return true;
}

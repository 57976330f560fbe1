/* utf8.h: UTF-8 checks (jansson's rules: no overlong forms, surrogates or
 * code points above U+10FFFF). Client text echoed in a JSON reply must stay
 * valid UTF-8, or jansson drops it. Pure. */
#ifndef CREDITD_UTF8_H
#define CREDITD_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the valid sequence at s (1..4), or 0. */
size_t utf8_seq(const unsigned char *s);
/* The same, and the sequence's code point in *cp (when valid). */
size_t utf8_decode(const unsigned char *s, unsigned *cp);
bool utf8_valid(const char *s);
/* Replace each byte that is not part of a valid sequence by '?', in place. */
void utf8_clean(char *s);
/* Bytes of the longest prefix of at most max bytes that cuts no character. */
size_t utf8_prefix(const char *s, size_t max);

#endif

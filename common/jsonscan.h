/* jsonscan.h: the two tokens that the fast request parsers (events,
 * authorize) read without building a jansson tree. Pure. Anything outside
 * this narrow shape makes the caller fall back to jansson. */
#ifndef CREDITD_JSONSCAN_H
#define CREDITD_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>

/* p advanced past JSON whitespace (space, tab, LF, CR), at most to end. */
const char *jsonscan_ws(const char *p, const char *end);

/* A JSON string at *pp of printable ASCII without escapes (so its text is
 * what it decodes to): *s and *len name the text, *pp moves past the closing
 * quote. False, *pp unchanged, for anything else. */
bool jsonscan_plain_string(const char **pp, const char *end, const char **s, size_t *len);

#endif

/* hexdigit.h: the value of one hexadecimal digit, shared by the parsers of
 * common/ (config token hashes, HTTP chunk sizes, uuids). */
#ifndef CREDITD_HEXDIGIT_H
#define CREDITD_HEXDIGIT_H

/* 0..15 for 0-9, a-f, A-F; -1 for anything else. */
static inline int
hex_digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif

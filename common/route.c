/* route.c: path pattern matching. */
#include "route.h"

#include <string.h>

static bool
route_segment_ok(const char *s, size_t len)
{
	if (len == 0)
		return false;
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	return true;
}

bool
route_match(const char *pattern, const char *path, struct route_capture *caps, int *ncaps)
{
	const char *p = pattern, *s = path;
	int n = 0;

	*ncaps = 0;
	if (*p != '/' || *s != '/')
		return false;
	while (*p == '/' && *s == '/') {
		const char *pe, *se;
		size_t plen, slen;

		p++;
		s++;
		pe = strchr(p, '/');
		se = strchr(s, '/');
		plen = pe ? (size_t)(pe - p) : strlen(p);
		slen = se ? (size_t)(se - s) : strlen(s);
		if (!route_segment_ok(s, slen))
			return false;
		if (plen == 2 && p[0] == '{' && p[1] == '}') {
			if (n == ROUTE_MAX_CAPTURES)
				return false;
			caps[n].start = s;
			caps[n].len = slen;
			n++;
		} else if (plen != slen || memcmp(p, s, plen) != 0) {
			return false;
		}
		p += plen;
		s += slen;
	}
	if (*p != '\0' || *s != '\0')
		return false;
	*ncaps = n;
	return true;
}

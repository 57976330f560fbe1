/* route.h: matching request paths against route patterns (pure).
 * A pattern is a path whose segments are literals or "{}" (one non-empty
 * segment captured). "/v1/accounts/{}/history" matches "/v1/accounts/X/history". */
#ifndef CREDITD_ROUTE_H
#define CREDITD_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#define ROUTE_MAX_CAPTURES 4

struct route_capture {
	const char *start; /* points into the path; not NUL-terminated */
	size_t len;
};

/* True when path (without query string) matches pattern; fills caps. Empty
 * segments ("//"), "." and ".." segments never match. */
bool route_match(const char *pattern, const char *path, struct route_capture *caps, int *ncaps);

#endif

/* routes.h: the whole HTTP API in one table (STYLE.md). */
#ifndef CREDITD_ROUTES_H
#define CREDITD_ROUTES_H

#include "http.h"

extern const struct route routes_table[];
extern const int routes_count;
const char *const *routes_names(void);

#endif

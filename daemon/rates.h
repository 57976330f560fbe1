/* rates.h: the statutory rules and reference series (R6.5) held in memory,
 * loaded from the database at start and reloaded after a change. */
#ifndef CREDITD_RATES_H
#define CREDITD_RATES_H

#include <stdbool.h>

struct app;
struct rates;
struct ratetable;

struct rates *rates_new(struct app *app);
void rates_free(struct rates *r);
void rates_reload(struct rates *r);
/* The same, then done(arg) once the load ended (loaded or failed; also at
 * once when the database is unavailable). */
void rates_reload_then(struct rates *r, void (*done)(void *arg), void *arg);
/* The current table; NULL until the first load completed. */
const struct ratetable *rates_table(const struct rates *r);

#endif

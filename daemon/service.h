/* service.h: wiring of the long-lived services (caches, batcher, scheduled
 * jobs) into the daemon's life cycle, so that main.c stays about start-up
 * order and signals. */
#ifndef CREDITD_SERVICE_H
#define CREDITD_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

struct app;

void service_init(struct app *app);
/* First time the database is usable with a current schema. */
void service_db_ready(struct app *app);
/* A connection came back after a loss. */
void service_db_reconnected(struct app *app);
/* Connection 0 listens again (after an outage): the cache is reloaded. */
void service_db_relistened(struct app *app);
void service_config_changed(struct app *app);
/* A change was scheduled for `at`: make sure the task runs then (known
 * before the HTTP answer, so a test clock moved right after sees it). */
void service_limit_change_at(struct app *app, int64_t at);
/* The same for a reactivation request (R6.7). */
void service_reactivation_at(struct app *app, int64_t at);
/* SIGTERM: flush what is queued, start nothing new. */
void service_drain(struct app *app);
/* Work still in progress (blocks exit while draining). */
bool service_busy(struct app *app);
/* In-memory state loaded (for /readyz). */
bool service_ready(struct app *app);
void service_free(struct app *app);

#endif

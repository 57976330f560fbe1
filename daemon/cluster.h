/* cluster.h: several daemons on one database (R9.2).
 *
 * - LISTEN on connection 0: account changes made by another daemon reach this
 *   one's authorization cache within a second (batched every 50 ms); rate
 *   data changes reload the rate tables. Our own NOTIFYs are skipped (their
 *   sender is one of our backends).
 * - Leadership: scheduled work (invoicing, daily job, rollover, limit changes,
 *   reactivations, webhook delivery) runs only on the daemon that holds a
 *   session advisory lock on its connection 0; the others retry every 2 s and
 *   take over within seconds when the leader dies (its session ends). */
#ifndef CREDITD_CLUSTER_H
#define CREDITD_CLUSTER_H

#include <stdbool.h>

struct app;
struct cluster;
struct evbuffer;

struct cluster *cluster_new(struct app *app); /* before db_start */
void cluster_free(struct cluster *c);
void cluster_db_ready(struct cluster *c);
bool cluster_is_leader(const struct cluster *c);
/* Whether this daemon knows if it leads (for /readyz: due work such as a
 * missed invoice run is started before the daemon reports ready). */
bool cluster_decided(const struct cluster *c);
void cluster_metrics(struct evbuffer *out, void *arg);

#endif

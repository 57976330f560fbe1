/* webhook.h: delivery of the notification outbox to an optional webhook (R8.2).
 *
 * When [webhook] url is set, every notification is POSTed to it as JSON, the
 * same object GET /v1/notifications lists ({"id", "kind", "account",
 * "created_at", "payload"}), with these headers:
 *
 *   Content-Type: application/json
 *   X-Creditd-Delivery: <notification id>     (receivers deduplicate on it)
 *   X-Creditd-Timestamp: <unix seconds>       (wall clock at sending)
 *   X-Creditd-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>
 *
 * At least once: a notification is marked delivered only after a 2xx answer
 * (its status line counts; the answer body is never used, so a body over
 * 64 KiB, cut off or past the deadline does not undo the acceptance).
 * A failure (other status, connection error, 10 s timeout) is retried after
 * min(max_backoff_seconds, 2^(attempts-1)) seconds; after max_attempts failures
 * it is given up (next_attempt_at = 'infinity', last_error "gave up ...") and
 * no longer blocks its account. Per account, a notification is sent only when
 * every earlier one is delivered or given up; different accounts proceed in
 * parallel (at most WEBHOOK_MAX_INFLIGHT requests).
 *
 * Claiming is a lease in the database (next_attempt_at = now() + 60 s in the
 * polling transaction), so several daemons against one database (R9.2) never
 * send the same notification at once, and one that died mid-delivery is
 * retried when the lease runs out.
 *
 * Delivery scheduling is operational, not business time (R1.6 concerns
 * business logic): next_attempt_at and delivered_at use the database's now(),
 * the signature timestamp the wall clock, polling a monotonic 1 s timer; the
 * test clock does not move any of them.
 *
 * Nothing blocks the loop or billing: HTTP is libevent's evhttp client (names
 * resolved with evdns), database work goes through db.h batches, and a slow or
 * dead receiver only delays its own deliveries. */
#ifndef CREDITD_WEBHOOK_H
#define CREDITD_WEBHOOK_H

#include <stdbool.h>

struct app;
struct evbuffer;
struct webhook;

#define WEBHOOK_MAX_INFLIGHT 4

struct webhook *webhook_new(struct app *app);
/* Cancels requests in flight (they are sent again later: at least once). */
void webhook_free(struct webhook *wh);
/* The database is usable: start polling (when a URL is configured). */
void webhook_start(struct webhook *wh);
/* After SIGHUP: URL, secret, attempts and backoff may have changed. */
void webhook_config_changed(struct webhook *wh);
/* SIGTERM: start no new delivery; cancel requests in flight and release their
 * claims (the next daemon sends them again). */
void webhook_drain(struct webhook *wh);
/* A delivery's outcome is being recorded (blocks exit while draining). */
bool webhook_busy(const struct webhook *wh);
/* metrics_writer_fn: creditd_webhook_* series. */
void webhook_metrics(struct evbuffer *out, void *arg);

#endif

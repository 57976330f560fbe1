/* batcher.h: write-behind ingestion with group commit (R3.4, STYLE.md).
 *
 * Accepted requests append their valid events to an open batch; a batch is
 * flushed at `batch_flush_events` events or after `batch_flush_ms`, as ONE
 * transaction (creditd_ingest_batch, sql/0013_ingest_speed.sql), and every
 * request with events in it is answered only after that commit. Events are
 * split by account over a few lanes, each with its own open batch and at
 * most one transaction in flight; an account stays in one lane while it has
 * events queued or in flight, so the lanes' transactions never wait for each
 * other's account locks and commit in parallel. The queue (all lanes) is
 * bounded (`batch_queue_events`): beyond it requests get 503. */
#ifndef CREDITD_BATCHER_H
#define CREDITD_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"

struct acache_entry;
struct app;
struct batcher;
struct http_req;

/* One POST /v1/events: the parsed events and their per-event outcome. */
struct ingest_job {
	struct http_req *req;
	struct event_batch evs;
	const char **status;              /* per event: accepted|duplicate|conflict|rejected */
	const char **reason;              /* per event, for rejected */
	const char **account_id;          /* resolved account UUID (points into the cache) */
	const struct acache_entry **acct; /* its cache entry */
	int32_t *period;                  /* per event billing month (civil day of its first day) */
	char (*acct_status)[12];
	size_t pending; /* events still in a batch */
	bool failed;    /* a batch with its events failed: answer 503 */
};

struct batcher *batcher_new(struct app *app);
void batcher_free(struct batcher *b);
/* Queue the job's valid events; answers the request when all committed.
 * Returns -1 (nothing queued) when the queue is full. */
int batcher_submit(struct batcher *b, struct ingest_job *job);
/* Flush now (drain). */
void batcher_flush(struct batcher *b);
bool batcher_busy(const struct batcher *b);
void batcher_metrics(struct batcher *b, void *evbuffer);
/* Answer a finished job (also used for jobs with nothing to batch). */
void ingest_job_reply(struct ingest_job *job);
void ingest_job_free(struct ingest_job *job);

#endif

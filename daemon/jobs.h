/* jobs.h: the invoicing job (R5.1) and its schedule.
 *
 * A run invoices a period in chunks of accounts, each chunk one transaction
 * (creditd_invoice_chunk_lane), until no account is left; the accounts are
 * split into lanes that run at the same time, each on a connection of the
 * pool (invoice numbers stay gap-free: a chunk reserves them last, and the
 * lanes' chunks take turns for the series); a crash mid-run loses
 * at most the chunk in flight and the next run resumes without duplicates
 * (one monthly invoice per account and period is a unique key). Runs are
 * recorded in `jobs`; completed periods in `invoice_runs`. A running job's
 * session lock, held by every connection of its runner's pool, shows that
 * the runner is alive; the sweeps of every daemon mark a job whose lock no
 * session holds failed (R9.2; jobs.c, "liveness"). */
#ifndef CREDITD_JOBS_H
#define CREDITD_JOBS_H

#include <stdbool.h>
#include <stdint.h>

struct app;
struct jobs;
struct http_req;
struct evbuffer;

struct jobs *jobs_new(struct app *app);
void jobs_free(struct jobs *j);
/* Database ready: load completed periods, schedule the next run (catching
 * up a missed one). */
void jobs_db_ready(struct jobs *j);
/* Config reloaded: the run day or time may have changed. */
void jobs_reschedule(struct jobs *j);
bool jobs_busy(const struct jobs *j);
void jobs_metrics(struct evbuffer *out, void *arg);

/* For job implementations (daily.c). */
struct job_run;
struct sched;
#include <jansson.h>
struct app *job_run_app(const struct job_run *run);
int32_t job_run_day(const struct job_run *run);
/* End the run: result (stolen, may be NULL) or error (copied). */
void job_run_complete(struct job_run *run, json_t *result, const char *error);
/* Start the daily job for `day` (the scheduler passes s, HTTP passes r). */
void jobs_start_daily(struct app *app, int32_t day, const char *actor, struct http_req *r,
                      bool wait, struct sched *s);

/* HTTP (API.md "Jobs"). */
void jobs_http_daily(struct http_req *r);
void jobs_http_invoicing(struct http_req *r);
void jobs_http_get(struct http_req *r);
void jobs_http_list(struct http_req *r);
void jobs_http_schedule(struct http_req *r);

#endif

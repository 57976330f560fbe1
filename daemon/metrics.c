/* metrics.c: counters, histograms and the /metrics text. */
#include "metrics.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"
#include "xmalloc.h"

/* Latency buckets in microseconds (le = seconds in the output). */
static const int64_t metrics_buckets[] = {100,   250,   500,    1000,   2500,   5000,    10000,
                                          25000, 50000, 100000, 250000, 500000, 1000000, 2500000};
#define METRICS_NBUCKETS (sizeof(metrics_buckets) / sizeof(metrics_buckets[0]))

struct metrics_status {
	int status;
	uint64_t count;
};

struct metrics_route {
	const char *name;
	struct metrics_status *statuses;
	int nstatuses;
	uint64_t buckets[METRICS_NBUCKETS];
	uint64_t count;
	int64_t sum_usec;
};

struct metrics_counter {
	char *series;
	uint64_t value;
};

struct metrics_writer {
	metrics_writer_fn fn;
	void *arg;
};

struct metrics {
	struct metrics_route *routes;
	int nroutes;
	struct metrics_counter *counters;
	size_t ncounters;
	struct metrics_writer *writers;
	size_t nwriters;
};

struct metrics *
metrics_new(int nroutes, const char *const *route_names)
{
	struct metrics *m = xcalloc(1, sizeof *m);

	m->nroutes = nroutes;
	m->routes = xcalloc((size_t)nroutes + 1, sizeof *m->routes);
	for (int i = 0; i < nroutes; i++)
		m->routes[i].name = route_names[i];
	m->routes[nroutes].name = "unmatched";
	return m;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	for (int i = 0; i <= m->nroutes; i++)
		free(m->routes[i].statuses);
	free(m->routes);
	for (size_t i = 0; i < m->ncounters; i++)
		free(m->counters[i].series);
	free(m->counters);
	free(m->writers);
	free(m);
}

void
metrics_observe_request(struct metrics *m, int route, int status, int64_t usec)
{
	struct metrics_route *r;
	int i;

	if (route < 0 || route >= m->nroutes)
		route = m->nroutes;
	r = &m->routes[route];
	for (i = 0; i < r->nstatuses; i++)
		if (r->statuses[i].status == status)
			break;
	if (i == r->nstatuses) {
		r->statuses = xreallocarray(r->statuses, (size_t)i + 1, sizeof *r->statuses);
		r->statuses[i].status = status;
		r->statuses[i].count = 0;
		r->nstatuses++;
	}
	r->statuses[i].count++;
	for (size_t b = 0; b < METRICS_NBUCKETS; b++)
		if (usec <= metrics_buckets[b])
			r->buckets[b]++;
	r->count++;
	r->sum_usec += usec;
}

void
metrics_counter_add(struct metrics *m, const char *series, uint64_t n)
{
	for (size_t i = 0; i < m->ncounters; i++) {
		if (strcmp(m->counters[i].series, series) == 0) {
			m->counters[i].value += n;
			return;
		}
	}
	m->counters = xreallocarray(m->counters, m->ncounters + 1, sizeof *m->counters);
	m->counters[m->ncounters].series = xstrdup(series);
	m->counters[m->ncounters].value = n;
	m->ncounters++;
}

void
metrics_add_writer(struct metrics *m, metrics_writer_fn fn, void *arg)
{
	m->writers = xreallocarray(m->writers, m->nwriters + 1, sizeof *m->writers);
	m->writers[m->nwriters].fn = fn;
	m->writers[m->nwriters].arg = arg;
	m->nwriters++;
}

void
metrics_render(struct metrics *m, struct evbuffer *out)
{
	evbuffer_add_printf(out,
	                    "# HELP creditd_build_info Build information.\n"
	                    "# TYPE creditd_build_info gauge\n"
	                    "creditd_build_info{version=\"%s\"} 1\n",
	                    CREDITD_VERSION);
	evbuffer_add_printf(out, "# HELP creditd_http_requests_total HTTP requests by route and "
	                         "status.\n# TYPE creditd_http_requests_total counter\n");
	for (int i = 0; i <= m->nroutes; i++) {
		const struct metrics_route *r = &m->routes[i];
		for (int s = 0; s < r->nstatuses; s++)
			evbuffer_add_printf(
			    out,
			    "creditd_http_requests_total{route=\"%s\",status=\"%d\"} %" PRIu64 "\n",
			    r->name, r->statuses[s].status, r->statuses[s].count);
	}
	evbuffer_add_printf(out, "# HELP creditd_http_request_duration_seconds Request latency.\n"
	                         "# TYPE creditd_http_request_duration_seconds histogram\n");
	for (int i = 0; i <= m->nroutes; i++) {
		const struct metrics_route *r = &m->routes[i];
		if (r->count == 0)
			continue;
		for (size_t b = 0; b < METRICS_NBUCKETS; b++)
			evbuffer_add_printf(out,
			                    "creditd_http_request_duration_seconds_bucket{route=\"%"
			                    "s\",le=\"%" PRId64 ".%06" PRId64 "\"} %" PRIu64 "\n",
			                    r->name, metrics_buckets[b] / 1000000,
			                    metrics_buckets[b] % 1000000, r->buckets[b]);
		evbuffer_add_printf(
		    out,
		    "creditd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
		    "%" PRIu64 "\n"
		    "creditd_http_request_duration_seconds_sum{route=\"%s\"} %" PRId64 ".%06" PRId64
		    "\n"
		    "creditd_http_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n",
		    r->name, r->count, r->name, r->sum_usec / 1000000, r->sum_usec % 1000000,
		    r->name, r->count);
	}
	for (size_t i = 0; i < m->ncounters; i++)
		evbuffer_add_printf(out, "%s %" PRIu64 "\n", m->counters[i].series,
		                    m->counters[i].value);
	for (size_t i = 0; i < m->nwriters; i++)
		m->writers[i].fn(out, m->writers[i].arg);
}

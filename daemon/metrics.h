/* metrics.h: Prometheus text exposition (R9.4). Request counters by route and
 * status, a latency histogram per route, named counters, and gauge writers
 * that other modules register (database pool, batcher, schedule). */
#ifndef CREDITD_METRICS_H
#define CREDITD_METRICS_H

#include <stdint.h>

struct evbuffer;
struct metrics;

typedef void (*metrics_writer_fn)(struct evbuffer *out, void *arg);

struct metrics *metrics_new(int nroutes, const char *const *route_names);
void metrics_free(struct metrics *m);
void metrics_observe_request(struct metrics *m, int route, int status, int64_t usec);
/* Counter by full series name, e.g. "creditd_events_total{status=\"accepted\"}". */
void metrics_counter_add(struct metrics *m, const char *series, uint64_t n);
void metrics_add_writer(struct metrics *m, metrics_writer_fn fn, void *arg);
void metrics_render(struct metrics *m, struct evbuffer *out);

#endif

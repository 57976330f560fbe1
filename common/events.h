/* events.h: parsing and validating a batch of chargeable events (R3.1, R3.2,
 * API.md "Usage"). Pure: time comes in as a parameter. One bad event never
 * rejects its neighbours: each event carries its own verdict. */
#ifndef CREDITD_EVENTS_H
#define CREDITD_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum event_verdict {
	EVENT_OK = 0,
	EVENT_INVALID_FIELD,  /* wrong shape, missing or unknown field */
	EVENT_INVALID_AMOUNT, /* not a decimal string, <= 0, > 6 decimals, overflow */
	EVENT_INVALID_TIME,   /* not RFC 3339, too far in the future or too old */
};

/* The largest amount of one event: 1,000,000.000000 (R1.1). */
#define EVENTS_MAX_AMOUNT (INT64_C(1000000) * INT64_C(1000000))

struct event_in {
	char id[37];      /* lowercase UUID text; "" when the id is invalid */
	char *id_raw;     /* the id as sent (for the reply), NULL if not a string */
	char *account;    /* UUID or ext:<ref>, as sent */
	int64_t amount;   /* micro-units */
	int64_t occurred; /* usec since epoch, UTC */
	char *service;
	char *destination; /* NULL when absent */
	int32_t quantity;
	enum event_verdict verdict;
	char why[96]; /* human detail for rejected events */
	/* EVENT_INVALID_TIME whose only fault is being older than max_event_age
	 * (every field valid): it may have been stored when it was younger, so
	 * the daemon looks its id up before answering (R3.3). */
	bool too_old;
};

struct event_batch {
	struct event_in *ev;
	size_t n;
};

struct events_window {
	int64_t now;
	int64_t max_future_usec; /* max_future_skew */
	int64_t max_age_usec;    /* max_event_age */
};

enum events_parse_status {
	EVENTS_PARSE_OK = 0,
	EVENTS_PARSE_BAD_JSON = -1, /* body is not JSON of an accepted shape: 400 invalid_json */
	EVENTS_PARSE_TOO_MANY = -2, /* more than max_events: 413 too_large */
	EVENTS_PARSE_EMPTY = -3,    /* no events at all: 400 validation_failed */
};

/* Parse a JSON array, {"events": [...]}, or (ndjson=true) one JSON object per
 * line. Validates every event against the window. */
int events_parse(const char *body, size_t len, bool ndjson, size_t max_events,
                 const struct events_window *w, struct event_batch *out, char *err, size_t errlen);
/* The fast path of events_parse alone: EVENTS_PARSE_OK, or EVENTS_FAST_NO
 * (out empty) when the body is not of the usual shape (see events.c). */
#define EVENTS_FAST_NO 1
int events_parse_fast(const char *body, size_t len, size_t max_events,
                      const struct events_window *w, struct event_batch *out);
/* events_parse without its fast path: every body through jansson (tests
 * compare the two). */
int events_parse_jansson(const char *body, size_t len, bool ndjson, size_t max_events,
                         const struct events_window *w, struct event_batch *out, char *err,
                         size_t errlen);
void events_free(struct event_batch *b);
const char *events_verdict_reason(enum event_verdict v);
/* Lowercase canonical UUID text of s, or false. */
bool events_uuid_canon(const char *s, char out[37]);

#endif

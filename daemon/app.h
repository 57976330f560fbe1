/* app.h: the daemon's long-lived parts, handed to handlers and jobs.
 * Owned by main.c; everything here lives from start-up to shutdown. */
#ifndef CREDITD_APP_H
#define CREDITD_APP_H

#include <stdbool.h>

struct event_base;
struct config;
struct db;
struct http_server;
struct sched;
struct metrics;
struct acache;
struct batcher;
struct jobs;
struct rates;
struct cluster;
struct webhook;
struct issuer;

struct app {
	struct event_base *base;
	struct config *cfg; /* swapped on SIGHUP */
	const char *config_path;
	struct db *db;
	struct http_server *http;
	struct sched *sched;
	struct metrics *metrics;
	struct acache *acache;
	struct batcher *batcher;
	struct jobs *jobs;
	struct rates *rates;
	struct cluster *cluster;
	struct webhook *webhook;
	struct issuer *issuer;
	bool draining;
};

#endif

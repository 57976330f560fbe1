/* sched.h: scheduled work as a time-sorted queue behind one timer, driven by
 * the clock module (R1.6) so that the test clock can move it.
 *
 * A task runs asynchronously and calls its `done` continuation when finished;
 * tasks never overlap. Recurring tasks re-add themselves. Moving the test
 * clock (sched_advance) runs every task due at or before the target time in
 * time order, each with the clock set to its due time, before it completes. */
#ifndef CREDITD_SCHED_H
#define CREDITD_SCHED_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct sched;

typedef void (*sched_done_fn)(struct sched *s);
/* Run the task due at `due`; call sched_task_done(s) exactly once when finished. */
typedef void (*sched_task_fn)(struct sched *s, int64_t due, void *arg);
typedef void (*sched_advanced_fn)(void *arg);

struct sched *sched_new(struct event_base *base);
void sched_free(struct sched *s);
/* Queue a task at `at` (usec, UTC). Tasks with the same key replace each other. */
void sched_add(struct sched *s, int64_t at, const char *key, sched_task_fn fn, void *arg);
void sched_remove(struct sched *s, const char *key);
/* Earliest due time of a key, or -1. */
int64_t sched_next(const struct sched *s, const char *key);
void sched_task_done(struct sched *s);
/* Real clock: (re)arm the timer. Also runs anything already due. */
void sched_kick(struct sched *s);
/* Test clock: run everything due up to `target`, moving the clock, then set it
 * to target and call cb. Returns -1 if an advance is already in progress. */
int sched_advance(struct sched *s, int64_t target, sched_advanced_fn cb, void *arg);
bool sched_busy(const struct sched *s);
void sched_pause(struct sched *s, bool paused); /* draining: start no new task */
/* Only the leader runs tasks on the real clock (R9.2); the test clock runs
 * due work on whichever daemon it is moved on. */
void sched_set_leader(struct sched *s, bool leader);

#endif

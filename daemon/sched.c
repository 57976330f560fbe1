/* sched.c: one timer, a sorted list of tasks. */
#include "sched.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "xmalloc.h"

struct sched_task {
	int64_t at;
	char *key;
	sched_task_fn fn;
	void *arg;
	struct sched_task *next; /* sorted by at, then insertion */
};

struct sched {
	struct event_base *base;
	struct event *timer;
	struct sched_task *head;
	bool running; /* a task is executing */
	bool paused;
	bool follower; /* another daemon holds the scheduler lock */
	/* test-clock advance in progress */
	bool advancing;
	int64_t target;
	sched_advanced_fn advanced_cb;
	void *advanced_arg;
};

static void sched_run_due(struct sched *s);

static void
sched_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sched_run_due(arg);
}

struct sched *
sched_new(struct event_base *base)
{
	struct sched *s = xcalloc(1, sizeof *s);

	s->base = base;
	s->timer = evtimer_new(base, sched_timer_cb, s);
	return s;
}

static void
sched_task_free(struct sched_task *t)
{
	free(t->key);
	free(t);
}

void
sched_free(struct sched *s)
{
	if (s == NULL)
		return;
	while (s->head) {
		struct sched_task *t = s->head;
		s->head = t->next;
		sched_task_free(t);
	}
	event_free(s->timer);
	free(s);
}

void
sched_remove(struct sched *s, const char *key)
{
	for (struct sched_task **pp = &s->head; *pp;) {
		if (strcmp((*pp)->key, key) == 0) {
			struct sched_task *t = *pp;
			*pp = t->next;
			sched_task_free(t);
		} else {
			pp = &(*pp)->next;
		}
	}
}

void
sched_add(struct sched *s, int64_t at, const char *key, sched_task_fn fn, void *arg)
{
	struct sched_task *t = xcalloc(1, sizeof *t), **pp;

	sched_remove(s, key);
	t->at = at;
	t->key = xstrdup(key);
	t->fn = fn;
	t->arg = arg;
	for (pp = &s->head; *pp && (*pp)->at <= at; pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
	if (!s->running && !s->advancing)
		sched_kick(s);
}

int64_t
sched_next(const struct sched *s, const char *key)
{
	for (const struct sched_task *t = s->head; t; t = t->next)
		if (strcmp(t->key, key) == 0)
			return t->at;
	return -1;
}

void
sched_set_leader(struct sched *s, bool leader)
{
	s->follower = !leader;
	sched_kick(s);
}

bool
sched_busy(const struct sched *s)
{
	return s->running || s->advancing;
}

void
sched_pause(struct sched *s, bool paused)
{
	s->paused = paused;
	if (!paused)
		sched_kick(s);
}

/* Arm the timer for the head task (real clock) or finish an advance. */
void
sched_kick(struct sched *s)
{
	int64_t now, wait;
	struct timeval tv;

	evtimer_del(s->timer);
	if (s->running || s->paused)
		return;
	if (s->advancing) {
		sched_run_due(s);
		return;
	}
	if (s->follower)
		return;
	if (s->head == NULL)
		return;
	now = clock_now();
	if (clock_is_test() && s->head->at > now)
		return; /* the test clock only moves by sched_advance */
	wait = s->head->at - now;
	if (wait < 0)
		wait = 0;
	if (wait > INT64_C(3600) * 1000000)
		wait = INT64_C(3600) * 1000000; /* re-check hourly (wall clock jumps) */
	tv.tv_sec = (time_t)(wait / 1000000);
	tv.tv_usec = (suseconds_t)(wait % 1000000);
	evtimer_add(s->timer, &tv);
}

static void
sched_run_due(struct sched *s)
{
	int64_t limit = s->advancing ? s->target : clock_now();
	struct sched_task *t;

	if (s->running || s->paused)
		return;
	t = s->head;
	if (t == NULL || t->at > limit) {
		if (s->advancing) {
			sched_advanced_fn cb = s->advanced_cb;
			void *arg = s->advanced_arg;
			clock_set(s->target);
			s->advancing = false;
			s->advanced_cb = NULL;
			sched_kick(s);
			if (cb)
				cb(arg);
		} else {
			sched_kick(s);
		}
		return;
	}
	s->head = t->next;
	if (s->advancing && t->at > clock_now())
		clock_set(t->at);
	s->running = true;
	log_debug("sched: running %s", t->key);
	sched_task_fn fn = t->fn;
	void *arg = t->arg;
	int64_t due = t->at;
	sched_task_free(t);
	fn(s, due, arg);
}

void
sched_task_done(struct sched *s)
{
	s->running = false;
	if (s->advancing)
		sched_run_due(s);
	else
		sched_kick(s);
}

int
sched_advance(struct sched *s, int64_t target, sched_advanced_fn cb, void *arg)
{
	if (s->advancing)
		return -1;
	s->advancing = true;
	s->target = target;
	s->advanced_cb = cb;
	s->advanced_arg = arg;
	if (!s->running)
		sched_run_due(s);
	return 0;
}

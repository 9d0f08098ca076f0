/*
 * workers.c - thread pool with completion on the event loop (see workers.h).
 *
 * Finished jobs go on a "done" list and an eventfd that is an event on the
 * loop is signalled; the loop drains the list in order. (An eventfd, not a
 * pipe: one read resets it, where a pipe is read until EAGAIN.)
 */
#include "util/workers.h"
#include "util/log.h"
#include "util/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

struct job {
	work_fn work;
	done_fn done;
	void *arg;
	struct workers *w;
	struct job *next;
};

/* The job this thread is running, and whether its work_fn deferred it: a
 * thread-local flag, not one in the job, which a deferred job's finisher
 * may hand back (and the loop free) before work_fn has even returned. */
static _Thread_local struct job *running_job;
static _Thread_local bool running_deferred;

/* run_job - j's work; false when it deferred its finish (workers_defer). */
static bool run_job(struct job *j)
{
	running_job = j;
	running_deferred = false;
	j->work(j->arg);
	running_job = NULL;
	return !running_deferred;
}

struct job_list {
	struct job *head, *tail;
};

struct workers {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job_list todo, finished;
	bool stopping;
	size_t pending; /* loop thread only */
	pthread_t *threads;
	unsigned nthreads;
	int wake_fd; /* eventfd */
	struct event *ev;
};

static void list_push(struct job_list *l, struct job *j)
{
	j->next = NULL;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static struct job *list_take_all(struct job_list *l)
{
	struct job *j = l->head;
	l->head = l->tail = NULL;
	return j;
}

/* wake_loop - signal the eventfd the loop watches. It is signalled whenever
 * the finished list was empty, so no job is ever missed: the loop resets it
 * before it takes the list. */
static void wake_loop(struct workers *w)
{
	uint64_t one = 1;
	while (write(w->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* finish - j is done: onto the finished list, the loop woken if it was empty. */
static void finish(struct workers *w, struct job *j)
{
	pthread_mutex_lock(&w->lock);
	bool was_empty = w->finished.head == NULL;
	list_push(&w->finished, j);
	pthread_mutex_unlock(&w->lock);
	if (was_empty) /* the loop's wake-up, outside the lock others wait for */
		wake_loop(w);
}

static void *worker_main(void *arg)
{
	struct workers *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->todo.head == NULL && !w->stopping)
			pthread_cond_wait(&w->wake, &w->lock);
		struct job *j = w->todo.head;
		if (j == NULL)
			break;
		w->todo.head = j->next;
		if (w->todo.head == NULL)
			w->todo.tail = NULL;
		pthread_mutex_unlock(&w->lock);
		if (run_job(j))
			finish(w, j);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct workers_token *workers_defer(void)
{
	running_deferred = true;
	return (struct workers_token *)running_job;
}

void workers_finish(struct workers_token *token)
{
	struct job *j = (struct job *)token;
	finish(j->w, j);
}

/* run_finished - hand finished jobs back, in the order they finished. */
static void run_finished(struct workers *w)
{
	uint64_t count;
	while (read(w->wake_fd, &count, sizeof(count)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&w->lock);
	struct job *j = list_take_all(&w->finished);
	pthread_mutex_unlock(&w->lock);
	log_hold(); /* the batch's lines in one write */
	while (j != NULL) {
		struct job *next = j->next;
		w->pending--;
		if (j->done)
			j->done(j->arg);
		free(j);
		j = next;
	}
	log_release();
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_finished(arg);
}

struct workers *workers_new(struct event_base *base, unsigned nthreads)
{
	struct workers *w = xcalloc(1, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake_fd < 0) {
		log_msg(LOG_FATAL, "cannot create worker eventfd: %s", strerror(errno));
		exit(1);
	}
	w->ev = event_new(base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
	event_add(w->ev, NULL);
	w->nthreads = nthreads;
	w->threads = xcalloc(nthreads, sizeof(pthread_t));
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0) {
			log_msg(LOG_FATAL, "cannot start worker thread");
			exit(1);
		}
	}
	return w;
}

void workers_submit(struct workers *w, work_fn work, done_fn done, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->work = work;
	j->done = done;
	j->arg = arg;
	j->w = w;
	w->pending++;
	pthread_mutex_lock(&w->lock);
	if (w->stopping && w->nthreads == 0) {
		/* the threads are gone: finish the job here, hand it back as usual */
		pthread_mutex_unlock(&w->lock);
		if (run_job(j))
			finish(w, j);
		return;
	}
	list_push(&w->todo, j);
	pthread_mutex_unlock(&w->lock);
	pthread_cond_signal(&w->wake); /* after: the woken thread need not wait for the lock */
}

size_t workers_pending(const struct workers *w)
{
	return w->pending;
}

void workers_free(struct workers *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	pthread_mutex_lock(&w->lock);
	w->nthreads = 0;
	pthread_mutex_unlock(&w->lock);
	while (w->pending > 0)
		run_finished(w);
	event_free(w->ev);
	close(w->wake_fd);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	free(w->threads);
	free(w);
}

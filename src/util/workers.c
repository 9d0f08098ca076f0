/*
 * workers.c - thread pool with completion on the event loop (see workers.h).
 *
 * Finished jobs go on a "done" list and one byte is written to a pipe whose
 * read end is an event on the loop; the loop drains the list in order.
 */
#include "util/workers.h"
#include "util/log.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

struct job {
	work_fn work;
	done_fn done;
	void *arg;
	struct job *next;
};

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
	int pipe_fd[2];
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

/* wake_loop - one byte into the pipe the loop watches. A byte is written
 * whenever the finished list was empty, so none is ever missed: the loop
 * reads the pipe dry before it takes the list. */
static void wake_loop(struct workers *w)
{
	char b = 1;
	while (write(w->pipe_fd[1], &b, 1) < 0 && errno == EINTR)
		;
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
		j->work(j->arg);
		pthread_mutex_lock(&w->lock);
		bool was_empty = w->finished.head == NULL;
		list_push(&w->finished, j);
		if (was_empty) { /* the loop's wake-up, outside the lock others wait for */
			pthread_mutex_unlock(&w->lock);
			wake_loop(w);
			pthread_mutex_lock(&w->lock);
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* run_finished - hand finished jobs back, in the order they finished. */
static void run_finished(struct workers *w)
{
	char buf[64];
	while (read(w->pipe_fd[0], buf, sizeof(buf)) > 0)
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

static void on_pipe(evutil_socket_t fd, short what, void *arg)
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
	if (pipe2(w->pipe_fd, O_NONBLOCK | O_CLOEXEC) != 0) {
		log_msg(LOG_FATAL, "cannot create worker pipe: %s", strerror(errno));
		exit(1);
	}
	w->ev = event_new(base, w->pipe_fd[0], EV_READ | EV_PERSIST, on_pipe, w);
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
	w->pending++;
	pthread_mutex_lock(&w->lock);
	if (w->stopping && w->nthreads == 0) {
		/* the threads are gone: finish the job here, hand it back as usual */
		pthread_mutex_unlock(&w->lock);
		work(arg);
		pthread_mutex_lock(&w->lock);
		list_push(&w->finished, j);
		pthread_mutex_unlock(&w->lock);
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
	close(w->pipe_fd[0]);
	close(w->pipe_fd[1]);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	free(w->threads);
	free(w);
}

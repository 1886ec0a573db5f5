/*
 * epoll_loop.c -- shmbus channels in a plain epoll loop, next to a socket.
 *
 * The loop process watches two file descriptors with one epoll_wait: one
 * end of a socketpair, and the file descriptor of a shmbus wait set
 * (shmbus_waitset_fd) holding a queue. The other side is a second process
 * (forked; it opens the bus by name like any other program) that sends
 * "ping N" on the socket and puts "job N" on the queue, alternately; the
 * loop answers "pong N" on the socket and publishes how many jobs it
 * handled on the state channel "handled". The other side checks each
 * answer before it sends the next, then shuts the queue and closes the
 * socket; the loop ends when it has seen both ends.
 *
 * When the wait set's fd polls readable, shmbus_waitset_wait with timeout
 * 0 says which members are ready (and re-arms the fd); the loop then takes
 * what is there with timeout-0 calls. Exit 0 when both sides saw every
 * message in order.
 *
 *   epoll_loop [--bus NAME] [--rounds N]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shmbus.h"

#define TIMEOUT_NS (10ll * 1000000000ll)
#define TAG_JOBS 1

static int fail(const char *who, const char *what, int r)
{
	fprintf(stderr, "epoll_loop: %s: %s: %s (%s)\n", who, what, shmbus_strerror(r),
	        shmbus_last_error());
	return 1;
}

/* ---- the other side --------------------------------------------------- */

static int other_side(const char *name, int sock, int rounds)
{
	struct timeval tv = {.tv_sec = 10};
	shmbus_state_t *handled;
	shmbus_state_opts_t so;
	shmbus_queue_t *jobs;
	shmbus_bus_t *bus;
	char msg[64], want[64];
	int i, r;

	/* A blocked recv gives up after 10 s: a dead loop never wedges us. */
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	r = shmbus_bus_open(name, NULL, &bus);
	if (r)
		return fail("other side", "opening the bus", r);
	shmbus_state_opts_init(&so);
	so.dtype = SHMBUS_UINT64;
	so.create = 0;
	r = shmbus_state_open(bus, "handled", &so, &handled);
	if (!r)
		r = shmbus_queue_open(bus, "jobs", NULL, &jobs);
	if (r)
		return fail("other side", "opening the channels", r);
	for (i = 1; i <= rounds; i++) {
		uint64_t seq, count;
		ssize_t n;

		snprintf(msg, sizeof(msg), "ping %d", i);
		if (send(sock, msg, strlen(msg), 0) < 0)
			return perror("epoll_loop: other side: send"), 1;
		n = recv(sock, msg, sizeof(msg) - 1, 0);
		if (n <= 0)
			return fprintf(stderr, "epoll_loop: other side: no answer to ping %d\n", i), 1;
		msg[n] = '\0';
		snprintf(want, sizeof(want), "pong %d", i);
		if (strcmp(msg, want) != 0)
			return fprintf(stderr, "epoll_loop: other side: got '%s', want '%s'\n", msg, want), 1;

		snprintf(msg, sizeof(msg), "job %d", i);
		r = shmbus_queue_put(jobs, msg, strlen(msg), TIMEOUT_NS);
		if (r)
			return fail("other side", "put", r);
		/* The loop publishes its count after each job. */
		for (;;) {
			r = shmbus_state_read(handled, &count, sizeof(count), &seq);
			if (r == SHMBUS_ENODATA) {      /* not written yet */
				count = seq = 0;
				r = 0;
			}
			if (r || count >= (uint64_t)i)
				break;
			r = shmbus_state_wait(handled, seq, TIMEOUT_NS, &seq);
			if (r)
				break;
		}
		if (r)
			return fail("other side", "waiting for the loop to handle a job", r);
	}
	shmbus_queue_shut(jobs);
	close(sock);
	shmbus_queue_close(jobs);
	shmbus_state_close(handled);
	shmbus_bus_close(bus);
	printf("epoll_loop: other side: %d pings answered, %d jobs handled\n", rounds, rounds);
	fflush(stdout);       /* the child ends with _exit */
	return 0;
}

/* ---- the loop --------------------------------------------------------- */

struct loop {
	int sock, pings, jobs, sock_done, jobs_done;
	shmbus_waitset_t *ws;
	shmbus_queue_t *q;
	shmbus_state_t *handled;
};

static int on_socket(struct loop *l)
{
	char msg[64], want[64];
	ssize_t n = recv(l->sock, msg, sizeof(msg) - 1, MSG_DONTWAIT);

	if (n == 0) {
		l->sock_done = 1;       /* the other side closed it */
		return 0;
	}
	if (n < 0)
		return errno == EAGAIN ? 0 : (perror("epoll_loop: recv"), 1);
	msg[n] = '\0';
	snprintf(want, sizeof(want), "ping %d", l->pings + 1);
	if (strcmp(msg, want) != 0)
		return fprintf(stderr, "epoll_loop: got '%s' on the socket, want '%s'\n", msg, want), 1;
	l->pings++;
	snprintf(msg, sizeof(msg), "pong %d", l->pings);
	return send(l->sock, msg, strlen(msg), 0) < 0 ? (perror("epoll_loop: send"), 1) : 0;
}

static int on_jobs(struct loop *l)
{
	char msg[64], want[64];
	uint64_t tags[4], count;
	size_t n, i, len;
	int r;

	/* Which members are ready; also re-arms the fd. */
	r = shmbus_waitset_wait(l->ws, 0, tags, 4, &n);
	if (r == SHMBUS_ETIMEDOUT)
		return 0;
	if (r)
		return fail("loop", "wait set", r);
	for (i = 0; i < n; i++) {
		if (tags[i] != TAG_JOBS)
			continue;
		for (;;) {
			r = shmbus_queue_get(l->q, msg, sizeof(msg) - 1, &len, NULL, 0);
			if (r == SHMBUS_EAGAIN)
				break;
			if (r == SHMBUS_ECLOSED) {
				l->jobs_done = 1;
				shmbus_waitset_remove(l->ws, TAG_JOBS);
				break;
			}
			if (r)
				return fail("loop", "get", r);
			msg[len] = '\0';
			snprintf(want, sizeof(want), "job %d", l->jobs + 1);
			if (strcmp(msg, want) != 0)
				return fprintf(stderr, "epoll_loop: got '%s' on the queue, want '%s'\n", msg, want), 1;
			l->jobs++;
			count = (uint64_t)l->jobs;
			r = shmbus_state_write(l->handled, &count, sizeof(count));
			if (r)
				return fail("loop", "writing handled", r);
		}
	}
	return 0;
}

static int run_loop(struct loop *l)
{
	struct epoll_event ev, evs[4];
	int ep, wfd, r, i, n, bad = 0;

	r = shmbus_waitset_fd(l->ws, &wfd);
	if (r)
		return fail("loop", "shmbus_waitset_fd", r);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return perror("epoll_loop: epoll_create1"), 1;
	ev.events = EPOLLIN;
	ev.data.fd = l->sock;
	epoll_ctl(ep, EPOLL_CTL_ADD, l->sock, &ev);
	ev.data.fd = wfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, wfd, &ev);
	while (!bad && !(l->sock_done && l->jobs_done)) {
		n = epoll_wait(ep, evs, 4, 10000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "epoll_loop: nothing for 10 s (%d pings, %d jobs)\n",
			        l->pings, l->jobs);
			bad = 1;
			break;
		}
		for (i = 0; i < n && !bad; i++) {
			if (evs[i].data.fd == l->sock) {
				bad = on_socket(l);
				if (l->sock_done)
					epoll_ctl(ep, EPOLL_CTL_DEL, l->sock, NULL);
			} else {
				bad = on_jobs(l);
				if (l->jobs_done)
					epoll_ctl(ep, EPOLL_CTL_DEL, wfd, NULL);
			}
		}
	}
	close(ep);
	return bad;
}

int main(int argc, char **argv)
{
	const char *name = "demo_epoll";
	shmbus_state_opts_t so;
	struct loop l = {0};
	shmbus_bus_t *bus;
	int sv[2], rounds = 20, i, r, bad, status;
	pid_t child;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--bus") == 0 && i + 1 < argc) {
			name = argv[++i];
		} else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
			rounds = atoi(argv[++i]);
		} else {
			printf("usage: epoll_loop [--bus NAME] [--rounds N]\n"
			       "A socket and a shmbus queue in one epoll loop; the other side is a\n"
			       "second process. Exit 0 when every message went both ways in order.\n");
			return strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	r = shmbus_bus_create(name, NULL, &bus);
	if (r)
		return fail("loop", "creating the bus", r);
	shmbus_state_opts_init(&so);
	so.dtype = SHMBUS_UINT64;
	r = shmbus_state_open(bus, "handled", &so, &l.handled);
	if (!r)
		r = shmbus_queue_open(bus, "jobs", NULL, &l.q);
	/* Joined before the other side starts: none of its jobs is lost. */
	if (!r)
		r = shmbus_queue_join(l.q, "loop", SHMBUS_GROUP_EARLIEST);
	if (!r)
		r = shmbus_waitset_new(&l.ws);
	if (!r)
		r = shmbus_waitset_add_queue(l.ws, l.q, SHMBUS_ON_MESSAGE, TAG_JOBS);
	if (r) {
		shmbus_bus_unlink(name);
		return fail("loop", "setting up", r);
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		shmbus_bus_unlink(name);
		return perror("epoll_loop: socketpair"), 1;
	}
	fflush(stdout);
	child = fork();
	if (child == 0) {
		close(sv[0]);
		_exit(other_side(name, sv[1], rounds));
	}
	close(sv[1]);
	l.sock = sv[0];
	bad = child < 0 ? (perror("epoll_loop: fork"), 1) : run_loop(&l);
	if (bad && child > 0)
		kill(child, SIGKILL);
	if (child > 0 && (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) ||
	                  WEXITSTATUS(status) != 0))
		bad = 1;
	printf("epoll_loop: loop: %d pings on the socket, %d jobs from the queue, both ends seen: %s\n",
	       l.pings, l.jobs, !bad && l.pings == rounds && l.jobs == rounds ? "ok" : "FAILED");
	close(l.sock);
	shmbus_waitset_free(l.ws);
	shmbus_queue_close(l.q);
	shmbus_state_close(l.handled);
	shmbus_bus_close(bus);
	shmbus_bus_unlink(name);
	return !bad && l.pings == rounds && l.jobs == rounds ? 0 : 1;
}

/*
 * waitset_api.c -- the wait set's calls: members (added, found by tag,
 * removed), buses registered with their bells, the wait, and the fd's
 * thread. How a set waits, and why it misses no change, is in waitset.c.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "waitset.h"

/* ---- members ------------------------------------------------------- */

static size_t tag_hash(const shmbus_waitset_t *ws, uint64_t tag)
{
	return (size_t)((tag * 0x9E3779B97F4A7C15ull) >> 17) & (ws->nbuckets - 1);
}

static struct ws_member *find(const shmbus_waitset_t *ws, uint64_t tag)
{
	struct ws_member *m;

	for (m = ws->tags[tag_hash(ws, tag)]; m; m = m->tnext)
		if (m->tag == tag)
			return m;
	return NULL;
}

static int grow_tags(shmbus_waitset_t *ws)
{
	size_t nb = ws->nbuckets * 2, i;
	struct ws_member **old = ws->tags, *m, *nx;
	struct ws_member **t = calloc(nb, sizeof(*t));

	if (!t)
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	ws->tags = t;
	ws->nbuckets = nb;
	for (i = 0; i < nb / 2; i++)
		for (m = old[i]; m; m = nx) {
			size_t h = tag_hash(ws, m->tag);

			nx = m->tnext;
			m->tnext = t[h];
			t[h] = m;
		}
	free(old);
	return 0;
}

/* ---- the calls ----------------------------------------------------- */

int shmbus_waitset_new(shmbus_waitset_t **out)
{
	shmbus_waitset_t *ws;

	if (!out)
		return sb_err(SHMBUS_EINVAL, "shmbus_waitset_new: NULL argument");
	*out = NULL;
	ws = calloc(1, sizeof(*ws));
	if (!ws || !(ws->tags = calloc(64, sizeof(*ws->tags)))) {
		free(ws);
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	}
	ws->nbuckets = 64;
	ws->efd = -1;
	ws->policy = SHMBUS_WAIT_SPIN_PARK;
	pthread_mutex_init(&ws->mu, NULL);
	pthread_cond_init(&ws->cv, NULL);
	*out = ws;
	return 0;
}

static void drop_bus(shmbus_waitset_t *ws, struct ws_bus *wb)
{
	struct ws_bus **pp;

	for (pp = &ws->buses; *pp != wb; pp = &(*pp)->next)
		;
	*pp = wb->next;
	ws->nbuses--;
	/* seq_cst: the set stops listening; a waker that still sees the
	 * count rings for nobody, harmlessly. */
	if (wb->registered) {
		SB_STEP("waitset.drop_bus.sets");
		atomic_fetch_sub_explicit(&wb->bell->sets, 1, memory_order_seq_cst);
	}
	free(wb->map);
	free(wb);
}

int shmbus_waitset_free(shmbus_waitset_t *ws)
{
	struct ws_member *m, *nx;
	size_t i;

	if (!ws)
		return 0;
	pthread_mutex_lock(&ws->mu);
	if (ws->thr_started) {
		ws->stop = 1;
		sb_ws_bump_priv(ws);
		pthread_mutex_unlock(&ws->mu);
		pthread_join(ws->thr, NULL);
		pthread_mutex_lock(&ws->mu);
	}
	for (i = 0; i < ws->nbuckets; i++)
		for (m = ws->tags[i]; m; m = nx) {
			nx = m->tnext;
			free(m->scratch);
			free(m);
		}
	while (ws->buses)
		drop_bus(ws, ws->buses);
	pthread_mutex_unlock(&ws->mu);
	if (ws->efd >= 0)
		close(ws->efd);
	pthread_cond_destroy(&ws->cv);
	pthread_mutex_destroy(&ws->mu);
	free(ws->tags);
	free(ws->cand);
	free(ws);
	return 0;
}

/* The set's record of ch's bus, registered (sets++) if new. */
static int bus_of(shmbus_waitset_t *ws, const struct sb_chan *ch, struct ws_bus **out)
{
	struct ws_bus *wb;

	for (wb = ws->buses; wb; wb = wb->next)
		if (wb->bus == ch->bus) {
			*out = wb;
			return 0;
		}
	if (ws->nbuses >= WS_MAX_BUSES)
		return sb_err(SHMBUS_ENOSPC, "a wait set holds channels of at most %d buses",
		              WS_MAX_BUSES);
	wb = calloc(1, sizeof(*wb));
	if (!wb || !(wb->map = calloc(ch->bus->max_channels, sizeof(*wb->map)))) {
		free(wb);
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	}
	wb->bus = ch->bus;
	wb->bell = &ch->bus->hdr->bell;
	wb->nidx = ch->bus->max_channels;
	/* seq_cst: the store half of pair 1: registered before any member of
	 * this bus is checked; pairs with the waker's load of sets after its
	 * publication. */
	SB_STEP("waitset.register.sets");
	atomic_fetch_add_explicit(&wb->bell->sets, 1, memory_order_seq_cst);
	/* seq_cst: after the registration: every ring from here on is read. */
	wb->cursor = atomic_load_explicit(&wb->bell->head, memory_order_seq_cst);
	wb->registered = 1;
	wb->next = ws->buses;
	ws->buses = wb;
	ws->nbuses++;
	*out = wb;
	return 0;
}

static int add(shmbus_waitset_t *ws, void *h, int cond, uint64_t tag, uint64_t mark)
{
	const struct sb_chan *ch = h;  /* every handle starts with its sb_chan */
	struct ws_member *m;
	struct ws_bus *wb = NULL;
	uint32_t groups = 0;
	int r;

	if (!ws || !h)
		return sb_err(SHMBUS_EINVAL, "shmbus_waitset_add: NULL argument");
	m = calloc(1, sizeof(*m));
	if (!m)
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	m->tag = tag;
	m->cond = cond;
	m->h = h;
	m->ch = ch;
	m->mark = mark;
	m->group = -1;
	if (cond == SHMBUS_ON_MESSAGE || cond == SHMBUS_ON_END || cond == SHMBUS_ON_SPACE) {
		m->group = sb_queue_group(h, &groups);
		if (cond != SHMBUS_ON_SPACE && m->group < 0) {
			free(m);
			return sb_err(SHMBUS_ESTATE, "queue '%s': join a group before waiting for its messages",
			              ch->name);
		}
		if (cond == SHMBUS_ON_SPACE && !(m->scratch = calloc(groups, sizeof(uint64_t)))) {
			free(m);
			return sb_err(SHMBUS_ENOMEM, "out of memory");
		}
	}
	if (cond == SHMBUS_ON_TURN && sb_turn_party(h, &m->party) != 0) {
		free(m);
		return sb_err(SHMBUS_ESTATE, "turn '%s': register before adding it to a wait set",
		              ch->name);
	}
	pthread_mutex_lock(&ws->mu);
	r = find(ws, tag) ? sb_err(SHMBUS_EEXIST, "tag %llu is already in the wait set",
	                           (unsigned long long)tag) : 0;
	if (!r && ws->n >= ws->nbuckets)
		r = grow_tags(ws);
	if (!r)
		r = bus_of(ws, ch, &wb);
	if (!r && sb_ws_cand_add(ws, m) != 0)
		r = sb_err(SHMBUS_ENOMEM, "out of memory");
	if (r) {
		if (wb && wb->nmemb == 0)       /* registered for this member only */
			drop_bus(ws, wb);
		pthread_mutex_unlock(&ws->mu);
		free(m->scratch);
		free(m);
		return r;
	}
	m->wb = wb;
	wb->nmemb++;
	m->inext = wb->map[ch->index];   /* index < max_channels: checked at open */
	wb->map[ch->index] = m;
	m->tnext = ws->tags[tag_hash(ws, tag)];
	ws->tags[tag_hash(ws, tag)] = m;
	ws->n++;
	sb_ws_bump_priv(ws);
	pthread_mutex_unlock(&ws->mu);
	return 0;
}

int shmbus_waitset_add_state(shmbus_waitset_t *ws, shmbus_state_t *st, uint64_t after,
                             uint64_t tag)
{
	return add(ws, st, SHMBUS_ON_STATE, tag, after);
}

int shmbus_waitset_add_queue(shmbus_waitset_t *ws, shmbus_queue_t *q, int cond, uint64_t tag)
{
	if (cond != SHMBUS_ON_MESSAGE && cond != SHMBUS_ON_SPACE && cond != SHMBUS_ON_END)
		return sb_err(SHMBUS_EINVAL, "queue condition %d: use SHMBUS_ON_MESSAGE, _SPACE or _END",
		              cond);
	return add(ws, q, cond, tag, 0);
}

int shmbus_waitset_add_event(shmbus_waitset_t *ws, shmbus_event_t *e, uint64_t tag)
{
	return add(ws, e, SHMBUS_ON_EVENT, tag, 0);
}

int shmbus_waitset_add_lock(shmbus_waitset_t *ws, shmbus_lock_t *l, uint64_t tag)
{
	return add(ws, l, SHMBUS_ON_LOCK, tag, 0);
}

int shmbus_waitset_add_sem(shmbus_waitset_t *ws, shmbus_sem_t *s, uint64_t tag)
{
	return add(ws, s, SHMBUS_ON_SEM, tag, 0);
}

int shmbus_waitset_add_turn(shmbus_waitset_t *ws, shmbus_turn_t *t, uint64_t tag)
{
	return add(ws, t, SHMBUS_ON_TURN, tag, 0);
}

int shmbus_waitset_set_mark(shmbus_waitset_t *ws, uint64_t tag, uint64_t after)
{
	struct ws_member *m;
	int r = 0;

	if (!ws)
		return sb_err(SHMBUS_EINVAL, "wait set is NULL");
	pthread_mutex_lock(&ws->mu);
	m = find(ws, tag);
	if (!m)
		r = sb_err(SHMBUS_ENOENT, "no tag %llu in the wait set", (unsigned long long)tag);
	else if (m->cond != SHMBUS_ON_STATE)
		r = sb_err(SHMBUS_EINVAL, "tag %llu is not a state member", (unsigned long long)tag);
	else {
		m->mark = after;
		if (sb_ws_cand_add(ws, m) != 0)
			r = sb_err(SHMBUS_ENOMEM, "out of memory");
		sb_ws_bump_priv(ws);
	}
	pthread_mutex_unlock(&ws->mu);
	return r;
}

int shmbus_waitset_remove(shmbus_waitset_t *ws, uint64_t tag)
{
	struct ws_member *m, **pp;
	struct ws_bus *wb;
	size_t i;

	if (!ws)
		return sb_err(SHMBUS_EINVAL, "wait set is NULL");
	pthread_mutex_lock(&ws->mu);
	m = find(ws, tag);
	if (!m) {
		pthread_mutex_unlock(&ws->mu);
		return sb_err(SHMBUS_ENOENT, "no tag %llu in the wait set", (unsigned long long)tag);
	}
	for (pp = &ws->tags[tag_hash(ws, tag)]; *pp != m; pp = &(*pp)->tnext)
		;
	*pp = m->tnext;
	wb = m->wb;
	for (pp = &wb->map[m->ch->index]; *pp != m; pp = &(*pp)->inext)
		;
	*pp = m->inext;
	if (m->cand)
		for (i = 0; i < ws->ncand; i++)
			if (ws->cand[i] == m) {
				sb_ws_cand_drop(ws, i);
				break;
			}
	ws->n--;
	sb_ws_bump_priv(ws);
	if (--wb->nmemb == 0) {
		/* A parked thread still counts itself in the bus's sleepers:
		 * let it leave before the caller may close the bus. */
		ws->droppers++;
		while (ws->parkers)
			pthread_cond_wait(&ws->cv, &ws->mu);
		drop_bus(ws, wb);
		if (--ws->droppers == 0)
			pthread_cond_broadcast(&ws->cv);
	}
	pthread_mutex_unlock(&ws->mu);
	free(m->scratch);
	free(m);
	return 0;
}

size_t shmbus_waitset_size(const shmbus_waitset_t *ws)
{
	/* The set only looks: its mutex is taken to read n whole, and left
	 * as it was. */
	pthread_mutex_t *mu = (pthread_mutex_t *)&ws->mu;
	size_t n;

	if (!ws)
		return 0;
	pthread_mutex_lock(mu);
	n = ws->n;
	pthread_mutex_unlock(mu);
	return n;
}

int shmbus_waitset_set_wait(shmbus_waitset_t *ws, int policy, int64_t spin_ns)
{
	if (!ws)
		return sb_err(SHMBUS_EINVAL, "wait set is NULL");
	if (policy != SHMBUS_WAIT_SPIN_PARK && policy != SHMBUS_WAIT_SPIN &&
	    policy != SHMBUS_WAIT_PARK)
		return sb_err(SHMBUS_EINVAL, "wait policy %d: use SHMBUS_WAIT_SPIN_PARK, _SPIN or _PARK",
		              policy);
	if (spin_ns < 0)
		return sb_err(SHMBUS_EINVAL, "spin_ns %lld is negative", (long long)spin_ns);
	pthread_mutex_lock(&ws->mu);
	ws->policy = policy;
	ws->spin_ns = spin_ns;
	ws->policy_set = 1;
	pthread_mutex_unlock(&ws->mu);
	return 0;
}

int shmbus_waitset_wait(shmbus_waitset_t *ws, int64_t timeout_ns, uint64_t *ready, size_t cap,
                        size_t *n)
{
	uint64_t v;
	int r;

	if (n)
		*n = 0;
	if (!ws || !n || !ready || cap == 0)
		return sb_err(SHMBUS_EINVAL, "shmbus_waitset_wait: NULL argument or cap 0");
	pthread_mutex_lock(&ws->mu);
	if (ws->n == 0 && timeout_ns < 0) {
		pthread_mutex_unlock(&ws->mu);
		return sb_err(SHMBUS_EINVAL, "the wait set is empty and the wait has no timeout");
	}
	if (ws->efd >= 0) {
		/* Re-arm: the fd reads empty until the thread finds a member
		 * ready again (it looks again now). */
		while (read(ws->efd, &v, sizeof(v)) > 0)
			;
		ws->signalled = 0;
		sb_ws_bump_priv(ws);
	}
	r = sb_ws_wait_locked(ws, timeout_ns, ws->policy, ws->spin_ns, ready, cap, n, 0);
	pthread_mutex_unlock(&ws->mu);
	if (r == SHMBUS_ETIMEDOUT)
		return sb_err(r, "no member of the wait set was ready within the timeout");
	if (r == SHMBUS_EINTR)
		return sb_err(r, "interrupted while waiting on a wait set");
	return r;
}

/* ---- the fd --------------------------------------------------------- */

static void *fd_main(void *arg)
{
	shmbus_waitset_t *ws = arg;
	uint64_t one = 1;
	uint32_t pw;
	size_t n = 0;
	int r;

	pthread_mutex_lock(&ws->mu);
	while (!ws->stop) {
		if (ws->signalled) {
			/* seq_cst: read under the mutex; pairs with bump_priv
			 * (made under it too) of the next wait, so the sleep
			 * below cannot miss that wait's re-arm. */
			pw = atomic_load_explicit(&ws->priv, memory_order_seq_cst);
			pthread_mutex_unlock(&ws->mu);
			sb_ws_futex_wait_private(&ws->priv, pw, -1);
			pthread_mutex_lock(&ws->mu);
			continue;
		}
		/* Never reports, never moves a mark: only counts. */
		/* The thread parks at once unless the set's policy was
		 * chosen (shmbus_waitset_set_wait): a thread spinning beside
		 * an event loop saves it a wake-up on an idle machine but
		 * competes with it for the CPUs on a busy one. */
		r = sb_ws_wait_locked(ws, -1, ws->policy_set ? ws->policy : SHMBUS_WAIT_PARK,
		                      ws->spin_ns, NULL, 0, &n, 1);
		if (r == 0 && !ws->stop) {
			ws->signalled = 1;
			if (write(ws->efd, &one, sizeof(one)) < 0) {
				/* EAGAIN: the counter is full, so it is readable. */
			}
		} else if (r < 0 && !ws->stop) {
			/* A failed sleep (futex_waitv refused): look again
			 * after a slice, not in a busy loop. seq_cst: read
			 * under the mutex, so a change (bump_priv) made after
			 * it ends the sleep at once. */
			pw = atomic_load_explicit(&ws->priv, memory_order_seq_cst);
			pthread_mutex_unlock(&ws->mu);
			sb_ws_futex_wait_private(&ws->priv, pw, SB_WAIT_SLICE_NS);
			pthread_mutex_lock(&ws->mu);
		}
	}
	pthread_mutex_unlock(&ws->mu);
	return NULL;
}

int shmbus_waitset_fd(shmbus_waitset_t *ws, int *fd)
{
	int r = 0;

	if (!ws || !fd)
		return sb_err(SHMBUS_EINVAL, "shmbus_waitset_fd: NULL argument");
	pthread_mutex_lock(&ws->mu);
	if (ws->efd < 0) {
		ws->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (ws->efd < 0)
			r = sb_err_sys(errno, "eventfd");
		else {
			sigset_t all, old;

			/* The thread takes no asynchronous signal (a Ctrl+C
			 * must reach the program's own threads), but keeps the
			 * faults: a SIGBUS from a truncated bus is handled
			 * (sigbus.c), and a blocked fault would kill. */
			sigfillset(&all);
			sigdelset(&all, SIGBUS);
			sigdelset(&all, SIGSEGV);
			sigdelset(&all, SIGFPE);
			sigdelset(&all, SIGILL);
			pthread_sigmask(SIG_SETMASK, &all, &old);
			r = pthread_create(&ws->thr, NULL, fd_main, ws);
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			if (r != 0) {
				r = sb_err_sys(r, "wait set thread");
				close(ws->efd);
				ws->efd = -1;
			} else
				ws->thr_started = 1;
		}
	}
	if (!r)
		*fd = ws->efd;
	pthread_mutex_unlock(&ws->mu);
	return r;
}

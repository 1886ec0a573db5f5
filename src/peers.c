/*
 * peers.c -- who is attached to a bus, and whether a process still lives.
 *
 * A process is named by a 64-bit token: its pid (as its own pid namespace
 * numbers it) in the low half and 30 random bits, never all zero, above.
 * Tokens are stored wherever a process owns something in shared memory
 * (the peer table, a state writer role, queue claims and memberships,
 * locks); any peer that finds an owner's token dead may take over what it
 * held.
 *
 * Liveness does not rest on the pid: a pid means nothing in another pid
 * namespace (two containers sharing /dev/shm each have a pid 1), and a
 * dead process's pid may be reused. Instead every open bus handle keeps a
 * file description of the bus's file of its own (not the one it mapped:
 * a mapping keeps its description alive in fork children) and holds an
 * OFD read lock (fcntl F_OFD_SETLK) on one byte named by its process's
 * token, far past the end of the file (live_byte). The kernel drops the lock when the last
 * descriptor of that description closes, that is when the process exits or
 * is killed, whatever namespace it runs in. Any process, in any namespace,
 * asks the kernel whether someone holds that byte (F_OFD_GETLK): a held
 * byte means alive; a free one, dead. A pid reused by a new process cannot
 * revive a token: the new process has other random bits and holds another
 * byte. Distinct tokens map to distinct bytes (the token is below 2^62).
 *
 * fork shares descriptions with the child. A child must not keep its
 * parent looking alive, so a pthread_atfork child handler gives each
 * inherited handle a new description of the same file (reopened through
 * /proc/self/fd) with a lock on the child's own, new token. (A child
 * made by a raw clone system call that bypasses the C library's fork keeps
 * the parent's description, and so the parent looks alive while it runs.)
 *
 * The peer table is a fixed array of one-line slots; a slot is claimed by
 * CAS from 0 to the caller's token and freed by storing 0. The handle's
 * lock is taken before the slot is claimed and dropped after it is freed,
 * so a live peer's slot never looks dead.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Liveness bytes start here: beyond any segment, so no lock ever covers
 * the data, and below OFFSET_MAX for every token (tokens are < 2^62). */
#define SB_LIVE_BASE (1ll << 62)
#define SB_TOKEN_RAND_BITS 30

static off_t live_byte(uint64_t token)
{
	return (off_t)(SB_LIVE_BASE + (int64_t)token);
}

/* Field 22 of /proc/self/stat (clock ticks since boot), for display. */
static uint64_t self_start_time(void)
{
	char buf[1024], *p;
	ssize_t n;
	int fd, field;

	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and parentheses; the
	 * fields after it start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	for (field = 2; field < 22 && *p; p++)
		if (*p == ' ')
			field++;
	return strtoull(p, NULL, 10);
}

/* This process's token; 0 until made, and again in a fork child until the
 * atfork handler (or the pid check in sb_self_token) makes a new one. */
static _Atomic uint64_t self_token;

static uint64_t new_token(pid_t pid)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)(sb_now_ns() ^ (sb_now_ns() >> 29) ^ ((uint64_t)pid << 7));
	r &= (1u << SB_TOKEN_RAND_BITS) - 1;
	if (r == 0)
		r = 1;
	return (uint64_t)(uint32_t)pid | ((uint64_t)r << 32);
}

uint64_t sb_self_token(void)
{
	pid_t pid = getpid();
	/* relaxed: the token is this process's own constant; a racing
	 * thread's CAS below decides which new token wins. */
	uint64_t t = atomic_load_explicit(&self_token, memory_order_relaxed);

	/* The pid check catches a child made without the atfork handler. */
	while (t == 0 || (uint32_t)t != (uint32_t)pid) {
		uint64_t fresh = new_token(pid);

		if (atomic_compare_exchange_strong_explicit(&self_token, &t, fresh,
		                                            memory_order_relaxed,
		                                            memory_order_relaxed))
			return fresh;
	}
	return t;
}

/* ---- liveness locks ------------------------------------------------- */

/* Open handles of this process, so a fork child can fix them. */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static shmbus_bus_t *live_list;
static pthread_once_t live_once = PTHREAD_ONCE_INIT;

static int lock_byte(int fd, uint64_t token)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_RDLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = live_byte(token);
	fl.l_len = 1;
	return fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : errno;
}

static void live_prepare(void)
{
	pthread_mutex_lock(&live_mu);
}

static void live_parent(void)
{
	pthread_mutex_unlock(&live_mu);
}

/* In the fork child (one thread, live_mu held since live_prepare): each
 * inherited handle's descriptor still refers to the parent's description,
 * which carries the parent's lock. Point it at a new description of the
 * same file and lock the child's own byte there. */
static void live_child(void)
{
	uint64_t me = new_token(getpid());
	shmbus_bus_t *b;
	char path[64];
	int fd;

	/* relaxed: single-threaded here. */
	atomic_store_explicit(&self_token, me, memory_order_relaxed);
	for (b = live_list; b; b = b->live_next) {
		if (b->live_fd < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", b->live_fd);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd >= 0 && dup3(fd, b->live_fd, O_CLOEXEC) >= 0) {
			close(fd);
			lock_byte(b->live_fd, me);
			continue;
		}
		/* No /proc: drop the parent's description all the same; this
		 * handle then judges every owner alive (never wrongly dead). */
		if (fd >= 0)
			close(fd);
		close(b->live_fd);
		b->live_fd = -1;
	}
	pthread_mutex_unlock(&live_mu);
}

static void live_init(void)
{
	pthread_atfork(live_prepare, live_parent, live_child);
}

int sb_live_open(shmbus_bus_t *bus, const char *path, const struct stat *mapped)
{
	struct stat st;
	int fd, e;

	pthread_once(&live_once, live_init);
	/* Under live_mu: a fork cannot copy the descriptor between its open
	 * and the handle joining the list the child handler walks. */
	pthread_mutex_lock(&live_mu);
	fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		pthread_mutex_unlock(&live_mu);
		return sb_err_sys(e, "bus '%s': opening %s for its liveness lock", bus->name, path);
	}
	if (fstat(fd, &st) != 0 || st.st_dev != mapped->st_dev || st.st_ino != mapped->st_ino) {
		close(fd);
		pthread_mutex_unlock(&live_mu);
		return sb_err(SHMBUS_ENOENT, "bus '%s': %s was replaced while being opened",
		              bus->name, path);
	}
	e = lock_byte(fd, sb_self_token());
	if (e) {
		close(fd);
		pthread_mutex_unlock(&live_mu);
		return sb_err_sys(e, "bus '%s': taking its liveness lock (fcntl F_OFD_SETLK on %s)",
		                  bus->name, path);
	}
	bus->live_fd = fd;
	bus->live_next = live_list;
	live_list = bus;
	pthread_mutex_unlock(&live_mu);
	return 0;
}

void sb_live_close(shmbus_bus_t *bus)
{
	shmbus_bus_t **p;

	pthread_mutex_lock(&live_mu);
	for (p = &live_list; *p; p = &(*p)->live_next)
		if (*p == bus) {
			*p = bus->live_next;
			break;
		}
	if (bus->live_fd >= 0)
		close(bus->live_fd);
	bus->live_fd = -1;
	pthread_mutex_unlock(&live_mu);
}

int sb_token_alive(const shmbus_bus_t *bus, uint64_t token)
{
	struct flock fl;

	if (token == 0 || token >= (uint64_t)SB_LIVE_BASE)
		return 0;
	/* Our own lock is invisible through our own description. */
	if (token == sb_self_token())
		return 1;
	if (bus->live_fd < 0)
		return 1;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = live_byte(token);
	fl.l_len = 1;
	if (fcntl(bus->live_fd, F_OFD_GETLK, &fl) != 0)
		return 1;       /* cannot tell: never take over from the living */
	return fl.l_type != F_UNLCK;
}

/* The attach time is written after the claiming CAS (it cannot be written
 * before: the slot is not ours yet), so a reader that sees our token may
 * still find the previous owner's time. A one-word seqlock tells them
 * apart: stamp names the token the time belongs to and reads 0 while the
 * time changes. */
static void stamp_attach(struct sb_peer *p, uint64_t me)
{
	/* relaxed + release fence: the stamp is void before the time
	 * changes; pairs with the acquire fence in shmbus_bus_peers (a reader
	 * that copied our new time then re-reads a void or new stamp). */
	atomic_store_explicit(&p->stamp, 0, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	/* relaxed (both): ordered by the fence above and the release below. */
	atomic_store_explicit(&p->attach_time_ns, sb_realtime_ns(), memory_order_relaxed);
	atomic_store_explicit(&p->start_time, self_start_time(), memory_order_relaxed);
	/* release: the time is complete before the stamp names us; pairs
	 * with the acquire load of the stamp in shmbus_bus_peers. */
	atomic_store_explicit(&p->stamp, me, memory_order_release);
}

int sb_peer_register(shmbus_bus_t *bus)
{
	uint64_t me = sb_self_token();
	int pass;
	uint32_t i;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < bus->max_peers; i++) {
			uint64_t expect = 0;

			/* acq_rel: claims the slot; the acquire pairs with the
			 * release that freed it (sb_peer_unregister or
			 * sb_peer_reap), so the slot's last owner is done. */
			SB_STEP("peers.register.token");
			if (atomic_compare_exchange_strong_explicit(
				    &bus->peers[i].token, &expect, me,
				    memory_order_acq_rel, memory_order_relaxed)) {
				stamp_attach(&bus->peers[i], me);
				bus->peer_slot = (int32_t)i;
				bus->token = me;
				return 0;
			}
		}
		/* Scan again even if we reaped nothing: a peer reaping at the
		 * same moment may have freed the slots our CASes found gone. */
		if (pass == 0)
			sb_peer_reap(bus);
	}
	return sb_err(SHMBUS_ENOSPC, "bus '%s': peer table full (%u processes attached)",
	              bus->name, bus->max_peers);
}

void sb_peer_unregister(shmbus_bus_t *bus)
{
	uint64_t expect = bus->token;

	if (bus->peer_slot < 0)
		return;
	if (sb_inherited(bus->token)) {
		bus->peer_slot = -1;
		return;
	}
	/* release: our last writes to the slot happen before it is free. */
	SB_STEP("peers.peer_unregister.token");
	atomic_compare_exchange_strong_explicit(&bus->peers[bus->peer_slot].token,
	                                        &expect, 0, memory_order_release,
	                                        memory_order_relaxed);
	bus->peer_slot = -1;
}

uint32_t sb_peer_reap(shmbus_bus_t *bus)
{
	uint32_t i, reaped = 0;

	for (i = 0; i < bus->max_peers; i++) {
		/* relaxed: only the token's value matters; the CAS below
		 * settles races with a concurrent reaper or re-registration. */
		uint64_t t = atomic_load_explicit(&bus->peers[i].token,
		                                  memory_order_relaxed);

		if (t == 0 || sb_token_alive(bus, t))
			continue;
		/* release: frees the slot for a new registrant's CAS. */
		SB_STEP("peers.reap.token");
		if (atomic_compare_exchange_strong_explicit(
			    &bus->peers[i].token, &t, 0, memory_order_release,
			    memory_order_relaxed))
			reaped++;
	}
	return reaped;
}

/* The attach time of token t's registration in slot p, or 0 if the slot
 * does not (yet, or any more) hold a time stamped for t. */
static uint64_t attach_of(struct sb_peer *p, uint64_t t)
{
	/* acquire: pairs with the release store of the stamp in
	 * stamp_attach: the time stamped for t is complete. */
	uint64_t s1 = atomic_load_explicit(&p->stamp, memory_order_acquire);
	/* relaxed: validated by the stamp's re-read. */
	uint64_t a = atomic_load_explicit(&p->attach_time_ns, memory_order_relaxed);
	uint64_t s2;

	/* acquire fence: pairs with the release fence in stamp_attach; if
	 * the time we copied is a newer owner's, the re-read sees its void
	 * (or new) stamp. */
	atomic_thread_fence(memory_order_acquire);
	/* relaxed: ordered by the fence above. */
	s2 = atomic_load_explicit(&p->stamp, memory_order_relaxed);
	return s1 == t && s2 == t ? a : 0;
}

int shmbus_bus_peers(const shmbus_bus_t *bus, shmbus_peer_info_t *peers, size_t cap,
                     size_t *count)
{
	size_t n = 0;
	uint32_t i;

	if (!bus || (!peers && cap) || !count)
		return sb_err(SHMBUS_EINVAL, "shmbus_bus_peers: NULL argument");
	for (i = 0; i < bus->max_peers; i++) {
		/* relaxed: the token is self-contained; the attach time is
		 * validated by its own stamp below. */
		uint64_t t = atomic_load_explicit(&bus->peers[i].token,
		                                  memory_order_relaxed);

		if (t == 0)
			continue;
		if (n < cap) {
			peers[n].pid = sb_token_pid(t);
			peers[n].alive = (uint32_t)sb_token_alive(bus, t);
			/* relaxed: for display, like the attach time; a slot
			 * caught changing owner may show the old owner's. */
			peers[n].start_time = atomic_load_explicit(&bus->peers[i].start_time,
			                                          memory_order_relaxed);
			peers[n].attach_time_ns = attach_of(&bus->peers[i], t);
		}
		n++;
	}
	*count = n;
	return 0;
}

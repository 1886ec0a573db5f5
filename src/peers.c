/*
 * peers.c -- who is attached to a bus, and whether a process still lives.
 *
 * A process is named by a 64-bit token: its pid in the low half and the low
 * 32 bits of its start time (clock ticks since boot, /proc/PID/stat field
 * 22) in the high half. A pid that was reused by a new process has another
 * start time, so a stale token is never mistaken for a live one. A zombie
 * whose threads are all gone is dead too. Tokens are
 * stored wherever a process owns something in shared memory (the peer
 * table, a state writer role, queue claims and memberships, locks); any
 * peer that finds an owner's token dead may take over what it held.
 *
 * The peer table is a fixed array of one-line slots; a slot is claimed by
 * CAS from 0 to the caller's token and freed by storing 0.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Field 22 of /proc/PID/stat; 0 when it cannot be read. *state gets
 * field 3 (R, S, D, Z for a zombie, X for dead, ...), or 0. */
static uint64_t proc_start_time(pid_t pid, char *state)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd, field;

	*state = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
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
	if (p[1] == ' ')
		*state = p[2];
	for (field = 2; field < 22 && *p; p++)
		if (*p == ' ')
			field++;
	return strtoull(p, NULL, 10);
}

/* 1 if the process has a thread besides its main one (/proc/PID/task). */
static int other_threads(pid_t pid)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while (!found && (e = readdir(d)) != NULL)
		found = e->d_name[0] != '.' && atoi(e->d_name) != pid;
	closedir(d);
	return found;
}

static uint64_t make_token(pid_t pid, uint64_t start)
{
	return (uint64_t)(uint32_t)pid | ((start & 0xffffffffull) << 32);
}

uint64_t sb_self_token(void)
{
	static _Thread_local pid_t cached_pid;
	static _Thread_local uint64_t cached;
	pid_t pid = getpid();

	/* Recomputed after fork: the child is another process. */
	if (cached_pid != pid) {
		char state;

		cached = make_token(pid, proc_start_time(pid, &state));
		cached_pid = pid;
	}
	return cached;
}

int sb_token_alive(uint64_t token)
{
	pid_t pid = (pid_t)sb_token_pid(token);
	uint64_t start;
	char state;

	if (pid <= 0)
		return 0;
	if (kill(pid, 0) != 0 && errno == ESRCH)
		return 0;
	start = proc_start_time(pid, &state);
	if (start == 0)         /* exists but unreadable: assume alive */
		return 1;
	if (make_token(pid, start) != token)
		return 0;
	/* A zombie (killed or exited, not yet reaped by its parent) will
	 * never run again: what it held is free now. Its parent may be the
	 * very process blocked waiting for it, unable to reap it until the
	 * wait ends. A main thread that ended with pthread_exit also shows
	 * as a zombie while the process's other threads run on. */
	if ((state == 'Z' || state == 'X' || state == 'x') && !other_threads(pid))
		return 0;
	return 1;
}

int sb_peer_register(shmbus_bus_t *bus)
{
	uint64_t me = sb_self_token();
	int pass;
	uint32_t i;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < bus->max_peers; i++) {
			uint64_t expect = 0;

			/* acq_rel: claims the slot; the release pairs with the
			 * acquire load in shmbus_bus_peers() that reads
			 * attach_time_ns after seeing the token. */
			SB_STEP("peers.register.token");
			if (atomic_compare_exchange_strong_explicit(
				    &bus->peers[i].token, &expect, me,
				    memory_order_acq_rel, memory_order_relaxed)) {
				bus->peers[i].attach_time_ns = sb_realtime_ns();
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

		if (t == 0 || sb_token_alive(t))
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

int shmbus_bus_peers(shmbus_bus_t *bus, shmbus_peer_info_t *peers, size_t cap,
                     size_t *count)
{
	size_t n = 0;
	uint32_t i;

	if (!bus || (!peers && cap) || !count)
		return sb_err(SHMBUS_EINVAL, "shmbus_bus_peers: NULL argument");
	for (i = 0; i < bus->max_peers; i++) {
		/* acquire: pairs with the claiming CAS in sb_peer_register. */
		uint64_t t = atomic_load_explicit(&bus->peers[i].token,
		                                  memory_order_acquire);

		if (t == 0)
			continue;
		if (n < cap) {
			peers[n].pid = sb_token_pid(t);
			peers[n].alive = (uint32_t)sb_token_alive(t);
			peers[n].start_time = t >> 32;
			peers[n].attach_time_ns = bus->peers[i].attach_time_ns;
		}
		n++;
	}
	*count = n;
	return 0;
}

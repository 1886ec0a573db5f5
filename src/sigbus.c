/*
 * sigbus.c -- turning SIGBUS on a truncated bus mapping into an error.
 *
 * A peer (or an operator) may truncate a segment file while others have it
 * mapped; the pages past the new end then raise SIGBUS on access. We keep
 * a small lock-free registry of the library's mappings. The handler looks
 * the faulting address up: inside one of ours, it marks the mapping
 * damaged and maps anonymous zero pages over it from the faulting page to
 * its end (MAP_FIXED), so the faulting instruction resumes and reads zeros;
 * every entry point that tests sb_map_damaged() then returns
 * SHMBUS_ECORRUPT, and values copied from zero pages are never handed out
 * as good (the state read path tests the mark after its copy). Outside our
 * mappings the previous disposition applies: the old handler is called, or
 * the default is restored and the instruction faults again and kills the
 * process as it would have without us.
 *
 * The registry has a fixed number of slots (a process rarely maps more than
 * a few buses); when it is full, a bus is still opened but not protected.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "sigbus.h"

#define SB_MAPS 256

struct sb_map {
	_Atomic(uintptr_t) base;   /* 0: free slot */
	_Atomic(uintptr_t) size;
	_Atomic uint32_t damaged;
};

static struct sb_map maps[SB_MAPS];
static struct sigaction old_action;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_error;
static uintptr_t page_size;
_Atomic uint32_t sb_maps_damaged;

static void handler(int sig, siginfo_t *si, void *uctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	uintptr_t pg = page_size;
	int i, saved = errno;

	for (i = 0; i < SB_MAPS; i++) {
		/* acquire: pairs with the release in sb_map_register; size is
		 * stored before base. */
		uintptr_t b = atomic_load_explicit(&maps[i].base, memory_order_acquire);
		uintptr_t n = atomic_load_explicit(&maps[i].size, memory_order_relaxed);
		uintptr_t from;

		if (b <= 1 || a < b || a - b >= n)
			continue;
		from = a & ~(uintptr_t)(pg - 1);
		/* seq_cst: the marks are visible before the pages change (see
		 * sb_map_damaged). */
		atomic_store(&maps[i].damaged, 1);
		atomic_store(&sb_maps_damaged, 1);
		if (mmap((void *)from, b + n - from, PROT_READ | PROT_WRITE,
		         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
			errno = saved;
			return;
		}
		break;          /* cannot repair: fall through to the default */
	}
	if (old_action.sa_flags & SA_SIGINFO) {
		if (old_action.sa_sigaction) {
			old_action.sa_sigaction(sig, si, uctx);
			errno = saved;
			return;
		}
	} else if (old_action.sa_handler != SIG_DFL && old_action.sa_handler != SIG_IGN) {
		old_action.sa_handler(sig);
		errno = saved;
		return;
	}
	/* Not ours: restore the default; the access faults again and the
	 * process ends the way it would have without this library. */
	signal(SIGBUS, SIG_DFL);
	errno = saved;
}

static void install(void)
{
	struct sigaction sa;

	page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &old_action) != 0)
		install_error = errno;
}

int sb_map_register(void *base, uint64_t size)
{
	int i;

	pthread_once(&once, install);
	if (install_error)
		return sb_err_sys(install_error, "installing the SIGBUS handler");
	for (i = 0; i < SB_MAPS; i++) {
		uintptr_t expect = 0;

		/* acquire/relaxed: 1 reserves the slot while we fill it; the
		 * handler skips it. */
		if (!atomic_compare_exchange_strong_explicit(&maps[i].base, &expect, 1,
		                                             memory_order_acquire,
		                                             memory_order_relaxed))
			continue;
		/* relaxed: published by the release store of base below. */
		atomic_store_explicit(&maps[i].size, (uintptr_t)size, memory_order_relaxed);
		atomic_store_explicit(&maps[i].damaged, 0, memory_order_relaxed);
		/* release: size is set before the handler can match base;
		 * pairs with the acquire load in handler(). */
		atomic_store_explicit(&maps[i].base, (uintptr_t)base, memory_order_release);
		return 0;
	}
	return 0;               /* full: mapped but unprotected */
}

void sb_map_unregister(void *base)
{
	int i;

	/* relaxed: only this process registers its own base, so a match is
	 * ours; the release store below frees the slot. */
	for (i = 0; i < SB_MAPS; i++)
		if (atomic_load_explicit(&maps[i].base, memory_order_relaxed) == (uintptr_t)base) {
			/* release: the slot is free only after its last use. */
			atomic_store_explicit(&maps[i].base, 0, memory_order_release);
			return;
		}
}

int sb_map_damaged_slow(const void *base)
{
	int i;

	/* acquire: pairs with the release store of base at registration;
	 * damaged is set by the handler in this same process. */
	for (i = 0; i < SB_MAPS; i++)
		if (atomic_load_explicit(&maps[i].base, memory_order_acquire) == (uintptr_t)base)
			return (int)atomic_load_explicit(&maps[i].damaged, memory_order_relaxed);
	return 0;
}

void sb_map_mark_damaged(const void *base)
{
	int i;

	/* acquire: pairs with the release store of base at registration.
	 * seq_cst stores of the marks, as in the handler. */
	for (i = 0; i < SB_MAPS; i++)
		if (atomic_load_explicit(&maps[i].base, memory_order_acquire) == (uintptr_t)base) {
			atomic_store(&maps[i].damaged, 1);
			atomic_store(&sb_maps_damaged, 1);
			return;
		}
}

/*
 * create_publish_open.c -- a bus is open to every process from the moment
 * its name appears: a creator stopped between publishing the name (link)
 * and closing its build descriptor must not keep others out.
 *
 * The creator marks its temporary file with a kernel lock while it builds
 * (so gc can tell a live creator's file from a dead one's, in any pid
 * namespace), and every opener takes a liveness lock on the same file.
 * The two locks once overlapped, and an open that came in that moment
 * failed ("taking its liveness lock ... Resource temporarily
 * unavailable"). Here the creator stops itself at that very step (the
 * kill-point hook), so the moment is not left to the scheduler.
 */
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "testutil.h"
#include "faultinject.h"

#define MAXSTEPS 64

int main(void)
{
	const char *name = test_bus_name("cpo");
	const char **names;
	shmbus_bus_t *b;
	long n = 0, i;
	pid_t pid;
	int status;

	names = mmap(NULL, MAXSTEPS * sizeof(*names), PROT_READ | PROT_WRITE,
	             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(names != MAP_FAILED, "mmap");

	/* Which step of shmbus_bus_create comes right after the publication? */
	pid = fork();
	if (pid == 0) {
		sb_fault_trace(names, MAXSTEPS);
		sb_fault_arm(0, SIGKILL);
		_exit(shmbus_bus_create(name, NULL, &b) == 0 ? 0 : 1);
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "counting create's steps: status %d", status);
	for (i = 0; i < MAXSTEPS && names[i]; i++)
		if (strcmp(names[i], "bus.create.published") == 0)
			n = i + 1;
	CHECK(n > 0, "create has no step 'bus.create.published'");
	OK(shmbus_bus_unlink(name));

	/* A creator stopped there; another process opens the bus meanwhile. */
	pid = fork();
	if (pid == 0) {
		sb_fault_arm(n, SIGSTOP);
		_exit(shmbus_bus_create(name, NULL, &b) == 0 ? 0 : 1);
	}
	CHECK(waitpid(pid, &status, WUNTRACED) == pid && WIFSTOPPED(status),
	      "the creator did not stop at step %ld (status %d)", n, status);
	{
		int r = shmbus_bus_open(name, NULL, &b);

		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		CHECK(r == 0, "open while the creator sits between link and close: %s (%s)",
		      shmbus_strerror(r), shmbus_last_error());
	}
	OK(shmbus_bus_close(b));
	OK(shmbus_bus_unlink(name));
	printf("create_publish_open: ok (creator stopped at step %ld of create)\n", n);
	return 0;
}

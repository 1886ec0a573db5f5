/*
 * test_persist.c -- file-backed buses keep their contents when every
 * process has exited, and a file bus that outlived the kernel that made it
 * (simulated: another boot id and a directory mutex that looks held by a
 * thread of the old boot) is recovered on open instead of hanging.
 */
#include <sys/wait.h>

#include "internal.h"
#include "testutil.h"

static char name[256], path[200];

static int child_write(double value)
{
	shmbus_bus_t *b;
	shmbus_state_t *st;
	shmbus_state_opts_t o;
	double v[2] = {value, -value};

	if (shmbus_bus_open_or_create(name, NULL, &b, NULL))
		return 10;
	shmbus_state_opts_init(&o);
	o.ndim = 1;
	o.shape[0] = 2;
	if (shmbus_state_open(b, "saved", &o, &st))
		return 11;
	if (shmbus_state_write(st, v, sizeof(v)))
		return 12;
	shmbus_state_close(st);
	shmbus_bus_close(b);
	return 0;
}

static void run_child(int (*fn)(double), double arg)
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(fn(arg));
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "child status %d", status);
}

static void read_back(double expect)
{
	shmbus_bus_t *b;
	shmbus_state_t *st;
	shmbus_state_opts_t o;
	double v[2];
	uint64_t seq;

	OK(shmbus_bus_open(name, NULL, &b));
	shmbus_state_opts_init(&o);
	o.create = 0;
	OK(shmbus_state_open(b, "saved", &o, &st));
	OK(shmbus_state_read(st, v, sizeof(v), &seq));
	CHECK(v[0] == expect && v[1] == -expect, "read back %g %g, expected %g", v[0], v[1], expect);
	shmbus_state_close(st);
	shmbus_bus_close(b);
}

int main(void)
{
	shmbus_bus_t *b;
	struct sb_header *h;

	snprintf(path, sizeof(path), "/tmp/shmbus-persist-%d.bus", (int)getpid());
	snprintf(name, sizeof(name), "file:%s", path);
	unlink(path);
	run_child(child_write, 3.25);
	read_back(3.25);               /* another process, after the writer exited */
	run_child(child_write, 4.5);   /* a restarted writer continues */
	read_back(4.5);

	/* Simulate a reboot: boot id differs, mutex held by a dead thread. */
	OK(shmbus_bus_open(name, NULL, &b));
	h = (struct sb_header *)b->base;
	atomic_store(&h->boot_hash, 12345);
	memset(&h->mutex, 0, sizeof(h->mutex));
	((volatile uint32_t *)(void *)&h->mutex)[0] = 999999; /* owner tid of the old boot */
	shmbus_bus_close(b);
	read_back(4.5);
	run_child(child_write, 5.75);  /* directory operations work again */
	read_back(5.75);
	OK(shmbus_bus_unlink(name));
	printf("test_persist: ok\n");
	return 0;
}

/*
 * test_perms.c -- modes, umasks and other users.
 *
 *   - under umask 0000 and 0077 a bus (in /dev/shm and `file:`) gets
 *     exactly the mode asked for (0600 by default, 0640, 0660, 0666);
 *   - another uid (65534, through setresuid in a child; root only, else
 *     SKIP) opening a 0600 bus gets SHMBUS_EPERM ("Permission denied")
 *     with a message naming the bus, its owner and mode, and this uid;
 *   - a name squatted by another uid (it created the bus first, mode 0666)
 *     is refused: create gives SHMBUS_EEXIST, open and open_or_create give
 *     SHMBUS_EPERM naming the squatter's uid; the same for a squatted file
 *     that is no segment at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>

#include "testutil.h"

#define OTHER 65534

static char dir[64];
static const char *names[3];

/* Whatever happens, leave nothing behind. */
static void cleanup(void)
{
	char p[128];
	size_t i;

	for (i = 0; i < 3; i++)
		if (names[i])
			shmbus_bus_unlink(names[i]);
	snprintf(p, sizeof(p), "%s/m.bus", dir);
	unlink(p);
	rmdir(dir);
}

static const char *shm_path(const char *name)
{
	static char p[256];

	snprintf(p, sizeof(p), "/dev/shm/shmbus-%s", name);
	return p;
}

static unsigned mode_of(const char *path)
{
	struct stat st;

	CHECK(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	return (unsigned)(st.st_mode & 07777);
}

static void test_modes_under_umask(void)
{
	static const unsigned masks[] = { 0000, 0077 };
	static const unsigned modes[] = { 0, 0600, 0640, 0660, 0666 };
	size_t i, j;
	int k;

	names[0] = test_bus_name("perm");
	for (i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		umask(masks[i]);
		for (j = 0; j < sizeof(modes) / sizeof(modes[0]); j++)
			for (k = 0; k < 2; k++) {
				char name[160];
				const char *path;
				shmbus_bus_opts_t o;
				shmbus_bus_t *b;
				unsigned want = modes[j] ? modes[j] : 0600;

				if (k == 0) {
					snprintf(name, sizeof(name), "%s", names[0]);
					path = shm_path(name);
				} else {
					snprintf(name, sizeof(name), "file:%s/m.bus", dir);
					path = name + 5;
				}
				shmbus_bus_opts_init(&o);
				o.size = 1 << 20;
				o.mode = modes[j];
				OK(shmbus_bus_create(name, &o, &b));
				CHECK(mode_of(path) == want, "umask 0%03o, mode 0%o asked: %s has 0%o",
				      masks[i], want, path, mode_of(path));
				OK(shmbus_bus_close(b));
				OK(shmbus_bus_open(name, NULL, &b));   /* and it opens */
				OK(shmbus_bus_close(b));
				OK(shmbus_bus_unlink(name));
			}
	}
	umask(022);
	printf("  umask 0000 and 0077: modes 0600 (default), 0640, 0660, 0666 exact, shm and file:\n");
}

/* Run fn as uid/gid OTHER in a child; its exit status. */
static int as_other(void (*fn)(const char *), const char *name)
{
	int status;
	pid_t pid = fork();

	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setresgid(OTHER, OTHER, OTHER) != 0 ||
		    setresuid(OTHER, OTHER, OTHER) != 0)
			_exit(77);
		fn(name);
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status), "child killed by signal %d", WTERMSIG(status));
	return WEXITSTATUS(status);
}

static void other_opens(const char *name)
{
	shmbus_bus_t *b;
	char uid[32];

	EXPECT_CODE(shmbus_bus_open(name, NULL, &b), SHMBUS_EPERM);
	snprintf(uid, sizeof(uid), "uid %d", OTHER);
	CHECK(strstr(shmbus_last_error(), "Permission denied") &&
	      strstr(shmbus_last_error(), name) && strstr(shmbus_last_error(), "0600") &&
	      strstr(shmbus_last_error(), "uid 0") && strstr(shmbus_last_error(), uid),
	      "message names the bus, its owner and mode, and us: %s", shmbus_last_error());
	printf("  other uid: %s\n", shmbus_last_error());
}

static void other_squats(const char *name)
{
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;

	shmbus_bus_opts_init(&o);
	o.size = 1 << 20;
	o.mode = 0666;
	OK(shmbus_bus_create(name, &o, &b));
	OK(shmbus_bus_close(b));
}

static void test_other_user(void)
{
	const char *name = test_bus_name("puser");
	const char *squat = test_bus_name("psquat");
	shmbus_bus_opts_t o;
	shmbus_bus_t *b;
	int created = -1, r, fd;

	names[1] = name;
	names[2] = squat;

	if (geteuid() != 0) {
		printf("  SKIP other-uid cases: not root\n");
		return;
	}
	/* Another uid opening our 0600 bus. */
	shmbus_bus_opts_init(&o);
	o.size = 1 << 20;
	OK(shmbus_bus_create(name, &o, &b));
	OK(shmbus_bus_close(b));
	r = as_other(other_opens, name);
	shmbus_bus_unlink(name);
	if (r == 77) {
		printf("  SKIP other-uid cases: cannot become uid %d\n", OTHER);
		return;
	}
	CHECK(r == 0, "other-uid child failed (exit %d)", r);

	/* A name squatted by another uid: a bus it made first. */
	CHECK(as_other(other_squats, squat) == 0, "squatter failed to create");
	EXPECT_CODE(shmbus_bus_create(squat, &o, &b), SHMBUS_EEXIST);
	EXPECT_CODE(shmbus_bus_open(squat, NULL, &b), SHMBUS_EPERM);
	CHECK(strstr(shmbus_last_error(), "65534"), "message names the squatter: %s",
	      shmbus_last_error());
	EXPECT_CODE(shmbus_bus_open_or_create(squat, &o, &b, &created), SHMBUS_EPERM);
	CHECK(created == 0, "open_or_create says created");
	CHECK(mode_of(shm_path(squat)) == 0666, "the squatter's file was changed");
	OK(shmbus_bus_unlink(squat));

	/* A squatted file that is no segment at all. */
	fd = open(shm_path(squat), O_RDWR | O_CREAT | O_EXCL, 0666);
	CHECK(fd >= 0 && fchown(fd, OTHER, OTHER) == 0 && fchmod(fd, 0666) == 0 &&
	      write(fd, "not a bus", 9) == 9, "making the squatted file");
	close(fd);
	EXPECT_CODE(shmbus_bus_create(squat, &o, &b), SHMBUS_EEXIST);
	EXPECT_CODE(shmbus_bus_open_or_create(squat, &o, &b, &created), SHMBUS_EPERM);
	CHECK(strstr(shmbus_last_error(), "65534"), "message names the squatter: %s",
	      shmbus_last_error());
	OK(shmbus_bus_unlink(squat));
	printf("  squatted name (a bus, and a plain file, of uid %d): create EEXIST, open and open_or_create EPERM\n",
	       OTHER);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("test_perms\n");
	snprintf(dir, sizeof(dir), "/tmp/shmbus-perm-%d", (int)getpid());
	CHECK(mkdir(dir, 0700) == 0, "mkdir %s", dir);
	atexit(cleanup);
	test_modes_under_umask();
	test_other_user();
	printf("test_perms: all passed\n");
	return 0;
}

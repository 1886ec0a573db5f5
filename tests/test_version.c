/*
 * test_version.c -- a segment of another layout version is refused with a
 * clear error and never read past its header, nor written.
 *
 * A bus is made, then its header's ABI version field (offset 8) is patched
 * to the previous layout's version, the next one, 0 and 0xffffffff. For
 * each: shmbus_bus_open (registered and SHMBUS_BUS_NO_PEER, as the CLI
 * opens), shmbus_bus_open_or_create and shmbus_bus_create give
 * SHMBUS_EVERSION or SHMBUS_EEXIST with a message naming both versions; the
 * file is byte for byte what it was (no peer registered, no mutex
 * recovered, nothing repaired); shmbus_list still lists it (it is not
 * mistaken for garbage to remove).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "testutil.h"

static const char *name;

static void cleanup(void)
{
	if (name)
		shmbus_bus_unlink(name);
}

static unsigned char *slurp(const char *path, size_t *n)
{
	struct stat st;
	unsigned char *p;
	int fd = open(path, O_RDONLY);

	CHECK(fd >= 0 && fstat(fd, &st) == 0, "open %s: %s", path, strerror(errno));
	p = malloc((size_t)st.st_size);
	CHECK(p && pread(fd, p, (size_t)st.st_size, 0) == st.st_size, "read %s", path);
	close(fd);
	*n = (size_t)st.st_size;
	return p;
}

static int seen;

static int find(const char *n, void *arg)
{
	seen += !strcmp(n, (const char *)arg);
	return 0;
}

int main(void)
{
	char path[256], want[64], ours[64];
	shmbus_bus_info_t bi = {.size_of = sizeof(bi)};
	shmbus_bus_opts_t o, np;
	shmbus_bus_t *b;
	shmbus_state_t *st;
	uint32_t ours_v, versions[4];
	unsigned char *before, *after;
	size_t n, m, i;
	double x = 1.5;
	int created, fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("test_version\n");
	name = test_bus_name("ver");
	atexit(cleanup);
	snprintf(path, sizeof(path), "/dev/shm/shmbus-%s", name);
	shmbus_bus_opts_init(&o);
	o.size = 1 << 20;
	shmbus_bus_opts_init(&np);
	np.flags = SHMBUS_BUS_NO_PEER;

	OK(shmbus_bus_create(name, &o, &b));
	OK(shmbus_bus_info(b, &bi));
	ours_v = bi.abi_version;
	OK(test_state_1d(b, "s", SHMBUS_FLOAT64, 1, &st));
	OK(shmbus_state_write(st, &x, sizeof(x)));
	shmbus_state_close(st);
	OK(shmbus_bus_close(b));
	versions[0] = ours_v - 1;
	versions[1] = ours_v + 1;
	versions[2] = 0;
	versions[3] = 0xffffffffu;
	snprintf(ours, sizeof(ours), "speaks %u", ours_v);

	for (i = 0; i < 4; i++) {
		fd = open(path, O_RDWR);
		CHECK(fd >= 0 && pwrite(fd, &versions[i], 4, 8) == 4, "patching the version");
		close(fd);
		before = slurp(path, &n);
		snprintf(want, sizeof(want), "ABI version %u", versions[i]);

		EXPECT_CODE(shmbus_bus_open(name, NULL, &b), SHMBUS_EVERSION);
		CHECK(strstr(shmbus_last_error(), want) && strstr(shmbus_last_error(), ours) &&
		      strstr(shmbus_last_error(), name),
		      "message names the bus and both versions: %s", shmbus_last_error());
		if (i == 0)
			printf("  %s\n", shmbus_last_error());
		EXPECT_CODE(shmbus_bus_open(name, &np, &b), SHMBUS_EVERSION);
		EXPECT_CODE(shmbus_bus_open_or_create(name, &o, &b, &created), SHMBUS_EVERSION);
		CHECK(created == 0, "open_or_create says it created");
		EXPECT_CODE(shmbus_bus_create(name, &o, &b), SHMBUS_EEXIST);
		EXPECT_CODE(shmbus_bus_wait_open(name, NULL, 1000000000ll, &b), SHMBUS_EVERSION);

		after = slurp(path, &m);
		CHECK(m == n && !memcmp(before, after, n),
		      "version %u: the segment was changed by the refused opens", versions[i]);
		free(before);
		free(after);
		seen = 0;
		OK(shmbus_list(find, (void *)name));
		CHECK(seen == 1, "version %u: the bus is not listed (%d)", versions[i], seen);
	}
	/* Patched back, it is a good bus again: the refusals left no trace. */
	fd = open(path, O_RDWR);
	CHECK(fd >= 0 && pwrite(fd, &ours_v, 4, 8) == 4, "patching the version back");
	close(fd);
	OK(shmbus_bus_open(name, NULL, &b));
	OK(shmbus_bus_info(b, &bi));
	CHECK(bi.peers == 1 && bi.channels == 1, "%u peers, %u channels", bi.peers, bi.channels);
	OK(shmbus_bus_close(b));
	printf("  versions %u, %u, 0, 0xffffffff: EVERSION (EEXIST to create), file unchanged, still listed\n",
	       ours_v - 1, ours_v + 1);
	printf("test_version: all passed\n");
	return 0;
}

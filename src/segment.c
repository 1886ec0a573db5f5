/*
 * segment.c -- creating, opening, validating and closing a bus segment.
 *
 * A plain bus name maps to /dev/shm/shmbus-NAME, a "file:/path" name to
 * that file. Creation builds the whole segment in a temporary file in the
 * same directory (header, empty tables, robust mutex, pages reserved with
 * posix_fallocate so a full disk fails now and not with SIGBUS later), and
 * then publishes it with link(2), which fails if the name exists: a process
 * opening the name can never see a half-built header, and two creators
 * racing for one name get exactly one winner.
 *
 * Opening trusts nothing: the header is read with pread and checked
 * (magic, ABI version, size of the object, every table's bounds) before
 * anything is mapped, and the validated geometry is copied into the local
 * handle. File buses are opened with O_NOFOLLOW, and a segment owned by
 * another user is refused unless the caller opts in.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "sigbus.h"

/* ---- names ---------------------------------------------------------- */

int shmbus_name_check(const char *name)
{
	size_t i, n;

	if (!name)
		return sb_err(SHMBUS_EINVAL, "name is NULL");
	n = strlen(name);
	if (n == 0)
		return sb_err(SHMBUS_EINVAL, "name is empty");
	if (n > SHMBUS_NAME_MAX)
		return sb_err(SHMBUS_EINVAL, "name '%.20s...' is %zu bytes, the limit is %d",
		              name, n, SHMBUS_NAME_MAX);
	if (name[0] == '.')
		return sb_err(SHMBUS_EINVAL, "name '%s' starts with '.'", name);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			return sb_err(SHMBUS_EINVAL,
			              "name '%s' has character 0x%02x at %zu; allowed: A-Z a-z 0-9 _ - .",
			              name, c, i);
	}
	return 0;
}

/* Resolve a bus name to the path of its object. */
static int bus_path(const char *name, char *path, size_t cap, int *persistent)
{
	int r;

	if (!name)
		return sb_err(SHMBUS_EINVAL, "bus name is NULL");
	if (strncmp(name, SB_FILE_PREFIX, strlen(SB_FILE_PREFIX)) == 0) {
		const char *p = name + strlen(SB_FILE_PREFIX);

		if (*p == '\0')
			return sb_err(SHMBUS_EINVAL, "bus name '%s' has no path after 'file:'", name);
		if (strlen(p) >= cap)
			return sb_err(SHMBUS_EINVAL, "bus path is longer than %zu bytes", cap - 1);
		strcpy(path, p);
		*persistent = 1;
		return 0;
	}
	r = shmbus_name_check(name);
	if (r)
		return sb_err(r, "bus %s", shmbus_last_error());
	snprintf(path, cap, "%s/%s%s", SB_SHM_DIR, SB_SHM_PREFIX, name);
	*persistent = 0;
	return 0;
}

/* ---- boot identity -------------------------------------------------- */

static uint64_t boot_hash(void)
{
	/* Computed once per process; every thread computes the same value,
	 * so relaxed is enough: a racing second computation stores it again. */
	static _Atomic uint64_t cached;
	char buf[64] = {0};
	uint64_t h = 1469598103934665603ull, c;
	ssize_t n, i;
	int fd;

	/* relaxed: a process-local cache of a value every thread computes
	 * the same; it guards no other data. */
	c = atomic_load_explicit(&cached, memory_order_relaxed);
	if (c)
		return c;
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		for (i = 0; i < n; i++)
			h = (h ^ (unsigned char)buf[i]) * 1099511628211ull;
	}
	if (h <= SB_BOOT_RECOVERING)
		h += 2;
	/* relaxed: as above. */
	atomic_store_explicit(&cached, h, memory_order_relaxed);
	return h;
}

static int mutex_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int r;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	r = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return r ? sb_err_sys(r, "pthread_mutex_init") : 0;
}

/* A file bus may outlive the kernel that made its mutex: then every peer in
 * it is dead and the mutex may look held by a thread of the old boot. The
 * first opener after a reboot rebuilds it; others wait for that. */
static int boot_recover(shmbus_bus_t *bus)
{
	uint64_t mine = boot_hash();
	sb_deadline_t d;
	uint64_t seen;
	uint32_t i;

	sb_deadline_init(&d, SB_LOCK_TIMEOUT_NS);
	for (;;) {
		/* acquire: pairs with the release store below, so a waiter
		 * sees the rebuilt mutex. */
		seen = atomic_load_explicit(&bus->hdr->boot_hash, memory_order_acquire);
		if (seen == mine)
			return 0;
		/* acquire: one process wins the right to rebuild; it pairs with
		 * the release store of the new boot hash below. */
		SB_STEP("bus.boot_recover.boot_hash");
		if (seen != SB_BOOT_RECOVERING &&
		    atomic_compare_exchange_strong_explicit(&bus->hdr->boot_hash, &seen,
		                                            SB_BOOT_RECOVERING,
		                                            memory_order_acquire,
		                                            memory_order_relaxed))
			break;
		if (sb_deadline_left(&d) == 0)
			return sb_err(SHMBUS_ETIMEDOUT,
			              "bus '%s': another process is recovering it after a reboot",
			              bus->name);
		usleep(1000);
	}
	/* relaxed: tokens of the previous boot mean nothing; the release
	 * store of the boot hash below publishes the cleared table. */
	SB_STEP("bus.boot_recover.token");
	for (i = 0; i < bus->max_peers; i++)
		atomic_store_explicit(&bus->peers[i].token, 0, memory_order_relaxed);
	if (mutex_init(&bus->hdr->mutex)) {
		SB_STEP("bus.boot_recover.boot_hash");
		atomic_store_explicit(&bus->hdr->boot_hash, seen, memory_order_release);
		return SHMBUS_ESYS;
	}
	/* release: publishes the new mutex; pairs with the acquire above. */
	SB_STEP("bus.boot_recover.boot_hash");
	atomic_store_explicit(&bus->hdr->boot_hash, mine, memory_order_release);
	return 0;
}

/* ---- options -------------------------------------------------------- */

void shmbus_bus_opts_init(shmbus_bus_opts_t *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->size_of = sizeof(*opts);
}

static int opts_get(const shmbus_bus_opts_t *in, shmbus_bus_opts_t *o)
{
	shmbus_bus_opts_init(o);
	if (in) {
		if (in->size_of < offsetof(shmbus_bus_opts_t, reserved_) ||
		    in->size_of > 4096)
			return sb_err(SHMBUS_EINVAL,
			              "bus options: size_of is %u; call shmbus_bus_opts_init()",
			              in->size_of);
		memcpy(o, in, in->size_of < sizeof(*o) ? in->size_of : sizeof(*o));
	}
	if (o->mode == 0)
		o->mode = 0600;
	if (o->size == 0)
		o->size = SB_DEFAULT_SIZE;
	if (o->max_channels == 0)
		o->max_channels = SB_DEFAULT_CHANNELS;
	if (o->max_peers == 0)
		o->max_peers = SB_DEFAULT_PEERS;
	if (o->mode & ~07777u)
		return sb_err(SHMBUS_EINVAL, "bus mode 0%o has bits outside 07777", o->mode);
	if (o->max_channels > SB_MAX_TABLE || o->max_peers > SB_MAX_TABLE)
		return sb_err(SHMBUS_EINVAL, "max_channels %u / max_peers %u: limit is %u",
		              o->max_channels, o->max_peers, SB_MAX_TABLE);
	return 0;
}

/* ---- geometry ------------------------------------------------------- */

struct geometry {
	uint64_t peers_off, dir_off, heap_off, heap_size;
};

static int plan_geometry(uint64_t size, uint32_t peers, uint32_t chans,
                         struct geometry *g)
{
	g->peers_off = SB_HEADER_SIZE;
	g->dir_off = SB_ALIGN(g->peers_off + (uint64_t)peers * sizeof(struct sb_peer), SB_LINE);
	g->heap_off = SB_ALIGN(g->dir_off + (uint64_t)chans * sizeof(struct sb_dirent), 4096);
	if (size < g->heap_off + 4096)
		return sb_err(SHMBUS_EINVAL,
		              "bus size %llu is too small: %u peers and %u channels need %llu bytes before the heap",
		              (unsigned long long)size, peers, chans,
		              (unsigned long long)g->heap_off);
	g->heap_size = size - g->heap_off;
	return 0;
}

/* Validate a header read from a segment of st_size bytes; fill bus. */
static int check_header(shmbus_bus_t *bus, const struct sb_header *h, uint64_t st_size)
{
	struct geometry g;

	if (h->magic != SB_MAGIC)
		return sb_err(SHMBUS_ECORRUPT, "bus '%s' is not a shmbus segment (bad magic)",
		              bus->name);
	if (h->abi != SB_ABI)
		return sb_err(SHMBUS_EVERSION,
		              "bus '%s' has ABI version %u, this library speaks %u",
		              bus->name, h->abi, SB_ABI);
	if (h->state != SB_HDR_READY)
		return sb_err(SHMBUS_ECORRUPT, "bus '%s' header is not marked ready", bus->name);
	if (h->total_size > st_size)
		return sb_err(SHMBUS_ECORRUPT,
		              "bus '%s' is truncated: its header says %llu bytes but the object has %llu",
		              bus->name, (unsigned long long)h->total_size,
		              (unsigned long long)st_size);
	/* Something wrote or extended past the end (e.g. an append to a file:
	 * bus): the bus may be whole, but it is not what its creator made. */
	if (h->total_size < st_size)
		return sb_err(SHMBUS_ECORRUPT,
		              "bus '%s' has grown: its header says %llu bytes but the object has %llu; refused (truncate it back to %llu bytes to use it)",
		              bus->name, (unsigned long long)h->total_size,
		              (unsigned long long)st_size, (unsigned long long)h->total_size);
	if (h->header_size != SB_HEADER_SIZE || h->peer_size != sizeof(struct sb_peer) ||
	    h->dirent_size != sizeof(struct sb_dirent))
		return sb_err(SHMBUS_ECORRUPT, "bus '%s': table entry sizes do not match", bus->name);
	if (h->max_peers == 0 || h->max_peers > SB_MAX_TABLE ||
	    h->max_channels == 0 || h->max_channels > SB_MAX_TABLE)
		return sb_err(SHMBUS_ECORRUPT, "bus '%s': table sizes out of range (%u peers, %u channels)",
		              bus->name, h->max_peers, h->max_channels);
	if (plan_geometry(st_size, h->max_peers, h->max_channels, &g) ||
	    h->peers_off != g.peers_off || h->dir_off != g.dir_off ||
	    h->heap_off != g.heap_off || h->heap_size != g.heap_size)
		return sb_err(SHMBUS_ECORRUPT, "bus '%s': table offsets are inconsistent", bus->name);
	bus->size = st_size;
	bus->peers_off = g.peers_off;
	bus->dir_off = g.dir_off;
	bus->heap_off = g.heap_off;
	bus->heap_size = g.heap_size;
	bus->max_peers = h->max_peers;
	bus->max_channels = h->max_channels;
	return 0;
}

static shmbus_bus_t *bus_alloc(const char *name)
{
	shmbus_bus_t *bus = calloc(1, sizeof(*bus));

	if (!bus)
		return NULL;
	snprintf(bus->name, sizeof(bus->name), "%s", name);
	bus->fd = -1;
	bus->peer_slot = -1;
	bus->live_fd = -1;
	bus->liveness_ns = SB_DEFAULT_LIVENESS_NS;
	return bus;
}

static int bus_map(shmbus_bus_t *bus, int fd)
{
	void *p = mmap(NULL, bus->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return sb_err_sys(errno, "bus '%s': mmap of %llu bytes", bus->name,
		                  (unsigned long long)bus->size);
	bus->base = p;
	bus->hdr = p;
	/* A later truncation of the file must give errors, not SIGBUS. */
	sb_map_register(p, bus->size);
	bus->peers = (struct sb_peer *)(bus->base + bus->peers_off);
	bus->dir = (struct sb_dirent *)(bus->base + bus->dir_off);
	return 0;
}

static void bus_free(shmbus_bus_t *bus)
{
	if (!bus)
		return;
	if (bus->base) {
		sb_map_unregister(bus->base);
		munmap(bus->base, bus->size);
	}
	sb_live_close(bus);
	if (bus->fd >= 0)
		close(bus->fd);
	free(bus);
}

/* ---- create --------------------------------------------------------- */

enum { SB_TMP_TAKE, SB_TMP_TEST };

/* The creator's lock on its temporary file: one byte just below the
 * liveness bytes (peers.c locks byte 2^62 + token), so that it never
 * conflicts with a peer's liveness lock in the moment between the link
 * that publishes the bus and the close that drops it. Taking it returns 0
 * (failure is harmless: the pid test still guards the file); testing it
 * returns 1 if another description holds it or we cannot tell. */
#define SB_TMP_LOCK_BYTE ((1ll << 62) - 1)

static int tmp_lock(int fd, int op)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = SB_TMP_LOCK_BYTE;
	fl.l_len = 1;
	if (op == SB_TMP_TAKE) {
		(void)fcntl(fd, F_OFD_SETLK, &fl);
		return 0;
	}
	if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
		return 1;
	return fl.l_type != F_UNLCK;
}

static int build_segment(const char *name, int fd, const shmbus_bus_opts_t *o,
                         const struct geometry *g)
{
	struct sb_header *h;
	int r;

	/* Every page now: a full filesystem fails here with ENOSPC, never
	 * later with SIGBUS at a page fault (tests/test_full). */
	r = posix_fallocate(fd, 0, (off_t)o->size);
	if (r)
		return sb_err_sys(r, "bus '%s': reserving %llu bytes for the bus", name,
		                  (unsigned long long)o->size);
	h = mmap(NULL, SB_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (h == MAP_FAILED)
		return sb_err_sys(errno, "mmap of the new bus header");
	memset(h, 0, SB_HEADER_SIZE);
	h->magic = SB_MAGIC;
	h->abi = SB_ABI;
	h->total_size = o->size;
	h->header_size = SB_HEADER_SIZE;
	h->peers_off = g->peers_off;
	h->max_peers = o->max_peers;
	h->peer_size = sizeof(struct sb_peer);
	h->dir_off = g->dir_off;
	h->max_channels = o->max_channels;
	h->dirent_size = sizeof(struct sb_dirent);
	h->heap_off = g->heap_off;
	h->heap_size = g->heap_size;
	h->create_time_ns = sb_realtime_ns();
	h->creator_pid = (uint32_t)getpid();
	h->mode = o->mode;
	/* relaxed: the segment is still private (temporary name); link()
	 * publishes the whole header. */
	SB_STEP("bus.build_segment.boot_hash");
	atomic_store_explicit(&h->boot_hash, boot_hash(), memory_order_relaxed);
	r = mutex_init(&h->mutex);
	h->state = SB_HDR_READY;
	munmap(h, SB_HEADER_SIZE);
	return r;
}

/* The temporary file a creation builds in. In /dev/shm it is
 * "shmbus-.tmp-PID-STAMP-NAME": a bus name never starts with '.', so no
 * bus can have it, and listing skips it. A file: bus builds in
 * "PATH.tmp-PID-STAMP" (O_EXCL: an existing file there is never touched). */
static void tmp_path(const char *name, const char *path, char *tmp, size_t cap)
{
	unsigned long long stamp = (unsigned long long)sb_now_ns();

	if (strncmp(name, SB_FILE_PREFIX, strlen(SB_FILE_PREFIX)) == 0)
		snprintf(tmp, cap, "%s.tmp-%d-%llx", path, (int)getpid(), stamp);
	else
		snprintf(tmp, cap, "%s/%s%s%d-%llx-%s", SB_SHM_DIR, SB_SHM_PREFIX, SB_TMP_TAG,
		         (int)getpid(), stamp, name);
}

static int create_at(const char *name, const char *path, const shmbus_bus_opts_t *o)
{
	char tmp[4300];
	struct geometry g;
	int fd, r;

	r = plan_geometry(o->size, o->max_peers, o->max_channels, &g);
	if (r)
		return r;
	tmp_path(name, path, tmp, sizeof(tmp));
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, o->mode);
	if (fd < 0)
		return sb_err_sys(errno, "bus '%s': creating %s", name, tmp);
	/* Marks the file as being built while we live, in any namespace;
	 * shmbus_list removes it only once the lock is gone. */
	tmp_lock(fd, SB_TMP_TAKE);
	if (fchmod(fd, o->mode) != 0) {     /* undo the umask */
		r = sb_err_sys(errno, "bus '%s': chmod", name);
		goto out;
	}
	r = build_segment(name, fd, o, &g);
	if (r)
		goto out;
	if (fsync(fd) != 0 && errno != EINVAL) {
		r = sb_err_sys(errno, "bus '%s': fsync", name);
		goto out;
	}
	/* The atomic publication: the final name appears fully built. */
	SB_STEP("bus.create.link");
	if (link(tmp, path) != 0)
		r = errno == EEXIST ? sb_err(SHMBUS_EEXIST, "bus '%s' exists", name)
		                    : sb_err_sys(errno, "bus '%s': publishing %s", name, path);
	else
		SB_STEP("bus.create.published");     /* open to all, our fd still open */
out:
	close(fd);
	unlink(tmp);
	return r;
}

/* ---- open ----------------------------------------------------------- */

static int open_at(const char *name, const char *path, int persistent,
                   const shmbus_bus_opts_t *o, shmbus_bus_t **out)
{
	struct sb_header h;
	struct stat st;
	shmbus_bus_t *bus;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return sb_err(SHMBUS_ENOENT, "bus '%s' does not exist (%s)", name, path);
		if (errno == ELOOP)
			return sb_err(SHMBUS_EPERM, "bus '%s': %s is a symbolic link; refused",
			              name, path);
		if (errno == EACCES && stat(path, &st) == 0)
			return sb_err_sys(EACCES,
			                  "bus '%s': %s (owner uid %u, mode 0%o) cannot be opened for reading and writing by uid %u",
			                  name, path, (unsigned)st.st_uid,
			                  (unsigned)(st.st_mode & 07777), (unsigned)geteuid());
		return sb_err_sys(errno, "bus '%s': open %s", name, path);
	}
	bus = bus_alloc(name);
	if (!bus) {
		close(fd);
		return sb_err(SHMBUS_ENOMEM, "out of memory");
	}
	bus->persistent = persistent;
	if (fstat(fd, &st) != 0) {
		r = sb_err_sys(errno, "bus '%s': fstat", name);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = sb_err(SHMBUS_ECORRUPT, "bus '%s': %s is not a regular file", name, path);
		goto fail;
	}
	if (st.st_uid != geteuid() && !(o->flags & SHMBUS_BUS_ALLOW_FOREIGN_OWNER)) {
		r = sb_err(SHMBUS_EPERM,
		           "bus '%s' is owned by uid %u, not by this user (%u); refused (SHMBUS_BUS_ALLOW_FOREIGN_OWNER to accept)",
		           name, (unsigned)st.st_uid, (unsigned)geteuid());
		goto fail;
	}
	if ((uint64_t)st.st_size < SB_HEADER_SIZE) {
		r = sb_err(SHMBUS_ECORRUPT, "bus '%s' is %lld bytes, smaller than a header (%u)",
		           name, (long long)st.st_size, SB_HEADER_SIZE);
		goto fail;
	}
	n = pread(fd, &h, sizeof(h), 0);
	if (n != (ssize_t)sizeof(h)) {
		r = sb_err_sys(n < 0 ? errno : EIO, "bus '%s': reading the header", name);
		goto fail;
	}
	r = check_header(bus, &h, (uint64_t)st.st_size);
	if (r)
		goto fail;
	/* Someone widened access after creation (chmod): other users may have
	 * written into it. Refused like a foreign owner, with the same opt-in. */
	if ((st.st_mode & 07777 & ~h.mode) && !(o->flags & SHMBUS_BUS_ALLOW_FOREIGN_OWNER)) {
		r = sb_err(SHMBUS_EPERM,
		           "bus '%s' has mode 0%o, looser than the 0%o it was created with; refused (SHMBUS_BUS_ALLOW_FOREIGN_OWNER to accept)",
		           name, (unsigned)(st.st_mode & 07777), (unsigned)(h.mode & 07777));
		goto fail;
	}
	r = bus_map(bus, fd);
	if (r)
		goto fail;
	/* Kept: a waiter checks the file's size through it (sb_bus_health). */
	bus->fd = fd;
	bus->file_dev = (uint64_t)st.st_dev;
	bus->file_ino = (uint64_t)st.st_ino;
	fd = -1;
	/* The liveness lock lives on a description of its own: the mapping
	 * keeps its description open in every fork child, so a lock taken
	 * through it would keep a dead parent looking alive. */
	r = sb_live_open(bus, path, &st);
	if (r)
		goto fail;
	r = boot_recover(bus);
	if (r)
		goto fail;
	if (!(o->flags & SHMBUS_BUS_NO_PEER)) {
		r = sb_peer_register(bus);
		if (r)
			goto fail;
	}
	*out = bus;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	bus_free(bus);
	return r;
}

int shmbus_bus_open(const char *name, const shmbus_bus_opts_t *opts, shmbus_bus_t **out)
{
	char path[4200];
	shmbus_bus_opts_t o;
	int persistent, r;

	if (!out)
		return sb_err(SHMBUS_EINVAL, "shmbus_bus_open: out is NULL");
	*out = NULL;
	r = opts_get(opts, &o);
	if (!r)
		r = bus_path(name, path, sizeof(path), &persistent);
	if (!r)
		r = open_at(name, path, persistent, &o, out);
	return r;
}

int shmbus_bus_create(const char *name, const shmbus_bus_opts_t *opts, shmbus_bus_t **out)
{
	char path[4200];
	shmbus_bus_opts_t o;
	int persistent, r;

	if (!out)
		return sb_err(SHMBUS_EINVAL, "shmbus_bus_create: out is NULL");
	*out = NULL;
	r = opts_get(opts, &o);
	if (!r)
		r = bus_path(name, path, sizeof(path), &persistent);
	if (!r)
		r = create_at(name, path, &o);
	if (!r)
		r = open_at(name, path, persistent, &o, out);
	return r;
}

int shmbus_bus_open_or_create(const char *name, const shmbus_bus_opts_t *opts,
                              shmbus_bus_t **out, int *created)
{
	int r, attempt;

	if (created)
		*created = 0;
	for (attempt = 0; attempt < 8; attempt++) {
		r = shmbus_bus_open(name, opts, out);
		if (r != SHMBUS_ENOENT)
			return r;
		r = shmbus_bus_create(name, opts, out);
		if (r == 0 && created)
			*created = 1;
		/* Lost a creation race, or the winner unlinked it again. */
		if (r != SHMBUS_EEXIST)
			return r;
	}
	return r;
}

int shmbus_bus_wait_open(const char *name, const shmbus_bus_opts_t *opts,
                         int64_t timeout_ns, shmbus_bus_t **out)
{
	sb_deadline_t d;
	int r;

	sb_deadline_init(&d, timeout_ns);
	for (;;) {
		r = shmbus_bus_open(name, opts, out);
		if (r != SHMBUS_ENOENT)
			return r;
		if (sb_deadline_left(&d) == 0)
			return sb_err(SHMBUS_ETIMEDOUT, "bus '%s' did not appear within %.3f s",
			              name, (double)timeout_ns / 1e9);
		if (usleep(10000) != 0 && errno == EINTR)
			return sb_err(SHMBUS_EINTR, "interrupted while waiting for bus '%s'", name);
	}
}

int shmbus_bus_close(shmbus_bus_t *bus)
{
	if (!bus)
		return 0;
	sb_peer_unregister(bus);
	bus_free(bus);
	return 0;
}

int shmbus_bus_unlink(const char *name)
{
	char path[4200];
	int persistent, r;

	r = bus_path(name, path, sizeof(path), &persistent);
	if (r)
		return r;
	if (unlink(path) != 0) {
		if (errno == ENOENT)
			return sb_err(SHMBUS_ENOENT, "bus '%s' does not exist", name);
		return sb_err_sys(errno, "bus '%s': unlink %s", name, path);
	}
	return 0;
}

const char *shmbus_bus_name(const shmbus_bus_t *bus)
{
	return bus ? bus->name : "";
}

int shmbus_bus_set_liveness(shmbus_bus_t *bus, int64_t timeout_ns)
{
	if (!bus || timeout_ns <= 0)
		return sb_err(SHMBUS_EINVAL, "liveness timeout must be > 0 ns");
	bus->liveness_ns = timeout_ns;
	return 0;
}

/* ---- the directory lock --------------------------------------------- */

static void repair_directory(const shmbus_bus_t *bus)
{
	uint32_t i;

	/* The dead owner may have been half-way through creating a channel:
	 * such an entry never became READY, so nobody uses it; free it (its
	 * heap space stays allocated and unused). */
	SB_STEP("bus.repair_directory.state");
	/* relaxed (load and store): under the mutex; a CREATING entry was
	 * never published, so no lock-free reader acts on it. */
	for (i = 0; i < bus->max_channels; i++)
		if (atomic_load_explicit(&bus->dir[i].state, memory_order_relaxed) ==
		    SB_DIR_CREATING)
			atomic_store_explicit(&bus->dir[i].state, SB_DIR_FREE,
			                      memory_order_relaxed);
	/* relaxed: under the mutex (the dead owner's stores are complete:
	 * the kernel's EOWNERDEAD hand-over orders them). */
	if (atomic_load_explicit(&bus->hdr->heap_used, memory_order_relaxed) > bus->heap_size)
		atomic_store_explicit(&bus->hdr->heap_used, bus->heap_size, memory_order_relaxed);
}

int sb_bus_lock(const shmbus_bus_t *bus)
{
	int r = sb_mutex_lock(&bus->hdr->mutex, SB_LOCK_TIMEOUT_NS);

	if (r == 0)
		return 0;
	if (r == EOWNERDEAD) {
		repair_directory(bus);
		SB_STEP("bus.bus_lock.mutex_consistent");
		pthread_mutex_consistent(&bus->hdr->mutex);
		return 0;
	}
	if (r == ETIMEDOUT)
		return sb_err(SHMBUS_ETIMEDOUT,
		              "bus '%s': directory lock held for over %lld s (by a stuck process, or its lock word is damaged)",
		              bus->name, SB_LOCK_TIMEOUT_NS / 1000000000ll);
	return sb_err(SHMBUS_ECORRUPT, "bus '%s': directory lock unusable (%s)", bus->name,
	              strerror(r));
}

void sb_bus_unlock(const shmbus_bus_t *bus)
{
	SB_STEP("bus.bus_unlock.mutex_unlock");
	pthread_mutex_unlock(&bus->hdr->mutex);
}

int sb_bus_health(shmbus_bus_t *bus, const char *prefix)
{
	struct stat st;

	if (sb_map_damaged(bus->base))
		return sb_err(SHMBUS_ECORRUPT, "%sbus '%s' was truncated while mapped", prefix,
		              bus->name);
	/* An fd the program closed behind our back (and maybe reused for
	 * another file) says nothing about the bus: skipped. */
	if (bus->fd >= 0 && fstat(bus->fd, &st) == 0 && (uint64_t)st.st_dev == bus->file_dev &&
	    (uint64_t)st.st_ino == bus->file_ino && (uint64_t)st.st_size < bus->size) {
		sb_map_mark_damaged(bus->base);
		return sb_err(SHMBUS_ECORRUPT,
		              "%sbus '%s' was truncated while mapped (%llu bytes left of %llu)",
		              prefix, bus->name, (unsigned long long)st.st_size,
		              (unsigned long long)bus->size);
	}
	/* The file is whole, so reading the header cannot fault. */
	if (bus->hdr->magic != SB_MAGIC || bus->hdr->total_size != bus->size)
		return sb_err(SHMBUS_ECORRUPT, "%sbus '%s': header overwritten while mapped",
		              prefix, bus->name);
	return 0;
}

int sb_heap_range_ok(const shmbus_bus_t *bus, uint64_t off, uint64_t len)
{
	return off >= bus->heap_off && len <= bus->size && off <= bus->size - len;
}

/* ---- info, list, gc ------------------------------------------------- */

int shmbus_bus_info(const shmbus_bus_t *bus, shmbus_bus_info_t *out)
{
	shmbus_bus_info_t full, *info = &full;
	uint32_t i;
	int r;

	if (!bus || !out)
		return sb_err(SHMBUS_EINVAL, "shmbus_bus_info: NULL argument");
	if ((r = sb_out_check(out, "shmbus_bus_info: info")) != 0)
		return r;
	memset(info, 0, sizeof(*info));
	info->size_of = sizeof(*info);
	info->abi_version = SB_ABI;
	info->size = bus->size;
	info->heap_size = bus->heap_size;
	/* relaxed: without the mutex; a snapshot for display (it only grows
	 * while the bus lives). */
	info->heap_used = atomic_load_explicit(&bus->hdr->heap_used, memory_order_relaxed);
	if (info->heap_used > info->heap_size)
		info->heap_used = info->heap_size;
	info->max_channels = bus->max_channels;
	info->max_peers = bus->max_peers;
	/* relaxed: counts for display, a snapshot. */
	for (i = 0; i < bus->max_channels; i++)
		if (atomic_load_explicit(&bus->dir[i].state, memory_order_relaxed) == SB_DIR_READY)
			info->channels++;
	for (i = 0; i < bus->max_peers; i++) {
		/* relaxed: a snapshot for display. */
		uint64_t t = atomic_load_explicit(&bus->peers[i].token, memory_order_relaxed);

		if (t == 0)
			continue;
		info->peers++;
		if (sb_token_alive(bus, t))
			info->live_peers++;
	}
	info->creator_pid = bus->hdr->creator_pid;
	info->create_time_ns = bus->hdr->create_time_ns;
	info->persistent = bus->persistent;
	sb_out_copy(out, info, sizeof(*info));
	if (sb_map_damaged(bus->base))
		return sb_err(SHMBUS_ECORRUPT, "bus '%s' was truncated while mapped", bus->name);
	return 0;
}

/* A lock that stays held past its timeout (a stuck holder, or a damaged
 * lock word that no process will ever release) is not retried for each
 * channel: the first timeout ends the collection, so a corrupt directory
 * mutex costs one SB_LOCK_TIMEOUT_NS, as docs/reliability.md says. */
int shmbus_bus_gc(shmbus_bus_t *bus, uint32_t *reaped)
{
	uint32_t total, i;
	int r = 0;

	if (!bus)
		return sb_err(SHMBUS_EINVAL, "shmbus_bus_gc: bus is NULL");
	total = sb_peer_reap(bus);
	for (i = 0; i < bus->max_channels; i++) {
		struct sb_dirent *e = &bus->dir[i];
		const struct sb_kind_ops *ops;
		struct sb_params want;
		struct sb_chan ch;
		uint32_t n = 0;

		/* acquire: pairs with the release store of READY in
		 * entry_create, so the entry's fields are complete. */
		if (atomic_load_explicit(&e->state, memory_order_acquire) != SB_DIR_READY)
			continue;
		ops = sb_kind_ops((int)e->kind);
		if (!ops || !ops->gc)
			continue;
		memset(&want, 0, sizeof(want));
		want.kind = (int32_t)e->kind;
		{
			char name[SHMBUS_NAME_MAX + 1];

			memcpy(name, e->name, sizeof(name));
			name[SHMBUS_NAME_MAX] = '\0';
			r = sb_chan_open(bus, name, &want, 0, &ch);
			if (r == SHMBUS_ETIMEDOUT)
				break;
			if (r) {
				r = 0;  /* deleted meanwhile, or damaged: next */
				continue;
			}
		}
		r = ops->gc(&ch, &n);
		if (r == SHMBUS_ETIMEDOUT)
			break;
		if (r == 0)
			total += n;
		r = 0;
	}
	if (reaped)
		*reaped = total;
	return r;
}

/* A creator killed inside shmbus_bus_create leaves its half-built
 * temporary file ("shmbus-.tmp-PID-STAMP-NAME", see tmp_path): nobody can
 * ever publish it. Is file (a /dev/shm entry) such a file of a process
 * that is gone? Its creator is gone when PID names no process in our
 * namespace and the creator's OFD write lock on the file is free (the
 * kernel dropped it at exit). The pid alone is not enough: a creator in
 * another pid namespace has a pid that means nothing here. A pid reused by
 * another process keeps the file until that one ends too. */
static int orphan_tmp(const char *file)
{
	size_t plen = strlen(SB_SHM_PREFIX), tlen = strlen(SB_TMP_TAG);
	char path[512], *end;
	long pid;
	int fd, busy;

	if (strncmp(file, SB_SHM_PREFIX, plen) != 0 || strncmp(file + plen, SB_TMP_TAG, tlen) != 0)
		return 0;
	pid = strtol(file + plen + tlen, &end, 10);
	if (pid <= 0 || *end != '-')
		return 0;
	if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", SB_SHM_DIR, file);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return 0;
	busy = tmp_lock(fd, SB_TMP_TEST);
	close(fd);
	return !busy;
}

int shmbus_gc_temporaries(int dry_run, uint32_t *count)
{
	char path[512];
	struct dirent *de;
	uint32_t n = 0;
	DIR *dir;

	if (count)
		*count = 0;
	dir = opendir(SB_SHM_DIR);
	if (!dir)
		return sb_err_sys(errno, "opendir %s", SB_SHM_DIR);
	while ((de = readdir(dir)) != NULL) {
		if (!orphan_tmp(de->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", SB_SHM_DIR, de->d_name);
		if (dry_run || unlink(path) == 0)
			n++;
	}
	closedir(dir);
	if (count)
		*count = n;
	return 0;
}

/* Listing only reads the directory: it removes nothing. */
int shmbus_list(int (*fn)(const char *name, void *arg), void *arg)
{
	size_t plen = strlen(SB_SHM_PREFIX);
	struct dirent *de;
	DIR *dir;
	int r = 0;

	if (!fn)
		return sb_err(SHMBUS_EINVAL, "shmbus_list: fn is NULL");
	dir = opendir(SB_SHM_DIR);
	if (!dir)
		return sb_err_sys(errno, "opendir %s", SB_SHM_DIR);
	while ((de = readdir(dir)) != NULL) {
		const char *n = de->d_name;

		if (strncmp(n, SB_SHM_PREFIX, plen) != 0)
			continue;
		/* A temporary of a creation in progress (or of a dead one). */
		if (strncmp(n + plen, SB_TMP_TAG, strlen(SB_TMP_TAG)) == 0)
			continue;
		r = fn(n + plen, arg);
		if (r)
			break;
	}
	closedir(dir);
	return r;
}

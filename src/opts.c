/*
 * opts.c -- how every kind of channel opens, and how structs the library
 * fills honour their caller's size.
 *
 * Options in. Each kind's options struct starts with uint32_t size_of and
 * carries int32_t create. sb_kind_open reads the caller's struct into the
 * library's own (defaults first, from the kind's _opts_init): a size_of
 * below the first published layout is refused, and so is a larger struct
 * -- from a newer header -- that sets a byte this library does not know,
 * so that no option is ever silently ignored. The kind's check then turns
 * the options into the directory's params, and one hold of the bus mutex
 * opens the channel or creates it (directory.c).
 *
 * Structs out. A caller sets size_of to its struct's size, which may be
 * older (smaller) or newer (larger) than the library's: the library fills
 * its own struct locally and copies at most size_of bytes, zeroing what it
 * does not know, and leaves in size_of the bytes it filled.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Larger than any options or info struct will grow to: a size_of above
 * it is an uninitialised field, not a struct. */
#define SB_STRUCT_MAX 4096u

/* The smallest output struct: size_of and one field. */
#define SB_OUT_MIN 8u

static int load_opts(const struct sb_open_desc *d, const void *opts, void *o)
{
	const char *kind = shmbus_kind_name(d->kind);
	const uint8_t *u = opts;
	uint32_t so;
	size_t i;

	d->init(o);
	if (!opts)
		return 0;
	memcpy(&so, opts, sizeof(so));
	/* Below the library's struct, only a released layout: a size between
	 * would cut a member in two. Today every struct is 1.0's; when one
	 * grows in 1.x, the size it had in each release is accepted here
	 * too (a program built against that release passes it). */
	if (so < d->size_1_0 || so > SB_STRUCT_MAX || (so < d->size && so != d->size_1_0))
		return sb_err(SHMBUS_EINVAL,
		              "%s options: size_of is %u, the struct has %zu bytes; call shmbus_%s_opts_init()",
		              kind, so, d->size, strcmp(kind, "semaphore") ? kind : "sem");
	for (i = d->size; i < so; i++)
		if (u[i] != 0)
			return sb_err(SHMBUS_EINVAL,
			              "%s options: byte %zu of %u is set, but this library (%s) knows %zu bytes: an option it cannot honour",
			              kind, i, so, shmbus_version(NULL, NULL, NULL), d->size);
	memcpy(o, opts, so < d->size ? so : d->size);
	memcpy(o, &(uint32_t){(uint32_t)d->size}, sizeof(uint32_t));
	return 0;
}

int sb_kind_open(shmbus_bus_t *bus, const char *name, const struct sb_open_desc *d,
                 const void *opts, void *o, struct sb_chan *ch)
{
	const char *kind = shmbus_kind_name(d->kind);
	struct sb_params want;
	int32_t create;
	int r;

	if (!bus || !ch)
		return sb_err(SHMBUS_EINVAL, "%s open: NULL argument", kind);
	if ((r = load_opts(d, opts, o)) != 0)
		return r;
	memcpy(&create, (const uint8_t *)o + d->create_off, sizeof(create));
	if (create != 0 && create != 1)
		return sb_err(SHMBUS_EINVAL, "%s options: create is %d; use 1 (create if missing) or 0 (must exist)",
		              kind, create);
	memset(&want, 0, sizeof(want));
	want.kind = d->kind;
	if ((r = d->check(o, name ? name : "", &want)) != 0)
		return r;
	/* check may have cleared create (an array of length 0 only opens). */
	memcpy(&create, (const uint8_t *)o + d->create_off, sizeof(create));
	return sb_chan_open(bus, name, &want, d->flags | (create ? SB_OPEN_CREATE : 0), ch);
}

int sb_wait_opts_check(const char *kind, const char *name, int32_t policy, int64_t spin_ns)
{
	if (policy < SHMBUS_WAIT_SPIN_PARK || policy > SHMBUS_WAIT_PARK)
		return sb_err(SHMBUS_EINVAL,
		              "%s '%s': wait policy %d; use SHMBUS_WAIT_SPIN_PARK, _SPIN or _PARK",
		              kind, name, policy);
	if (spin_ns < 0)
		return sb_err(SHMBUS_EINVAL, "%s '%s': spin_ns %lld is negative", kind, name,
		              (long long)spin_ns);
	return 0;
}

int sb_out_check(const void *out, const char *fn)
{
	uint32_t so;

	memcpy(&so, out, sizeof(so));
	if (so < SB_OUT_MIN || so > SB_STRUCT_MAX)
		return sb_err(SHMBUS_EINVAL, "%s: size_of is %u; set it to sizeof the struct",
		              fn, so);
	return 0;
}

void sb_out_copy(void *out, const void *full, size_t size)
{
	uint32_t so, n;

	memcpy(&so, out, sizeof(so));
	n = so < size ? so : (uint32_t)size;
	memcpy(out, full, n);
	if (so > size)
		memset((uint8_t *)out + size, 0, so - size);
	memcpy(out, &n, sizeof(n));
}

/*
 * version.c -- the library's version, for programs that want to know which
 * library they run with (the header's SHMBUS_VERSION_* say which one they
 * were compiled against). The numbers come from include/shmbus.h, which the
 * Makefile keeps equal to the VERSION file.
 */
#include "internal.h"

#define SB_STR_(x) #x
#define SB_STR(x) SB_STR_(x)

const char *shmbus_version(int *major, int *minor, int *patch)
{
	if (major)
		*major = SHMBUS_VERSION_MAJOR;
	if (minor)
		*minor = SHMBUS_VERSION_MINOR;
	if (patch)
		*patch = SHMBUS_VERSION_PATCH;
	return SB_STR(SHMBUS_VERSION_MAJOR) "." SB_STR(SHMBUS_VERSION_MINOR) "."
	       SB_STR(SHMBUS_VERSION_PATCH);
}

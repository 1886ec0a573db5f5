/*
 * test_libversion.c -- the library says which version it is, as the header
 * it was built with says: shmbus_version() returns "MAJOR.MINOR.PATCH"
 * equal to SHMBUS_VERSION_MAJOR/MINOR/PATCH, stores the three numbers, and
 * takes NULL for any of them. (tests/test_versions.sh checks that these are
 * the VERSION file's, as are the CLI's, the Python package's and the shared
 * library's names.)
 */
#include "testutil.h"

int main(void)
{
	int major = -1, minor = -1, patch = -1;
	const char *s;
	char want[64];

	printf("test_libversion\n");
	s = shmbus_version(&major, &minor, &patch);
	snprintf(want, sizeof(want), "%d.%d.%d", SHMBUS_VERSION_MAJOR, SHMBUS_VERSION_MINOR,
		 SHMBUS_VERSION_PATCH);
	CHECK(s && !strcmp(s, want), "shmbus_version() = \"%s\", the header says %s", s ? s : "(null)",
	      want);
	CHECK(major == SHMBUS_VERSION_MAJOR && minor == SHMBUS_VERSION_MINOR &&
	      patch == SHMBUS_VERSION_PATCH, "numbers %d.%d.%d, the header says %s", major, minor,
	      patch, want);
	CHECK(shmbus_version(NULL, NULL, NULL) == s, "another string when called with NULLs");
	major = -1;
	CHECK(shmbus_version(&major, NULL, NULL) == s && major == SHMBUS_VERSION_MAJOR,
	      "major alone: %d", major);
	printf("  shmbus_version() = %s, numbers %d %d %d\n", s, SHMBUS_VERSION_MAJOR,
	       SHMBUS_VERSION_MINOR, SHMBUS_VERSION_PATCH);
	printf("test_libversion: all passed\n");
	return 0;
}

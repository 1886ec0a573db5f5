/*
 * test_error.c -- the error table: every code in SHMBUS_ERRORS has its
 * value of the ABI, its own name from shmbus_errname() and its own words
 * from shmbus_strerror(); codes outside the table get fixed strings, never
 * NULL. Written from include/shmbus.h's comments.
 */
#include <limits.h>

#include "testutil.h"

struct entry {
	const char *name;
	int code;
	const char *words;
};

static const struct entry table[] = {
#define ENTRY(name, value, words) { "SHMBUS_" #name, SHMBUS_##name, words },
	SHMBUS_ERRORS(ENTRY)
#undef ENTRY
};
#define NTABLE (sizeof(table) / sizeof(table[0]))

/* The values programs compiled against 0.10 carry: they never change. */
static void test_values_are_the_abi(void)
{
	static const struct { int code; int value; } abi[] = {
		{ SHMBUS_OK, 0 }, { SHMBUS_EINVAL, -1 }, { SHMBUS_ENOENT, -2 },
		{ SHMBUS_EEXIST, -3 }, { SHMBUS_ETYPE, -4 }, { SHMBUS_ECORRUPT, -5 },
		{ SHMBUS_EVERSION, -6 }, { SHMBUS_ENOSPC, -7 }, { SHMBUS_ETIMEDOUT, -8 },
		{ SHMBUS_EAGAIN, -9 }, { SHMBUS_ECLOSED, -10 }, { SHMBUS_EBUSY, -11 },
		{ SHMBUS_EOWNERDEAD, -12 }, { SHMBUS_ESYS, -13 }, { SHMBUS_EPERM, -14 },
		{ SHMBUS_ETOOBIG, -15 }, { SHMBUS_EINTR, -16 }, { SHMBUS_ENODATA, -17 },
		{ SHMBUS_ENOMEM, -18 }, { SHMBUS_ESTATE, -19 },
		{ SHMBUS_ENOTRECOVERABLE, -20 }, { SHMBUS_ELAPPED, -21 },
	};
	size_t i;

	for (i = 0; i < sizeof(abi) / sizeof(abi[0]); i++)
		CHECK(abi[i].code == abi[i].value, "%s is %d, was %d",
		      shmbus_errname(abi[i].value), abi[i].code, abi[i].value);
	CHECK(NTABLE >= sizeof(abi) / sizeof(abi[0]), "the table lost codes: %zu entries", NTABLE);
	printf("ok  test_values_are_the_abi (%zu codes)\n", NTABLE);
}

static void test_every_code_has_its_name_and_words(void)
{
	size_t i, j;

	for (i = 0; i < NTABLE; i++) {
		const char *n = shmbus_errname(table[i].code);
		const char *w = shmbus_strerror(table[i].code);

		CHECK(n && strcmp(n, table[i].name) == 0, "errname(%d) is '%s', want '%s'",
		      table[i].code, n ? n : "(null)", table[i].name);
		CHECK(w && strcmp(w, table[i].words) == 0, "strerror(%d) is '%s', want '%s'",
		      table[i].code, w ? w : "(null)", table[i].words);
		CHECK(strcmp(w, "unknown error") != 0, "%s has no words", n);
		CHECK(table[i].code <= 0, "%s is positive: %d", n, table[i].code);
		for (j = 0; j < i; j++) {
			CHECK(table[j].code != table[i].code, "%s and %s share %d",
			      table[j].name, table[i].name, table[i].code);
			CHECK(strcmp(table[j].words, table[i].words) != 0,
			      "%s and %s share their words '%s'", table[j].name,
			      table[i].name, table[i].words);
		}
	}
	printf("ok  test_every_code_has_its_name_and_words\n");
}

static void test_unknown_codes_get_fixed_strings(void)
{
	static const int unknown[] = { 1, 7, -22, -1000, INT_MIN, INT_MAX };
	size_t i, j;

	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		int c = unknown[i], known = 0;

		for (j = 0; j < NTABLE; j++)
			known |= table[j].code == c;
		if (known)
			continue;   /* a later release may have given it a name */
		CHECK(shmbus_errname(c) && strcmp(shmbus_errname(c), "SHMBUS_E?") == 0,
		      "errname(%d) is '%s'", c, shmbus_errname(c) ? shmbus_errname(c) : "(null)");
		CHECK(shmbus_strerror(c) && strcmp(shmbus_strerror(c), "unknown error") == 0,
		      "strerror(%d) is '%s'", c, shmbus_strerror(c) ? shmbus_strerror(c) : "(null)");
	}
	printf("ok  test_unknown_codes_get_fixed_strings\n");
}

/* A failing call's code names itself: what a program prints in a log. */
static void test_a_real_failure_is_named(void)
{
	shmbus_bus_t *bus = NULL;
	int r = shmbus_bus_open("bad/name", NULL, &bus);

	CHECK(r == SHMBUS_EINVAL, "open of 'bad/name' returned %d (%s)", r, shmbus_errname(r));
	CHECK(strcmp(shmbus_errname(r), "SHMBUS_EINVAL") == 0, "named '%s'", shmbus_errname(r));
	CHECK(bus == NULL, "a failed open handed out a bus");
	printf("ok  test_a_real_failure_is_named\n");
}

int main(void)
{
	test_values_are_the_abi();
	test_every_code_has_its_name_and_words();
	test_unknown_codes_get_fixed_strings();
	test_a_real_failure_is_named();
	printf("test_error: all passed\n");
	return 0;
}

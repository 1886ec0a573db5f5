/*
 * error.c -- error codes to words, and the per-thread detail of the last
 * failure. Every public call that fails records a sentence here (which
 * name, which size, which limit) and returns a negative SHMBUS_E* code, so
 * callers get both a code to branch on and a message to show.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_error[512];

/* Both come from the one table in the header (SHMBUS_ERRORS). */
const char *shmbus_strerror(int code)
{
#define WORDS(name, value, words) case SHMBUS_##name: return words;
	switch (code) {
	SHMBUS_ERRORS(WORDS)
	default: return "unknown error";
	}
#undef WORDS
}

const char *shmbus_errname(int code)
{
#define NAME(name, value, words) case SHMBUS_##name: return "SHMBUS_" #name;
	switch (code) {
	SHMBUS_ERRORS(NAME)
	default: return "SHMBUS_E?";
	}
#undef NAME
}

const char *shmbus_last_error(void)
{
	return last_error;
}

void sb_err_clear(void)
{
	last_error[0] = '\0';
}

/* Formatting goes through a scratch buffer: callers may pass the previous
 * message as an argument to wrap it with context. */
int sb_err(int code, const char *fmt, ...)
{
	char tmp[sizeof(last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	memcpy(last_error, tmp, sizeof(tmp));
	return code;
}

static int code_of_errno(int e)
{
	switch (e) {
	case ENOSPC: case EDQUOT: case EFBIG: return SHMBUS_ENOSPC;
	case EEXIST: return SHMBUS_EEXIST;
	case ENOENT: return SHMBUS_ENOENT;
	case EACCES: case EPERM: case ELOOP: return SHMBUS_EPERM;
	case ENOMEM: return SHMBUS_ENOMEM;
	case EINTR: return SHMBUS_EINTR;
	case EINVAL: case ENAMETOOLONG: return SHMBUS_EINVAL;
	default: return SHMBUS_ESYS;
	}
}

int sb_err_sys(int errno_value, const char *fmt, ...)
{
	char tmp[sizeof(last_error)];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(tmp))
		snprintf(tmp + n, sizeof(tmp) - (size_t)n, ": %s", strerror(errno_value));
	memcpy(last_error, tmp, sizeof(tmp));
	return code_of_errno(errno_value);
}

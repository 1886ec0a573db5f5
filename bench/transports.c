/*
 * transports.c -- the table of transports, built from transports.def.
 *
 * Each transport lives in its own file as `const struct transport t_NAME`;
 * this file only collects them, so adding one never touches the harness.
 */
#include <string.h>

#include "bench.h"

#define T(n) extern const struct transport t_##n;
#include "transports.def"
#undef T

#define T(n) &t_##n,
const struct transport *const bench_transports[] = {
#include "transports.def"
	NULL
};
#undef T

const struct transport *bench_find(const char *name)
{
	for (size_t i = 0; bench_transports[i]; i++)
		if (strcmp(bench_transports[i]->name, name) == 0)
			return bench_transports[i];
	return NULL;
}

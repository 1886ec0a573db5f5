/*
 * util.c -- the plumbing of the `shmbus` command: signals, exit codes,
 * error messages, a small option parser and the parsers for durations,
 * sizes, modes and shapes.
 *
 * The option parser is our own rather than getopt's because `put` takes
 * negative numbers as values: an argument that looks like a number
 * ("-1.5", "-inf") is a positional, not an option.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"

const char *cli_cmd = "shmbus";
uint32_t cli_bus_flags;
volatile sig_atomic_t cli_stop;

static void on_signal(int sig)
{
	(void)sig;
	cli_stop = 1;
}

void cli_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;        /* no SA_RESTART: waits return SHMBUS_EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/* The exit code of each library error: one line per entry of the header's
 * SHMBUS_ERRORS, so a code added there without its line here does not
 * compile. docs/cli.md ("Exit codes") lists the same table, and
 * tests/test_errors.sh compares the header, this table, the page and what
 * the command really returns. */
#define CLI_EXIT_OK              EX_OK
#define CLI_EXIT_EINVAL          EX_USAGE
#define CLI_EXIT_ENOENT          EX_NOTFOUND
#define CLI_EXIT_EEXIST          EX_ERROR
#define CLI_EXIT_ETYPE           EX_USAGE
#define CLI_EXIT_ECORRUPT        EX_ERROR
#define CLI_EXIT_EVERSION        EX_ERROR
#define CLI_EXIT_ENOSPC          EX_ERROR
#define CLI_EXIT_ETIMEDOUT       EX_TIMEOUT
#define CLI_EXIT_EAGAIN          EX_TIMEOUT
#define CLI_EXIT_ECLOSED         EX_CLOSED
#define CLI_EXIT_EBUSY           EX_BUSY
#define CLI_EXIT_EOWNERDEAD      EX_ERROR
#define CLI_EXIT_ESYS            EX_ERROR
#define CLI_EXIT_EPERM           EX_ERROR
#define CLI_EXIT_ETOOBIG         EX_USAGE
#define CLI_EXIT_EINTR           EX_INTR
#define CLI_EXIT_ENODATA         EX_TIMEOUT
#define CLI_EXIT_ENOMEM          EX_ERROR
#define CLI_EXIT_ESTATE          EX_ERROR
#define CLI_EXIT_ENOTRECOVERABLE EX_ERROR
#define CLI_EXIT_ELAPPED         EX_ERROR

int cli_exit_code(int code)
{
#define EXIT_CODE(name, value, words) case SHMBUS_##name: return CLI_EXIT_##name;
	switch (code) {
	SHMBUS_ERRORS(EXIT_CODE)
	default: return EX_ERROR;       /* a code from a newer library */
	}
#undef EXIT_CODE
}

/* Messages name buses and channels found in /dev/shm and in segments:
 * they reach the terminal through term_text. */
static void vmsg(const char *fmt, va_list ap)
{
	char buf[2048];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	fprintf(stderr, "shmbus: ");
	if (cli_cmd && strcmp(cli_cmd, "shmbus") != 0)
		fprintf(stderr, "%s: ", cli_cmd);
	fputs(term_text(buf), stderr);
}

int cli_fail(int code, const char *fmt, ...)
{
	const char *detail = shmbus_last_error();
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", term_text(detail && *detail ? detail : shmbus_strerror(code)));
	if (code == SHMBUS_EPERM && detail && strstr(detail, "ALLOW_FOREIGN_OWNER"))
		fprintf(stderr, "shmbus: a bus shared by another user opens with 'shmbus --allow-foreign-owner %s ...'\n",
		        cli_cmd);
	return cli_exit_code(code);
}

int cli_msg(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'shmbus %s --help'.\n",
	        strcmp(cli_cmd, "shmbus") ? cli_cmd : "");
	return EX_USAGE;
}

int cli_flush(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return -1;
	return 0;
}

/* ---- options -------------------------------------------------------- */

void cli_args_init(struct cli_args *a, int argc, char **argv)
{
	memset(a, 0, sizeof(*a));
	a->argc = argc;
	a->argv = argv;
	a->i = 1;               /* argv[0] is the subcommand */
}

/* "-1", "-.5", "-inf", "-nan": values, not options. */
static int looks_negative_number(const char *s)
{
	if (s[0] != '-')
		return 0;
	if ((s[1] >= '0' && s[1] <= '9') || s[1] == '.')
		return 1;
	return strcasecmp(s + 1, "inf") == 0 || strcasecmp(s + 1, "infinity") == 0 ||
	       strcasecmp(s + 1, "nan") == 0;
}

static int add_pos(struct cli_args *a, char *s)
{
	if (a->npos >= (int)(sizeof(a->pos) / sizeof(a->pos[0]))) {
		cli_usage_error("too many arguments (the limit is %zu)",
		                sizeof(a->pos) / sizeof(a->pos[0]));
		return -1;
	}
	a->pos[a->npos++] = s;
	return 0;
}

static int take_arg(struct cli_args *a, const struct cli_opt *o, char *inline_val,
                    const char *spelled)
{
	if (!o->has_arg) {
		if (inline_val) {
			cli_usage_error("option %s takes no value", spelled);
			return -1;
		}
		a->arg = NULL;
		return o->id;
	}
	if (inline_val) {
		a->arg = inline_val;
		return o->id;
	}
	if (a->i >= a->argc) {
		cli_usage_error("option %s needs a value", spelled);
		return -1;
	}
	a->arg = a->argv[a->i++];
	return o->id;
}

static int long_opt(struct cli_args *a, const struct cli_opt *opts, char *s)
{
	char *eq = strchr(s + 2, '=');
	size_t len = eq ? (size_t)(eq - (s + 2)) : strlen(s + 2);
	const struct cli_opt *o;

	if (len == 4 && strncmp(s + 2, "help", 4) == 0)
		return CLI_OPT_HELP;
	for (o = opts; o && o->name; o++)
		if (strlen(o->name) == len && strncmp(o->name, s + 2, len) == 0)
			return take_arg(a, o, eq ? eq + 1 : NULL, s);
	cli_usage_error("unknown option '%.*s'", (int)(len + 2), s);
	return -1;
}

static int short_opt(struct cli_args *a, const struct cli_opt *opts, char *s)
{
	const struct cli_opt *o;
	char spelled[3] = {'-', s[1], 0};

	if (s[1] == 'h' && s[2] == '\0')
		return CLI_OPT_HELP;
	for (o = opts; o && o->name; o++)
		if (o->short_name && o->short_name == s[1])
			return take_arg(a, o, s[2] ? s + 2 : NULL, spelled);
	cli_usage_error("unknown option '%s'", s);
	return -1;
}

int cli_next_opt(struct cli_args *a, const struct cli_opt *opts)
{
	while (a->i < a->argc) {
		char *s = a->argv[a->i++];

		if (strcmp(s, "--") == 0) {
			while (a->i < a->argc)
				if (add_pos(a, a->argv[a->i++]))
					return -1;
			return CLI_OPT_END;
		}
		if (s[0] != '-' || s[1] == '\0' || looks_negative_number(s)) {
			if (add_pos(a, s))
				return -1;
			continue;
		}
		if (strcmp(s, "--allow-foreign-owner") == 0) {   /* global, any command */
			cli_bus_flags |= SHMBUS_BUS_ALLOW_FOREIGN_OWNER;
			continue;
		}
		if (s[1] == '-')
			return long_opt(a, opts, s);
		return short_opt(a, opts, s);
	}
	return CLI_OPT_END;
}

/* ---- value parsers -------------------------------------------------- */

int cli_parse_duration(const char *s, const char *what, int64_t *ns)
{
	static const struct { const char *unit; double scale; } units[] = {
		{"", 1e9}, {"s", 1e9}, {"ms", 1e6}, {"us", 1e3}, {"ns", 1},
		{"m", 60e9}, {"min", 60e9}, {"h", 3600e9},
	};
	char *end;
	double v;
	size_t i;

	if (strcasecmp(s, "forever") == 0 || strcasecmp(s, "inf") == 0 ||
	    strcmp(s, "-1") == 0) {
		*ns = SHMBUS_FOREVER;
		return 0;
	}
	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || !isfinite(v) || v < 0)
		goto bad;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].unit) == 0) {
			double t = v * units[i].scale;

			if (t > 9.2e18)
				goto bad;
			*ns = (int64_t)t;
			return 0;
		}
bad:
	cli_usage_error("%s '%s' is not a duration (seconds, or with a unit: 500ms, 2s, 1m; 'forever')",
	                what, s);
	return -1;
}

int cli_parse_u64(const char *s, const char *what, uint64_t *out)
{
	char *end;

	errno = 0;
	if (*s == '-' || *s == '\0')
		goto bad;
	*out = strtoull(s, &end, 0);
	if (errno || *end != '\0')
		goto bad;
	return 0;
bad:
	cli_usage_error("%s '%s' is not a non-negative integer", what, s);
	return -1;
}

int cli_parse_size(const char *s, const char *what, uint64_t *out)
{
	static const struct { const char *suffix; unsigned shift; } units[] = {
		{"", 0}, {"b", 0}, {"k", 10}, {"kb", 10}, {"kib", 10}, {"m", 20},
		{"mb", 20}, {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30},
	};
	char *end;
	uint64_t v;
	size_t i;

	errno = 0;
	if (*s == '-' || *s == '\0')
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		goto bad;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(end, units[i].suffix) == 0) {
			if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
				goto bad;
			*out = v << units[i].shift;
			return 0;
		}
bad:
	cli_usage_error("%s '%s' is not a size (bytes, or with K, M, G: powers of 1024)",
	                what, s);
	return -1;
}

int cli_parse_mode(const char *s, uint32_t *mode)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno || end == s || *end != '\0' || v == 0 || v > 07777) {
		cli_usage_error("mode '%s' is not an octal permission mode such as 0600", s);
		return -1;
	}
	*mode = (uint32_t)v;
	return 0;
}

int cli_parse_shape(const char *s, uint32_t *ndim, uint64_t *shape)
{
	const char *p = s;
	uint32_t n = 0;

	if (*p == '[' || *p == '(')
		p++;
	while (*p && *p != ']' && *p != ')') {
		char *end;
		unsigned long long v;

		if (n == SHMBUS_MAX_DIMS) {
			cli_usage_error("shape '%s' has more than %d dimensions", s, SHMBUS_MAX_DIMS);
			return -1;
		}
		errno = 0;
		if (*p == '-')
			goto bad;
		v = strtoull(p, &end, 10);
		if (errno || end == p || v == 0)
			goto bad;
		shape[n++] = v;
		p = end;
		while (*p == ' ')
			p++;
		if (*p == ',' || *p == 'x')
			p++;
		while (*p == ' ')
			p++;
	}
	if (n == 0)
		goto bad;
	*ndim = n;
	return 0;
bad:
	cli_usage_error("shape '%s' is not a list of positive sizes such as 3 or 3,4", s);
	return -1;
}

/* ---- time ----------------------------------------------------------- */

int64_t cli_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define CLI_SLICE_NS 250000000 /* a Ctrl+C is noticed within 0.25 s */

int64_t cli_deadline(int64_t timeout_ns)
{
	int64_t now;

	if (timeout_ns < 0)
		return -1;
	now = cli_now_ns();
	return timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;   /* saturate */
}

int64_t cli_slice(int64_t end)
{
	int64_t left;

	if (end < 0)
		return CLI_SLICE_NS;
	left = end - cli_now_ns();
	if (left < 0)
		left = 0;
	return left < CLI_SLICE_NS ? left : CLI_SLICE_NS;
}

int cli_open_bus(const char *name, uint32_t flags, shmbus_bus_t **bus)
{
	shmbus_bus_opts_t o;
	int r;

	shmbus_bus_opts_init(&o);
	o.flags = flags | cli_bus_flags;
	r = shmbus_bus_open(name, &o, bus);
	if (r)
		return cli_fail(r, "cannot open bus '%s'", name);
	return 0;
}

/*
 * config.c -- the bridge's configuration: command-line flags, and an
 * optional file of the same settings, one per line ("key value" or
 * "key = value", '#' starts a comment), where key is a long flag without
 * its dashes. Flags and file lines add up in the order they are read:
 * --config FILE is read where it appears, so later flags override it.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"

static const char usage[] =
"usage: shmbus-bridge [options]\n"
"  --name NAME             bridge name (status channel _bridge.NAME); default bridge-PID\n"
"  --nats URL[,URL...]     NATS server(s); repeatable; default nats://127.0.0.1:4222;\n"
"                          [nats|tls|ws|wss://][USER:PASS@]HOST[:PORT] (else exit 2)\n"
"  --token T | --user U --password P | --creds FILE   credentials\n"
"  --export BUS:CHANNEL[=REMOTE]         carry a local state or queue channel to NATS\n"
"  --import BUS:CHANNEL[=REMOTE]         carry a remote channel into a local bus\n"
"                                        (kind found from the local channel or NATS)\n"
"  --import-state BUS:CHANNEL[=REMOTE]   import, known to be a state channel\n"
"  --import-queue BUS:CHANNEL[=REMOTE]   import, known to be a queue channel\n"
"  --prefix P              subject prefix (default shmbus)\n"
"  --log-level L           error|warn|info|debug (default info)\n"
"  --liveness MS           liveness timeout set on the local buses\n"
"  --replicas N            JetStream replicas of streams and the KV bucket (default 1)\n"
"  --kv-interval MS        least time between KV updates of one state (default 100)\n"
"  --ack-wait MS           importer's redelivery timeout (default 5000)\n"
"  --fetch-batch N         importer's pull batch (default 128)\n"
"  --max-msg N --slots N   geometry of imported queues this bridge creates\n"
"  --cell-bytes N          imported queues it creates are queues of cells of N\n"
"                          bytes (a multiple of 8; --slots then counts cells)\n"
"  --status-ms MS          status channel refresh period (default 500)\n"
"  --config FILE           read settings from FILE (same keys, without dashes)\n";

void br_config_defaults(struct br_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->name, sizeof(cfg->name), "bridge-%d", (int)getpid());
	snprintf(cfg->prefix, sizeof(cfg->prefix), "shmbus");
	cfg->level = BR_INFO;
	cfg->replicas = 1;
	cfg->kv_interval_ms = 100;
	cfg->ack_wait_ms = 5000;
	cfg->fetch_batch = 128;
	cfg->status_ms = 500;
}

void br_sanitize(char *dst, size_t cap, const char *src)
{
	size_t i;

	for (i = 0; src[i] && i + 1 < cap; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = (isalnum(ch) || ch == '_' || ch == '-') ? (char)ch : '_';
	}
	dst[i] = 0;
}

static int parse_int(const char *key, const char *v, long long lo, long long hi,
                     long long *out)
{
	char *end;
	long long x;

	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi) {
		fprintf(stderr, "shmbus-bridge: %s: '%s' is not a number in %lld..%lld\n",
		        key, v, lo, hi);
		return -1;
	}
	*out = x;
	return 0;
}

/* BUS:CHANNEL[=REMOTE]; the bus may itself hold ':' (file:/path), so the
 * channel follows the last ':'. */
static int parse_link(struct bridge *br, int dir, int kind, const char *key,
                      const char *v)
{
	struct br_link *l;
	const char *colon = strrchr(v, ':'), *eq;
	size_t blen;

	if (br->nlinks >= BR_MAX_LINKS) {
		fprintf(stderr, "shmbus-bridge: more than %d links\n", BR_MAX_LINKS);
		return -1;
	}
	if (!colon || colon == v || !colon[1]) {
		fprintf(stderr, "shmbus-bridge: %s '%s': expected BUS:CHANNEL\n", key, v);
		return -1;
	}
	l = &br->links[br->nlinks];
	memset(l, 0, sizeof(*l));
	blen = (size_t)(colon - v);
	if (blen >= sizeof(l->bus)) {
		fprintf(stderr, "shmbus-bridge: %s '%s': bus name too long\n", key, v);
		return -1;
	}
	memcpy(l->bus, v, blen);
	l->bus[blen] = 0;
	eq = strchr(colon + 1, '=');
	if (eq) {
		snprintf(l->chan, sizeof(l->chan), "%.*s", (int)(eq - colon - 1), colon + 1);
		snprintf(l->remote, sizeof(l->remote), "%s", eq + 1);
	} else {
		snprintf(l->chan, sizeof(l->chan), "%s", colon + 1);
		memcpy(l->remote, l->chan, sizeof(l->remote));
	}
	if (shmbus_name_check(l->chan) || shmbus_name_check(l->remote)) {
		fprintf(stderr, "shmbus-bridge: %s '%s': %s\n", key, v, shmbus_last_error());
		return -1;
	}
	l->dir = dir;
	l->kind = kind;
	l->br = br;
	br->nlinks++;
	return 0;
}

/* A server URL the NATS client can use: [SCHEME://][USER[:PASS]@]HOST[:PORT][/PATH],
 * SCHEME nats, tls, ws or wss, HOST a name, an IPv4 address or [IPv6],
 * PORT 1..65535. The client itself takes almost anything as a host name
 * and then retries it for ever as "not reachable", so a typo would never
 * be reported: it is checked here, as a configuration error. 0 or -1 with
 * *why set. */
static int url_check(const char *u, const char **why)
{
	static const char *const schemes[] = {"nats://", "tls://", "ws://", "wss://"};
	const char *p = u, *host, *end, *at;
	size_t i;

	for (i = 0; u[i]; i++)
		if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f) {
			*why = "spaces and control characters are not allowed";
			return -1;
		}
	if (strstr(u, "://")) {
		for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
			if (!strncmp(u, schemes[i], strlen(schemes[i])))
				break;
		if (i == sizeof(schemes) / sizeof(schemes[0])) {
			*why = "the scheme must be nats://, tls://, ws:// or wss://";
			return -1;
		}
		p = u + strlen(schemes[i]);
	}
	end = p + strcspn(p, "/");
	at = memchr(p, '@', (size_t)(end - p));
	while (at && memchr(at + 1, '@', (size_t)(end - at - 1)))
		at = memchr(at + 1, '@', (size_t)(end - at - 1));
	host = at ? at + 1 : p;
	if (*host == '[') {
		const char *c = host + 1;

		while (c < end && (isxdigit((unsigned char)*c) || *c == ':' || *c == '.'))
			c++;
		if (c >= end || *c != ']' || c == host + 1) {
			*why = "a bracketed IPv6 address is [hex and colons]";
			return -1;
		}
		p = c + 1;
	} else {
		p = host;
		while (p < end && (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_'))
			p++;
		if (p == host) {
			*why = "no host name";
			return -1;
		}
	}
	if (p < end && *p == ':') {
		unsigned long port = 0;
		const char *d = ++p;

		while (p < end && isdigit((unsigned char)*p) && port <= 65535)
			port = port * 10 + (unsigned long)(*p++ - '0');
		if (p == d || p != end || port == 0 || port > 65535) {
			*why = "the port must be a number 1..65535";
			return -1;
		}
	}
	if (p != end) {
		*why = "a host name has only letters, digits, '.', '-' and '_'";
		return -1;
	}
	return 0;
}

static int add_urls(struct br_config *cfg, const char *v)
{
	char *copy = strdup(v), *save = NULL, *tok;
	const char *why = NULL;

	if (!copy)
		return -1;
	if (!*v) {
		fprintf(stderr, "shmbus-bridge: --nats: an empty server URL\n");
		free(copy);
		return -1;
	}
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (url_check(tok, &why)) {
			fprintf(stderr,
			        "shmbus-bridge: --nats '%s' is not a NATS server URL: %s "
			        "(expected e.g. nats://HOST:4222)\n", tok, why);
			free(copy);
			return -1;
		}
		if (cfg->nurls >= BR_MAX_URLS) {
			fprintf(stderr, "shmbus-bridge: more than %d NATS URLs\n", BR_MAX_URLS);
			free(copy);
			return -1;
		}
		cfg->urls[cfg->nurls++] = strdup(tok);
	}
	free(copy);
	return 0;
}

static int read_file(struct bridge *br, const char *path, int depth);

/* One setting. Returns 0, or -1 with a message printed. */
static int apply(struct bridge *br, const char *key, const char *v, int depth)
{
	struct br_config *cfg = &br->cfg;
	long long x;

#define STRSET(field) do { if (strlen(v) >= sizeof(cfg->field)) { \
	fprintf(stderr, "shmbus-bridge: %s: value too long\n", key); return -1; } \
	snprintf(cfg->field, sizeof(cfg->field), "%s", v); return 0; } while (0)
#define INTSET(field, lo, hi) do { if (parse_int(key, v, lo, hi, &x)) return -1; \
	cfg->field = x; return 0; } while (0)

	if (!strcmp(key, "name")) {
		if (shmbus_name_check(v) || strlen(v) + 8 > SHMBUS_NAME_MAX) {
			fprintf(stderr, "shmbus-bridge: name '%s': 1..%d characters of [A-Za-z0-9_.-]\n",
			        v, SHMBUS_NAME_MAX - 8);
			return -1;
		}
		STRSET(name);
	}
	if (!strcmp(key, "prefix")) {
		if (!*v || v[0] == '.' || v[strlen(v) - 1] == '.' || strpbrk(v, " *>\t")) {
			fprintf(stderr, "shmbus-bridge: prefix '%s' is not a subject prefix\n", v);
			return -1;
		}
		STRSET(prefix);
	}
	if (!strcmp(key, "nats") || !strcmp(key, "url"))
		return add_urls(cfg, v);
	if (!strcmp(key, "token"))
		STRSET(token);
	if (!strcmp(key, "user"))
		STRSET(user);
	if (!strcmp(key, "password"))
		STRSET(password);
	if (!strcmp(key, "creds"))
		STRSET(creds);
	if (!strcmp(key, "log-level")) {
		int lv = br_level_parse(v);
		if (lv < 0) {
			fprintf(stderr, "shmbus-bridge: log-level '%s': error|warn|info|debug\n", v);
			return -1;
		}
		cfg->level = lv;
		return 0;
	}
	if (!strcmp(key, "liveness"))
		INTSET(liveness_ms, 1, 3600000);
	if (!strcmp(key, "replicas"))
		INTSET(replicas, 1, 5);
	if (!strcmp(key, "kv-interval"))
		INTSET(kv_interval_ms, 0, 3600000);
	if (!strcmp(key, "ack-wait"))
		INTSET(ack_wait_ms, 500, 3600000);
	if (!strcmp(key, "fetch-batch"))
		INTSET(fetch_batch, 1, 4096);
	if (!strcmp(key, "max-msg"))
		INTSET(max_msg, 1, 64 << 20);
	if (!strcmp(key, "slots"))
		INTSET(slots, 2, 1 << 24);
	if (!strcmp(key, "cell-bytes")) {
		if (parse_int(key, v, 8, 1 << 30, &x))
			return -1;
		if (x % 8) {
			fprintf(stderr, "shmbus-bridge: cell-bytes: %lld is not a multiple of 8\n", x);
			return -1;
		}
		cfg->cell_bytes = (uint64_t)x;
		return 0;
	}
	if (!strcmp(key, "status-ms"))
		INTSET(status_ms, 10, 60000);
	if (!strcmp(key, "export"))
		return parse_link(br, BR_EXPORT, SHMBUS_KIND_NONE, key, v);
	if (!strcmp(key, "import"))
		return parse_link(br, BR_IMPORT, SHMBUS_KIND_NONE, key, v);
	if (!strcmp(key, "import-state"))
		return parse_link(br, BR_IMPORT, SHMBUS_KIND_STATE, key, v);
	if (!strcmp(key, "import-queue"))
		return parse_link(br, BR_IMPORT, SHMBUS_KIND_QUEUE, key, v);
	if (!strcmp(key, "config"))
		return read_file(br, v, depth + 1);
	fprintf(stderr, "shmbus-bridge: unknown setting '%s'\n%s", key, usage);
	return -1;
#undef STRSET
#undef INTSET
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

static int read_file(struct bridge *br, const char *path, int depth)
{
	char line[1024];
	FILE *f;
	int lineno = 0, r = 0;

	if (depth > 4) {
		fprintf(stderr, "shmbus-bridge: config files nest too deep at %s\n", path);
		return -1;
	}
	f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "shmbus-bridge: config %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (!r && fgets(line, sizeof(line), f)) {
		char *s, *k, *v, *hash = strchr(line, '#');

		lineno++;
		if (hash)
			*hash = 0;
		s = trim(line);
		if (!*s)
			continue;
		k = s;
		v = s + strcspn(s, " \t=");
		if (*v) {
			*v++ = 0;
			v = trim(v);
			if (*v == '=')
				v = trim(v + 1);
		}
		if (!*v) {
			fprintf(stderr, "shmbus-bridge: %s:%d: '%s' has no value\n", path, lineno, k);
			r = -1;
			break;
		}
		r = apply(br, k, v, depth);
		if (r)
			fprintf(stderr, "shmbus-bridge: (in %s line %d)\n", path, lineno);
	}
	fclose(f);
	return r;
}

int br_config_parse(struct bridge *br, int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		char key[64];
		const char *eq;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			return 1;
		}
		if (strncmp(a, "--", 2)) {
			fprintf(stderr, "shmbus-bridge: unexpected argument '%s'\n%s", a, usage);
			return -1;
		}
		a += 2;
		eq = strchr(a, '=');
		if (eq) {       /* --key=value */
			snprintf(key, sizeof(key), "%.*s", (int)(eq - a), a);
			v = eq + 1;
		} else {
			snprintf(key, sizeof(key), "%s", a);
			if (i + 1 >= argc) {
				fprintf(stderr, "shmbus-bridge: --%s needs a value\n", key);
				return -1;
			}
			v = argv[++i];
		}
		if (apply(br, key, v, 0))
			return -1;
	}
	if (br->cfg.nurls == 0)
		add_urls(&br->cfg, "nats://127.0.0.1:4222");
	if (br->nlinks == 0) {
		fprintf(stderr, "shmbus-bridge: nothing to do: give --export or --import\n");
		return -1;
	}
	return 0;
}

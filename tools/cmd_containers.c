/*
 * cmd_containers.c -- get and put on the shared containers: array, list
 * and dict channels.
 *
 * An array prints like a state value of shape [length] and is written
 * element by element (each element atomically, the whole not: a reader
 * may see some old and some new elements). A list prints one element per
 * line and `put` appends; a dict prints "key: value" lines and `put` takes
 * KEY=VALUE pairs. Elements, keys and values are bytes, shown as escaped
 * text (or hex).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Reading or writing an existing dict or list: never create one. */
static const shmbus_list_opts_t list_must_exist = {.size_of = sizeof(shmbus_list_opts_t),
                                                   .create = 0};
static const shmbus_dict_opts_t dict_must_exist = {.size_of = sizeof(shmbus_dict_opts_t),
                                                   .create = 0};

/* A growable buffer for elements of unknown size. */
struct buf {
	void *p;
	size_t cap;
};

static int buf_fit(struct buf *b, size_t n)
{
	void *p;

	if (n <= b->cap)
		return 0;
	p = realloc(b->p, n);
	if (!p)
		return -1;
	b->p = p;
	b->cap = n;
	return 0;
}

static void print_bytes(const void *p, size_t n, int json, int hex)
{
	if (hex) {
		if (json)
			putchar('"');
		print_hex(stdout, p, n);
		if (json)
			putchar('"');
	} else if (json) {
		json_str(stdout, p, n);
	} else {
		print_escaped(stdout, p, n);
	}
}

static void json_head(const char *chan, const char *kind)
{
	printf("{\"channel\": ");
	json_str(stdout, chan, strlen(chan));
	printf(", \"kind\": \"%s\"", kind);
}

/* Open array chan and a buffer for all its elements: 0, or the exit code
 * of the failure (reported). */
static int array_open_buf(shmbus_bus_t *bus, const char *chan, shmbus_array_t **ap,
                          unsigned char **vp)
{
	uint64_t len;
	size_t esz;
	shmbus_array_opts_t o;
	int r;

	shmbus_array_opts_init(&o);
	o.create = 0;
	o.length = 0;          /* an existing array, whatever its dtype and length */
	r = shmbus_array_open(bus, chan, &o, ap);

	if (r)
		return cli_fail(r, "array '%s' of bus '%s'", chan, shmbus_bus_name(bus));
	len = shmbus_array_length(*ap);
	esz = shmbus_dtype_size(shmbus_array_dtype(*ap));
	*vp = (esz && len <= SIZE_MAX / esz) ? malloc(len * esz + 1) : NULL;
	if (!*vp) {
		shmbus_array_close(*ap);
		return cli_msg(EX_ERROR, "out of memory for %" PRIu64 " elements", len);
	}
	return EX_OK;
}

static int array_get(shmbus_bus_t *bus, const char *chan, int json, int hex)
{
	shmbus_array_t *a;
	uint64_t len, i, shape[1];
	size_t esz;
	unsigned char *v;
	int r = 0, dtype, rc;

	rc = array_open_buf(bus, chan, &a, &v);
	if (rc)
		return rc;
	len = shmbus_array_length(a);
	dtype = shmbus_array_dtype(a);
	esz = shmbus_dtype_size(dtype);
	for (i = 0; i < len && !r; i++)
		r = shmbus_array_get(a, i, v + i * esz);
	if (r) {
		rc = cli_fail(r, "array '%s'", chan);
		goto out;
	}
	shape[0] = len;
	if (json) {
		json_head(chan, "array");
		printf(", \"dtype\": \"%s\", \"shape\": [%" PRIu64 "], \"value\": ",
		       shmbus_dtype_name(dtype), len);
	}
	/* Always a list, even of one element: an array is not a scalar. */
	if (len == 1 && !hex && dtype != SHMBUS_BYTES) {
		putchar('[');
		print_value(stdout, v, dtype, 1, shape, json, hex);
		putchar(']');
	} else {
		print_value(stdout, v, dtype, 1, shape, json, hex);
	}
	printf(json ? "}\n" : "\n");
out:
	free(v);
	shmbus_array_close(a);
	return rc;
}

static int list_get(shmbus_bus_t *bus, const char *chan, int json, int hex)
{
	struct buf b = {NULL, 0};
	shmbus_list_t *l = NULL;
	uint64_t n = 0, i;
	int r, rc = EX_OK;

	r = shmbus_list_open(bus, chan, &list_must_exist, &l);
	if (!r)
		r = shmbus_list_len(l, &n);
	if (r) {
		rc = cli_fail(r, "list '%s' of bus '%s'", chan, shmbus_bus_name(bus));
		goto out;
	}
	if (json) {
		json_head(chan, "list");
		printf(", \"value\": [");
	}
	for (i = 0; i < n; i++) {
		size_t len = 0;

		r = shmbus_list_get(l, (int64_t)i, b.p, b.cap, &len);
		if (r == SHMBUS_ETOOBIG) {
			if (buf_fit(&b, len)) {
				rc = cli_msg(EX_ERROR, "out of memory for a %zu-byte element", len);
				break;
			}
			r = shmbus_list_get(l, (int64_t)i, b.p, b.cap, &len);
		}
		if (r == SHMBUS_EINVAL && i > 0)
			break;  /* shortened meanwhile: print what there was */
		if (r) {
			rc = cli_fail(r, "list '%s' element %" PRIu64, chan, i);
			break;
		}
		if (json && i)
			printf(", ");
		print_bytes(b.p, len, json, hex);
		if (!json)
			putchar('\n');
	}
	if (json && !rc)
		printf("]}\n");
out:
	free(b.p);
	shmbus_list_close(l);
	return rc;
}

static int dict_get(shmbus_bus_t *bus, const char *chan, int json, int hex)
{
	struct buf k = {NULL, 0}, v = {NULL, 0};
	shmbus_dict_t *d = NULL;
	uint64_t cursor = 0;
	int r, rc = EX_OK, first = 1;

	/* Buffers must exist: dict_next skips the half whose buffer is NULL. */
	if (buf_fit(&k, 256) || buf_fit(&v, 256)) {
		rc = cli_msg(EX_ERROR, "out of memory");
		goto out;
	}
	r = shmbus_dict_open(bus, chan, &dict_must_exist, &d);
	if (r) {
		rc = cli_fail(r, "dict '%s' of bus '%s'", chan, shmbus_bus_name(bus));
		goto out;
	}
	if (json) {
		json_head(chan, "dict");
		printf(", \"value\": {");
	}
	for (;;) {
		size_t klen = 0, vlen = 0;

		r = shmbus_dict_next(d, &cursor, k.p, k.cap, &klen, v.p, v.cap, &vlen);
		if (r == SHMBUS_ETOOBIG) {
			if (buf_fit(&k, klen) || buf_fit(&v, vlen)) {
				rc = cli_msg(EX_ERROR, "out of memory for a %zu/%zu-byte entry", klen, vlen);
				break;
			}
			continue;
		}
		if (r == SHMBUS_ENOENT)
			break;
		if (r) {
			rc = cli_fail(r, "dict '%s'", chan);
			break;
		}
		if (json) {
			printf("%s", first ? "" : ", ");
			json_str(stdout, k.p, klen);  /* keys are strings in JSON */
			printf(": ");
		} else {
			print_bytes(k.p, klen, 0, hex);
			printf(": ");
		}
		print_bytes(v.p, vlen, json, hex);
		if (!json)
			putchar('\n');
		first = 0;
	}
	if (json && !rc)
		printf("}}\n");
out:
	free(k.p);
	free(v.p);
	shmbus_dict_close(d);
	return rc;
}

int container_get(shmbus_bus_t *bus, const char *chan, int kind, int json, int hex)
{
	int rc;

	if (kind == SHMBUS_KIND_ARRAY)
		rc = array_get(bus, chan, json, hex);
	else if (kind == SHMBUS_KIND_LIST)
		rc = list_get(bus, chan, json, hex);
	else
		rc = dict_get(bus, chan, json, hex);
	cli_flush();
	return rc;
}

/* ---- put ------------------------------------------------------------ */

static int array_put(shmbus_bus_t *bus, const char *chan, char **vals, int nvals)
{
	shmbus_array_t *a;
	uint64_t len, i, shape[1];
	char shape_s[32];
	unsigned char *v;
	size_t esz;
	int r = 0, dtype, rc;

	rc = array_open_buf(bus, chan, &a, &v);
	if (rc)
		return rc;
	len = shmbus_array_length(a);
	dtype = shmbus_array_dtype(a);
	esz = shmbus_dtype_size(dtype);
	shape[0] = len;
	shape_text(shape_s, sizeof(shape_s), 1, shape);
	if (parse_values(vals, nvals, dtype, len, chan, shape_s, v)) {
		rc = EX_USAGE;
		goto out;
	}
	for (i = 0; i < len && !r; i++)
		r = shmbus_array_set(a, i, v + i * esz);
	if (r)
		rc = cli_fail(r, "cannot write array '%s'", chan);
out:
	free(v);
	shmbus_array_close(a);
	return rc;
}

/* Bytes of one argument: as given, or hex; *owned gets what to free. */
static int arg_bytes(const char *s, size_t n, int hex, const void **p, size_t *len,
                     uint8_t **owned)
{
	char *tmp;
	int r;

	*owned = NULL;
	if (!hex) {
		*p = s;
		*len = n;
		return 0;
	}
	tmp = strndup(s, n);
	if (!tmp) {
		cli_msg(EX_ERROR, "out of memory");
		return -1;
	}
	r = parse_hex(tmp, owned, len);
	free(tmp);
	*p = *owned;
	return r;
}

int container_create(shmbus_bus_t *bus, const char *chan, int kind, int dtype,
                     uint64_t length)
{
	shmbus_array_t *a = NULL;
	shmbus_list_t *l = NULL;
	shmbus_dict_t *d = NULL;
	int r;

	if (kind == SHMBUS_KIND_ARRAY) {
		shmbus_array_opts_t o;

		shmbus_array_opts_init(&o);
		o.dtype = dtype;
		o.length = length;
		r = shmbus_array_open(bus, chan, &o, &a);
	} else if (kind == SHMBUS_KIND_LIST) {
		r = shmbus_list_open(bus, chan, NULL, &l);
	} else {
		r = shmbus_dict_open(bus, chan, NULL, &d);
	}
	shmbus_array_close(a);
	shmbus_list_close(l);
	shmbus_dict_close(d);
	if (r)
		return cli_fail(r, "cannot create %s '%s' on bus '%s'", shmbus_kind_name(kind),
		                chan, shmbus_bus_name(bus));
	return 0;
}

int container_put(shmbus_bus_t *bus, const char *chan, int kind, char **vals, int nvals,
                  int hex)
{
	shmbus_list_t *l = NULL;
	shmbus_dict_t *d = NULL;
	int r, i, rc = EX_OK;

	if (kind == SHMBUS_KIND_ARRAY) {
		if (hex)
			return cli_usage_error("--hex does not apply to an array; give its elements");
		return array_put(bus, chan, vals, nvals);
	}
	r = kind == SHMBUS_KIND_LIST ? shmbus_list_open(bus, chan, &list_must_exist, &l)
	                             : shmbus_dict_open(bus, chan, &dict_must_exist, &d);
	if (r)
		return cli_fail(r, "%s '%s' of bus '%s'", shmbus_kind_name(kind), chan,
		                shmbus_bus_name(bus));
	for (i = 0; i < nvals && !rc; i++) {
		const void *kp, *vp;
		uint8_t *ko, *vo;
		size_t kl, vl;
		char *eq;

		if (l) {
			if (arg_bytes(vals[i], strlen(vals[i]), hex, &vp, &vl, &vo)) {
				rc = EX_USAGE;
				break;
			}
			r = shmbus_list_append(l, vp, vl);
			free(vo);
			if (r)
				rc = cli_fail(r, "cannot append to list '%s'", chan);
			continue;
		}
		eq = strchr(vals[i], '=');
		if (!eq) {
			rc = cli_usage_error("dict entries are KEY=VALUE; '%s' has no '='", vals[i]);
			break;
		}
		if (arg_bytes(vals[i], (size_t)(eq - vals[i]), hex, &kp, &kl, &ko)) {
			rc = EX_USAGE;
			break;
		}
		if (arg_bytes(eq + 1, strlen(eq + 1), hex, &vp, &vl, &vo)) {
			free(ko);
			rc = EX_USAGE;
			break;
		}
		r = shmbus_dict_set(d, kp, kl, vp, vl);
		free(ko);
		free(vo);
		if (r)
			rc = cli_fail(r, "cannot set a key of dict '%s'", chan);
	}
	shmbus_list_close(l);
	shmbus_dict_close(d);
	return rc;
}

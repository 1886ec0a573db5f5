/*
 * fmt.c -- how the `shmbus` command shows values and reads them back.
 *
 * A typed value (dtype + shape) prints as nested lists, the same text in
 * plain and JSON output except where JSON has no word for it (nan and the
 * infinities become null, bools are true/false in both). A value of one
 * element prints as a bare number, so `shmbus get bus y` on a scalar gives
 * "4.5". Floats print with the fewest digits that read back to the same
 * bits. Byte strings print as escaped text or as hex.
 *
 * Values on the command line are tokens split at whitespace, commas and
 * brackets, so "1 2 3", "1,2,3" and "[[1, 2], [3, 4]]" all parse; each
 * token is range-checked against the dtype.
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"

/* ---- small printers -------------------------------------------------- */

void json_str(FILE *f, const void *s, size_t n)
{
	const unsigned char *p = s;
	size_t i;

	fputc('"', f);
	for (i = 0; i < n; i++) {
		unsigned char c = p[i];

		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\t': fputs("\\t", f); break;
		case '\r': fputs("\\r", f); break;
		default:
			/* Bytes outside printable ASCII go out as code points
			 * U+0000..U+00FF: the JSON stays valid whatever the data. */
			if (c < 0x20 || c >= 0x7f)
				fprintf(f, "\\u%04x", c);
			else
				fputc(c, f);
		}
	}
	fputc('"', f);
}

void json_shape(FILE *f, uint32_t ndim, const uint64_t *shape)
{
	uint32_t i;

	fputc('[', f);
	for (i = 0; i < ndim; i++)
		fprintf(f, "%s%" PRIu64, i ? ", " : "", shape[i]);
	fputc(']', f);
}

void print_hex(FILE *f, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		fprintf(f, "%02x", b[i]);
}

void print_escaped(FILE *f, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = b[i];

		switch (c) {
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\t': fputs("\\t", f); break;
		case '\r': fputs("\\r", f); break;
		default:
			if (c < 0x20 || c >= 0x7f)
				fprintf(f, "\\x%02x", c);
			else
				fputc(c, f);
		}
	}
}

/* Length of the well-formed UTF-8 sequence at p (n bytes left) that is
 * neither a C0 nor a C1 control, or 0. */
static size_t utf8_printable(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (p[0] >= 0x20 && p[0] < 0x7f)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
		return 0;       /* overlong, out of range, surrogate, C1 control */
	return len;
}

const char *term_text(const char *s)
{
	static char ring[4][4 * 1024 + 8];
	static unsigned next;
	const unsigned char *p = (const unsigned char *)s;
	char *out = ring[next++ % 4];
	size_t n = strlen(s), i = 0, o = 0, k;

	while (i < n && o + 8 < sizeof(ring[0])) {
		k = p[i] == '\\' ? 0 : utf8_printable(p + i, n - i);
		if (k) {
			memcpy(out + o, p + i, k);
			o += k;
			i += k;
		} else if (p[i] == '\\') {
			o += (size_t)sprintf(out + o, "\\\\");
			i++;
		} else {
			o += (size_t)sprintf(out + o, "\\x%02x", p[i]);
			i++;
		}
	}
	if (i < n)
		o += (size_t)sprintf(out + o, "...");
	out[o] = '\0';
	return out;
}

void shape_text(char *buf, size_t cap, uint32_t ndim, const uint64_t *shape)
{
	size_t len = 0;
	uint32_t i;

	if (cap == 0)
		return;
	buf[0] = '\0';
	len += (size_t)snprintf(buf + len, cap - len, "[");
	for (i = 0; i < ndim && len < cap; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%" PRIu64, i ? "," : "",
		                        shape[i]);
	if (len < cap)
		snprintf(buf + len, cap - len, "]");
}

void human_size(char *buf, size_t cap, uint64_t bytes)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, cap, "%.*f %s", v < 10 ? 1 : 0, v, units[u]);
}

void time_text(char *buf, size_t cap, uint64_t realtime_ns)
{
	time_t t = (time_t)(realtime_ns / 1000000000u);
	struct tm tm;

	if (realtime_ns == 0 || !gmtime_r(&t, &tm)) {
		snprintf(buf, cap, "-");
		return;
	}
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- typed values ---------------------------------------------------- */

/* The shortest of %.{6..17}g that reads back to the same double. */
static void print_double(FILE *f, double v, int json, int digits_max)
{
	char b[64];
	int d;

	if (isnan(v) || isinf(v)) {
		if (json)
			fputs("null", f);
		else
			fputs(isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"), f);
		return;
	}
	for (d = 6; d <= digits_max; d++) {
		snprintf(b, sizeof(b), "%.*g", d, v);
		if (digits_max == FLT_DECIMAL_DIG ? strtof(b, NULL) == (float)v
		                                  : strtod(b, NULL) == v)
			break;
	}
	/* JSON wants a digit after a bare minus or before an exponent; %g
	 * always gives one, so the text is valid as it is. */
	fputs(b, f);
}

static void print_elem(FILE *f, const unsigned char *p, int dtype, int json)
{
	switch (dtype) {
	case SHMBUS_INT8: { int8_t v; memcpy(&v, p, 1); fprintf(f, "%d", v); break; }
	case SHMBUS_UINT8: fprintf(f, "%u", p[0]); break;
	case SHMBUS_INT16: { int16_t v; memcpy(&v, p, 2); fprintf(f, "%d", v); break; }
	case SHMBUS_UINT16: { uint16_t v; memcpy(&v, p, 2); fprintf(f, "%u", v); break; }
	case SHMBUS_INT32: { int32_t v; memcpy(&v, p, 4); fprintf(f, "%" PRId32, v); break; }
	case SHMBUS_UINT32: { uint32_t v; memcpy(&v, p, 4); fprintf(f, "%" PRIu32, v); break; }
	case SHMBUS_INT64: { int64_t v; memcpy(&v, p, 8); fprintf(f, "%" PRId64, v); break; }
	case SHMBUS_UINT64: { uint64_t v; memcpy(&v, p, 8); fprintf(f, "%" PRIu64, v); break; }
	case SHMBUS_FLOAT32: { float v; memcpy(&v, p, 4); print_double(f, v, json, FLT_DECIMAL_DIG); break; }
	case SHMBUS_FLOAT64: { double v; memcpy(&v, p, 8); print_double(f, v, json, DBL_DECIMAL_DIG); break; }
	case SHMBUS_BOOL: fputs(p[0] ? "true" : "false", f); break;
	default: fprintf(f, "%u", p[0]); break;
	}
}

/* Nested lists over dims [d, ndim). */
static const unsigned char *print_dims(FILE *f, const unsigned char *p, int dtype,
                                       size_t esz, uint32_t ndim, const uint64_t *shape,
                                       uint32_t d, int json)
{
	uint64_t i;

	if (d == ndim) {
		print_elem(f, p, dtype, json);
		return p + esz;
	}
	fputc('[', f);
	for (i = 0; i < shape[d]; i++) {
		if (i)
			fputs(", ", f);
		p = print_dims(f, p, dtype, esz, ndim, shape, d + 1, json);
	}
	fputc(']', f);
	return p;
}

void print_value(FILE *f, const void *buf, int dtype, uint32_t ndim,
                 const uint64_t *shape, int json, int hex)
{
	size_t esz = shmbus_dtype_size(dtype);
	uint64_t n = 1;
	uint32_t i;

	for (i = 0; i < ndim; i++)
		n *= shape[i];
	if (dtype == SHMBUS_BYTES || hex) {
		size_t len = (size_t)(n * (esz ? esz : 1));

		if (hex) {
			if (json)
				fputc('"', f);
			print_hex(f, buf, len);
			if (json)
				fputc('"', f);
			return;
		}
		/* A byte string shorter than the channel's value is padded
		 * with NULs by `put`; they are not part of the text. */
		while (len > 0 && ((const unsigned char *)buf)[len - 1] == 0)
			len--;
		if (json)
			json_str(f, buf, len);
		else
			print_escaped(f, buf, len);
		return;
	}
	if (n == 1) {
		print_elem(f, buf, dtype, json);
		return;
	}
	print_dims(f, buf, dtype, esz, ndim, shape, 0, json);
}

/* ---- parsing --------------------------------------------------------- */

static int is_sep(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == ',' || c == '[' ||
	       c == ']' || c == '(' || c == ')';
}

/* Base 16 for "0x..", else 10: "010" is ten, as a user means it. */
static int num_base(const char *tok)
{
	if (*tok == '-' || *tok == '+')
		tok++;
	return (tok[0] == '0' && (tok[1] == 'x' || tok[1] == 'X')) ? 16 : 10;
}

static int parse_one(const char *tok, int dtype, unsigned char *out)
{
	static const struct { int64_t lo; uint64_t hi; } ranges[] = {
		[SHMBUS_INT8] = {INT8_MIN, INT8_MAX},   [SHMBUS_UINT8] = {0, UINT8_MAX},
		[SHMBUS_INT16] = {INT16_MIN, INT16_MAX}, [SHMBUS_UINT16] = {0, UINT16_MAX},
		[SHMBUS_INT32] = {INT32_MIN, INT32_MAX}, [SHMBUS_UINT32] = {0, UINT32_MAX},
		[SHMBUS_INT64] = {INT64_MIN, INT64_MAX}, [SHMBUS_UINT64] = {0, UINT64_MAX},
	};
	char *end;

	errno = 0;
	switch (dtype) {
	case SHMBUS_FLOAT32:
	case SHMBUS_FLOAT64: {
		double v = strtod(tok, &end);

		if (end == tok || *end)
			return -1;
		if (dtype == SHMBUS_FLOAT32) {
			float fv = (float)v;

			if (isfinite(v) && !isfinite(fv))
				return -2;
			memcpy(out, &fv, 4);
		} else {
			if (errno == ERANGE && isinf(v))
				return -2;
			memcpy(out, &v, 8);
		}
		return 0;
	}
	case SHMBUS_BOOL:
		if (!strcasecmp(tok, "true") || !strcmp(tok, "1"))
			out[0] = 1;
		else if (!strcasecmp(tok, "false") || !strcmp(tok, "0"))
			out[0] = 0;
		else
			return -1;
		return 0;
	case SHMBUS_INT8: case SHMBUS_INT16: case SHMBUS_INT32: case SHMBUS_INT64: {
		long long v = strtoll(tok, &end, num_base(tok));

		if (end == tok || *end)
			return -1;
		if (errno == ERANGE || v < ranges[dtype].lo || v > (long long)ranges[dtype].hi)
			return -2;
		if (dtype == SHMBUS_INT8) { int8_t x = (int8_t)v; memcpy(out, &x, 1); }
		else if (dtype == SHMBUS_INT16) { int16_t x = (int16_t)v; memcpy(out, &x, 2); }
		else if (dtype == SHMBUS_INT32) { int32_t x = (int32_t)v; memcpy(out, &x, 4); }
		else { int64_t x = v; memcpy(out, &x, 8); }
		return 0;
	}
	default: {     /* unsigned, and bytes as numbers 0..255 */
		unsigned long long v;
		int d = dtype == SHMBUS_BYTES ? SHMBUS_UINT8 : dtype;

		if (tok[0] == '-') {
			strtoll(tok, &end, num_base(tok));
			return (end != tok && !*end) ? -2 : -1;
		}
		v = strtoull(tok, &end, num_base(tok));
		if (end == tok || *end)
			return -1;
		if (errno == ERANGE || v > ranges[d].hi)
			return -2;
		if (d == SHMBUS_UINT8) { uint8_t x = (uint8_t)v; memcpy(out, &x, 1); }
		else if (d == SHMBUS_UINT16) { uint16_t x = (uint16_t)v; memcpy(out, &x, 2); }
		else if (d == SHMBUS_UINT32) { uint32_t x = (uint32_t)v; memcpy(out, &x, 4); }
		else { uint64_t x = v; memcpy(out, &x, 8); }
		return 0;
	}
	}
}

static const char *range_text(int dtype)
{
	switch (dtype) {
	case SHMBUS_INT8: return "-128..127";
	case SHMBUS_UINT8: case SHMBUS_BYTES: return "0..255";
	case SHMBUS_INT16: return "-32768..32767";
	case SHMBUS_UINT16: return "0..65535";
	case SHMBUS_INT32: return "-2147483648..2147483647";
	case SHMBUS_UINT32: return "0..4294967295";
	case SHMBUS_INT64: return "-9223372036854775808..9223372036854775807";
	case SHMBUS_UINT64: return "0..18446744073709551615";
	case SHMBUS_FLOAT32: return "about +-3.4e38";
	default: return "about +-1.8e308";
	}
}

int parse_values(char **args, int nargs, int dtype, uint64_t count,
                 const char *chan, const char *shape, void *buf)
{
	size_t esz = shmbus_dtype_size(dtype);
	uint64_t n = 0;
	char tok[128];
	int a;

	for (a = 0; a < nargs; a++) {
		const char *p = args[a];

		for (;;) {
			size_t len = 0;
			int r;

			while (*p && is_sep(*p))
				p++;
			if (!*p)
				break;
			while (p[len] && !is_sep(p[len]))
				len++;
			if (len >= sizeof(tok)) {
				cli_usage_error("value '%.20s...' is too long to be a number", p);
				return -1;
			}
			memcpy(tok, p, len);
			tok[len] = '\0';
			p += len;
			if (n < count) {
				r = parse_one(tok, dtype, (unsigned char *)buf + n * esz);
				if (r == -1) {
					cli_usage_error("value '%s' (element %" PRIu64 ") is not a valid %s",
					                tok, n, shmbus_dtype_name(dtype));
					return -1;
				}
				if (r == -2) {
					cli_usage_error("value '%s' (element %" PRIu64 ") is out of range for %s (%s)",
					                tok, n, shmbus_dtype_name(dtype), range_text(dtype));
					return -1;
				}
			}
			n++;
		}
	}
	if (n != count) {
		cli_usage_error("channel '%s' holds %" PRIu64 " %s value%s (shape %s); got %" PRIu64,
		                chan, count, shmbus_dtype_name(dtype), count == 1 ? "" : "s",
		                shape, n);
		return -1;
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int parse_hex(const char *s, uint8_t **out, size_t *len)
{
	size_t n = 0, cap = strlen(s) / 2 + 1;
	uint8_t *b = malloc(cap);
	const char *p = s;

	if (!b) {
		cli_msg(EX_ERROR, "out of memory");
		return -1;
	}
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	while (*p) {
		int hi, lo;

		if (*p == ' ' || *p == ':') {
			p++;
			continue;
		}
		hi = hexval(p[0]);
		lo = hi < 0 ? -1 : hexval(p[1]);
		if (lo < 0) {
			free(b);
			cli_usage_error("'%s' is not hex (pairs of 0-9 a-f, spaces or ':' between)", s);
			return -1;
		}
		b[n++] = (uint8_t)(hi << 4 | lo);
		p += 2;
	}
	*out = b;
	*len = n;
	return 0;
}

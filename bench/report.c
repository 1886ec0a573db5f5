/*
 * report.c -- turning runs into figures: medians, percentiles, ratios to
 * the baseline transport, the table on stdout, the JSON file, and one CDF
 * file per ping-pong figure for plot.py.
 *
 * Throughput is the median over runs (the machine is noisy; the spread
 * column says how noisy). Round-trip percentiles are taken over the samples
 * of all runs pooled, so that the p99.9 of a slow transport rests on more
 * than a handful of samples. Ratios are to the baseline's figure for the
 * same test and size, taken in the same invocation: on a noisy VM only
 * figures from one run compare.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

void report_note(struct report *rep, const char *fmt, ...)
{
	char buf[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	char **n = realloc(rep->notes, (rep->nnotes + 1) * sizeof *n);
	if (!n)
		return;
	rep->notes = n;
	rep->notes[rep->nnotes++] = strdup(buf);
}

const char *fmt_size(size_t n, char *buf, size_t cap)
{
	if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
		snprintf(buf, cap, "%zu MiB", n / (1024 * 1024));
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(buf, cap, "%zu KiB", n / 1024);
	else
		snprintf(buf, cap, "%zu B", n);
	return buf;
}

/* 3 significant digits with a K/M/G suffix: 93.1M, 3.30M, 729. */
const char *fmt_num(double v, char *buf, size_t cap)
{
	const char *suf = "";
	if (v >= 1e9) {
		v /= 1e9;
		suf = "G";
	} else if (v >= 1e6) {
		v /= 1e6;
		suf = "M";
	} else if (v >= 1e4) {
		v /= 1e3;
		suf = "K";
	}
	snprintf(buf, cap, v >= 100 || !*suf ? "%.0f%s" : v >= 10 ? "%.1f%s" : "%.2f%s", v, suf);
	return buf;
}

/* Nanoseconds with thousands separators: 65,600. */
static const char *fmt_ns(double v, char *buf, size_t cap)
{
	unsigned long long n = (unsigned long long)llround(v);
	char tmp[32];
	int len = snprintf(tmp, sizeof tmp, "%llu", n), o = 0;
	for (int i = 0; i < len && o + 2 < (int)cap; i++) {
		if (i && (len - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = 0;
	return buf;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *s, size_t n, double q)
{
	size_t i = (size_t)ceil(q * (double)n);
	return (double)s[i ? i - 1 : 0];
}

void report_latency(struct report *rep, struct result *r, uint64_t *s, size_t n)
{
	qsort(s, n, sizeof *s, cmp_u64);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (double)s[i];
	r->nsamples = n;
	r->p_min = (double)s[0];
	r->p50 = pct(s, n, 0.50);
	r->p90 = pct(s, n, 0.90);
	r->p99 = pct(s, n, 0.99);
	r->p999 = pct(s, n, 0.999);
	r->p_max = (double)s[n - 1];
	r->mean = sum / (double)n;

	/* The CDF: evenly spaced ranks through the body, every rank in the
	 * last few hundred, geometrically denser in between, so the tail
	 * survives the thinning. */
	snprintf(r->csv, sizeof r->csv, "latency_%s_%zu.csv", r->t->name, r->size);
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", rep->results_dir, r->csv);
	FILE *f = fopen(path, "w");
	if (!f) {
		report_note(rep, "cannot write %s", path);
		r->csv[0] = 0;
		return;
	}
	fprintf(f, "quantile,rtt_ns\n");
	size_t body = n / 5000 ? n / 5000 : 1;
	for (size_t i = 0; i < n;) {
		fprintf(f, "%.7f,%llu\n", (double)(i + 1) / (double)n, (unsigned long long)s[i]);
		size_t tail = (n - i) / 500, step = tail < body ? tail : body;
		i += step ? step : 1;
	}
	if (n > 1)
		fprintf(f, "1.0000000,%llu\n", (unsigned long long)s[n - 1]);
	fclose(f);
}

static const struct result *find(const struct report *rep, const char *name, enum test test, size_t size)
{
	for (size_t i = 0; i < rep->n; i++) {
		const struct result *r = &rep->r[i];
		if (r->status == ST_OK && r->test == test && r->size == size &&
		    strcmp(r->t->name, name) == 0)
			return r;
	}
	return NULL;
}

/* The ratio of r to the baseline for the same test and size (a zero-copy
 * figure compares to the baseline's zero-copy figure if it has one, else
 * to its copying one); NAN if there is none. */
static double ratio(const struct report *rep, const struct result *r)
{
	if (!rep->baseline || r->status != ST_OK)
		return NAN;
	const struct result *b = find(rep, rep->baseline, r->test, r->size);
	if (!b && r->test == TEST_ZEROCOPY)
		b = find(rep, rep->baseline, TEST_ONEWAY, r->size);
	if (!b)
		return NAN;
	return r->test == TEST_PINGPONG ? r->p50 / b->p50 : r->rate_med / b->rate_med;
}

static void print_ratio(double x)
{
	if (isnan(x))
		printf("  %10s", "-");
	else if (x >= 100)
		printf("  %10.0f", x);
	else if (x >= 0.01)
		printf("  %10.3g", x);
	else
		printf("  %10.2e", x);
}

void report_print(const struct report *rep)
{
	const char *base = rep->baseline ? rep->baseline : "(none)";
	char a[32], b[32], c[32], d[32];
	static const char *const title[TEST__COUNT] = {
		"One-way throughput, copy in and copy out",
		"One-way throughput, zero-copy (producer writes in place, consumer reads in place)",
		"Round trip (ping-pong), nanoseconds, all runs pooled",
	};
	printf("\nipcbench: role 0 on CPU %d, role 1 on CPU %d; %d run%s of %.2f s per figure%s\n",
	       rep->cpu[0], rep->cpu[1], rep->runs, rep->runs == 1 ? "" : "s", rep->run_s,
	       rep->quick ? " (--quick: smoke test, not a measurement)" : "");
	printf("cache-line round trip between the two CPUs (spinning, no clock reads), median (mean): "
	       "%.0f (%.0f) ns before, %.0f (%.0f) ns after\n",
	       rep->line_rtt[0], rep->line_mean[0], rep->line_rtt[1], rep->line_mean[1]);
	for (int t = 0; t < TEST__COUNT; t++) {
		if (!rep->tests[t])
			continue;
		int any = 0;
		for (size_t i = 0; i < rep->n; i++)
			any |= rep->r[i].test == (enum test)t && rep->r[i].status == ST_OK;
		if (!any)
			continue;
		printf("\n%s\n", title[t]);
		if (t == TEST_PINGPONG)
			printf("  %-8s  %-12s  %10s  %10s  %10s  %8s  %10s\n", "size", "transport",
			       "p50", "p99", "p99.9", "samples", "p50/base");
		else
			printf("  %-8s  %-12s  %10s  %8s  %10s  %6s\n", "size", "transport",
			       "msgs/s", "GB/s", "rate/base", "spread");
		for (size_t s = 0; s < rep->nsizes; s++) {
			int first = 1;
			for (size_t i = 0; i < rep->n; i++) {
				const struct result *r = &rep->r[i];
				if (r->test != (enum test)t || r->size != rep->sizes[s] || r->status != ST_OK)
					continue;
				printf("  %-8s  %-12s", first ? fmt_size(r->size, a, sizeof a) : "", r->t->name);
				first = 0;
				if (t == TEST_PINGPONG) {
					printf("  %10s  %10s  %10s  %8llu", fmt_ns(r->p50, a, sizeof a),
					       fmt_ns(r->p99, b, sizeof b), fmt_ns(r->p999, c, sizeof c),
					       (unsigned long long)r->nsamples);
					print_ratio(ratio(rep, r));
				} else {
					double spread = r->rate_med > 0 ? (r->rate_max - r->rate_min) / r->rate_med : 0;
					snprintf(d, sizeof d, "%.0f%%", spread * 100);
					printf("  %10s  %8.3g", fmt_num(r->rate_med, a, sizeof a),
					       r->rate_med * (double)r->size / 1e9);
					print_ratio(ratio(rep, r));
					printf("  %6s", d);
				}
				printf("\n");
			}
		}
	}
	printf("\nbaseline for the ratios: %s. GB/s counts payload bytes (1e9). spread = (max-min)/median over runs.\n",
	       base);
	int header = 0;
	for (size_t i = 0; i < rep->n; i++) {
		const struct result *r = &rep->r[i];
		if (r->status == ST_OK)
			continue;
		if (!header++)
			printf("\nNot measured:\n");
		printf("  %-12s %-9s %-8s %s: %s\n", r->t->name, test_names[r->test],
		       fmt_size(r->size, a, sizeof a), r->status == ST_SKIP ? "skipped" : "FAILED", r->note);
	}
	if (rep->nnotes)
		printf("\nNotes:\n");
	for (size_t i = 0; i < rep->nnotes; i++)
		printf("  %s\n", rep->notes[i]);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else
		fprintf(f, "%.6g", v);
}

static void cpu_model(char *buf, size_t cap)
{
	snprintf(buf, cap, "unknown");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	char line[256];
	while (fgets(line, sizeof line, f)) {
		char *c = strchr(line, ':');
		if (strncmp(line, "model name", 10) == 0 && c) {
			snprintf(buf, cap, "%s", c + 2);
			buf[strcspn(buf, "\n")] = 0;
			break;
		}
	}
	fclose(f);
}

int report_json(const struct report *rep, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	char date[32], cpu[128];
	time_t now = time(NULL);
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	cpu_model(cpu, sizeof cpu);
	struct utsname u;
	uname(&u);

	fprintf(f, "{\n  \"tool\": \"ipcbench\",\n  \"format\": 1,\n  \"date\": \"%s\",\n", date);
	fprintf(f, "  \"host\": {\"kernel\": ");
	json_str(f, u.release);
	fprintf(f, ", \"cpu\": ");
	json_str(f, cpu);
	fprintf(f, ", \"online_cpus\": %ld},\n", sysconf(_SC_NPROCESSORS_ONLN));
	fprintf(f, "  \"config\": {\"runs\": %d, \"run_seconds\": %g, \"pp_max\": %llu, \"quick\": %s, "
		   "\"cpus\": [%d, %d], \"sizes\": [",
		rep->runs, rep->run_s, (unsigned long long)rep->pp_max, rep->quick ? "true" : "false",
		rep->cpu[0], rep->cpu[1]);
	for (size_t i = 0; i < rep->nsizes; i++)
		fprintf(f, "%s%zu", i ? ", " : "", rep->sizes[i]);
	fprintf(f, "]},\n  \"line_rtt_ns\": {\"before\": ");
	json_num(f, rep->line_rtt[0]);
	fprintf(f, ", \"after\": ");
	json_num(f, rep->line_rtt[1]);
	fprintf(f, ", \"before_mean\": ");
	json_num(f, rep->line_mean[0]);
	fprintf(f, ", \"after_mean\": ");
	json_num(f, rep->line_mean[1]);
	fprintf(f, "},\n  \"baseline\": ");
	if (rep->baseline)
		json_str(f, rep->baseline);
	else
		fputs("null", f);
	fprintf(f, ",\n  \"units\": {\"msgs_per_s\": \"messages per second, median over runs\", "
		   "\"gb_per_s\": \"payload bytes per second / 1e9\", "
		   "\"rtt_ns\": \"round trip in nanoseconds, percentiles over all runs pooled\", "
		   "\"ratio_to_baseline\": \"one-way: msgs_per_s / baseline's; pingpong: p50 / baseline's p50\"},\n");
	fprintf(f, "  \"notes\": [");
	for (size_t i = 0; i < rep->nnotes; i++) {
		fprintf(f, "%s", i ? ", " : "");
		json_str(f, rep->notes[i]);
	}
	fprintf(f, "],\n  \"results\": [\n");
	for (size_t i = 0; i < rep->n; i++) {
		const struct result *r = &rep->r[i];
		static const char *const st[] = { "ok", "skipped", "failed" };
		fprintf(f, "    {\"transport\": \"%s\", \"test\": \"%s\", \"size\": %zu, \"status\": \"%s\"",
			r->t->name, test_names[r->test], r->size, st[r->status]);
		if (r->status != ST_OK) {
			fprintf(f, ", \"note\": ");
			json_str(f, r->note);
		} else if (r->test == TEST_PINGPONG) {
			fprintf(f, ", \"runs\": %d, \"samples\": %llu, \"rtt_ns\": {\"min\": ", r->nruns,
				(unsigned long long)r->nsamples);
			json_num(f, r->p_min);
			fprintf(f, ", \"p50\": ");
			json_num(f, r->p50);
			fprintf(f, ", \"p90\": ");
			json_num(f, r->p90);
			fprintf(f, ", \"p99\": ");
			json_num(f, r->p99);
			fprintf(f, ", \"p999\": ");
			json_num(f, r->p999);
			fprintf(f, ", \"max\": ");
			json_num(f, r->p_max);
			fprintf(f, ", \"mean\": ");
			json_num(f, r->mean);
			fprintf(f, "}, \"p50_runs\": [");
			for (int k = 0; k < r->nruns; k++) {
				fprintf(f, "%s", k ? ", " : "");
				json_num(f, r->run_p50[k]);
			}
			fprintf(f, "], \"ratio_to_baseline\": ");
			json_num(f, ratio(rep, r));
			fprintf(f, ", \"cdf_csv\": ");
			if (r->csv[0])
				json_str(f, r->csv);
			else
				fputs("null", f);
		} else {
			fprintf(f, ", \"runs\": %d, \"msgs_per_s\": ", r->nruns);
			json_num(f, r->rate_med);
			fprintf(f, ", \"gb_per_s\": ");
			json_num(f, r->rate_med * (double)r->size / 1e9);
			fprintf(f, ", \"msgs_per_s_min\": ");
			json_num(f, r->rate_min);
			fprintf(f, ", \"msgs_per_s_max\": ");
			json_num(f, r->rate_max);
			fprintf(f, ", \"msgs_per_s_runs\": [");
			for (int k = 0; k < r->nruns; k++) {
				fprintf(f, "%s", k ? ", " : "");
				json_num(f, r->rate[k]);
			}
			fprintf(f, "], \"messages_per_run_median\": %llu, \"ratio_to_baseline\": ",
				(unsigned long long)r->count_med);
			json_num(f, ratio(rep, r));
		}
		fprintf(f, "}%s\n", i + 1 < rep->n ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	return fclose(f) ? -1 : 0;
}

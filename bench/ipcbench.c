/*
 * ipcbench.c -- how fast do messages move between two processes on this
 * machine, through each transport? The command line, and the loop over
 * transports x sizes x tests x runs.
 *
 * For every transport (bench/transports.def), message size and test, the
 * harness makes a fresh setup, does R runs (each a fresh pair of child
 * processes pinned to two CPUs, see run.c), and keeps the median (one-way)
 * or the pooled percentiles (ping-pong). report.c prints the table, writes
 * the JSON file and the CDF files that plot.py draws.
 *
 * Tests:
 *   oneway     producer sends as fast as it can, consumer copies out and
 *              checks every sequence number: messages/s and GB/s.
 *   oneway-zc  the same through the zero-copy calls, for transports that
 *              have them: producer fills the message in place, consumer
 *              reads it in place.
 *   pingpong   one message there, one back, timed with CLOCK_MONOTONIC:
 *              p50/p99/p99.9 of the round trip.
 * Sizes above 1 MiB are frames: one-way only, zero-copy transports only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
	run_kill_children();
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ipcbench [options]\n"
		"\n"
		"Measures one-way throughput and ping-pong round trips between two processes\n"
		"pinned to two CPUs, for each transport; prints a table and writes JSON.\n"
		"\n"
		"  --only NAME[,NAME]  run only these transports (see --list)\n"
		"  --sizes LIST        message sizes, K and M suffixes are binary\n"
		"                      (default 8,64,4K,1M,8M; sizes over 1M are frames:\n"
		"                      one-way, zero-copy transports only)\n"
		"  --tests LIST        oneway,zc,pingpong (default all)\n"
		"  --runs R            runs per figure; throughput is the median (default 5)\n"
		"  --time SEC          length of one run (default 0.5)\n"
		"  --pp-max M          most round trips recorded per run (default 200000)\n"
		"  --quick             smoke test for CI: 2 short runs per figure\n"
		"  --baseline NAME     transport the ratios are relative to\n"
		"                      (default shmbus if it is built, else rawring)\n"
		"  --cpus A,B          CPUs of producer/pinger and consumer/ponger (default 0,1)\n"
		"  --results DIR       where the JSON and latency CSV files go\n"
		"                      (default: results/ next to the executable)\n"
		"  --json FILE         the JSON file (default DIR/ipcbench.json)\n"
		"  --list              list the transports and exit\n"
		"  --help              this text\n");
}

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "ipcbench: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(2);
}

static size_t parse_size(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		die("bad size '%s'", s);
	if (*end == 'K' || *end == 'k')
		v *= 1024, end++;
	else if (*end == 'M' || *end == 'm')
		v *= 1024 * 1024, end++;
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end || v < 8 || v > (1ull << 30))
		die("bad size '%s' (8 bytes to 1 GiB)", s);
	return (size_t)v;
}

/* Splits a comma list in place; returns the count. */
static size_t split(char *s, char **out, size_t max)
{
	size_t n = 0;
	for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
		out[n++] = tok;
	return n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static struct result *add_result(struct report *rep, const struct transport *t, enum test test, size_t size)
{
	if (rep->n == rep->cap) {
		rep->cap = rep->cap ? 2 * rep->cap : 64;
		rep->r = realloc(rep->r, rep->cap * sizeof *rep->r);
		if (!rep->r) {
			fprintf(stderr, "ipcbench: out of memory\n");
			exit(2);
		}
	}
	struct result *r = &rep->r[rep->n++];
	memset(r, 0, sizeof *r);
	r->t = t;
	r->test = test;
	r->size = size;
	return r;
}

static void results_dir_default(char *buf, size_t cap)
{
	char exe[PATH_MAX - 16];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0) {
		snprintf(buf, cap, "results");
		return;
	}
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = 0;
	snprintf(buf, cap, "%s/results", exe);
}

/* One figure being measured: a transport's setup for one test and size,
 * and the samples of its runs so far. */
struct fig {
	size_t r;               /* index of its result in rep->r (which may move) */
	struct tctx ctx;
	int set_up;             /* setup() succeeded: teardown() is owed */
	int live;               /* set up, and no run failed yet */
	uint64_t *pool;         /* ping-pong samples of all runs */
	size_t npool;
};

static int fig_begin(struct report *rep, struct fig *f, enum test test)
{
	struct result *r = &rep->r[f->r];
	if (test == TEST_PINGPONG) {
		f->pool = malloc((size_t)rep->runs * rep->pp_max * sizeof *f->pool);
		if (!f->pool) {
			r->status = ST_FAIL;
			snprintf(r->note, sizeof r->note, "out of memory for samples");
			return -1;
		}
	}
	int rc = f->ctx.t->setup(&f->ctx, f->ctx.max_msg);
	if (rc) {
		r->status = rc == BENCH_SKIP ? ST_SKIP : ST_FAIL;
		snprintf(r->note, sizeof r->note, "%s", f->ctx.note);
		return -1;
	}
	f->set_up = f->live = 1;
	return 0;
}

/* Run k of a figure. */
static void fig_run(struct report *rep, struct fig *f, const struct run_cfg *cfg, int k)
{
	struct result *r = &rep->r[f->r];
	struct run_res res;
	if (run_once(&f->ctx, cfg, &res)) {
		r->status = ST_FAIL;
		bench_strf(r->note, sizeof r->note, "run %d: %s", k + 1, res.err);
		f->live = 0;
		return;
	}
	r->rate[k] = res.rate;
	r->count[k] = res.count;
	if (f->pool) {
		uint64_t *seg = f->pool + f->npool;
		memcpy(seg, run_samples(), res.count * sizeof *seg);
		qsort(seg, res.count, sizeof *seg, cmp_u64);
		r->run_p50[k] = (double)seg[(res.count - 1) / 2];
		f->npool += res.count;
	}
	r->nruns = k + 1;
}

/* After the last run: the figure's median or percentiles; teardown. */
static void fig_end(struct report *rep, struct fig *f)
{
	struct result *r = &rep->r[f->r];
	if (r->status == ST_OK && r->nruns < rep->runs) {
		r->status = ST_FAIL;
		snprintf(r->note, sizeof r->note, "interrupted");
	}
	if (r->status == ST_OK && f->pool) {
		report_latency(rep, r, f->pool, f->npool);
	} else if (r->status == ST_OK) {
		double s[MAX_RUNS];
		uint64_t c[MAX_RUNS];
		memcpy(s, r->rate, sizeof s);
		memcpy(c, r->count, sizeof c);
		qsort(s, (size_t)r->nruns, sizeof *s, cmp_double);
		qsort(c, (size_t)r->nruns, sizeof *c, cmp_u64);
		int m = r->nruns;
		r->rate_med = m % 2 ? s[m / 2] : (s[m / 2 - 1] + s[m / 2]) / 2;
		r->rate_min = s[0];
		r->rate_max = s[m - 1];
		r->count_med = c[(m - 1) / 2];
	}
	if (f->set_up)
		f->ctx.t->teardown(&f->ctx);
	free(f->pool);
	f->pool = NULL;
}

static void progress(const struct result *r)
{
	char a[32], b[32], c[32];
	fprintf(stderr, "  %-12s %-9s %8s: ", r->t->name, test_names[r->test], fmt_size(r->size, a, sizeof a));
	if (r->status == ST_SKIP)
		fprintf(stderr, "skipped: %s\n", r->note);
	else if (r->status == ST_FAIL)
		fprintf(stderr, "FAILED: %s\n", r->note);
	else if (r->test == TEST_PINGPONG)
		fprintf(stderr, "p50 %s ns, p99 %s ns (%llu round trips)\n", fmt_num(r->p50, a, sizeof a),
			fmt_num(r->p99, b, sizeof b), (unsigned long long)r->nsamples);
	else
		fprintf(stderr, "%s msgs/s, %.3g GB/s\n", fmt_num(r->rate_med, c, sizeof c),
			r->rate_med * (double)r->size / 1e9);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "only", required_argument, NULL, 'o' },
		{ "sizes", required_argument, NULL, 's' },
		{ "tests", required_argument, NULL, 'T' },
		{ "runs", required_argument, NULL, 'r' },
		{ "time", required_argument, NULL, 't' },
		{ "pp-max", required_argument, NULL, 'p' },
		{ "quick", no_argument, NULL, 'q' },
		{ "baseline", required_argument, NULL, 'b' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "results", required_argument, NULL, 'R' },
		{ "json", required_argument, NULL, 'j' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct report rep = { .runs = -1, .cpu = { 0, 1 }, .run_s = -1, .pp_max = 0 };
	char *only = NULL, *sizes_arg = NULL, *tests_arg = NULL, *json = NULL;
	const char *baseline = NULL;
	char resdir[PATH_MAX];
	results_dir_default(resdir, sizeof resdir);

	int opt;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o': only = optarg; break;
		case 's': sizes_arg = optarg; break;
		case 'T': tests_arg = optarg; break;
		case 'r':
			rep.runs = atoi(optarg);
			if (rep.runs < 1 || rep.runs > MAX_RUNS)
				die("--runs wants 1 to 64, not '%s'", optarg);
			break;
		case 't':
			rep.run_s = atof(optarg);
			if (!(rep.run_s > 0 && rep.run_s <= 60))
				die("--time wants seconds in (0, 60], not '%s'", optarg);
			break;
		case 'p':
			rep.pp_max = strtoull(optarg, NULL, 10);
			if (rep.pp_max < 1 || rep.pp_max > 100000000)
				die("bad --pp-max '%s'", optarg);
			break;
		case 'q': rep.quick = 1; break;
		case 'b': baseline = optarg; break;
		case 'c':
			if (sscanf(optarg, "%d,%d", &rep.cpu[0], &rep.cpu[1]) != 2)
				die("--cpus wants A,B, not '%s'", optarg);
			break;
		case 'R': snprintf(resdir, sizeof resdir, "%s", optarg); break;
		case 'j': json = optarg; break;
		case 'l':
			for (size_t i = 0; bench_transports[i]; i++)
				printf("%-12s %s%s\n", bench_transports[i]->name, bench_transports[i]->what,
				       bench_transports[i]->send_reserve ? " [zero-copy]" : "");
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc)
		die("unexpected argument '%s' (see --help)", argv[optind]);
	if (rep.runs < 0)
		rep.runs = rep.quick ? 2 : 5;
	if (rep.run_s < 0)
		rep.run_s = rep.quick ? 0.03 : 0.5;
	if (!rep.pp_max)
		rep.pp_max = rep.quick ? 20000 : 200000;
	rep.results_dir = resdir;

	/* Transports, in table order. */
	const struct transport *sel[64];
	size_t nsel = 0;
	if (only) {
		char *names[64];
		size_t n = split(only, names, 64);
		for (size_t i = 0; i < n; i++)
			if (!bench_find(names[i]))
				die("no transport '%s' (see --list)", names[i]);
		for (size_t i = 0; bench_transports[i] && nsel < 64; i++)
			for (size_t j = 0; j < n; j++)
				if (strcmp(bench_transports[i]->name, names[j]) == 0) {
					sel[nsel++] = bench_transports[i];
					break;
				}
	} else {
		for (size_t i = 0; bench_transports[i] && nsel < 64; i++)
			sel[nsel++] = bench_transports[i];
	}

	size_t sizes[32], nsizes = 0;
	char sizes_default[] = "8,64,4K,1M,8M";
	char *tok[32];
	size_t nt = split(sizes_arg ? sizes_arg : sizes_default, tok, 32);
	for (size_t i = 0; i < nt; i++)
		sizes[nsizes++] = parse_size(tok[i]);
	rep.sizes = sizes;
	rep.nsizes = nsizes;

	if (tests_arg) {
		nt = split(tests_arg, tok, 32);
		for (size_t i = 0; i < nt; i++) {
			if (strcmp(tok[i], "oneway") == 0)
				rep.tests[TEST_ONEWAY] = 1;
			else if (strcmp(tok[i], "zc") == 0 || strcmp(tok[i], "oneway-zc") == 0)
				rep.tests[TEST_ZEROCOPY] = 1;
			else if (strcmp(tok[i], "pingpong") == 0)
				rep.tests[TEST_PINGPONG] = 1;
			else
				die("no test '%s' (oneway, zc, pingpong)", tok[i]);
		}
	} else {
		for (int t = 0; t < TEST__COUNT; t++)
			rep.tests[t] = 1;
	}

	if (baseline && !bench_find(baseline))
		die("no transport '%s' for --baseline (see --list)", baseline);
	if (!baseline)
		baseline = bench_find("shmbus") ? "shmbus" : "rawring";
	for (size_t i = 0; i < nsel; i++)
		if (strcmp(sel[i]->name, baseline) == 0)
			rep.baseline = baseline;
	if (!rep.baseline)
		report_note(&rep, "baseline %s was not run: no ratios", baseline);

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (rep.cpu[0] >= ncpu || rep.cpu[1] >= ncpu || rep.cpu[0] < 0 || rep.cpu[1] < 0) {
		fprintf(stderr, "ipcbench: --cpus %d,%d but only %ld CPUs online\n", rep.cpu[0], rep.cpu[1], ncpu);
		return 2;
	}
	if (rep.cpu[0] == rep.cpu[1])
		report_note(&rep, "both roles on CPU %d: spinning transports will crawl", rep.cpu[0]);
	if (mkdir(resdir, 0777) && errno != EEXIST) {
		fprintf(stderr, "ipcbench: mkdir %s: %s\n", resdir, strerror(errno));
		return 2;
	}
	char json_default[PATH_MAX + 32];
	snprintf(json_default, sizeof json_default, "%s/ipcbench.json", resdir);
	if (!json)
		json = json_default;
	if (run_init(rep.pp_max)) {
		fprintf(stderr, "ipcbench: cannot map shared memory for the control block\n");
		return 2;
	}

	struct sigaction sa = { .sa_handler = on_signal };
	/* Stop cleanly (children killed, daemons stopped, names unlinked) on
	 * Ctrl+C, kill, a closed terminal, or output piped into `head`. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);

	int inited[64] = { 0 };
	for (size_t i = 0; i < nsel; i++) {
		if (!sel[i]->global_init) {
			inited[i] = 1;
			continue;
		}
		char note[512] = "";
		int rc = sel[i]->global_init(note, sizeof note);
		if (rc == 0)
			inited[i] = 2;
		else
			report_note(&rep, "%s not run: %s", sel[i]->name, note);
	}
	int frames = 0;
	for (size_t s = 0; s < nsizes; s++)
		frames |= sizes[s] >= FRAME_MIN;
	if (frames)
		report_note(&rep, "sizes over 1 MiB are frames: measured one-way on zero-copy transports only");

	struct run_cfg cfg = {
		.budget_ns = (uint64_t)(rep.run_s * 1e9),
		.pp_max = rep.pp_max,
		.pp_warmup = rep.quick ? 100 : 1000,
		.cpu = { rep.cpu[0], rep.cpu[1] },
		.timeout_s = (unsigned)rep.run_s + 60,
	};
	rep.line_rtt[0] = run_line_rtt(rep.cpu, &rep.line_mean[0]);
	fprintf(stderr, "ipcbench: cache-line round trip CPU %d <-> CPU %d: %.0f ns (median), %.0f ns (mean)\n",
		rep.cpu[0], rep.cpu[1], rep.line_rtt[0], rep.line_mean[0]);
	/* Interleaved: for each size and test, every transport's run k is
	 * taken before any transport's run k+1, so the figures a ratio
	 * compares come from the same minutes (the VM's vCPU placement, and
	 * with it the cost of a cache-line transfer, changes several-fold
	 * within a full run). */
	unsigned serial = 0;
	double lmin = rep.line_rtt[0], lmax = rep.line_rtt[0];
	for (size_t s = 0; s < nsizes && !interrupted; s++) {
		int frame = sizes[s] >= FRAME_MIN;
		for (int test = 0; test < TEST__COUNT && !interrupted; test++) {
			if (!rep.tests[test] || (test == TEST_PINGPONG && frame))
				continue;
			struct fig figs[64];
			size_t nf = 0;
			for (size_t i = 0; i < nsel && nf < 64; i++) {
				const struct transport *t = sel[i];
				if (!inited[i] || (frame && !t->send_reserve) ||
				    (test == TEST_ZEROCOPY && !t->send_reserve) ||
				    (test != TEST_PINGPONG && t->pingpong_only))
					continue;
				struct fig *f = &figs[nf++];
				memset(f, 0, sizeof *f);
				add_result(&rep, t, (enum test)test, sizes[s]);
				f->r = rep.n - 1;
				f->ctx.t = t;
				f->ctx.max_msg = sizes[s];
				snprintf(f->ctx.tag, sizeof f->ctx.tag, "ipcbench-%d-%u", (int)getpid(), serial++);
				fig_begin(&rep, f, (enum test)test);
			}
			cfg.test = (enum test)test;
			cfg.size = sizes[s];
			for (int k = 0; k < rep.runs && !interrupted; k++)
				for (size_t j = 0; j < nf && !interrupted; j++)
					if (figs[j].live)
						fig_run(&rep, &figs[j], &cfg, k);
			for (size_t j = 0; j < nf; j++) {
				fig_end(&rep, &figs[j]);
				progress(&rep.r[figs[j].r]);
			}
			/* Watch the hardware between groups of figures. */
			double l = interrupted ? -1 : run_line_rtt(rep.cpu, NULL);
			if (l > 0 && l < lmin)
				lmin = l;
			if (l > lmax)
				lmax = l;
		}
	}
	if (lmin > 0 && lmax > 1.5 * lmin)
		report_note(&rep, "the cache-line round trip (median) ranged from %.0f to %.0f ns during the run: "
			    "the VM's CPUs were moved; figures of one size and test were taken interleaved, so "
			    "their ratios hold, but figures of different sizes do not compare", lmin, lmax);
	for (size_t i = 0; i < nsel; i++)
		if (inited[i] == 2)
			sel[i]->global_fini();
	rep.line_rtt[1] = interrupted ? -1 : run_line_rtt(rep.cpu, &rep.line_mean[1]);
	double lo = rep.line_rtt[0] < rep.line_rtt[1] ? rep.line_rtt[0] : rep.line_rtt[1];
	double hi = rep.line_rtt[0] < rep.line_rtt[1] ? rep.line_rtt[1] : rep.line_rtt[0];
	if (lo > 0 && hi > 1.5 * lo)
		report_note(&rep, "DISTURBED: the cache-line round trip moved from %.0f to %.0f ns during the run "
			    "(the VM's CPUs were moved): figures taken early and late do not compare",
			    rep.line_rtt[0], rep.line_rtt[1]);
	for (int k = 0; k < 2; k++)
		if (rep.line_rtt[k] > 0 && rep.line_mean[k] > 2 * rep.line_rtt[k])
			report_note(&rep, "DISTURBED: %s the run the cache-line round trip averaged %.0f ns against a "
				    "median of %.0f ns: something else ran on our CPUs; spinning transports suffer most",
				    k ? "after" : "before", rep.line_mean[k], rep.line_rtt[k]);
	if (interrupted) {
		fprintf(stderr, "ipcbench: interrupted\n");
		return 130;
	}

	report_print(&rep);
	if (report_json(&rep, json))
		fprintf(stderr, "ipcbench: cannot write %s: %s\n", json, strerror(errno));
	else
		printf("\nwrote %s\n", json);
	int failed = 0;
	for (size_t i = 0; i < rep.n; i++)
		failed |= rep.r[i].status == ST_FAIL;
	return failed ? 1 : 0;
}

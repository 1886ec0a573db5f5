/*
 * harness.h -- internal declarations shared by the harness files:
 * ipcbench.c (command line and the loop over transports, sizes and tests),
 * run.c (one run: two pinned child processes) and report.c (the table, the
 * JSON file and the latency CSV files).
 */
#ifndef IPCBENCH_HARNESS_H
#define IPCBENCH_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "bench.h"

enum test { TEST_ONEWAY, TEST_ZEROCOPY, TEST_PINGPONG, TEST__COUNT };
extern const char *const test_names[TEST__COUNT];

#define MAX_RUNS 64
/* Sizes above this are "frames": run one-way, on zero-copy transports only. */
#define FRAME_MIN (1024u * 1024 + 1)

/* What one run does. */
struct run_cfg {
	enum test test;
	size_t size;
	uint64_t budget_ns;     /* a run stops sending after this long */
	uint64_t pp_max;        /* most round trips recorded per run */
	uint64_t pp_warmup;     /* round trips done before recording */
	int cpu[2];             /* CPU of role 0 and role 1 */
	unsigned timeout_s;     /* the parent kills the children after this */
};

/* What one run measured. */
struct run_res {
	double rate;            /* messages per second (one-way tests) */
	uint64_t count;         /* messages (one-way) or round trips recorded */
	char err[600];          /* why the run failed; empty if it did not */
};

/* Maps the control block and a sample array of pp_max entries, shared with
 * the children. 0 or -1. */
int run_init(uint64_t pp_max);
/* Forks the two children, waits for them; samples[0..res->count) holds the
 * round trips of a ping-pong run. 0 if the run succeeded. */
int run_once(struct tctx *ctx, const struct run_cfg *cfg, struct run_res *res);
const uint64_t *run_samples(void);
/* The round trip of one cache line between the two CPUs, spinning, no
 * clock reads inside: what the hardware allows right now, the median over
 * blocks of 1000 (ns; -1 on failure); *mean (may be NULL) gets the mean,
 * which preemption inflates. Uses the sample array (run_init() first).
 * The VM's vCPU placement changes the median several-fold over hours. */
double run_line_rtt(const int cpu[2], double *mean);
/* Kills the children of the current run, if any (signal-safe). */
void run_kill_children(void);

enum status { ST_OK, ST_SKIP, ST_FAIL };

/* One figure of the report: a transport, a test and a size. */
struct result {
	const struct transport *t;
	enum test test;
	size_t size;
	enum status status;
	char note[700];
	int nruns;
	/* one-way */
	double rate[MAX_RUNS];
	uint64_t count[MAX_RUNS];
	double rate_med, rate_min, rate_max;
	uint64_t count_med;
	/* ping-pong, over all runs pooled */
	uint64_t nsamples;
	double p_min, p50, p90, p99, p999, p_max, mean;
	double run_p50[MAX_RUNS];
	char csv[96];           /* CDF file name inside the results directory */
};

struct report {
	struct result *r;
	size_t n, cap;
	const char *baseline;   /* NULL if none was run */
	char **notes;           /* general notes (skipped transports, ...) */
	size_t nnotes;
	/* configuration, for the header and the JSON */
	int runs, quick, cpu[2];
	double run_s;
	uint64_t pp_max;
	size_t *sizes;
	size_t nsizes;
	int tests[TEST__COUNT];
	const char *results_dir;
	double line_rtt[2];     /* run_line_rtt() before and after the run */
	double line_mean[2];    /* its means */
};

void report_note(struct report *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Fills the percentiles of r from the pooled samples (sorted in place) and
 * writes its CDF file. */
void report_latency(struct report *rep, struct result *r, uint64_t *s, size_t n);
void report_print(const struct report *rep);
int report_json(const struct report *rep, const char *path);
const char *fmt_size(size_t n, char *buf, size_t cap);
/* 3 significant digits and a K/M/G suffix. */
const char *fmt_num(double v, char *buf, size_t cap);

#endif

/*
 * cli.h -- what the files of the `shmbus` command share: exit codes, the
 * option parser, error reporting, value formatting and parsing, and one
 * entry point per subcommand. The command uses only the public header.
 */
#ifndef SHMBUS_CLI_H
#define SHMBUS_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "shmbus.h"

/* Exit codes (documented in `shmbus --help` and docs/cli.md). */
enum {
	EX_OK = 0,
	EX_USAGE = 1,     /* bad command line, or values/types that do not fit the channel */
	EX_NOTFOUND = 2,  /* no such bus or channel */
	EX_TIMEOUT = 3,   /* nothing to read: timeout ran out, queue empty, no value yet */
	EX_ERROR = 4,     /* any other failure (corrupt, permission, exists, ...) */
	EX_BUSY = 5,      /* refused: in use (live peers attached, writer role held) */
	EX_CLOSED = 6,    /* end of stream: the queue is shut and drained */
	EX_INTR = 130,    /* a one-shot command interrupted by Ctrl+C */
};

/* ---- util.c --------------------------------------------------------- */

extern const char *cli_cmd;           /* subcommand name, for messages */
/* Flags every command adds to the bus opens it makes: the global option
 * --allow-foreign-owner sets SHMBUS_BUS_ALLOW_FOREIGN_OWNER. */
extern uint32_t cli_bus_flags;
extern volatile sig_atomic_t cli_stop; /* set by SIGINT / SIGTERM */

/* Install SIGINT/SIGTERM handlers without SA_RESTART (blocking calls
 * return SHMBUS_EINTR) and ignore SIGPIPE. */
void cli_signals(void);

/* The exit code for a library error code. */
int cli_exit_code(int shmbus_code);

/* Print "shmbus: CMD: WHAT: <last error>" and return the exit code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "shmbus: CMD: MESSAGE" plus a --help hint; return EX_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "shmbus: CMD: MESSAGE" (no library detail); return code. */
int cli_msg(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Flush stdout; 0, or -1 when the reader went away (EPIPE): stop quietly. */
int cli_flush(void);

/* ---- options -------------------------------------------------------- */

struct cli_opt {
	const char *name;   /* long name without "--" */
	char short_name;    /* 0 if none */
	int has_arg;
	int id;
};

struct cli_args {
	int argc;
	char **argv;
	int i;              /* next argv index */
	int npos;
	char *pos[256];     /* positional arguments, in order */
	const char *arg;    /* the current option's argument */
};

#define CLI_OPT_HELP 1000
#define CLI_OPT_END 0

/* Next option id, CLI_OPT_END when done, -1 after a usage error (already
 * printed). Positionals (including negative numbers such as -1.5) are
 * collected in a->pos. --help and -h give CLI_OPT_HELP. */
int cli_next_opt(struct cli_args *a, const struct cli_opt *opts);
void cli_args_init(struct cli_args *a, int argc, char **argv);

/* Parsers; each prints a usage error and returns -1 on bad input. */
int cli_parse_duration(const char *s, const char *what, int64_t *ns);
int cli_parse_size(const char *s, const char *what, uint64_t *out);
int cli_parse_u64(const char *s, const char *what, uint64_t *out);
int cli_parse_mode(const char *s, uint32_t *mode);
int cli_parse_shape(const char *s, uint32_t *ndim, uint64_t *shape);

/* Deadline helpers for blocking loops that must notice Ctrl+C promptly:
 * waits are cut into slices so a signal that lands just before a wait
 * starts is seen within one slice. */
int64_t cli_now_ns(void);
/* The timeout for the next slice; end < 0 means no deadline. */
int64_t cli_slice(int64_t end);
/* Absolute deadline for a relative timeout (SHMBUS_FOREVER -> -1). */
int64_t cli_deadline(int64_t timeout_ns);

/* Open a bus; flags are SHMBUS_BUS_*. Prints the error. */
int cli_open_bus(const char *name, uint32_t flags, shmbus_bus_t **bus);

/* ---- fmt.c ---------------------------------------------------------- */

void json_str(FILE *f, const void *s, size_t n);
void json_shape(FILE *f, uint32_t ndim, const uint64_t *shape);
void print_hex(FILE *f, const void *p, size_t n);
/* Bytes as text: printable ASCII as is, \\ \n \t \r and \xNN for the rest. */
void print_escaped(FILE *f, const void *p, size_t n);
/* Text from outside (names from /dev/shm or a segment, library messages)
 * made safe for a terminal: valid printable UTF-8 as is; control bytes
 * (C0, DEL, C1), invalid UTF-8 and backslash as \xNN or \\. The result
 * lives in one of four static buffers (so up to four per printf), cut
 * with "..." past 4 KiB. */
const char *term_text(const char *s);
void shape_text(char *buf, size_t cap, uint32_t ndim, const uint64_t *shape);
void human_size(char *buf, size_t cap, uint64_t bytes);
void time_text(char *buf, size_t cap, uint64_t realtime_ns);

/* Print a typed value (dtype, shape) as text or JSON. A shape of one
 * element prints as a bare number in text mode; JSON nests lists. A bytes
 * value prints as escaped text without its trailing NULs, or as hex. */
void print_value(FILE *f, const void *buf, int dtype, uint32_t ndim,
                 const uint64_t *shape, int json, int hex);

/* Parse the values of a VALUES... list into buf (count elements of dtype).
 * Tokens are split at whitespace, commas and brackets, so "1 2 3",
 * "1,2,3" and "[1, 2, 3]" all work. Prints the problem; -1 on error. */
int parse_values(char **args, int nargs, int dtype, uint64_t count,
                 const char *chan, const char *shape, void *buf);
/* Parse hex ("0a1B..", spaces and ':' allowed) into a malloc'd buffer. */
int parse_hex(const char *s, uint8_t **out, size_t *len);

/* ---- cmd_get.c: shared by get, put and watch ------------------------- */

/* Options get and watch share. */
enum { O_JSON = 'j', O_HEX = 'x', O_SEQ = 's', O_TIMEOUT = 't', O_GROUP = 'g',
       O_COUNT = 'n', O_FOLLOW = 'f', O_LATEST = 'L' };

/* Open the bus without joining its peer table and describe the channel;
 * prints the error and returns the exit code. */
int cli_open_channel(const char *bus_name, const char *chan, shmbus_bus_t **bus,
                     shmbus_channel_info_t *ci);
/* Open an existing state channel as it is (any dtype/shape), park-waiting. */
int cli_open_state(shmbus_bus_t *bus, const char *chan, shmbus_state_t **st,
                   shmbus_channel_info_t *ci);
/* One state value as text ("SEQ: " first if with_seq) or a JSON object. */
void cli_print_state(const shmbus_channel_info_t *ci, const void *buf, uint64_t seq,
                     int json, int hex, int with_seq);
/* Wait for a value newer than `after` until deadline `end` (< 0: none):
 * 0, SHMBUS_ETIMEDOUT, or SHMBUS_EINTR once Ctrl+C was pressed. */
int cli_wait_newer(shmbus_state_t *st, uint64_t after, int64_t end);

/* ---- subcommands ---------------------------------------------------- */

int cmd_ls(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_put(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_create(int argc, char **argv);

/* Queue halves of get / put / info (cmd_queue.c). */
struct queue_get_opts {
	const char *group;
	int follow, json, hex, latest;
	int quiet;              /* no "SEQ: " prefix in text output */
	uint64_t count;         /* 0: no limit */
	int64_t timeout_ns;     /* per message */
};
int queue_get(shmbus_bus_t *bus, const char *chan, const struct queue_get_opts *o);
/* wait_groups > 0: first wait (up to timeout_ns) for that many groups. */
int queue_put(shmbus_bus_t *bus, const char *chan, char **vals, int nvals,
              int hex, int from_stdin, int shut, uint32_t wait_groups, int64_t timeout_ns);
/* array, list and dict channels (cmd_containers.c). */
int container_get(shmbus_bus_t *bus, const char *chan, int kind, int json, int hex);
int container_put(shmbus_bus_t *bus, const char *chan, int kind, char **vals, int nvals,
                  int hex);
int container_create(shmbus_bus_t *bus, const char *chan, int kind, int dtype,
                     uint64_t length);

/* Print the queue part of `info` for one channel (text or JSON fields). */
int queue_info(shmbus_bus_t *bus, const char *chan, int json);
/* Join GROUP; a group it makes starts at the oldest message still queued
 * (at the newest on a queue of cells, where the library refuses that). */
/* rm BUS QUEUE --group GROUP: remove the group; prints the error and
 * returns the exit code. */
int queue_drop_group(shmbus_bus_t *bus, const char *chan, const char *group);

#endif /* SHMBUS_CLI_H */

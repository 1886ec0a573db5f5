/*
 * main.c -- the `shmbus` command: look at and poke the buses on this
 * machine. This file dispatches to one function per subcommand and holds
 * the top-level help, which is also where the exit codes are documented.
 */
#include <string.h>

#include "cli.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{"ls", cmd_ls, "list the buses on this machine (stale ones marked)"},
	{"info", cmd_info, "channels, peers, queue depth and group lag of a bus"},
	{"get", cmd_get, "print a state value or container, or take messages from a queue"},
	{"put", cmd_put, "write a state value or container, or add messages to a queue"},
	{"watch", cmd_watch, "print each change of channels on one or more buses until Ctrl+C"},
	{"create", cmd_create, "create an empty bus"},
	{"rm", cmd_rm, "remove a bus (or a channel), refusing while peers live"},
	{"gc", cmd_gc, "reap dead peers, remove stale buses, report"},
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
	        "Usage: shmbus [--version] [--help] [--allow-foreign-owner] COMMAND [ARGS...]\n"
	        "\n"
	        "Inspect and use shmbus buses (shared-memory segments in /dev/shm, or\n"
	        "file:/path for a bus kept in a file).\n"
	        "\n"
	        "Commands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f,
	        "\n"
	        "'shmbus COMMAND --help' (or 'shmbus help COMMAND') describes one command.\n"
	        "ls, info, get and watch take --json for machine-readable output.\n"
	        "\n"
	        "--allow-foreign-owner (before or after COMMAND, any command): open buses\n"
	        "owned by another user or whose mode was widened after creation, e.g. one\n"
	        "shared by a group (created with --mode 0660). Refused by default (exit 4).\n"
	        "\n"
	        "Exit codes:\n"
	        "  0    success (also: watch or get --follow stopped by Ctrl+C or ended by\n"
	        "       end of stream)\n"
	        "  1    usage: bad option or argument, or values or types that do not fit\n"
	        "       the channel\n"
	        "  2    no such bus or channel\n"
	        "  3    timed out: no value yet, queue empty, or queue full\n"
	        "  4    any other failure (exists, corrupt, permission, system error)\n"
	        "  5    refused because in use: live peers attached, writer role held\n"
	        "  6    end of stream: the queue is shut and drained\n"
	        "  130  a one-shot command interrupted by Ctrl+C\n"
	        "Errors are printed on stderr as 'shmbus: COMMAND: what: why'.\n");
}

int main(int argc, char **argv)
{
	const char *name;
	size_t i;

	while (argc >= 2 && !strcmp(argv[1], "--allow-foreign-owner")) {
		cli_bus_flags |= SHMBUS_BUS_ALLOW_FOREIGN_OWNER;
		argv[1] = argv[0];
		argc--;
		argv++;
	}
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	name = argv[1];
	if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
		usage(stdout);
		return EX_OK;
	}
	if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
		printf("shmbus %s\n", shmbus_version(NULL, NULL, NULL));
		return EX_OK;
	}
	if (!strcmp(name, "help")) {
		static char help_flag[] = "--help";
		char *hargv[3];

		if (argc < 3) {
			usage(stdout);
			return EX_OK;
		}
		hargv[0] = argv[2];
		hargv[1] = help_flag;
		hargv[2] = NULL;
		for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			if (!strcmp(argv[2], commands[i].name)) {
				cli_cmd = commands[i].name;
				return commands[i].fn(2, hargv);
			}
		return cli_usage_error("unknown command '%s'", argv[2]);
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name)) {
			cli_cmd = commands[i].name;
			cli_signals();
			return commands[i].fn(argc - 1, argv + 1);
		}
	if (name[0] == '-')
		return cli_usage_error("unknown option '%s'", name);
	return cli_usage_error("unknown command '%s'", name);
}

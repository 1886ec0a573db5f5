#!/usr/bin/env bash
# test_errors.sh -- the CLI's exit code of each library error is one table
# (tools/util.c, driven by the header's SHMBUS_ERRORS), and docs/cli.md
# ("Exit codes") lists that same table.
#
# Proves: docs/cli.md's "library error | exit code" table names every code
# of SHMBUS_ERRORS in include/shmbus.h exactly once and nothing else; for
# each, the number it gives is what the command's cli_exit_code() returns
# (a small program built here against tools/util.c asks it) and is one of
# the exit codes the page's first table explains; and errors provoked
# through the command as a user would (a missing bus, a bad name, a bus
# that exists, a queue's oversized message, a shut queue, another dtype,
# bytes that are no bus, a widened mode, a writer role held by a live
# process, an empty queue) exit with the code the page gives for the
# error each one is. Nothing is left in /dev/shm.
#
#   env BUILD=build bash tests/test_errors.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
S=$BUILD/shmbus
W=$BUILD/tests/multiproc/cli_writer
PY=/usr/bin/python3
for f in "$S" "$W"; do
	[ -x "$f" ] || { echo "FAIL: $f is not built"; exit 1; }
done
B=t-err-$$
TMP=$(mktemp -d /tmp/test_errors.XXXXXX)
pass=0; fail=0; pids=(); last="(none yet)"; rc=0
: >"$TMP/out"; : >"$TMP/err"
cleanup() {
	local p b
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	for b in /dev/shm/shmbus-$B /dev/shm/shmbus-$B-*; do
		[ -e "$b" ] && rm -f "$b"
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
. tests/clicheck.sh

# The three tables, each as "SHMBUS_NAME VALUE" lines.
"$PY" - include/shmbus.h docs/cli.md >"$TMP/tables" 2>"$TMP/parse.err" <<'PYEOF'
import re, sys
hdr, doc = open(sys.argv[1]).read().splitlines(), open(sys.argv[2]).read()
# header: the lines of "#define SHMBUS_ERRORS(X)" up to the one without "\"
start = next(i for i, l in enumerate(hdr) if l.startswith("#define SHMBUS_ERRORS(X)"))
block = []
for l in hdr[start:]:
    block.append(l)
    if not l.rstrip().endswith("\\"):
        break
for n, v, _ in re.findall(r'\bX\(\s*(\w+)\s*,\s*(-?\d+)\s*,\s*"([^"]*)"\s*\)', "\n".join(block)):
    print("header SHMBUS_%s %s" % (n, v))
# docs/cli.md: the rows "| `SHMBUS_X` | N |" of the section "## Exit codes"
sec = doc.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
for n, c in re.findall(r'^\| `(SHMBUS_\w+)` \| (\d+) \|$', sec, re.M):
    print("doc %s %s" % (n, c))
for c in re.findall(r'^\| (\d+) \| [^|`]', sec, re.M):
    print("meaning %s" % c)
PYEOF
[ -s "$TMP/tables" ] || { echo "FAIL: cannot parse the tables:"; cat "$TMP/parse.err"; exit 1; }
awk '$1 == "header" { print $2 }' "$TMP/tables" >"$TMP/header"
awk '$1 == "doc" { print $2, $3 }' "$TMP/tables" >"$TMP/doc"
doc_exit() { awk -v n="$1" '$1 == n { print $2 }' "$TMP/doc"; }

echo "== the header's table, docs/cli.md's table and the command's table"
nh=$(wc -l <"$TMP/header")
expect "the header's SHMBUS_ERRORS has codes ($nh)" [ "$nh" -ge 22 ]
dups=$(awk '{ print $1 }' "$TMP/doc" | sort | uniq -d | tr '\n' ' ')
expect "docs/cli.md names no code twice${dups:+: $dups}" [ -z "$dups" ]
missing=$(awk '{ print $1 }' "$TMP/doc" | sort | comm -13 - <(sort "$TMP/header") | tr '\n' ' ')
expect "docs/cli.md names every code of the header${missing:+; missing: $missing}" [ -z "$missing" ]
extra=$(awk '{ print $1 }' "$TMP/doc" | sort | comm -23 - <(sort "$TMP/header") | tr '\n' ' ')
expect "docs/cli.md names no code the header lacks${extra:+: $extra}" [ -z "$extra" ]

# What the command's own table says: cli_exit_code() for every code of
# SHMBUS_ERRORS, asked by a program built from tools/util.c.
cat >"$TMP/probe.c" <<'CEOF'
#include "cli.h"
int main(void)
{
#define ASK(name, value, words) printf("SHMBUS_%s %d\n", #name, cli_exit_code(SHMBUS_##name));
	SHMBUS_ERRORS(ASK)
	return 0;
}
CEOF
san=""
case $BUILD in *asan*) san="-fsanitize=address,undefined";; *tsan*) san="-fsanitize=thread";; esac
if ! cc -std=gnu11 -D_GNU_SOURCE $san -Iinclude -Itools -o "$TMP/probe" "$TMP/probe.c" \
	tools/util.c tools/fmt.c "$BUILD/libshmbus.a" -pthread -lrt -lm 2>"$TMP/cc.err"; then
	echo "FAIL: cannot build the exit-code probe:"; cat "$TMP/cc.err"; exit 1
fi
"$TMP/probe" >"$TMP/cli"
while read -r name want; do
	got=$(awk -v n="$name" '$1 == n { print $2 }' "$TMP/cli")
	expect "$name exits $want, as docs/cli.md says (cli_exit_code: ${got:-none})" [ "$got" = "$want" ]
	grep -q "^meaning $want\$" "$TMP/tables"
	expect "exit code $want of $name is explained in docs/cli.md" [ $? -eq 0 ]
done <"$TMP/doc"
expect "the command's table has the header's codes" \
	cmp -s <(awk '{ print $1 }' "$TMP/cli") "$TMP/header"

# provoked NAME STDERR-PATTERN SCENARIO: the last run was an error the
# header calls NAME (its message says so); it exits with the page's code.
provoked() {
	local name=$1 pat=$2 what=$3 want
	want=$(doc_exit "$name")
	expect "$what ($name): exit ${want:-?} as docs/cli.md says" \
		eval '[ -n "$want" ] && code "$want" && err_has "$pat"'
}

echo "== errors provoked through the command"
run info "$B-none"
provoked SHMBUS_ENOENT "does not exist" "info on a missing bus"
run info "bad/name"
provoked SHMBUS_EINVAL "has character" "info on an invalid bus name"
run create --size 1M "$B"
expect "create a bus" code 0
run create "$B"
provoked SHMBUS_EEXIST "exists" "create of a bus that exists"
run put -c -k queue --max-msg 16 "$B" q 12345678901234567890
provoked SHMBUS_ETOOBIG "larger than queue 'q''s max_msg" "a message over the queue's max_msg"
run get -g g --timeout 0 "$B" q
provoked SHMBUS_EAGAIN "no message for group" "get from an empty queue, timeout 0"
run get -g g --timeout 200ms "$B" q
provoked SHMBUS_ETIMEDOUT "no message for group" "get from an empty queue, timeout 200ms"
run put --shut "$B" q abc
expect "put a message and shut the queue" code 0
run put "$B" q def
provoked SHMBUS_ECLOSED "is shut" "put to a shut queue"
run get -g g "$B" q
expect "get takes the last message" eval 'code 0 && out_is abc'
run get -g g "$B" q
provoked SHMBUS_ECLOSED "is shut and group 'g' has taken every message" "get from a shut, drained queue"
run put -c -d int32 "$B" s 1
expect "put --create an int32 state" code 0
run put -c -d float64 "$B" s 1
provoked SHMBUS_ETYPE "has dtype int32, not float64" "put --create of another dtype"
head -c 65536 /dev/zero >"/dev/shm/shmbus-$B-x"
run info "$B-x"
provoked SHMBUS_ECORRUPT "not a shmbus segment" "info on bytes that are no bus"
run create --size 1M "$B-p"
chmod 0666 "/dev/shm/shmbus-$B-p"
run info "$B-p"
provoked SHMBUS_EPERM "looser than the 0600" "info on a bus whose mode was widened"

# A live process holds the writer role of state y (it prints "ready" once
# it has written): another process's write is refused.
"$W" "$B-w" 20 900 >"$TMP/writer.out" 2>&1 &
wpid=$!; pids+=($wpid)
end=$((SECONDS + 30))
until grep -q ready "$TMP/writer.out" 2>/dev/null; do
	[ $SECONDS -ge $end ] && break
	sleep 0.05
done
run put "$B-w" y 5
provoked SHMBUS_EBUSY "$wpid" "put while another live process writes"
kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null

echo
echo "test_errors: $pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# test_header_errors.sh -- every function of include/shmbus.h says what it
# returns on failure, in the comment before it (or before its group), as
# lmdb.h does: "Errors: SHMBUS_EINVAL (bad name), SHMBUS_ENOENT, ...", or
# "Never fails." An "Errors" paragraph names only codes of the header's
# own table, SHMBUS_ERRORS.
#
# The header is parsed (a small Python script): a declaration is a line
# outside comments that starts a prototype of a shmbus_ function, up to
# its ';'. Its comment is the block comment that ends on the line just
# above it, or above the declarations without a blank line before it
# (its group: e.g. the wait set's add_event, add_lock and add_sem share
# add_queue's). That comment passes when it has "Errors" followed by ":"
# within a few words ("Errors:", "Errors (of every add):") or "never
# fails"; every SHMBUS_E... word from "Errors" to the end of the comment
# must be a code of SHMBUS_ERRORS. Every function the library exports
# (src/libshmbus.symbols) must have been found as a declaration, so a
# prototype the parser misses fails too.
#
#   bash tests/test_header_errors.sh      (HEADER=path checks another copy)
set -u
cd "$(dirname "$0")/.."
HEADER=${HEADER:-include/shmbus.h}
exec /usr/bin/python3 - "$HEADER" src/libshmbus.symbols <<'PYEOF'
import re
import sys

PENDING = set()

header, symbols = sys.argv[1], sys.argv[2]
lines = open(header).read().split("\n")

# The error table: the lines of "#define SHMBUS_ERRORS(X)" up to the first
# that does not end in a backslash.
start = next((i for i, l in enumerate(lines) if l.startswith("#define SHMBUS_ERRORS(X)")), None)
if start is None:
    sys.exit("FAIL  %s has no SHMBUS_ERRORS table" % header)
table_text = []
for l in lines[start:]:
    table_text.append(l)
    if not l.rstrip().endswith("\\"):
        break
codes = {"SHMBUS_" + n for n in re.findall(r"\bX\(\s*(\w+)\s*,\s*-?\d+\s*,", "\n".join(table_text))}
if len(codes) < 22:
    sys.exit("FAIL  SHMBUS_ERRORS has %d codes: %s" % (len(codes), sorted(codes)))

# Classify each line: 'c' inside (or ending) a block comment, 'b' blank,
# 'd' part of a shmbus_ declaration, 'o' anything else. Comments are
# recorded as (first line, last line, text).
kind = ["o"] * len(lines)
comments = {}           # last line -> (first line, text)
decls = []              # (name, first line)
in_comment = None
in_decl = False
for i, l in enumerate(lines):
    s = l.strip()
    if in_comment is not None:
        kind[i] = "c"
        in_comment.append(l)
        if "*/" in l:
            comments[i] = (first, "\n".join(in_comment))
            in_comment = None
        continue
    if in_decl:
        kind[i] = "d"
        in_decl = ";" not in l
        continue
    if not s:
        kind[i] = "b"
        continue
    if s.startswith("/*"):
        kind[i] = "c"
        first = i
        if "*/" in s:
            comments[i] = (i, l)
        else:
            in_comment = [l]
        continue
    m = re.match(r"^(?:const\s+)?[a-z_][a-z0-9_]*(?:\s+\*?|\s*\*\s*)(shmbus_[a-z0-9_]+)\(", l)
    if m and not s.startswith("typedef"):
        kind[i] = "d"
        decls.append((m.group(1), i))
        in_decl = ";" not in l

fail = []
seen = set()
for name, i in decls:
    seen.add(name)
    j = i - 1
    while j >= 0 and kind[j] == "d":      # up over the group's declarations
        j -= 1
    if name in PENDING:
        continue
    if j < 0 or kind[j] != "c" or j not in comments:
        fail.append("%s:%d: %s has no comment before it or its group" % (header, i + 1, name))
        continue
    text = comments[j][1]
    flat = " ".join(t.strip(" */") for t in text.split("\n"))
    errs = re.search(r"\bErrors\b[^:.;]{0,60}:", flat)
    if not errs and not re.search(r"\bnever fails\b", flat, re.I):
        fail.append("%s:%d: %s: its comment (line %d) has no \"Errors:\" and no \"Never fails.\""
                    % (header, i + 1, name, comments[j][0] + 1))
        continue
    if errs:
        for code in re.findall(r"\bSHMBUS_E[A-Z]+\b", flat[errs.start():]):
            if code not in codes:
                fail.append("%s:%d: %s: its comment names %s, not a code of SHMBUS_ERRORS"
                            % (header, i + 1, name, code))

exported = {l.split("@")[0] for l in open(symbols) if l.strip() and not l.startswith("#")}
for name in sorted(exported - seen):
    fail.append("%s: %s is exported but no declaration of it was found" % (header, name))

for f in sorted(set(fail)):
    print("FAIL  " + f)
print("%s: %d declarations, %d with their errors listed, %d pending (%s)"
      % (header, len(decls), len(decls) - len(PENDING & seen), len(PENDING & seen),
         ", ".join(sorted(PENDING & seen))))
print("test_header_errors: %s" % ("all passed" if not fail else "%d failed" % len(set(fail))))
sys.exit(1 if fail else 0)
PYEOF

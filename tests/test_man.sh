#!/usr/bin/env bash
# test_man.sh -- the man pages (man/*.scd) say what the programs do, and
# render cleanly.
#
# For every page: scdoc turns it into roff without an error, and both
# `man --warnings -l` and `groff -man -ww -z` render it without a warning.
# Against the built programs, as a user sees them:
#   - every command that `shmbus --help` lists has its own section in
#     shmbus(1) (`## CMD` in man/shmbus.1.scd), and every long option that
#     `shmbus CMD --help` lists appears in that section;
#   - the global options of `shmbus --help`'s usage line and every exit code
#     its table lists appear in shmbus(1);
#   - when the bridge is built, every option of `shmbus-bridge --help`
#     appears in shmbus-bridge(1);
#   - libshmbus(3)'s example program compiles and links against the
#     library, and (in a private /dev/shm) does what the page says.
# So a new command or option without its page fails here.
#
#   env BUILD=build bash tests/test_man.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CLI=$BUILD/shmbus
[ -x "$CLI" ] || { echo "FAIL  $CLI is not built (make tools)"; exit 1; }
for c in scdoc man groff; do
	command -v $c >/dev/null || { echo "FAIL  $c is not installed (bash scripts/deps.sh)"; exit 1; }
done
T=$(mktemp -d /tmp/shmbus-man.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0; checks=0
bad() { echo "FAIL  $*"; fail=$((fail + 1)); }
ok() { checks=$((checks + 1)); }

# 1. every page builds and renders without a warning
pages=(man/*.scd)
[ ${#pages[@]} -ge 4 ] || bad "expected at least 4 pages in man/, found ${#pages[@]}"
for src in "${pages[@]}"; do
	page=$T/$(basename "$src" .scd)
	if ! scdoc <"$src" >"$page" 2>"$T/err"; then
		bad "$src: scdoc: $(cat "$T/err")"; continue
	fi
	# man's own check (it runs groff with warnings on), then groff's
	# strictest (-ww: every warning), each must print nothing
	LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" >"$page.txt" 2>"$T/err" \
		|| bad "$src: man -l exits $?"
	[ -s "$T/err" ] && bad "$src: man --warnings -l warns:" "$(head -5 "$T/err")"
	groff -man -ww -z "$page" 2>"$T/err"
	[ -s "$T/err" ] && bad "$src: groff -man -ww warns:" "$(head -5 "$T/err")"
	[ -s "$page.txt" ] || bad "$src: renders empty"
	ok
done

# the text of one section of a rendered roff page: from `.SS NAME` (or
# `.SH NAME`) up to the next section heading
section() { # section PAGE KIND NAME
	awk -v k="$2" -v n="$3" '
		$1 == k && ($2 == n || $2 == "\"" n "\"") { on = 1; next }
		on && ($1 == ".SS" || $1 == ".SH") { exit }
		on { print }' "$1"
}
# the long options a --help text lists, one per line (--json, --max-msg)
options() { grep -oE '(^|[ ,|])--[a-z][a-z-]*' | sed 's/^[ ,|]*//' | sort -u; }
# roff escapes hyphens (\-) and scdoc bolds with \fB..\fR: look in plain text
plain() { sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e 's/\\(.."//g'; }

M1=$T/shmbus.1
[ -s "$M1" ] || { bad "man/shmbus.1.scd is missing"; M1=/dev/null; }

# 2. every command of `shmbus --help` has a section, with its options
"$CLI" --help >"$T/help" 2>&1 || bad "shmbus --help exits $?"
cmds=$(awk '/^Commands:/ { on = 1; next } on && /^$/ { exit } on && NF { print $1 }' "$T/help")
[ -n "$cmds" ] || bad "shmbus --help lists no commands (cannot check shmbus(1))"
for cmd in $cmds; do
	text=$(section "$M1" .SS "$cmd" | plain)
	if [ -z "$text" ]; then
		bad "shmbus(1) has no section for '$cmd' (shmbus --help lists it): add '## $cmd' to man/shmbus.1.scd"
		continue
	fi
	ok
	"$CLI" "$cmd" --help >"$T/h.$cmd" 2>&1 || bad "shmbus $cmd --help exits $?"
	for opt in $(options <"$T/h.$cmd"); do
		[ "$opt" = --help ] && continue
		if grep -qe "$opt\b" <<<"$text"; then ok; else
			bad "shmbus(1), section $cmd, does not mention $opt (listed by 'shmbus $cmd --help')"
		fi
	done
done

# 3. global options and exit codes
m1text=$(plain <"$M1")
for opt in $(head -1 "$T/help" | options); do
	if grep -qe "$opt\b" <<<"$m1text"; then ok; else bad "shmbus(1) does not mention the global option $opt"; fi
done
exits=$(awk '/^\.SH "?EXIT STATUS"?$/ { on = 1; next } on && /^\.SH/ { exit } on' "$M1" | plain)
codes=$(awk '/^Exit codes:/ { on = 1; next } on && /^  [0-9]+ / { print $1 } on && !/^ / { exit }' "$T/help")
[ -n "$codes" ] || bad "shmbus --help lists no exit codes"
for code in $codes; do
	if grep -qx "$code" <<<"$exits"; then ok; else
		bad "shmbus(1)'s EXIT STATUS has no entry for $code (shmbus --help lists it)"
	fi
done

# 4. the bridge's options, when it is built
BR=$BUILD/bridge/shmbus-bridge
if [ -x "$BR" ]; then
	brtext=$(plain <"$T/shmbus-bridge.1")
	"$BR" --help >"$T/brhelp" 2>&1
	opts=$(options <"$T/brhelp")
	[ -n "$opts" ] || bad "shmbus-bridge --help lists no options"
	for opt in $opts; do
		[ "$opt" = --help ] && continue
		if grep -qe "$opt\b" <<<"$brtext"; then ok; else
			bad "shmbus-bridge(1) does not mention $opt (listed by 'shmbus-bridge --help')"
		fi
	done
else
	echo "note: $BR not built (no libnats): its options are not checked against shmbus-bridge(1)"
fi

# 5. libshmbus(3)'s example program compiles against the header and links
# with the library; where a private /dev/shm can be had (unshare), it runs
# and `shmbus get plant y` then prints 1.5, as the page says
awk '/^# EXAMPLE/ { on = 1; next } on && /^```$/ { n++; if (n == 2) exit; next } on && n == 1' \
	man/libshmbus.3.scd | sed 's/^\t//; s/\\\\/\\/g' >"$T/example.c"
if ! grep -q 'int main' "$T/example.c"; then
	bad "no example program found in man/libshmbus.3.scd (# EXAMPLE, a \`\`\` block)"
elif san=$(nm "$BUILD/libshmbus.a" 2>/dev/null | grep -q __asan_ && echo -fsanitize=address,undefined
	nm "$BUILD/libshmbus.a" 2>/dev/null | grep -q __tsan_ && echo -fsanitize=thread)   # a sanitizer build's library
	cc -Wall -Wextra -Werror $san -Iinclude -o "$T/example" "$T/example.c" "$BUILD/libshmbus.a" -pthread -lrt -lm 2>"$T/err"; then
	ok
	if unshare -rm true 2>/dev/null; then
		got=$(unshare -rm bash -c 'mount -t tmpfs none /dev/shm && "$1" && "$2" get plant y' _ "$T/example" "$CLI" 2>&1)
		[ "$got" = 1.5 ] && ok || bad "libshmbus(3)'s example, then 'shmbus get plant y': '$got', not 1.5"
	else
		echo "note: no private /dev/shm (unshare -rm): libshmbus(3)'s example is compiled, not run"
	fi
else
	bad "libshmbus(3)'s example does not compile:" "$(head -5 "$T/err")"
fi

echo "$checks checks passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# test_docs.sh -- every shell example in README.md and docs/*.md runs.
#
# Convention (for whoever writes docs):
#   ```sh       a block of commands. Each line runs (bash, in a scratch
#               directory, `shmbus` = this build) in the order of the files
#               (README.md, then docs/*.md by name) and of the lines, and must
#               exit 0, or N if its comment says "exit N" ("# ... then exit 3").
#               A line with `watch` or `--follow` blocks: it gets 3 s, then
#               Ctrl+C (SIGINT), and must then exit 0 as docs/cli.md promises
#               (or end by itself with its expected code); one that had not
#               set up its handler yet (killed by SIGINT) runs again with 10 s.
#   ```console  a transcript: "$ CMD" lines run as above; when the output shown
#               under a command starts with "shmbus: " (an error), the command
#               must fail and its stderr must start with the same lines, numbers
#               (pids, sizes) aside. Other output is illustrative, not compared.
#   <!-- test_docs: check -->  on the line before a ```sh block: builds and
#               long runs (make test, make bench, fuzzing, package installs)
#               are not run but checked: bash syntax, every make target exists
#               (make -n), every script and built program named exists, every
#               other command is installed.
#   An untagged fenced block with a line that starts with "shmbus " or "$ "
#   fails the test: shell examples must say what they are (```text for a
#   synopsis that is not one).
#
# The examples name the buses of the running demos; before the first file
# this test makes them, as those programs would: demo_plant (y, u), jobs
# (queue q with two messages), plant (y, and u whose writer role a live
# process holds). Everything runs in a private /dev/shm (a mount namespace,
# `unshare -rm`), so `shmbus gc` in the examples touches nothing else; where
# that is not possible, lines that act on every bus (gc without BUS) are
# skipped, said so in the output.
#
#   env BUILD=build bash tests/test_docs.sh
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [ -z "${SHMBUS_T_PRIVATE:-}" ]; then
	if unshare -rm true 2>/dev/null; then
		exec env SHMBUS_T_PRIVATE=1 unshare -rm bash -c \
			'mount -t tmpfs -o size=256m shmbus-test /dev/shm 2>/dev/null || export SHMBUS_T_PRIVATE=0; exec bash "$0"' "$0"
	fi
	export SHMBUS_T_PRIVATE=0
fi
REPO=$(pwd)
S=$REPO/$BUILD/shmbus
PY=/usr/bin/python3
[ -x "$S" ] || { echo "FAIL: $S is not built"; exit 1; }
TMP=$(mktemp -d /tmp/test_docs.XXXXXX)
mkdir -p "$TMP/bin" "$TMP/work"
ln -s "$S" "$TMP/bin/shmbus"
pids=()

# The buses the examples name. Without a private /dev/shm, refuse to run
# over buses of the same names that someone else is using.
BUSES="demo_plant jobs plant lab"
cleanup() {
	local p b
	exec 3>&- 2>/dev/null
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	for b in $BUSES; do rm -f "/dev/shm/shmbus-$b"; done
	rm -rf "$TMP"
}
if [ "$SHMBUS_T_PRIVATE" != 1 ]; then
	for b in $BUSES; do
		if [ -e "/dev/shm/shmbus-$b" ]; then
			echo "skip  bus '$b' exists in the shared /dev/shm and no private one can be made"
			echo "0 passed, 0 failed"
			exit 0
		fi
	done
fi
trap cleanup EXIT

fixture() {
	"$S" create demo_plant && "$S" create jobs && "$S" create plant &&
	"$S" put --create demo_plant y 0 && "$S" put --create demo_plant u 0 &&
	"$S" put --create --kind queue jobs q first second &&
	"$S" put --create plant y 0 && "$S" put --create plant u 0 || return 1
	# a live writer of plant/u: `shmbus put --stdin` holds the role while it
	# reads (from a fifo this shell keeps open until it exits)
	mkfifo "$TMP/hold" || return 1
	"$S" put --stdin plant u <"$TMP/hold" &
	pids+=($!)
	exec 3>"$TMP/hold"
	echo 1 >&3
	local end=$((SECONDS + 30))
	until [ "$("$S" get plant u 2>/dev/null)" = 1 ]; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.1
	done
}
fixture || { echo "FAIL  making the buses the examples name"; exit 1; }

PATH="$TMP/bin:$PATH" SHMBUS_T_WORK="$TMP/work" SHMBUS_T_REPO="$REPO" \
	SHMBUS_T_BUILD="$BUILD" "$PY" - README.md docs/*.md <<'EOF'
import glob, os, re, shlex, signal, subprocess, sys, time

repo = os.environ['SHMBUS_T_REPO']
build = os.environ['SHMBUS_T_BUILD']
work = os.environ['SHMBUS_T_WORK']
private = os.environ.get('SHMBUS_T_PRIVATE') == '1'
passed = failed = 0


def ok(what):
    global passed
    passed += 1
    print('ok    ' + what)


def bad(what, why):
    global failed
    failed += 1
    print('FAIL  ' + what)
    for l in why.rstrip().split('\n'):
        print('      ' + l)


def blocks(path):
    """(line number, language, mode, lines) of each fenced block."""
    lines = open(os.path.join(repo, path)).read().split('\n')
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith('```'):
            lang = lines[i][3:].strip().split(' ')[0]
            prev = next((l for l in reversed(lines[:i]) if l.strip()), '')
            m = re.match(r'<!--\s*test_docs:\s*(\w+)', prev)
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith('```'):
                body.append(lines[i])
                i += 1
            out.append((start, lang, m.group(1) if m else 'run', body))
        i += 1
    return out


def expected_code(line):
    m = re.search(r'#.*\bexit (\d+)', line)
    return int(m.group(1)) if m else 0


def run(cmd, grace=3):
    """Run one example line; (exit code, stdout, stderr, interrupted)."""
    blocking = re.search(r'\bwatch\b|--follow', cmd.split('#')[0]) is not None
    p = subprocess.Popen(['bash', '-c', cmd], cwd=work, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, errors='replace',
                         start_new_session=True)
    try:
        o, e = p.communicate(timeout=grace if blocking else 120)
        return p.returncode, o, e, False
    except subprocess.TimeoutExpired:
        if not blocking:
            os.killpg(p.pid, signal.SIGKILL)
            o, e = p.communicate()
            return -1, o, e + '\n(killed after 120 s)', False
    # Ctrl+C, as a user at the terminal: to the whole foreground group.
    os.killpg(p.pid, signal.SIGINT)
    try:
        o, e = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        o, e = p.communicate()
        return -1, o, e + '\n(still running 15 s after Ctrl+C)', True
    if p.returncode == -signal.SIGINT and grace < 10:
        # killed by the signal's default action: on a loaded machine the
        # command had not started yet; once more with more time
        return run(cmd, 10)
    return p.returncode, o, e, True


def acts_on_every_bus(cmd):
    w = shlex.split(cmd, comments=True)
    return len(w) >= 2 and w[0] == 'shmbus' and w[1] == 'gc' and \
        all(a.startswith('-') for a in w[2:])


def run_line(where, cmd, want, want_err=None):
    if not private and acts_on_every_bus(cmd):
        print('skip  %s: %s (no private /dev/shm here)' % (where, cmd))
        return
    rc, o, e, intr = run(cmd)
    what = '%s: %s' % (where, cmd)
    detail = 'exit code %s, expected %s\nstdout: %s\nstderr: %s' % (
        rc, want if want_err is None else 'non-zero', o[:600], e[:600])
    if want_err is not None:
        norm = lambda s: re.sub(r'\d+', 'N', s.rstrip())
        got = e.rstrip('\n').split('\n')[:len(want_err)]
        if rc == 0 or [norm(l) for l in got] != [norm(l) for l in want_err]:
            bad(what, detail + '\nexpected stderr: ' + '\n'.join(want_err))
            return
    elif rc != (0 if intr else want) and not (intr and rc == want):
        bad(what, detail)
        return
    ok(what + (' (Ctrl+C after 3 s)' if intr else ''))


def check_line(where, line):
    w = shlex.split(line, comments=True)
    while w and re.match(r'^[A-Za-z_][A-Za-z0-9_]*=', w[0]):
        w = w[1:]
    if not w:
        return
    what = '%s: %s (checked, not run)' % (where, line.split('#')[0].strip())
    cmd, args = w[0], w[1:]
    if cmd == 'make':
        targets = [a for a in args if not a.startswith('-') and '=' not in a] or ['all']
        for t in targets:
            r = subprocess.run(['make', '-n', '-C', repo, t], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
            if r.returncode:
                return bad(what, 'make has no target %s: %s' % (t, r.stderr[:300]))
    elif cmd == 'bash':
        if not os.path.isfile(os.path.join(repo, args[0])):
            return bad(what, 'no script %s' % args[0])
    elif '/' in cmd and not cmd.startswith('/'):
        if cmd.startswith('venv/'):
            pass                                    # made by the line before
        elif cmd.startswith('build/'):
            p = os.path.join(repo, build, cmd[len('build/'):])
            if not os.access(p, os.X_OK):
                return bad(what, '%s is not built' % p)
        elif not os.path.exists(os.path.join(repo, cmd)):
            return bad(what, 'no %s' % cmd)
    else:
        if subprocess.run(['bash', '-c', 'command -v "$0"', cmd],
                          stdout=subprocess.DEVNULL).returncode:
            return bad(what, 'command %s is not installed' % cmd)
    ok(what)


for path in sys.argv[1:]:
    for start, lang, mode, body in blocks(path):
        where = '%s:%d' % (path, start)
        text = '\n'.join(body)
        if lang == 'sh' and mode == 'check':
            r = subprocess.run(['bash', '-n', '-c', text], stderr=subprocess.PIPE, text=True)
            if r.returncode:
                bad(where + ' (syntax)', r.stderr)
            for l in body:
                if l.strip() and not l.lstrip().startswith('#'):
                    check_line(where, l)
        elif lang == 'sh':
            for l in body:
                if l.strip() and not l.lstrip().startswith('#'):
                    run_line(where, l.strip(), expected_code(l))
        elif lang == 'console':
            i = 0
            while i < len(body):
                if not body[i].startswith('$ '):
                    i += 1
                    continue
                cmd, out = body[i][2:], []
                i += 1
                while i < len(body) and not body[i].startswith('$ '):
                    out.append(body[i])
                    i += 1
                err = out if out and out[0].startswith('shmbus: ') else None
                run_line(where, cmd, expected_code(cmd), err)
        elif lang == '' and any(l.startswith(('shmbus ', '$ ')) for l in body):
            bad(where, 'a shell example in an untagged block: mark it ```sh or ```console '
                '(or ```text if it is not one)')

print('%d passed, %d failed' % (passed, failed))
sys.exit(1 if failed else 0)
EOF

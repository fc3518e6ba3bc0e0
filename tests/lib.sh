# SPDX-License-Identifier: MIT
#
# tests/lib.sh: TAP helpers for kgpt's shell tests (tests/*/*.sh).
#
#   . "$(dirname "$0")/../lib.sh"
#   new_tmpdir tmp
#   run kmake O="$tmp/o" defconfig-gpt2-tiny
#   is "$RUN_RC" 0 "gpt2-tiny loads"
#   like "$RUN_ERR" "CONFIG_SEED" "the message names the symbol"
#   done_testing
#
# Each check prints one "ok N - name" or "not ok N - name" line, and on
# failure "# " diagnostics; done_testing prints the plan "1..N" and exits
# 1 when anything failed. scripts/run-tests.sh counts the lines.
# A missing tool is a failure (need), never a silent skip.

set -u

srctree=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export srctree

# A test starts from a clean slate: nothing of the caller's make or
# kconfig state (make check exports KCONFIG_CONFIG, MAKEFLAGS, O=, TIME=...)
# may leak into the temporary trees the tests build.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS \
	KCONFIG_CONFIG KCONFIG_ALLCONFIG KCONFIG_SEED KCONFIG_PROBABILITY \
	KCONFIG_AUTOHEADER KCONFIG_AUTOCONFIG KCONFIG_TRISTATE \
	KCONFIG_NOSILENTUPDATE KCONFIG_OVERWRITECONFIG CONFIG_ \
	O V TIME GPT2_MAX_TIME BASELINE

tap_n=0
tap_failed=0
_tap_tmpdirs=()
_tap_cleanups=()

_tap_exit() {
	local c d
	for c in "${_tap_cleanups[@]+"${_tap_cleanups[@]}"}"; do
		eval "$c" >/dev/null 2>&1
	done
	if [ "${KGPT_KEEP_TMP:-0}" != 1 ]; then
		for d in "${_tap_tmpdirs[@]+"${_tap_tmpdirs[@]}"}"; do
			rm -rf "$d"
		done
	fi
}
trap _tap_exit EXIT
trap 'exit 130' INT TERM

# diag TEXT...: print TEXT as "# " comment lines (multi-line text too).
diag() {
	local line
	printf '%s\n' "$*" | while IFS= read -r line; do
		printf '# %s\n' "$line"
	done
}

# pass NAME / fail NAME [DIAG...]. Every check returns 0 when it passed
# and 1 when it failed, so "is ... || show_run" adds diagnostics.
pass() {
	tap_n=$((tap_n + 1))
	printf 'ok %d - %s\n' "$tap_n" "$1"
}

fail() {
	local name=$1
	shift
	tap_n=$((tap_n + 1))
	tap_failed=$((tap_failed + 1))
	printf 'not ok %d - %s\n' "$tap_n" "$name"
	[ $# -gt 0 ] && diag "$@"
	return 1
}

# ok STATUS NAME: pass when STATUS (an exit status) is 0.
#   cmp -s a b; ok $? "a and b are identical"
ok() {
	if [ "$1" = 0 ]; then pass "$2"; else fail "$2"; fi
}

# is GOT WANT NAME
is() {
	if [ "$1" = "$2" ]; then
		pass "$3"
	else
		fail "$3" "got:  '$1'" "want: '$2'"
	fi
}

# isnt GOT UNWANTED NAME
isnt() {
	if [ "$1" != "$2" ]; then
		pass "$3"
	else
		fail "$3" "got '$1', which it must not be"
	fi
}

# like TEXT ERE NAME: TEXT has a line matching the extended regex ERE.
like() {
	if printf '%s\n' "$1" | grep -Eq -e "$2"; then
		pass "$3"
	else
		fail "$3" "no line matches /$2/ in:" "$1"
	fi
}

# unlike TEXT ERE NAME
unlike() {
	if printf '%s\n' "$1" | grep -Eq -e "$2"; then
		fail "$3" "a line matches /$2/:" "$(printf '%s\n' "$1" | grep -E -e "$2")"
	else
		pass "$3"
	fi
}

# same_file A B NAME: A and B are byte-identical.
same_file() {
	if cmp -s "$1" "$2"; then
		pass "$3"
	else
		fail "$3" "$1 and $2 differ:" "$(diff "$1" "$2" 2>&1 | head -20)"
	fi
}

# has_line FILE LINE NAME: FILE contains LINE exactly (a whole line).
has_line() {
	if grep -Fxq -e "$2" "$1" 2>/dev/null; then
		pass "$3"
	else
		fail "$3" "$1 has no line '$2'"
	fi
}

# skip NAME REASON: counted as skipped by scripts/run-tests.sh. Only for
# tests that cannot apply (never for a missing tool: see need).
skip() {
	tap_n=$((tap_n + 1))
	printf 'ok %d - %s # SKIP %s\n' "$tap_n" "$1" "$2"
}

# need TOOL...: a missing tool is a failing test; returns 1 if any is missing.
need() {
	local t missing=0
	for t in "$@"; do
		if ! command -v "$t" >/dev/null 2>&1; then
			fail "tool '$t' is installed" "install it with scripts/install-deps.sh"
			missing=1
		fi
	done
	return $missing
}

# new_tmpdir VAR: set VAR to a fresh directory, removed when the test
# exits (KGPT_KEEP_TMP=1 keeps it for a post-mortem).
new_tmpdir() {
	local d
	d=$(mktemp -d "${TMPDIR:-/tmp}/kgpt-test.XXXXXX") || exit 1
	_tap_tmpdirs+=("$d")
	printf -v "$1" '%s' "$d"
}

# at_exit COMMAND: run COMMAND (a string) when the test exits.
at_exit() {
	_tap_cleanups+=("$1")
}

# run CMD...: run CMD with stdin from /dev/null; sets RUN_RC, RUN_OUT
# (stdout), RUN_ERR (stderr) and RUN_ALL (both).
_run_dir=
run() {
	if [ -z "$_run_dir" ]; then
		_run_dir=$(mktemp -d "${TMPDIR:-/tmp}/kgpt-run.XXXXXX") || exit 1
		_tap_tmpdirs+=("$_run_dir")
	fi
	"$@" </dev/null >"$_run_dir/out" 2>"$_run_dir/err"
	RUN_RC=$?
	RUN_OUT=$(cat "$_run_dir/out")
	RUN_ERR=$(cat "$_run_dir/err")
	RUN_ALL=$RUN_OUT${RUN_OUT:+${RUN_ERR:+$'\n'}}$RUN_ERR
	return 0
}

# show_run: the last run's output as diagnostics (after a failure).
show_run() {
	diag "exit status $RUN_RC; output:"
	diag "$RUN_ALL"
}

# kmake ARGS...: make in the source tree (use O=DIR to stay out of the
# user's .config).
kmake() {
	(cd "$srctree" && make --no-print-directory "$@")
}

# done_testing: print the plan; exit status 1 if anything failed.
done_testing() {
	printf '1..%d\n' "$tap_n"
	if [ "$tap_failed" -gt 0 ]; then
		printf '# %d of %d failed\n' "$tap_failed" "$tap_n"
		exit 1
	fi
	exit 0
}

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-tests.sh [GROUP...]: kgpt's test suite, behind `make check`.
#
# Groups (all of them, in this order, when none is named):
#   unit     make unit-tests, then every build/tests/test_* binary
#   kconfig  tests/kconfig/*.sh (configuration system, in temporary O= trees)
#   model    tests/model/run.sh
#   train    tests/train/*.sh
#   wandb    tests/wandb/*.sh (the W&B uploader, a loopback server)
#   ablation tests/ablation/*.sh (the ablation matrix on a tiny model)
#   asan     the unit tests, and the model tests of tests/configs/grad-base,
#            built with AddressSanitizer + UndefinedBehaviorSanitizer
#            (make SAN=1, in build/asan) and run with leak detection
#   fuzz     tests/fuzz/run.sh: the fuzz targets for KGPT_FUZZ_SECONDS each
# Every test program prints TAP ("ok N - ...", "not ok N - ..."). This
# prints each program's output, counts the lines per group and ends with
# one line "N passed, N failed" (", N skipped" when some are). A program
# that crashes, times out, exits non-zero without a "not ok", prints no
# test at all or runs fewer tests than it planned counts as one failure.
# Exit status 1 when anything failed.
#
# Environment: KGPT_DATA_MIRROR (default: ../shared/data beside the tree),
# KGPT_TEST_TIMEOUT (seconds per test program, default 600), O= and V=1
# as for make, KGPT_FUZZ_SECONDS (per fuzz target, default 60), and
# ASAN_OPTIONS / UBSAN_OPTIONS, appended to the asan group's own (e.g.
# ASAN_OPTIONS=detect_leaks=0 where LeakSanitizer cannot run: under
# ptrace, gdb or strace).
set -u

srctree=$(cd "$(dirname "$0")/.." && pwd)
all_groups="unit kconfig model train wandb ablation asan fuzz"

usage() {
	echo "usage: $0 [GROUP...]   (groups: $all_groups)" >&2
	exit 2
}

groups=()
for g in "$@"; do
	case " $all_groups " in
	*" $g "*) groups+=("$g") ;;
	*) echo "run-tests: unknown group '$g'" >&2; usage ;;
	esac
done
[ ${#groups[@]} -gt 0 ] || read -r -a groups <<< "$all_groups"

# make check passes its own state down (MAKEFLAGS, KCONFIG_CONFIG, a
# jobserver); the tests start from a clean slate and get O= and V= back
# explicitly where they build in the user's tree. Overrides meant for a
# training run (TIME=, BASELINE=) must not change what the tests expect.
objtree=${O:+$(realpath -m "$O")}
verbose=${V:-}
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS KCONFIG_CONFIG \
	O V TIME GPT2_MAX_TIME BASELINE
make_args=(--no-print-directory ${objtree:+O=$objtree} ${verbose:+V=$verbose})
build=${objtree:-$srctree}/build

# Data files for the tests (read-only mirror); relative paths are made
# absolute because tests change directory.
KGPT_DATA_MIRROR=${KGPT_DATA_MIRROR:-$srctree/../shared/data}
KGPT_DATA_MIRROR=$(realpath -m "$KGPT_DATA_MIRROR")
export KGPT_DATA_MIRROR

timeout_s=${KGPT_TEST_TIMEOUT:-600}
jobs=$(nproc 2>/dev/null || echo 2)

total_pass=0 total_fail=0 total_skip=0
g_pass=0 g_fail=0 g_skip=0

# A failure found by the runner itself (not printed by a test program).
runner_fail() {
	printf 'not ok - %s\n' "$1"
	shift
	local line
	for line in "$@"; do printf '# %s\n' "$line"; done
	g_fail=$((g_fail + 1))
}

runner_pass() {
	printf 'ok - %s\n' "$1"
	g_pass=$((g_pass + 1))
}

# run_tap LABEL CMD...: run one TAP program (stdin /dev/null, stderr
# merged, a time limit), print its output and count its results. Lines
# that are not TAP are printed as "# " comments.
run_tap() {
	local label=$1 line lc rc n_ok=0 n_notok=0 n_skip=0 plan=0 n_plans=0 n_skip_lines=0 p rcfile
	shift
	printf '# %s\n' "$label"
	rcfile=$(mktemp "${TMPDIR:-/tmp}/kgpt-rc.XXXXXX")
	while IFS= read -r line; do
		case $line in
		"not ok" | "not ok "*)
			printf '%s\n' "$line"; n_notok=$((n_notok + 1)) ;;
		"ok" | "ok "*)
			printf '%s\n' "$line"
			lc=${line,,}
			if [[ $lc =~ \#[[:space:]]*skip ]]; then
				n_skip=$((n_skip + 1)) n_skip_lines=$((n_skip_lines + 1))
			else
				n_ok=$((n_ok + 1))
			fi ;;
		1..*)
			printf '%s\n' "$line"
			p=${line#1..}; p=${p%%[!0-9]*}
			lc=${line,,}
			# "1..0 # SKIP reason": the whole program skipped, visibly.
			if [ "${p:-0}" = 0 ] && [[ $lc =~ \#[[:space:]]*skip ]]; then
				n_skip=$((n_skip + 1))
			else
				plan=$((plan + ${p:-0})) n_plans=$((n_plans + 1))
			fi ;;
		"#"*)
			printf '%s\n' "$line" ;;
		*)
			printf '# %s\n' "$line" ;;
		esac
	done < <(timeout --kill-after=10 "$timeout_s" "$@" </dev/null 2>&1; echo $? > "$rcfile")
	rc=$(cat "$rcfile")
	rm -f "$rcfile"
	g_pass=$((g_pass + n_ok)) g_fail=$((g_fail + n_notok)) g_skip=$((g_skip + n_skip))

	# One runner failure at most per program, the most telling one. A
	# program may run several TAP producers (one plan each): the plans
	# must add up to what ran, or one of them stopped early.
	local ran=$((n_ok + n_notok + n_skip_lines))
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		runner_fail "$label: timed out after ${timeout_s}s (KGPT_TEST_TIMEOUT)"
	elif [ "$rc" -gt 128 ]; then
		runner_fail "$label: killed by signal $((rc - 128))"
	elif [ "$n_plans" -gt 0 ] && [ "$plan" != "$ran" ]; then
		runner_fail "$label: planned $plan tests ($n_plans plan lines) but ran $ran"
	elif [ "$rc" != 0 ] && [ "$n_notok" = 0 ]; then
		runner_fail "$label: exit status $rc without a failing test"
	elif [ $((ran + n_skip)) = 0 ]; then
		runner_fail "$label: ran no tests"
	fi
}

# make_step LABEL MAKE-ARGS...: make in the source tree, one TAP line
# (the last 40 lines of its output on failure); returns make's status.
make_step() {
	local label=$1 out rc
	shift
	out=$(cd "$srctree" && make --no-print-directory "$@" 2>&1)
	rc=$?
	if [ "$rc" = 0 ]; then
		runner_pass "$label"
	else
		runner_fail "$label (exit status $rc)"
		printf '%s\n' "$out" | tail -40 | sed 's/^/# /'
	fi
	return $rc
}

group_unit() {
	local src name bin
	local srcs=("$srctree"/tests/unit/test_*.c)
	[ -e "${srcs[0]}" ] || { printf '# no tests in unit\n'; return; }
	make_step "make unit-tests" "${make_args[@]}" -j"$jobs" unit-tests
	for src in "${srcs[@]}"; do
		name=$(basename "$src" .c)
		bin=$build/tests/$name
		if [ ! -x "$bin" ]; then
			runner_fail "tests/unit/$name: not built ($bin)"
			continue
		fi
		run_tap "tests/unit/$name" "$bin"
	done
}

# run_scripts DIR: every tests/DIR/*.sh, each a TAP program.
run_scripts() {
	local t
	local tests=("$srctree/tests/$1"/*.sh)
	[ -e "${tests[0]}" ] || { printf '# no tests in %s\n' "$1"; return; }
	for t in "${tests[@]}"; do
		run_tap "tests/$1/$(basename "$t")" bash "$t"
	done
}

group_kconfig() {
	run_scripts kconfig
}

group_model() {
	if [ -f "$srctree/tests/model/run.sh" ]; then
		run_tap "tests/model/run.sh" bash "$srctree/tests/model/run.sh"
	else
		printf '# no tests in model\n'
	fi
}

group_train() {
	run_scripts train
}

# The W&B uploader against a loopback server (tests/wandb/server.py).
group_wandb() {
	run_scripts wandb
}

# The ablation matrix on a tiny model (tests/ablation/).
group_ablation() {
	run_scripts ablation
}

# The sanitizer runtimes' settings: every error ends the program with a
# report (-fno-sanitize-recover=all makes UBSan's fatal too), leaks
# included; the user's own settings come last and win.
san_env=(env
	"ASAN_OPTIONS=detect_leaks=1:check_initialization_order=1:strict_string_checks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
	"UBSAN_OPTIONS=print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}")

# san_make LABEL MAKE-ARGS...: build in a sanitizer tree, one TAP line.
san_make() {
	local label=$1
	shift
	make_step "$label" ${verbose:+V=$verbose} SAN=1 "$@"
}

group_asan() {
	local src name bin t asan=$build/asan cfg=grad-base
	local srcs=("$srctree"/tests/unit/test_*.c) models=()

	if san_make "make SAN=1 unit-tests (build/asan)" O="$asan" -j"$jobs" unit-tests; then
		for src in "${srcs[@]}"; do
			name=$(basename "$src" .c)
			bin=$asan/build/tests/$name
			run_tap "asan: tests/unit/$name" "${san_env[@]}" "$bin"
		done
	fi

	# One small configuration's model tests: the model, the checkpoint
	# reader and writer, the float64 gradient checks.
	for src in "$srctree"/tests/model/test_*.c; do
		models+=("$asan/$cfg/build/tests/model/$(basename "$src" .c)")
	done
	mkdir -p "$asan"
	if ! "$srctree/scripts/load-config.sh" "$srctree" "$asan/$cfg" \
		"$srctree/tests/configs/$cfg.config" defconfig >"$asan/$cfg.log" 2>&1; then
		runner_fail "asan: load tests/configs/$cfg.config"
		tail -20 "$asan/$cfg.log" | sed 's/^/# /'
		return
	fi
	san_make "make SAN=1 the model tests of $cfg (build/asan/$cfg)" \
		O="$asan/$cfg" -j"$jobs" "${models[@]}" || return
	for t in "${models[@]}"; do
		run_tap "asan: $cfg: tests/model/$(basename "$t")" "${san_env[@]}" "$t"
	done
}

group_fuzz() {
	# four fuzzing runs of KGPT_FUZZ_SECONDS each, after the build
	local s=${KGPT_FUZZ_SECONDS:-60} timeout_s=$timeout_s

	[ "$timeout_s" -ge $((4 * s + 420)) ] || timeout_s=$((4 * s + 420))
	run_tap "tests/fuzz/run.sh" bash "$srctree/tests/fuzz/run.sh"
}

summary() {
	printf '%d passed, %d failed' "$1" "$2"
	[ "$3" -gt 0 ] && printf ', %d skipped' "$3"
	printf '\n'
}

start_all=$SECONDS
for g in "${groups[@]}"; do
	printf '# ==== %s ====\n' "$g"
	g_pass=0 g_fail=0 g_skip=0
	start=$SECONDS
	cd "$srctree" || exit 1
	"group_$g"
	printf '# %s: %s (%ds)\n' "$g" "$(summary $g_pass $g_fail $g_skip)" $((SECONDS - start))
	total_pass=$((total_pass + g_pass))
	total_fail=$((total_fail + g_fail))
	total_skip=$((total_skip + g_skip))
done
printf '# all groups took %ds\n' $((SECONDS - start_all))
summary $total_pass $total_fail $total_skip
[ "$total_fail" = 0 ]

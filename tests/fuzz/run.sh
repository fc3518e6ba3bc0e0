#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Fuzz tests: build the libFuzzer targets tests/fuzz/fuzz_*.c with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer against the model of
# tests/fuzz/fuzz.config (make O=build/fuzz CC=clang SAN=fuzz fuzzers),
# replay the committed inputs of tests/fuzz/corpus/TARGET/ (seeds, and
# every input that once crashed a target), then fuzz each target for
# KGPT_FUZZ_SECONDS (default 60), and run the configuration-fragment
# mutation fuzzer (fuzz_kconfig.sh) as long. TAP on stdout: one line per
# build, replay and fuzzing run ("ran N execs in S s without a crash").
#
# A crash is a failing test that shows the sanitizer's report and the
# input in base64; the input is kept in build/fuzz/artifacts/. To make it
# a regression test, fix the bug and commit the input as
# tests/fuzz/corpus/TARGET/regress-WHAT. New inputs that found coverage
# accumulate in build/fuzz/corpus/TARGET/ between local runs.
#
# Environment: KGPT_FUZZ_SECONDS, KGPT_FUZZ_SEED (libFuzzer's -seed and
# fuzz_kconfig.sh's seed, to repeat a run), KGPT_DATA_MIRROR (the
# tokenizer's vocabulary, default ../shared/data).
. "$(dirname "$0")/../lib.sh"

seconds=${KGPT_FUZZ_SECONDS:-60}
export KGPT_DATA_MIRROR=${KGPT_DATA_MIRROR:-$srctree/../shared/data}
fuzz=$srctree/build/fuzz
bin=$fuzz/build/fuzz
artifacts=$fuzz/artifacts
targets=(tokenizer shard checkpoint)
new_tmpdir tmp

need clang make || done_testing
mkdir -p "$artifacts"

# libFuzzer's runtime comes with clang's compiler-rt (libclang-rt-dev).
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' > "$tmp/probe.c"
if ! clang -fsanitize=fuzzer,address,undefined "$tmp/probe.c" -o "$tmp/probe" 2>"$tmp/probe.log"; then
	fail "clang -fsanitize=fuzzer links (install libclang-rt-dev: scripts/install-deps.sh)" \
		"$(cat "$tmp/probe.log")"
	done_testing
fi

run "$srctree/scripts/load-config.sh" "$srctree" "$fuzz" "$srctree/tests/fuzz/fuzz.config" defconfig
is "$RUN_RC" 0 "load tests/fuzz/fuzz.config into build/fuzz" || { show_run; done_testing; }
run kmake O="$fuzz" CC=clang SAN=fuzz -j"$(nproc)" fuzzers
if ! is "$RUN_RC" 0 "make O=build/fuzz CC=clang SAN=fuzz fuzzers"; then
	diag "$(printf '%s\n' "$RUN_ALL" | grep -v 'warning: loop not vectorized' | tail -30)"
	done_testing
fi

# The part of libFuzzer's output that tells what went wrong.
crash_report() {
	local log=$1 art
	grep -E '^(==[0-9]+==|SUMMARY|    #[0-9]+ |.*runtime error:|fuzz_[a-z]+: |INFO: Seed|Running: )' "$log" |
		head -40
	art=$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$log" | tail -1)
	if [ -n "$art" ] && [ -f "$art" ]; then
		echo "input kept as $art ($(stat -c %s "$art") bytes)"
		[ "$(stat -c %s "$art")" -le 4096 ] && echo "base64: $(base64 -w0 < "$art")"
	fi
}

# Sanitizer settings: a report ends the run (libFuzzer saves the input).
export ASAN_OPTIONS=detect_leaks=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}
export UBSAN_OPTIONS=print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}

# The checkpoint target's files: on tmpfs when there is one.
if [ -w /dev/shm ]; then
	ckpt_tmp=$(mktemp -d /dev/shm/kgpt-fuzz.XXXXXX)
	at_exit "rm -rf '$ckpt_tmp'"
else
	ckpt_tmp=$tmp
fi
export KGPT_FUZZ_TMPDIR=$ckpt_tmp

for t in "${targets[@]}"; do
	prog=$bin/fuzz_$t
	committed=$srctree/tests/fuzz/corpus/$t
	corpus=$fuzz/corpus/$t
	dirs=("$corpus")
	mkdir -p "$corpus"
	[ -d "$committed" ] && dirs+=("$committed")

	# Seeds made at run time (the checkpoint template's headers).
	if [ "$t" = checkpoint ]; then
		mkdir -p "$tmp/seeds-$t"
		if ! KGPT_FUZZ_SEEDS=$tmp/seeds-$t "$prog" >"$tmp/seeds.log" 2>&1; then
			fail "fuzz_$t: write its seeds" "$(tail -20 "$tmp/seeds.log")"
			continue
		fi
		dirs+=("$tmp/seeds-$t")
	fi

	# Every committed input once: the regression tests.
	inputs=()
	[ -d "$committed" ] && mapfile -t inputs < <(find "$committed" -type f | sort)
	if [ ${#inputs[@]} -gt 0 ]; then
		"$prog" -close_fd_mask=2 -artifact_prefix="$artifacts/$t-" "${inputs[@]}" \
			>"$tmp/replay.log" 2>&1
		rc=$?
		if [ "$rc" = 0 ]; then
			pass "fuzz_$t: the ${#inputs[@]} inputs of tests/fuzz/corpus/$t run without a crash"
		else
			fail "fuzz_$t: an input of tests/fuzz/corpus/$t crashes it (exit status $rc)" \
				"$(crash_report "$tmp/replay.log")"
		fi
	fi

	log=$tmp/fuzz-$t.log
	"$prog" -max_total_time="$seconds" -max_len=4096 -timeout=25 -rss_limit_mb=2048 \
		-close_fd_mask=2 -print_final_stats=1 -artifact_prefix="$artifacts/$t-" \
		${KGPT_FUZZ_SEED:+-seed=$KGPT_FUZZ_SEED} "${dirs[@]}" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
	if [ "$rc" = 0 ] && [ -n "$execs" ]; then
		pass "fuzz_$t: ran $execs execs in ${secs:-$seconds} s without a crash"
		diag "$(grep -E '^INFO: Seed|^stat::(average_exec_per_sec|new_units_added|peak_rss_mb)' "$log")"
	else
		fail "fuzz_$t: crashed or failed (exit status $rc) after ${execs:-?} execs" \
			"$(crash_report "$log"; echo "the end of its output:"; tail -5 "$log")"
	fi
done

# The configuration-fragment checker (bash and awk): its own loop.
log=$tmp/fuzz-kconfig.log
bash "$srctree/tests/fuzz/fuzz_kconfig.sh" "$seconds" "$artifacts" >"$log" 2>&1
rc=$?
stats=$(tail -1 "$log")
if [ "$rc" = 0 ] && [[ $stats =~ ^execs\ ([0-9]+)\ seconds\ ([0-9]+)\ accepted\ ([0-9]+)\ rejected\ ([0-9]+) ]]; then
	pass "fuzz_kconfig: ran ${BASH_REMATCH[1]} execs in ${BASH_REMATCH[2]} s without a failure (${BASH_REMATCH[3]} accepted, ${BASH_REMATCH[4]} rejected)"
	diag "$(head -1 "$log" | sed 's/^# //')"
else
	fail "fuzz_kconfig: failed (exit status $rc)" "$(tail -40 "$log")"
fi

done_testing

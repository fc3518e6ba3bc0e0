#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench.sh [NAME...]: `make bench`. For every benchmark configuration
# (all of them, or the NAMEs given; BENCH="..." in make), build the trainer
# in build/bench/NAME (O=) from its fragment and time it with
# `train_gpt2 --bench STEPS --warmup W` on random tokens (no data files).
# Then print one table and write build/bench/results.json.
#
# It measures and reports; it never fails because of a number. It exits
# non-zero only when a build or a run fails.
#
# Table columns:
#   ms/step    min and median wall-clock time of the timed steps
#   tok/s      tokens per step / median step
#   GFLOP/s    gpt2_flops_per_token() * tokens / median step, where
#              flops/token = 6 * (matmul parameters, LM head included)
#              + 12 * n_layer * n_embd * T  (attention, PaLM appendix B)
#   MFU        GFLOP/s / the fp32 peak measured by bench/peak.c
#   CPU eff.   the step's flops / its CPU time (all threads) / one core's
#              peak: how well the work itself uses the cores, which, unlike
#              the wall clock, does not depend on what else the machine runs
#   RSS        peak resident set size of the run
#   phases     share of the mean step in matmuls, LM head, attention,
#              element-wise kernels, optimizer (zero, norm, AdamW) and the
#              rest (copies and memsets between kernels)
#   vs base    min step time against the same shape without the mechanism,
#              and median CPU time per step against it (the load-proof one)
#
# The configurations of one shape run in turn, ROUNDS times each, and
# their steps are pooled, so that a load which changes while the benchmark
# runs falls on all of them alike. BENCH_ROUNDS=N overrides every ROUNDS.
# OMP_WAIT_POLICY defaults to passive, as in make.
set -u

srctree=$(cd "$(dirname "$0")/.." && pwd)
out=$srctree/build/bench
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

# name                  fragment                         ROUNDS x (warm-up + steps)  baseline
configs=(
	"124m-b4-t64           bench/124m-b4-t64.config            3 1 3 -"
	"124m-b4-t64-rmlp      bench/124m-b4-t64-rmlp.config       3 1 3 124m-b4-t64"
	"124m-b4-t64-kvprune   bench/124m-b4-t64-kvprune.config    3 1 3 124m-b4-t64"
	"124m-b4-t64-ra        bench/124m-b4-t64-ra.config         3 1 3 124m-b4-t64"
	"124m-b4-t64-spam      bench/124m-b4-t64-spam.config       3 1 3 124m-b4-t64"
	"124m-b8-t1024         bench/124m-b8-t1024.config          1 1 1 -"
	"124m-b8-t1024-rmlp    bench/124m-b8-t1024-rmlp.config     1 1 1 124m-b8-t1024"
	"124m-b8-t1024-kvprune bench/124m-b8-t1024-kvprune.config  1 1 1 124m-b8-t1024"
	"tiny                  defconfigs/gpt2-tiny                1 3 20 -"
)

command -v jq >/dev/null || { echo "bench: jq is missing (scripts/install-deps.sh)" >&2; exit 1; }

selected=()
for c in "${configs[@]}"; do
	read -r name _ <<< "$c"
	if [ $# -eq 0 ] || [[ " $* " == *" $name "* ]]; then
		selected+=("$c")
	fi
done
[ ${#selected[@]} -gt 0 ] || { echo "bench: no configuration named $*" >&2; exit 2; }

mkdir -p "$out"
start_s=$SECONDS
load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: $(uptime)"
echo "bench: $(nproc) CPUs, OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}," \
	"OMP_WAIT_POLICY=$OMP_WAIT_POLICY"

# The machine's fp32 peak, measured.
mkdir -p "$out/peak"
${CC:-gcc} -O2 -march=native -fopenmp "$srctree/bench/peak.c" -o "$out/peak/peak" ||
	{ echo "bench: cannot build bench/peak.c" >&2; exit 1; }
"$out/peak/peak" > "$out/peak.json" || exit 1
peak=$(jq .peak_gflops "$out/peak.json")
jq -r '"bench: fp32 peak \(.peak_gflops) GFLOP/s = \(.threads) cores x " +
	"\(.flops_per_cycle) flops/cycle x \(.ghz) GHz (FMA loop, per-thread CPU time); " +
	"\(.wall_gflops) GFLOP/s of it by the wall clock now"' "$out/peak.json"

# Build every selected configuration first (make -j).
for c in "${selected[@]}"; do
	read -r name frag _ <<< "$c"
	obj=$out/$name
	echo "bench: build $name ($frag)"
	KGPT_JOBS=$(nproc) "$srctree/scripts/build-trainer.sh" "$obj" "$srctree/$frag" || exit 1
done

# Run them: round r runs every configuration that has r rounds or more.
max_rounds=0
for c in "${selected[@]}"; do
	read -r _ _ rounds _ <<< "$c"
	rounds=${BENCH_ROUNDS:-$rounds}
	[ "$rounds" -gt "$max_rounds" ] && max_rounds=$rounds
done
for c in "${selected[@]}"; do
	read -r name _ <<< "$c"
	rm -f "$out/$name"/round-*.json
done
for ((r = 1; r <= max_rounds; r++)); do
	for c in "${selected[@]}"; do
		read -r name frag rounds warmup steps _ <<< "$c"
		[ "${BENCH_ROUNDS:-$rounds}" -ge "$r" ] || continue
		obj=$out/$name
		echo "bench: run $name (round $r: $warmup warm-up + $steps steps), load $(cut -d' ' -f1 /proc/loadavg)"
		if ! "$obj/build/train_gpt2" --bench "$steps" --warmup "$warmup" \
			--json "$obj/round-$r.json" > "$obj/round-$r.log" 2>&1; then
			echo "bench: $name failed; see ${obj#$srctree/}/round-$r.log" >&2
			tail -20 "$obj/round-$r.log" >&2
			exit 1
		fi
	done
done

# The peak once more: a VM's cores can run slower for a while (host load,
# clocks), and the peak is what the cores can do, so the higher reading
# of the two counts.
"$out/peak/peak" > "$out/peak-end.json" || exit 1
if [ "$(jq -n --slurpfile a "$out/peak.json" --slurpfile b "$out/peak-end.json" \
	'$b[0].peak_gflops > $a[0].peak_gflops')" = true ]; then
	mv "$out/peak-end.json" "$out/peak.json"
	jq -r '"bench: fp32 peak measured again after the runs: \(.peak_gflops) GFLOP/s " +
		"(\(.ghz) GHz), the higher reading, is used"' "$out/peak.json"
fi
peak=$(jq .peak_gflops "$out/peak.json")

# Pool the rounds of each configuration: all steps, mean phases, max RSS.
results=()
for c in "${selected[@]}"; do
	read -r name frag _ _ _ base <<< "$c"
	jq -s --arg name "$name" --arg frag "$frag" --arg base "$base" --argjson peak "$peak" '
		def median: sort | if length % 2 == 1 then .[length / 2 | floor]
			else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		. as $runs | (map(.step_ms) | add) as $ms | ($ms | median) as $med |
		.[0] + {
			name: $name, fragment: $frag, baseline: $base, rounds: length,
			step_ms: $ms, cpu_ms: (map(.cpu_ms) | add),
			step_ms_min: ($ms | min), step_ms_median: $med,
			cpu_ms_median: (map(.cpu_ms) | add | median),
			tokens_per_s: (.[0].tokens_per_step / $med * 1e3),
			gflops: (.[0].flops_per_token * .[0].tokens_per_step / $med / 1e6),
			mfu: (.[0].flops_per_token * .[0].tokens_per_step / $med / 1e6 / $peak),
			cpu_eff: (.[0].flops_per_token * .[0].tokens_per_step /
				(map(.cpu_ms) | add | median) / 1e6 / ($peak / .[0].threads)),
			phase_ms: (.[0].phase_ms | keys_unsorted | map(. as $k |
				{($k): ([$runs[] | .phase_ms[$k]] | add / length)}) | add),
			peak_rss_bytes: (map(.peak_rss_bytes) | max)
		}' "$out/$name"/round-*.json > "$out/$name/result.json" || exit 1
	results+=("$out/$name/result.json")
done

jq -s --arg load "$load" --arg uptime "$(uptime)" --slurpfile peak "$out/peak.json" '
	(map({(.name): .}) | add) as $by |
	{
		uptime: $uptime, loadavg_at_start: $load, peak: $peak[0],
		flops_formula: "6 * matmul params (LM head included) + 12 * n_layer * n_embd * T per token",
		runs: map(. + (if .baseline != "-" and $by[.baseline] then {
			overhead_pct: ((.step_ms_min / $by[.baseline].step_ms_min - 1) * 100),
			overhead_cpu_pct: ((.cpu_ms_median / $by[.baseline].cpu_ms_median - 1) * 100)
		} else {} end))
	}' "${results[@]}" > "$out/results.json" || exit 1

echo
jq -r '
	def f(n): (. * pow(10; n) | round) / pow(10; n);
	def pct(t): (. / t * 100 | round | tostring) + "%";
	"| config | ms/step min | median | tok/s | GFLOP/s | MFU | CPU eff. | peak RSS | matmul | lm head | attention | elementwise | optimizer | other | vs base | vs base, CPU |",
	"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
	(.runs[] | .step_ms_median as $med | ([.phase_ms[]] | add) as $t |
	 "| \(.name) | \(.step_ms_min | round) | \($med | round) | \(.tokens_per_s | round) | " +
	 "\(.gflops | f(1)) | \(.mfu * 100 | f(1))% | \(.cpu_eff * 100 | f(1))% | " +
	 "\(.peak_rss_bytes / 1048576 | round) MiB | " +
	 "\(.phase_ms.matmul | pct($t)) | \(.phase_ms.lm_head | pct($t)) | " +
	 "\(.phase_ms.attention | pct($t)) | \(.phase_ms.elementwise | pct($t)) | " +
	 "\(.phase_ms.optimizer | pct($t)) | \(.phase_ms.other | pct($t)) | " +
	 ([.overhead_pct, .overhead_cpu_pct] | map(if . == null then ""
		else (if . >= 0 then "+" else "" end) + "\(. | f(1))%" end) | join(" | ")) +
	 " |")' "$out/results.json"
echo
echo "bench: load average $load at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end;" \
	"peak $peak GFLOP/s; results in ${out#$srctree/}/results.json"
echo "bench: took $(((SECONDS - start_s) / 60)) min $(((SECONDS - start_s) % 60)) s"

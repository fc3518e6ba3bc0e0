#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# tests/gpu/run.sh [--parity-only | --bench-only]: everything of the CUDA
# backend that needs a GPU, in one script (make check-gpu). About 5 to 8
# minutes on one H100 with 16 cores, builds included. Needs an NVIDIA GPU
# (nvidia-smi lists it), the CUDA toolkit and the packages of
# scripts/install-deps.sh; without a GPU it says so and exits 1.
#
# 1. Parity, TAP: each tests/gpu/configs/NAME.config (a 2-layer model
#    with dropout: plain, R-MLP with mixer and gate_alpha, KV pruning fixed
#    and learned, Reciprocal Attention, sizes off every tile: n_embd 48,
#    T 50, R_ff 37) is built for the CPU backend, whose
#    tests/gpu/parity dumps the logits, losses, KV-pruning kept sets, every
#    gradient, one AdamW step, generation through the KV caches and the
#    loss and next step of its checkpoint; the CUDA build of the same
#    configuration, loading that checkpoint, compares (tolerances per
#    precision in tests/gpu/parity.c), in fp32,
#    and for base.config also with CONFIG_GPT2_AMP_DTYPE="bf16" and
#    CONFIG_CUDA_TF32. The CUDA build's model tests test_gpt2,
#    test_checkpoint and test_kvprune (reproducible steps, the loss goes
#    down, checkpoints and exact resume, KV pruning's invariants and
#    generation through the cache against the teacher-forced forward) run
#    on each configuration too.
# 2. Benchmark: GPT-2 124M at T 1024, B 8 and 16, fp32 and bf16 (and B 8
#    with R-MLP and with KV pruning, k 391 of 1024, recency 64), train_gpt2 --bench: ms/step,
#    tokens/s, MFU against the GPU's dense bf16 tensor-core peak (the
#    convention of llm.c's figures), the peak of kgpt's device allocations; then
#    incremental generation of 1024 tokens through the KV cache, full and
#    pruned (tests/gpu/gen). The table is printed and written to
#    build/gpu/bench.md; the raw JSON stays in build/gpu/bench/.
#
# Environment: KGPT_GPU_OUT (default build/gpu) for the trees;
# CUDA_ARCH (default: the GPU's own, from nvidia-smi) for the builds;
# BENCH_STEPS (default 10; KV pruning 3). Exit status: 0 when every parity check passed
# and every benchmark ran, 1 otherwise.
set -u
srctree=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${KGPT_GPU_OUT:-$srctree/build/gpu}")
steps=${BENCH_STEPS:-10}
mode=${1:-all}
case $mode in all|--parity-only|--bench-only) ;; *)
	echo "usage: tests/gpu/run.sh [--parity-only | --bench-only]" >&2; exit 2 ;;
esac
unset MAKEFLAGS MFLAGS MAKELEVEL O V TIME GPT2_MAX_TIME KCONFIG_CONFIG

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
	echo "tests/gpu/run.sh: no NVIDIA GPU here (nvidia-smi lists none): this script runs the" \
	     "CUDA backend and needs one; make check builds the CUDA backend without a GPU" >&2
	exit 1
fi
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1)
arch=${CUDA_ARCH:-sm_${cap/./}}
jobs=$(nproc 2>/dev/null || echo 4)
echo "# GPU: $gpu (compute capability $cap), building for $arch; $(nvidia-smi \
	--query-gpu=driver_version --format=csv,noheader | head -1) driver"
mkdir -p "$out"
status=0

nvcc_version() {
	local n
	n=$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)
	"$n" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p' | head -1
}

# config O FRAGMENT EXTRA-LINES...: load FRAGMENT into tree O, each of
# the lines replacing FRAGMENT's line of the same symbol.
config() {
	local o=$1 f=$2 frag l drop=(-e '^CONFIG_BACKEND_')
	shift 2
	mkdir -p "$o"
	frag=$o/fragment.config
	for l in "$@"; do drop+=(-e "^${l%%=*}="); done
	{ grep -v "${drop[@]}" "$f"; printf '%s\n' "$@"; } > "$frag"
	"$srctree/scripts/load-config.sh" "$srctree" "$o" "$frag" defconfig > "$o/load.log" 2>&1 ||
		{ echo "tests/gpu/run.sh: $f did not load (${o#$srctree/}/load.log):" >&2
		  tail -5 "$o/load.log" >&2; return 1; }
}

# build O TARGETS...: make them in tree O, the log in O/build.log.
build() {
	local o=$1
	shift
	make -C "$srctree" --no-print-directory O="$o" -j"$jobs" "$@" > "$o/build.log" 2>&1 ||
		{ echo "tests/gpu/run.sh: make $* failed in ${o#$srctree/} (build.log):" >&2
		  tail -20 "$o/build.log" >&2; return 1; }
}

cuda=(CONFIG_BACKEND_CUDA=y "CONFIG_CUDA_ARCH=\"$arch\"")

# parity NAME CONFIG LABEL CUDA-LINES...: CPU dump, CUDA compare.
parity() {
	local name=$1 cfg=$2 label=$3 cpu=$out/cpu o=$out/cuda-$3
	shift 3
	echo "# parity: $name, CUDA $label"
	if [ ! -f "$out/dump/$name.bin" ]; then
		mkdir -p "$out/dump"
		config "$cpu" "$cfg" && build "$cpu" gpu-tests &&
		"$cpu/build/tests/gpu/parity" dump "$out/dump/$name.bin" ||
			{ echo "not ok - $name: the CPU reference"; status=1; return; }
	fi
	if ! config "$o" "$cfg" "${cuda[@]}" "$@" || ! build "$o" gpu-tests model-tests; then
		echo "not ok - $name: the CUDA $label build"; status=1; return
	fi
	"$o/build/tests/gpu/parity" compare "$out/dump/$name.bin" ||
		{ echo "not ok - $name ($label): parity compare exited $?"; status=1; }
	# the model tests that reach backend memory only through the contract
	# (test_rmlp and test_rattn read activations on the host: CPU only)
	for t in test_gpt2 test_checkpoint test_kvprune; do
		t=$o/build/tests/model/$t
		echo "# $name ($label): $(basename "$t")"
		(cd "$srctree" && "$t") ||
			{ echo "not ok - $name ($label): tests/model/$(basename "$t") exited $?"
			  status=1; }
	done
}

if [ "$mode" != --bench-only ]; then
	rm -rf "$out/dump"
	for cfg in "$srctree"/tests/gpu/configs/*.config; do
		parity "$(basename "$cfg" .config)" "$cfg" fp32 'CONFIG_GPT2_AMP_DTYPE="fp32"'
	done
	parity base "$srctree/tests/gpu/configs/base.config" tf32 \
		'CONFIG_GPT2_AMP_DTYPE="fp32"' CONFIG_CUDA_TF32=y
	parity base "$srctree/tests/gpu/configs/base.config" bf16 'CONFIG_GPT2_AMP_DTYPE="bf16"'
	if [ $status = 0 ]; then
		echo "# parity: every configuration within its tolerances"
	else
		echo "# parity: FAILED (the not ok lines above)"
	fi
fi
[ "$mode" = --parity-only ] && exit $status

# ---- benchmark --------------------------------------------------------
# Dense bf16 tensor-core peak in TFLOP/s, by GPU name (vendor figures for
# the SXM parts; PCIe parts run lower clocks, so their MFU reads low).
case $gpu in
*H100*PCIe*|*H100*NVL*) peak=756 ;;
*H200*NVL*) peak=835 ;;
*H100*|*H200*|*GH200*) peak=989 ;;
*A100*) peak=312 ;;
*L40S*) peak=362 ;;
*B200*) peak=2250 ;;
*) peak=0 ;;
esac
bdir=$out/bench
mkdir -p "$bdir"
md=$out/bench.md
{
	echo "GPU: $gpu, $arch; MFU against ${peak} TFLOP/s dense bf16; kgpt" \
	     "$(git -C "$srctree" rev-parse --short HEAD 2>/dev/null || echo '(no git)'), CUDA" \
	     "$(nvcc_version), driver $(nvidia-smi --query-gpu=driver_version \
	     --format=csv,noheader | head -1) ($(date -u +%F))"
	echo
	echo "kgpt alloc peak: kgpt's own device allocations (kgpt_mem_peak()), without the"
	echo "CUDA context and cuBLAS's workspace."
	echo
	echo "| config | dtype | B | T | ms/step | tokens/s | MFU | kgpt alloc peak |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
} > "$md"

# bench NAME DTYPE B STEPS EXTRA-LINES...: 124M at T 1024, STEPS timed
# steps after 2 to warm up.
bench() {
	local name=$1 dtype=$2 b=$3 n=$4 o=$out/bench-$2 j
	shift 4
	j=$bdir/$name-$dtype-b$b.json
	if ! config "$o" "$srctree/bench/124m-b8-t1024.config" "${cuda[@]}" \
		"CONFIG_GPT2_AMP_DTYPE=\"$dtype\"" "CONFIG_BATCH_SIZE=$b" "$@" ||
	   ! build "$o" "$o/build/train_gpt2" ||
	   ! "$o/build/train_gpt2" --bench "$n" --warmup 2 --json "$j" > "$j.log" 2>&1; then
		echo "bench $name $dtype B $b: FAILED (${j#$srctree/}.log, ${o#$srctree/}/build.log)"
		tail -5 "$j.log" 2>/dev/null
		status=1
		return
	fi
	python3 - "$j" "$name" "$dtype" "$peak" >> "$md" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
peak = float(sys.argv[4]) * 1e12
mfu = "%.1f%%" % (100 * r["gflops"] * 1e9 / peak) if peak else "n/a"
print("| %s | %s | %d | %d | %.1f | %.0f | %s | %.2f GiB |" % (
    sys.argv[2], sys.argv[3], r["B"], r["T"], r["step_ms_median"], r["tokens_per_s"],
    mfu, r["backend_peak_bytes"] / 2**30))
EOF
	tail -1 "$md"
}

for dtype in fp32 bf16; do
	for b in 8 16; do
		bench 124m "$dtype" "$b" "$steps"
	done
done
bench 124m-rmlp bf16 8 "$steps" CONFIG_RMLP=y
# KV pruning's walk is sequential over T per (b, h) (docs/cuda.md): few steps
bench 124m-kvprune bf16 8 3 CONFIG_KV_CACHE_PRUNE=y CONFIG_KV_PRUNE_K=391 CONFIG_KV_PRUNE_RECENCY=64

# Generation: 1024 tokens through the cache, full and pruned (124M, B 1).
{
	echo
	echo "Generation, 124M, 1024 tokens one at a time (KV caches in device memory):"
	echo
	echo "| KV cache | tokens/s | K and V bytes | device bytes allocated | a full cache's K and V | kgpt alloc peak |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: |"
} >> "$md"
for kv in full pruned; do
	o=$out/gen-$kv
	lines=('CONFIG_GPT2_AMP_DTYPE="fp32"' CONFIG_BATCH_SIZE=1)
	[ $kv = pruned ] && lines+=(CONFIG_KV_CACHE_PRUNE=y CONFIG_KV_PRUNE_K=391 CONFIG_KV_PRUNE_RECENCY=64)
	if config "$o" "$srctree/bench/124m-b8-t1024.config" "${cuda[@]}" "${lines[@]}" &&
	   build "$o" gpu-tests && r=$("$o/build/tests/gpu/gen" 1024); then
		eval "$(printf '%s\n' "$r" | tr ' ' '\n' | grep -E '^[a-z_]+=[0-9.]+$')"
		# shellcheck disable=SC2154
		printf '| %s | %s | %s | %s | %s | %.2f GiB |\n' "$kv" "$tokens_per_s" "$kv_bytes" \
			"$cache_alloc_bytes" "$full_kv_bytes" \
			"$(awk "BEGIN { print $backend_peak_bytes / 1073741824 }")" >> "$md"
		tail -1 "$md"
	else
		echo "generation $kv: FAILED"
		status=1
	fi
done
echo
cat "$md"
exit $status

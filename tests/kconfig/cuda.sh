#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The CUDA backend's configuration and build. Always: what the CUDA
# backend cannot run is refused at configuration time, naming the options
# (MPI, head sizes, (batch, head) pairs, CONFIG_CUDA_ARCH, TF32 with
# bf16), bf16 without the CUDA backend is refused too, KV-cache
# pruning is accepted, and CONFIG_CUDA_ARCH defaults to "sm_90 sm_80".
# With the CUDA toolkit (nvcc in PATH or /usr/local/cuda/bin): the tiny
# model with CONFIG_BACKEND_CUDA builds its trainer, generator, model
# tests and tests/gpu programs; the backend defines every function of
# kernels/kernels.h; the trainer links cudart and cuBLAS and no BLAS,
# carries sm_90 and sm_80 code (cuobjdump, or scripts/fatbin-archs.py
# where the toolkit has no cuobjdump) and PTX for compute_90, --print-config names the backend,
# and without a GPU it stops with a message saying what it needs; the
# float64 gradient test of that configuration (gpt2.c on the CPU backend)
# passes; pruning builds on it; the dtype and TF32 reach nvcc; an
# architecture nvcc does not know and a bad NVCC stop the build. Nothing
# here needs a GPU: tests/gpu/run.sh runs the CUDA build. Without nvcc the
# build tests are reported as skipped ("no nvcc"), never as passed.
#
# One tree, built once for both architectures (-j2: nvcc is the slow
# part); the later configurations rebuild only what they change.

. "$(dirname "$0")/../lib.sh"

need kconfig-conf make gcc nm ldd objcopy python3 || done_testing
new_tmpdir tmp

nvcc=$(command -v nvcc 2>/dev/null || true)
[ -n "$nvcc" ] || [ ! -x /usr/local/cuda/bin/nvcc ] || nvcc=/usr/local/cuda/bin/nvcc
jobs=$(nproc 2>/dev/null || echo 1)
[ "$jobs" -le 2 ] || jobs=2

# frag NAME LINES...: gpt2-tiny with the CUDA backend and LINES, which
# replace the recipe's lines of the same symbols.
frag() {
	local f=$tmp/$1.config l drop=()
	shift
	for l in "$@"; do drop+=(-e "^${l%%=*}="); done
	{ grep -v "${drop[@]}" -e '^CONFIG_BACKEND_CUDA=' "$srctree/defconfigs/gpt2-tiny"
	  echo CONFIG_BACKEND_CUDA=y; printf '%s\n' "$@"; } > "$f"
	printf '%s' "$f"
}

# refused NAME WHAT SYMBOL... LINES: loading fails and names every SYMBOL.
refused() {
	local name=$1 what=$2 f s ok=1
	shift 2
	local syms=()
	while [ $# -gt 0 ] && [[ $1 != CONFIG_*=* ]]; do syms+=("$1"); shift; done
	f=$(frag "$name" "$@")
	run "$srctree/scripts/load-config.sh" "$srctree" "$tmp/$name" "$f" defconfig
	isnt "$RUN_RC" 0 "CUDA + $what: refused at configuration time" || { show_run; return; }
	for s in "${syms[@]}"; do
		printf '%s\n' "$RUN_ALL" | grep -q "error:.*$s" || ok=0
	done
	ok $((1 - ok)) "CUDA + $what: the error names ${syms[*]}" || show_run
	[ -f "$tmp/$name/.config" ]
	ok $((1 - $?)) "CUDA + $what: no .config is left behind"
}

refused mpi "data-parallel training" CONFIG_DISTRIBUTED CONFIG_BACKEND_CUDA CONFIG_DISTRIBUTED=y
refused hs12 "head size 12" CONFIG_GPT2_N_EMBD CONFIG_GPT2_N_HEAD CONFIG_GPT2_N_EMBD=48
refused pairs "131072 (batch, head) pairs" CONFIG_BATCH_SIZE CONFIG_GPT2_N_HEAD \
	CONFIG_BATCH_SIZE=1024 CONFIG_GPT2_N_HEAD=128 CONFIG_GPT2_N_EMBD=1024
refused arch "CONFIG_CUDA_ARCH=\"sm90\"" CONFIG_CUDA_ARCH 'CONFIG_CUDA_ARCH="sm90"'
refused noarch "an empty CONFIG_CUDA_ARCH" CONFIG_CUDA_ARCH 'CONFIG_CUDA_ARCH=""'
refused tf32bf16 "CONFIG_CUDA_TF32 with bf16" CONFIG_CUDA_TF32 \
	'CONFIG_GPT2_AMP_DTYPE="bf16"' CONFIG_CUDA_TF32=y

# bf16 needs the CUDA backend: the CPU's configuration is refused.
f=$tmp/bf16cpu.config
{ grep -v '^CONFIG_GPT2_AMP_DTYPE=' "$srctree/defconfigs/gpt2-tiny"
  echo 'CONFIG_GPT2_AMP_DTYPE="bf16"'; } > "$f"
run "$srctree/scripts/load-config.sh" "$srctree" "$tmp/bf16cpu" "$f" defconfig
isnt "$RUN_RC" 0 "bf16 on the CPU backend: refused at configuration time" || show_run
like "$RUN_ALL" 'error:.*CONFIG_GPT2_AMP_DTYPE.*CONFIG_BACKEND_CUDA' \
	"bf16 on the CPU backend: the error names CONFIG_GPT2_AMP_DTYPE and CONFIG_BACKEND_CUDA" ||
	show_run

f=$(frag prune CONFIG_KV_CACHE_PRUNE=y CONFIG_KV_PRUNE_K=24 CONFIG_KV_PRUNE_RECENCY=8)
run "$srctree/scripts/load-config.sh" "$srctree" "$tmp/prune" "$f" defconfig
is "$RUN_RC" 0 "CUDA + KV-cache pruning: accepted (the hard walk on the GPU, the soft one on host copies)" || show_run

o=$tmp/cuda
built=1
f=$(frag cuda)
run "$srctree/scripts/load-config.sh" "$srctree" "$o" "$f" defconfig
is "$RUN_RC" 0 "gpt2-tiny with CONFIG_BACKEND_CUDA=y loads" || { show_run; built=0; }
has_line "$o/.config" 'CONFIG_CUDA_ARCH="sm_90 sm_80"' 'CONFIG_CUDA_ARCH defaults to "sm_90 sm_80"'

build_tests=(
	"the CUDA trainer, generator, model tests and parity programs build"
	"the backend defines every function of kernels/kernels.h"
	"the trainer links cudart and cuBLAS"
	"the trainer links no BLAS and calls no cblas_*"
	"CONFIG_CUDA_ARCH is the -gencode list"
	"the trainer carries sm_90 and sm_80 code and compute_90 PTX"
	"--print-config names the CUDA backend"
	"without a GPU the trainer stops, saying what it needs"
	"the float64 gradient test of the CUDA configuration passes"
	"CUDA + KV-cache pruning: the trainer builds, with cuBLAS and no cblas_*"
	"CONFIG_GPT2_AMP_DTYPE=\"bf16\": nvcc and the model get bf16 activations"
	"bf16 with R-MLP, the learned KV budget and RA: the trainer, generator and tests build without a warning"
	"CONFIG_CUDA_TF32: TF32 tensor-core products"
	"an architecture this nvcc does not compile for: the build names it"
	"NVCC that is not an executable: the build says so"
)
if [ -z "$nvcc" ] || [ "$built" != 1 ]; then
	why="no nvcc (CUDA toolkit not in PATH or /usr/local/cuda/bin)"
	[ -n "$nvcc" ] && why="the CUDA configuration did not load"
	for t in "${build_tests[@]}"; do
		if [ -n "$nvcc" ]; then fail "$t" "$why"; else skip "$t" "$why"; fi
	done
	done_testing
fi
diag "nvcc: $nvcc ($("$nvcc" --version | tail -1))"

# no_cblas NAME BINARY: BINARY calls cuBLAS's gemm and nothing of a BLAS.
no_cblas() {
	local und
	und=$(nm -u "$2")
	if printf '%s\n' "$und" | grep -q '^ *U cublasGemmEx' &&
	   ! printf '%s\n' "$und" | grep -q 'cblas_'; then
		pass "$1"
	else
		fail "$1" "$(printf '%s\n' "$und" | grep -i blas)"
	fi
}

run kmake O="$o" -j"$jobs" "$o/build/train_gpt2" "$o/build/generate" model-tests gpu-tests
is "$RUN_RC" 0 "${build_tests[0]}" || { show_run; done_testing; }
bin=$o/build/train_gpt2

# Every function the contract declares is defined by the CUDA objects.
want=$(sed -n 's/^[a-z][a-z0-9_ ]*[ *]\([a-z_][a-z0-9_]*\)(.*/\1/p' "$srctree/kernels/kernels.h" |
       sort -u)
have=$(nm -g --defined-only "$o/build/lib/libkgpt-backend.a" | awk '$2 == "T" { print $3 }' |
       sort -u)
missing=$(comm -23 <(printf '%s\n' "$want") <(printf '%s\n' "$have"))
if [ "$(printf '%s\n' "$want" | grep -c .)" -ge 40 ] && [ -z "$missing" ]; then
	pass "${build_tests[1]} ($(printf '%s\n' "$want" | grep -c .))"
else
	fail "${build_tests[1]}" "missing: $missing" "declared: $(echo $want)"
fi

libs=$(ldd "$bin" 2>&1)
if printf '%s\n' "$libs" | grep -q 'libcudart\.so' && printf '%s\n' "$libs" | grep -q 'libcublas\.so'
then
	pass "${build_tests[2]}"
else
	fail "${build_tests[2]}" "$libs"
fi
unlike "$libs" 'lib(open)?blas|libcblas' "${build_tests[3]}: ldd" || true
no_cblas "${build_tests[3]}: nm" "$bin"

flags=$(cat "$o/build/cuda/flags")
like "$flags" 'arch=compute_90,code=sm_90 .*arch=compute_80,code=sm_80 .*code=compute_90' \
	"${build_tests[4]}" || true

cuobjdump=$(dirname "$nvcc")/cuobjdump
if [ -x "$cuobjdump" ]; then
	archs=$({ "$cuobjdump" --list-elf "$bin"; "$cuobjdump" --list-ptx "$bin"; } 2>&1 |
		sed -n 's/.*\.\(sm_[0-9]*\)\..*/elf \1/p; s/.*\.\(compute_[0-9]*\)\..*/ptx \1/p' |
		sort -u)
	how=cuobjdump
else
	archs=$(python3 "$srctree/scripts/fatbin-archs.py" "$bin" 2>&1)
	how="scripts/fatbin-archs.py, no cuobjdump in $(dirname "$nvcc")"
fi
if [ "$(printf '%s\n' "$archs" | tr '\n' ' ')" = "elf sm_80 elf sm_90 ptx compute_90 " ]; then
	pass "${build_tests[5]} ($how)"
else
	fail "${build_tests[5]} ($how)" "got:" "$archs"
fi

run "$bin" --print-config
if printf '%s\n' "$RUN_OUT" | grep -qx 'CONFIG_BACKEND_CUDA=y' &&
   printf '%s\n' "$RUN_OUT" | grep -qx 'CONFIG_CUDA_ARCH="sm_90 sm_80"'; then
	pass "${build_tests[6]}"
else
	fail "${build_tests[6]}" "$RUN_ALL"
fi

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
	skip "${build_tests[7]}" "a GPU is present (tests/gpu/run.sh runs it there)"
else
	run "$bin" --bench 1
	if [ "$RUN_RC" != 0 ] && printf '%s\n' "$RUN_ERR" | grep -q 'needs an NVIDIA GPU'; then
		pass "${build_tests[7]}"
	else
		fail "${build_tests[7]}" "exit status $RUN_RC" "$RUN_ALL"
	fi
fi

run "$o/build/tests/model/test_gpt2_f64"
is "$RUN_RC" 0 "${build_tests[8]}" || show_run

# KV-cache pruning on the same tree: the CUDA objects stay, the model is
# rebuilt.
printf 'CONFIG_KV_CACHE_PRUNE=y\nCONFIG_KV_PRUNE_K=24\nCONFIG_KV_PRUNE_RECENCY=8\n' > "$tmp/kv.frag"
run kmake O="$o" mergeconfig F="$tmp/kv.frag"
[ "$RUN_RC" = 0 ] && run kmake O="$o" -j"$jobs" "$bin"
if [ "$RUN_RC" = 0 ] && ! printf '%s\n' "$RUN_ALL" | grep -q NVCC; then
	no_cblas "${build_tests[9]}" "$bin"
else
	fail "${build_tests[9]}" "exit status $RUN_RC (or nvcc ran again)" "$RUN_ALL"
fi

# bf16: activations are act_t = bf16 in the backend and the model alike
# (kernels/kernels.h); the whole build, with every mechanism that handles
# activations, is the type check of that path (one architecture, to save
# time). Then TF32 reaches nvcc (one object is enough to see it).
obj=$o/build/cuda/kernels/cuda/gemm.o
printf '%s\n' 'CONFIG_GPT2_AMP_DTYPE="bf16"' 'CONFIG_CUDA_ARCH="sm_90"' CONFIG_RMLP=y \
	CONFIG_RMLP_USE_MIXER=y CONFIG_KV_PRUNE_LEARNED=y CONFIG_RA=y CONFIG_RA_R=3 \
	CONFIG_RA_SELF_RESTART=y > "$tmp/bf16.frag"
run kmake O="$o" mergeconfig F="$tmp/bf16.frag"
run kmake O="$o" V=1 -j"$jobs" "$bin" "$o/build/generate" model-tests gpu-tests
if [ "$RUN_RC" = 0 ] && printf '%s\n' "$RUN_ALL" | grep -q 'nvcc .*-DKGPT_CUDA_BF16 -DKGPT_ACT_BF16' &&
   printf '%s\n' "$RUN_ALL" | grep -q -- '-DKGPT_ACT_BF16 .*-c .*/gpt2/gpt2\.c'; then
	pass "${build_tests[10]}"
else
	fail "${build_tests[10]}" "exit status $RUN_RC" "$(printf '%s\n' "$RUN_ALL" | tail -20)"
fi
warn=$(printf '%s\n' "$RUN_ALL" | grep -E 'warning|error' | grep -v '"R" redefined' || true)
if [ "$RUN_RC" = 0 ] && [ -z "$warn" ] && grep -qx 'CONFIG_RA=y' "$o/.config" &&
   grep -qx 'CONFIG_KV_PRUNE_LEARNED=y' "$o/.config"; then
	pass "${build_tests[11]}"
else
	fail "${build_tests[11]}" "exit status $RUN_RC" "$warn"
fi
printf 'CONFIG_GPT2_AMP_DTYPE="fp32"\nCONFIG_CUDA_TF32=y\n' > "$tmp/tf32.frag"
run kmake O="$o" mergeconfig F="$tmp/tf32.frag"
run kmake O="$o" V=1 "$obj"
like "$RUN_ALL" 'nvcc .*-DKGPT_CUDA_TF32' "${build_tests[12]}" || show_run

# An architecture nvcc no longer compiles for (CUDA 13 dropped sm_35):
# refused before nvcc runs, naming the option and the entry.
printf 'CONFIG_CUDA_ARCH="sm_35 sm_90"\n' > "$tmp/old.frag"
run kmake O="$o" mergeconfig F="$tmp/old.frag"
[ "$RUN_RC" = 0 ] && run kmake O="$o" "$bin"
if [ "$RUN_RC" != 0 ] && printf '%s\n' "$RUN_ERR" | grep -q 'CONFIG_CUDA_ARCH=.*does not compile for sm_35'
then
	pass "${build_tests[13]}"
else
	fail "${build_tests[13]}" "exit status $RUN_RC" "$RUN_ALL"
fi
run kmake O="$o" NVCC=/nonexistent/nvcc "$bin"
if [ "$RUN_RC" != 0 ] && printf '%s\n' "$RUN_ERR" | grep -q 'NVCC=/nonexistent/nvcc is not an executable'
then
	pass "${build_tests[14]}"
else
	fail "${build_tests[14]}" "exit status $RUN_RC" "$RUN_ALL"
fi

done_testing

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The CUDA backend's KV-cache kernels (kernels/cuda/kvcache.cu) run on the
# host under tests/cuda-emu's emulation of the CUDA runtime and agree with
# the CPU backend: generation through the cache and the walk of training
# (tests/cuda-emu/test_kvcache.cpp). Needs no GPU and no CUDA toolkit,
# only a C++20 compiler; tests/gpu/run.sh is the check on a real GPU.

. "$(dirname "$0")/../lib.sh"

need make g++ || done_testing
new_tmpdir tmp
emu=$srctree/tests/cuda-emu
lib=${objtree:-$srctree}/build/lib
cxx=(g++ -std=c++20 -O2 -pthread -I"$emu/include" -I"$srctree/include" -I"$srctree")

run kmake ${objtree:+O="$objtree"} "$lib/libkgpt.a" "$lib/libkgpt-cpu.a"
is "$RUN_RC" 0 "the CPU backend's libraries build" || { show_run; done_testing; }
run bash -c '"${@:2}" -DKVC_THREADS=64 -Dkv_cache_attend=emu_kv_cache_attend \
	-Dattention_forward_pruned=emu_attention_forward_pruned \
	-Dattention_forward=emu_attention_forward -x c++ -c "$1/kernels/cuda/kvcache.cu" \
	-o "$0/kvcache.o" &&
	"${@:2}" -c "$1/tests/cuda-emu/emu.cpp" -o "$0/emu.o" &&
	"${@:2}" -c "$1/tests/cuda-emu/test_kvcache.cpp" -o "$0/test.o"' \
	"$tmp" "$srctree" "${cxx[@]}"
is "$RUN_RC" 0 "kernels/cuda/kvcache.cu compiles for the host emulation" ||
	{ show_run; done_testing; }
run g++ -pthread -fopenmp "$tmp/test.o" "$tmp/kvcache.o" "$tmp/emu.o" "$lib/libkgpt.a" \
	"$lib/libkgpt-cpu.a" -lm -o "$tmp/test_kvcache"
is "$RUN_RC" 0 "the emulation test links against the CPU backend" || { show_run; done_testing; }

run "$tmp/test_kvcache"
is "$RUN_RC" 0 "every emulated kvcache.cu result agrees with the CPU backend" || show_run
n=$(printf '%s\n' "$RUN_OUT" | grep -c '^ok ')
is "$n" 7 "generation and walk: 7 configurations checked"
printf '%s\n' "$RUN_OUT" | sed 's/^/# /'

# The layer kernels (elementwise.cu, layernorm.cu, rmlp.cu, rattn.cu),
# renamed emu_* (rename.h), with float32 and with bf16 activations
# (KGPT_ACT_BF16), each against the CPU backend (test_layers.cpp). The
# reductions' fixed grids are made smaller: a GPU thread is a host thread.
small=(-DBLOCKS=8 -DSUMSQ_BLOCKS=8 -DCHUNKS=4 -DCOLSUM_CHUNKS=4)
for act in fp32 bf16; do
	flags=()
	[ "$act" = bf16 ] && flags=(-DKGPT_ACT_BF16)
	run bash -c 'dir=$1 src=$2 act=$3; shift 3
		for f in elementwise layernorm rmlp rattn; do
			"$@" -include "$src/tests/cuda-emu/rename.h" -x c++ \
				-c "$src/kernels/cuda/$f.cu" -o "$dir/$act-$f.o" || exit 1
		done' layers "$tmp" "$srctree" "$act" "${cxx[@]}" "${flags[@]}" "${small[@]}"
	is "$RUN_RC" 0 "the layer kernels compile for the host emulation, $act activations" ||
		{ show_run; continue; }
	tflags=()
	[ "$act" = bf16 ] && tflags=(-DEMU_BF16)
	run "${cxx[@]}" "${tflags[@]}" -c "$srctree/tests/cuda-emu/test_layers.cpp" \
		-o "$tmp/test-$act.o"
	[ "$RUN_RC" = 0 ] && run g++ -pthread -fopenmp "$tmp/test-$act.o" "$tmp/$act"-*.o \
		"$tmp/emu.o" "$lib/libkgpt.a" "$lib/libkgpt-cpu.a" -lm -o "$tmp/layers-$act"
	is "$RUN_RC" 0 "the layer test links against the CPU backend, $act" ||
		{ show_run; continue; }
	run "$tmp/layers-$act"
	is "$RUN_RC" 0 "every emulated layer kernel agrees with the CPU backend, $act activations" ||
		show_run
	n=$(printf '%s\n' "$RUN_OUT" | grep -c '^ok ')
	is "$n" 12 "layers, $act: 12 checks"
	printf '%s\n' "$RUN_OUT" | sed 's/^/# /'
done
done_testing

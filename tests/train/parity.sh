#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The tools of tests/gpu/run.sh, on the CPU backend (no GPU needed):
# tests/gpu/parity agrees with its own dump exactly, and within the fp32
# tolerances when the thread count changes the order of the sums; a dump
# with one gradient off by 1% fails and names that tensor; a truncated
# dump fails, and so does a dump without its checkpoint; tests/gpu/gen's
# KV-cache bytes are the formula's, pruned and full, and what the
# backend's allocator handed out; tests/gpu/run.sh without a GPU exits 1
# and says why.

. "$(dirname "$0")/../lib.sh"

need make gcc python3 || done_testing
new_tmpdir tmp
o=$tmp/kvprune

run "$srctree/scripts/load-config.sh" "$srctree" "$o" "$srctree/tests/gpu/configs/kvprune.config" \
	defconfig
[ "$RUN_RC" = 0 ] && run kmake O="$o" -j2 gpu-tests
is "$RUN_RC" 0 "tests/gpu/configs/kvprune.config builds parity and gen (CPU backend)" ||
	{ show_run; done_testing; }
parity=$o/build/tests/gpu/parity
dump=$tmp/cpu.bin

run "$parity"
is "$RUN_RC" 2 "parity without arguments: usage, exit status 2"

run env OMP_NUM_THREADS=2 "$parity" dump "$dump"
is "$RUN_RC" 0 "parity dump writes the probes" || show_run

run env OMP_NUM_THREADS=2 "$parity" compare "$dump"
n=$(printf '%s\n' "$RUN_OUT" | grep -c '^ok ')
is "$RUN_RC" 0 "compare against its own dump: every probe passes" || show_run
ok "$([ "$n" -ge 35 ]; echo $?)" "compare checks at least 35 probes (got $n)"
like "$RUN_OUT" '^ok [0-9]+ - evict\.1 \(1024 values\): differing 0 ' \
	"the kept sets of layer 1 are compared, 0 differing"
is "$(printf '%s\n' "$RUN_OUT" | grep -cE '^ok [0-9]+ - (gen\.logits|gen\.kept|ckpt\.loss|ckpt\.step) ')" 4 \
	"generation's logits and kept positions, the checkpoint's loss and next step are compared"
unlike "$RUN_OUT" 'relative error [1-9]' "against its own dump every error is exactly 0"

run env OMP_NUM_THREADS=1 "$parity" compare "$dump"
is "$RUN_RC" 0 "1 thread against the 2-thread dump: within the fp32 tolerances" || show_run
like "$RUN_OUT" 'grad\.qkvw .*relative error [1-9]' \
	"... where the sums' order differs (the gradients are not bit-equal)" || show_run

# One element of grad.qkvw, scaled so that the tensor's relative error is
# about 1e-2: the probe fails, the others do not.
python3 - "$dump" "$tmp/bad.bin" "$tmp/short.bin" <<'EOF'
import struct, sys, math
d = bytearray(open(sys.argv[1], "rb").read())
off = 0
while off < len(d):
    name = d[off:off + 32].split(b"\0")[0].decode()
    kind, _, n = struct.unpack_from("<IIQ", d, off + 32)
    v = off + 48
    if name == "grad.qkvw":
        vals = struct.unpack_from("<%df" % n, d, v)
        norm = math.sqrt(sum(x * x for x in vals))
        i = max(range(n), key=lambda j: abs(vals[j]))
        struct.pack_into("<f", d, v + 4 * i, vals[i] + 1e-2 * norm)
    off = v + 4 * n
open(sys.argv[2], "wb").write(d)
open(sys.argv[3], "wb").write(d[:len(d) // 2])
EOF
ln -s "$dump.ckpt" "$tmp/bad.bin.ckpt"
ln -s "$dump.ckpt" "$tmp/short.bin.ckpt"
run "$parity" compare "$tmp/bad.bin"
is "$RUN_RC" 1 "a dump with grad.qkvw 1% off: exit status 1"
like "$RUN_OUT" '^not ok [0-9]+ - grad\.qkvw ' "... and the failing probe is grad.qkvw"
is "$(printf '%s\n' "$RUN_OUT" | grep -c '^not ok')" 1 "... and only that probe fails"

run "$parity" compare "$tmp/short.bin"
is "$RUN_RC" 1 "a truncated dump: exit status 1"
like "$RUN_OUT" 'truncated|missing' "... saying it is truncated"

run "$parity" compare "$tmp/none.bin"
is "$RUN_RC" 1 "a missing dump: exit status 1"
like "$RUN_ERR" 'none\.bin.*parity dump' "... naming the file and how to write it"

# The checkpoint beside the dump: loaded with its optimizer state.
like "$(ls "$dump.ckpt/checkpoints")" '^step_000001$' "parity dump saves the model after its step"
mv "$dump.ckpt" "$tmp/moved"
run "$parity" compare "$dump"
is "$RUN_RC" 1 "compare without the dump's checkpoint: exit status 1"
like "$RUN_ERR" 'cpu\.bin\.ckpt.*parity dump' "... naming the checkpoint and what writes it"
mv "$tmp/moved" "$dump.ckpt"

# 2 layers, n_embd 64, fp32: pruned k 24 holds 2*2*64*24*4 bytes of K and V
# after 64 tokens, a full cache 2*2*64*64*4.
run "$o/build/tests/gpu/gen" 64
is "$RUN_RC" 0 "gen 64 runs" || show_run
like "$RUN_OUT" 'kv_bytes=24576 .*full_kv_bytes=65536 ' \
	"gen: the pruned cache holds k = 24 tokens per layer, the full one would hold 64"
cache=$(printf '%s\n' "$RUN_OUT" | sed -n 's/.* cache_bytes=\([0-9]*\) .*/\1/p')
alloc=$(printf '%s\n' "$RUN_OUT" | sed -n 's/.* cache_alloc_bytes=\([0-9]*\) .*/\1/p')
[ -n "$cache" ] && [ "$cache" = "$alloc" ] && [ "$cache" -gt 24576 ]
ok $? "gen: the backend's allocator handed out the caches' ${cache:-?} bytes (${alloc:-?} measured)"
run "$o/build/tests/gpu/gen" 65
is "$RUN_RC" 2 "gen beyond block_size: usage error"

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
	skip "tests/gpu/run.sh without a GPU exits 1" "a GPU is here: make check-gpu runs it"
else
	run env KGPT_GPU_OUT="$tmp/gpu" "$srctree/tests/gpu/run.sh"
	is "$RUN_RC" 1 "tests/gpu/run.sh without a GPU: exit status 1"
	like "$RUN_ERR" 'no NVIDIA GPU' "... saying there is no GPU"
fi
run "$srctree/tests/gpu/run.sh" --bogus
is "$RUN_RC" 2 "tests/gpu/run.sh with an unknown option: usage, exit status 2"

done_testing

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# build/generate --eval: the val_loss of a run's final checkpoint over the
# trainer's validation batches equals the val_loss the trainer reported
# for that model in summary.json; with KV pruning (k 12 of block 32) that
# is the pruned figure, and full attention gives another one.
. "$(dirname "$0")/setup.bash"

setup_trainer
generate=$objdir/build/generate

workdir w
train "$w" --fresh
is "$RUN_RC" 0 "a 20-step run" || { show_run; done_testing; }
want=$(sed -n 's/^[[:space:]]*"val_loss":[[:space:]]*\([-0-9.e+]*\),*$/\1/p' "$w/out/latest/summary.json")
ok "$([ -n "$want" ]; echo $?)" "summary.json has val_loss ($want)"

run bash -c 'cd "$1" && exec "$2" --eval --checkpoint out/latest' _ "$w" "$generate"
is "$RUN_RC" 0 "generate --eval exits 0" || show_run
like "$RUN_OUT" "val_loss over 2 batches of 4 x 32 tokens" \
	"over CONFIG_GPT2_EVAL_SAMPLES = 2 batches of B x T"
got=$(printf '%s\n' "$RUN_OUT" | sed -n 's/.*full attention.* val_loss \([0-9.]*\) .*/\1/p')
ok "$(awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; exit !(a != "" && d < 6e-5 && d > -6e-5) }'; echo $?)" \
	"its val_loss $got is the trainer's $want (to the 4 decimals printed)"

run bash -c 'cd "$1" && exec "$2" --eval --checkpoint out/latest --batches 0' _ "$w" "$generate"
isnt "$RUN_RC" 0 "--batches 0 is refused"
like "$RUN_ERR" "--batches 0: not a valid value" "naming the option and the value"

# The same configuration with KV pruning, in a copy of the build tree.
pruned=$objdir-kvprune
if [ ! -x "$pruned/build/generate" ] || [ "$trainer" -nt "$pruned/build/generate" ]; then
	rm -rf "$pruned"
	cp -a "$objdir" "$pruned"
	printf '%s\n' CONFIG_KV_CACHE_PRUNE=y CONFIG_KV_PRUNE_K=12 CONFIG_KV_PRUNE_RECENCY=4 \
		> "$pruned.frag"
	kmake O="$pruned" mergeconfig F="$pruned.frag" >"$pruned.log" 2>&1 &&
		kmake O="$pruned" build >>"$pruned.log" 2>&1 ||
		{ fail "build the trainer with KV pruning" "$(tail -20 "$pruned.log")"; done_testing; }
fi
workdir p
run bash -c 'cd "$1" && exec "$2" --fresh' _ "$p" "$pruned/build/train_gpt2"
is "$RUN_RC" 0 "a 20-step run with KV pruning" || { show_run; done_testing; }
want=$(sed -n 's/^[[:space:]]*"val_loss":[[:space:]]*\([-0-9.e+]*\),*$/\1/p' "$p/out/latest/summary.json")
run bash -c 'cd "$1" && exec "$2" --eval --checkpoint out/latest' _ "$p" "$pruned/build/generate"
is "$RUN_RC" 0 "generate --eval of the pruned run exits 0" || show_run
kv=$(printf '%s\n' "$RUN_OUT" | sed -n 's/^ *KV pruned, k 12 of 32 *\([0-9.]*\) .*/\1/p')
full=$(printf '%s\n' "$RUN_OUT" | sed -n 's/^ *full (no eviction) *\([0-9.]*\) .*/\1/p')
ok "$(awk -v a="$kv" -v b="$want" 'BEGIN { d = a - b; exit !(a != "" && d < 6e-5 && d > -6e-5) }'; echo $?)" \
	"pruned val_loss $kv is the trainer's $want" || diag "$RUN_OUT"
ok "$(awk -v a="$kv" -v b="$full" 'BEGIN { exit !(a != "" && b != "" && a != b) }'; echo $?)" \
	"full attention gives another val_loss ($full): the pruning is real"

# Generation through the pruned cache: 30 tokens greedily after a prompt,
# twice, past k = 12 tokens of context.
gen() {
	run bash -c 'cd "$1" && exec "$2" --checkpoint out/latest --prompt "ROMEO:" --tokens 30 \
		--temperature 0' _ "$p" "$pruned/build/generate"
}
text() { printf '%s\n' "$RUN_OUT" | sed -n '/^---$/,/^---$/p'; }
gen
is "$RUN_RC" 0 "generate 30 tokens through the pruned KV cache" || show_run
first=$(text)
like "$RUN_OUT" 'KV cache pruned to k = 12 of 32 tokens' "... saying it prunes to k = 12"
all=$(printf '%s\n' "$RUN_OUT" | sed -n 's/.*KV cache allocated: \([0-9]*\) bytes.*/\1/p')
alloc=$(printf '%s\n' "$RUN_OUT" | sed -n "s/.*the backend's allocator measured \([0-9]*\) bytes.*/\1/p")
[ -n "$all" ] && [ "$all" = "$alloc" ]
ok $? "the caches' ${all:-?} bytes are what the backend's allocator handed out (${alloc:-?})"
like "$RUN_OUT" 'at capacity [0-9]* = the K and V allocated: yes' \
	"the K and V allocated are the formula's at k = 12 (kv_cache_bytes_mode())"
gen
[ -n "$first" ] && [ "$(text)" = "$first" ]
ok $? "greedy generation is reproducible: a second run prints the same text" ||
	diag "$(diff <(printf '%s\n' "$first") <(text) | head -5)"

done_testing

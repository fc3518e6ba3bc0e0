#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The ablation matrix (scripts/ablation.sh) on tests/ablation/base.config:
# three 3-second steps (steps/A, B, C) whose binaries differ, an
# interruption in B and a resume that skips A, the table against the
# runs' summaries and the KV bytes of the config, the baseline from a
# local folder (its history in the plots) and from a fake W&B client
# (tests/ablation/fake-wandb, whose history cannot be read),
# malformed and unreadable baselines, BASELINE_STRICT=1, and a step whose
# setting the merge drops. The step trees are kept in
# build/check/ablation, so that a second run builds nothing.

. "$(dirname "$0")/../train/setup.bash"

need jq make setsid || done_testing
setup_trainer
export OMP_NUM_THREADS=1
abl=$srctree/build/check/ablation
o=$abl/o
new_tmpdir tmp
res=$tmp/res
export KGPT_ABLATION_BUILD=$abl/build KGPT_ABLATION_DIR=$res
export KGPT_WANDB_TOOL=$tmp/no-wandb-client

# The configuration: base.config with the test data.
{ cat "$srctree/tests/ablation/base.config"; echo "CONFIG_DATA_DIR=\"$objdir/data\""; } > "$tmp/base.config"
if ! cmp -s "$tmp/base.config" "$abl/base.config"; then
	mkdir -p "$abl"
	rm -rf "$o"
	run "$srctree/scripts/load-config.sh" "$srctree" "$o" "$tmp/base.config" defconfig
	is "$RUN_RC" 0 "load tests/ablation/base.config" || { show_run; done_testing; }
	cp "$tmp/base.config" "$abl/base.config"
fi

# 1. Start the matrix, interrupt it (SIGINT to its process group, as
# Ctrl-C does) once step B has written a checkpoint.
setsid bash -c 'cd "$1" && exec make --no-print-directory O="$2" >"$3/run1.out" 2>&1' _ \
	"$srctree" "$o" "$tmp" &
pid=$!
for ((i = 0; i < 3000; i++)); do
	ls "$res"/B/latest/checkpoints/step_* >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.05
done
kill -INT -- -"$pid" 2>/dev/null
wait "$pid"
rc=$?
out1=$(cat "$tmp/run1.out")
isnt "$rc" 0 "the interrupted matrix exits non-zero" || diag "$out1"
like "$out1" "interrupted in step B" "the driver says which step was interrupted"
[ -f "$res/A/latest/summary.json" ]; ok $? "step A finished before the interruption"
[ ! -f "$res/B/latest/summary.json" ]; ok $? "step B is unfinished"
ls "$res"/B/latest/checkpoints/step_* >/dev/null 2>&1; ok $? "step B has a checkpoint"
[ ! -e "$res/C" ]; ok $? "step C did not start"
like "$out1" "step 1 of 3: train A .*step ETA [0-9:]+, matrix ETA [0-9:]+" "progress line: step i of n, step and matrix ETA"

# 2. make again: A skipped, B resumed, C run, the table printed.
run kmake O="$o"
is "$RUN_RC" 0 "make again finishes the matrix" || show_run
like "$RUN_OUT" "step 1 of 3: A finished, skipped" "the finished step A is skipped"
like "$RUN_OUT" "kgpt: resuming .*/B/.* from step [1-9]" "step B resumes from its checkpoint"
for s in A B C; do
	[ -f "$res/$s/latest/summary.json" ]; ok $? "step $s has a summary"
done
like "$RUN_OUT" "table in $res/table.md" "make says where the table is"
like "$RUN_OUT" "\\| B \\| R-MLP R_ff 16 \\|" "make prints the table"

# 3. The binaries differ where the steps do.
for s in A B C; do
	"$abl/build/$s/build/train_gpt2" --print-config > "$tmp/$s.pc" 2>&1
done
! grep -q '^CONFIG_RMLP=y' "$tmp/A.pc" && ! grep -q '^CONFIG_KV_CACHE_PRUNE=y' "$tmp/A.pc"
ok $? "A --print-config: no R-MLP, no KV pruning"
grep -q '^CONFIG_RMLP_R_FF=16' "$tmp/B.pc" && ! grep -q '^CONFIG_KV_CACHE_PRUNE=y' "$tmp/B.pc"
ok $? "B --print-config: R-MLP R_ff 16, no KV pruning"
grep -q '^CONFIG_KV_PRUNE_LEARNED=y' "$tmp/C.pc" && grep -q '^CONFIG_RMLP_USE_GATES=y' "$tmp/C.pc"
ok $? "C --print-config: learned KV pruning and gate_alpha"
! cmp -s "$abl/build/A/build/train_gpt2" "$abl/build/B/build/train_gpt2" &&
	! cmp -s "$abl/build/B/build/train_gpt2" "$abl/build/C/build/train_gpt2"
ok $? "the three binaries differ"

# 4. The table holds the summaries' values.
t=$res/table.json
for s in A B C; do
	sum=$res/$s/latest/summary.json
	for k in val_loss val_perplexity best_perplexity train_loss tokens_per_s params peak_rss_bytes; do
		is "$(jq ".steps[] | select(.step == \"$s\") | .$k" "$t")" "$(jq ".$k" "$sum")" "table: $s $k equals its summary.json"
	done
	grep -q "^\"$s\",.*,$(jq .val_loss "$sum")," "$res/table.csv"; ok $? "table.csv: $s val_loss"
done
a=$(jq .val_loss "$res/A/latest/summary.json")
b=$(jq .val_loss "$res/B/latest/summary.json")
is "$(jq '.steps[0].delta_pct' "$t")" 0 "table: the baseline A has delta 0"
is "$(jq -r '.steps[1].delta_pct * 1e6 | round' "$t")" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.0f", (b / a - 1) * 1e8 }')" \
	"table: B's delta % = (val_loss B / val_loss A - 1) * 100"
# KV: 2 layers x 2 (K, V) x 32 tokens x 32 channels x 4 bytes x batch 4;
# C learns its keep ratio from 0.5: k = 16.
is "$(jq '.steps[2].kv_bytes_full' "$t"):$(jq '.steps[2].kv_bytes_pruned' "$t")" "65536:32768" \
	"table: C's KV-cache bytes full and pruned from the config"
is "$(jq '.steps[2].keep_ratio' "$t")" "$(jq '.kv_keep_ratio | add / length' "$res/C/latest/summary.json")" \
	"table: C's keep ratio is its summary's"
like "$(jq '.steps[1].w_std' "$t")" '^0\.[0-9]+' "table: B's w_std mean is there"
for p in val_loss_time val_loss_tokens gates keep_ratio; do
	[ -s "$res/$p.png" ]; ok $? "plot $p.png"
done

# 5. Baselines. Malformed: refused before anything is built.
run kmake O="$o" KGPT_ABLATION_BUILD="$tmp/nobuild" BASELINE='not a/run spec'
isnt "$RUN_RC" 0 "make BASELINE='not a/run spec' fails"
like "$RUN_ALL" 'BASELINE "not a/run spec" is not entity/project/run_id' "the message names BASELINE and the forms"
[ ! -e "$tmp/nobuild" ] || [ -z "$(ls "$tmp/nobuild")" ]; ok $? "nothing was built"
run env BASELINE='a/b' KGPT_ABLATION_BUILD="$tmp/nobuild" "$srctree/scripts/ablation.sh" "$o"
is "$RUN_RC" 2 "scripts/ablation.sh BASELINE=a/b exits 2"
[ -z "$(ls "$tmp/nobuild" 2>/dev/null)" ]; ok $? "nothing was built for BASELINE=a/b"

# A local run folder.
run kmake O="$o" BASELINE="$res/A/latest"
is "$RUN_RC" 0 "BASELINE=a local run folder" || show_run
like "$RUN_OUT" "step A is skipped" "a readable baseline skips A"
is "$(jq -c '[.steps[].step]' "$t")" '["B","C"]' "the table has B and C"
is "$(jq .baseline.val_loss "$t")" "$a" "the baseline val_loss is the folder's"
am=$res/A/latest/metrics.jsonl
is "$(cat "$res/plot/BASELINE.val")" "$(jq -r 'select(.type == "eval") | "\(.elapsed_s) \(.tokens) \(.val_loss)"' "$am")" \
	"plot/BASELINE.val: the local run's eval rows (seconds, tokens, val_loss)"
is "$(wc -l < "$res/baseline-history.jsonl")" "$(jq -c 'select(.type == "eval" or .type == "train")' "$am" | wc -l)" \
	"the baseline's history is cached: its eval and train rows"
alabel="baseline $(basename "$(cd "$res/A/latest" && pwd -P)")"
is "$(jq -r .label "$res/baseline.json")" "$alabel" "the baseline's label names its run folder"
like "$(cat "$res/plot/plots.gp")" "'$res/plot/BASELINE.val' using 2:3 with linespoints lc rgb 'black' lw 2 dashtype 4 title '$alabel'" \
	"plots.gp: val_loss against tokens has the baseline, labelled"
unlike "$(cat "$res/table.md")" "Baseline history" "no note: the history is plotted"

# W&B through the client: missing, unreadable, strict, readable, cached.
run kmake O="$o" BASELINE=ent/proj/abc123
is "$RUN_RC" 0 "an unreadable W&B baseline falls back to A" || show_run
like "$RUN_OUT" "ent/proj/abc123 cannot be read: the W&B client is not built" "the reason: no client"
like "$RUN_OUT" "A is the baseline instead" "A is the baseline"
is "$(jq -c '[.steps[].step]' "$t")" '["A","B","C"]' "the table has A again"
cat > "$tmp/fake-wandb" <<'FAKE'
#!/bin/sh
echo "$*" >> "$FAKE_LOG"
case $1:$FAKE_MODE in
history:*) echo "kgpt-wandb: cannot read the history of wandb:$2: history is unavailable" >&2; exit 1 ;;
*:fail) echo "run ent/proj/abc123 not found (404)" >&2; exit 1 ;;
*:ok) echo '{"source": "wandb:ent/proj/abc123", "val_loss": 9.5, "val_perplexity": 13359.7, "train_loss": 9.4, "train_perplexity": null}' ;;
esac
FAKE
chmod +x "$tmp/fake-wandb"
export KGPT_WANDB_TOOL=$tmp/fake-wandb FAKE_LOG=$tmp/fake.log
run env FAKE_MODE=fail make -C "$srctree" --no-print-directory O="$o" BASELINE=ent/proj/runs/abc123
is "$RUN_RC" 0 "a W&B baseline the client cannot read falls back" || show_run
like "$RUN_OUT" "cannot be read: fake-wandb says: run ent/proj/abc123 not found \\(404\\)" "the client's reason is shown"
run env FAKE_MODE=fail make -C "$srctree" --no-print-directory O="$o" BASELINE=ent/proj/abc123 BASELINE_STRICT=1
is "$RUN_RC" 2 "BASELINE_STRICT=1 makes it an error" || show_run
like "$RUN_ERR" "cannot be read: .*not found.*BASELINE_STRICT=1" "the strict error says why"
run env FAKE_MODE=ok make -C "$srctree" --no-print-directory O="$o" BASELINE=https://wandb.ai/ent/proj/runs/abc123
is "$RUN_RC" 0 "a readable W&B baseline (URL)" || show_run
is "$(tail -2 "$FAKE_LOG" | tr '\n' ,)" "baseline ent/proj/abc123,history ent/proj/abc123," \
	"the client is asked for entity/project/run_id's summary and history"
like "$RUN_OUT" "the history of the baseline .* cannot be read: fake-wandb says: cannot read the history of wandb:ent/proj/abc123: history is unavailable \\(exit 1\\); the plots are made without it" \
	"a history the client cannot read: the driver says why"
is "$(grep -c 'Baseline history not plotted' "$res/table.md")" 1 "table.md: one line about it"
for p in val_loss_time val_loss_tokens; do
	[ -s "$res/$p.png" ]; ok $? "without the baseline's history: $p.png"
done
[ ! -e "$res/baseline-history.jsonl" ] && ! grep -q "title 'baseline" "$res/plot/plots.gp"
ok $? "no baseline series in the plots"
is "$(jq .baseline.val_loss "$t"):$(jq -c '[.steps[].step]' "$t")" '9.5:["B","C"]' "the table compares B and C with the W&B baseline"
is "$(jq -r .spec "$res/baseline.json")" "https://wandb.ai/ent/proj/runs/abc123" "the baseline is cached in the results"
run env FAKE_MODE=fail make -C "$srctree" --no-print-directory O="$o" BASELINE=https://wandb.ai/ent/proj/runs/abc123
is "$RUN_RC:$(jq .baseline.val_loss "$t")" "0:9.5" "the cached baseline is used without the client"

# 6. A step whose setting the merge drops: an error naming step and symbol.
cp "$o/.config" "$tmp/config.d"
sed -i 's/^CONFIG_RA_MLA_ABLATION_STEPS=.*/CONFIG_RA_MLA_ABLATION_STEPS="D"/' "$o/.config"
run env KGPT_ABLATION_DIR="$tmp/res-d" "$srctree/scripts/ablation.sh" "$o"
cp "$tmp/config.d" "$o/.config"
isnt "$RUN_RC" 0 "a step whose setting is dropped fails"
like "$RUN_ALL" "D/step.config:[0-9]+: error: CONFIG_RMLP_R_FF=16 was requested, but its dependencies are off" \
	"the error names the step and the symbol"

done_testing

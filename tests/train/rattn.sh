#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Reciprocal Attention in the trainer: tests/train/rattn.config
# (tiny.config with CONFIG_RA, R 4 of head size 16, per-head gates and
# self-restart) trains 40 steps on the test dataset:
#   - the baseline trainer has no RA code, this one has;
#   - the start-up lines give the split and the geometric initial gates;
#   - metrics.jsonl has w_std, w_rec and alpha of every layer on every log
#     line, and they move away from their initial values; the training
#     loss goes down;
#   - summary.json has their means, the console summary a line;
#   - 20 steps + checkpoint + 20 resumed steps give the same rows and
#     model.bin (the RA tensors and their AdamW moments are checkpointed);
#   - --init-from the baseline's model.bin repacks q and k, says so, and
#     starts near the baseline's val_loss; its resume does not repack.
. "$(dirname "$0")/setup.bash"

need nm || done_testing
setup_trainer
reference
base_trainer=$trainer
objdir=$srctree/build/check/train-ra
trainer=$objdir/build/train_gpt2
setup_trainer "$srctree/tests/train/rattn.config"

is "$(nm "$base_trainer" | grep -c ' rattn_')" 0 "the trainer without CONFIG_RA has no rattn_ symbols"
like "$(nm "$trainer")" ' T rattn_scale_(forward|backward)$' "the RA trainer has rattn_scale_forward and _backward"


workdir w
train "$w" --fresh
is "$RUN_RC" 0 "40 RA steps run" || show_run
like "$RUN_OUT" "RA: head size 16 = D_std 12 \\+ R 4, init w_std 0\\.7500 w_rec 0\\.2500 per head" \
	"the start-up line gives the split and the geometric init"
like "$RUN_OUT" "RA self-restart on \\(alpha per head, init 0\\.05" "and self-restart"
metrics=$w/out/latest/metrics.jsonl
first=$(grep '"type":"train"' "$metrics" | head -1)
last=$(grep '"type":"train"' "$metrics" | tail -1)
for key in ra_w_std ra_w_rec ra_alpha; do
	is "$(grep '"type":"train"' "$metrics" | grep -c "\"$key\":\\[[^],]*,[^],]*\\]")" 40 \
		"every training row has $key of both layers"
done

# per-head gates are logged as their layer's mean over the heads, whose
# moves partly cancel: 5e-4 instead of the 1e-3 of one scalar
moved "$first" "$last" ra_w_std 0.75 5e-4
ok $? "w_std of every layer starts at 0.75 and moves ($(field "$first" ra_w_std) -> $(field "$last" ra_w_std))"
moved "$first" "$last" ra_w_rec 0.25 5e-4
ok $? "w_rec of every layer starts at 0.25 and moves ($(field "$first" ra_w_rec) -> $(field "$last" ra_w_rec))"
moved "$first" "$last" ra_alpha 0.05 5e-4
ok $? "alpha of every layer starts at 0.05 and moves ($(field "$first" ra_alpha) -> $(field "$last" ra_alpha))"
l0=$(field "$first" train_loss)
l1=$(field "$last" train_loss)
awk -v a="$l0" -v b="$l1" 'BEGIN { exit !(b < a - 1) }'
ok $? "the training loss goes down by more than 1 ($l0 -> $l1)"
summary=$(cat "$w/out/latest/summary.json" 2>/dev/null)
like "$summary" '"ra_w_std_mean":[[:space:]]*0\.[0-9]' "summary.json has ra_w_std_mean"
like "$summary" '"ra_w_rec_mean"' "and ra_w_rec_mean"
like "$summary" '"ra_alpha_mean"' "and ra_alpha_mean"
like "$RUN_OUT" "^  RA +w_std 0\\.[0-9]{4}  w_rec 0\\.[0-9]{4}  alpha 0\\.[0-9]{4}  \\(means over 2 layers\\)" \
	"the console summary has the RA line"

resumed_equals "$w" "RA gates included"

workdir w3
train "$w3" --fresh --init-from "$ref/model.bin" --stop-at 20
is "$RUN_RC" 0 "--init-from the baseline tiny model's model.bin, 20 steps" || show_run
like "$RUN_OUT" "RA: the last 4 rows of every head's query and key projections swapped" \
	"it repacks q and k and says so"
val0() {
	field "$(grep -m1 '"type":"eval","iter":0,' "$1")" val_loss
}
vb=$(field "$(grep '"type":"eval"' "$ref/metrics" | tail -1)" val_loss)
vi=$(val0 "$w3/out/latest/metrics.jsonl")
vf=$(val0 "$metrics")
awk -v i="$vi" -v b="$vb" -v f="$vf" 'BEGIN {
	d1 = i - b; d2 = f - b; d1 = d1 < 0 ? -d1 : d1; d2 = d2 < 0 ? -d2 : d2
	exit !(d2 > 0.1 && d1 < d2 / 2) }'
ok $? "its val_loss at step 0 is near the baseline's last ($vi vs $vb), not a fresh model's ($vf)"
train "$w3"
is "$RUN_RC" 0 "that run resumed to step 40" || show_run
unlike "$RUN_OUT" "projections swapped" "a resume does not repack again"

done_testing

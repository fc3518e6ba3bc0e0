#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# R-MLP in the trainer: tests/train/rmlp.config (tiny.config with
# CONFIG_RMLP, R_ff 16 of D_ff 128, mixer and gates) trains 40 steps on the
# test dataset:
#   - the baseline trainer has no R-MLP code, this one has;
#   - the start-up lines give the split and the geometric initial scalars;
#   - metrics.jsonl has w_std, w_rec, gate_alpha, rec_scale and ||mixw||_F
#     of every layer on every log line, and they move away from their initial
#     values; the training loss goes down;
#   - summary.json has their means, the console summary a line;
#   - 20 steps + checkpoint + 20 resumed steps give the same rows (all
#     R-MLP parameters and their AdamW moments are in the checkpoint);
#   - --init-from the baseline's model.bin starts the R-MLP from it.
. "$(dirname "$0")/setup.bash"

need nm || done_testing
# the baseline tiny trainer and its 20-step run (a baseline checkpoint)
setup_trainer
reference
base_trainer=$trainer
# the R-MLP trainer: tiny.config's sizes, so the baseline's model.bin fits
objdir=$srctree/build/check/train-rmlp
trainer=$objdir/build/train_gpt2
setup_trainer "$srctree/tests/train/rmlp.config"

is "$(nm "$base_trainer" | grep -c ' rmlp_')" 0 "the trainer without CONFIG_RMLP has no rmlp_ symbols"
like "$(nm "$trainer")" ' T rmlp_(forward|backward)$' "the R-MLP trainer has rmlp_forward and rmlp_backward"


workdir w
train "$w" --fresh
is "$RUN_RC" 0 "40 R-MLP steps run" || show_run
like "$RUN_OUT" "R-MLP layers 0-1: D_ff 128 = D_ff_std 112 \\+ R_ff 16, init w_std 0\\.8750 w_rec 0\\.1250" \
	"the start-up line gives the split and the geometric init"
like "$RUN_OUT" "R-MLP mixer on .*gates on \\(gate_alpha init 0\\.1\\)" "and the mixer and gates"
metrics=$w/out/latest/metrics.jsonl
first=$(grep '"type":"train"' "$metrics" | head -1)
last=$(grep '"type":"train"' "$metrics" | tail -1)
for key in rmlp_w_std rmlp_w_rec rmlp_gate_alpha rmlp_rec_scale rmlp_mix_fro; do
	is "$(grep '"type":"train"' "$metrics" | grep -c "\"$key\":\\[[^],]*,[^],]*\\]")" 40 \
		"every training row has $key of both layers"
done

moved "$first" "$last" rmlp_w_std 0.875
ok $? "w_std of every layer starts at 0.875 and moves ($(field "$first" rmlp_w_std) -> $(field "$last" rmlp_w_std))"
moved "$first" "$last" rmlp_w_rec 0.125
ok $? "w_rec of every layer starts at 0.125 and moves ($(field "$first" rmlp_w_rec) -> $(field "$last" rmlp_w_rec))"
moved "$first" "$last" rmlp_gate_alpha 0.1
ok $? "gate_alpha of every layer starts at 0.1 and moves ($(field "$first" rmlp_gate_alpha) -> $(field "$last" rmlp_gate_alpha))"
moved "$first" "$last" rmlp_mix_fro 4
ok $? "||mixw||_F starts at 4 (identity 16 x 16) and moves ($(field "$first" rmlp_mix_fro) -> $(field "$last" rmlp_mix_fro))"
l0=$(field "$first" train_loss)
l1=$(field "$last" train_loss)
awk -v a="$l0" -v b="$l1" 'BEGIN { exit !(b < a - 1) }'
ok $? "the training loss goes down by more than 1 ($l0 -> $l1)"
summary=$(cat "$w/out/latest/summary.json" 2>/dev/null)
like "$summary" '"rmlp_w_std_mean":[[:space:]]*0\.[0-9]' "summary.json has rmlp_w_std_mean"
like "$summary" '"rmlp_w_rec_mean"' "and rmlp_w_rec_mean"
like "$summary" '"rmlp_gate_alpha_mean"' "and rmlp_gate_alpha_mean"
like "$summary" '"rmlp_mix_fro_mean"' "and rmlp_mix_fro_mean"
like "$RUN_OUT" "^  R-MLP +w_std 0\\.[0-9]{4}  w_rec 0\\.[0-9]{4}  gate_alpha [0-9.]+  \\|mixw\\|_F [0-9.]+  \\(means over 2 layers\\)" \
	"the console summary has the R-MLP line"

resumed_equals "$w" "R-MLP values included"

workdir w3
train "$w3" --fresh --init-from "$ref/model.bin"
is "$RUN_RC" 0 "--init-from the baseline tiny model's model.bin" || show_run
like "$RUN_OUT" "starting from the parameters of .*model.bin" "it says where it starts from"
# val_loss of the evaluation at step 0 in a metrics file
val0() {
	field "$(grep -m1 '"type":"eval","iter":0,' "$1")" val_loss
}
vb=$(field "$(grep '"type":"eval"' "$ref/metrics" | tail -1)" val_loss)
vi=$(val0 "$w3/out/latest/metrics.jsonl")
vf=$(val0 "$metrics")
awk -v i="$vi" -v b="$vb" -v f="$vf" 'BEGIN {
	d1 = i - b; d2 = f - b; d1 = d1 < 0 ? -d1 : d1; d2 = d2 < 0 ? -d2 : d2
	exit !(d2 > 0.1 && d1 < d2 / 4) }'
ok $? "its val_loss at step 0 is near the baseline's last ($vi vs $vb), not a fresh model's ($vf)"
moved_init=$(field "$(grep -m1 '"type":"train"' "$w3/out/latest/metrics.jsonl")" rmlp_w_rec)
awk -v a="$moved_init" 'BEGIN { n = split(a, x, ","); for (i = 1; i <= n; i++) if (x[i] < 0.12 || x[i] > 0.13) exit 1; exit 0 }'
ok $? "with w_rec at its geometric init after step 1 ($moved_init)"

done_testing

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# AdamW-SPAM in the trainer: tests/train/spam.config (tiny.config with
# CONFIG_OPTIMIZER_SELECT_ADAMWSPAM, a reset every 15 steps, a 4-step ramp,
# spike threshold 0.5, lr 6e-3) trains 40 steps:
#   - metrics.jsonl counts the periodic resets (1 after step 15, 2 after
#     step 30), the ramp's LR factor (0.01 at a reset's step), spikes;
#   - the training loss goes down (clipping leaves elements without a
#     second-moment estimate alone);
#   - summary.json and the console summary have the counters;
#   - 20 steps + checkpoint + 20 resumed steps (across the reset at 30, and
#     the spikes after 20) give the same rows and the same model.bin (cmp):
#     vmax, the norm history and the counters are in the checkpoint;
#   - the AdamW trainer refuses to resume a SPAM checkpoint, naming why.
KGPT_TRAIN_BUILD=${KGPT_TRAIN_BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build/check/train-spam}
. "$(dirname "$0")/setup.bash"

setup_trainer "$srctree/tests/train/spam.config"

# field ROW KEY: KEY's number in a metrics row.
field() {
	printf '%s\n' "$1" | sed -n "s/.*\"$2\":\\([^,}]*\\).*/\\1/p"
}

workdir w
train "$w" --fresh
is "$RUN_RC" 0 "40 AdamW-SPAM steps run" || show_run
metrics=$w/out/latest/metrics.jsonl
row() { grep '"type":"train"' "$metrics" | grep "\"iter\":$1[,}]"; }
is "$(field "$(row 14)" spam_resets)" 0 "no reset before step 15"
is "$(field "$(row 15)" spam_resets)" 1 "the reset of step 15 is counted"
f=$(field "$(row 15)" spam_lr_factor)
awk -v f="$f" 'BEGIN { exit !(f > 0.0099999 && f < 0.0100001) }'
ok $? "the ramp's LR factor is 0.01 at the reset's step ($f)"
is "$(field "$(row 19)" spam_lr_factor)" 1 "and 1 again 4 steps later"
is "$(field "$(row 40)" spam_resets)" 2 "two resets in 40 steps (15, 30)"
spikes=$(field "$(row 40)" spam_spikes)
ok "$([ "${spikes:-0}" -ge 1 ]; echo $?)" "spikes are detected and counted ($spikes at threshold 0.5)"
last=$(field "$(row 40)" spam_last_spike)
ok "$([ "${last:-0}" -gt 20 ]; echo $?)" "one of them after step 20 (last at step $last)"
like "$(cat "$w/out/latest/summary.json" 2>/dev/null)" '"spam_spikes":[[:space:]]*[1-9]' "summary.json has spam_spikes"
like "$RUN_OUT" "AdamW-SPAM +[0-9]+ spikes .*2 periodic resets" "the console summary has the SPAM line"
l0=$(field "$(row 1)" train_loss)
l1=$(field "$(row 40)" train_loss)
awk -v a="$l0" -v b="$l1" 'BEGIN { exit !(b < a - 1) }'
ok $? "the training loss goes down by more than 1 ($l0 -> $l1)"

resumed_equals "$w" "SPAM counters included, across the reset at step 30"

# A checkpoint of the SPAM trainer, resumed by the AdamW one (tiny.config:
# the same sizes): refused, naming the optimizer, and nothing changes.
workdir w4
train "$w4" --stop-at 10
is "$RUN_RC" 0 "SPAM: 10 steps and a checkpoint" || show_run
sums=$(cd "$w4/out/latest" && find . -type f | sort | xargs md5sum)
objdir=$srctree/build/check/train
trainer=$objdir/build/train_gpt2
setup_trainer
train "$w4" --resume
isnt "$RUN_RC" 0 "the AdamW trainer refuses to resume it" || show_run
like "$RUN_ALL" "optimizer_adamw is 0 in the file, the trainer is compiled for 1 \\(CONFIG_OPTIMIZER_SELECT_ADAMW\\)" \
	"naming the optimizer field and its Kconfig symbol"
is "$(cd "$w4/out/latest" && find . -type f | sort | xargs md5sum)" "$sums" \
	"and leaves every file of the run as it was"

done_testing

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Exact resume: 20 steps straight and 10 steps + checkpoint + a new
# process + 10 more give identical metrics and an identical final model.
. "$(dirname "$0")/setup.bash"

setup_trainer
reference

workdir w
train "$w" --stop-at 10
is "$RUN_RC" 0 "--stop-at 10 exits 0" || show_run
like "$RUN_ERR" "stopped after step 10; checkpoint .*step_000010 written" "it says where the checkpoint is"
like "$RUN_ERR" "make resume" "and how to resume"
ok "$([ -f "$w/out/latest/checkpoints/step_000010/DONE" ]; echo $?)" "step_000010 is complete"
ok "$([ ! -e "$w/out/latest/summary.json" ]; echo $?)" "the run is unfinished (no summary.json)"
is "$(grep -c '"type":"train"' "$w/out/latest/metrics.jsonl")" 10 "10 training rows so far"

train "$w"
is "$RUN_RC" 0 "a new process continues the unfinished run" || show_run
like "$RUN_OUT" "resuming out/.* from step 10" "it says it resumes from step 10"
is "$(ls "$w/out" | grep -vc latest)" 1 "in the same run folder"
same_as_reference "$w" "10 + 10 steps"
is "$(grep -o '"type":"train","iter":[0-9]*' "$w/out/latest/metrics.jsonl" | sed 's/.*://' | tr '\n' ' ')" \
	"$(seq 1 20 | tr '\n' ' ')" "training rows for steps 1..20, each once"
is "$(grep -o '"type":"eval","iter":[0-9]*' "$w/out/latest/metrics.jsonl" | sed 's/.*://' | tr '\n' ' ')" \
	"0 5 10 15 20 " "evaluation rows for steps 0 (untrained), 5, 10, 15, 20, each once"
ok "$([ -f "$w/out/latest/summary.json" ]; echo $?)" "summary.json written at the end"
is "$(ls "$w/out/latest/checkpoints")" "$(printf 'step_000015\nstep_000020')" \
	"the two newest checkpoints are kept"
cmp -s "$w/out/latest/model.bin" "$w/out/latest/checkpoints/step_000020/model.bin"
ok $? "model.bin is the final checkpoint's model"

train "$w" --resume
isnt "$RUN_RC" 0 "--resume of a finished run fails"
like "$RUN_ERR" "nothing to resume: .* is finished" "saying the run is finished"

workdir w2
train "$w2" --resume
isnt "$RUN_RC" 0 "--resume with no run at all fails"
like "$RUN_ERR" "nothing to resume: out/latest does not exist" "saying there is no run"
ok "$([ ! -e "$w2/out" ]; echo $?)" "and creates nothing"

like "$(kmake O="$objdir" -n resume 2>&1)" "train_gpt2 --resume" "make resume runs train_gpt2 --resume"

# --stop-at at the last step: the run is finished, not interrupted.
workdir w3
train "$w3" --stop-at 20
is "$RUN_RC" 0 "--stop-at 20 = max_iters exits 0" || show_run
ok "$([ -f "$w3/out/latest/summary.json" ]; echo $?)" "and finishes the run (summary.json)"
like "$(cat "$w3/out/latest/summary.json")" '"stopped_by":[[:space:]]*"max_iters"' "stopped by max_iters"

# A run folder of the same name (a run started in the same second) is
# never shared: the new run takes the next free name.
workdir w5
mkdir -p "$w5/out"
now=$(date +%s)
for ((s = now; s < now + 4; s++)); do
	mkdir "$w5/out/tiny-$(date -d "@$s" +%Y%m%d-%H%M%S)"
done
train "$w5" --fresh --stop-at 1
is "$RUN_RC" 0 "a run whose folder name is taken" || show_run
like "$(readlink "$w5/out/latest")" "^tiny-[0-9]{8}-[0-9]{6}-1$" "takes the name with -1 ($(readlink "$w5/out/latest"))"
is "$(find "$w5/out" -mindepth 2 -path '*-[0-9][0-9][0-9][0-9][0-9][0-9]/*' | wc -l)" 0 \
	"and leaves the existing folders empty"

# Resuming under another time budget (it sets the learning-rate schedule)
# is refused: the same configuration built with TIME=600 (a copy of the
# build tree, so that only what reads the budget is rebuilt).
other=$objdir-time600
if [ ! -x "$other/build/train_gpt2" ] || [ "$trainer" -nt "$other/build/train_gpt2" ]; then
	rm -rf "$other"
	cp -a "$objdir" "$other"
fi
if kmake O="$other" TIME=600 build >"$other.log" 2>&1; then
	workdir w4
	train "$w4" --stop-at 5
	cp "$w4/out/latest/metrics.jsonl" "$w4/metrics.before"
	run bash -c 'cd "$1" && exec "$2" --resume' _ "$w4" "$other/build/train_gpt2"
	isnt "$RUN_RC" 0 "--resume under TIME=600 of a run trained without a time budget fails"
	like "$RUN_ERR" "trained with a time budget of 0 s \\(TIME=0\\), this build has 600 s; resume it with .make resume TIME=0." \
		"naming both budgets and the command that resumes it"
	same_file "$w4/metrics.before" "$w4/out/latest/metrics.jsonl" "metrics.jsonl is unchanged"
	ok "$([ ! -e "$w4/out/latest/summary.json" ]; echo $?)" "the run stays unfinished"
else
	fail "build the trainer with TIME=600" "$(tail -20 "$other.log")"
fi

done_testing

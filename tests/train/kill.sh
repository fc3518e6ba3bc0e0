#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# SIGKILL ten times over: at random moments (odd runs) and in the middle
# of writing a checkpoint (even runs: KGPT_CKPT_STOP_MIDWAY freezes the
# trainer after the checkpoint's model.bin, before its state and DONE);
# each restart continues from the newest complete checkpoint, and the run
# ends exactly as an uninterrupted one.
. "$(dirname "$0")/setup.bash"

setup_trainer
reference

# A temporary checkpoint directory made since $w/start.
fresh_tmp() {
	find "$w/out" -path '*/checkpoints/.tmp-step_*' -prune -newer "$w/start" 2>/dev/null
}

RANDOM=${KGPT_TEST_SEED:-$$}
diag "random seed $RANDOM (KGPT_TEST_SEED repeats it)"
workdir w
during_write=0 frozen=0
for i in $(seq 1 10); do
	touch "$w/start"
	if [ $((i % 2)) = 0 ]; then
		(cd "$w" && KGPT_CKPT_STOP_MIDWAY=1 exec "$trainer") >"$w/out.$i" 2>&1 </dev/null &
	else
		(cd "$w" && exec "$trainer") >"$w/out.$i" 2>&1 </dev/null &
	fi
	pid=$!
	if [ $((i % 2)) = 0 ]; then
		# the trainer freezes itself half-way through its next checkpoint
		# (unless it has none left to write: a run resumed at its last
		# step only finishes)
		for ((t = 0; t < 3000; t++)); do
			if [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" = T ]; then
				frozen=$((frozen + 1))
				if [ -n "$(fresh_tmp)" ]; then
					during_write=$((during_write + 1))
				else
					diag "run $i froze, but no .tmp-step_ folder newer than its start"
				fi
				break
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.01
		done
	else
		sleep "0.$((RANDOM % 9 + 1))"
	fi
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	if grep -qs "kgpt summary" "$w/out.$i"; then
		diag "run $i finished before it was killed"
	fi
done
diag "$frozen of the 5 even runs froze in a checkpoint, $during_write kills hit one half-written"
ok "$([ "$frozen" -ge 3 ] && [ "$during_write" = "$frozen" ]; echo $?)" \
	"every frozen run was killed with a checkpoint half-written (a .tmp-step_ folder; $during_write of $frozen, at least 3)"

train "$w"
is "$RUN_RC" 0 "after 10 SIGKILLs the run completes" || show_run
same_as_reference "$w" "10 SIGKILLs"
is "$(compgen -G "$w/out/latest/checkpoints/.*-step_*" | wc -l)" 0 \
	"no temporary checkpoint directory is left"
is "$(grep -o '"type":"train","iter":[0-9]*' "$w/out/latest/metrics.jsonl" | sed 's/.*://' | tr '\n' ' ')" \
	"$(seq 1 20 | tr '\n' ' ')" "training rows for steps 1..20, each once"

done_testing

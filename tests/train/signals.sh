#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# SIGINT / SIGTERM: the trainer finishes its step, writes a checkpoint,
# exits 130 / 143 telling how to resume, and the resumed run ends exactly
# as an uninterrupted one. A second stop signal quits at once, harmlessly.
. "$(dirname "$0")/setup.bash"

setup_trainer
reference

# interrupt DIR SIGNAL [SIGNAL2]: start a fresh run in DIR, send SIGNAL
# once 7 rows are logged and wait for it. With SIGNAL2 the trainer is
# frozen (SIGSTOP) while both signals are sent, so the second one is
# certain to arrive before the step in progress ends; SIGNAL2 must differ
# from SIGNAL, as a frozen process holds one pending copy of each signal.
interrupt() {
	local d=$1 pid
	(cd "$d" && exec "$trainer" --fresh) >"$d/out.log" 2>"$d/err.log" </dev/null &
	pid=$!
	wait_lines "$d/out/latest/metrics.jsonl" 7 ||
		fail "the trainer logged 7 rows before it was signalled"
	if [ -n "${3:-}" ]; then
		kill -s STOP "$pid"
		kill -s "$2" "$pid"
		kill -s "$3" "$pid"
		kill -s CONT "$pid"
	else
		kill -s "$2" "$pid"
	fi
	wait "$pid"
	SIG_RC=$?
	SIG_ERR=$(cat "$d/err.log")
}

for sig in INT TERM; do
	want=$([ $sig = INT ] && echo 130 || echo 143)
	workdir w
	interrupt "$w" $sig
	is "$SIG_RC" "$want" "SIG$sig: exit status $want" || diag "$SIG_ERR"
	like "$SIG_ERR" "SIG$sig: stopped after step [0-9]+; checkpoint .* written" \
		"SIG$sig: it finished the step and wrote a checkpoint"
	like "$SIG_ERR" "resume with .make resume." "SIG$sig: it says how to resume"
	step=$(grep -o '"type":"train","iter":[0-9]*' "$w/out/latest/metrics.jsonl" | tail -1 | sed 's/.*://')
	ok "$([ -f "$w/out/latest/checkpoints/$(printf step_%06d "$step")/DONE" ]; echo $?)" \
		"SIG$sig: the checkpoint is of the last logged step ($step)"
	train "$w" --resume
	is "$RUN_RC" 0 "SIG$sig: --resume completes the run" || show_run
	same_as_reference "$w" "SIG$sig + resume"
done

workdir w
interrupt "$w" INT TERM
is "$SIG_RC" 143 "SIGINT then SIGTERM: exit status of the second (143)" || diag "$SIG_ERR"
like "$SIG_ERR" "interrupted again: quitting now" "SIGINT then SIGTERM: the second quits at once"
unlike "$SIG_ERR" "stopped after step" "SIGINT then SIGTERM: no step finished after it"
train "$w"
is "$RUN_RC" 0 "SIGINT then SIGTERM: the run resumes (or restarts) and completes" || show_run
same_as_reference "$w" "SIGINT then SIGTERM + resume"

done_testing

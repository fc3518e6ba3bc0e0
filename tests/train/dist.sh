#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Data-parallel training (CONFIG_DISTRIBUTED, gpt2/dist.h) with OpenMPI:
#   - 2 ranks at accumulation 1 train as 1 process at accumulation 2: the
#     same losses, step for step, to float rounding;
#   - rank 0 alone writes (one run folder, every row once);
#   - a checkpoint of 2 ranks resumes in 1 process and the reverse;
#   - a rank killed with SIGKILL ends the job within seconds, non-zero;
#   - bad launch settings get a named error: more ranks than batches of
#     data, a trainer without CONFIG_DISTRIBUTED under mpirun, make NP=
#     with a bad value or without CONFIG_DISTRIBUTED, --bench under mpirun.
. "$(dirname "$0")/setup.bash"

need mpirun || done_testing
setup_trainer
reference

# The data-parallel trainer: tests/train/tiny.config at accumulation 1.
dobj=$srctree/build/check/dist
dtrainer=$dobj/build/train_gpt2
mkdir -p "$dobj"
sed -e 's/^CONFIG_GPT2_GRADIENT_ACCUMULATION=.*/CONFIG_GPT2_GRADIENT_ACCUMULATION=1/' \
	"$srctree/tests/train/tiny.config" > "$dobj/dist.config.new"
echo "CONFIG_DISTRIBUTED=y" >> "$dobj/dist.config.new"
if ! cmp -s "$dobj/dist.config.new" "$dobj/dist.config"; then
	mv "$dobj/dist.config.new" "$dobj/dist.config"
	"$srctree/scripts/load-config.sh" "$srctree" "$dobj" "$dobj/dist.config" defconfig \
		>"$dobj.log" 2>&1 || { fail "load the data-parallel config" "$(cat "$dobj.log")"; done_testing; }
fi
if ! kmake O="$dobj" build >"$dobj.log" 2>&1; then
	fail "build the trainer with CONFIG_DISTRIBUTED=y" "$(tail -20 "$dobj.log")"
	done_testing
fi
pass "the trainer builds with CONFIG_DISTRIBUTED=y (OpenMPI)"
ldd "$dtrainer" | grep -q libmpi
ok $? "and links libmpi"
ldd "$trainer" | grep -q libmpi
isnt $? 0 "the trainer without CONFIG_DISTRIBUTED does not"

# mpirun as the tests need it: root allowed (containers), more ranks than
# hardware threads allowed, no pinning, one OpenMP thread per rank.
mpi=(mpirun -np 2 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)

# dtrain DIR ARGS...: the data-parallel trainer as 2 ranks in DIR.
dtrain() {
	local d=$1
	shift
	run bash -c 'cd "$1" && shift && exec "$@"' _ "$d" "${mpi[@]}" "$dtrainer" "$@"
}

# losses FILE: "type iter loss" for every train and eval row.
losses() {
	sed -n -e 's/.*"type":"train","iter":\([0-9]*\),.*"train_loss":\([^,}]*\).*/train \1 \2/p' \
		-e 's/.*"type":"eval","iter":\([0-9]*\),.*"val_loss":\([^,}]*\).*/eval \1 \2/p' "$1"
}

# close_to_reference FILE WHAT: every loss of FILE's rows within 1e-4 of
# the 1-process reference, with the same rows in the same order.
close_to_reference() {
	local out
	out=$(awk 'NR == FNR { t[FNR] = $1 " " $2; v[FNR] = $3; n = FNR; next }
		{ m++; if (t[m] != $1 " " $2) { print "row " m ": " $1 " " $2 " vs " t[m]; bad = 1; next }
		  d = $3 - v[m]; if (d < 0) d = -d; if (d > max) max = d }
		END { if (m != n) { print m " rows vs " n; bad = 1 }
		      printf "max |difference| %.3g\n", max; exit bad || max > 1e-4 }' \
		<(losses "$ref/metrics") <(losses "$1"))
	ok $? "$2: $(wc -l < <(losses "$1")) losses equal to 1 process at accumulation 2 (within 1e-4)"
	diag "$out"
}

# 1. Equivalence: 2 ranks x accumulation 1 = 1 process x accumulation 2.
workdir w
dtrain "$w" --fresh
is "$RUN_RC" 0 "2 ranks train the 20 steps" || show_run
like "$RUN_OUT" "data parallel: 2 ranks x 1 threads, 2 micro-batches per step" \
	"the header says how the step is shared out"
is "$(grep -c 'kgpt summary' <<< "$RUN_OUT")" 1 "one summary: rank 0 alone prints it"
is "$(ls "$w/out" | grep -vc latest)" 1 "one run folder"
close_to_reference "$w/out/latest/metrics.jsonl" "2 ranks"
is "$(grep -o '"type":"train","iter":[0-9]*' "$w/out/latest/metrics.jsonl" | sed 's/.*://' | tr '\n' ' ')" \
	"$(seq 1 20 | tr '\n' ' ')" "training rows for steps 1..20, each once"
like "$(cat "$w/out/latest/summary.json")" '"tokens":[[:space:]]*5120' \
	"tokens counted over both ranks (20 x 2 x 4 x 32)"

# 2. Resume across rank counts: the fingerprint's grad_accum is
# accumulation x ranks (2 both ways).
workdir w2
dtrain "$w2" --stop-at 10
is "$RUN_RC" 0 "2 ranks: --stop-at 10" || show_run
ok "$([ -f "$w2/out/latest/checkpoints/step_000010/DONE" ]; echo $?)" "2 ranks wrote step_000010"
train "$w2" --resume
is "$RUN_RC" 0 "1 process (accumulation 2) resumes the checkpoint of 2 ranks" || show_run
like "$RUN_OUT" "resuming out/.* from step 10" "from step 10"
close_to_reference "$w2/out/latest/metrics.jsonl" "2 ranks, then 1 process"

workdir w3
train "$w3" --stop-at 10
is "$RUN_RC" 0 "1 process: --stop-at 10" || show_run
dtrain "$w3" --resume
is "$RUN_RC" 0 "2 ranks resume the checkpoint of 1 process" || show_run
like "$RUN_OUT" "resuming out/.* from step 10" "from step 10"
close_to_reference "$w3/out/latest/metrics.jsonl" "1 process, then 2 ranks"

# 3. A rank that dies: the job ends, non-zero, within seconds. Rank 1 is
# stopped (SIGSTOP) once the first row is written, so the run cannot
# finish first, then killed.
workdir w4
(cd "$w4" && exec "${mpi[@]}" "$dtrainer" --fresh >"$w4/log" 2>&1) &
job=$!
at_exit "kill -9 $job"
wait_lines "$w4/out/latest/metrics.jsonl" 2
ranks=$(pgrep -f "^$dtrainer" | sort -n)
rank1=$(tail -1 <<< "$ranks")
is "$(wc -l <<< "$ranks")" 2 "2 rank processes run"
kill -STOP "$rank1" 2>/dev/null
t0=$(date +%s)
kill -KILL "$rank1" 2>/dev/null
for ((i = 0; i < 300; i++)); do
	kill -0 "$job" 2>/dev/null || break
	sleep 0.1
done
wait "$job" 2>/dev/null
rc=$?
t1=$(date +%s)
ok "$([ $((t1 - t0)) -le 20 ]; echo $?)" "the job ended $((t1 - t0)) s after rank 1 was killed (at most 20)"
isnt "$rc" 0 "with a non-zero exit status ($rc)"
like "$(cat "$w4/log")" "rank 1 .*(signal 9|Killed)" "mpirun names the rank that died" ||
	diag "$(cat "$w4/log")"
pgrep -f "^$dtrainer" >/dev/null
isnt $? 0 "no rank is left behind"

# 4. Bad launch settings.
workdir w5
rm -f "$w5"/data/tinyshakespeare/*
{
	head -c 700 "$mirror/tinyshakespeare.txt" | tr -s '\n' ' '
	printf '\n\n'
	head -c 1400 "$mirror/tinyshakespeare.txt" | tail -c 700 | tr -s '\n' ' '
	printf '\n'
} > "$w5/small.txt"
"$objdir/build/prepare_data" --input "$w5/small.txt" --out "$w5/data/tinyshakespeare" \
	--name tinyshakespeare --vocab "$w5/data/gpt2" --val-fraction 0.5 >/dev/null 2>&1
dtrain "$w5" --fresh
isnt "$RUN_RC" 0 "2 ranks on a training set of 1 batch are refused"
like "$RUN_ERR" "2 ranks, but the training data .* holds only 1 batches of B 4 x T 32 tokens.*Use at most NP=1" \
	"naming the data, its size and the largest NP" || show_run
ok "$([ ! -e "$w5/out" ]; echo $?)" "and nothing is written"

workdir w6
run bash -c 'cd "$1" && shift && exec "$@"' _ "$w6" "${mpi[@]}" "$trainer" --fresh
isnt "$RUN_RC" 0 "a trainer without CONFIG_DISTRIBUTED under mpirun -np 2 is refused"
like "$RUN_ERR" "one of 2 ranks .* built without CONFIG_DISTRIBUTED" "saying why" || show_run
ok "$([ ! -e "$w6/out" ]; echo $?)" "and nothing is written"

dtrain "$w6" --bench 1
is "$RUN_RC" 2 "--bench under mpirun is refused (exit 2)"
like "$RUN_ERR" "--bench times one process" "saying to run it without mpirun"

run kmake O="$objdir" NP=2 -n all
isnt "$RUN_RC" 0 "make NP=2 without CONFIG_DISTRIBUTED fails"
like "$RUN_ERR" "NP=2 needs a trainer built with CONFIG_DISTRIBUTED=y" "naming the symbol"
run kmake O="$dobj" NP=two -n all
isnt "$RUN_RC" 0 "make NP=two fails"
like "$RUN_ERR" "NP=two: the number of ranks must be a whole number" "saying what NP takes"
run kmake O="$dobj" NP=2 -n all
is "$RUN_RC" 0 "make NP=2 -n with CONFIG_DISTRIBUTED=y" || show_run
like "$RUN_OUT" "OMP_NUM_THREADS=.* mpirun -np 2 --bind-to none -x OMP_NUM_THREADS .*train_gpt2" \
	"launches the trainer under mpirun -np 2"

done_testing

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# build/generate --eval: the val_loss of a run's final checkpoint over the
# trainer's validation batches equals the val_loss the trainer reported
# for that model in summary.json.
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

done_testing

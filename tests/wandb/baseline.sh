# SPDX-License-Identifier: MIT
#
# kgpt-wandb baseline SPEC: a run's summaryMetrics read over GraphQL as one
# JSON object; kgpt's names and the PyTorch original's; clear failures.
. "$(dirname "$0")/setup.bash"

start_server st --run 'ent/proj/orig0001={"val/loss":3.5,"train/loss":3.25,"_step":99}' \
	--run 'ent/proj/kgpt0001={"val_loss":2.0,"val_perplexity":7.5,"train_loss":1.5,"train_perplexity":4.5}' \
	--run 'ent/proj/noval001={"train/loss":3.0}' --run 'ent/proj/trainles={"val/loss":2.5}'

json() { python3 -c 'import json,sys; o=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

run "$wandb_tool" baseline ent/proj/orig0001
is "$RUN_RC" 0 "baseline e/p/id exits 0"
is "$(printf '%s\n' "$RUN_OUT" | wc -l)" 1 "and prints one line"
is "$(json "$RUN_OUT" 'o["source"]')" wandb:ent/proj/orig0001 "source names the run"
is "$(json "$RUN_OUT" 'o["val_loss"]')" 3.5 "val/loss (the PyTorch name) is val_loss"
is "$(json "$RUN_OUT" 'round(o["val_perplexity"], 6)')" "$(python3 -c 'import math; print(round(math.exp(3.5), 6))')" \
	"val_perplexity = exp(val_loss) when the summary has none"
is "$(json "$RUN_OUT" 'o["train_loss"], round(o["train_perplexity"], 6)')" \
	"$(python3 -c 'import math; print((3.25, round(math.exp(3.25), 6)))')" "train/loss and exp() of it"

for spec in ent/proj/runs/kgpt0001 https://wandb.ai/ent/proj/runs/kgpt0001 \
	"https://wandb.ai/ent/proj/runs/kgpt0001?workspace=user-x" /ent/proj/kgpt0001/; do
	run "$wandb_tool" baseline "$spec"
	is "$RUN_RC:$(json "$RUN_OUT" 'o["source"], o["val_loss"], o["val_perplexity"], o["train_loss"], o["train_perplexity"]')" \
		"0:('wandb:ent/proj/kgpt0001', 2, 7.5, 1.5, 4.5)" "'$spec': kgpt's names, read as they are"
done

run "$wandb_tool" baseline ent/proj/trainles
is "$RUN_RC:$(json "$RUN_OUT" 'o["train_loss"], o["train_perplexity"]')" "0:(None, None)" \
	"no train loss in the summary: the train fields are null"

run "$wandb_tool" baseline ent/proj/noval001
is "$RUN_RC" 1 "a summary without val loss exits 1"
like "$RUN_ERR" "ent/proj/noval001: its summary has no val loss" "saying so"
is "$RUN_OUT" "" "and prints nothing on stdout"

run "$wandb_tool" baseline ent/proj/missing1
is "$RUN_RC" 1 "an unknown run exits 1"
like "$RUN_ERR" "cannot read wandb:ent/proj/missing1: no such run" "saying so"

run env WANDB_API_KEY=wrong "$wandb_tool" baseline ent/proj/orig0001
is "$RUN_RC" 1 "a refused key exits 1"
like "$RUN_ERR" "HTTP 401 .*refused" "saying the key was refused"

run env -u WANDB_API_KEY HOME=/nonexistent "$wandb_tool" baseline ent/proj/orig0001
is "$RUN_RC" 1 "no API key exits 1"
like "$RUN_ERR" "no API key" "saying so"

run env WANDB_BASE_URL=http://127.0.0.1:9 "$wandb_tool" baseline ent/proj/orig0001
is "$RUN_RC" 1 "no server exits 1"
like "$RUN_ERR" "network error" "saying it is a network error"

for spec in "" ent ent/proj ent/proj/id/extra "ent//id" "ent/proj/a:b" "ent/pr oj/id" \
	https://wandb.ai/ https://wandb.ai/ent/proj; do
	run "$wandb_tool" baseline "$spec"
	is "$RUN_RC" 2 "malformed '$spec' exits 2"
	like "$RUN_ERR" "malformed baseline run '.*': expected entity/project/run_id" "with a clear message"
done
run "$wandb_tool" frobnicate x
is "$RUN_RC" 2 "an unknown subcommand exits 2"
like "$RUN_ERR" "usage: kgpt-wandb" "with the usage"
done_testing

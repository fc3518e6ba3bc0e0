# SPDX-License-Identifier: MIT
#
# kgpt-wandb history SPEC: a run's val loss points read back over
# GraphQL's sampledHistory (a run the trainer delivered, and one with the
# PyTorch original's names); clear failures. Then the ablation driver with
# that run as its W&B BASELINE: the history cached in the results and
# plotted as "baseline <run id>"; a history the server refuses gives one
# line in the table, and the plots and the table are still made.
. "$(dirname "$0")/setup.bash"

need jq gnuplot || done_testing
new_tmpdir tmp
cat > "$tmp/orig.jsonl" <<'EOF'
{"train/loss": 9.0, "train/tokens": 1000, "_step": 0, "_runtime": 1.0}
{"val/loss": 8.5, "_step": 0, "_runtime": 1.25}
{"train/loss": 7.0, "train/tokens": 2000, "_step": 100, "_runtime": 10.0}
{"val/loss": 6.5, "_step": 100, "_runtime": 10.5}
{"train/loss": 6.0, "_step": 200, "_runtime": 20.0}
{"val/loss": 5.75, "_step": 200, "_runtime": 20.5}
EOF
echo '{"train/loss": 3.0, "_step": 0, "_runtime": 1.0}' > "$tmp/noval.jsonl"
start_server st --run 'ent/proj/orig0001={"val/loss":5.75}' --history "ent/proj/orig0001=$tmp/orig.jsonl" \
	--run 'ent/proj/noval001={"val_loss":3.0}' --history "ent/proj/noval001=$tmp/noval.jsonl" \
	--run 'ent/proj/nohist01={"val_loss":5.0,"train_loss":4.5}' \
	--history-error 'ent/proj/nohist01=history is unavailable'

# A run the trainer delivered: its eval rows come back.
workdir w
train "$w" --fresh
is "$RUN_RC" 0 "the trainer delivers a run" || show_run
m=$w/out/latest/metrics.jsonl
spec=$(jq -r '"\(.entity)/\(.project)/\(.run_id)"' "$w/out/latest/wandb-run.json")
id=${spec##*/}
run "$wandb_tool" history "$spec"
is "$RUN_RC" 0 "history e/p/id exits 0" || show_run
printf '%s\n' "$RUN_OUT" > "$tmp/kgpt.jsonl"
is "$(jq -c 'select(.type == "eval") | [.tokens, .val_loss]' "$tmp/kgpt.jsonl")" \
	"$(jq -c 'select(.type == "eval") | [.tokens, .val_loss]' "$m")" \
	"its eval rows: the tokens and val_loss of metrics.jsonl's eval rows"
is "$(jq -c 'select(.type == "eval") | [.iter, .elapsed_s]' "$tmp/kgpt.jsonl")" \
	"$(srv "$st" "json.dumps([[r['_step'], r['_runtime']] for r in map(json.loads, s['runs']['$spec']['history']) if 'val_loss' in r])" |
	  jq -c '.[]')" \
	"iter and elapsed_s: the served rows' _step and _runtime"
is "$(jq -s 'map(select(.type != "eval")) | length' "$tmp/kgpt.jsonl")" 0 "no gate series: the run has none"

run "$wandb_tool" history https://wandb.ai/ent/proj/runs/orig0001
is "$RUN_RC" 0 "the PyTorch original's names (URL form)" || show_run
is "$RUN_OUT" '{"type":"eval","iter":0,"elapsed_s":1.25,"tokens":1000,"val_loss":8.5}
{"type":"eval","iter":100,"elapsed_s":10.5,"tokens":2000,"val_loss":6.5}
{"type":"eval","iter":200,"elapsed_s":20.5,"tokens":null,"val_loss":5.75}' \
	"val/loss is val_loss, train/tokens at the same _step its tokens (none: null)"

run "$wandb_tool" history ent/proj/noval001
is "$RUN_RC:$RUN_OUT" "1:" "a history without val loss exits 1, nothing on stdout"
like "$RUN_ERR" "ent/proj/noval001: its history has no val loss rows" "saying so"
run "$wandb_tool" history ent/proj/nohist01
is "$RUN_RC" 1 "a GraphQL error exits 1"
like "$RUN_ERR" "cannot read the history of wandb:ent/proj/nohist01: history is unavailable" "with the server's message"
run "$wandb_tool" history ent/proj/missing1
like "$RUN_RC:$RUN_ERR" "1:.*cannot read the history of wandb:ent/proj/missing1: no such run" "an unknown run exits 1"
run "$wandb_tool" history ent/proj
is "$RUN_RC" 2 "a malformed SPEC exits 2"

# The ablation driver with the delivered run as its BASELINE: the steps
# of tests/ablation/base.config, B and C already finished (no training).
o=$tmp/o
{ cat "$srctree/tests/ablation/base.config"; echo "CONFIG_DATA_DIR=\"$objdir/data\""; } > "$tmp/base.config"
run "$srctree/scripts/load-config.sh" "$srctree" "$o" "$tmp/base.config" defconfig
is "$RUN_RC" 0 "load tests/ablation/base.config" || { show_run; done_testing; }
res=$tmp/res
for s in B C; do
	mkdir -p "$res/$s/r"
	ln -sfn r "$res/$s/latest"
	jq -n --arg s "$s" '{step: $s, id: $s, seed: 1, mechanisms: "m \($s)"}' > "$res/$s/step.json"
	jq -n '{val_loss: 6.0, val_perplexity: 403.4, best_perplexity: 403.4, train_loss: 6.1, tokens: 100,
		wall_s: 1, tokens_per_s: 100, params: 10, peak_rss_bytes: 2048}' > "$res/$s/r/summary.json"
	printf '{"type":"eval","iter":1,"tokens":10,"elapsed_s":1,"val_loss":6.0}\n' > "$res/$s/r/metrics.jsonl"
done
export KGPT_ABLATION_DIR=$res KGPT_ABLATION_BUILD=$tmp/build KGPT_WANDB_TOOL=$wandb_tool
run env BASELINE="$spec" "$srctree/scripts/ablation.sh" "$o"
is "$RUN_RC" 0 "ablation.sh BASELINE=the delivered run" || show_run
like "$RUN_OUT" "baseline history: $(jq -s 'map(select(.type == "eval")) | length' "$m") eval rows in $res/baseline-history.jsonl" \
	"the driver reads its history"
is "$(jq -c 'select(.type == "eval")' "$res/baseline-history.jsonl")" \
	"$(jq -c 'select(.type == "eval")' "$tmp/kgpt.jsonl")" "the history is cached in the results"
is "$(jq -r .label "$res/baseline.json")" "baseline $id" "the baseline's label is its run id"
is "$(awk '{ print $2, $3 }' "$res/plot/BASELINE.val")" \
	"$(jq -r 'select(.type == "eval") | "\(.tokens) \(.val_loss)"' "$m")" \
	"plot/BASELINE.val: tokens and val_loss of the served rows"
is "$(awk '{ print $1 }' "$res/plot/BASELINE.val")" "$(jq -r 'select(.type == "eval") | .elapsed_s' "$tmp/kgpt.jsonl")" \
	"plot/BASELINE.val: seconds, the served _runtime"
gp=$(cat "$res/plot/plots.gp")
like "$gp" "BASELINE.val' using 1:3 with linespoints lc rgb 'black' lw 2 dashtype 4 title 'baseline $id'" \
	"plots.gp: val_loss against wall time names 'baseline $id'"
like "$gp" "BASELINE.val' using 2:3 with linespoints lc rgb 'black' lw 2 dashtype 4 title 'baseline $id'" \
	"plots.gp: val_loss against tokens too"
for p in val_loss_time val_loss_tokens; do
	[ -s "$res/$p.png" ]; ok $? "$p.png"
done
is "$(jq .baseline.val_loss "$res/table.json")" "$(jq .val_loss "$w/out/latest/summary.json")" \
	"the table's baseline is the run's summary"
n=$(srv "$st" 's["requests"]')
run env BASELINE="$spec" "$srctree/scripts/ablation.sh" "$o"
is "$RUN_RC:$(srv "$st" 's["requests"]')" "0:$n" "again: the cached summary and history, no request"
[ -s "$res/plot/BASELINE.val" ]; ok $? "and the baseline is still plotted"

# A history the server refuses: one line in the table, the plots still made.
run env BASELINE=ent/proj/nohist01 "$srctree/scripts/ablation.sh" "$o"
is "$RUN_RC" 0 "a baseline whose history cannot be read is no error" || show_run
like "$RUN_OUT" "the history of the baseline ent/proj/nohist01 cannot be read: kgpt-wandb says: cannot read the history of wandb:ent/proj/nohist01: history is unavailable \\(HTTP 200 from [^)]*\\) \\(exit 1\\); the plots are made without it" \
	"the driver says why"
is "$(grep -c 'Baseline history' "$res/table.md")" 1 "table.md: one line about the baseline's history"
like "$(cat "$res/table.md")" "Baseline history not plotted \\(the plots show the steps only\\): .*history is unavailable" \
	"table.md: with the reason"
is "$(jq .baseline.val_loss "$res/table.json"):$(jq -c '[.steps[].step]' "$res/table.json")" '5:["B","C"]' \
	"the table compares B and C with its summary"
for p in val_loss_time val_loss_tokens; do
	[ -s "$res/$p.png" ]; ok $? "without the baseline's history: $p.png"
done
[ ! -e "$res/baseline-history.jsonl" ] && ! grep -q "title 'baseline" "$res/plot/plots.gp"
ok $? "no baseline series and no stale history"
done_testing

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# scripts/ablation-report.sh over seeds: a results folder of two steps
# with two seeds each (summaries written here, no training): mean, std
# (n - 1), delta % of the means, the combined spread and "beyond spread";
# Reciprocal Attention's gate columns and series; an external baseline's
# history in the plots, and the one-line note when it has none.

. "$(dirname "$0")/../lib.sh"

need jq awk gnuplot || done_testing
new_tmpdir res

# run ID STEP SEED VAL_LOSS: a finished run with that val_loss.
mkrun() {
	mkdir -p "$res/$1/r"
	ln -sfn r "$res/$1/latest"
	jq -n --arg s "$2" --arg id "$1" --argjson seed "$3" \
		'{step: $s, id: $id, seed: $seed, mechanisms: "m \($s)", kv_recipe: {full: 4096, pruned: 1024}}' > "$res/$1/step.json"
	jq -n --argjson v "$4" '{val_loss: $v, val_perplexity: ($v | exp), best_perplexity: ($v | exp),
		train_loss: ($v + 0.1), tokens: 100, wall_s: 1, tokens_per_s: 100, params: 10,
		peak_rss_bytes: 2048, kv_keep_ratio: [0.25, 0.75]}' > "$res/$1/r/summary.json"
	printf '{"type":"train","iter":1,"tokens":10,"rmlp_w_std":[0.5,0.7],"rmlp_w_rec":[0.1,0.3]}\n' > "$res/$1/r/metrics.jsonl"
	printf '{"type":"eval","iter":1,"tokens":10,"elapsed_s":1,"val_loss":%s}\n' "$4" >> "$res/$1/r/metrics.jsonl"
	echo "$1" >> "$res/steps"
}
mkrun A A 1 4.00
mkrun A-seed2 A 2 4.02
mkrun B B 1 4.10
mkrun B-seed2 B 2 4.14
mkrun C C 1 4.005
mkrun C-seed2 C 2 4.025
# C has Reciprocal Attention: its summary's means, its train rows' arrays.
for r in C:0.8:0.2 C-seed2:0.9:0.3; do
	IFS=: read -r id ws wr <<< "$r"
	jq --argjson s "$ws" --argjson r "$wr" '. + {ra_w_std_mean: $s, ra_w_rec_mean: $r,
		ra_w_std: [$s, $s], ra_w_rec: [$r, $r]}' "$res/$id/r/summary.json" > "$res/t.json"
	mv "$res/t.json" "$res/$id/r/summary.json"
	printf '{"type":"train","iter":2,"tokens":20,"rmlp_w_std":[0.5,0.7],"rmlp_w_rec":[0.1,0.3],%s}\n' \
		"\"ra_w_std\":[0.5,$ws],\"ra_w_rec\":[0.25,0.5],\"kv_keep_ratio\":[0.25,0.75]" >> "$res/$id/r/metrics.jsonl"
done

run "$srctree/scripts/ablation-report.sh" "$res"
is "$RUN_RC" 0 "ablation-report.sh exit status 0" || show_run
t=$res/table.json
num() { awk -v x="$1" 'BEGIN { printf "%.6f", x }'; }
is "$(num "$(jq '.steps[1].val_loss' "$t")")" "$(num 4.12)" "B: mean val_loss over its seeds"
is "$(num "$(jq '.steps[1].val_loss_std' "$t")")" "$(awk 'BEGIN { printf "%.6f", sqrt(2 * 0.02^2) }')" "B: std with n - 1"
is "$(num "$(jq '.steps[1].delta_pct' "$t")")" "$(awk 'BEGIN { printf "%.6f", (4.12 / 4.01 - 1) * 100 }')" "B: delta % of the means"
is "$(num "$(jq '.steps[1].spread_pct' "$t")")" "$(awk 'BEGIN { s = sqrt(2 * 0.02^2); s0 = sqrt(2 * 0.01^2); printf "%.6f", sqrt(s^2 + s0^2) / 4.01 * 100 }')" \
	"B: spread = the step's and the baseline's std combined"
is "$(jq '.steps[1].beyond_spread' "$t")" true "B: its delta exceeds the spread"
is "$(jq '.steps[2].beyond_spread' "$t")" false "C: its delta is within the spread"
is "$(jq '.steps[1].seeds' "$t"):$(jq '.runs | length' "$t")" "2:6" "two seeds per step, six runs"
is "$(num "$(jq '.steps[0].w_std' "$t")")" "$(num 0.6)" "w_std: the mean over the layers of the last train row"
is "$(num "$(jq '.steps[0].keep_ratio' "$t")")" "$(num 0.5)" "keep ratio: the mean over the layers"
like "$(cat "$res/table.md")" "\\| B \\| m B \\| 10 \\| 4\\.12 ± 0\\.0283 \\|" "table.md: mean ± std"
like "$(cat "$res/table.md")" "\\| C \\| .* \\| no \\|" "table.md: C not beyond the spread"
is "$(head -1 "$res/table.csv" | cut -d, -f1-5)" '"step","mechanisms","seeds","params","val_loss"' "table.csv header"
is "$(grep -c . "$res/table.csv")" 4 "table.csv: a header and three steps"

# Reciprocal Attention's gates: the summaries' means, in their own columns.
for i in 4 5; do
	id=$(jq -r ".runs[$i].run | sub(\"/latest\"; \"\")" "$t")
	is "$(jq ".runs[$i].ra_w_std" "$t"):$(jq ".runs[$i].ra_w_rec" "$t")" \
		"$(jq .ra_w_std_mean "$res/$id/r/summary.json"):$(jq .ra_w_rec_mean "$res/$id/r/summary.json")" \
		"table: $id's RA w_std and w_rec are its summary's"
done
is "$(num "$(jq '.steps[2].ra_w_std' "$t")"):$(num "$(jq '.steps[2].ra_w_rec' "$t")")" "$(num 0.85):$(num 0.25)" \
	"table: C's RA w_std and w_rec, the means over its seeds"
is "$(jq '.steps[0].ra_w_std' "$t")" null "table: A has no RA gates"
like "$(cat "$res/table.md")" "\\| R-MLP w_std \\| R-MLP w_rec \\| gate_alpha \\| RA w_std \\| RA w_rec \\| keep ratio \\|" \
	"table.md: R-MLP and RA gate columns, labelled"
like "$(cat "$res/table.md")" "\\| C \\| .* \\| 0\\.6 \\| 0\\.2 \\|  \\| 0\\.85 \\| 0\\.25 \\| 0\\.5 \\|" \
	"table.md: C's R-MLP, gate_alpha (none), RA and keep ratio values"
is "$(grep '^"C",' "$res/table.csv" | awk -F, '{ printf "%.6f:%.6f", $(NF - 2), $(NF - 1) }')" "$(num 0.85):$(num 0.25)" \
	"table.csv: C's ra_w_std, ra_w_rec"
is "$(head -1 "$res/table.csv" | awk -F, '{ print $(NF - 2) ":" $(NF - 1) }')" '"ra_w_std":"ra_w_rec"' \
	"table.csv: the RA columns' names"
is "$(cat "$res/plot/C.ra")" "20 0.65 0.375" "plot/C.ra: RA w_std, w_rec means per train row"
like "$(cat "$res/plot/plots.gp")" "'$res/plot/C.ra' using 1:2 [^,]* title 'C RA w_std'" "gates.png plots C's RA w_std"
like "$(cat "$res/plot/plots.gp")" "title 'B R-MLP w_rec'" "and the R-MLP's, labelled"
[ ! -e "$res/plot/BASELINE.val" ]; ok $? "no external baseline: no baseline series"

# An external baseline with a history: its points in every plot, labelled.
jq -n '{source: "/x/summary.json", val_loss: 4.5, val_perplexity: 90, spec: "/x", label: "baseline run-x"}' \
	> "$res/baseline.json"
{
	echo '{"type":"train","iter":0,"tokens":8,"rmlp_w_std":[0.9,0.7],"rmlp_w_rec":[0.1,0.3],"ra_w_std":[0.4,0.6],"ra_w_rec":[0.6,0.8]}'
	echo '{"type":"eval","iter":0,"tokens":8,"elapsed_s":0.5,"val_loss":4.75}'
	echo '{"type":"train","iter":5,"tokens":48,"kv_keep_ratio":[0.5,1]}'
	echo '{"type":"eval","iter":5,"tokens":48,"elapsed_s":2.25,"val_loss":4.5}'
	echo '{"type":"eval","iter":9,"tokens":null,"elapsed_s":3,"val_loss":4.25}'
} > "$res/baseline-history.jsonl"
run "$srctree/scripts/ablation-report.sh" "$res"
is "$RUN_RC" 0 "ablation-report.sh with a baseline history" || show_run
is "$(cat "$res/plot/BASELINE.val")" $'0.5 8 4.75\n2.25 48 4.5\n3 NaN 4.25' \
	"plot/BASELINE.val: the history's eval rows (seconds, tokens, val_loss; no tokens: NaN)"
is "$(cat "$res/plot/BASELINE.gate"):$(cat "$res/plot/BASELINE.ra"):$(cat "$res/plot/BASELINE.keep")" \
	"8 0.8 0.2:8 0.5 0.7:48 0.75" "plot/BASELINE.gate, .ra, .keep: its gate and keep ratio means"
gp=$(cat "$res/plot/plots.gp")
for u in "1:3" "2:3"; do
	like "$gp" "'$res/plot/BASELINE.val' using $u with linespoints lc rgb 'black' lw 2 dashtype 4 title 'baseline run-x'" \
		"plots.gp: val_loss ($u) of 'baseline run-x', black, its own dash type"
done
like "$gp" "'$res/plot/BASELINE.gate' using 1:3 with lines lc rgb 'black' lw 2 dashtype 5 title 'baseline run-x R-MLP w_rec'" \
	"plots.gp: the baseline's R-MLP w_rec"
like "$gp" "title 'baseline run-x RA w_std'" "plots.gp: the baseline's RA w_std"
like "$gp" "'$res/plot/BASELINE.keep' using 1:2 with lines lc rgb 'black' lw 2 dashtype 4 title 'baseline run-x'" \
	"plots.gp: the baseline's keep ratio"
like "$(cat "$res/table.md")" $'\n\\| baseline run-x \\| external: /x/summary.json \\| \\| 4\\.5 \\| 90 \\| \\+0% \\|' \
	"table.md: the external baseline's own row, first, with its val_loss and perplexity"
is "$(grep -c '^| ' "$res/table.md")" "$(($(jq '.steps | length' "$res/table.json") + 3))" \
	"table.md: header, rule, the baseline and one row per step"
unlike "$(cat "$res/table.md")" "Baseline history" "table.md: no note when the history is plotted"
is "$(jq .baseline.val_loss "$t"):$(jq -r .baseline.step "$t")" "4.5:BASELINE" "the table's baseline is the external one"

# Its history unreadable: one line says why, the other plots are made.
rm "$res/baseline-history.jsonl" "$res"/*.png
echo "kgpt-wandb says: cannot read the history of wandb:e/p/x: no such run (exit 1)" > "$res/baseline-history.reason"
run "$srctree/scripts/ablation-report.sh" "$res"
is "$RUN_RC" 0 "ablation-report.sh without the baseline's history exits 0" || show_run
is "$(grep -c 'Baseline history' "$res/table.md")" 1 "table.md: one line about the baseline's history"
like "$(cat "$res/table.md")" $'\nBaseline history not plotted \\(the plots show the steps only\\): kgpt-wandb says: cannot read the history of wandb:e/p/x: no such run \\(exit 1\\)\n' \
	"table.md: it gives the reason"
like "$RUN_OUT" "Baseline history not plotted" "the printed report says so too"
for p in val_loss_time val_loss_tokens gates keep_ratio; do
	[ -s "$res/$p.png" ]; ok $? "without the baseline's history: $p.png is made"
done
unlike "$(cat "$res/plot/plots.gp")" "baseline" "plots.gp: no baseline series"
is "$(jq -c '[.steps[].step]' "$t"):$(jq .baseline.val_loss "$t")" '["A","B","C"]:4.5' "the table still compares with the baseline"

done_testing

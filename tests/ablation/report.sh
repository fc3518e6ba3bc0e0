#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# scripts/ablation-report.sh over seeds: a results folder of two steps
# with two seeds each (summaries written here, no training): mean, std
# (n - 1), delta % of the means, the combined spread and "beyond spread".

. "$(dirname "$0")/../lib.sh"

need jq awk || done_testing
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

done_testing

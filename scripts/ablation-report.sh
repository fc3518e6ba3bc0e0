#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# ablation-report.sh RESULTS: the ablation matrix's table and plots from
# the runs in RESULTS (scripts/ablation.sh): RESULTS/steps lists the run
# ids in order, RESULTS/<id>/step.json describes each and
# RESULTS/<id>/latest/ is its run folder (summary.json, metrics.jsonl).
#
# Writes RESULTS/table.json (rows per run and per step, the baseline),
# table.md, table.csv and, with gnuplot, val_loss_time.png and
# val_loss_tokens.png (every run), gates.png (mean w_std and w_rec over
# the layers, of the R-MLP and of Reciprocal Attention) and keep_ratio.png
# (mean KV keep ratio over the layers), their data in RESULTS/plot/ (one
# file per run and series, plots.gp); prints the markdown table and where
# the files are. An external baseline (RESULTS/baseline.json) is plotted
# from RESULTS/baseline-history.jsonl, titled with its label ("baseline
# <run id>") in black with its own dash types; without that file the
# table says why (RESULTS/baseline-history.reason) in one line.
#
# Columns: val_loss and val perplexity of the run's last evaluation
# (mean +- std over the seeds of a step, std with n - 1), delta % of the
# mean val_loss against the baseline (RESULTS/baseline.json when a
# BASELINE was read, else the first step), "beyond spread": whether
# |delta| exceeds the step's and the baseline's std combined
# (sqrt(s1^2 + s2^2)), only with two or more seeds; best perplexity; last
# train loss; tokens/s; peak RSS; KV-cache bytes full and pruned of the
# recipe's full-size model at its batch (step.json, from the config);
# the last logged means of the R-MLP's w_std, w_rec and gate_alpha and of
# Reciprocal Attention's w_std and w_rec over the layers (the summary's
# means, else the last train row's); the mean keep ratio k / block_size
# (learned: from rho).
set -u

res=$(cd "${1:?usage: ablation-report.sh RESULTS}" && pwd)
command -v jq >/dev/null || { echo "ablation-report: jq is missing" >&2; exit 1; }
[ -f "$res/steps" ] || { echo "ablation-report: $res/steps is missing (not an ablation folder)" >&2; exit 1; }

# One row per run: the summary, the step and the last logged gate values.
rows=()
while read -r id; do
	s=$res/$id/latest/summary.json
	[ -f "$s" ] || { echo "ablation-report: $id has no finished run ($s); skipped" >&2; continue; }
	m=$res/$id/latest/metrics.jsonl
	jq -n --slurpfile st "$res/$id/step.json" --slurpfile su "$s" \
		--slurpfile last <(jq -c 'select(.type == "train")' "$m" | tail -1) \
		--arg run "$res/$id/latest" '
		def mean: if length > 0 then add / length else null end;
		$st[0] as $st | $su[0] as $s | ($last[0] // {}) as $l | {
		step: $st.step, id: $st.id, seed: $st.seed, mechanisms: $st.mechanisms,
		run: ($run | sub(".*/(?<a>[^/]+/latest)$"; "\(.a)")),
		params: $s.params, val_loss: $s.val_loss, val_perplexity: $s.val_perplexity,
		best_perplexity: $s.best_perplexity, train_loss: $s.train_loss,
		tokens: $s.tokens, wall_s: $s.wall_s, tokens_per_s: $s.tokens_per_s,
		peak_rss_bytes: $s.peak_rss_bytes,
		kv_bytes_full: ($st.kv_recipe.full // null),
		kv_bytes_pruned: ($st.kv_recipe.pruned // null),
		w_std: ($s.rmlp_w_std_mean // ($l.rmlp_w_std // null | if . then mean else null end)),
		w_rec: ($s.rmlp_w_rec_mean // ($l.rmlp_w_rec // null | if . then mean else null end)),
		gate_alpha: ($s.rmlp_gate_alpha_mean // ($l.rmlp_gate_alpha // null | if . then mean else null end)),
		ra_w_std: ($s.ra_w_std_mean // ($l.ra_w_std // null | if . then mean else null end)),
		ra_w_rec: ($s.ra_w_rec_mean // ($l.ra_w_rec // null | if . then mean else null end)),
		keep_ratio: (($s.kv_keep_ratio // $l.kv_keep_ratio // null) | if . == null then null else mean end)
	}' > "$res/$id/row.json" || exit 1
	rows+=("$res/$id/row.json")
done < "$res/steps"
[ ${#rows[@]} -gt 0 ] || { echo "ablation-report: no finished run in $res" >&2; exit 1; }

base=null
[ -f "$res/baseline.json" ] && base=$(jq -c . "$res/baseline.json")
jq -s --argjson base "$base" '
	def mean: add / length;
	def std: if length < 2 then null else (mean as $m | map(. - $m | . * .) | add / (length - 1) | sqrt) end;
	. as $runs |
	(reduce .[] as $r ([]; if index([$r.step]) then . else . + [$r.step] end)) as $order |
	[$order[] as $s | [$runs[] | select(.step == $s)] | . as $g | .[0] + {
		seeds: length,
		val_loss: (map(.val_loss) | mean), val_loss_std: (map(.val_loss) | std),
		val_perplexity: (map(.val_perplexity) | mean),
		best_perplexity: (map(.best_perplexity) | mean),
		train_loss: (map(.train_loss) | mean), tokens_per_s: (map(.tokens_per_s) | mean),
		peak_rss_bytes: (map(.peak_rss_bytes) | max),
		w_std: (if .[0].w_std == null then null else map(.w_std) | mean end),
		w_rec: (if .[0].w_rec == null then null else map(.w_rec) | mean end),
		gate_alpha: (if .[0].gate_alpha == null then null else map(.gate_alpha) | mean end),
		ra_w_std: (if .[0].ra_w_std == null then null else map(.ra_w_std) | mean end),
		ra_w_rec: (if .[0].ra_w_rec == null then null else map(.ra_w_rec) | mean end),
		keep_ratio: (if .[0].keep_ratio == null then null else map(.keep_ratio) | mean end)
	} | del(.id, .seed, .run)] as $steps |
	(if $base != null then $base + {step: "BASELINE", val_loss_std: null}
	 else $steps[0] + {source: "step \($steps[0].step)"} end) as $b |
	{
		baseline: $b,
		steps: [$steps[] | . + {
			delta_pct: ((.val_loss / $b.val_loss - 1) * 100),
			spread_pct: (if .val_loss_std == null then null
				else ((.val_loss_std * .val_loss_std + (($b.val_loss_std // 0) | . * .)) | sqrt) / $b.val_loss * 100 end)
		} | . + {beyond_spread: (if .spread_pct == null then null
				else ((.delta_pct | fabs) > .spread_pct) end)}],
		runs: $runs
	}' "${rows[@]}" > "$res/table.json" || exit 1

jq -r '
	def f(n): if . == null then "" else (. * pow(10; n) | round) / pow(10; n) | tostring end;
	def mb: if . == null then "" elif . < 1048576 then (. / 1024 | round | tostring) + " KiB"
		else (. / 1048576 | round | tostring) + " MiB" end;
	"| step | mechanisms | params | val_loss | val ppl | Δ% vs baseline | beyond spread | best ppl | train loss | tokens/s | peak RSS | KV full | KV pruned | R-MLP w_std | R-MLP w_rec | gate_alpha | RA w_std | RA w_rec | keep ratio |",
	"| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
	(.baseline | select(.step == "BASELINE") |
	 "| \(.label // "BASELINE") | external: \(.source) | | \(.val_loss | f(4)) | " +
	 "\(.val_perplexity | f(1)) | +0% | | | \(.train_loss | f(4)) | | | | | | | | | | |"),
	(.steps[] |
	 "| \(.step) | \(.mechanisms) | \(.params) | \(.val_loss | f(4))" +
	 (if .val_loss_std != null then " ± \(.val_loss_std | f(4))" else "" end) +
	 " | \(.val_perplexity | f(1)) | " +
	 (if .delta_pct >= 0 then "+" else "" end) + "\(.delta_pct | f(2))%" +
	 (if .spread_pct != null then " (± \(.spread_pct | f(2))%)" else "" end) + " | " +
	 (if .beyond_spread == null then "n/a (1 seed)" elif .beyond_spread then "yes" else "no" end) +
	 " | \(.best_perplexity | f(1)) | \(.train_loss | f(4)) | \(.tokens_per_s | round) | " +
	 "\(.peak_rss_bytes | mb) | \(.kv_bytes_full | mb) | \(.kv_bytes_pruned | mb) | " +
	 "\(.w_std | f(4)) | \(.w_rec | f(4)) | \(.gate_alpha | f(4)) | " +
	 "\(.ra_w_std | f(4)) | \(.ra_w_rec | f(4)) | \(.keep_ratio | f(3)) |"),
	"",
	"Baseline: \(.baseline.source), val_loss \(.baseline.val_loss | f(4)). KV-cache bytes: the recipe'"'"'s full-size model at its batch of block_size tokens."
' "$res/table.json" > "$res/table.md" || exit 1
# An external baseline whose history could not be read: why, in one line.
if [ -f "$res/baseline.json" ] && [ ! -s "$res/baseline-history.jsonl" ]; then
	why="no $res/baseline-history.jsonl"
	[ -s "$res/baseline-history.reason" ] && why=$(head -1 "$res/baseline-history.reason")
	printf '\nBaseline history not plotted (the plots show the steps only): %s\n' "$why" >> "$res/table.md"
fi

jq -r '
	["step", "mechanisms", "seeds", "params", "val_loss", "val_loss_std", "val_perplexity",
	 "delta_pct", "spread_pct", "beyond_spread", "best_perplexity", "train_loss", "tokens_per_s",
	 "peak_rss_bytes", "kv_bytes_full", "kv_bytes_pruned", "w_std", "w_rec", "gate_alpha",
	 "ra_w_std", "ra_w_rec", "keep_ratio"] as $k | ($k | @csv), (.steps[] | [.[$k[]]] | @csv)' "$res/table.json" > "$res/table.csv" || exit 1

# Plots: the data files of every run (and of an external baseline), then
# gnuplot. series NAME METRICS TITLE STYLE...: NAME's data files from its
# METRICS (metrics.jsonl rows) and its lines in the plots, titled TITLE,
# in STYLE (val_loss, w_std, w_rec); missing values are NaN (no point).
vt=() vk=() gate=() keep=()
series() {
	local n=$1 m=$2 t=$3 sv=$4 ss=$5 sr=$6 d=$res/plot/$1
	jq -r 'select(.type == "eval" and (.val_loss | type == "number")) |
		"\(.elapsed_s // "NaN") \(.tokens // "NaN") \(.val_loss)"' "$m" > "$d.val"
	jq -r 'select(.type == "train" and .rmlp_w_std != null) |
		"\(.tokens) \(.rmlp_w_std | add / length) \(.rmlp_w_rec | add / length)"' "$m" > "$d.gate"
	jq -r 'select(.type == "train" and .ra_w_std != null) |
		"\(.tokens) \(.ra_w_std | add / length) \(.ra_w_rec | add / length)"' "$m" > "$d.ra"
	jq -r 'select(.type == "train" and .kv_keep_ratio != null) |
		"\(.tokens) \(.kv_keep_ratio | add / length)"' "$m" > "$d.keep"
	awk '$1 != "NaN" { f = 1 } END { exit !f }' "$d.val" &&
		vt+=("'$d.val' using 1:3 with linespoints $sv title '$t'")
	awk '$2 != "NaN" { f = 1 } END { exit !f }' "$d.val" &&
		vk+=("'$d.val' using 2:3 with linespoints $sv title '$t'")
	[ -s "$d.gate" ] && gate+=("'$d.gate' using 1:2 with lines $ss title '$t R-MLP w_std'" \
		"'$d.gate' using 1:3 with lines $sr title '$t R-MLP w_rec'")
	[ -s "$d.ra" ] && gate+=("'$d.ra' using 1:2 with linespoints pointtype 6 $ss title '$t RA w_std'" \
		"'$d.ra' using 1:3 with linespoints pointtype 6 $sr title '$t RA w_rec'")
	[ -s "$d.keep" ] && keep+=("'$d.keep' using 1:2 with lines $ss title '$t'")
	return 0
}
plots=
if command -v gnuplot >/dev/null; then
	mkdir -p "$res/plot"
	rm -f "$res/plot"/*.val "$res/plot"/*.gate "$res/plot"/*.ra "$res/plot"/*.keep
	rm -f "$res"/val_loss_time.png "$res"/val_loss_tokens.png "$res"/gates.png "$res"/keep_ratio.png
	if [ -f "$res/baseline.json" ] && [ -s "$res/baseline-history.jsonl" ]; then
		series BASELINE "$res/baseline-history.jsonl" \
			"$(jq -r '.label // "baseline"' "$res/baseline.json" | tr -d "'")" \
			"lc rgb 'black' lw 2 dashtype 4" "lc rgb 'black' lw 2 dashtype 4" \
			"lc rgb 'black' lw 2 dashtype 5"
	fi
	# one colour per step (gnuplot's linetype n), shared by its w_std and
	# w_rec lines, so that a step's gates read as a pair
	n=0
	while read -r id; do
		m=$res/$id/latest/metrics.jsonl
		n=$((n + 1))
		[ -f "$m" ] && series "$id" "$m" "$id" "lt $n" "lt $n" "lt $n dashtype 2"
	done < "$res/steps"
	join() { local IFS=,; echo "$*"; }
	{
		echo "set terminal pngcairo noenhanced size 900,600; set grid; set key outside right"
		if [ ${#vt[@]} -gt 0 ]; then
			echo "set output '$res/val_loss_time.png'; set title 'val_loss against wall time'"
			echo "set xlabel 'seconds'; set ylabel 'val_loss'; plot $(join "${vt[@]}")"
		fi
		if [ ${#vk[@]} -gt 0 ]; then
			echo "set output '$res/val_loss_tokens.png'; set title 'val_loss against tokens'"
			echo "set xlabel 'tokens'; set ylabel 'val_loss'; plot $(join "${vk[@]}")"
		fi
		echo "set xlabel 'tokens'"
		if [ ${#gate[@]} -gt 0 ]; then
			echo "set output '$res/gates.png'"
			echo "set title 'w_std and w_rec (mean over layers): R-MLP lines, RA circles'"
			echo "set ylabel 'weight'; plot $(join "${gate[@]}")"
		fi
		if [ ${#keep[@]} -gt 0 ]; then
			echo "set output '$res/keep_ratio.png'; set title 'KV keep ratio (mean over layers)'"
			echo "set ylabel 'keep ratio'; plot $(join "${keep[@]}")"
		fi
	} > "$res/plot/plots.gp"
	if gnuplot "$res/plot/plots.gp" 2> "$res/plot/gnuplot.log"; then
		plots=$(cd "$res" && ls val_loss_time.png val_loss_tokens.png gates.png keep_ratio.png 2>/dev/null | tr '\n' ' ')
	else
		echo "ablation-report: gnuplot failed (plots skipped): $(tail -3 "$res/plot/gnuplot.log")" >&2
	fi
fi

echo
cat "$res/table.md"
echo
echo "ablation: table in $res/table.md, table.json, table.csv${plots:+; plots: $plots}"

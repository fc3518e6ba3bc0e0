#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# ablation.sh [OBJTREE]: the ablation matrix, behind `make` when
# CONFIG_RA_MLA_ABLATION_MODE=y and `make ablation` (docs/ablation.md).
#
# For every step of CONFIG_RA_MLA_ABLATION_STEPS (and every seed of
# CONFIG_ABLATION_SEEDS), the step's fragment
# CONFIG_RA_MLA_ABLATION_STEPS_DIR/<step> is merged over OBJTREE/.config
# and checked like any fragment (a dropped setting is an error naming the
# step and the symbol), built as its own trainer in the O= tree
# build/<recipe>/<step>/ (scripts/build-trainer.sh, as make bench does)
# and trained under the time budget (TIME=) into its own run folder
# RESULTS/<step>/ (CONFIG_OUTPUT_DIR of the step). A step whose run has a
# summary.json is skipped; an unfinished one resumes from its checkpoint
# (the trainer does that for the same configuration). Ctrl-C stops the
# running step with its checkpoint written, and the matrix with it.
# At the end scripts/ablation-report.sh writes the table and the plots.
#
# RESULTS is OUTPUT_DIR/ablation (KGPT_ABLATION_DIR moves it), the build
# trees are OBJTREE/build/<recipe> (KGPT_ABLATION_BUILD moves them).
#
# BASELINE= (or CONFIG_BASELINE_RUN_ID): entity/project/run_id,
# entity/project/runs/run_id, https://wandb.ai/entity/project/runs/run_id
# or a local run folder (with summary.json), OUTPUT_DIR (with latest/) or
# ablation folder (with table.json). Anything else is refused before a
# build (exit 2). A W&B run is read with `build/kgpt-wandb baseline SPEC`
# (KGPT_WANDB_TOOL moves it) and cached in RESULTS/baseline.json. A
# readable baseline replaces the first step (V0), which is skipped; an
# unreadable one is reported with its reason and the first step is the
# baseline, or with BASELINE_STRICT=1 the matrix stops (exit 1).
# The baseline's history (its eval rows and gate series, metrics.jsonl
# rows) is cached beside it in RESULTS/baseline-history.jsonl for the
# plots: a local run's metrics.jsonl, or `kgpt-wandb history SPEC`. When
# it cannot be read, RESULTS/baseline-history.reason says why in one line
# and the plots are made without it.
set -u

srctree=$(cd "$(dirname "$0")/.." && pwd)
objtree=$(cd "${1:-$srctree}" && pwd)
config=$objtree/.config
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

die() { echo "ablation: error: $*" >&2; exit 1; }
say() { echo "ablation: $*"; }
command -v jq >/dev/null || die "jq is missing (scripts/install-deps.sh)"
[ -f "$config" ] || die "no $config (make defconfig-NAME first)"

# cfg FILE NAME: the value of CONFIG_NAME in FILE, without quotes.
cfg() {
	sed -n "s/^CONFIG_$2=//p" "$1" | sed 's/^"\(.*\)"$/\1/'
}
# abspath PATH: PATH relative to the source tree made absolute.
abspath() {
	case $1 in /*) echo "$1" ;; *) echo "$srctree/$1" ;; esac
}

[ "$(cfg "$config" RA_MLA_ABLATION_MODE)" = y ] ||
	die "CONFIG_RA_MLA_ABLATION_MODE is off in $config (make menuconfig, Tracking and ablation)"
steps_dir=$(cfg "$config" RA_MLA_ABLATION_STEPS_DIR)
[ -n "$steps_dir" ] || die "CONFIG_RA_MLA_ABLATION_STEPS_DIR is empty: set the folder of the step fragments, e.g. defconfigs/gpt2-r-mlp-prune.steps"
steps_dir=$(abspath "$steps_dir")
[ -d "$steps_dir" ] || die "CONFIG_RA_MLA_ABLATION_STEPS_DIR: no folder $steps_dir"
recipe=$(basename "$steps_dir" .steps)
IFS=', ' read -r -a steps <<< "$(cfg "$config" RA_MLA_ABLATION_STEPS)"
[ ${#steps[@]} -gt 0 ] || die "CONFIG_RA_MLA_ABLATION_STEPS is empty"
for s in "${steps[@]}"; do
	[ -f "$steps_dir/$s" ] || die "step $s of CONFIG_RA_MLA_ABLATION_STEPS has no fragment $steps_dir/$s"
done
seeds=$(cfg "$config" ABLATION_SEEDS)
seeds=${seeds:-1}
seed0=$(cfg "$config" SEED)
seed0=${seed0:-1337}
results=${KGPT_ABLATION_DIR:-$(abspath "$(cfg "$config" OUTPUT_DIR)")/ablation}
buildroot=${KGPT_ABLATION_BUILD:-$objtree/build/$recipe}
budget=${TIME:-$(cfg "$config" GPT2_MAX_TIME)}
mkdir -p "$results" "$buildroot" || die "cannot create $results or $buildroot"
results=$(cd "$results" && pwd)

# ---- The baseline --------------------------------------------------------
spec=${BASELINE:-$(cfg "$config" BASELINE_RUN_ID)}
part='[A-Za-z0-9_.-]+'
base_kind= base_ref=
if [ -z "$spec" ]; then
	:
elif [ -d "$spec" ]; then
	base_kind=local base_ref=$(cd "$spec" && pwd)
elif [ -d "$srctree/$spec" ]; then
	base_kind=local base_ref=$(cd "$srctree/$spec" && pwd)
elif [[ $spec =~ ^https?://(www\.)?wandb\.ai/($part)/($part)/runs/($part)/?(\?.*)?$ ]]; then
	base_kind=wandb base_ref=${BASH_REMATCH[2]}/${BASH_REMATCH[3]}/${BASH_REMATCH[4]}
elif [[ $spec =~ ^($part)/($part)/runs/($part)$ ]] || [[ $spec =~ ^($part)/($part)/($part)$ ]]; then
	base_kind=wandb base_ref=${BASH_REMATCH[1]}/${BASH_REMATCH[2]}/${BASH_REMATCH[3]}
else
	echo "ablation: error: BASELINE \"$spec\" is not entity/project/run_id," \
		"entity/project/runs/run_id, https://wandb.ai/entity/project/runs/run_id" \
		"nor an existing run or ablation folder; nothing was built" >&2
	exit 2
fi

# read_local DIR: the baseline JSON of a run folder, OUTPUT_DIR or
# ablation folder on stdout; a reason on stderr and 1 when there is none.
read_local() {
	local d=$1 s
	if [ -f "$d/summary.json" ]; then
		s=$d/summary.json
	elif [ -f "$d/latest/summary.json" ]; then
		s=$d/latest/summary.json
	elif [ -f "$d/table.json" ]; then
		jq -e --arg src "$d" '.baseline | select(.val_loss != null) | {source: $src,
			val_loss, val_perplexity, train_loss, train_perplexity}' "$d/table.json" && return 0
		echo "$d/table.json has no baseline val_loss" >&2
		return 1
	else
		echo "$d holds no summary.json, latest/summary.json or table.json (an unfinished run?)" >&2
		return 1
	fi
	jq -e --arg src "$s" 'select(.val_loss | type == "number") | {source: $src, val_loss,
		val_perplexity, train_loss, train_perplexity}' "$s" 2>/dev/null && return 0
	echo "$s has no numeric val_loss" >&2
	return 1
}

# read_wandb E/P/ID: through the W&B client, as read_local.
read_wandb() {
	local tool=${KGPT_WANDB_TOOL:-$objtree/build/kgpt-wandb} out err rc
	[ -x "$tool" ] || { echo "the W&B client is not built (${tool#$srctree/})" >&2; return 1; }
	err=$(mktemp)
	out=$("$tool" baseline "$1" 2> "$err")
	rc=$?
	if [ "$rc" != 0 ]; then
		echo "$(basename "$tool") says: $(head -1 "$err") (exit $rc)" >&2
		rm -f "$err"
		return 1
	fi
	rm -f "$err"
	jq -ce 'select(.val_loss | type == "number")' <<< "$out" 2>/dev/null && return 0
	echo "$(basename "$tool") printed no numeric val_loss: $(head -c 200 <<< "$out")" >&2
	return 1
}

# history_local DIR: the metrics.jsonl of the baseline that read_local
# reads (an ablation folder: its cached baseline history, else its first
# step's run), only its eval and train rows; a reason on stderr and 1 when
# there is none.
history_local() {
	local d=$1 m
	if [ -f "$d/summary.json" ]; then
		m=$d/metrics.jsonl
	elif [ -f "$d/latest/summary.json" ]; then
		m=$d/latest/metrics.jsonl
	elif [ -f "$d/baseline.json" ]; then
		m=$d/baseline-history.jsonl
	else
		m=$d/$(head -1 "$d/steps" 2>/dev/null)/latest/metrics.jsonl
	fi
	[ -f "$m" ] || { echo "there is no $m" >&2; return 1; }
	jq -c 'select(.type == "eval" or .type == "train")' "$m" 2>/dev/null ||
		{ echo "$m is not JSON lines" >&2; return 1; }
}

# history_wandb E/P/ID: the history through the W&B client, as history_local.
history_wandb() {
	local tool=${KGPT_WANDB_TOOL:-$objtree/build/kgpt-wandb} err rc
	[ -x "$tool" ] || { echo "the W&B client is not built (${tool#$srctree/})" >&2; return 1; }
	err=$(mktemp)
	"$tool" history "$1" 2> "$err"
	rc=$?
	if [ "$rc" != 0 ]; then
		echo "$(basename "$tool") says: $(head -1 "$err" | sed 's/^kgpt-wandb: //') (exit $rc)" >&2
		rm -f "$err"
		return 1
	fi
	rm -f "$err"
}

# read_history: the baseline's history, checked: a reason on stderr and 1
# when it has no eval row with a numeric val_loss.
read_history() {
	local out
	out=$(if [ "$base_kind" = local ]; then history_local "$base_ref"; else history_wandb "$base_ref"; fi) ||
		return 1
	jq -se 'any(.type == "eval" and (.val_loss | type == "number"))' <<< "$out" >/dev/null 2>&1 ||
		{ echo "it has no eval row with a numeric val_loss: $(head -c 200 <<< "$out")" >&2; return 1; }
	printf '%s\n' "$out"
}

# label: "baseline <run id>" (a local run: its run folder's name).
label() {
	local d
	if [ "$base_kind" = wandb ]; then
		echo "baseline ${base_ref##*/}"
		return
	fi
	d=$base_ref
	[ -f "$d/summary.json" ] || [ ! -d "$d/latest" ] || d=$d/latest
	echo "baseline $(basename "$(cd "$d" && pwd -P)" | tr -d "'\"\\\\")"
}

cache=$results/baseline.json
hist=$results/baseline-history.jsonl
rm -f "$results/baseline.reason"
if [ -n "$base_kind" ]; then
	if [ -f "$cache" ] && [ "$(jq -r .spec "$cache" 2>/dev/null)" = "$spec" ]; then
		say "baseline $spec: cached in ${cache#$srctree/}"
	else
		rm -f "$cache" "$hist"
		reason=$(mktemp)
		if json=$(if [ "$base_kind" = local ]; then read_local "$base_ref"; else read_wandb "$base_ref"; fi 2> "$reason"); then
			jq --arg spec "$spec" --arg lbl "$(label)" '. + {spec: $spec, label: $lbl}' \
				<<< "$json" > "$cache"
		else
			why=$(tr '\n' ' ' < "$reason" | sed 's/ $//')
			rm -f "$reason"
			if [ "${BASELINE_STRICT:-0}" = 1 ]; then
				die "the baseline $spec cannot be read: $why (BASELINE_STRICT=1); nothing was built"
			fi
			echo "$spec: $why" > "$results/baseline.reason"
			say "the baseline $spec cannot be read: $why; ${steps[0]} is the baseline instead"
		fi
		rm -f "$reason"
	fi
else
	rm -f "$cache"
fi
rm -f "$results/baseline-history.reason"
if [ ! -f "$cache" ]; then
	rm -f "$hist"
elif [ ! -f "$hist" ]; then
	reason=$(mktemp)
	if read_history > "$hist.tmp" 2> "$reason"; then
		mv "$hist.tmp" "$hist"
		say "baseline history: $(jq -s 'map(select(.type == "eval")) | length' "$hist") eval rows in ${hist#$srctree/}"
	else
		rm -f "$hist.tmp"
		why=$(tr '\n' ' ' < "$reason" | sed 's/ $//')
		echo "$why" > "$results/baseline-history.reason"
		say "the history of the baseline $spec cannot be read: $why; the plots are made without it"
	fi
	rm -f "$reason"
fi
if [ -f "$cache" ]; then
	say "baseline: $spec, val_loss $(jq .val_loss "$cache"); step ${steps[0]} is skipped"
	steps=("${steps[@]:1}")
fi

# ---- The steps -----------------------------------------------------------
ids=()
for s in "${steps[@]}"; do
	for ((i = 1; i <= seeds; i++)); do
		if [ "$i" = 1 ]; then ids+=("$s"); else ids+=("$s-seed$i"); fi
	done
done
printf '%s\n' "${ids[@]}" > "$results/steps"
printf '%s\n' "$recipe" > "$results/recipe"

# The data of the configuration, once (make data), before any step.
make -C "$srctree" --no-print-directory O="$objtree" BASELINE= data ||
	die "the data for $config is missing (above)"

# kv_recipe STEP OBJ: the KV-cache bytes of the recipe's own model
# (defconfigs/<recipe> with the step, without a CPU override; the step's
# own OBJ/.config when there is no such recipe) for its batch of
# block_size tokens: full and with the step's pruning (k, or round(rho_0 *
# T) when learned), as report.c computes them (ra/kvprune.c).
kv_recipe() {
	local t c L C T B e k mode
	t=$(mktemp -d)
	if [ -f "$srctree/defconfigs/$recipe" ]; then
		cat "$srctree/defconfigs/$recipe" "$steps_dir/$1" > "$t/in"
		(cd "$t" && srctree=$srctree KCONFIG_CONFIG=$t/.config \
			kconfig-conf -s --defconfig="$t/in" "$srctree/Kconfig" >/dev/null 2>&1)
	else
		cp "$2/.config" "$t/.config"
	fi
	c=$t/.config
	L=$(cfg "$c" GPT2_N_LAYER) C=$(cfg "$c" GPT2_N_EMBD) T=$(cfg "$c" GPT2_BLOCK_SIZE)
	B=$(cfg "$c" BATCH_SIZE)
	e=4; [ "$(cfg "$c" GPT2_AMP_DTYPE)" = bf16 ] && e=2
	k=$T mode=kv
	if [ "$(cfg "$c" KV_CACHE_PRUNE)" = y ]; then
		k=$(cfg "$c" KV_PRUNE_K)
		[ "$(cfg "$c" KV_PRUNE_LEARNED)" = y ] &&
			k=$(awk -v r="$(cfg "$c" KV_PRUNE_INIT_RATIO)" -v T="$T" 'BEGIN { printf "%d", r * T + 0.5 }')
		[ "$(cfg "$c" KV_PRUNE_MODE_V_ONLY)" = y ] && mode=v
	fi
	[ "$k" -gt "$T" ] && k=$T
	jq -n --argjson L "$L" --argjson C "$C" --argjson T "$T" --argjson B "$B" \
		--argjson e "$e" --argjson k "$k" --arg mode "$mode" '{
		kv_recipe: {n_layer: $L, n_embd: $C, tokens: $T, batch: $B, bytes_per_elem: $e, k: $k,
			full: (2 * $L * $T * $C * $e * $B),
			pruned: (if $mode == "v" then $L * ($T + $k) * $C * $e * $B
				 else 2 * $L * $k * $C * $e * $B end)}}'
	rm -rf "$t"
}

# mechanisms CONFIG: what the step's binary has, in words.
mechanisms() {
	local c=$1 m=()
	if [ "$(cfg "$c" RMLP)" = y ]; then
		m+=("R-MLP R_ff $(cfg "$c" RMLP_R_FF)")
		[ "$(cfg "$c" RMLP_USE_MIXER)" = y ] && m+=("mixer")
		[ "$(cfg "$c" RMLP_USE_GATES)" = y ] && m+=("gate_alpha")
	fi
	if [ "$(cfg "$c" RA)" = y ]; then
		m+=("RA R $(cfg "$c" RA_R)")
		[ "$(cfg "$c" RA_PER_HEAD_GATES)" = y ] && m+=("per-head gates")
		[ "$(cfg "$c" RA_SELF_RESTART)" = y ] && m+=("self-restart")
	fi
	if [ "$(cfg "$c" KV_CACHE_PRUNE)" = y ]; then
		if [ "$(cfg "$c" KV_PRUNE_LEARNED)" = y ]; then
			m+=("KV learned rho0 $(cfg "$c" KV_PRUNE_INIT_RATIO)")
		else
			m+=("KV k $(cfg "$c" KV_PRUNE_K)")
		fi
		m+=("recency $(cfg "$c" KV_PRUNE_RECENCY)")
	fi
	[ ${#m[@]} -gt 0 ] || m=("baseline")
	local IFS=,
	echo "${m[*]}" | sed 's/,/, /g'
}

stop=0
trap 'stop=1' INT TERM
n=${#ids[@]}
start=$SECONDS
done_s=0 done_n=0
hms() { date -d "@$(($(date +%s) + $1))" +%H:%M:%S; }
for ((j = 0; j < n; j++)); do
	id=${ids[j]}
	step=${id%-seed*}
	seed=1
	[ "$id" != "$step" ] && seed=${id##*-seed}
	dir=$results/$id
	obj=$buildroot/$id
	mkdir -p "$dir"
	if [ -f "$dir/latest/summary.json" ]; then
		say "step $((j + 1)) of $n: $id finished, skipped ($(jq -r .val_loss "$dir/latest/summary.json") val_loss)"
		continue
	fi
	# The step's fragment: the recipe's step, its run folder, its seed.
	{
		cat "$steps_dir/$step"
		printf '# the ablation driver: run folder and seed of %s\n' "$id"
		printf 'CONFIG_OUTPUT_DIR="%s"\n' "$dir"
		[ "$seed" = 1 ] || printf 'CONFIG_SEED=%d\n' $((seed0 + seed - 1))
		# W&B: each step a run named after it, grouped per ablation,
		# unless the recipe names them itself
		if [ "$(cfg "$config" ENABLE_WANDB)" = y ]; then
			[ -n "$(cfg "$config" WANDB_RUN_NAME)" ] ||
				printf 'CONFIG_WANDB_RUN_NAME="%s-%s"\n' "$recipe" "$id"
			[ -n "$(cfg "$config" WANDB_RUN_GROUP)" ] ||
				printf 'CONFIG_WANDB_RUN_GROUP="%s-ablation"\n' "$recipe"
		fi
	} > "$dir/step.config"
	t0=$SECONDS
	say "step $((j + 1)) of $n: build $id (${steps_dir#$srctree/}/$step) in ${obj#$srctree/}"
	if ! "$srctree/scripts/build-trainer.sh" "$obj" "$dir/step.config" "$config" -- \
		${TIME:+TIME=$TIME} BASELINE=; then
		die "step $id (${steps_dir#$srctree/}/$step) cannot be built (above)"
	fi
	{ jq -n --arg step "$step" --arg id "$id" --argjson seed "$seed" \
		--arg mech "$(mechanisms "$obj/.config")" --arg bin "$obj/build/train_gpt2" \
		'{step: $step, id: $id, seed: $seed, mechanisms: $mech, binary: $bin}'; kv_recipe "$step" "$obj"; } |
		jq -s add > "$dir/step.json"
	b=$(sed -n 's/^#define KGPT_MAX_TIME //p' "$obj/include/generated/kgpt_config.h")
	left=$((n - j))
	if [ "$done_n" -gt 0 ]; then per=$((done_s / done_n)); else per=$((b + SECONDS - t0 + 5)); fi
	say "step $((j + 1)) of $n: train $id [$(mechanisms "$obj/.config")], budget ${b} s:" \
		"step ETA $(hms $((b + 5))), matrix ETA $(hms $((b + 5 + (left - 1) * per)))"
	(cd "$srctree" && exec "$obj/build/train_gpt2")
	rc=$?
	if [ "$stop" = 1 ] || [ "$rc" = 130 ] || [ "$rc" = 143 ]; then
		say "interrupted in step $id; its checkpoint is in ${dir#$srctree/}/latest/checkpoints;" \
			"run make again to resume it (finished steps are skipped)"
		exit 130
	fi
	[ "$rc" = 0 ] && [ -f "$dir/latest/summary.json" ] ||
		die "step $id: the trainer failed (exit $rc); make again resumes it from its last checkpoint"
	done_s=$((done_s + SECONDS - t0)) done_n=$((done_n + 1))
done
say "all $n steps done in $((SECONDS - start)) s"
exec "$srctree/scripts/ablation-report.sh" "$results"

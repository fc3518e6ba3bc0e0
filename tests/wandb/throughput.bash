# SPDX-License-Identifier: MIT
#
# tests/wandb/throughput.bash: tokens/s of the tiny trainer (300 steps,
# a row per step) without W&B, with WANDB_MODE=disabled, and streaming to
# a test server that answers every request after 5 s; ROUNDS rounds
# (default 3), interleaved. Not part of make check (a minute or more):
#   bash tests/wandb/throughput.bash
. "$(dirname "$0")/../lib.sh"

export OMP_NUM_THREADS=1 WANDB_API_KEY=bench0key0abcdefghijklmnopqrstuvwxyz0123
base=$srctree/build/check/throughput
mirror=${KGPT_DATA_MIRROR:-$srctree/../shared/data}
mkdir -p "$base"
for v in off on; do
	cfg=$base/$v.config
	{ sed 's/^CONFIG_GPT2_MAX_ITERS=.*/CONFIG_GPT2_MAX_ITERS=300/; s/^CONFIG_GPT2_EVAL_INTERVAL=.*/CONFIG_GPT2_EVAL_INTERVAL=50/; s/^CONFIG_CHECKPOINT_INTERVAL=.*/CONFIG_CHECKPOINT_INTERVAL=0/' \
		"$srctree/tests/train/tiny.config"
	  [ $v = on ] && printf 'CONFIG_ENABLE_WANDB=y\nCONFIG_WANDB_FLUSH_TIMEOUT=30\n'; } > "$cfg"
	"$srctree/scripts/load-config.sh" "$srctree" "$base/$v" "$cfg" defconfig >/dev/null || exit 1
	make -C "$srctree" O="$base/$v" -j2 build >/dev/null || exit 1
done
d=$base/work
rm -rf "$d" && mkdir -p "$d/data/gpt2" "$d/data/tinyshakespeare" "$d/srv"
ln -sf "$mirror/encoder.json" "$mirror/vocab.bpe" "$d/data/gpt2/"
head -c 200000 "$mirror/tinyshakespeare.txt" > "$d/ts.txt"
"$base/off/build/prepare_data" --input "$d/ts.txt" --out "$d/data/tinyshakespeare" \
	--name tinyshakespeare --vocab "$d/data/gpt2" >/dev/null
python3 "$srctree/tests/wandb/server.py" "$d/srv" --key "$WANDB_API_KEY" --slow 5 &
spid=$!
trap 'kill $spid' EXIT
while [ ! -s "$d/srv/port" ]; do sleep 0.05; done
export WANDB_BASE_URL=http://127.0.0.1:$(cat "$d/srv/port")

tok_s() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens_per_s"])' "$1/out/latest/summary.json"; }
for ((r = 0; r < ${ROUNDS:-3}; r++)); do
	for v in off disabled slow; do
		case $v in
		off) bin=$base/off/build/train_gpt2; env=() ;;
		disabled) bin=$base/on/build/train_gpt2; env=(WANDB_MODE=disabled) ;;
		slow) bin=$base/on/build/train_gpt2; env=() ;;
		esac
		(cd "$d" && env "${env[@]}" "$bin" --fresh >/dev/null 2>&1)
		printf '%s %s %s\n' "$r" "$v" "$(tok_s "$d")"
	done
done | tee "$base/results.txt"
python3 - "$base/results.txt" <<'PY'
import sys, statistics as st
r = {}
for l in open(sys.argv[1]):
    _, v, t = l.split(); r.setdefault(v, []).append(float(t))
for v, ts in r.items():
    print("%-9s median %.0f tok/s  (%s)" % (v, st.median(ts), " ".join("%.0f" % t for t in ts)))
print("slow server vs no W&B: %+.2f %%" % (100 * (st.median(r["slow"]) / st.median(r["off"]) - 1)))
PY

# SPDX-License-Identifier: MIT
#
# Faults: 500s, 429 with Retry-After, dropped connections, a 413 that
# splits the batch, a server answering after 5 s, and a server down for
# the whole run (delivered by make wandb-sync): every row arrives once.
. "$(dirname "$0")/setup.bash"

start_server st --fail500 2
workdir w
train "$w" --fresh
is "$RUN_RC" 0 "two HTTP 500s: the trainer exits 0"
is "$(srv "$st" 's["faults_injected"]')" 2 "the server answered 500 twice"
delivered "$st" "$w/out/latest" "after two 500s"

start_server st --fail429 2
workdir w
start=$SECONDS
train "$w" --fresh
is "$RUN_RC" 0 "two HTTP 429s: the trainer exits 0"
delivered "$st" "$w/out/latest" "after two 429s with Retry-After: 1"
like "$RUN_ERR" "HTTP 429" "the first failure is reported once"

start_server st --drop 2
workdir w
train "$w" --fresh
is "$RUN_RC" 0 "two dropped connections: the trainer exits 0"
is "$(srv "$st" 's["faults_injected"]')" 2 "the server dropped two connections"
delivered "$st" "$w/out/latest" "after two dropped connections"

start_server st --max-lines 4
workdir w
train "$w" --fresh
is "$RUN_RC" 0 "requests over 4 rows get 413: the trainer exits 0"
delivered "$st" "$w/out/latest" "413: batches split until they fit"

start_server st --slow 5
workdir w
train "$w" --fresh
is "$RUN_RC" 0 "a server answering after 5 s: the trainer exits 0"
delivered "$st" "$w/out/latest" "slow server"

# Down for the whole run: a port nobody listens on.
workdir w
WANDB_BASE_URL=http://127.0.0.1:9 train "$w" --fresh
is "$RUN_RC" 3 "server down: the trainer exits 3 (run finished, rows not delivered)"
like "$RUN_ERR" "rows not delivered.*make wandb-sync RUN=" "and says how to deliver them"
is "$(ls "$w/out/latest/model.bin" 2>/dev/null | wc -l)" 1 "the run itself is complete (model.bin)"
start_server st
run make -C "$srctree" O="$objdir" wandb-sync RUN="$w/out/latest"
is "$RUN_RC" 0 "make wandb-sync RUN=... exits 0"
delivered "$st" "$w/out/latest" "server down, then make wandb-sync"

# make wandb-sync without RUN: every run folder with a spool under OUTPUT_DIR.
workdir w2
WANDB_MODE=offline train "$w2" --fresh
WANDB_MODE=offline train "$w2" --fresh
run make -C "$srctree" O="$objdir" wandb-sync RUNS="$w2/out"
is "$RUN_RC" 0 "make wandb-sync RUNS=DIR (every run under DIR) exits 0"
n=0
for d in "$w2"/out/*/; do
	[ -L "${d%/}" ] && continue
	delivered "$st" "$d" "make wandb-sync: $(basename "$d")"
	n=$((n + 1))
done
is "$n" 2 "two runs synced"
done_testing

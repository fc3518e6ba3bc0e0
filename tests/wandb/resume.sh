# SPDX-License-Identifier: MIT
#
# A run stopped at step 10 (checkpoint) and resumed: the rows the server
# has are not sent again, none are missing, and the run keeps its id.
. "$(dirname "$0")/setup.bash"

start_server st
workdir w
train "$w" --fresh --stop-at 10
rows1=$(srv "$st" 'len(run["history"])')
id1=$(srv "$st" 'list(s["runs"])[0]')
isnt "$rows1" 0 "the stopped run delivered rows ($rows1)"
is "$(srv "$st" 'run["complete"]')" True "and marked itself complete"
train "$w" --resume
is "$RUN_RC" 0 "the resumed run exits 0"
is "$(srv "$st" 'len(s["runs"])')" 1 "it streams into the same W&B run ($id1)"
delivered "$st" "$w/out/latest" "stopped at step 10 and resumed"
is "$(srv "$st" 'run["upserts"]')" 2 "UpsertBucket once per trainer start"

# A resume with the server down until make wandb-sync: still nothing twice.
workdir w2
train "$w2" --fresh --stop-at 10
WANDB_BASE_URL=http://127.0.0.1:9 train "$w2" --resume
is "$RUN_RC" 3 "resumed with the server down: exits 3"
run make -C "$srctree" O="$objdir" wandb-sync RUN="$w2/out/latest"
is "$RUN_RC" 0 "make wandb-sync exits 0"
delivered "$st" "$w2/out/latest" "resumed during an outage, then make wandb-sync"
done_testing

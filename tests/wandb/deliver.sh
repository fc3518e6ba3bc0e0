# SPDX-License-Identifier: MIT
#
# The uploader against a healthy server: the run is created with the
# configuration, every row arrives once and in order, the summary and the
# exit code follow; WANDB_MODE=offline and disabled; the key is in no file.
. "$(dirname "$0")/setup.bash"

start_server st
workdir w
train "$w" --fresh
is "$RUN_RC" 0 "the trainer exits 0"
delivered "$st" "$w/out/latest" "healthy server"
is "$(srv "$st" 'run["config"]["GPT2_N_EMBD"]["value"]')" 32 "the config is uploaded ({value, desc} per CONFIG_ symbol)"
is "$(srv "$st" 'run["group"]')" tests "the group is CONFIG_WANDB_RUN_GROUP"
is "$(srv "$st" 'run["name"]')" "$(basename "$(readlink -f "$w/out/latest")")" "the display name is the run folder's"
is "$(srv "$st" 'json.load(open("'"$w"'/out/latest/wandb-acked.json"))["rows"]')" \
	"$(wc -l < "$w/out/latest/metrics.jsonl")" "wandb-acked.json counts every row as acknowledged"

# The key appears in no file the trainer or the server wrote.
hits=$(grep -rlF -e "$WANDB_API_KEY" "$w" "$st" 2>/dev/null)
is "$hits" "" "the API key is in no file written (run folder, spool, server state)"
unlike "$RUN_ALL" "$WANDB_API_KEY" "nor in the trainer's output"

# Environment overrides.
workdir w2
WANDB_NAME=named WANDB_RUN_GROUP=g2 WANDB_PROJECT=p2 WANDB_RUN_ID=fixedid1 train "$w2" --fresh
is "$(srv "$st" 's["runs"]["test-entity/p2/fixedid1"]["name"]')" named \
	"WANDB_PROJECT, WANDB_RUN_ID and WANDB_NAME override the CONFIG values"
is "$(srv "$st" 's["runs"]["test-entity/p2/fixedid1"]["group"]')" g2 "WANDB_RUN_GROUP too"

# WANDB_MODE=disabled: nothing at all.
n0=$(srv "$st" 's["requests"]')
workdir w3
WANDB_MODE=disabled train "$w3" --fresh
is "$RUN_RC" 0 "WANDB_MODE=disabled: the trainer exits 0"
is "$(ls "$w3/out/latest" | grep -c wandb)" 0 "WANDB_MODE=disabled writes no wandb-* file"
is "$(srv "$st" 's["requests"]')" "$n0" "and sends nothing"

# WANDB_MODE=offline: spool only; kgpt-wandb sync delivers it later.
workdir w4
WANDB_MODE=offline train "$w4" --fresh
is "$RUN_RC" 0 "WANDB_MODE=offline: the trainer exits 0"
is "$(srv "$st" 's["requests"]')" "$n0" "WANDB_MODE=offline sends nothing"
like "$RUN_OUT" "make wandb-sync RUN=" "and says how to deliver the spool"
run "$wandb_tool" sync "$w4/out/latest"
is "$RUN_RC" 0 "kgpt-wandb sync of the offline run exits 0"
delivered "$st" "$w4/out/latest" "offline run after kgpt-wandb sync"
run "$wandb_tool" sync "$w4/out/latest"
is "$RUN_RC" 0 "a second sync exits 0"
delivered "$st" "$w4/out/latest" "a second sync sends nothing twice"
done_testing

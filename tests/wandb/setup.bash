# SPDX-License-Identifier: MIT
#
# tests/wandb/setup.bash: sourced by the W&B tests (tests/wandb/*.sh).
#
# Builds the tiny trainer of tests/wandb/wandb.config (tests/train/tiny.config
# with CONFIG_ENABLE_WANDB) in build/check/wandb through tests/train/setup.bash,
# and offers:
#   start_server VAR ARGS   tests/wandb/server.py on a free loopback port,
#                           killed when the test exits; VAR = its state
#                           folder; sets WANDB_BASE_URL and WANDB_API_KEY
#   srv STATE PY-EXPR       evaluate PY-EXPR over the server's state.json
#                           (s: the state, run: the only run)
#   delivered STATE RUN WHAT  every row of RUN/metrics.jsonl is on the
#                           server exactly once, in order, with _step = row
#                           index; the summary and the exit code 0 too

KGPT_TRAIN_BUILD=${KGPT_TRAIN_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/check/wandb}
. "$(dirname "${BASH_SOURCE[0]}")/../train/setup.bash"

wandb_tool=$objdir/build/kgpt-wandb
export WANDB_API_KEY=test0key0abcdefghijklmnopqrstuvwxyz01234
unset WANDB_MODE WANDB_ENTITY WANDB_PROJECT WANDB_NAME WANDB_RUN_GROUP WANDB_RUN_ID NETRC
need python3 || done_testing
setup_trainer "$srctree/tests/wandb/wandb.config"

start_server() {
	local _sd _pid i
	new_tmpdir _sd
	shift_var=$1
	shift
	python3 "$srctree/tests/wandb/server.py" "$_sd" --key "$WANDB_API_KEY" "$@" &
	_pid=$!
	at_exit "kill $_pid"
	for ((i = 0; i < 500; i++)); do
		[ -s "$_sd/port" ] && break
		sleep 0.01
	done
	if [ ! -s "$_sd/port" ]; then
		fail "the test server starts" "no $_sd/port after 5 s"
		done_testing
	fi
	export WANDB_BASE_URL=http://127.0.0.1:$(cat "$_sd/port")
	printf -v "$shift_var" '%s' "$_sd"
}

srv() {
	python3 - "$1" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + "/state.json"))
runs = list(s["runs"].values())
run = runs[0] if len(runs) == 1 else None
print(eval(sys.argv[2]))
PY
}

# delivered STATE RUN_DIR WHAT
delivered() {
	local out
	out=$(python3 - "$1" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + "/state.json"))
d = sys.argv[2]
meta = json.load(open(d + "/wandb-run.json"))
key = "%s/%s/%s" % (meta["entity"], meta["project"], meta["run_id"])
run = s["runs"].get(key)
if run is None:
    sys.exit("no run %s on the server (it has %s)" % (key, list(s["runs"])))
rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
hist = [json.loads(l) for l in run["history"]]
timing = ("elapsed_s", "tokens_per_s", "_runtime", "_timestamp", "_step")
if len(hist) != len(rows):
    sys.exit("%d rows on the server, %d in metrics.jsonl" % (len(hist), len(rows)))
for i, (h, r) in enumerate(zip(hist, rows)):
    if h.get("_step") != i or "_runtime" not in h or "_timestamp" not in h:
        sys.exit("row %d: _step %s, keys %s" % (i, h.get("_step"), sorted(h)))
    hh = {k: v for k, v in h.items() if k not in timing}
    rr = {k: v for k, v in r.items() if k not in timing}
    if hh != rr:
        sys.exit("row %d differs: server %s, metrics.jsonl %s" % (i, hh, rr))
if run["dupes"] or run["gaps"]:
    sys.exit("%d rows sent twice, %d gaps" % (run["dupes"], run["gaps"]))
summ = json.loads(run["summary"] or "{}")
local = json.load(open(d + "/summary.json"))
if summ.get("val_loss") != local.get("val_loss"):
    sys.exit("summary val_loss %s, summary.json %s" % (summ.get("val_loss"), local.get("val_loss")))
if not run["complete"] or run["exitcode"] != 0:
    sys.exit("complete %s exitcode %s" % (run["complete"], run["exitcode"]))
print("%d rows" % len(rows))
PY
	)
	if [ $? = 0 ]; then
		pass "$3: every row once, in order ($out), summary, exit code 0"
	else
		fail "$3: every row once, in order, summary, exit code 0" "$out"
	fi
}

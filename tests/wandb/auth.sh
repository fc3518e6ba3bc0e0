# SPDX-License-Identifier: MIT
#
# A refused key (401) or no key: a clear error, not retried; training is
# unaffected (exit 3: finished, rows not delivered); the right key later
# delivers everything. ~/.netrc supplies the key when WANDB_API_KEY is unset.
. "$(dirname "$0")/setup.bash"

start_server st
good=$WANDB_API_KEY
workdir w
WANDB_API_KEY=wrong0key0abcdefghijklmnopqrstuvwxyz0123 train "$w" --fresh
is "$RUN_RC" 3 "HTTP 401: the trainer exits 3"
like "$RUN_ERR" "HTTP 401 .*API key was refused.*WANDB_API_KEY" "the error says the key was refused"
like "$RUN_ERR" "make wandb-sync RUN=" "and how to deliver the rows later"
is "$(srv "$st" 's["auth_failures"]')" 1 "a 401 is not retried (one request)"
is "$(wc -l < "$w/out/latest/metrics.jsonl")" 25 "metrics.jsonl has every row"
is "$(ls "$w/out/latest/model.bin" | wc -l)" 1 "the run finished (model.bin)"
grep -rlF wrong0key0 "$w" >/dev/null
isnt $? 0 "the refused key is in no file"
run "$wandb_tool" sync "$w/out/latest"
is "$RUN_RC" 0 "kgpt-wandb sync with the right key exits 0"
delivered "$st" "$w/out/latest" "after a 401, synced with the right key"

# No key at all.
workdir w2
env -u WANDB_API_KEY HOME="$w2" bash -c 'cd "$1" && exec "$2" --fresh' _ "$w2" "$trainer" \
	>"$w2/log" 2>&1
is "$?" 3 "no API key: the trainer exits 3"
like "$(cat "$w2/log")" "no API key \\(WANDB_API_KEY or ~/.netrc" "saying where the key comes from"

# The key from ~/.netrc (machine = the base URL's host).
printf 'machine 127.0.0.1\n  login api\n  password %s\n' "$good" > "$w2/.netrc"
run env -u WANDB_API_KEY HOME="$w2" "$wandb_tool" sync "$w2/out/latest"
is "$RUN_RC" 0 "kgpt-wandb sync with the key from ~/.netrc exits 0"
delivered "$st" "$w2/out/latest" "the key from ~/.netrc"
done_testing

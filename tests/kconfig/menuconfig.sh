#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# make menuconfig: refuses quickly without a terminal (kconfig-mconf
# would spin forever on a redirected stdin), and shows the top menu in a
# real one (tmux, 80x24). Escape Escape leaves it, .config unchanged.

. "$(dirname "$0")/../lib.sh"

need kconfig-mconf make timeout tmux || done_testing
new_tmpdir tmp

o=$tmp/o
run kmake O="$o" defconfig-gpt2-tiny
is "$RUN_RC" 0 "gpt2-tiny loads" || { show_run; done_testing; }
cp "$o/.config" "$tmp/config.before"

# 1. No terminal.
start=$SECONDS
run timeout 20 make -C "$srctree" --no-print-directory O="$o" menuconfig
elapsed=$((SECONDS - start))
isnt "$RUN_RC" 0 "menuconfig with stdin from /dev/null fails"
isnt "$RUN_RC" 124 "menuconfig with stdin from /dev/null does not hang"
[ "$elapsed" -lt 10 ]
ok $? "menuconfig without a terminal returns at once (${elapsed}s)"
like "$RUN_ERR" 'terminal' "menuconfig without a terminal says it needs one"
same_file "$tmp/config.before" "$o/.config" "menuconfig without a terminal: .config is unchanged"

# 2. In tmux: a private server (its own socket, no user configuration).
sock=$tmp/tmux.sock
tm() { tmux -S "$sock" -f /dev/null "$@"; }
at_exit "tmux -S '$sock' kill-server"

# wait_for TEXT SECONDS: poll the pane until it shows TEXT.
pane=
wait_for() {
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		pane=$(tm capture-pane -p -t kgpt 2>/dev/null)
		printf '%s\n' "$pane" | grep -Fq -e "$1" && return 0
		sleep 0.2
	done
	return 1
}

TERM=${TERM:-dumb} tm new-session -d -s kgpt -x 80 -y 24 \
	"cd '$srctree' && TERM=tmux-256color make --no-print-directory O='$o' menuconfig; echo \"menuconfig-exit=\$?\"; sleep 60"
ok $? "a tmux session (80x24) starts"

if wait_for "Reciprocal mechanisms" 15; then
	pass "menuconfig shows the top menu"
else
	fail "menuconfig shows the top menu" "the pane shows:" "$pane"
fi
for item in "Model" "Reciprocal mechanisms" "Backend" "kgpt: GPT-2 trainer configuration"; do
	like "$pane" "$item" "the top menu shows \"$item\""
done

tm send-keys -t kgpt Escape
sleep 0.3
tm send-keys -t kgpt Escape
for ((i = 0; i < 50; i++)); do
	pane=$(tm capture-pane -p -t kgpt 2>/dev/null)
	case $pane in
	*"menuconfig-exit="*) break ;;
	*"save your new configuration"*) tm send-keys -t kgpt Enter ;;
	esac
	sleep 0.2
done
like "$pane" 'menuconfig-exit=0' "Escape Escape leaves menuconfig with exit status 0" || diag "$pane"
same_file "$tmp/config.before" "$o/.config" "menuconfig without changes leaves .config as it was"

tm kill-session -t kgpt
ok $? "the tmux session is killed"
tm has-session -t kgpt 2>/dev/null
isnt "$?" 0 "no tmux session is left"

done_testing

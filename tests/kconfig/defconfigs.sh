#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The shipped recipes (defconfigs/*): each loads cleanly, savedefconfig
# round-trips, olddefconfig is idempotent, and the research recipe reaches
# the generated header with its values. All in temporary O= trees.

. "$(dirname "$0")/../lib.sh"

need kconfig-conf make || done_testing
new_tmpdir tmp

# .config without its leading header comment block.
body() {
	awk 'body || !/^#/ { body = 1; print }' "$1"
}

names=$(cd "$srctree/defconfigs" && ls | grep -v "\.")
[ -n "$names" ] || fail "defconfigs/ holds at least one recipe"

for name in $names; do
	o=$tmp/$name
	run kmake O="$o" defconfig-"$name"
	is "$RUN_RC" 0 "defconfig-$name: exit status 0" || show_run
	is "$RUN_ERR" "" "defconfig-$name: nothing on stderr"
	[ -f "$o/.config" ] || { fail "defconfig-$name: wrote .config"; continue; }
	for f in include/generated/autoconf.h include/generated/kgpt_config.h \
		 include/generated/config_text.h include/config/auto.conf; do
		[ -s "$o/$f" ]; ok $? "defconfig-$name: wrote $f"
	done
	cp "$o/.config" "$tmp/$name.A"

	# A second `make prepare` has nothing to complain about.
	run kmake O="$o" prepare
	is "$RUN_RC:$RUN_ERR" "0:" "defconfig-$name: make prepare afterwards succeeds quietly"

	# savedefconfig -> D; load D into a fresh tree -> B; A == B.
	run kmake O="$o" savedefconfig
	is "$RUN_RC" 0 "defconfig-$name: savedefconfig exit status 0"
	same_file "$o/.config" "$tmp/$name.A" "defconfig-$name: savedefconfig leaves .config alone"
	if [ -s "$o/defconfig" ]; then
		pass "defconfig-$name: savedefconfig wrote a defconfig"
		mkdir -p "$tmp/$name.rt"
		run env O="$tmp/$name.rt" "$srctree/scripts/load-config.sh" \
			"$srctree" "$tmp/$name.rt" "$o/defconfig" defconfig
		is "$RUN_RC" 0 "defconfig-$name: the saved defconfig loads again" || show_run
		if cmp -s <(body "$tmp/$name.A") <(body "$tmp/$name.rt/.config"); then
			pass "defconfig-$name: savedefconfig round-trips to the same .config"
		else
			fail "defconfig-$name: savedefconfig round-trips to the same .config" \
				"$(diff <(body "$tmp/$name.A") <(body "$tmp/$name.rt/.config") | head -20)"
		fi
		# Minimal: the saved file holds no more lines than the recipe.
		n_saved=$(grep -c '^CONFIG_\|^# CONFIG_.* is not set' "$o/defconfig")
		n_recipe=$(grep -c '^CONFIG_\|^# CONFIG_.* is not set' "$srctree/defconfigs/$name")
		[ "$n_saved" -le "$n_recipe" ]
		ok $? "defconfig-$name: savedefconfig is minimal ($n_saved lines, recipe $n_recipe)"
	else
		fail "defconfig-$name: savedefconfig wrote a defconfig"
	fi

	# olddefconfig twice gives byte-identical files, equal to the loaded one.
	run kmake O="$o" olddefconfig
	is "$RUN_RC" 0 "defconfig-$name: olddefconfig exit status 0" || show_run
	cp "$o/.config" "$tmp/$name.C1"
	run kmake O="$o" olddefconfig
	is "$RUN_RC" 0 "defconfig-$name: olddefconfig again exit status 0"
	same_file "$tmp/$name.C1" "$o/.config" "defconfig-$name: olddefconfig is idempotent"
	same_file "$tmp/$name.A" "$o/.config" "defconfig-$name: olddefconfig keeps the loaded .config"
done

# The research recipe's values reach include/generated/autoconf.h.
h=$tmp/gpt2-r-mlp-prune/include/generated/autoconf.h
if [ -f "$h" ]; then
	has_line "$h" '#define CONFIG_GPT2_BLOCK_SIZE 1024' "gpt2-r-mlp-prune: CONFIG_GPT2_BLOCK_SIZE 1024"
	has_line "$h" '#define CONFIG_LEARNING_RATE "6e-4"' "gpt2-r-mlp-prune: CONFIG_LEARNING_RATE \"6e-4\""
	has_line "$h" '#define CONFIG_TRACKER_PROJECT "gpt2-r-mlp-prune"' \
		"gpt2-r-mlp-prune: CONFIG_TRACKER_PROJECT \"gpt2-r-mlp-prune\""
	has_line "$tmp/gpt2-r-mlp-prune/include/generated/kgpt_config.h" '#define CONFIG_LEARNING_RATE_F (6e-4)' \
		"gpt2-r-mlp-prune: CONFIG_LEARNING_RATE_F (6e-4) in kgpt_config.h"
else
	fail "gpt2-r-mlp-prune: include/generated/autoconf.h exists"
fi

# The default recipe is loaded when there is no .config.
o=$tmp/implicit
run kmake O="$o" prepare
is "$RUN_RC" 0 "make prepare without a .config loads the default recipe" || show_run
like "$RUN_OUT" 'No \.config: loading defconfigs/' "it says which recipe it loads"

# list-defconfigs names every recipe.
run kmake O="$tmp/list" list-defconfigs
for name in $names; do
	like "$RUN_OUT" "defconfig-$name( |\$)" "list-defconfigs lists $name"
done

done_testing

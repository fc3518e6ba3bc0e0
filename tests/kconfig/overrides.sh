#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Build-time overrides: `make TIME=60`, `GPT2_MAX_TIME=600 make` and
# `make BASELINE=entity/project/run_id` change the generated
# include/generated/kgpt_config.h for one build, never .config.

. "$(dirname "$0")/../lib.sh"

need kconfig-conf make || done_testing
new_tmpdir tmp

o=$tmp/o
h=$o/include/generated/kgpt_config.h
run kmake O="$o" defconfig-gpt2-tiny
is "$RUN_RC" 0 "gpt2-tiny loads" || { show_run; done_testing; }
cp "$o/.config" "$tmp/config.tiny"
has_line "$h" '#define KGPT_MAX_TIME 120' "KGPT_MAX_TIME is CONFIG_GPT2_MAX_TIME (120)"

run kmake O="$o" TIME=60 prepare
is "$RUN_RC" 0 "make TIME=60 prepare succeeds" || show_run
has_line "$h" '#define KGPT_MAX_TIME 60' "make TIME=60: KGPT_MAX_TIME 60"
same_file "$tmp/config.tiny" "$o/.config" "make TIME=60: .config is unchanged"

run env GPT2_MAX_TIME=600 make -C "$srctree" --no-print-directory O="$o" prepare
is "$RUN_RC" 0 "GPT2_MAX_TIME=600 make prepare succeeds" || show_run
has_line "$h" '#define KGPT_MAX_TIME 600' "GPT2_MAX_TIME=600: KGPT_MAX_TIME 600"
same_file "$tmp/config.tiny" "$o/.config" "GPT2_MAX_TIME=600: .config is unchanged"

run kmake O="$o" prepare
is "$RUN_RC" 0 "make prepare without an override succeeds" || show_run
has_line "$h" '#define KGPT_MAX_TIME 120' "without an override KGPT_MAX_TIME is back to 120"

run kmake O="$o" TIME=1m prepare
isnt "$RUN_RC" 0 "make TIME=1m fails (whole seconds only)"
like "$RUN_ALL" 'TIME=1m' "the message names TIME and the value"
same_file "$tmp/config.tiny" "$o/.config" "make TIME=1m: .config is unchanged"

run kmake O="$o" BASELINE=my-team/gpt2-baseline/abc123 prepare
is "$RUN_RC" 0 "make BASELINE=e/p/id prepare succeeds" || show_run
has_line "$h" '#define KGPT_BASELINE_RUN_ID "my-team/gpt2-baseline/abc123"' \
	"make BASELINE=e/p/id: KGPT_BASELINE_RUN_ID is set"
same_file "$tmp/config.tiny" "$o/.config" "make BASELINE=...: .config is unchanged"

run kmake O="$o" BASELINE=not-a-run-path prepare
isnt "$RUN_RC" 0 "make BASELINE=not-a-run-path fails"
like "$RUN_ALL" 'BASELINE.*not-a-run-path' "the message names BASELINE and the value"

run kmake O="$o" prepare
has_line "$h" '#define KGPT_BASELINE_RUN_ID ""' "without an override the baseline is empty again"

# No bound in .config: a time budget on the command line is enough
# (the error message itself suggests make TIME=60).
sed -i -e 's/^CONFIG_GPT2_MAX_TIME=.*/CONFIG_GPT2_MAX_TIME=0/' \
       -e 's/^CONFIG_GPT2_MAX_ITERS=.*/CONFIG_GPT2_MAX_ITERS=0/' "$o/.config"
cp "$o/.config" "$tmp/config.nobound"
run kmake O="$o" prepare
isnt "$RUN_RC" 0 "no time or step bound: make prepare fails"
like "$RUN_ALL" 'CONFIG_GPT2_MAX_TIME.*CONFIG_GPT2_MAX_ITERS' "the message names both symbols"
same_file "$tmp/config.nobound" "$o/.config" "no bound: .config is unchanged"
run kmake O="$o" TIME=30 prepare
is "$RUN_RC" 0 "no bound in .config: make TIME=30 prepare succeeds" || show_run
has_line "$h" '#define KGPT_MAX_TIME 30' "no bound in .config: KGPT_MAX_TIME 30"
same_file "$tmp/config.nobound" "$o/.config" "make TIME=30: .config is unchanged"

done_testing

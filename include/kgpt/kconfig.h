/* SPDX-License-Identifier: MIT */
/*
 * IS_ENABLED(CONFIG_FOO): 1 when CONFIG_FOO is defined to 1 in the
 * generated header, 0 otherwise, usable in C expressions and in #if.
 * Same construction as the Linux kernel's include/linux/kconfig.h:
 * a defined symbol expands to "1", which pastes into a placeholder that
 * inserts an extra argument, so the second argument picked is 1.
 */
#ifndef KGPT_KCONFIG_H
#define KGPT_KCONFIG_H

#define __ARG_PLACEHOLDER_1 0,
#define __take_second_arg(__ignored, val, ...) val
#define __is_defined(x)			___is_defined(x)
#define ___is_defined(val)		____is_defined(__ARG_PLACEHOLDER_##val)
#define ____is_defined(arg1_or_junk)	__take_second_arg(arg1_or_junk 1, 0)

#define IS_ENABLED(option) __is_defined(option)

#endif /* KGPT_KCONFIG_H */

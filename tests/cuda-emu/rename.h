/* SPDX-License-Identifier: MIT */
/*
 * Forced on the kernels/cuda sources that tests/cuda-emu/test_layers.cpp
 * runs (g++ -include): their contract functions become emu_*, so that the
 * test links them beside the CPU backend's, which it compares them with.
 */
#define encoder_forward		emu_encoder_forward
#define encoder_backward	emu_encoder_backward
#define layernorm_forward	emu_layernorm_forward
#define layernorm_backward	emu_layernorm_backward
#define gelu_forward		emu_gelu_forward
#define gelu_backward		emu_gelu_backward
#define residual_forward	emu_residual_forward
#define dropout_forward		emu_dropout_forward
#define dropout_backward	emu_dropout_backward
#define scale_inplace		emu_scale_inplace
#define scale_act_inplace	emu_scale_act_inplace
#define sumsq			emu_sumsq
#define rmlp_act_forward	emu_rmlp_act_forward
#define rmlp_act_backward	emu_rmlp_act_backward
#define rattn_scale_forward	emu_rattn_scale_forward
#define rattn_scale_backward	emu_rattn_scale_backward
#define rattn_restart_forward	emu_rattn_restart_forward
#define rattn_restart_backward	emu_rattn_restart_backward

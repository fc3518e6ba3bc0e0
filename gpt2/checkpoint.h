/* SPDX-License-Identifier: MIT */
/*
 * Checkpoints: saving and restoring a training run.
 *
 * A checkpoint is a directory RUN/checkpoints/step_NNNNNN/ holding
 *
 *   model.bin  the 16 llm.c tensors in llm.c's float32 format (header
 *              int32[256]: [0] 20240326, [1] 3, [2] maxT, [3] V, [4] L,
 *              [5] NH, [6] C, [7] Vp; then the tensors in llm.c's order),
 *              so llm.c's tools read it. They read GPT-2's tensors
 *              only: a model whose lm_head is untied, or whose R-MLP
 *              has mixer or gates, is more than model.bin (state.bin
 *              holds the rest), and llm.c computes the model without
 *              those parts. A tensor this
 *              configuration does not have (the linear biases with
 *              CONFIG_GPT2_BIAS=n) is written as zeros of llm.c's size.
 *              When the MLP width D_ff is not 4 * n_embd (R-MLP with
 *              CONFIG_RMLP_EXPANSION != 4), header[8] holds D_ff and the
 *              MLP tensors have that width; llm.c cannot read such a file.
 *   state.bin  what llm.c's format cannot hold: the configuration
 *              fingerprint (every compile-time size and mechanism symbol
 *              as a named field), kgpt's own tensors (lm_head, mixw,
 *              w_std, w_rec, gate_alpha, kv_rho), the AdamW moments m and
 *              v, the optimizer's own section (gpt2/optim.h: empty for
 *              AdamW, its size in the header), the step counter and the
 *              caller's trainer state (an opaque blob), closed by a CRC-32C
 *              of everything before it.
 *   DONE       the completion marker, written last: the size and CRC-32C
 *              of model.bin and state.bin. A directory without it is an
 *              unfinished checkpoint and is never loaded.
 *
 * Writing is atomic and loses nothing: the files are written into
 * checkpoints/.tmp-step_NNNNNN/ (every write checked, each file fsync'ed),
 * DONE last, the directory fsync'ed and then renamed into place, and
 * checkpoints/ fsync'ed. Older checkpoints are deleted only after the new
 * one is complete. A crash at any moment leaves the previous complete
 * checkpoint untouched; a leftover temporary directory is removed by the
 * next save.
 *
 * All functions return 0 or a negative errno code, print what went wrong
 * on stderr ("kgpt: " + a message naming the file and the problem) and
 * never abort. The message of the last error is also kept for callers and
 * tests (ckpt_last_error()). Codes used:
 *   -ENOENT   no such file, or no checkpoint / no DONE marker
 *   -EBADMSG  a damaged file: bad magic, truncated, wrong size, checksum
 *   -EINVAL   an intact file of another configuration (header or
 *             fingerprint field differs) or another trainer-state size
 *   -ENOSPC, -EDQUOT, -EFBIG, -EACCES, -EROFS, -EIO, ...  from the system
 *
 * Files are little-endian (the host order; big-endian hosts are refused at
 * compile time). Units: sizes in bytes unless said otherwise, tensors in
 * float32 elements.
 */
#ifndef KGPT_GPT2_CHECKPOINT_H
#define KGPT_GPT2_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include "gpt2/gpt2.h"

#define CKPT_LLMC_MAGIC		20240326	/* llm.c model file, header[0] */
#define CKPT_LLMC_VERSION	3		/* float32, padded vocabulary */
#define CKPT_LLMC_HEADER	256		/* int32 entries */
#define CKPT_STATE_VERSION	1
#define CKPT_KEEP_DEFAULT	2		/* newest complete + the previous */
#define CKPT_STATE_ANY		((size_t)-1)	/* ckpt_load(): any trainer state */

/*
 * Save model m (parameters, optimizer state m->opt, m->step) and the caller's
 * trainer state (state_len bytes at trainer_state; state_len 0 allowed)
 * as run_dir/checkpoints/step_NNNNNN (NNNNNN = m->step, six digits or
 * more), creating checkpoints/ if needed. An existing checkpoint of the
 * same step is replaced atomically. After the new checkpoint is complete,
 * only the `keep` newest complete checkpoints are kept (keep <= 0: keep
 * all); checkpoints of later steps than m->step (a timeline abandoned by
 * a resume) and leftover temporary directories are removed as well.
 * Returns 0; on error (disk full, unwritable directory, ...) nothing
 * older is touched and the partial temporary directory is removed.
 */
int ckpt_save(const char *run_dir, const struct gpt2 *m,
	      const void *trainer_state, size_t state_len, int keep);

/*
 * Find the newest complete checkpoint of run_dir: DONE present, sizes,
 * magics and checksums of model.bin and state.bin verified. A damaged or
 * incomplete one is skipped with a warning naming it and what is wrong.
 * Writes its directory path into path (len bytes). Returns 0, -ENOENT when
 * run_dir has no checkpoint at all (quietly), -EBADMSG when it has some
 * but none is usable, -EINVAL when the newest intact one is of a format
 * version this trainer does not read, -ENAMETOOLONG when path is too
 * small.
 */
int ckpt_find_latest(const char *run_dir, char *path, size_t len);

/*
 * Verify one checkpoint directory without loading it (the checks of
 * ckpt_find_latest; not the configuration). Returns 0, -ENOENT (no DONE
 * marker or a missing file), -EBADMSG (damaged) or -EINVAL (a file
 * format version this trainer does not read).
 */
int ckpt_verify(const char *ckpt_dir);

/*
 * Load checkpoint directory ckpt_dir into m, which gpt2_init() has
 * allocated for the compiled configuration: parameters, optimizer state,
 * m->step, and the trainer state (state_len bytes, which must equal the
 * length saved). Every header and fingerprint field is checked against
 * the compiled configuration first (a field the file lacks counts as 0:
 * a mechanism newer than the file, off); a mismatch names the field, the
 * file's value and the compiled value, returns -EINVAL and leaves m
 * untouched. A damaged file returns -EBADMSG; m's parameters and moments
 * are then undefined (load another checkpoint or reinitialise), while
 * trainer_state is written only after every check passed. Readers that do
 * not keep a trainer state (build/generate) pass trainer_state NULL and
 * state_len CKPT_STATE_ANY: the state of any length is checked and
 * dropped.
 */
int ckpt_load(const char *ckpt_dir, struct gpt2 *m, void *trainer_state,
	      size_t state_len);

/*
 * ckpt_find_latest() + ckpt_load(), falling back to the next older
 * complete checkpoint when loading the newest one finds damage. A
 * configuration mismatch (-EINVAL) is not a reason to fall back: it is
 * returned at once. The directory loaded is written into path (len
 * bytes; path may be NULL). Returns as ckpt_find_latest() / ckpt_load().
 */
int ckpt_load_latest(const char *run_dir, struct gpt2 *m, void *trainer_state,
		     size_t state_len, char *path, size_t len);

/*
 * Write m's parameters as an llm.c model file (format above) at file,
 * atomically (a temporary file in the same directory, fsync, rename,
 * fsync of the directory). Returns 0 or a negative errno code; on error
 * an existing file is left as it was.
 */
int ckpt_write_llmc(const char *file, const struct gpt2 *m);

/*
 * Read an llm.c model file (version 3, float32 with padded vocabulary)
 * into m's parameters, checking every header field against the compiled
 * configuration (-EINVAL naming the field otherwise, m untouched) and the
 * file size against the header (-EBADMSG: "truncated: expected N bytes,
 * found M"). Parameters only: kgpt's own tensors keep their
 * initialisation, except an untied lm_head, which starts as a copy of
 * wte; AdamW moments and m->step are not changed. The linear biases in
 * the file are dropped when the trainer is compiled without them (with a
 * warning if they are not zero); the LayerNorm biases are loaded and stay
 * frozen at the file's values.
 */
int ckpt_load_llmc(const char *file, struct gpt2 *m);

/*
 * The message of the last error or warning of this module (without the
 * "kgpt: " prefix), "" if none yet. Valid until the next call.
 */
const char *ckpt_last_error(void);

/* CRC-32C (Castagnoli) of n bytes continuing crc (start with 0). */
uint32_t ckpt_crc32c(uint32_t crc, const void *buf, size_t n);

#endif /* KGPT_GPT2_CHECKPOINT_H */

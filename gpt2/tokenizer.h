/* SPDX-License-Identifier: MIT */
/*
 * GPT-2 byte-level BPE tokenizer (Radford et al. 2019), both directions.
 *
 * Text is handled as raw bytes. Encoding:
 *  1. the text is pre-split with GPT-2's regular expression
 *       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *     (PCRE2, UTF + Unicode properties, JIT-compiled). Bytes that are not
 *     valid UTF-8 never match; each such byte becomes its own pre-token
 *     and so its own single-byte token;
 *  2. each pre-token starts as one token per byte and is merged pairwise
 *     by the ranks of vocab.bpe (lowest rank first, all occurrences left
 *     to right), exactly as OpenAI's encoder.py. Results are cached per
 *     pre-token.
 * The literal text "<|endoftext|>" is ordinary text here; id 50256
 * (TOKENIZER_EOT) is only ever inserted by the data preparation as a
 * document delimiter.
 *
 * Decoding maps every id to its raw bytes and concatenates them: the
 * result may be invalid UTF-8 when ids split a character; utf8_sanitize()
 * makes a printable copy.
 *
 * A struct tokenizer is not safe for concurrent tokenizer_encode() calls
 * (the pre-token cache is updated); decoding only reads it.
 */
#ifndef KGPT_TOKENIZER_H
#define KGPT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define TOKENIZER_VOCAB		50257	/* ids 0..50256 */
#define TOKENIZER_EOT		50256	/* <|endoftext|> */
#define TOKENIZER_N_MERGES	50000	/* lines of vocab.bpe after the header */

struct tok_merges;	/* (left id, right id) -> (rank, merged id) */
struct tok_cache;	/* pre-token bytes -> ids */

struct tokenizer {
	/* Raw bytes of id i: bytes + off[i], length off[i + 1] - off[i]. */
	char *bytes;
	uint32_t *off;			/* TOKENIZER_VOCAB + 1 entries */
	int byte_id[256];		/* id of the token made of one byte */
	struct tok_merges *merges;
	struct tok_cache *cache;
	void *re;			/* pcre2_code_8 * */
	void *md;			/* pcre2_match_data_8 * */
	int jit;			/* 1 when the regex runs JIT-compiled */
};

/*
 * tokenizer_load - read DIR/encoder.json and DIR/vocab.bpe.
 * @t: zeroed or uninitialised struct, filled on success.
 * @dir: directory holding both files (as put there by `make data`).
 *
 * encoder.json must map exactly TOKENIZER_VOCAB distinct token strings to
 * the ids 0..50256; vocab.bpe must hold merges "A B" whose parts and whose
 * concatenation are tokens of encoder.json.
 * Returns 0, or a negative errno code (-ENOENT missing file, -EINVAL
 * corrupt file, -ENOMEM, -EIO) after printing to stderr a message that
 * names the file and what to do. On error nothing needs freeing
 * (tokenizer_free() is harmless).
 */
int tokenizer_load(struct tokenizer *t, const char *dir);

/*
 * tokenizer_free - release everything tokenizer_load() allocated.
 * Safe on a zeroed struct and on one whose load failed; leaves it zeroed.
 */
void tokenizer_free(struct tokenizer *t);

/*
 * tokenizer_encode - text to GPT-2 token ids.
 * @text: @len bytes, any content (NUL bytes and invalid UTF-8 included).
 * @ids: on success *ids is a malloc()ed array of *n ids, each in
 *       [0, TOKENIZER_VOCAB); the caller frees it. *ids may be NULL when
 *       *n == 0.
 * Returns 0, or -ENOMEM / -EIO (regex engine failure), with a message.
 */
int tokenizer_encode(struct tokenizer *t, const char *text, size_t len,
		     int **ids, size_t *n);

/*
 * tokenizer_decode - token ids to bytes.
 * @ids: @n ids, each in [0, TOKENIZER_VOCAB).
 * @out: on success a malloc()ed buffer of *len bytes plus a terminating
 *       NUL (not counted in *len); the caller frees it. The bytes are not
 *       necessarily valid UTF-8 (see utf8_sanitize()).
 * Returns 0, -EINVAL (an id out of range; a message gives its position
 * and value) or -ENOMEM.
 */
int tokenizer_decode(const struct tokenizer *t, const int *ids, size_t n,
		     char **out, size_t *len);

/*
 * tokenizer_token - raw bytes of one id, for streaming generation.
 * Returns a pointer into @t (valid until tokenizer_free(), not NUL
 * terminated) and sets *len to its length in bytes (1..), or returns NULL
 * with *len = 0 when @id is outside [0, TOKENIZER_VOCAB).
 */
const char *tokenizer_token(const struct tokenizer *t, int id, size_t *len);

/*
 * utf8_sanitize - printable copy of @len bytes of @s.
 * Valid UTF-8 is copied unchanged; each maximal invalid sequence (as
 * Unicode's "maximal subpart" rule defines it: stray continuation bytes,
 * truncated sequences, overlong forms, surrogates, > U+10FFFF) becomes
 * U+FFFD (EF BF BD). Returns a malloc()ed NUL-terminated string, or NULL
 * when out of memory. NUL bytes in @s are copied as they are.
 */
char *utf8_sanitize(const char *s, size_t len);

#endif /* KGPT_TOKENIZER_H */

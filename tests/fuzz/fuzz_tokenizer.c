// SPDX-License-Identifier: MIT
/*
 * Fuzz target: the GPT-2 tokenizer on arbitrary bytes (NUL bytes and
 * invalid UTF-8 included). Encoding must succeed with every id in range,
 * decoding the ids must give the input back byte for byte, and
 * utf8_sanitize() must be idempotent (what it returns is valid UTF-8).
 * The vocabulary is loaded once from $KGPT_DATA_MIRROR (default
 * ../shared/data), as the unit tests do.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2/tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tokenizer tok;

static void __attribute__((noreturn)) fail(const char *what, size_t size)
{
	fprintf(stderr, "fuzz_tokenizer: %s (input of %zu bytes)\n", what, size);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("KGPT_DATA_MIRROR");

	if (!dir || !*dir)
		dir = "../shared/data";
	if (tokenizer_load(&tok, dir)) {
		fprintf(stderr, "fuzz_tokenizer: no vocabulary in %s (set KGPT_DATA_MIRROR)\n",
			dir);
		exit(1);
	}
	return 0;
}

/* Sanitising what utf8_sanitize() returned changes nothing. */
static void check_sanitize(const uint8_t *data, size_t size)
{
	char *once, *twice;
	size_t n;

	once = utf8_sanitize((const char *)data, size);
	if (!once)
		fail("utf8_sanitize() returned NULL", size);
	n = strlen(once);
	/* NUL bytes are copied, so strlen() stops at the first one */
	if (memchr(data, 0, size) == NULL) {
		twice = utf8_sanitize(once, n);
		if (!twice || strcmp(once, twice))
			fail("utf8_sanitize() is not idempotent", size);
		free(twice);
	}
	free(once);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	size_t n = 0, len = 0;
	int *ids = NULL;
	char *out = NULL;

	if (tokenizer_encode(&tok, text, size, &ids, &n))
		fail("tokenizer_encode() failed", size);
	if (size && !n)
		fail("no ids for a non-empty input", size);
	if (n > size)
		fail("more ids than input bytes", size);
	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= TOKENIZER_VOCAB)
			fail("an id is out of range", size);
	if (tokenizer_decode(&tok, ids, n, &out, &len))
		fail("tokenizer_decode() failed", size);
	if (len != size || memcmp(out, data, size))
		fail("decode(encode(x)) != x", size);
	free(out);
	free(ids);
	check_sanitize(data, size);
	return 0;
}

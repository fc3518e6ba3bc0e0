// SPDX-License-Identifier: MIT
/*
 * GPT-2 tokenizer tests: the reference vectors, round trips, the
 * tinyshakespeare token count, invalid UTF-8, sanitising and errors.
 * Reference data: $KGPT_DATA_MIRROR (default ../shared/data).
 */
#include "gpt2/tokenizer.h"
#include "kgpt/proc.h"
#include "tests/tap.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *data_dir(void)
{
	const char *d = getenv("KGPT_DATA_MIRROR");

	return d && *d ? d : "../shared/data";
}

static char *read_file(const char *dir, const char *name, size_t *len)
{
	char path[4096];
	char *buf = NULL;
	long n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET))
		goto out;
	buf = malloc(n + 1);
	if (buf && fread(buf, 1, n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf) {
		buf[n] = '\0';
		*len = n;
	}
out:
	fclose(f);
	return buf;
}

static int write_file(const char *dir, const char *name, const char *p,
		      size_t n)
{
	char path[4096];
	FILE *f;
	int ok_;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		return -1;
	ok_ = fwrite(p, 1, n, f) == n;
	return fclose(f) == 0 && ok_ ? 0 : -1;
}

static void remove_file(const char *dir, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
}

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Standard base64 with '=' padding; returns malloc()ed bytes or NULL. */
static char *b64_decode(const char *s, size_t *out_len)
{
	size_t n = strlen(s), o = 0;
	char *out = malloc(n / 4 * 3 + 3);
	uint32_t acc = 0;
	int bits = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n && s[i] != '='; i++) {
		int v = b64_value((unsigned char)s[i]);

		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	*out_len = o;
	return out;
}

static int ids_equal(const int *a, size_t na, const cJSON *arr)
{
	const cJSON *it;
	size_t i = 0;

	if ((size_t)cJSON_GetArraySize(arr) != na)
		return 0;
	cJSON_ArrayForEach(it, arr)
		if (!cJSON_IsNumber(it) || it->valueint != a[i++])
			return 0;
	return 1;
}

/* decode(encode(p)) == p */
static int round_trip(struct tokenizer *t, const char *p, size_t n,
		      size_t *ntok)
{
	size_t nids, len;
	char *out = NULL;
	int *ids = NULL, good;

	good = !tokenizer_encode(t, p, n, &ids, &nids) &&
	       !tokenizer_decode(t, ids, nids, &out, &len) &&
	       len == n && !memcmp(out, p, n);
	if (ntok)
		*ntok = nids;
	free(ids);
	free(out);
	return good;
}

static void test_one_vector(struct tokenizer *t, const char *line)
{
	cJSON *j = cJSON_Parse(line);
	const cJSON *name = cJSON_GetObjectItem(j, "name");
	const cJSON *b64 = cJSON_GetObjectItem(j, "text_b64");
	const cJSON *want = cJSON_GetObjectItem(j, "ids");
	const char *nm = cJSON_IsString(name) ? name->valuestring : "?";
	size_t len = 0, n = 0;
	char *text = NULL;
	int *ids = NULL;

	if (!cJSON_IsString(b64) || !cJSON_IsArray(want) ||
	    !(text = b64_decode(b64->valuestring, &len))) {
		ok(0, "vector %s: well-formed line", nm);
		goto out;
	}
	ok(!tokenizer_encode(t, text, len, &ids, &n) &&
	   ids_equal(ids, n, want), "vector %s: ids match (%zu tokens)", nm, n);
	ok(round_trip(t, text, len, NULL), "vector %s: round trip", nm);
out:
	free(ids);
	free(text);
	cJSON_Delete(j);
}

static void test_vectors(struct tokenizer *t)
{
	size_t len, count = 0;
	char *all = read_file(data_dir(), "tokenizer-vectors.jsonl", &len);
	char *line, *save = NULL;

	if (!ok(all != NULL, "read tokenizer-vectors.jsonl"))
		return;
	for (line = strtok_r(all, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!*line)
			continue;
		test_one_vector(t, line);
		count++;
	}
	ok(count >= 25, "read %zu reference vectors", count);
	free(all);
}

static void test_shakespeare(struct tokenizer *t)
{
	size_t len, n = 0, n2 = 0;
	char *text = read_file(data_dir(), "tinyshakespeare.txt", &len);
	double t0, dt;
	int *ids = NULL;

	if (!ok(text != NULL, "read tinyshakespeare.txt"))
		return;
	t0 = kgpt_now_s();
	ok(!tokenizer_encode(t, text, len, &ids, &n) && n == 338025,
	   "tinyshakespeare.txt is 338025 tokens (got %zu)", n);
	dt = kgpt_now_s() - t0;
	diag("encoded %zu bytes in %.3f s: %.0f tokens/s, %.1f MB/s", len, dt,
	     n / dt, len / dt / 1e6);
	free(ids);
	ok(round_trip(t, text, len, &n2) && n2 == n,
	   "tinyshakespeare.txt round trip (second pass from the cache)");
	free(text);
}

static int has_id(const int *ids, size_t n, int id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

static void test_endoftext_is_text(struct tokenizer *t)
{
	static const char s[] = "end.<|endoftext|>The start";
	size_t n, len;
	const char *tok;
	int *ids = NULL;

	ok(!tokenizer_encode(t, s, strlen(s), &ids, &n) && n > 3 &&
	   !has_id(ids, n, TOKENIZER_EOT),
	   "\"<|endoftext|>\" in text is ordinary text, not id 50256");
	free(ids);
	ok(round_trip(t, s, strlen(s), NULL), "\"<|endoftext|>\" round trip");
	tok = tokenizer_token(t, TOKENIZER_EOT, &len);
	ok(tok && len == 13 && !memcmp(tok, "<|endoftext|>", 13),
	   "id 50256 decodes to \"<|endoftext|>\"");
}

static void test_invalid_utf8(struct tokenizer *t)
{
	static const char s[] = "\xff\xfe abc \xc3";
	static const char z[] = "a\0b \x80\x80\xed\xa0\x80 \xf4\x90\x80\x80";
	size_t n = 0;
	int *ids = NULL;

	ok(!tokenizer_encode(t, s, sizeof(s) - 1, &ids, &n) && n >= 5 &&
	   ids[0] == t->byte_id[0xff] && ids[1] == t->byte_id[0xfe] &&
	   ids[n - 1] == t->byte_id[0xc3],
	   "invalid UTF-8 bytes encode byte-wise (%zu tokens)", n);
	free(ids);
	ok(round_trip(t, s, sizeof(s) - 1, NULL),
	   "invalid UTF-8 round trip gives the same bytes");
	ok(round_trip(t, z, sizeof(z) - 1, NULL),
	   "NUL, stray continuations, surrogate and > U+10FFFF round trip");
}

static void test_split_char(struct tokenizer *t)
{
	static const char s[] = "\xe4\xbd\xa0";	/* U+4F60, one CJK char */
	size_t n = 0, len = 0;
	char *out = NULL, *clean;
	int *ids = NULL;

	if (!ok(!tokenizer_encode(t, s, 3, &ids, &n) && n >= 2,
		"a CJK char is several tokens (%zu)", n))
		goto out;
	ok(!tokenizer_decode(t, ids, 1, &out, &len) && len >= 1 && len < 3 &&
	   !memcmp(out, s, len), "an id splitting a char decodes to raw bytes");
	clean = out ? utf8_sanitize(out, len) : NULL;
	ok(clean && !strcmp(clean, "\xef\xbf\xbd"),
	   "the partial char sanitises to U+FFFD");
	free(clean);
out:
	free(out);
	free(ids);
}

static void test_sanitize(void)
{
	static const struct {
		const char *in, *want;
	} c[] = {
		{ "plain caf\xc3\xa9 \xf0\x9f\x98\x80", "plain caf\xc3\xa9 \xf0\x9f\x98\x80" },
		{ "a\xff" "b", "a\xef\xbf\xbd" "b" },
		{ "\xe2\x82", "\xef\xbf\xbd" },		/* truncated: one */
		{ "\xe2\x82x", "\xef\xbf\xbdx" },
		{ "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },	/* overlong */
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\x80\xbf", "\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char *s = utf8_sanitize(c[i].in, strlen(c[i].in));

		ok(s && !strcmp(s, c[i].want), "utf8_sanitize case %zu", i);
		free(s);
	}
}

static void test_decode_errors(struct tokenizer *t)
{
	int bad[] = { 15496, TOKENIZER_VOCAB }, neg[] = { -1 };
	size_t len = 1;
	char *out = (char *)1;

	ok(tokenizer_decode(t, bad, 2, &out, &len) == -EINVAL && !out &&
	   len == 0, "decode of id 50257 is -EINVAL");
	ok(tokenizer_decode(t, neg, 1, &out, &len) == -EINVAL,
	   "decode of id -1 is -EINVAL");
	ok(tokenizer_token(t, TOKENIZER_VOCAB, &len) == NULL && len == 0,
	   "tokenizer_token(50257) is NULL");
	ok(!tokenizer_decode(t, NULL, 0, &out, &len) && len == 0 && out &&
	   !*out, "decode of no ids is the empty string");
	free(out);
}

/* A vocab dir made of the given contents; NULL content = file absent. */
static int vocab_dir_with(const char *enc, size_t elen, const char *bpe,
			  size_t blen)
{
	char dir[] = "/tmp/kgpt-tok-XXXXXX";
	struct tokenizer t;
	int rc;

	if (!mkdtemp(dir))
		return 1;
	if (enc)
		write_file(dir, "encoder.json", enc, elen);
	if (bpe)
		write_file(dir, "vocab.bpe", bpe, blen);
	fprintf(stderr, "(expected error follows)\n");
	rc = tokenizer_load(&t, dir);
	tokenizer_free(&t);
	remove_file(dir, "encoder.json");
	remove_file(dir, "vocab.bpe");
	rmdir(dir);
	return rc;
}

static void test_load_errors(void)
{
	static const char bad_bpe[] = "#version: 0.2\nzz\xc3\xbf qq\n";
	size_t elen = 0, blen = 0;
	char *enc = read_file(data_dir(), "encoder.json", &elen);
	char *bpe = read_file(data_dir(), "vocab.bpe", &blen);
	struct tokenizer t;
	int rc;

	fprintf(stderr, "(expected error follows)\n");
	rc = tokenizer_load(&t, "/nonexistent/kgpt/vocab");
	ok(rc == -ENOENT, "missing vocab dir gives -ENOENT (%d)", rc);
	tokenizer_free(&t);
	if (!enc || !bpe) {
		ok(0, "read the vocabulary for the corruption tests");
		goto out;
	}
	rc = vocab_dir_with(enc, elen, NULL, 0);
	ok(rc == -ENOENT, "missing vocab.bpe gives -ENOENT (%d)", rc);
	rc = vocab_dir_with(enc, elen / 2, bpe, blen);
	ok(rc == -EINVAL, "truncated encoder.json gives -EINVAL (%d)", rc);
	rc = vocab_dir_with("[1, 2, 3]", 9, bpe, blen);
	ok(rc == -EINVAL, "encoder.json of the wrong shape gives -EINVAL (%d)", rc);
	rc = vocab_dir_with(enc, elen, bpe, blen / 2);
	ok(rc == -EINVAL, "truncated vocab.bpe gives -EINVAL (%d)", rc);
	rc = vocab_dir_with(enc, elen, bad_bpe, strlen(bad_bpe));
	ok(rc == -EINVAL, "vocab.bpe with unknown tokens gives -EINVAL (%d)", rc);
	rc = vocab_dir_with(enc, elen, "", 0);
	ok(rc == -EINVAL, "empty vocab.bpe gives -EINVAL (%d)", rc);
out:
	free(enc);
	free(bpe);
}

int main(void)
{
	struct tokenizer t;
	int rc = tokenizer_load(&t, data_dir());

	if (!ok(rc == 0, "load the vocabulary from %s", data_dir())) {
		diag("set KGPT_DATA_MIRROR to the directory with encoder.json");
		return tap_done();
	}
	diag("regex JIT: %s", t.jit ? "on" : "off (interpreter)");
	test_vectors(&t);
	test_shakespeare(&t);
	test_endoftext_is_text(&t);
	test_invalid_utf8(&t);
	test_split_char(&t);
	test_sanitize();
	test_decode_errors(&t);
	tokenizer_free(&t);
	test_load_errors();
	return tap_done();
}

// SPDX-License-Identifier: MIT
/*
 * The W&B protocol subset kgpt speaks (tracker/wandb.h, docs/wandb.md):
 * UpsertBucket over GraphQL to create the run, file_stream to append
 * history rows, the summary and the end of the run. Everything to send is
 * on disk in the run folder first, so this file only moves lines from the
 * spool to the server and records what the server acknowledged.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <curl/curl.h>

#include "tracker/wandb.h"

#define WB_MAX_LINES	1000		/* rows per file_stream request */
#define WB_MAX_BYTES	(8 << 20)	/* content per request (server: ~10 MiB) */

/* ------------------------------------------------------------------------
 * Files of the run folder
 */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc(n + 1);
		if (buf && fread(buf, 1, n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else if (buf) {
			buf[n] = 0;
		}
	}
	fclose(f);
	return buf;
}

/* Write text to dir/name through a temporary file and rename(). */
static int write_atomic(const char *dir, const char *name, const char *text)
{
	char path[4200], tmp[4220];
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	if (fputs(text, f) < 0 || fflush(f))
		rc = -errno;
	if (fclose(f) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	return rc;
}

static int write_json(const char *dir, const char *name, const cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	int rc;

	if (!s)
		return -ENOMEM;
	rc = write_atomic(dir, name, s);
	free(s);
	return rc;
}

static cJSON *read_json(const char *dir, const char *name)
{
	char path[4200], *s;
	cJSON *o;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	s = slurp(path);
	if (!s)
		return NULL;
	o = cJSON_Parse(s);
	free(s);
	return o;
}

static const char *run_str(const struct wb_sender *s, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(s->run, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ------------------------------------------------------------------------
 * Settings: base URL and key
 */
void wb_base_url(char *base, size_t n)
{
	const char *e = getenv("WANDB_BASE_URL");
	size_t l;

	snprintf(base, n, "%s", e && *e ? e : "https://api.wandb.ai");
	l = strlen(base);
	while (l > 0 && base[l - 1] == '/')
		base[--l] = 0;
}

/* The host of a URL ("https://h:1/x" -> "h") into host[n]. */
static void url_host(const char *url, char *host, size_t n)
{
	const char *p = strstr(url, "://");
	size_t l;

	p = p ? p + 3 : url;
	l = strcspn(p, ":/");
	snprintf(host, n, "%.*s", (int)l, p);
}

/* The password of `machine host` in a netrc file; tokens may be on
 * several lines. Returns 0 when found. */
static int netrc_key(const char *path, const char *host, char *key, size_t n)
{
	char *text = slurp(path), *tok, *save = NULL;
	int in_host = 0, rc = -ENOKEY;

	if (!text)
		return -ENOKEY;
	for (tok = strtok_r(text, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
		if (!strcmp(tok, "machine")) {
			tok = strtok_r(NULL, " \t\r\n", &save);
			in_host = tok && !strcmp(tok, host);
		} else if (!strcmp(tok, "default")) {
			in_host = 1;
		} else if (in_host && !strcmp(tok, "password")) {
			tok = strtok_r(NULL, " \t\r\n", &save);
			if (tok) {
				snprintf(key, n, "%s", tok);
				rc = 0;
				break;
			}
		}
	}
	free(text);
	return rc;
}

int wb_api_key(const char *base, char *key, size_t n)
{
	const char *e = getenv("WANDB_API_KEY"), *netrc = getenv("NETRC"), *home = getenv("HOME");
	char host[512], path[4096];

	if (e && *e) {
		snprintf(key, n, "%s", e);
		return 0;
	}
	url_host(base, host, sizeof(host));
	if (netrc && *netrc)
		snprintf(path, sizeof(path), "%s", netrc);
	else
		snprintf(path, sizeof(path), "%s/.netrc", home ? home : "");
	return netrc_key(path, host, key, n);
}

void wb_new_run_id(char id[9])
{
	static const char set[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[8];
	int fd = open("/dev/urandom", O_RDONLY);

	if (fd < 0 || read(fd, r, sizeof(r)) != (ssize_t)sizeof(r))
		for (int i = 0; i < 8; i++)
			r[i] = (unsigned char)(rand() ^ getpid() ^ i);
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < 8; i++)
		id[i] = set[r[i] % 36];
	id[8] = 0;
}

/* ------------------------------------------------------------------------
 * HTTP
 */
struct buf {
	char *p;
	size_t n;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t add = size * nmemb;
	char *p = realloc(b->p, b->n + add + 1);

	if (!p)
		return 0;
	memcpy(p + b->n, data, add);
	b->n += add;
	p[b->n] = 0;
	b->p = p;
	return add;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct wb_sender *s = arg;
	size_t n = size * nmemb;

	if (n > 12 && !strncasecmp(data, "Retry-After:", 12))
		s->retry_after = atof(data + 12);
	return n;
}

int wb_post(struct wb_sender *s, const char *path, const char *body, char **resp)
{
	struct curl_slist *h = NULL;
	struct buf b = { 0 };
	char url[2200];
	long status = -1;
	CURLcode rc;

	*resp = NULL;
	s->retry_after = 0;
	if (!s->curl)
		s->curl = curl_easy_init();
	if (!s->curl) {
		snprintf(s->err, sizeof(s->err), "cannot start libcurl");
		return -1;
	}
	curl_easy_reset(s->curl);
	snprintf(url, sizeof(url), "%s%s", s->base, path);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "User-Agent: kgpt-wandb/1");
	curl_easy_setopt(s->curl, CURLOPT_URL, url);
	curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(s->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(s->curl, CURLOPT_USERNAME, "api");
	curl_easy_setopt(s->curl, CURLOPT_PASSWORD, s->key);
	curl_easy_setopt(s->curl, CURLOPT_TIMEOUT, (long)s->timeout_s);
	curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(s->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(s->curl, CURLOPT_HEADERDATA, s);
	rc = curl_easy_perform(s->curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(s->err, sizeof(s->err), "%s: %s", url, curl_easy_strerror(rc));
	curl_slist_free_all(h);
	*resp = b.p;
	return rc == CURLE_OK ? (int)status : -1;
}

/* 408, 429, 5xx and network errors are worth another try. */
static int retryable(int status)
{
	return status < 0 || status == 408 || status == 429 || status >= 500;
}

static enum wb_step http_fail(struct wb_sender *s, const char *what, int status, const char *resp)
{
	if (status < 0) {
		/* s->err holds curl's message */
	} else if (status == 401) {
		snprintf(s->err, sizeof(s->err), "%s: HTTP 401 from %s: the API key was refused; "
			 "set WANDB_API_KEY (or ~/.netrc) to a valid key", what, s->base);
	} else {
		snprintf(s->err, sizeof(s->err), "%s: HTTP %d from %s: %.200s", what, status,
			 s->base, resp ? resp : "");
		s->err[strcspn(s->err, "\r\n")] = 0;
	}
	if (retryable(status)) {
		s->attempt++;
		return WB_RETRY;
	}
	return WB_FATAL;
}

double wb_backoff(const struct wb_sender *s)
{
	double w = s->retry_after;

	if (w <= 0) {
		int a = s->attempt > 0 ? s->attempt - 1 : 0;

		w = a > 6 ? 60 : fmin(60, ldexp(1.0, a));
		w *= 1 + 0.25 * ((double)rand() / RAND_MAX);
	}
	return w;
}

/* ------------------------------------------------------------------------
 * The run folder's state
 */
int wb_run_create(const char *dir, const char *entity, const char *project,
		  const char *run_id, const char *name, const char *group,
		  const cJSON *config)
{
	cJSON *o = cJSON_CreateObject(), *cfg = cJSON_AddObjectToObject(o, "config");
	const cJSON *it;
	int rc;

	if (entity && *entity)
		cJSON_AddStringToObject(o, "entity", entity);
	else
		cJSON_AddNullToObject(o, "entity");
	cJSON_AddStringToObject(o, "project", project);
	cJSON_AddStringToObject(o, "run_id", run_id);
	cJSON_AddStringToObject(o, "name", name);
	if (group && *group)
		cJSON_AddStringToObject(o, "group", group);
	cJSON_ArrayForEach(it, config) {
		cJSON *w = cJSON_AddObjectToObject(cfg, it->string);

		cJSON_AddItemToObject(w, "value", cJSON_Duplicate(it, 1));
		cJSON_AddNullToObject(w, "desc");
	}
	cJSON_AddNullToObject(o, "exitcode");
	rc = write_json(dir, "wandb-run.json", o);
	cJSON_Delete(o);
	if (!rc)
		rc = write_atomic(dir, "wandb-acked.json",
				  "{\"rows\":0,\"summary\":false,\"complete\":false,\"upserted\":false}");
	return rc;
}

int wb_save_acked(struct wb_sender *s)
{
	char text[256];

	snprintf(text, sizeof(text),
		 "{\"rows\":%ld,\"summary\":%s,\"complete\":%s,\"upserted\":%s}\n", s->acked,
		 s->summary_sent ? "true" : "false", s->complete_sent ? "true" : "false",
		 s->upserted ? "true" : "false");
	return write_atomic(s->dir, "wandb-acked.json", text);
}

int wb_set_exitcode(struct wb_sender *s, int exitcode)
{
	cJSON_ReplaceItemInObject(s->run, "exitcode", cJSON_CreateNumber(exitcode));
	return write_json(s->dir, "wandb-run.json", s->run);
}

int wb_restart(struct wb_sender *s)
{
	cJSON_ReplaceItemInObject(s->run, "exitcode", cJSON_CreateNull());
	s->complete_sent = 0;
	s->upserted = 0;
	return write_json(s->dir, "wandb-run.json", s->run) ?: wb_save_acked(s);
}

int wb_sender_open(struct wb_sender *s, const char *dir)
{
	const char *t = getenv("WANDB_HTTP_TIMEOUT");
	cJSON *a;

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	s->run = read_json(dir, "wandb-run.json");
	if (!s->run || !run_str(s, "project") || !run_str(s, "run_id")) {
		cJSON_Delete(s->run);
		s->run = NULL;
		return -ENOENT;
	}
	a = read_json(dir, "wandb-acked.json");
	s->acked = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(a, "rows"));
	if (s->acked < 0)
		s->acked = 0;
	s->summary_sent = cJSON_IsTrue(cJSON_GetObjectItem(a, "summary"));
	s->complete_sent = cJSON_IsTrue(cJSON_GetObjectItem(a, "complete"));
	s->upserted = cJSON_IsTrue(cJSON_GetObjectItem(a, "upserted"));
	cJSON_Delete(a);
	s->max_lines = WB_MAX_LINES;
	s->timeout_s = t && atoi(t) > 0 ? atoi(t) : 30;
	wb_base_url(s->base, sizeof(s->base));
	if (wb_api_key(s->base, s->key, sizeof(s->key)))
		s->key[0] = 0;
	return 0;
}

void wb_sender_close(struct wb_sender *s)
{
	if (s->curl)
		curl_easy_cleanup(s->curl);
	s->curl = NULL;
	cJSON_Delete(s->run);
	s->run = NULL;
	memset(s->key, 0, sizeof(s->key));
}

/* ------------------------------------------------------------------------
 * UpsertBucket: create the run (or update it: same name).
 */
static const char upsert_query[] =
	"mutation UpsertBucket($name:String,$project:String,$entity:String,"
	"$config:JSONString,$displayName:String,$groupName:String,$jobType:String)"
	"{upsertBucket(input:{name:$name,modelName:$project,entityName:$entity,"
	"config:$config,displayName:$displayName,groupName:$groupName,jobType:$jobType})"
	"{bucket{id name displayName project{name entity{name}}} inserted}}";

static void take_str(struct wb_sender *s, const char *key, const cJSON *v)
{
	if (cJSON_IsString(v))
		cJSON_ReplaceItemInObject(s->run, key, cJSON_CreateString(v->valuestring));
}

static enum wb_step upsert(struct wb_sender *s)
{
	cJSON *body = cJSON_CreateObject(), *var, *resp = NULL, *bucket;
	const cJSON *errs;
	char *text, *out = NULL, *cfg;
	const char *g = run_str(s, "group");
	int status;
	enum wb_step ret = WB_MORE;

	cJSON_AddStringToObject(body, "query", upsert_query);
	var = cJSON_AddObjectToObject(body, "variables");
	cJSON_AddStringToObject(var, "name", run_str(s, "run_id"));
	cJSON_AddStringToObject(var, "project", run_str(s, "project"));
	if (run_str(s, "entity"))
		cJSON_AddStringToObject(var, "entity", run_str(s, "entity"));
	else
		cJSON_AddNullToObject(var, "entity");
	cfg = cJSON_PrintUnformatted(cJSON_GetObjectItem(s->run, "config"));
	cJSON_AddStringToObject(var, "config", cfg ? cfg : "{}");
	free(cfg);
	cJSON_AddStringToObject(var, "displayName", run_str(s, "name") ? run_str(s, "name") : "");
	if (g)
		cJSON_AddStringToObject(var, "groupName", g);
	cJSON_AddStringToObject(var, "jobType", "train");
	text = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	status = wb_post(s, "/graphql", text, &out);
	free(text);
	if (status < 200 || status >= 300) {
		ret = http_fail(s, "UpsertBucket", status, out);
		goto out;
	}
	resp = cJSON_Parse(out ? out : "");
	errs = cJSON_GetObjectItem(resp, "errors");
	bucket = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(resp, "data"),
							 "upsertBucket"), "bucket");
	if (cJSON_GetArraySize(errs) > 0 || !bucket) {
		const cJSON *m = cJSON_GetObjectItem(cJSON_GetArrayItem(errs, 0), "message");

		snprintf(s->err, sizeof(s->err), "UpsertBucket: the server answered %s",
			 cJSON_IsString(m) ? m->valuestring : "without a run");
		ret = WB_FATAL;
		goto out;
	}
	take_str(s, "run_id", cJSON_GetObjectItem(bucket, "name"));
	take_str(s, "project", cJSON_GetObjectItem(cJSON_GetObjectItem(bucket, "project"), "name"));
	take_str(s, "entity", cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(bucket,
				"project"), "entity"), "name"));
	write_json(s->dir, "wandb-run.json", s->run);
	s->upserted = 1;
	s->attempt = 0;
	wb_save_acked(s);
out:
	free(out);
	cJSON_Delete(resp);
	return ret;
}

/* ------------------------------------------------------------------------
 * file_stream
 */

/* Move s->pos_* to the first unacknowledged line. Returns 0, or -1 when
 * the spool does not reach it yet. */
static int seek_acked(struct wb_sender *s, FILE *f)
{
	int c;

	if (s->pos_line > s->acked) {
		s->pos_line = 0;
		s->pos_byte = 0;
	}
	if (fseek(f, s->pos_byte, SEEK_SET))
		return -1;
	while (s->pos_line < s->acked) {
		long b = ftell(f);

		while ((c = getc(f)) != EOF && c != '\n')
			;
		if (c == EOF) {
			fseek(f, b, SEEK_SET);
			return -1;
		}
		s->pos_line++;
		s->pos_byte = ftell(f);
	}
	return 0;
}

/* Up to s->max_lines complete lines from the spool at the acked position
 * into arr; *more set when lines were left for the next request. */
static int read_batch(struct wb_sender *s, cJSON *arr, int *more)
{
	char path[4200], *line = NULL;
	size_t cap = 0, bytes = 0;
	ssize_t n;
	int lines = 0;
	FILE *f;

	*more = 0;
	snprintf(path, sizeof(path), "%s/wandb-spool.jsonl", s->dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (seek_acked(s, f))
		goto out;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] != '\n')
			break;		/* being written */
		if (lines >= s->max_lines || (lines > 0 && bytes + n > WB_MAX_BYTES)) {
			*more = 1;
			break;
		}
		line[n - 1] = 0;
		cJSON_AddItemToArray(arr, cJSON_CreateString(line));
		bytes += n;
		lines++;
	}
out:
	free(line);
	fclose(f);
	return lines;
}

long wb_pending(struct wb_sender *s)
{
	char path[4200];
	FILE *f;
	long n = 0;
	int c;

	snprintf(path, sizeof(path), "%s/wandb-spool.jsonl", s->dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n > s->acked ? n - s->acked : 0;
}

enum wb_step wb_step(struct wb_sender *s, int final, int heartbeat)
{
	cJSON *body, *files, *rows;
	char *text, *out = NULL, *summary = NULL, path[4200], fs[1200];
	int n, more, status, has_summary = 0, complete = 0;
	const cJSON *ec;
	enum wb_step ret;

	if (s->complete_sent)
		return WB_DONE;
	if (!s->key[0]) {
		snprintf(s->err, sizeof(s->err), "no API key: set WANDB_API_KEY or add `machine "
			 "<host> password <key>` for %s to ~/.netrc", s->base);
		return WB_FATAL;
	}
	if (!s->upserted)
		return upsert(s);

	body = cJSON_CreateObject();
	files = cJSON_AddObjectToObject(body, "files");
	rows = cJSON_CreateArray();
	n = read_batch(s, rows, &more);
	if (n) {
		cJSON *h = cJSON_AddObjectToObject(files, "wandb-history.jsonl");

		cJSON_AddNumberToObject(h, "offset", s->acked);
		cJSON_AddItemToObject(h, "content", rows);
	} else {
		cJSON_Delete(rows);
	}
	snprintf(path, sizeof(path), "%s/wandb-summary.json", s->dir);
	if (!s->summary_sent && (summary = slurp(path))) {
		cJSON *sm = cJSON_AddObjectToObject(files, "wandb-summary.json"), *c;

		summary[strcspn(summary, "\n")] = 0;
		cJSON_AddNumberToObject(sm, "offset", 0);
		c = cJSON_AddArrayToObject(sm, "content");
		cJSON_AddItemToArray(c, cJSON_CreateString(summary));
		has_summary = 1;
	}
	ec = cJSON_GetObjectItem(s->run, "exitcode");
	if (final && !more && cJSON_IsNumber(ec) && wb_pending(s) == n) {
		cJSON_AddTrueToObject(body, "complete");
		cJSON_AddNumberToObject(body, "exitcode", ec->valueint);
		complete = 1;
	}
	if (!n && !has_summary && !complete && !heartbeat) {
		cJSON_Delete(body);
		free(summary);
		return WB_DONE;
	}
	text = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	snprintf(fs, sizeof(fs), "/files/%s/%s/%s/file_stream", run_str(s, "entity") ?
		 run_str(s, "entity") : "-", run_str(s, "project"), run_str(s, "run_id"));
	status = wb_post(s, fs, text, &out);
	free(text);
	free(summary);
	if (status == 413 && n > 1) {
		s->max_lines = n / 2;	/* split the batch and try again at once */
		ret = WB_MORE;
	} else if (status < 200 || status >= 300) {
		ret = http_fail(s, "file_stream", status, out);
	} else {
		s->acked += n;
		s->summary_sent |= has_summary;
		s->complete_sent = complete;
		s->attempt = 0;
		wb_save_acked(s);
		ret = more || (final && !complete && cJSON_IsNumber(ec)) ? WB_MORE : WB_DONE;
		if (!more && wb_pending(s) > 0)
			ret = WB_MORE;
	}
	free(out);
	return ret;
}

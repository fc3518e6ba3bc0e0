// SPDX-License-Identifier: MIT
/*
 * kgpt-wandb: W&B from the command line (docs/wandb.md).
 *
 *   kgpt-wandb sync RUN_DIR     deliver RUN_DIR's spool (make wandb-sync)
 *   kgpt-wandb baseline SPEC    a run's summary as one JSON object:
 *     {"source": "wandb:e/p/id", "val_loss": x, "val_perplexity": x,
 *      "train_loss": x|null, "train_perplexity": x|null}
 *   kgpt-wandb history SPEC     its val loss points (and gate series) as
 *     metrics.jsonl rows, one a line (cmd_history)
 *
 * SPEC is entity/project/run_id, entity/project/runs/run_id or a
 * https://wandb.ai/entity/project/runs/run_id URL. Exit status: 0 done;
 * 1 the run could not be read or delivered (one line on stderr says why);
 * 2 bad usage or a malformed SPEC.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

#include "tracker/wandb.h"

#define SYNC_TRIES	8	/* failures in a row before sync gives up */

static void sleep_s(double s)
{
	struct timespec t = { (time_t)s, (long)((s - (time_t)s) * 1e9) };

	nanosleep(&t, NULL);
}

/* ------------------------------------------------------------------------
 * sync
 */
static int cmd_sync(const char *dir)
{
	struct wb_sender s;
	long before;
	enum wb_step st;
	int rc = wb_sender_open(&s, dir);

	if (rc == -ENOENT) {
		fprintf(stderr, "kgpt-wandb: %s/wandb-run.json is missing or unreadable: not a run "
			"folder of a CONFIG_ENABLE_WANDB trainer\n", dir);
		return 1;
	}
	before = wb_pending(&s);
	do {
		st = wb_step(&s, 1, 0);
		if (st == WB_RETRY) {
			if (s.attempt >= SYNC_TRIES)
				break;
			fprintf(stderr, "kgpt-wandb: %s; retrying\n", s.err);
			sleep_s(wb_backoff(&s));
		}
	} while (st == WB_MORE || st == WB_RETRY);
	if (st != WB_DONE) {
		fprintf(stderr, "kgpt-wandb: %s: %s; %ld rows still in %s/wandb-spool.jsonl\n", dir,
			s.err, wb_pending(&s), dir);
		wb_sender_close(&s);
		return 1;
	}
	printf("kgpt-wandb: %s: %ld rows delivered, run %s/%s/%s up to date\n", dir,
	       before - wb_pending(&s),
	       cJSON_GetStringValue(cJSON_GetObjectItem(s.run, "entity")) ?: "-",
	       cJSON_GetStringValue(cJSON_GetObjectItem(s.run, "project")),
	       cJSON_GetStringValue(cJSON_GetObjectItem(s.run, "run_id")));
	wb_sender_close(&s);
	return 0;
}

/* ------------------------------------------------------------------------
 * baseline
 */

/* A W&B name part: no / \ # ? % : ; , ' or spaces, at most 128 chars. */
static int valid_part(const char *p)
{
	size_t n = strlen(p);

	return n > 0 && n <= 128 && !p[strcspn(p, "/\\#?%:;,' \t\"")];
}

/*
 * SPEC into its three parts (each of up to 128 chars + NUL). Returns 0,
 * or -EINVAL with a message on stderr.
 */
static int parse_spec(const char *spec, char part[3][160])
{
	char buf[1024], *p = buf, *slash, *q;
	int n = 0;

	if (strlen(spec) >= sizeof(buf) - 1)
		goto bad;
	snprintf(buf, sizeof(buf), "%s", spec);
	if (!strncmp(p, "https://", 8) || !strncmp(p, "http://", 7)) {
		p = strstr(p, "://") + 3;
		slash = strchr(p, '/');
		if (!slash)
			goto bad;
		p = slash;
	}
	p[strcspn(p, "?#")] = 0;
	/* entity/project/runs/id -> entity/project/id */
	while ((q = strstr(p, "/runs/")))
		memmove(q, q + 5, strlen(q + 5) + 1);
	while (*p == '/')
		p++;
	for (size_t l = strlen(p); l && p[l - 1] == '/'; l--)
		p[l - 1] = 0;
	for (char *tok = p; tok; n++) {
		slash = strchr(tok, '/');
		if (slash)
			*slash = 0;
		if (n >= 3 || !valid_part(tok))
			goto bad;
		snprintf(part[n], 160, "%s", tok);
		tok = slash ? slash + 1 : NULL;
	}
	if (n == 3)
		return 0;
bad:
	fprintf(stderr, "kgpt-wandb: malformed baseline run '%s': expected entity/project/run_id, "
		"entity/project/runs/run_id or https://wandb.ai/entity/project/runs/run_id\n", spec);
	return -EINVAL;
}

static const char run_query[] =
	"query Run($project:String!,$entity:String!,$name:String!)"
	"{project(name:$project,entityName:$entity){run(name:$name){id name state summaryMetrics}}}";

/* The first of names that summary holds as a finite number, or NAN. */
static double pick(const cJSON *summary, const char *const *names)
{
	for (; *names; names++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(summary, *names);

		if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
			return v->valuedouble;
	}
	return NAN;
}

static const char *const val_loss_names[] = {
	"val_loss", "val/loss", "eval/loss", "valid/loss", "validation/loss", "val/val_loss", NULL };
static const char *const val_ppl_names[] = {
	"val_perplexity", "val/perplexity", "val/ppl", "val_ppl", "eval/perplexity", NULL };
static const char *const train_loss_names[] = {
	"train_loss", "train/loss", "loss", NULL };
static const char *const train_ppl_names[] = {
	"train_perplexity", "train/perplexity", "train/ppl", "train_ppl", NULL };

static void add_num(cJSON *o, const char *key, double v)
{
	if (isfinite(v))
		cJSON_AddNumberToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

/* Print the baseline object from a parsed summaryMetrics. */
static int print_baseline(const char *src, const cJSON *summary)
{
	double vl = pick(summary, val_loss_names), vp = pick(summary, val_ppl_names);
	double tl = pick(summary, train_loss_names), tp = pick(summary, train_ppl_names);
	cJSON *o;
	char *s;

	if (!isfinite(vl)) {
		fprintf(stderr, "kgpt-wandb: run %s: its summary has no val loss (val_loss or "
			"val/loss)\n", src);
		return 1;
	}
	if (!isfinite(vp))
		vp = exp(vl);
	if (!isfinite(tp) && isfinite(tl))
		tp = exp(tl);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "source", src);
	add_num(o, "val_loss", vl);
	add_num(o, "val_perplexity", vp);
	add_num(o, "train_loss", tl);
	add_num(o, "train_perplexity", tp);
	s = cJSON_PrintUnformatted(o);
	printf("%s\n", s);
	free(s);
	cJSON_Delete(o);
	return 0;
}

/*
 * POST query (with $entity, $project, $name of the run src and the
 * variables in vars, which it takes) to the GraphQL endpoint and hand
 * back the parsed response in *resp and its data.project.run in *run.
 * Returns 0, or 1 with one line on stderr ("cannot read WHAT of src: why").
 */
static int query_run(const char *src, const char *what, char part[3][160], const char *query,
		     cJSON *vars, cJSON **resp, const cJSON **run)
{
	struct wb_sender s = { 0 };
	cJSON *body;
	const cJSON *errs;
	char *text, *out = NULL;
	int status, rc = 1;

	*resp = NULL;
	wb_base_url(s.base, sizeof(s.base));
	s.timeout_s = 20;
	if (wb_api_key(s.base, s.key, sizeof(s.key))) {
		fprintf(stderr, "kgpt-wandb: cannot read %s%s: no API key (set WANDB_API_KEY "
			"or add `machine <host> password <key>` to ~/.netrc)\n", what, src);
		cJSON_Delete(vars);
		return 1;
	}
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "query", query);
	cJSON_AddStringToObject(vars, "entity", part[0]);
	cJSON_AddStringToObject(vars, "project", part[1]);
	cJSON_AddStringToObject(vars, "name", part[2]);
	cJSON_AddItemToObject(body, "variables", vars);
	text = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	for (int i = 0; i < 3; i++) {
		free(out);
		status = wb_post(&s, "/graphql", text, &out);
		if ((status >= 0 && status != 429 && status < 500) || i == 2)
			break;
		sleep_s(s.retry_after > 0 && s.retry_after < 10 ? s.retry_after : 1 << i);
	}
	free(text);
	if (status < 0) {
		fprintf(stderr, "kgpt-wandb: cannot read %s%s: network error: %s\n", what, src,
			s.err);
		goto out;
	}
	if (status == 401 || status == 403) {
		fprintf(stderr, "kgpt-wandb: cannot read %s%s: HTTP %d from %s: the API key was "
			"refused\n", what, src, status, s.base);
		goto out;
	}
	*resp = cJSON_Parse(out ? out : "");
	errs = cJSON_GetObjectItem(*resp, "errors");
	*run = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(*resp, "data"),
						       "project"), "run");
	if (status < 200 || status >= 300 || cJSON_GetArraySize(errs) > 0 ||
	    !cJSON_IsObject(*run)) {
		const cJSON *m = cJSON_GetObjectItem(cJSON_GetArrayItem(errs, 0), "message");

		fprintf(stderr, "kgpt-wandb: cannot read %s%s: %s (HTTP %d from %s)\n", what, src,
			cJSON_IsString(m) ? m->valuestring : "no such run", status, s.base);
		goto out;
	}
	rc = 0;
out:
	free(out);
	wb_sender_close(&s);
	return rc;
}

static int cmd_baseline(const char *spec)
{
	char part[3][160], src[600];
	cJSON *resp, *summary = NULL;
	const cJSON *run, *sm;
	int rc;

	if (parse_spec(spec, part))
		return 2;
	snprintf(src, sizeof(src), "wandb:%s/%s/%s", part[0], part[1], part[2]);
	rc = query_run(src, "", part, run_query, cJSON_CreateObject(), &resp, &run);
	if (rc)
		goto out;
	sm = cJSON_GetObjectItem(run, "summaryMetrics");
	summary = cJSON_IsString(sm) ? cJSON_Parse(sm->valuestring) : cJSON_Duplicate(sm, 1);
	if (!cJSON_IsObject(summary)) {
		fprintf(stderr, "kgpt-wandb: cannot read %s: its summaryMetrics is not a JSON "
			"object\n", src);
		rc = 1;
		goto out;
	}
	rc = print_baseline(src, summary);
out:
	cJSON_Delete(summary);
	cJSON_Delete(resp);
	return rc;
}

/* ------------------------------------------------------------------------
 * history
 */
#define HISTORY_SAMPLES	2000	/* rows per sampledHistory spec */

static const char history_query[] =
	"query History($project:String!,$entity:String!,$name:String!,$specs:[JSONString!]!)"
	"{project(name:$project,entityName:$entity)"
	"{run(name:$name){sampledHistory(specs:$specs)}}}";

static const char *const tokens_names[] = { "tokens", "train/tokens", "tokens_seen", NULL };

/* The per-layer series the ablation report plots, with kgpt's names. */
static const char *const gate_keys[][3] = {
	{ "rmlp_w_std", "rmlp_w_rec", NULL },
	{ "ra_w_std", "ra_w_rec", NULL },
	{ "kv_keep_ratio", NULL, NULL },
};

#define N_NAMES(a)	(sizeof(a) / sizeof((a)[0]) - 1)
#define SPEC_VAL	0
#define SPEC_TOKENS	(SPEC_VAL + (int)N_NAMES(val_loss_names))
#define SPEC_GATES	(SPEC_TOKENS + (int)N_NAMES(tokens_names))
#define N_SPECS		(SPEC_GATES + (int)(sizeof(gate_keys) / sizeof(gate_keys[0])))

/* One sampledHistory spec: {"keys": ["_step", a, b, c], "samples": N}. */
static void add_spec(cJSON *specs, const char *a, const char *b, const char *c, const char *d)
{
	const char *keys[] = { "_step", a, b, c, d };
	cJSON *o = cJSON_CreateObject(), *k = cJSON_AddArrayToObject(o, "keys");
	char *s;

	for (int i = 0; i < 5 && keys[i]; i++)
		cJSON_AddItemToArray(k, cJSON_CreateString(keys[i]));
	cJSON_AddNumberToObject(o, "samples", HISTORY_SAMPLES);
	s = cJSON_PrintUnformatted(o);
	cJSON_AddItemToArray(specs, cJSON_CreateString(s));
	free(s);
	cJSON_Delete(o);
}

/* Row i of a spec's result as an object (the rows may come as strings). */
static cJSON *history_row(const cJSON *rows, int i, cJSON **owned)
{
	cJSON *r = cJSON_GetArrayItem(rows, i);

	*owned = NULL;
	if (cJSON_IsString(r))
		r = *owned = cJSON_Parse(r->valuestring);
	return cJSON_IsObject(r) ? r : NULL;
}

static double row_num(const cJSON *row, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);

	return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
}

/* tokens at step in the first tokens spec that has it, or NAN. */
static double tokens_at(const cJSON *result, double step)
{
	for (int j = 0; j < (int)N_NAMES(tokens_names); j++) {
		const cJSON *rows = cJSON_GetArrayItem(result, SPEC_TOKENS + j);

		for (int i = 0; i < cJSON_GetArraySize(rows); i++) {
			cJSON *owned, *r = history_row(rows, i, &owned);
			double t = NAN;

			if (r && row_num(r, "_step") == step)
				t = row_num(r, tokens_names[j]);
			cJSON_Delete(owned);
			if (isfinite(t))
				return t;
		}
	}
	return NAN;
}

static void print_row(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);

	printf("%s\n", s);
	free(s);
	cJSON_Delete(o);
}

/* The eval rows of the first val loss name with any; their count. */
static int print_eval_rows(const cJSON *result)
{
	int n = 0;

	for (int j = 0; j < (int)N_NAMES(val_loss_names) && !n; j++) {
		const cJSON *rows = cJSON_GetArrayItem(result, SPEC_VAL + j);

		for (int i = 0; i < cJSON_GetArraySize(rows); i++) {
			cJSON *owned, *r = history_row(rows, i, &owned), *o;
			double step = row_num(r, "_step"), v = row_num(r, val_loss_names[j]);

			if (isfinite(step) && isfinite(v)) {
				o = cJSON_CreateObject();
				cJSON_AddStringToObject(o, "type", "eval");
				cJSON_AddNumberToObject(o, "iter", step);
				add_num(o, "elapsed_s", row_num(r, "_runtime"));
				add_num(o, "tokens", tokens_at(result, step));
				cJSON_AddNumberToObject(o, "val_loss", v);
				print_row(o);
				n++;
			}
			cJSON_Delete(owned);
		}
	}
	return n;
}

/* The rows of gate spec g whose values are arrays over the layers. */
static void print_gate_rows(const cJSON *result, int g)
{
	const cJSON *rows = cJSON_GetArrayItem(result, SPEC_GATES + g);

	for (int i = 0; i < cJSON_GetArraySize(rows); i++) {
		cJSON *owned, *r = history_row(rows, i, &owned), *o;
		double step = row_num(r, "_step"), t = row_num(r, "tokens");
		int k, ok = isfinite(step) && isfinite(t);

		for (k = 0; ok && gate_keys[g][k]; k++)
			ok = cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(r, gate_keys[g][k]));
		if (ok) {
			o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "type", "train");
			cJSON_AddNumberToObject(o, "iter", step);
			cJSON_AddNumberToObject(o, "tokens", t);
			for (k = 0; gate_keys[g][k]; k++)
				cJSON_AddItemToObject(o, gate_keys[g][k], cJSON_Duplicate(
					cJSON_GetObjectItemCaseSensitive(r, gate_keys[g][k]), 1));
			print_row(o);
		}
		cJSON_Delete(owned);
	}
}

/*
 * history SPEC: the run's val loss points (and kgpt's gate series, when it
 * logged them) as metrics.jsonl rows on stdout: {"type": "eval", "iter":
 * _step, "elapsed_s": _runtime, "tokens": x|null, "val_loss": x}, then
 * {"type": "train", "iter", "tokens", "rmlp_w_std": [...], ...}. The val
 * loss and tokens names are those of the summary (kgpt's or the PyTorch
 * original's). Read with sampledHistory, HISTORY_SAMPLES rows per key.
 */
static int cmd_history(const char *spec)
{
	char part[3][160], src[600];
	cJSON *vars, *specs, *resp;
	const cJSON *run, *result;
	int rc, g;

	if (parse_spec(spec, part))
		return 2;
	snprintf(src, sizeof(src), "wandb:%s/%s/%s", part[0], part[1], part[2]);
	vars = cJSON_CreateObject();
	specs = cJSON_AddArrayToObject(vars, "specs");
	for (const char *const *n = val_loss_names; *n; n++)
		add_spec(specs, "_runtime", *n, NULL, NULL);
	for (const char *const *n = tokens_names; *n; n++)
		add_spec(specs, *n, NULL, NULL, NULL);
	for (g = 0; g < N_SPECS - SPEC_GATES; g++)
		add_spec(specs, "tokens", gate_keys[g][0], gate_keys[g][1], gate_keys[g][2]);
	rc = query_run(src, "the history of ", part, history_query, vars, &resp, &run);
	if (rc)
		goto out;
	result = cJSON_GetObjectItem(run, "sampledHistory");
	if (!cJSON_IsArray(result) || cJSON_GetArraySize(result) != N_SPECS) {
		fprintf(stderr, "kgpt-wandb: cannot read the history of %s: its sampledHistory is "
			"not a list of %d row lists\n", src, N_SPECS);
		rc = 1;
		goto out;
	}
	if (!print_eval_rows(result)) {
		fprintf(stderr, "kgpt-wandb: run %s: its history has no val loss rows (val_loss or "
			"val/loss with _step and _runtime)\n", src);
		rc = 1;
		goto out;
	}
	for (g = 0; g < N_SPECS - SPEC_GATES; g++)
		print_gate_rows(result, g);
out:
	cJSON_Delete(resp);
	return rc;
}

static int usage(void)
{
	fprintf(stderr, "usage: kgpt-wandb sync RUN_DIR\n"
		"       kgpt-wandb baseline ENTITY/PROJECT/RUN_ID\n"
		"       kgpt-wandb history ENTITY/PROJECT/RUN_ID\n"
		"(WANDB_API_KEY or ~/.netrc; WANDB_BASE_URL; see docs/wandb.md)\n");
	return 2;
}

int main(int argc, char **argv)
{
	int rc;

	if (argc != 3)
		return usage();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!strcmp(argv[1], "sync"))
		rc = cmd_sync(argv[2]);
	else if (!strcmp(argv[1], "baseline"))
		rc = cmd_baseline(argv[2]);
	else if (!strcmp(argv[1], "history"))
		rc = cmd_history(argv[2]);
	else
		rc = usage();
	curl_global_cleanup();
	return rc;
}

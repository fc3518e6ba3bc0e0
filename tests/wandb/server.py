#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A loopback W&B server for the tests: the protocol subset kgpt speaks
(docs/wandb.md) with injected faults.

  server.py STATE_DIR [--key KEY] [--fail500 N] [--fail429 N]
            [--drop N] [--slow S] [--max-lines N] [--run E/P/ID=SUMMARY_JSON]
            [--history E/P/ID=JSONL_FILE] [--history-error E/P/ID=MESSAGE]

--history gives a --run its history rows (one JSON object a line, as
file_stream would have sent them); sampledHistory serves them: for each
spec {"keys": [...], "samples": N} the rows holding every key, only those
keys, N of them evenly spaced (first and last kept) when there are more.
--history-error makes sampledHistory of that run answer a GraphQL error.

Binds a free port on 127.0.0.1, writes it to STATE_DIR/port and, after
every request, the whole state to STATE_DIR/state.json:
  runs: {"entity/project/id": {config, name, group, history: [lines],
         summary, complete, exitcode, dupes: rows sent twice, gaps}}
  requests, auth_failures, faults_injected
It exits when its parent process (the test) is gone.
"""
import argparse
import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
state = {"runs": {}, "requests": 0, "auth_failures": 0, "faults_injected": 0}
args = None
faults = {}


def save():
    tmp = os.path.join(args.state_dir, "state.json.tmp")
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, os.path.join(args.state_dir, "state.json"))


def take_fault(name):
    if faults.get(name, 0) > 0:
        faults[name] -= 1
        state["faults_injected"] += 1
        return True
    return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def authorised(self):
        h = self.headers.get("Authorization", "")
        want = "Basic " + base64.b64encode(("api:" + args.key).encode()).decode()
        return h == want

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        with lock:
            state["requests"] += 1
            if take_fault("drop"):
                save()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if take_fault("fail500"):
                save()
                return self.reply(500, {"error": "injected"})
            if take_fault("fail429"):
                save()
                return self.reply(429, {"error": "slow down"}, [("Retry-After", "1")])
        if args.slow:
            time.sleep(args.slow)
        with lock:
            if not self.authorised():
                state["auth_failures"] += 1
                save()
                return self.reply(401, {"errors": [{"message": "invalid api key"}]})
            try:
                body = json.loads(raw)
            except ValueError:
                save()
                return self.reply(400, {"errors": [{"message": "bad json"}]})
            if self.path == "/graphql":
                code, obj = self.graphql(body)
            elif self.path.startswith("/files/") and self.path.endswith("/file_stream"):
                code, obj = self.file_stream(self.path.split("/")[2:5], body)
            else:
                code, obj = 404, {"error": "no such endpoint"}
            save()
        self.reply(code, obj)

    def graphql(self, body):
        q, v = body.get("query", ""), body.get("variables", {})
        if "upsertBucket" in q:
            entity = v.get("entity") or "test-entity"
            key = "%s/%s/%s" % (entity, v["project"], v["name"])
            run = state["runs"].setdefault(key, {
                "history": [], "summary": None, "complete": False, "exitcode": None,
                "dupes": 0, "gaps": 0, "upserts": 0})
            run["upserts"] += 1
            run["config"] = json.loads(v.get("config") or "{}")
            run["name"] = v.get("displayName")
            run["group"] = v.get("groupName")
            return 200, {"data": {"upsertBucket": {"bucket": {
                "id": "id-" + v["name"], "name": v["name"], "displayName": v.get("displayName"),
                "project": {"name": v["project"], "entity": {"name": entity}}},
                "inserted": run["upserts"] == 1}}}
        if "query Run" in q:
            key = "%s/%s/%s" % (v["entity"], v["project"], v["name"])
            run = state["runs"].get(key)
            if run is None:
                return 200, {"data": {"project": {"run": None}}}
            return 200, {"data": {"project": {"run": {
                "id": "id", "name": v["name"], "state": "finished",
                "summaryMetrics": run["summary"] or "{}"}}}}
        if "query History" in q:
            return self.sampled_history(v)
        return 400, {"errors": [{"message": "unknown query"}]}

    def sampled_history(self, v):
        key = "%s/%s/%s" % (v["entity"], v["project"], v["name"])
        run = state["runs"].get(key)
        if run is None:
            return 200, {"data": {"project": {"run": None}}}
        if key in args.history_errors:
            return 200, {"data": {"project": {"run": None}},
                         "errors": [{"message": args.history_errors[key]}]}
        rows = [json.loads(line) for line in run["history"]]
        out = []
        for spec in v["specs"]:
            spec = json.loads(spec)
            keys = spec["keys"]
            got = [{k: r[k] for k in keys} for r in rows if all(k in r for k in keys)]
            n = spec.get("samples", 500)
            if len(got) > n > 1:
                got = [got[round(i * (len(got) - 1) / (n - 1))] for i in range(n)]
            out.append(got)
        return 200, {"data": {"project": {"run": {"sampledHistory": out}}}}

    def file_stream(self, parts, body):
        key = "/".join(parts)
        run = state["runs"].get(key)
        if run is None:
            return 404, {"error": "run %s not found" % key}
        files = body.get("files", {})
        h = files.get("wandb-history.jsonl")
        if h:
            if args.max_lines and len(h["content"]) > args.max_lines:
                return 413, {"error": "request too large"}
            off = h["offset"]
            for i, line in enumerate(h["content"]):
                at = off + i
                if at < len(run["history"]):
                    run["dupes"] += 1
                    run["history"][at] = line
                elif at == len(run["history"]):
                    run["history"].append(line)
                else:
                    run["gaps"] += 1
        s = files.get("wandb-summary.json")
        if s:
            run["summary"] = s["content"][-1]
        if body.get("complete"):
            run["complete"] = True
            run["exitcode"] = body.get("exitcode")
        return 200, {"exitcode": None, "limits": {}}


def watch_parent(ppid):
    while os.getppid() == ppid:
        time.sleep(0.5)
    os._exit(0)


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("state_dir")
    p.add_argument("--key", default="k" * 40)
    p.add_argument("--fail500", type=int, default=0)
    p.add_argument("--fail429", type=int, default=0)
    p.add_argument("--drop", type=int, default=0)
    p.add_argument("--slow", type=float, default=0)
    p.add_argument("--max-lines", type=int, default=0)
    p.add_argument("--run", action="append", default=[])
    p.add_argument("--history", action="append", default=[])
    p.add_argument("--history-error", action="append", default=[])
    args = p.parse_args()
    args.history_errors = dict(e.split("=", 1) for e in args.history_error)
    faults.update(fail500=args.fail500, fail429=args.fail429, drop=args.drop)
    for r in args.run:
        k, s = r.split("=", 1)
        state["runs"][k] = {"history": [], "summary": s, "complete": True, "exitcode": 0,
                            "dupes": 0, "gaps": 0, "upserts": 0}
    for h in args.history:
        k, path = h.split("=", 1)
        with open(path) as f:
            state["runs"][k]["history"] = [line.strip() for line in f if line.strip()]
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with lock:
        save()
    tmp = os.path.join(args.state_dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, os.path.join(args.state_dir, "port"))
    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

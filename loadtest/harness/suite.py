#!/usr/bin/env python3
"""The load-test suite: our gateway side by side with nginx, HAProxy and
configurable-http-proxy on loopback, plus our own scale, churn, propagation, WebSocket and
control-failure figures. Run through `loadtest/harness/run` (which installs the tools and
builds the release binaries). Bounded: a global alarm ends it, and every process it
started is stopped by PID on the way out."""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
import measure  # noqa: E402
import peers  # noqa: E402
import report  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REL = os.path.join(ROOT, "target", "release")
HARNESS = os.path.dirname(os.path.abspath(__file__))
SECRET = "loadtest-hs256-secret-loadtest-hs256-secret"
CHP_TOKEN = "loadtest-chp-token"

PORTS = {"gateway": 18201, "gateway-log": 18202, "gateway-hs256": 18203, "gateway-rs256": 18204,
         "gateway-2t": 18205, "nginx": 18101, "nginx-2w": 18102, "haproxy": 18111, "haproxy-hs256": 18112,
         "haproxy-rs256": 18113, "haproxy-2t": 18114, "haproxy-scale": 18115, "chp": 18121, "control": 18300}
ADMIN = {"gateway": 19201, "gateway-log": 19202, "gateway-hs256": 19203, "gateway-rs256": 19204,
         "gateway-2t": 19205}


def log(msg):
    print(f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def summarize(runs, key):
    vals = [r[key] for r in runs]
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


class Suite:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="nocrd9-loadtest-")
        self.procs = measure.Procs(self.work)
        self.results = {"config": vars(args), "checks": [], "main": {}, "scale": {}, "churn": {},
                        "propagation": {}, "spawn": {}, "websockets": {}, "control_kill": {}}
        self.kube = None
        self.gateways = []
        self.n = 0

    # ------------------------------------------------------------ setup

    def start_origin(self):
        conf = peers.origin_conf(self.work)
        self.procs.start("origin", ["nginx", "-c", conf, "-g", "daemon off;"], cpu=0)
        measure.wait_for(lambda: measure.http_get(f"http://127.0.0.1:{peers.ORIGIN_STATUS_PORT}/")[0] == 200,
                         10, "the origin nginx")

    def start_cluster(self):
        kc = os.path.join(self.work, "kubeconfig.yaml")
        self.procs.start("kube-sim", [f"{REL}/kube-sim", "--listen", "127.0.0.1:0", "--kubeconfig-out", kc,
                                      "--plain-http-kubeconfig", "--external-workloads",
                                      "--pod-cidr", "127.64.0.0/10", "--history", "300000"], cpu=0)
        measure.wait_for(lambda: os.path.exists(kc) and os.path.getsize(kc) > 0, 30, "kube-sim's kubeconfig")
        self.kubeconfig = kc
        self.kube = cluster.Kube(kc)
        self.socket = os.path.join(self.work, "control.sock")
        self.start_control()

    def start_control(self):
        self.procs.start("control", [f"{REL}/nocrd9", "--host", "127.0.0.1", "--port", str(PORTS["control"]),
                                     "--namespace", "default", "--gateway-socket", self.socket,
                                     "--gateway-url", f"http://127.0.0.1:{PORTS['gateway']}",
                                     "--default-workspace-port", str(peers.ORIGIN_PORT), "--log-level", "warn"],
                         cpu=0, env={"KUBECONFIG": self.kubeconfig})
        measure.wait_for(lambda: measure.http_get(f"http://127.0.0.1:{PORTS['control']}/readyz")[0] == 200,
                         60, "nocrd9 /readyz")

    def start_gateways(self):
        self.rs_key, pem = cluster.rs256_keys()
        self.pubkey = os.path.join(self.work, "rs256.pub.pem")
        with open(self.pubkey, "w") as f:
            f.write(pem)
        pool = str(self.args.upstream_pool_size) if self.args.upstream_pool_size else None
        variants = {
            "gateway": {"RUST_LOG": "warn"},
            "gateway-log": {"RUST_LOG": "info"},
            "gateway-hs256": {"RUST_LOG": "warn", "AUTH_ENABLED": "true", "JWT_SECRET": SECRET},
            "gateway-rs256": {"RUST_LOG": "warn", "AUTH_ENABLED": "true", "JWT_PUBLIC_KEY": self.pubkey},
        }
        if "two-cores" in self.args.blocks:
            variants["gateway-2t"] = {"RUST_LOG": "warn"}
        for name, env in variants.items():
            two = name == "gateway-2t"
            argv = [f"{REL}/nocrd9-gateway", "--listen", f"127.0.0.1:{PORTS[name]}",
                    "--admin-listen", f"127.0.0.1:{ADMIN[name]}", "--control-socket", self.socket,
                    "--gateway-id", name, "--threads", "2" if two else "1",
                    "--upgrade-sock", os.path.join(self.work, f"{name}.upgrade.sock"),
                    "--default-workspace-port", str(peers.ORIGIN_PORT),
                    "--max-connections-per-workspace", "100000"]
            if pool:
                argv += ["--upstream-pool-size", pool]
            self.procs.start(name, argv, cpu="0,1" if two else 1, env=env)
            self.gateways.append(name)
        for name in self.gateways:
            measure.wait_for(lambda: measure.http_get(f"http://127.0.0.1:{ADMIN[name]}/readyz")[0] == 200,
                             30, f"{name} /readyz")

    def table_size(self, gw="gateway"):
        return measure.metric(f"http://127.0.0.1:{ADMIN[gw]}/metrics", "nocrd9_gateway_route_table_size") or 0

    def grow_to(self, n):
        if n <= self.n:
            return
        log(f"creating workspace pods {self.n + 1}..{n} through the Kubernetes API")
        t0 = time.time()
        self.kube.populate(self.n + 1, n)
        self.n = n
        for gw in self.gateways:
            measure.wait_for(lambda: self.table_size(gw) >= n, 600, f"{gw} to hold {n} routes", interval=0.5)
        log(f"  {n} routes in every gateway after {time.time() - t0:.1f} s")
        self.results.setdefault("setup", {})[str(n)] = round(time.time() - t0, 1)

    def routes(self, ids):
        ips = self.kube.pod_ips()
        return [(wid, ips[wid], cluster.owner(int(wid[3:]))) for wid in ids]

    # ------------------------------------------------------------ checks

    def check(self, name, port, path, expect, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        status, body = measure.http_get(f"http://127.0.0.1:{port}{path}", headers)
        ok = status == expect and (expect != 200 or body.startswith(b"hello, world"))
        self.results["checks"].append({"proxy": name, "path": path, "expect": expect, "got": status, "ok": ok,
                                       "token": bool(token)})
        if not ok:
            log(f"  CHECK FAILED {name} {path}: expected {expect}, got {status} {body[:120]!r}")
        return ok

    def correctness(self, configs):
        log("correctness checks")
        w2, wlast = cluster.workspace_id(2), cluster.workspace_id(self.args.main_n)
        good_hs = cluster.hs256(SECRET, cluster.owner(2))
        good_rs = cluster.rs256(self.rs_key, cluster.owner(2))
        for name, port, auth in configs:
            tok = {"HS256": good_hs, "RS256": good_rs}.get(auth)
            self.check(name, port, f"/route/{w2}/a/b?x=1", 200, tok)
            self.check(name, port, f"/route/{wlast}/", 200,
                       {"HS256": cluster.hs256(SECRET, cluster.owner(self.args.main_n)),
                        "RS256": cluster.rs256(self.rs_key, cluster.owner(self.args.main_n))}.get(auth))
            self.check(name, port, f"/route/{w2}", 200, tok)
            self.check(name, port, "/route/ws-nope/", 404, tok)
            if auth:
                self.check(name, port, f"/route/{w2}/", 401)
                bad_sig = tok[:-4] + ("AAAA" if not tok.endswith("AAAA") else "BBBB")
                self.check(name, port, f"/route/{w2}/", 401, bad_sig)
                expired = (cluster.hs256(SECRET, cluster.owner(2), ttl=-60) if auth == "HS256"
                           else cluster.rs256(self.rs_key, cluster.owner(2), ttl=-60))
                self.check(name, port, f"/route/{w2}/", 401, expired)
                other = (cluster.hs256(SECRET, cluster.owner(3)) if auth == "HS256"
                         else cluster.rs256(self.rs_key, cluster.owner(3)))
                # Someone else's workspace: our gateway answers exactly like a missing one
                # (404, so nobody learns which ids exist); HAProxy's config says 403.
                self.check(name, port, f"/route/{w2}/", 404 if name.startswith("gateway") else 403, other)
                wrong_alg = cluster.hs256(SECRET, cluster.owner(2)) if auth == "RS256" else None
                if wrong_alg:
                    self.check(name, port, f"/route/{w2}/", 401, wrong_alg)

    # ------------------------------------------------------------ blocks

    def lua(self, name, ids, kind=None):
        path = os.path.join(self.work, f"{name}.lua")
        tokens = None
        if kind == "HS256":
            tokens = [cluster.hs256(SECRET, cluster.owner(int(w[3:]))) for w in ids]
        elif kind == "RS256":
            tokens = [cluster.rs256(self.rs_key, cluster.owner(int(w[3:]))) for w in ids]
        measure.write_lua(path, ids, tokens)
        return path

    def pids(self, name):
        return measure.pids_of(self.procs.procs[name].pid)

    def run_config(self, name, port, lua, pid_name, gate=True):
        self.procs.check_alive()
        r = measure.measured_run(f"http://127.0.0.1:{port}", lua, self.pids(pid_name), self.args.duration,
                                 self.args.warmup, f"http://127.0.0.1:{peers.ORIGIN_STATUS_PORT}/", gate)
        log(f"  {name:16s} {r['rps']:9.0f} req/s  {r['cpu_us_per_req']:6.1f} µs/req  p99 {r['p99'] / 1000:6.2f} ms"
            f"  errors {r['errors']}  new upstream/1k {r['new_upstream_per_1k']:.2f}  busy-before {r['gate']['busy']}")
        return r

    def start_peers(self, routes):
        d = self.work
        self.procs.start("nginx", ["nginx", "-c", peers.nginx_conf(d, routes, PORTS["nginx"]), "-g", "daemon off;"],
                         cpu=1)
        for name, auth in (("haproxy", None), ("haproxy-hs256", "HS256"), ("haproxy-rs256", "RS256")):
            cfg = peers.haproxy_conf(d, routes, PORTS[name], auth, SECRET, self.pubkey)
            chk = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, text=True)
            if chk.returncode != 0:
                raise RuntimeError(f"haproxy refused {cfg}: {chk.stdout}{chk.stderr}")
            self.procs.start(name, ["haproxy", "-db", "-f", cfg], cpu=1)
        chp = os.path.join(HARNESS, "node_modules", ".bin", "configurable-http-proxy")
        self.procs.start("chp", ["node", chp, "--ip", "127.0.0.1", "--port", str(PORTS["chp"]), "--api-ip",
                                 "127.0.0.1", "--api-port", str(PORTS["chp"] + 1), "--no-include-prefix",
                                 "--log-level", "warn"], cpu=1, env={"CONFIGPROXY_AUTH_TOKEN": CHP_TOKEN})
        measure.wait_for(lambda: measure.http_get(f"http://127.0.0.1:{PORTS['nginx']}/route/x/")[0] == 404, 20,
                         "nginx")
        for name in ("haproxy", "haproxy-hs256", "haproxy-rs256"):
            measure.wait_for(lambda: measure.http_get(f"http://127.0.0.1:{PORTS[name]}/route/x/")[0] in (401, 404),
                             20, name)

        def chp_up():
            try:
                return measure.http_get(f"http://127.0.0.1:{PORTS['chp'] + 1}/api/routes",
                                        {"Authorization": f"token {CHP_TOKEN}"})[0] == 200
            except OSError:
                return False
        measure.wait_for(chp_up, 30, "configurable-http-proxy")
        t0 = time.time()
        peers.chp_add_routes(PORTS["chp"] + 1, CHP_TOKEN, routes)
        log(f"  CHP: {len(routes)} routes added over its REST API in {time.time() - t0:.2f} s")

    def main_block(self):
        n = self.args.main_n
        ids = [cluster.workspace_id(i) for i in range(1, n + 1)]
        self.start_peers(self.routes(ids))
        configs = [("gateway", PORTS["gateway"], None), ("gateway-log", PORTS["gateway-log"], None),
                   ("gateway-hs256", PORTS["gateway-hs256"], "HS256"),
                   ("gateway-rs256", PORTS["gateway-rs256"], "RS256"),
                   ("nginx", PORTS["nginx"], None), ("haproxy", PORTS["haproxy"], None),
                   ("haproxy-hs256", PORTS["haproxy-hs256"], "HS256"),
                   ("haproxy-rs256", PORTS["haproxy-rs256"], "RS256"), ("chp", PORTS["chp"], None)]
        if self.args.skip_peers:
            configs = [c for c in configs if c[0].startswith("gateway")]
        self.correctness(configs)
        luas = {None: self.lua("main-noauth", ids), "HS256": self.lua("main-hs256", ids, "HS256"),
                "RS256": self.lua("main-rs256", ids, "RS256")}
        runs = {c[0]: [] for c in configs}
        for rnd in range(self.args.runs):
            log(f"main block (N={n}), round {rnd + 1}/{self.args.runs}")
            for name, port, auth in configs:
                runs[name].append(self.run_config(name, port, luas[auth], name))
        self.results["main"] = runs
        for name in ("nginx", "haproxy", "haproxy-hs256", "haproxy-rs256", "chp"):
            self.procs.stop(name)

    def two_cores_block(self):
        """Both cores for every proxy: our gateway with 2 threads, HAProxy with nbthread 2,
        nginx with 2 workers (wrk shares CPU0; there is no third core)."""
        n = self.args.main_n
        ids = [cluster.workspace_id(i) for i in range(1, n + 1)]
        routes = self.routes(ids)
        d = self.work
        conf = peers.nginx_conf(d, routes, PORTS["nginx-2w"])
        with open(conf) as f:
            text = f.read().replace("worker_processes 1;", "worker_processes 2;")
        with open(conf, "w") as f:
            f.write(text)
        self.procs.start("nginx-2w", ["nginx", "-c", conf, "-g", "daemon off;"], cpu="0,1")
        cfg = peers.haproxy_conf(d, routes, PORTS["haproxy-2t"])
        with open(cfg) as f:
            text = f.read().replace("nbthread 1", "nbthread 2")
        with open(cfg, "w") as f:
            f.write(text)
        self.procs.start("haproxy-2t", ["haproxy", "-db", "-f", cfg], cpu="0,1")
        for name in ("nginx-2w", "haproxy-2t"):
            measure.wait_for(lambda: measure.http_get(f"http://127.0.0.1:{PORTS[name]}/route/x/")[0] == 404, 20, name)
        lua = self.lua("two-cores", ids)
        runs = {"gateway-2t": [], "haproxy-2t": [], "nginx-2w": []}
        for rnd in range(self.args.runs):
            log(f"both cores (N={n}), round {rnd + 1}/{self.args.runs}")
            for name in runs:
                runs[name].append(self.run_config(name, PORTS[name], lua, name))
        self.results["two_cores"] = runs
        for name in ("nginx-2w", "haproxy-2t"):
            self.procs.stop(name)

    def scale_point(self, n):
        if n <= 10_000:
            ids = [cluster.workspace_id(i) for i in range(1, n + 1)]
        else:
            step = n // 1000
            ids = [cluster.workspace_id(1 + k * step) for k in range(1000)]
        lua = self.lua(f"scale-{n}", ids)
        # HAProxy with every route in the table, measured in the same rounds: how much of
        # the cost's growth with N this machine's kernel and caches give any proxy.
        peer = not self.args.skip_peers
        if peer:
            table = [cluster.workspace_id(i) for i in range(1, n + 1)]
            cfg = peers.haproxy_conf(self.work, self.routes(table), PORTS["haproxy-scale"])
            self.procs.start("haproxy-scale", ["haproxy", "-db", "-f", cfg], cpu=1)
            measure.wait_for(lambda: measure.http_get(f"http://127.0.0.1:{PORTS['haproxy-scale']}/route/x/")[0] == 404,
                             60, "haproxy-scale")
        runs, peer_runs = [], []
        for rnd in range(self.args.runs):
            runs.append(self.run_config(f"gateway N={n}", PORTS["gateway"], lua, "gateway"))
            if peer:
                peer_runs.append(self.run_config(f"haproxy N={n}", PORTS["haproxy-scale"], lua, "haproxy-scale"))
        rss_all = measure.rss_kib(self.pids("gateway"))
        if peer:
            self.procs.stop("haproxy-scale")
        self.results["scale"][str(n)] = {"runs": runs, "traffic_routes": len(ids), "rss_kib": rss_all,
                                         "haproxy_runs": peer_runs}

    def churn_block(self):
        n = self.args.main_n
        lua = self.lua("churn", [cluster.workspace_id(i) for i in range(1, n + 1)])
        admin = f"http://127.0.0.1:{ADMIN['gateway']}/metrics"
        out = {}
        for rnd in range(self.args.runs):
            for rate in [0] + self.args.churn_rates:
                stop = threading.Event()
                done = [0]

                def churner(thread, ops_per_s, stop=stop, done=done, tag=f"{rnd}-{rate}"):
                    # Each op creates one pod and deletes the one made 20 ops before: every op
                    # changes the table (a route appears or goes) through watch + channel.
                    k, interval, nxt = 0, 1.0 / ops_per_s, time.perf_counter()
                    while not stop.is_set():
                        k += 1
                        wid = f"churn-{tag}-{thread}-{k:06d}"
                        self.kube.create_workspace_pod(wid, "churner")
                        if k > 20:
                            self.kube.delete_pod(f"pod-churn-{tag}-{thread}-{k - 20:06d}")
                        done[0] += 2 if k > 20 else 1
                        nxt += interval
                        pause = nxt - time.perf_counter()
                        if pause > 0:
                            time.sleep(pause)
                threads = []
                # The machine is checked before the churn starts (it is meant to be busy after).
                gate = measure.quiet_gate(max_wait=30, busy_limit=0.15)
                if rate:
                    # Rate is in route changes a second; one op makes two.
                    per_thread = rate / 2 / 4
                    threads = [threading.Thread(target=churner, args=(t, per_thread)) for t in range(4)]
                    for t in threads:
                        t.start()
                    time.sleep(1)
                a0, d0, t0 = measure.metric(admin, "nocrd9_gateway_sync_applied_total"), done[0], time.time()
                r = self.run_config(f"churn {rate}/s", PORTS["gateway"], lua, "gateway", gate=False)
                r["gate"] = gate
                a1, d1, t1 = measure.metric(admin, "nocrd9_gateway_sync_applied_total"), done[0], time.time()
                stop.set()
                for t in threads:
                    t.join(30)
                r["route_changes_per_s"] = (d1 - d0) / (t1 - t0)
                r["deltas_applied_per_s"] = (a1 - a0) / (t1 - t0)
                out.setdefault(str(rate), []).append(r)
                log(f"    route changes {r['route_changes_per_s']:.0f}/s, deltas applied {r['deltas_applied_per_s']:.0f}/s")
        self.results["churn"] = out
        # Clear the churn pods out of the table.
        status, body = self.kube.request("GET", "/api/v1/namespaces/default/pods?labelSelector=nogoo9/type%3Dworkspace")
        for p in body["items"]:
            if p["metadata"]["name"].startswith("pod-churn-"):
                self.kube.delete_pod(p["metadata"]["name"])

    def propagation_block(self):
        count = self.args.spawns
        log(f"route propagation: {count} workspace pods, pod Ready in the API → first 200 through the gateway")
        watch = cluster.ReadyWatch(self.kube)
        gw = http.client.HTTPConnection("127.0.0.1", PORTS["gateway"], timeout=10)

        def first_200(wid, limit=30):
            deadline = time.perf_counter() + limit
            polls = 0
            while time.perf_counter() < deadline:
                gw.request("GET", f"/route/{wid}/")
                r = gw.getresponse()
                r.read()
                polls += 1
                if r.status == 200:
                    return time.perf_counter(), polls
            raise RuntimeError(f"{wid} never answered 200 through the gateway")

        lat, total = [], []
        for k in range(1, count + 1):
            wid = f"prop-{k:05d}"
            t0 = time.perf_counter()
            self.kube.create_workspace_pod(wid, "prop")
            t200, _ = first_200(wid)
            t_ready = watch.wait_ready(wid)
            lat.append((t200 - t_ready) * 1000)
            total.append((t200 - t0) * 1000)
        watch.stop = True
        self.results["propagation"] = {"count": count, "ready_to_200_ms": lat, "create_to_200_ms": total}
        log(f"  pod Ready → 200: p50 {statistics.median(lat):.2f} ms, p99 {report.pct(lat, 99):.2f} ms;"
            f" create → 200 p50 {statistics.median(total):.2f} ms")
        for k in range(1, count + 1):
            self.kube.delete_pod(f"pod-prop-{k:05d}")

        log(f"spawn_workspace (MCP, wait=false) → first 200 through the gateway, {count} spawns")
        self.kube.request("POST", "/api/v1/namespaces/default/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "bench-template", "labels": {"nogoo9/pod-template": "true"}},
            "data": {"spec": json.dumps({"containers": [{"name": "app", "image": "origin:external"}]})}})
        mcp = cluster.Mcp("127.0.0.1", PORTS["control"])
        spawn = []
        for k in range(1, count + 1):
            wid = f"sp-{k:05d}"
            t0 = time.perf_counter()
            mcp.call("spawn_workspace", {"id": wid, "templateRef": "bench-template", "wait": False})
            t200, _ = first_200(wid)
            spawn.append((t200 - t0) * 1000)
        self.results["spawn"] = {"count": count, "spawn_to_200_ms": spawn}
        log(f"  spawn_workspace → 200: p50 {statistics.median(spawn):.2f} ms, p99 {report.pct(spawn, 99):.2f} ms")
        status, body = self.kube.request("GET", "/api/v1/namespaces/default/pods?labelSelector=nogoo9/type%3Dworkspace")
        for p in body["items"]:
            if p["metadata"]["labels"].get("nogoo9/workspace-id", "").startswith("sp-"):
                self.kube.delete_pod(p["metadata"]["name"])

    def control_kill_block(self):
        log("control killed under load: SIGKILL at 3 s, restarted at 6 s, wrk on existing routes throughout")
        n = self.args.main_n
        lua = self.lua("kill", [cluster.workspace_id(i) for i in range(1, n + 1)])
        admin = f"http://127.0.0.1:{ADMIN['gateway']}/metrics"
        result = {}

        def load():
            result["wrk"] = measure.wrk(f"http://127.0.0.1:{PORTS['gateway']}", lua, 12)
        t = threading.Thread(target=load)
        t.start()
        time.sleep(3)
        self.procs.stop("control", sig=signal.SIGKILL)
        time.sleep(3)
        applied0 = measure.metric(admin, "nocrd9_gateway_sync_applied_total") or 0
        t0 = time.perf_counter()
        self.start_control()
        t_ready = time.perf_counter()
        # Resynced: connected again and the new control's snapshot applied.
        measure.wait_for(lambda: (measure.metric(admin, "nocrd9_gateway_sync_connected") == 1
                                  and (measure.metric(admin, "nocrd9_gateway_sync_applied_total") or 0) > applied0),
                         60, "the gateway to resync with the restarted control plane", interval=0.005)
        t_sync = time.perf_counter()
        t.join(60)
        w = result["wrk"]
        result.update({"restart_to_ready_ms": (t_ready - t0) * 1000, "restart_to_resync_ms": (t_sync - t0) * 1000,
                       "table_after": self.table_size(), "requests": w["requests"], "errors": w["errors"],
                       "status_errors": w["status_errors"]})
        self.results["control_kill"] = result
        log(f"  {w['requests']} requests, {w['errors']} errors ({w['status_errors']} non-2xx); "
            f"resynced {result['restart_to_resync_ms']:.0f} ms after the restart began")

    def websocket_block(self):
        log(f"WebSockets: {self.args.ws_connections} connections held {self.args.ws_hold} s through the gateway")
        proc = self.procs.start("dev", [f"{REL}/nocrd9", "dev", "--port", "18400", "--gateway-port", "18401"],
                                cpu=0, env={"RUST_LOG": "warn"}, stdout=subprocess.PIPE)
        banner = ""
        deadline = time.time() + 120
        while time.time() < deadline:
            line = proc.stdout.readline().decode()
            if not line:
                break
            banner += line
            if line.strip().startswith("curl "):
                break
        token = re.search(r"token:\s+(\S+)", banner).group(1)
        gw_pid = int(re.search(r"\(pid (\d+)", banner).group(1))
        subprocess.run(["taskset", "-pc", "1", str(gw_pid)], capture_output=True)
        mcp = cluster.Mcp("127.0.0.1", 18400, token)
        ids = ["demo"]
        for k in range(1, self.args.ws_workspaces):
            wid = f"ws-hold-{k:02d}"
            mcp.call("spawn_workspace", {"id": wid, "templateRef": "node-workspace-template",
                                         "context": {"PROJECT_NAME": wid, "REPO_URL": "https://example.com/x.git"}})
            ids.append(wid)
        rss0 = measure.rss_kib([gw_pid])
        rate = 500
        argv = [f"{REL}/ws-hold", "--connections", str(self.args.ws_connections), "--hold-secs",
                str(self.args.ws_hold), "--interval-secs", "5", "--connect-rate", str(rate), "--token", token]
        for wid in ids:
            argv += ["--url", f"ws://127.0.0.1:18401/route/{wid}/ws"]
        hold = subprocess.Popen(["taskset", "-c", "0"] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        open_secs = self.args.ws_connections / rate
        try:
            time.sleep(open_secs + self.args.ws_hold / 2)
            rss_mid = measure.rss_kib([gw_pid])
            fds_mid = len(os.listdir(f"/proc/{gw_pid}/fd"))
            out, err = hold.communicate(timeout=open_secs + self.args.ws_hold + 90)
        except BaseException:
            # Not one of self.procs: stop it here when the suite is cut short.
            os.killpg(hold.pid, signal.SIGKILL)
            hold.wait()
            raise
        rep = json.loads(out.decode().strip().splitlines()[-1])
        rss_after = measure.rss_kib([gw_pid])
        rep.update({"rss_before_kib": rss0, "rss_held_kib": rss_mid, "rss_after_kib": rss_after,
                    "gateway_fds_held": fds_mid, "workspaces": len(ids),
                    "kib_per_connection": (rss_mid - rss0) / max(1, rep["opened"])})
        self.results["websockets"] = rep
        log(f"  opened {rep['opened']}/{rep['connections']}, dropped {rep['dropped']}, "
            f"echoed {rep['frames_echoed']}/{rep['frames_sent']}, gateway RSS {rss0 / 1024:.1f} → {rss_mid / 1024:.1f} MiB "
            f"({rep['kib_per_connection']:.1f} KiB/connection)")
        self.procs.stop("dev")

    # ------------------------------------------------------------ the whole run

    def run(self):
        a = self.args
        self.results["machine"] = machine()
        log(f"work dir {self.work}")
        gate = measure.quiet_gate(max_wait=120, busy_limit=0.15)
        self.results["start_gate"] = gate
        log(f"machine busy {gate['busy'] * 100:.0f}% before starting (rustc running: {gate['rustc']})")
        self.start_origin()
        self.start_cluster()
        self.start_gateways()
        for n, is_scale_point, is_main in plan(a):
            self.grow_to(n)
            if is_scale_point:
                log(f"scale point N={n}")
                self.scale_point(n)
            if is_main:
                if "main" in a.blocks:
                    self.main_block()
                if "two-cores" in a.blocks:
                    self.two_cores_block()
                if "churn" in a.blocks:
                    self.churn_block()
                if "propagation" in a.blocks:
                    self.propagation_block()
                if "control-kill" in a.blocks:
                    self.control_kill_block()
        if "websockets" in a.blocks:
            self.websocket_block()


MAIN_N_BLOCKS = ("main", "two-cores", "churn", "propagation", "control-kill")


def plan(a):
    """The route counts the suite grows to, in order, each with whether it is a scale point
    and whether the main-N blocks run there. Only the blocks asked for make the table grow:
    `--blocks main` stops at --main-n instead of creating 100,000 pods for scale points."""
    scale = a.scale if "scale" in a.blocks else []
    main = [a.main_n] if any(b in a.blocks for b in MAIN_N_BLOCKS) else []
    return [(n, n in scale, n in main) for n in sorted(set(scale + main))]


def busy_ports(ports):
    """The ports among `ports` that something already listens on or holds. A leftover
    process (an orphaned nginx worker from an earlier run) would otherwise answer in place
    of the suite's own and be noticed only when its namesake is found dead mid-run."""
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # Like the servers themselves: connections of a previous run lingering in
            # TIME_WAIT do not make a port busy, a listener does.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                busy.append(port)
    return busy


def every_port():
    return sorted(set(PORTS.values()) | {PORTS["chp"] + 1} | set(ADMIN.values())
                  | {peers.ORIGIN_PORT, peers.ORIGIN_STATUS_PORT, 18400, 18401})


def stop_on_sigterm():
    """SIGTERM (a CI timeout, `kill`) ends the suite like Ctrl-C does: the exception unwinds
    through main's `finally`, which stops every process the suite started."""
    def terminated(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, terminated)


def machine():
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def version(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    chp_pkg = os.path.join(HARNESS, "node_modules", "configurable-http-proxy", "package.json")
    return {
        "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "nginx": version(["nginx", "-v"]), "haproxy": version(["haproxy", "-v"]),
        "wrk": version(["wrk", "-v"]), "node": version(["node", "--version"]),
        "chp": json.load(open(chp_pkg))["version"] if os.path.exists(chp_pkg) else "?",
        "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
    }


def parse():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3, help="interleaved rounds per figure (medians reported)")
    p.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    p.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before each run")
    p.add_argument("--main-n", type=int, default=1000, help="routes in the side-by-side block")
    p.add_argument("--scale", type=lambda s: [int(x) for x in s.split(",")], default=[10, 1000, 10000, 100000])
    p.add_argument("--churn-rates", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000],
                   help="route changes a second during full load")
    p.add_argument("--spawns", type=int, default=1000, help="spawns for the propagation figures")
    p.add_argument("--ws-connections", type=int, default=5000)
    p.add_argument("--ws-hold", type=int, default=60)
    p.add_argument("--ws-workspaces", type=int, default=10)
    p.add_argument("--upstream-pool-size", type=int, default=0,
                   help="the gateways' --upstream-pool-size (0: their default)")
    p.add_argument("--blocks", type=lambda s: s.split(","),
                   default=["scale", "main", "two-cores", "churn", "propagation", "control-kill", "websockets"],
                   help="comma-separated: scale (the N points of --scale), main, two-cores, churn, "
                        "propagation, control-kill (at --main-n), websockets")
    p.add_argument("--skip-peers", action="store_true", help="only our gateway in the main block")
    p.add_argument("--max-minutes", type=int, default=60, help="hard stop for the whole suite")
    p.add_argument("--out", default=os.path.join(ROOT, "loadtest", "results"))
    p.add_argument("--date", default=datetime.date.today().isoformat())
    return p.parse_args()


def main():
    args = parse()
    for tool in ("nginx", "haproxy", "wrk", "node", "taskset"):
        if not shutil.which(tool):
            print(f"suite: {tool} is not installed (loadtest/harness/run installs it)", file=sys.stderr)
            return 2
    for b in ("nocrd9", "nocrd9-gateway", "kube-sim", "ws-hold"):
        if not os.path.exists(os.path.join(REL, b)):
            print(f"suite: {REL}/{b} is missing: cargo build --release --workspace --bins", file=sys.stderr)
            return 2

    busy = busy_ports(every_port())
    if busy:
        print(f"suite: ports in use: {busy} (a process left from an earlier run? `ss -ltnp`)", file=sys.stderr)
        return 2

    def alarm(*_):
        raise TimeoutError(f"the suite hit its {args.max_minutes}-minute limit")
    signal.signal(signal.SIGALRM, alarm)
    stop_on_sigterm()
    signal.alarm(args.max_minutes * 60)
    suite = Suite(args)
    started = time.time()
    try:
        suite.run()
        ok = True
    except BaseException as e:  # noqa: BLE001 — report what we have, then fail
        log(f"suite stopped: {type(e).__name__}: {e}")
        suite.results["aborted"] = f"{type(e).__name__}: {e}"
        ok = False
    finally:
        signal.alarm(0)
        suite.procs.stop_all()
    suite.results["wall_seconds"] = round(time.time() - started)
    os.makedirs(args.out, exist_ok=True)
    paths = report.write(suite.results, args.out, args.date)
    log("wrote " + ", ".join(paths))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Unit tests of the load harness's pure parts (run by loadtest/tests/harness.rs):
percentiles, the wrk Lua script, Prometheus parsing, the peers' configurations, the
report, and the suite's refusal to start without its tools."""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
import instructions  # noqa: E402
import measure  # noqa: E402
import peers  # noqa: E402
import report  # noqa: E402
import suite  # noqa: E402

def read(path):
    with open(path) as f:
        return f.read()


ROUTES = [("ws-000001", "127.64.0.1", "user-000001"), ("ws-000002", "127.64.0.2", "user-000002")]


def run(**extra):
    base = {"rps": 1000.0, "p50": 500, "p99": 2000, "p999": 4000, "cpu_us_per_req": 90.0, "rss_kib": 40960,
            "new_upstream_per_1k": 0.1, "errors": 0, "status_errors": 0}
    base.update(extra)
    return base


class Harness(unittest.TestCase):
    def test_percentiles_interpolate(self):
        self.assertEqual(report.pct([1, 2, 3, 4, 5], 50), 3)
        self.assertAlmostEqual(report.pct(list(range(1, 101)), 99), 99.01)
        self.assertTrue(report.pct([], 50) != report.pct([], 50))  # NaN for no data

    def test_lua_renders_requests_in_init_with_each_owners_token(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "x.lua")
            measure.write_lua(path, ["ws-000001", "ws-000002"], ["tok-1", "tok-2"])
            lua = read(path)
        self.assertIn('"/route/ws-000002/some/path?x=1"', lua)
        self.assertIn('"tok-2"', lua)
        # wrk knows the Host header only from init on (rendering earlier sent none).
        self.assertIn("init = function(args)", lua)
        self.assertIn("WRKJSON", lua)

    def test_metrics_are_summed_over_label_sets_and_not_confused_with_prefixes(self):
        page = ("# HELP x_total help\nx_total{a=\"1\"} 2\nx_total{a=\"2\"} 3\nx_total_more 100\n")
        with mock.patch.object(measure, "http_get", return_value=(200, page.encode())):
            self.assertEqual(measure.metric("http://unused", "x_total"), 5)
            self.assertIsNone(measure.metric("http://unused", "y_total"))

    def test_haproxy_checks_the_token_and_the_owner_only_when_asked(self):
        with tempfile.TemporaryDirectory() as d:
            plain = read(peers.haproxy_conf(d, ROUTES, 18111))
            hs = read(peers.haproxy_conf(d, ROUTES, 18112, "HS256", "s3cret", None))
            owners = read(os.path.join(d, "ws2owner.map"))
        self.assertNotIn("jwt_verify", plain)
        self.assertIn('jwt_verify(txn.alg,"s3cret")', hs)
        self.assertIn("strcmp(txn.owner)", hs)
        self.assertIn("ws-000002 user-000002", owners)
        self.assertIn("maxconn 9000", plain)  # 2 × maxconn must stay under the 20,000-fd limit

    def test_nginx_maps_every_id_to_its_own_pooled_upstream(self):
        with tempfile.TemporaryDirectory() as d:
            peers.nginx_conf(d, ROUTES, 18101)
            ups = read(os.path.join(d, "nginx-upstreams.conf"))
        self.assertIn("upstream u_ws-000002 { server 127.64.0.2:18080; keepalive 16;", ups)

    def test_tokens_verify_as_jwts(self):
        tok = cluster.hs256("secret-secret-secret-secret-secret-00", "user-1", ttl=60)
        header, payload, _ = tok.split(".")
        claims = json.loads(cluster.base64.urlsafe_b64decode(payload + "=="))
        self.assertEqual(claims["sub"], "user-1")

    def test_the_report_has_the_tables_and_says_when_a_run_stopped(self):
        results = {
            "config": {"main_n": 1000, "runs": 1, "duration": 3, "warmup": 1, "ws_hold": 10},
            "machine": {"cpu": "test cpu", "cores": 2}, "start_gate": {"busy": 0.01},
            "checks": [{"proxy": "gateway", "path": "/route/x/", "expect": 404, "got": 404, "ok": True}],
            "main": {"gateway": [run(user_us_per_req=40.0, kernel_us_per_req=50.0)],
                     "haproxy": [run(cpu_us_per_req=34.0)]},
            "scale": {"10": {"runs": [run()], "traffic_routes": 10, "rss_kib": 1024,
                             "haproxy_runs": [run(cpu_us_per_req=20.0, user_us_per_req=5.0, kernel_us_per_req=15.0)]},
                      "1000": {"runs": [run(rps=900.0)], "traffic_routes": 1000, "rss_kib": 2048,
                               "haproxy_runs": [run(cpu_us_per_req=25.0)]}},
            "churn": {"0": [run()], "100": [run(route_changes_per_s=99, deltas_applied_per_s=198)]},
            "aborted": "TimeoutError: limit", "notes": ["a note"],
        }
        with tempfile.TemporaryDirectory() as d:
            paths = report.write(results, d, "2000-01-01")
            md = read(paths[0])
            svg = read(os.path.join(d, "2000-01-01-scale.svg"))
        self.assertIn("| gateway | 1,000 (1,000–1,000)", md)
        self.assertIn("anchor 17.7", md)
        # user + kernel where the runs recorded them, "—" for older runs
        self.assertIn("| 90.0 (90.0–90.0) | 40.0 + 50.0 | target", md)
        self.assertIn("| 34.0 (34.0–34.0) | — | anchor", md)
        # HAProxy beside the gateway at every scale point, each against its own smallest N
        self.assertIn("| 20.0 (20.0–20.0) | 5.0 + 15.0 | 1.00× |", md)
        self.assertIn("| 25.0 (25.0–25.0) | — | 1.25× |", md)
        self.assertIn("The run stopped early: TimeoutError: limit", md)
        self.assertIn("Note: a note", md)
        self.assertIn("1/1 passed", md)
        self.assertTrue(svg.startswith("<svg"))

    def test_only_the_blocks_asked_for_grow_the_table(self):
        def plan(blocks, scale=(10, 1000, 100000), main_n=1000):
            return suite.plan(mock.Mock(blocks=blocks, scale=list(scale), main_n=main_n))
        every = ["scale", "main", "two-cores", "churn", "propagation", "control-kill", "websockets"]
        self.assertEqual(plan(every), [(10, True, False), (1000, True, True), (100000, True, False)])
        self.assertEqual(plan(["main"]), [(1000, False, True)], "no scale points: no 100,000 pods")
        self.assertEqual(plan(["scale"], main_n=500), [(10, True, False), (1000, True, False), (100000, True, False)])
        self.assertEqual(plan(["churn", "scale"], main_n=500),
                         [(10, True, False), (500, False, True), (1000, True, False), (100000, True, False)])
        self.assertEqual(plan(["websockets"]), [])

    def test_ports_already_taken_are_named(self):
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx and HAProxy do
            held.bind(("127.0.0.1", 0))
            held.listen()
            port = held.getsockname()[1]
            self.assertEqual(suite.busy_ports([port]), [port])
            # A closed connection's TIME_WAIT on the server side does not count.
            client = socket.create_connection(("127.0.0.1", port))
            conn, _ = held.accept()
            conn.close()  # the server closes first: its side goes to TIME_WAIT
            client.recv(1)
            client.close()
        self.assertEqual(suite.busy_ports([port]), [], "only TIME_WAIT left on the port")
        self.assertIn(peers.ORIGIN_PORT, suite.every_port())
        self.assertIn(18401, suite.every_port(), "the dev gateway of the WebSocket block")

    def test_sigterm_unwinds_like_ctrl_c(self):
        import signal
        before = signal.getsignal(signal.SIGTERM)
        try:
            suite.stop_on_sigterm()
            with self.assertRaises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(100):  # the handler runs between bytecodes
                    pass
        finally:
            signal.signal(signal.SIGTERM, before)

    def test_strace_summaries_become_calls_per_request(self):
        summary = """% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 52.31    0.123456           2      2000           recvfrom
 40.00    0.100000           1      2000           sendto
  0.10    0.000100           1        10         2 connect
------ ----------- ----------- --------- --------- ----------------
100.00    0.223556           1      4010         2 total
"""
        self.assertEqual(instructions.syscall_counts(summary, 1000, 2), [(2.0, "sendto"), (2.0, "recvfrom")])
        self.assertEqual(instructions.syscall_counts(summary, 1000, 5)[-1], (0.01, "connect"))

    def test_haproxy_is_counted_on_static_routes_own_addresses(self):
        # loadtest/src/bin/static-routes.rs `address`: 127.1.⌊(i−1)/250⌋.((i−1)%250+1)
        self.assertEqual([instructions.static_route_ip(i) for i in (1, 250, 251, 1000)],
                         ["127.1.0.1", "127.1.0.250", "127.1.1.1", "127.1.3.250"])

    def test_callgrind_totals_and_top_functions_per_request(self):
        annotated = """--------------------------------------------------------------------------------
1,000,000 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                  file:function
--------------------------------------------------------------------------------
1,000,000 (100.0%)  ./misc/clone.S:clone [/usr/lib/libc.so.6]
  300,000 (30.00%)  ./string/memmove.S:__memcpy_avx_unaligned_erms [/usr/lib/libc.so.6]
  200,000 (20.00%)  http/src/header/map.rs:http::header::map::HeaderMap<T>::get [/x/gw]
"""
        self.assertEqual(instructions.program_total(annotated), 1_000_000)
        top = instructions.top_functions(annotated, 1000, 5)
        self.assertEqual([round(n) for n, _ in top], [300, 200], "thread-entry frames left out")
        self.assertIn("memcpy", top[0][1])
        with self.assertRaises(ValueError):
            instructions.program_total("no totals here")

    def test_allocation_sites_skip_the_allocator_plumbing(self):
        dhat = {"ftbl": ["[root]",
                         "0x1: malloc (in /usr/libexec/valgrind/vgpreload_dhat-amd64-linux.so)",
                         "0x2: alloc (library/alloc/src/alloc.rs:95)",
                         "0x3: gateway::routing::by_path (routing.rs:150)",
                         "0x4: gateway::routing::Routing::parse (routing.rs:60)",
                         "0x5: pingora_http::RequestHeader::build (lib.rs:100)"],
                "pps": [{"tb": 4000, "tbk": 200, "fs": [1, 2, 3, 4]},
                        {"tb": 1000, "tbk": 100, "fs": [1, 2, 3, 4]},
                        {"tb": 9000, "tbk": 100, "fs": [1, 5]}]}
        total, sites = instructions.allocation_sites(dhat, 100, 5)
        self.assertEqual(total, 4.0)
        self.assertEqual(sites[0][0], 3.0, "one site, merged by its first frames outside the allocator")
        self.assertIn("gateway::routing::by_path", sites[0][2])
        self.assertNotIn("alloc.rs", sites[0][2])
        self.assertEqual((sites[1][0], sites[1][1]), (1.0, 90.0))

    def test_the_suite_refuses_to_start_without_its_binaries(self):
        env = dict(os.environ, PATH=os.environ.get("PATH", ""))
        with tempfile.TemporaryDirectory() as d:
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "suite.py")
            # A copy of the harness whose target/release is empty: exit 2, naming the binary.
            harness = os.path.join(d, "loadtest", "harness")
            os.makedirs(harness)
            for f in ("suite.py", "measure.py", "cluster.py", "peers.py", "report.py"):
                with open(os.path.join(os.path.dirname(script), f)) as src, open(os.path.join(harness, f), "w") as dst:
                    dst.write(src.read())
            fake_bin = os.path.join(d, "bin")
            os.makedirs(fake_bin)
            for tool in ("nginx", "haproxy", "wrk", "node", "taskset"):
                p = os.path.join(fake_bin, tool)
                with open(p, "w") as f:
                    f.write("#!/bin/sh\nexit 0\n")
                os.chmod(p, 0o755)
            env["PATH"] = fake_bin + os.pathsep + env["PATH"]
            out = subprocess.run([sys.executable, os.path.join(harness, "suite.py")], capture_output=True,
                                 text=True, env=env, timeout=60)
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("nocrd9 is missing", out.stderr)
        self.assertIn("cargo build --release --workspace --bins", out.stderr)


if __name__ == "__main__":
    unittest.main()

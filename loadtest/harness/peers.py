"""The origin and the peers, configured from the same route list as our gateway:
nginx (map id → upstream per pod, keepalive; no auth), HAProxy 2.6 (map + set-dst, tuned
per-pod pools; optionally jwt_verify + owner check) and configurable-http-proxy (routes
through its REST API). Configurations follow ../shared/reference/perf-anchors.md."""

import http.client
import json
import os

ORIGIN_PORT = 18080
ORIGIN_STATUS_PORT = 18081


def origin_conf(d):
    """One nginx on 0.0.0.0 answering every pod IP with a 13-byte 200 (the anchors' pods)."""
    path = os.path.join(d, "origin.conf")
    with open(path, "w") as f:
        f.write(f"""worker_processes 1;
worker_rlimit_nofile 19000;
pid {d}/origin.pid;
error_log {d}/origin.err warn;
events {{ worker_connections 18000; }}
http {{
  access_log off;
  # longer than the quiet-machine gate may wait between a warm-up and its measured run
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  server {{
    listen 0.0.0.0:{ORIGIN_PORT} backlog=4096;
    location / {{ default_type text/plain; return 200 'hello, world\\n'; }}
  }}
  server {{
    listen 127.0.0.1:{ORIGIN_STATUS_PORT};
    location / {{ stub_status; }}
  }}
}}
""")
    return path


def nginx_conf(d, routes, port):
    """routes: [(id, ip, owner)]."""
    with open(os.path.join(d, "nginx-map.conf"), "w") as f:
        for wid, _, _ in routes:
            f.write(f"{wid} u_{wid};\n")
    with open(os.path.join(d, "nginx-upstreams.conf"), "w") as f:
        for wid, ip, _ in routes:
            f.write(f"upstream u_{wid} {{ server {ip}:{ORIGIN_PORT}; keepalive 16; keepalive_requests 1000000; }}\n")
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(f"""worker_processes 1;
worker_rlimit_nofile 19000;
pid {d}/nginx.pid;
error_log {d}/nginx.err warn;
events {{ worker_connections 18000; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  map_hash_max_size 262144;
  map_hash_bucket_size 128;
  map $ws_id $ws_target {{ default ""; include {d}/nginx-map.conf; }}
  include {d}/nginx-upstreams.conf;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location ~ ^/route/(?<ws_id>[^/]+) {{
      if ($ws_target = "") {{ return 404; }}
      rewrite ^/route/[^/]+/?(.*)$ /$1 break;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://$ws_target;
    }}
  }}
}}
""")
    return path


def haproxy_conf(d, routes, port, auth=None, secret=None, pubkey_path=None):
    """auth: None, "HS256" or "RS256"."""
    ip_map = os.path.join(d, "ws2ip.map")
    owner_map = os.path.join(d, "ws2owner.map")
    with open(ip_map, "w") as f:
        f.writelines(f"{wid} {ip}\n" for wid, ip, _ in routes)
    with open(owner_map, "w") as f:
        f.writelines(f"{wid} {sub}\n" for wid, _, sub in routes)
    jwt = ""
    if auth:
        key = f'"{secret}"' if auth == "HS256" else f'"{pubkey_path}"'
        jwt = f"""
  http-request set-var(txn.bearer) http_auth_bearer
  http-request return status 401 unless {{ var(txn.bearer) -m found }}
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request return status 401 unless {{ var(txn.alg) -m str {auth} }}
  http-request return status 401 unless {{ var(txn.bearer),jwt_verify(txn.alg,{key}) -m int 1 }}
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request set-var(txn.now) date
  http-request return status 401 unless {{ var(txn.exp),sub(txn.now) -m int gt 0 }}
  http-request set-var(txn.sub) var(txn.bearer),jwt_payload_query('$.sub')
  http-request set-var(txn.owner) var(txn.wsid),map({owner_map})
  http-request return status 403 unless {{ var(txn.sub),strcmp(txn.owner) eq 0 }}"""
    path = os.path.join(d, f"haproxy-{port}.cfg")
    with open(path, "w") as f:
        f.write(f"""global
  nbthread 1
  maxconn 9000
  tune.pool-high-fd-ratio 90
  tune.pool-low-fd-ratio 80
  log stderr format raw local0 err
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:{port} backlog 4096
  http-request set-var(txn.wsid) path,field(3,/)
  http-request set-var(txn.dstip) var(txn.wsid),map({ip_map})
  http-request return status 404 unless {{ var(txn.dstip) -m found }}{jwt}
  http-request replace-path ^/route/[^/]+/?(.*)$ /\\1
  default_backend pods
backend pods
  http-reuse safe
  http-request set-dst var(txn.dstip)
  http-request set-dst-port int({ORIGIN_PORT})
  server pod 0.0.0.0:0 pool-low-conn 12000 pool-purge-delay 60s
""")
    return path


def chp_add_routes(api_port, token, routes):
    """Loads the routes into configurable-http-proxy over one keep-alive connection."""
    c = http.client.HTTPConnection("127.0.0.1", api_port, timeout=30)
    for wid, ip, _ in routes:
        body = json.dumps({"target": f"http://{ip}:{ORIGIN_PORT}"})
        c.request("POST", f"/api/routes/route/{wid}", body=body,
                  headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 201:
            raise RuntimeError(f"CHP refused route {wid}: {r.status}")

"""The simulated cluster as the harness sees it: workspace pods made through the real
Kubernetes API (so the control plane's watch publishes their routes), a watch that notes
when each pod turns Ready, tokens for the owners, and MCP calls to nocrd9."""

import base64
import hashlib
import hmac
import http.client
import json
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor


def workspace_id(i):
    return f"ws-{i:06d}"


def owner(i):
    return f"user-{i:06d}"


class Kube:
    def __init__(self, kubeconfig_path):
        text = open(kubeconfig_path).read()
        def value(key):
            line = next(l for l in text.splitlines() if f"{key}:" in l)
            return line.split(f"{key}:", 1)[1].strip().strip('"')
        server = value("server")
        self.token = value("token")
        u = urllib.parse.urlparse(server)
        assert u.scheme == "http", f"the harness needs a plain-http kubeconfig, got {server}"
        self.host, self.port = u.hostname, u.port
        self.local = threading.local()

    def conn(self):
        c = getattr(self.local, "c", None)
        if c is None:
            c = self.local.c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        return c

    def request(self, method, path, body=None):
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(3):
            c = self.conn()
            try:
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                payload = r.read()
                if r.status == 429 or r.status >= 500:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                return r.status, json.loads(payload) if payload else None
            except (http.client.HTTPException, OSError):
                self.local.c = None
                if attempt == 2:
                    raise
        return r.status, None

    def create_workspace_pod(self, wid, sub, namespace="default"):
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": f"pod-{wid}",
                "labels": {"nogoo9/type": "workspace", "nogoo9/workspace-id": wid},
                "annotations": {"nogoo9/user-sub": sub},
            },
            "spec": {"containers": [{"name": "app", "image": "origin:external"}]},
        }
        status, body = self.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
        if status not in (201, 409):
            raise RuntimeError(f"creating pod for {wid}: {status} {body}")

    def delete_pod(self, name, namespace="default"):
        status, body = self.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}?gracePeriodSeconds=0")
        if status not in (200, 202, 404):
            raise RuntimeError(f"deleting {name}: {status} {body}")

    def populate(self, first, last, threads=4):
        """Workspace pods first..last (inclusive), owner user-i each."""
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(lambda i: self.create_workspace_pod(workspace_id(i), owner(i)), range(first, last + 1)))

    def pod_ips(self, namespace="default"):
        status, body = self.request("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=nogoo9/type%3Dworkspace")
        out = {}
        for p in body["items"]:
            wid = p["metadata"]["labels"].get("nogoo9/workspace-id")
            ip = (p.get("status") or {}).get("podIP")
            if wid and ip:
                out[wid] = ip
        return out


class ReadyWatch:
    """Streams pod events and records when each workspace is first seen Ready."""

    def __init__(self, kube, namespace="default"):
        self.kube, self.namespace = kube, namespace
        self.ready_at = {}
        self.cond = threading.Condition()
        self.stop = False
        status, body = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=nogoo9/type%3Dworkspace&limit=1")
        self.rv = body["metadata"]["resourceVersion"]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        c = http.client.HTTPConnection(self.kube.host, self.kube.port, timeout=300)
        c.request("GET", f"/api/v1/namespaces/{self.namespace}/pods?watch=1&resourceVersion={self.rv}"
                         f"&labelSelector=nogoo9/type%3Dworkspace",
                  headers={"Authorization": f"Bearer {self.kube.token}"})
        r = c.getresponse()
        buf = b""
        while not self.stop:
            chunk = r.read1(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                ev = json.loads(line)
                obj = ev.get("object", {})
                conds = (obj.get("status") or {}).get("conditions") or []
                if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                    wid = obj["metadata"]["labels"].get("nogoo9/workspace-id")
                    with self.cond:
                        if wid not in self.ready_at:
                            self.ready_at[wid] = time.perf_counter()
                            self.cond.notify_all()

    def wait_ready(self, wid, timeout=30):
        with self.cond:
            if not self.cond.wait_for(lambda: wid in self.ready_at, timeout):
                raise RuntimeError(f"{wid} not seen Ready within {timeout} s")
            return self.ready_at[wid]


# ---------------------------------------------------------------- tokens

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(secret, sub, ttl=7200):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": sub, "exp": int(time.time()) + ttl}).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(sig)}"


def rs256_keys():
    """A fresh RSA-2048 key: (private key object, public PEM text)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return key, pem


def rs256(key, sub, ttl=7200):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    header = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": sub, "exp": int(time.time()) + ttl}).encode())
    sig = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{b64(sig)}"


# ---------------------------------------------------------------- MCP

class Mcp:
    """Streamable HTTP MCP client (one session) for nocrd9."""

    def __init__(self, host, port, token=None):
        self.c = http.client.HTTPConnection(host, port, timeout=120)
        self.token, self.session, self.id = token, None, 0
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "loadtest-harness", "version": "1"}})
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def post(self, msg):
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                   "mcp-protocol-version": "2025-06-18"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.session:
            headers["mcp-session-id"] = self.session
        # Bytes, not str: http.client then sends head and body in one write (a separate
        # small write meets Nagle + delayed ACK and adds ~40 ms to every call).
        self.c.request("POST", "/mcp", body=json.dumps(msg).encode(), headers=headers)
        r = self.c.getresponse()
        body = r.read().decode()
        self.session = r.getheader("mcp-session-id") or self.session
        if r.status >= 400:
            raise RuntimeError(f"MCP {msg.get('method')}: HTTP {r.status} {body}")
        return body

    def request(self, method, params):
        self.id += 1
        body = self.post({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params})
        for line in body.splitlines():
            if line.startswith("data: {"):
                m = json.loads(line[6:])
                if m.get("id") == self.id:
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m["result"]
        raise RuntimeError(f"no answer to {method}: {body[:500]}")

    def call(self, tool, args):
        r = self.request("tools/call", {"name": tool, "arguments": args})
        if r.get("isError"):
            raise RuntimeError(f"{tool}: {r['content'][0]['text']}")
        return r.get("structuredContent") or {}

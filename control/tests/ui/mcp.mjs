// A minimal MCP client over streamable HTTP (fetch), for the browser tests' setup.
import assert from "node:assert/strict";

export async function mcpSession(url, token) {
  let session = null;
  let id = 0;
  async function post(message) {
    const headers = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      authorization: `Bearer ${token}`,
      "mcp-protocol-version": "2025-06-18",
    };
    if (session) headers["mcp-session-id"] = session;
    const res = await fetch(url, { method: "POST", headers, body: JSON.stringify(message), signal: AbortSignal.timeout(60000) });
    assert.ok(res.ok, `${message.method}: HTTP ${res.status} ${await res.clone().text()}`);
    session = res.headers.get("mcp-session-id") || session;
    if (message.id === undefined) return null;
    const text = await res.text();
    const messages = text.split("\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6)));
    if ((res.headers.get("content-type") || "").includes("application/json")) messages.push(JSON.parse(text));
    const answer = messages.find((m) => m.id === message.id);
    assert.ok(answer, `no answer to ${message.method}: ${text}`);
    return answer;
  }
  await post({ jsonrpc: "2.0", id: ++id, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "ui-test", version: "1" } } });
  await post({ jsonrpc: "2.0", method: "notifications/initialized" });
  return {
    request: (method, params) => post({ jsonrpc: "2.0", id: ++id, method, params }),
    async call(name, args) {
      const a = await post({ jsonrpc: "2.0", id: ++id, method: "tools/call", params: { name, arguments: args } });
      assert.ok(a.result, `${name}: ${JSON.stringify(a.error)}`);
      return a.result;
    },
  };
}

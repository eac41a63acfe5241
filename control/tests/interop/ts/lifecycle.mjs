// The workspace lifecycle of the brief, driven by the official MCP TypeScript SDK
// (@modelcontextprotocol/sdk, pinned in package-lock.json) against nocrd9 on the simulated
// cluster: over streamable HTTP (auth on) and over stdio. Run by control/tests/it/interop.rs.
//
// Environment: NOCRD9_URL and NOCRD9_TOKEN (HTTP), NOCRD9_BIN and KUBECONFIG (stdio),
// NOCRD9_TMP (a scratch directory), NOCRD9_TOOLS (every tool name, JSON).
// Prints "typescript sdk: passed" at the end; any failed check exits non-zero.

import assert from "node:assert/strict";
import path from "node:path";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const SPEC = {
  containers: [
    {
      name: "workspace",
      image: "node:20-alpine",
      command: ["sleep", "infinity"],
      volumeMounts: [{ name: "ws", mountPath: "/workspace" }],
    },
  ],
  volumes: [{ name: "ws", emptyDir: {} }],
};
const ANNOTATIONS = {
  "nogoo9/required-context": "PROJECT_NAME,REPO_URL",
  "nogoo9/init-image": "alpine/git",
  "nogoo9/init-command": 'git clone "$REPO_URL" "/workspace/$PROJECT_NAME"',
};

const env = (name) => {
  const v = process.env[name];
  assert.ok(v, `${name} is not set`);
  return v;
};

const text = (result) => result.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");

function ok(result, what) {
  assert.notEqual(result.isError, true, `${what}: ${text(result)}`);
  return result.structuredContent;
}

async function lifecycle(client, suffix) {
  const expected = JSON.parse(env("NOCRD9_TOOLS"));
  // The whole listing validates in the SDK (it refused boolean subschemas before).
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  assert.deepEqual(names, [...expected].sort(), "every tool is listed");
  for (const t of tools) {
    assert.equal(t.inputSchema.type, "object", `${t.name} takes an object`);
  }

  const template = `ts-${suffix}`;
  const id = `ts-ws-${suffix}`;
  ok(
    await client.callTool({
      name: "create_template",
      arguments: { name: template, description: "typescript interop", spec: SPEC, annotations: ANNOTATIONS },
    }),
    "create_template",
  );
  const listed = ok(await client.callTool({ name: "list_templates", arguments: {} }), "list_templates");
  assert.ok(listed.templates.some((t) => t.name === template), JSON.stringify(listed));

  // A spawn with progress notifications until the workspace is routable.
  const progress = [];
  const spawned = ok(
    await client.callTool(
      {
        name: "spawn_workspace",
        arguments: { id, templateRef: template, context: { PROJECT_NAME: "p", REPO_URL: "https://example.com/r.git" } },
      },
      undefined,
      { onprogress: (p) => progress.push(p), timeout: 90_000 },
    ),
    "spawn_workspace",
  );
  assert.equal(spawned.status, "ready", JSON.stringify(spawned));
  assert.ok(progress.length >= 2, `progress notifications: ${JSON.stringify(progress)}`);
  const steps = progress.map((p) => p.progress);
  assert.deepEqual(steps, [...steps].sort((a, b) => a - b), "progress only goes up");
  assert.ok(progress.every((p) => typeof p.message === "string" && p.message.length > 0));

  const ws = ok(await client.callTool({ name: "list_workspaces", arguments: {} }), "list_workspaces");
  assert.ok(ws.workspaces.some((w) => w.id === id), JSON.stringify(ws));

  // Resources: the template as pod-template://, and the UI.
  const { resources } = await client.listResources();
  const uri = `pod-template://default/${template}`;
  assert.ok(resources.some((r) => r.uri === uri), JSON.stringify(resources.map((r) => r.uri)));
  const read = await client.readResource({ uri });
  assert.deepEqual(JSON.parse(read.contents[0].text).containers[0].image, "node:20-alpine");
  const ui = await client.readResource({ uri: "ui://nogoo9/app" });
  assert.match(ui.contents[0].text, /<html/i);
  const { resourceTemplates } = await client.listResourceTemplates();
  assert.ok(resourceTemplates.some((t) => t.uriTemplate === "pod-template://{namespace}/{name}"));

  ok(await client.callTool({ name: "stop_workspace", arguments: { id } }), "stop_workspace");
  ok(await client.callTool({ name: "delete_template", arguments: { name: template } }), "delete_template");
}

async function overHttp() {
  const transport = new StreamableHTTPClientTransport(new URL(env("NOCRD9_URL")), {
    requestInit: { headers: { Authorization: `Bearer ${env("NOCRD9_TOKEN")}` } },
  });
  const client = new Client({ name: "nocrd9-ts-interop", version: "1.0.0" });
  await client.connect(transport);
  try {
    await lifecycle(client, "http");
  } finally {
    await client.close();
  }
  console.log("streamable HTTP: passed");
}

async function overStdio() {
  const transport = new StdioClientTransport({
    command: env("NOCRD9_BIN"),
    args: [
      "--transport",
      "stdio",
      "--namespace",
      "default",
      "--gateway-socket",
      path.join(env("NOCRD9_TMP"), "ts-stdio.sock"),
    ],
    env: { KUBECONFIG: env("KUBECONFIG"), PATH: process.env.PATH ?? "", LOG_LEVEL: "warn" },
    stderr: "inherit",
  });
  const client = new Client({ name: "nocrd9-ts-interop", version: "1.0.0" });
  await client.connect(transport);
  try {
    await lifecycle(client, "stdio");
  } finally {
    await client.close();
  }
  console.log("stdio: passed");
}

await overHttp();
await overStdio();
console.log("typescript sdk: passed");

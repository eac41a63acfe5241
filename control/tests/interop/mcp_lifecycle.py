"""The workspace lifecycle of the brief, driven by the official MCP Python SDK against
nocrd9 (started by control/tests/interop.rs on the simulated cluster).

Streamable HTTP in the session-based revision (initialize handshake, 2025-11-25) and in
the stateless 2026-07-28 revision, and stdio. Environment: NOCRD9_URL, NOCRD9_TOKEN
(HTTP has auth on), NOCRD9_BIN and KUBECONFIG (stdio), NOCRD9_TMP (a scratch dir).
"""

import asyncio
import json
import os
import unittest

import httpx2
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

SPEC = {
    "containers": [
        {
            "name": "workspace",
            "image": "node:20-alpine",
            "command": ["sleep", "infinity"],
            "volumeMounts": [{"name": "ws", "mountPath": "/workspace"}],
        }
    ],
    "volumes": [{"name": "ws", "emptyDir": {}}],
}
ANNOTATIONS = {
    "nogoo9/required-context": "PROJECT_NAME,REPO_URL",
    "nogoo9/init-image": "alpine/git",
    "nogoo9/init-command": "git clone $REPO_URL /workspace/$PROJECT_NAME",
    "nogoo9/pre-stop-command": "echo saving $PROJECT_NAME",
}


def structured(result):
    assert not result.is_error, f"tool error: {text(result)}"
    return result.structured_content


def text(result):
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def lifecycle(tc: unittest.TestCase, client: Client, suffix: str):
    template = f"interop-{suffix}"
    ws = f"py-{suffix}"
    tools = {t.name for t in (await client.list_tools()).tools}
    tc.assertTrue({"spawn_workspace", "stop_workspace", "list_workspaces", "create_template"} <= tools, tools)

    structured(await client.call_tool("create_template", {
        "name": template, "description": "interop", "tag": "t1", "spec": SPEC, "annotations": ANNOTATIONS,
    }))
    listed = structured(await client.call_tool("list_templates", {}))
    tc.assertIn(template, [t["name"] for t in listed["templates"]])

    # Missing context: a tool error naming the keys, and nothing created.
    missing = await client.call_tool("spawn_workspace", {"id": ws, "templateRef": template, "context": {"PROJECT_NAME": "p"}})
    tc.assertTrue(missing.is_error)
    tc.assertIn("REPO_URL", text(missing))
    tc.assertEqual([w for w in structured(await client.call_tool("list_workspaces", {}))["workspaces"] if w["id"] == ws], [])

    progress = []

    async def on_progress(done, total, message):
        progress.append((done, total, message))

    spawned = structured(await client.call_tool(
        "spawn_workspace",
        {"id": ws, "templateRef": template, "context": {"PROJECT_NAME": "p", "REPO_URL": "https://example.com/r.git"}},
        progress_callback=on_progress,
    ))
    tc.assertEqual(spawned["id"], ws)
    tc.assertEqual(spawned["status"], "ready")
    tc.assertFalse(spawned["existing"])
    pod_name = spawned["podName"]

    pod = structured(await client.call_tool("get_pod", {"name": pod_name}))["pod"]
    tc.assertEqual(pod["status"]["phase"], "Running")
    init = pod["status"]["initContainerStatuses"][0]
    tc.assertEqual(init["name"], "spawner-init")
    tc.assertEqual(init["state"]["terminated"]["exitCode"], 0, "the init container ran")
    tc.assertEqual(pod["metadata"]["labels"]["nogoo9/workspace-id"], ws)

    logs = await client.call_tool("get_pod_logs", {"name": pod_name})
    tc.assertFalse(logs.is_error, text(logs))

    again = structured(await client.call_tool("spawn_workspace", {"id": ws, "templateRef": template, "context": {"PROJECT_NAME": "p", "REPO_URL": "x"}}))
    tc.assertTrue(again["existing"], "spawning an existing id returns it")

    stopped = structured(await client.call_tool("stop_workspace", {"id": ws}))
    tc.assertEqual(stopped["status"], "terminating")
    for _ in range(200):
        rows = structured(await client.call_tool("list_workspaces", {}))["workspaces"]
        if not [w for w in rows if w["id"] == ws]:
            break
        await asyncio.sleep(0.05)
    else:
        tc.fail(f"workspace {ws} still listed after stop: {rows}")

    bad = await client.call_tool("stop_workspace", {"id": "Not A Valid Id"})
    tc.assertTrue(bad.is_error)
    tc.assertIn("id", text(bad))
    structured(await client.call_tool("delete_template", {"name": template}))
    return progress


def http_client(mode: str) -> Client:
    headers = {"Authorization": f"Bearer {os.environ['NOCRD9_TOKEN']}"}
    transport = streamable_http_client(
        os.environ["NOCRD9_URL"], http_client=httpx2.AsyncClient(headers=headers, timeout=60)
    )
    return Client(transport, mode=mode, read_timeout_seconds=60)


class Lifecycle(unittest.IsolatedAsyncioTestCase):
    async def test_http_session_based(self):
        async with http_client("legacy") as client:
            progress = await lifecycle(self, client, "legacy")
        self.assertEqual([p[0] for p in progress], [1, 2, 3, 4], progress)

    async def test_http_2026_07_28(self):
        async with http_client("2026-07-28") as client:
            await lifecycle(self, client, "modern")

    async def test_stdio(self):
        tmp = os.environ["NOCRD9_TMP"]
        params = StdioServerParameters(
            command=os.environ["NOCRD9_BIN"],
            args=["--transport", "stdio", "--namespace", "default", "--gateway-socket", os.path.join(tmp, "stdio.sock")],
            env={"KUBECONFIG": os.environ["KUBECONFIG"], "PATH": os.environ.get("PATH", "")},
        )
        async with Client(stdio_client(params), mode="legacy", read_timeout_seconds=60) as client:
            await lifecycle(self, client, "stdio")

    async def test_http_without_a_token_is_refused(self):
        statuses = []

        async def record(response):
            statuses.append(response.status_code)

        http = httpx2.AsyncClient(timeout=10, event_hooks={"response": [record]})
        transport = streamable_http_client(os.environ["NOCRD9_URL"], http_client=http)
        with self.assertRaises(Exception):
            async with Client(transport, mode="legacy") as client:
                await client.list_tools()
        self.assertIn(401, statuses)

if __name__ == "__main__":
    unittest.main(verbosity=2)

// The web UI in a real browser: Debian's Chromium (headless) driven by playwright-core,
// against `nocrd9 dev` on the simulated cluster. Started by control/tests/ui.rs, which
// passes the addresses and tokens in the environment. Every step is bounded in time;
// any failure exits non-zero with what was expected and what the page showed.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";
import { mcpSession as session } from "./mcp.mjs";

const UI = process.env.NOCRD9_UI; // http://127.0.0.1:PORT/ui
const MCP = process.env.NOCRD9_MCP; // http://127.0.0.1:PORT/mcp
const TOKEN = process.env.NOCRD9_TOKEN; // the dev user's
const OTHER_TOKEN = process.env.NOCRD9_OTHER_TOKEN; // another user's
const SHOTS = process.env.NOCRD9_SCREENSHOTS;
const CHROMIUM = process.env.NOCRD9_CHROMIUM || "/usr/bin/chromium";
for (const [k, v] of Object.entries({ UI, MCP, TOKEN, OTHER_TOKEN, SHOTS })) assert.ok(v, `${k} is not set`);
mkdirSync(SHOTS, { recursive: true });

const step = (what) => console.log(`step: ${what}`);
const mcpSession = (token) => session(MCP, token);

// ------------------------------------------------------------ setup: another user's workspace

step("another user (alice) spawns a workspace");
const other = await mcpSession(OTHER_TOKEN);
const spawned = await other.call("spawn_workspace", {
  id: "alice-ws", templateRef: "node-workspace-template", context: { PROJECT_NAME: "a", REPO_URL: "https://example.com/a.git" },
});
assert.equal(spawned.isError, false, JSON.stringify(spawned));

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu"], timeout: 60000 });
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(30000);
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));

  // ---------------------------------------------------------- a user signs in
  step("open the UI: auth is on, so it asks for a token");
  await page.goto(UI);
  const signin = page.getByRole("region", { name: "Sign in" });
  await signin.waitFor();
  await page.getByLabel("Token").fill("not-a-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("That is not a JWT").waitFor();
  await page.getByLabel("Token").fill(OTHER_TOKEN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await signin.waitFor({ state: "hidden" });
  await page.locator("#whoami").getByText("alice", { exact: true }).waitFor();
  await page.locator("#whoami").getByText("(user)").waitFor();

  step("a user sees only their own workspaces, and no administrator controls");
  await page.locator('#workspaces-table tr[data-key="alice-ws"]').waitFor();
  assert.equal(await page.locator('#workspaces-table tr[data-key="demo"]').count(), 0, "the dev user's workspace is shown to alice");
  assert.equal(await page.locator("#new-template").isVisible(), false, "a user is offered template writes");

  step("a user cannot take someone else's workspace id");
  await page.getByRole("button", { name: "New workspace" }).click();
  const spawnDialog = page.locator("#spawn-dialog");
  await spawnDialog.waitFor();
  await spawnDialog.getByLabel("Workspace ID").fill("demo");
  await spawnDialog.getByLabel("PROJECT_NAME").fill("mine");
  await spawnDialog.getByLabel("REPO_URL").fill("https://example.com/mine.git");
  await spawnDialog.getByRole("button", { name: "Start workspace" }).click();
  const spawnError = spawnDialog.locator("#spawn-error");
  await spawnError.filter({ hasText: /\S/ }).waitFor();
  const refusal = await spawnError.innerText();
  assert.match(refusal, /The workspace did not start: .*demo.*already taken/, "someone else's id is refused, in words");
  step(`refused as expected: ${refusal}`);
  await spawnDialog.getByRole("button", { name: "Cancel" }).click();
  await page.getByRole("button", { name: "Sign out" }).click();
  await signin.waitFor();

  // ---------------------------------------------------------- the administrator signs in
  step("the dev user (an administrator) signs in");
  await page.getByLabel("Token").fill(TOKEN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await signin.waitFor({ state: "hidden" });
  await page.locator("#whoami").getByText("dev", { exact: true }).waitFor();
  // The role arrives with the first tool answer, after the name.
  await page.locator("#whoami").getByText("(admin)").waitFor();
  assert.match(await page.locator("#whoami").innerText(), /Signed in as dev \(admin\) · token expires in/);

  step("an administrator sees every workspace, with its owner");
  const wsRows = page.locator("#workspaces-table tbody tr");
  await page.locator('#workspaces-table tr[data-key="demo"]').waitFor();
  await page.locator('#workspaces-table tr[data-key="alice-ws"]').waitFor();
  assert.match(await page.locator('#workspaces-table tr[data-key="alice-ws"]').innerText(), /alice-ws[\s\S]*alice/);
  assert.match(await page.locator('#workspaces-table tr[data-key="demo"]').innerText(), /demo[\s\S]*dev[\s\S]*node-workspace-template[\s\S]*Running[\s\S]*never/);
  await page.screenshot({ path: `${SHOTS}/workspaces.png` });

  // ---------------------------------------------------------- spawn from a template
  step("spawn from a template: a form with its required context");
  await page.getByRole("button", { name: "New workspace" }).click();
  await spawnDialog.waitFor();
  await spawnDialog.getByLabel("Workspace ID").fill("ui-ws");
  await spawnDialog.getByLabel("PROJECT_NAME").fill("ui");
  await spawnDialog.getByLabel("REPO_URL").fill("https://example.com/ui.git");
  await spawnDialog.getByRole("button", { name: "Start workspace" }).click();
  await spawnDialog.waitFor({ state: "hidden", timeout: 90000 });
  await page.locator("#banner").getByText("Workspace ui-ws is running.").waitFor();
  const uiRow = page.locator('#workspaces-table tr[data-key="ui-ws"]');
  await uiRow.getByText("Running").waitFor();

  // ---------------------------------------------------------- logs
  step("open its logs: pod and container picked, lines shown");
  await uiRow.getByRole("button", { name: "Logs of workspace ui-ws" }).click();
  await page.locator("#view-logs").waitFor();
  await page.locator("#logs-output").filter({ hasText: "[kube-sim]" }).waitFor();
  assert.match(await page.locator("#logs-pod").inputValue(), /ui-ws/);
  const containers = await page.locator("#logs-container option").allInnerTexts();
  assert.ok(containers.includes("workspace") && containers.includes("spawner-init"), `containers: ${containers}`);
  await page.getByLabel("Container").selectOption("spawner-init");
  await page.getByRole("button", { name: "Show logs" }).click();
  await page.locator("#logs-status").getByText("/ spawner-init").waitFor();
  await page.getByLabel("Follow").check();
  await page.locator("#logs-status").getByText("following").waitFor();
  await page.screenshot({ path: `${SHOTS}/logs.png` });
  await page.getByLabel("Follow").uncheck();

  // ---------------------------------------------------------- open through the gateway
  step("open the workspace through the gateway");
  await page.getByRole("tab", { name: "Workspaces" }).click();
  const [tab] = await Promise.all([
    context.waitForEvent("page"),
    uiRow.getByRole("link", { name: "Open workspace ui-ws" }).click(),
  ]);
  await tab.waitForLoadState();
  // Its own origin (host routing under localhost), and the token gone from the address.
  assert.match(tab.url(), /^http:\/\/ui-ws\.localhost:\d+\/$/, `opened at ${tab.url()}`);
  const body = await tab.locator("body").innerText();
  assert.match(body, /"pod":\s*"ws-dev-ui-ws"/, `the gateway answered: ${body}`);
  assert.match(body, /"path":\s*"\/"/, body);
  await tab.close();

  // ---------------------------------------------------------- stop
  step("stop it: confirm, then see it gone");
  await uiRow.getByRole("button", { name: "Stop workspace ui-ws" }).click();
  const confirm = page.locator("#confirm-dialog");
  await confirm.getByText("Stop workspace ui-ws?").waitFor();
  await confirm.getByRole("button", { name: "Stop workspace" }).click();
  await confirm.waitFor({ state: "hidden" });
  await uiRow.waitFor({ state: "detached", timeout: 90000 });

  // ---------------------------------------------------------- suspend and resume
  step("an idle workspace whose template says suspend shows as suspended; Resume brings it back");
  const admin = await mcpSession(TOKEN);
  const napping = await admin.call("create_template", {
    name: "ui-napping",
    annotations: { "nogoo9/idle-timeout": "1s", "nogoo9/idle-action": "suspend" },
    spec: { containers: [{ name: "main", image: "node:20-alpine" }] },
  });
  assert.equal(napping.isError, false, JSON.stringify(napping));
  const nap = await admin.call("spawn_workspace", { id: "ui-nap", templateRef: "ui-napping" });
  assert.equal(nap.isError, false, JSON.stringify(nap));
  const napRow = page.locator('#workspaces-table tr[data-key="ui-nap"]');
  await napRow.getByText("Suspended", { exact: true }).waitFor({ timeout: 90000 });
  await napRow.getByText("suspended", { exact: true }).waitFor();
  await page.screenshot({ path: `${SHOTS}/suspended.png` });
  await napRow.getByRole("button", { name: "Resume workspace ui-nap" }).click();
  // (The Templates view says the same of the template, checked below.)
  await page.locator("#banner").getByText("Workspace ui-nap is running again.").waitFor({ timeout: 90000 });
  await napRow.getByText("Running", { exact: true }).waitFor();
  assert.equal(await napRow.getByRole("button", { name: "Resume workspace ui-nap" }).count(), 0, "still offered Resume");
  const stopped = await admin.call("stop_workspace", { id: "ui-nap" });
  assert.equal(stopped.isError, false, JSON.stringify(stopped));

  // ---------------------------------------------------------- templates
  step("templates: invalid JSON is refused with where and why");
  await page.getByRole("tab", { name: "Templates" }).click();
  await page.locator('#templates-table tr[data-key="default/node-workspace-template"]').waitFor();
  await page.locator('#templates-table tr[data-key="default/ui-napping"]').getByText("idle 1s → suspend").waitFor();
  await page.screenshot({ path: `${SHOTS}/templates.png` });
  await page.getByRole("button", { name: "New template" }).click();
  const editor = page.locator("#template-dialog");
  await editor.getByLabel("Name").fill("ui-template");
  await editor.getByLabel("Pod spec (JSON)").fill('{\n  "containers": [\n    {"name": "main", "image": "busybox",}\n  ]\n}');
  await editor.getByRole("button", { name: "Save template" }).click();
  const templateError = editor.locator("#template-error");
  await templateError.getByText("The pod spec is not valid JSON").waitFor();
  assert.match(await templateError.innerText(), /line 3/, "the error says where");
  assert.equal(await editor.getByLabel("Pod spec (JSON)").getAttribute("aria-invalid"), "true");
  await page.screenshot({ path: `${SHOTS}/template-error.png` });

  step("templates: the server's own refusal is shown too (no containers)");
  await editor.getByLabel("Pod spec (JSON)").fill('{"containers": []}');
  await editor.getByRole("button", { name: "Save template" }).click();
  await templateError.getByText("The template was not saved").waitFor();
  assert.match(await templateError.innerText(), /container/i);

  step("templates: create, view, edit, delete with confirmation");
  await editor.getByLabel("Description").fill("made by the browser test");
  await editor.getByLabel("Required context keys").fill("TASK");
  await editor.getByLabel("Pod spec (JSON)").fill('{"containers": [{"name": "main", "image": "busybox"}]}');
  await editor.getByRole("button", { name: "Save template" }).click();
  await editor.waitFor({ state: "hidden" });
  const tRow = page.locator('#templates-table tr[data-key="default/ui-template"]');
  await tRow.getByText("made by the browser test").waitFor();
  assert.match(await tRow.innerText(), /TASK/);
  await tRow.getByRole("button", { name: "View template ui-template" }).click();
  await page.locator("#json-body").getByText('"busybox"').waitFor();
  await page.locator("#json-dialog").getByRole("button", { name: "Close" }).click();
  await tRow.getByRole("button", { name: "Edit template ui-template" }).click();
  await editor.getByLabel("Description").fill("edited by the browser test");
  await editor.getByRole("button", { name: "Save template" }).click();
  await editor.waitFor({ state: "hidden" });
  await tRow.getByText("edited by the browser test").waitFor();
  await tRow.getByRole("button", { name: "Delete template ui-template" }).click();
  await confirm.getByText("Delete template ui-template?").waitFor();
  await confirm.getByRole("button", { name: "Delete template" }).click();
  await tRow.waitFor({ state: "detached" });

  // ---------------------------------------------------------- pods
  step("pods: list and details");
  await page.getByRole("tab", { name: "Pods" }).click();
  const podRow = page.locator('#pods-table tr[data-key="default/ws-dev-demo"]');
  await podRow.getByText("Running").waitFor();
  await page.screenshot({ path: `${SHOTS}/pods.png` });
  await podRow.getByRole("button", { name: "Details of pod ws-dev-demo" }).click();
  await page.locator("#json-body").getByText('"ws-dev-demo"').first().waitFor();
  await page.keyboard.press("Escape");
  await page.locator("#json-dialog").waitFor({ state: "hidden" });

  // ---------------------------------------------------------- keyboard and focus
  step("keyboard: arrows move between tabs, focus is visible");
  await page.getByRole("tab", { name: "Pods" }).focus();
  await page.keyboard.press("ArrowLeft");
  assert.equal(await page.evaluate(() => document.activeElement.id), "tab-logs");
  await page.keyboard.press("Home");
  assert.equal(await page.evaluate(() => document.activeElement.id), "tab-workspaces");
  assert.equal(await page.getByRole("tab", { name: "Workspaces" }).getAttribute("aria-selected"), "true");
  await page.keyboard.press("Tab");
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, "none", "the focused control shows where focus is");

  // ---------------------------------------------------------- narrow screens
  step("375 px wide: nothing overflows sideways");
  await page.setViewportSize({ width: 375, height: 800 });
  await page.locator('#workspaces-table tr[data-key="demo"]').waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 375, `the page is ${overflow} px wide at 375`);
  await page.screenshot({ path: `${SHOTS}/workspaces-375.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });

  // ---------------------------------------------------------- sign out
  step("sign out: the token is forgotten and the data cleared");
  await page.getByRole("button", { name: "Sign out" }).click();
  await signin.waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem("nocr_token")), null);
  assert.equal(await page.locator('#workspaces-table tr[data-key="demo"]').count(), 0);

  // ---------------------------------------------------------- inside an MCP host
  step("ui://nogoo9/app in an MCP Apps host: the postMessage bridge drives the tools");
  const dev = await mcpSession(TOKEN);
  const listed = await dev.request("resources/list", {});
  const entry = listed.result.resources.find((r) => r.uri === "ui://nogoo9/app");
  assert.ok(entry, `ui://nogoo9/app listed: ${JSON.stringify(listed.result.resources.map((r) => r.uri))}`);
  assert.equal(entry.mimeType, "text/html;profile=mcp-app");
  const read = await dev.request("resources/read", { uri: "ui://nogoo9/app" });
  const html = read.result.contents[0].text;
  const hostPage = await context.newPage();
  const hostCalls = [];
  // The host forwards the app's tools/call to the server with its own session.
  await hostPage.exposeFunction("forwardToServer", async (method, params) => {
    hostCalls.push(method);
    return (await dev.request(method, params)).result;
  });
  await hostPage.setContent(`<!DOCTYPE html><html><body><iframe id="app" sandbox="allow-scripts allow-forms allow-modals" style="width:1200px;height:700px"></iframe>
    <script>
      const frame = document.getElementById("app");
      window.addEventListener("message", async (ev) => {
        if (ev.source !== frame.contentWindow) return;
        const m = ev.data;
        if (m.method === "ui/initialize") {
          frame.contentWindow.postMessage({ jsonrpc: "2.0", id: m.id, result: { protocolVersion: "2026-01-26", hostInfo: { name: "test-host", version: "1" }, hostCapabilities: {}, hostContext: {} } }, "*");
        } else if (m.id !== undefined && m.method) {
          const result = await window.forwardToServer(m.method, m.params);
          frame.contentWindow.postMessage({ jsonrpc: "2.0", id: m.id, result }, "*");
        }
      });
      frame.srcdoc = ${JSON.stringify(html).replace(/</g, "\\u003c")};
    </script></body></html>`);
  const app = hostPage.frameLocator("#app");
  await app.locator('#workspaces-table tr[data-key="demo"]').waitFor();
  assert.ok(hostCalls.includes("tools/call"), `the host carried the calls: ${hostCalls}`);
  await hostPage.screenshot({ path: `${SHOTS}/mcp-host.png` });
  await hostPage.close();

  assert.deepEqual(pageErrors, [], "no script errors in the page");

  // ---------------------------------------------------------- the other user's view
  step("a user cannot stop someone else's workspace; it is still there");
  const stop = await other.call("stop_workspace", { id: "demo" });
  assert.equal(stop.isError, true, "alice stopped the dev user's workspace");
  const all = await dev.call("list_workspaces", {});
  assert.ok(all.structuredContent.workspaces.some((w) => w.id === "demo"));
  console.log("browser test passed");
} catch (e) {
  failed = true;
  console.error(e);
  try {
    for (const [i, p] of browser.contexts().flatMap((c) => c.pages()).entries()) {
      await p.screenshot({ path: `${SHOTS}/failure-${i}.png`, fullPage: true });
      console.error(`page ${i} (${p.url()}):\n${(await p.locator("body").innerText()).slice(0, 3000)}`);
    }
  } catch { /* the browser may be gone */ }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);

// Workspace origins in a real browser (Chromium, headless, via playwright-core) against
// `nocrd9 dev`, which routes `<id>.localhost` to workspace <id>. One browser plays the
// victim: alice opens her workspace, then follows a link into mallory's workspace,
// whose page tries to read alice's. Started by control/tests/it/origins.rs.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mcpSession } from "./mcp.mjs";

const MCP = process.env.NOCRD9_MCP;
const GW_PORT = process.env.NOCRD9_GATEWAY_PORT;
const ALICE = process.env.NOCRD9_ALICE_TOKEN;
const MALLORY = process.env.NOCRD9_MALLORY_TOKEN;
const CHROMIUM = process.env.NOCRD9_CHROMIUM || "/usr/bin/chromium";
for (const [k, v] of Object.entries({ MCP, GW_PORT, ALICE, MALLORY })) assert.ok(v, `${k} is not set`);
const step = (what) => console.log(`step: ${what}`);
const hostUrl = (id, rest = "/") => `http://${id}.localhost:${GW_PORT}${rest}`;
const pathUrl = (id, rest = "/") => `http://127.0.0.1:${GW_PORT}/route/${id}${rest}`;
const json = async (page) => JSON.parse(await page.locator("body").innerText());

step("alice and mallory each spawn a workspace");
for (const [token, id] of [[ALICE, "alice-ws"], [MALLORY, "mal-ws"]]) {
  const s = await mcpSession(MCP, token);
  const r = await s.call("spawn_workspace", { id, templateRef: "node-workspace-template", context: { PROJECT_NAME: id, REPO_URL: "https://example.com/r.git" } });
  assert.equal(r.isError, false, JSON.stringify(r));
  assert.equal(r.structuredContent.url, hostUrl(id), "control hands out the host-routed URL");
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu"], timeout: 60000 });
try {
  const context = await browser.newContext();
  context.setDefaultTimeout(30000);
  const page = await context.newPage();

  step("alice opens her workspace with ?token=: she ends on the same URL without it");
  await page.goto(hostUrl("alice-ws", `/hello?x=1&token=${ALICE}`));
  assert.equal(page.url(), hostUrl("alice-ws", "/hello?x=1"));
  let seen = await json(page);
  assert.equal(seen.pod, "ws-alice-alice-ws");
  assert.equal(seen.query, "x=1");
  assert.equal(seen.headers["x-forwarded-user"], "alice");
  assert.ok(!JSON.stringify(seen).includes(ALICE), "the workspace never sees her token");
  const aliceCookies = await context.cookies(hostUrl("alice-ws"));
  const cookie = aliceCookies.find((c) => c.name === "nocr_token");
  assert.ok(cookie, JSON.stringify(aliceCookies));
  assert.equal(cookie.domain, "alice-ws.localhost", "host-only");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Lax");
  await page.goto(hostUrl("alice-ws", "/again"));
  assert.equal((await json(page)).headers["x-forwarded-user"], "alice", "the cookie keeps her signed in");

  step("she follows mallory's link into mallory's workspace");
  await page.goto(hostUrl("mal-ws", `/?token=${MALLORY}`));
  assert.equal(page.url(), hostUrl("mal-ws"));
  assert.equal((await json(page)).pod, "ws-mallory-mal-ws");

  step("script on mallory's page cannot read alice's workspace, and alice's cookie is not sent");
  const toAlice = [];
  page.on("request", (r) => { if (r.url().startsWith(hostUrl("alice-ws"))) toAlice.push(r); });
  const outcomes = await page.evaluate(async (target) => {
    const tries = [
      ["cors, credentials", { credentials: "include" }],
      ["no-cors, credentials", { mode: "no-cors", credentials: "include" }],
    ];
    const out = [];
    for (const [label, init] of tries) {
      try {
        const r = await fetch(target, init);
        let text = "";
        try { text = await r.text(); } catch { text = "<unreadable>"; }
        out.push({ label, type: r.type, status: r.status, text });
      } catch (e) {
        out.push({ label, error: String(e) });
      }
    }
    return out;
  }, hostUrl("alice-ws", "/secret"));
  console.log(`outcomes: ${JSON.stringify(outcomes)}`);
  const cors = outcomes.find((o) => o.label === "cors, credentials");
  assert.ok(cors.error, `a cross-origin read must fail: ${JSON.stringify(cors)}`);
  const opaque = outcomes.find((o) => o.label === "no-cors, credentials");
  assert.ok(opaque.error || (opaque.type === "opaque" && opaque.status === 0 && opaque.text === ""), `no-cors must stay opaque: ${JSON.stringify(opaque)}`);
  assert.ok(toAlice.length >= 1, "the page did make the requests");
  for (const r of toAlice) {
    const headers = await r.allHeaders();
    assert.ok(!(headers.cookie || "").includes("nocr_token"), `alice's cookie went along: ${headers.cookie}`);
    const resp = await r.response();
    if (resp) assert.equal(resp.status(), 401, "the gateway saw no credential");
  }

  step("path routing: a workspace that redirects to /login and sets a Path=/ cookie works under /route/<id>/");
  await page.goto(pathUrl("alice-ws", `/?token=${ALICE}`));
  assert.equal(page.url(), pathUrl("alice-ws", "/"), "the token left the address bar");
  await page.goto(pathUrl("alice-ws", "/start?redirect=%2Flogin&set-cookie=sid%3D1%3B%20Path%3D%2F"));
  assert.equal(page.url(), pathUrl("alice-ws", "/login"), "the redirect stayed in the prefix");
  seen = await json(page);
  assert.equal(seen.path, "/login");
  const sid = (await context.cookies(pathUrl("alice-ws"))).find((c) => c.name === "sid");
  assert.ok(sid, "the app's cookie was kept");
  assert.equal(sid.path, "/route/alice-ws/", "in the workspace's prefix");
  await page.goto(pathUrl("alice-ws", "/next"));
  seen = await json(page);
  assert.match(seen.headers.cookie || "", /(^|; )sid=1(;|$)/, "the app gets its cookie back");
  assert.ok(!(seen.headers.cookie || "").includes("nocr_token"), "but never the gateway's");
  await page.goto(pathUrl("mal-ws", "/x"));
  assert.equal(await page.locator("h1").innerText(), "401 Unauthorized", "a browser gets a page, not JSON");

  console.log("origins test passed");
} finally {
  await browser.close();
}

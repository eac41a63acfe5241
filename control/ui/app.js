// nocrd9 Pod Manager: a framework-free page that drives the server through its MCP tools
// only (JSON-RPC over <base>/mcp, or the MCP Apps postMessage bridge inside an MCP host),
// so there is no second API to keep in sync. Server data reaches the DOM as text nodes,
// never as HTML.
"use strict";

const BASE = document.querySelector('meta[name="nocrd9-base-url"]').content;
const EMBEDDED = document.querySelector('meta[name="nocrd9-embedded"]').content === "true";
const TOKEN_KEY = "nocr_token";
const REFRESH_MS = 5000;
const FOLLOW_MS = 2000;
const PROTOCOL = "2025-06-18";

// ---------------------------------------------------------------- small helpers

const $ = (id) => document.getElementById(id);

/** Builds an element: h("td", {class: "x", dataset: {label: "ID"}}, "text", child). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function ago(iso) {
  if (!iso) return "—";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "—";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function duration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

/** The claims of a JWT, for display only (the server verifies; we never trust these). */
function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch {
    return null;
  }
}

/** Where in `text` a JSON.parse error points, as "line L, column C". */
function jsonErrorWhere(text, err) {
  const m = /position (\d+)/.exec(err.message);
  if (!m || /line \d+/.test(err.message)) return "";
  const pos = Number(m[1]);
  const before = text.slice(0, pos);
  const line = before.split("\n").length;
  const col = pos - before.lastIndexOf("\n");
  return ` (line ${line}, column ${col})`;
}

/**
 * localStorage when the page may use it; memory otherwise (a sandboxed frame in an MCP
 * host has no storage, and reading it there throws).
 */
const store = (() => {
  const memory = new Map();
  return {
    get(k) { try { return localStorage.getItem(k); } catch { return memory.get(k) ?? null; } },
    set(k, v) { try { localStorage.setItem(k, v); } catch { memory.set(k, v); } },
    remove(k) { try { localStorage.removeItem(k); } catch { memory.delete(k); } },
  };
})();

class AuthRequired extends Error {}
class ToolFailed extends Error {}

// ---------------------------------------------------------------- transports

/** Streamable HTTP to <base>/mcp: one session, re-created when the server forgets it. */
class HttpTransport {
  constructor(endpoint) {
    this.endpoint = endpoint;
    this.session = null;
    this.nextId = 1;
  }

  headers() {
    const h = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": PROTOCOL,
    };
    const token = store.get(TOKEN_KEY);
    if (token) h.authorization = `Bearer ${token}`;
    if (this.session) h["mcp-session-id"] = this.session;
    return h;
  }

  async post(message, onMessage) {
    let res;
    try {
      res = await fetch(this.endpoint, { method: "POST", headers: this.headers(), body: JSON.stringify(message) });
    } catch (e) {
      throw new Error(`The server at ${this.endpoint} cannot be reached (${e.message}). Is nocrd9 running?`);
    }
    if (res.status === 401) {
      let why = "a valid token is required";
      try { why = (await res.json()).message || why; } catch { /* no JSON body */ }
      throw new AuthRequired(why);
    }
    if (res.status === 404 && this.session) {
      this.session = null; // the server restarted or expired the session
      const e = new Error("session expired");
      e.retry = true;
      throw e;
    }
    if (!res.ok && res.status !== 202) {
      let text = await res.text();
      try { text = JSON.parse(text).message || text; } catch { /* plain text */ }
      throw new Error(`The server answered ${res.status}: ${text || res.statusText}`);
    }
    const sid = res.headers.get("mcp-session-id");
    if (sid) this.session = sid;
    if (res.status === 202 || !res.body) return;
    const type = res.headers.get("content-type") || "";
    if (type.includes("application/json")) {
      onMessage(await res.json());
      return;
    }
    // text/event-stream: every `data:` line is one JSON-RPC message.
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
        if (data) {
          let msg;
          try { msg = JSON.parse(data); } catch { continue; }
          if (onMessage(msg) === "done") { reader.cancel().catch(() => {}); return; }
        }
      }
    }
  }

  async initialize() {
    this.session = null;
    let result;
    await this.post(
      { jsonrpc: "2.0", id: 0, method: "initialize",
        params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: "nocrd9-ui", version: "1" } } },
      (m) => { if (m.id === 0) { result = m; return "done"; } },
    );
    if (!result || result.error) throw new Error(result?.error?.message || "the server did not answer initialize");
    await this.post({ jsonrpc: "2.0", method: "notifications/initialized" }, () => {});
  }

  async request(method, params, onNotification, retried = false) {
    if (!this.session) await this.initialize();
    const id = this.nextId++;
    let answer;
    try {
      await this.post({ jsonrpc: "2.0", id, method, params }, (m) => {
        if (m.id === id) { answer = m; return "done"; }
        if (m.method && onNotification) onNotification(m);
      });
    } catch (e) {
      if (e.retry && !retried) return this.request(method, params, onNotification, true);
      throw e;
    }
    if (!answer) throw new Error(`no answer to ${method}`);
    if (answer.error) throw new ToolFailed(answer.error.message);
    return answer.result;
  }
}

/** The MCP Apps bridge (SEP-1865): JSON-RPC over postMessage to the host that embeds us. */
class HostTransport {
  constructor() {
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = [];
    window.addEventListener("message", (ev) => {
      if (ev.source !== window.parent) return;
      const m = ev.data;
      if (!m || m.jsonrpc !== "2.0") return;
      if (m.id !== undefined && this.pending.has(m.id)) {
        const { resolve, reject } = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error) reject(new ToolFailed(m.error.message));
        else resolve(m.result);
      } else if (m.method) {
        for (const l of this.listeners) l(m);
      }
    });
  }

  send(method, params, timeoutMs) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      window.parent.postMessage({ jsonrpc: "2.0", id, method, params }, "*");
      if (timeoutMs) setTimeout(() => {
        if (this.pending.delete(id)) reject(new Error(`the host did not answer ${method}`));
      }, timeoutMs);
    });
  }

  async connect() {
    await this.send("ui/initialize", {
      appInfo: { name: "nocrd9-pod-manager", version: "1" },
      appCapabilities: {},
      protocolVersion: "2026-01-26",
    }, 1500);
    window.parent.postMessage({ jsonrpc: "2.0", method: "ui/notifications/initialized", params: {} }, "*");
  }

  request(method, params, onNotification) {
    if (onNotification) this.listeners.push(onNotification);
    return this.send(method, params).finally(() => {
      this.listeners = this.listeners.filter((l) => l !== onNotification);
    });
  }
}

// ---------------------------------------------------------------- the server, as tools

const server = {
  transport: null,
  tools: new Set(),
  progressSeq: 0,

  async connect() {
    if (EMBEDDED && window.parent !== window) {
      const host = new HostTransport();
      try {
        await host.connect();
        this.transport = host;
        return;
      } catch { /* not inside an MCP Apps host: use HTTP */ }
    }
    this.transport = new HttpTransport(`${BASE}/mcp`);
  },

  async listTools() {
    const r = await this.transport.request("tools/list", {});
    this.tools = new Set((r.tools || []).map((t) => t.name));
  },

  has(tool) { return this.tools.has(tool); },

  /** Calls a tool; resolves to its structured content, throws ToolFailed with its words. */
  async call(name, args = {}, onProgress) {
    const params = { name, arguments: args };
    let listener;
    if (onProgress) {
      const token = `ui-${++this.progressSeq}`;
      params._meta = { progressToken: token };
      listener = (m) => {
        if (m.method === "notifications/progress" && m.params?.progressToken === token) onProgress(m.params);
      };
    }
    const result = await this.transport.request("tools/call", params, listener);
    if (result.isError) {
      const text = (result.content || []).map((c) => c.text || "").join("\n").replace(/^Error:\s*/, "");
      throw new ToolFailed(text || `${name} failed`);
    }
    if (result.structuredContent) return result.structuredContent;
    const text = (result.content || []).map((c) => c.text || "").join("\n");
    try { return JSON.parse(text); } catch { return { text }; }
  },
};

// ---------------------------------------------------------------- app state

const state = {
  namespace: null,
  mode: "namespaced",
  view: "workspaces",
  templates: [],
  timer: null,
  followTimer: null,
  busy: new Set(), // row keys with an action in flight
};

function nsArgs(extra = {}) {
  return state.namespace ? { namespace: state.namespace, ...extra } : extra;
}

function showBanner(text, kind = "error") {
  const b = $("banner");
  b.textContent = text;
  b.className = kind === "info" ? "banner info" : "banner";
  b.hidden = !text;
  // Confirmations fade on their own; errors stay until the next good refresh.
  if (text && kind === "info") setTimeout(() => { if (b.textContent === text) showBanner(""); }, 10000);
}

/** Words for a person: what failed, and the server's reason. */
function say(what, err) {
  if (err instanceof AuthRequired) {
    signInNeeded(err.message);
    return `${what}: you are not signed in (${err.message}).`;
  }
  return `${what}: ${err.message}`;
}

// ---------------------------------------------------------------- identity

function renderWhoAmI() {
  const el = $("whoami");
  el.replaceChildren();
  const token = store.get(TOKEN_KEY);
  $("sign-out").hidden = !token;
  if (server.transport instanceof HostTransport) {
    el.append("Connected through your MCP host");
    return;
  }
  if (!token) {
    el.append("Not signed in");
    return;
  }
  const c = claims(token) || {};
  const who = c.sub ?? c.email ?? "unknown subject";
  el.append("Signed in as ", h("strong", {}, String(who)));
  if (state.role) el.append(` (${state.role})`);
  if (typeof c.exp === "number") {
    const left = Math.round(c.exp - Date.now() / 1000);
    el.append(left > 0 ? ` · token expires in ${duration(left)}` : " · token expired");
  }
}

function signInNeeded(reason) {
  $("signin").hidden = false;
  $("signin-error").textContent = store.get(TOKEN_KEY) ? `The server refused the token: ${reason}.` : "";
  stopTimers();
}

async function signIn(ev) {
  ev.preventDefault();
  const token = $("token-input").value.trim().replace(/^Bearer\s+/i, "");
  if (token.split(".").length !== 3) {
    $("signin-error").textContent = "That is not a JWT: it should be three base64url parts separated by dots.";
    $("token-input").setAttribute("aria-invalid", "true");
    return;
  }
  $("token-input").removeAttribute("aria-invalid");
  store.set(TOKEN_KEY, token);
  server.transport.session = null;
  $("signin-error").textContent = "";
  await start();
}

function signOut() {
  store.remove(TOKEN_KEY);
  if (server.transport) server.transport.session = null;
  // The next sign-in may be someone else: forget what this one could see and do.
  state.role = null;
  state.namespace = null;
  stopTimers();
  renderWhoAmI();
  for (const id of ["workspaces-table", "templates-table", "pods-table"]) $(id).tBodies[0].replaceChildren();
  signInNeeded("");
  $("token-input").focus();
}

/** `?token=` in the address: keep it, and take it out of the address bar and history. */
function takeTokenFromUrl() {
  const url = new URL(location.href);
  const t = url.searchParams.get("token");
  if (t) {
    store.set(TOKEN_KEY, t);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}

// ---------------------------------------------------------------- tabs

const VIEWS = ["workspaces", "templates", "logs", "pods"];

function selectView(name, focus = false, load = true) {
  state.view = name;
  for (const v of VIEWS) {
    const tab = $(`tab-${v}`);
    const on = v === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`view-${v}`).hidden = !on;
    if (on && focus) tab.focus();
  }
  if (name !== "logs") stopFollow();
  if (load) refresh();
}

function tabKeys(ev) {
  const visible = VIEWS.filter((v) => !$(`tab-${v}`).hidden);
  const i = visible.indexOf(state.view);
  let next = null;
  if (ev.key === "ArrowRight") next = visible[(i + 1) % visible.length];
  else if (ev.key === "ArrowLeft") next = visible[(i - 1 + visible.length) % visible.length];
  else if (ev.key === "Home") next = visible[0];
  else if (ev.key === "End") next = visible[visible.length - 1];
  if (next) { ev.preventDefault(); selectView(next, true); }
}

// ---------------------------------------------------------------- tables

/**
 * Replaces the rows of a table body, keyed, so unchanged rows (and the focus inside
 * them) stay put while data refreshes.
 */
function syncRows(table, items, key, render, emptyText) {
  const tbody = table.tBodies[0];
  const focused = document.activeElement;
  const focusedAction = tbody.contains(focused) ? focused.dataset.action : null;
  const focusedKey = focusedAction ? focused.closest("tr")?.dataset.key : null;
  const old = new Map([...tbody.rows].filter((r) => r.dataset.key).map((r) => [r.dataset.key, r]));
  const rows = items.map((item) => {
    const k = key(item);
    const sig = JSON.stringify(item) + (state.busy.has(k) ? "#busy" : "");
    const prev = old.get(k);
    if (prev && prev.dataset.sig === sig) return prev;
    const row = render(item);
    row.dataset.key = k;
    row.dataset.sig = sig;
    return row;
  });
  if (!rows.length) {
    const cols = table.tHead.rows[0].cells.length;
    rows.push(h("tr", {}, h("td", { colspan: cols, class: "empty" }, emptyText)));
  }
  tbody.replaceChildren(...rows);
  if (focusedKey && !tbody.contains(focused)) {
    const again = tbody.querySelector(`tr[data-key="${CSS.escape(focusedKey)}"] [data-action="${CSS.escape(focusedAction)}"]`);
    if (again) again.focus();
  }
}

const cell = (label, ...content) => h("td", { dataset: { label } }, ...content);

// ---------------------------------------------------------------- workspaces

function tokenizedUrl(url) {
  const token = store.get(TOKEN_KEY);
  if (!token || !url) return url;
  const u = new URL(url, location.href);
  u.searchParams.set("token", token);
  return u.toString();
}

function workspaceRow(w) {
  const busy = state.busy.has(w.id);
  const phase = busy ? "Stopping" : w.status || "Unknown";
  const actions = h("td", { class: "actions", dataset: { label: "Actions" } });
  if (w.url && (w.status === "Running" || (w.state === "suspended" && w.wakeOnRequest)) && !busy) {
    actions.append(h("a", { class: "button small secondary", href: tokenizedUrl(w.url), target: "_blank", rel: "noopener",
      "data-action": "open", "aria-label": `Open workspace ${w.id}` }, "Open"));
  }
  if (server.has("get_pod_logs") && w.name) {
    actions.append(h("button", { type: "button", class: "small secondary", "data-action": "logs", "aria-label": `Logs of workspace ${w.id}`,
      onclick: () => openLogs(w.name, w.namespace) }, "Logs"));
  }
  if (w.state === "suspended" && server.has("resume_workspace")) {
    actions.append(h("button", { type: "button", class: "small", "data-action": "resume", disabled: busy,
      "aria-label": `Resume workspace ${w.id}`, onclick: (ev) => resumeWorkspace(w, ev.currentTarget) }, "Resume"));
  }
  if (server.has("stop_workspace")) {
    actions.append(h("button", { type: "button", class: "small danger", "data-action": "stop", disabled: busy,
      "aria-label": `Stop workspace ${w.id}`, onclick: () => stopWorkspace(w) }, busy ? "Stopping…" : "Stop"));
  }
  return h("tr", {},
    cell("ID", h("span", { class: "mono" }, w.id)),
    cell("Owner", w.owner || "—"),
    cell("Template", w.template || "—"),
    cell("Phase", h("span", { class: `badge ${phase}` }, phase)),
    cell("Age", ago(w.createdAt)),
    cell("Last activity", w.lastActivity ? `${ago(w.lastActivity)} ago` : "—"),
    cell("Stops", stopsText(w)),
    actions);
}

/** When the lifecycle stops it: for idleness (`cullAt`, moves with activity) or at its
 * maximum lifetime (`expiresAt`), whichever comes first. */
function stopsText(w) {
  if (w.state === "suspended") return w.wakeOnRequest ? "suspended; wakes when opened" : "suspended";
  const when = [
    w.cullAt && { at: Date.parse(w.cullAt), why: `if idle (${w.idleTimeout})` },
    w.expiresAt && { at: Date.parse(w.expiresAt), why: `lifetime ${w.maxLifetime}` },
  ].filter(Boolean).sort((a, b) => a.at - b.at)[0];
  if (!when) return "never";
  const secs = Math.max(0, Math.round((when.at - Date.now()) / 1000));
  const left = secs < 90 ? `${secs}s` : secs < 5400 ? `${Math.round(secs / 60)}m` : `${Math.round(secs / 3600)}h`;
  return `in ${left}, ${when.why}`;
}

async function loadWorkspaces() {
  if (!server.has("list_workspaces")) return;
  const r = await server.call("list_workspaces", nsArgs());
  const list = (r.workspaces || []).slice().sort((a, b) => a.id.localeCompare(b.id));
  syncRows($("workspaces-table"), list, (w) => w.id, workspaceRow,
    "No workspaces yet. Start one with “New workspace”.");
  $("workspaces-status").textContent = `${list.length} workspace${list.length === 1 ? "" : "s"} · updated ${new Date().toLocaleTimeString()}`;
}

/** Starts a suspended workspace's pod again (files and context as they were); the call
 * returns once it answers, then the row shows it running. */
async function resumeWorkspace(w, button) {
  button.disabled = true;
  button.textContent = "Resuming…";
  try {
    await server.call("resume_workspace", { id: w.id, ...(w.namespace ? { namespace: w.namespace } : nsArgs()) });
    showBanner(`Workspace ${w.id} is running again.`, "info");
  } catch (e) {
    showBanner(say(`Could not resume workspace ${w.id}`, e));
  }
  await loadWorkspaces().catch(() => {});
}

function stopWorkspace(w) {
  confirmAction(`Stop workspace ${w.id}?`,
    `Its pod ${w.name || ""} stops gracefully (pre-stop hooks run). Anything not saved elsewhere is lost.`,
    "Stop workspace",
    async () => {
      await server.call("stop_workspace", { id: w.id, ...(w.namespace ? { namespace: w.namespace } : nsArgs()) });
      state.busy.add(w.id);
      await loadWorkspaces().catch(() => {});
      // The pod takes its grace period to go; keep the row marked until it has.
      const until = Date.now() + 180000;
      const poll = async () => {
        try { await loadWorkspaces(); } catch { /* shown by the next refresh */ }
        const still = [...$("workspaces-table").tBodies[0].rows].some((r) => r.dataset.key === w.id);
        if (still && Date.now() < until) setTimeout(poll, 1000);
        else { state.busy.delete(w.id); loadWorkspaces().catch(() => {}); }
      };
      setTimeout(poll, 500);
    });
}

// ---------------------------------------------------------------- spawn

async function openSpawn(templateName) {
  if (!state.templates.length) {
    try { await loadTemplates(); } catch (e) { showBanner(say("Could not load templates", e)); return; }
  }
  if (!state.templates.length) {
    showBanner("There are no templates to start a workspace from: create one in the Templates view first.");
    return;
  }
  const select = $("spawn-template");
  select.replaceChildren(...state.templates.map((t) =>
    h("option", { value: `${t.namespace}/${t.name}` }, t.tag ? `${t.name} (${t.tag})` : t.name)));
  const pick = state.templates.find((t) => t.name === templateName) || state.templates[0];
  select.value = `${pick.namespace}/${pick.name}`;
  $("spawn-id").value = "";
  $("spawn-error").textContent = "";
  $("spawn-progress").hidden = true;
  $("spawn-submit").disabled = false;
  renderContextFields();
  $("spawn-dialog").showModal();
  $("spawn-id").focus();
}

function selectedTemplate() {
  const [ns, name] = $("spawn-template").value.split("/");
  return state.templates.find((t) => t.namespace === ns && t.name === name);
}

function renderContextFields() {
  const t = selectedTemplate();
  const keys = t?.requiredContext || [];
  const box = $("spawn-context-fields");
  box.replaceChildren(...keys.map((k, i) => h("div", { class: "field" },
    h("label", { for: `ctx-${i}` }, k),
    h("input", { id: `ctx-${i}`, name: k, required: true, autocomplete: "off", spellcheck: "false", "data-context-key": k }))));
  $("spawn-context").hidden = keys.length === 0;
}

async function submitSpawn(ev) {
  ev.preventDefault();
  const form = $("spawn-form");
  if (!form.reportValidity()) return;
  const t = selectedTemplate();
  const id = $("spawn-id").value.trim();
  const context = {};
  for (const input of $("spawn-context-fields").querySelectorAll("input")) context[input.dataset.contextKey] = input.value;
  $("spawn-error").textContent = "";
  $("spawn-submit").disabled = true;
  $("spawn-progress").hidden = false;
  const bar = $("spawn-progress-bar");
  bar.removeAttribute("value");
  $("spawn-progress-text").textContent = "Creating the pod…";
  try {
    const r = await server.call("spawn_workspace",
      { id, templateRef: `${t.namespace}/${t.name}`, namespace: t.namespace, context, wait: true },
      (p) => {
        if (typeof p.total === "number") bar.max = p.total;
        if (typeof p.progress === "number") bar.value = p.progress;
        if (p.message) $("spawn-progress-text").textContent = p.message;
      });
    bar.value = bar.max;
    $("spawn-dialog").close();
    showBanner(r.existing ? `Workspace ${id} already existed; it is listed below.` : `Workspace ${id} is running.`, "info");
    selectView("workspaces");
  } catch (e) {
    $("spawn-progress").hidden = true;
    $("spawn-error").textContent = say("The workspace did not start", e);
  } finally {
    $("spawn-submit").disabled = false;
  }
}

// ---------------------------------------------------------------- templates

function templateRow(t) {
  const actions = h("td", { class: "actions", dataset: { label: "Actions" } });
  if (server.has("spawn_workspace")) actions.append(h("button", { type: "button", class: "small", "data-action": "spawn",
    "aria-label": `Start a workspace from ${t.name}`, onclick: () => openSpawn(t.name) }, "Spawn"));
  if (server.has("get_template")) actions.append(h("button", { type: "button", class: "small secondary", "data-action": "view",
    "aria-label": `View template ${t.name}`, onclick: () => viewTemplate(t) }, "View"));
  if (server.has("update_template")) actions.append(h("button", { type: "button", class: "small secondary", "data-action": "edit",
    "aria-label": `Edit template ${t.name}`, onclick: () => editTemplate(t) }, "Edit"));
  if (server.has("delete_template")) actions.append(h("button", { type: "button", class: "small danger", "data-action": "delete",
    "aria-label": `Delete template ${t.name}`, onclick: () => deleteTemplate(t) }, "Delete"));
  return h("tr", {},
    cell("Name", h("span", { class: "mono" }, t.name)),
    cell("Tag", t.tag || "—"),
    cell("Description", t.description || "—"),
    cell("Required context", (t.requiredContext || []).join(", ") || "none"),
    cell("Lifecycle", lifecycleText(t.lifecycle)),
    actions);
}

/** A template's lifecycle in a few words: "idle 30m → suspend (wakes) · max 8h · 3 warm". */
function lifecycleText(l) {
  if (!l) return "—";
  const parts = [];
  if (l.idleTimeout) {
    const action = l.idleAction === "suspend" ? `suspend${l.wakeOnRequest ? " (wakes)" : ""}` : "stop";
    parts.push(`idle ${l.idleTimeout} → ${action}`);
  }
  if (l.maxLifetime) parts.push(`max ${l.maxLifetime}`);
  if (l.warmPoolSize) parts.push(`${l.warmPoolSize} warm`);
  return parts.join(" · ") || "runs until stopped";
}

async function loadTemplates() {
  if (!server.has("list_templates")) return;
  const r = await server.call("list_templates", nsArgs());
  state.templates = (r.templates || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  syncRows($("templates-table"), state.templates, (t) => `${t.namespace}/${t.name}`, templateRow,
    "No templates in this namespace. Create one with “New template”.");
  const skipped = r.skipped || [];
  $("templates-status").textContent = `${state.templates.length} template${state.templates.length === 1 ? "" : "s"}` +
    (skipped.length ? ` · ${skipped.length} invalid ConfigMap${skipped.length === 1 ? "" : "s"} skipped: ${skipped.map((s) => s.name || s).join(", ")}` : "");
}

async function viewTemplate(t) {
  try {
    const r = await server.call("get_template", { name: t.name, namespace: t.namespace });
    showJson(`Template ${t.name}`, r.spec ?? r);
  } catch (e) {
    showBanner(say(`Could not read template ${t.name}`, e));
  }
}

const DEFAULT_SPEC = {
  containers: [{ name: "workspace", image: "node:20-alpine", command: ["sleep", "infinity"] }],
};

function openTemplateEditor(title, values, editing) {
  $("template-title").textContent = title;
  $("template-name").value = values.name || "";
  $("template-name").readOnly = editing;
  $("template-description").value = values.description || "";
  $("template-tag").value = values.tag || "";
  $("template-context").value = (values.requiredContext || []).join(", ");
  $("template-spec").value = JSON.stringify(values.spec || DEFAULT_SPEC, null, 2);
  $("template-spec").removeAttribute("aria-invalid");
  $("template-error").textContent = "";
  $("template-submit").disabled = false;
  $("template-form").dataset.editing = editing ? values.namespace || "" : "";
  $("template-form").dataset.mode = editing ? "edit" : "create";
  $("template-dialog").showModal();
  (editing ? $("template-description") : $("template-name")).focus();
}

async function editTemplate(t) {
  try {
    const r = await server.call("get_template", { name: t.name, namespace: t.namespace });
    openTemplateEditor(`Edit template ${t.name}`, { ...t, ...r, spec: r.spec }, true);
  } catch (e) {
    showBanner(say(`Could not read template ${t.name}`, e));
  }
}

async function submitTemplate(ev) {
  ev.preventDefault();
  const form = $("template-form");
  const specText = $("template-spec").value;
  let spec;
  try {
    spec = JSON.parse(specText);
  } catch (e) {
    $("template-spec").setAttribute("aria-invalid", "true");
    $("template-error").textContent = `The pod spec is not valid JSON${jsonErrorWhere(specText, e)}: ${e.message}`;
    $("template-spec").focus();
    return;
  }
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    $("template-spec").setAttribute("aria-invalid", "true");
    $("template-error").textContent = "The pod spec must be a JSON object, e.g. {\"containers\": [...]}.";
    return;
  }
  $("template-spec").removeAttribute("aria-invalid");
  if (!form.reportValidity()) return;
  const keys = $("template-context").value.split(",").map((s) => s.trim()).filter(Boolean);
  const args = {
    name: $("template-name").value.trim(),
    description: $("template-description").value,
    tag: $("template-tag").value,
    spec,
    annotations: { "nogoo9/required-context": keys.join(",") },
  };
  const editing = form.dataset.mode === "edit";
  if (editing && form.dataset.editing) args.namespace = form.dataset.editing;
  else Object.assign(args, nsArgs());
  $("template-submit").disabled = true;
  $("template-error").textContent = "Saving…";
  try {
    await server.call(editing ? "update_template" : "create_template", args);
    $("template-dialog").close();
    showBanner(`Template ${args.name} ${editing ? "updated" : "created"}.`, "info");
    await loadTemplates();
  } catch (e) {
    $("template-error").textContent = say("The template was not saved", e);
  } finally {
    $("template-submit").disabled = false;
  }
}

function deleteTemplate(t) {
  confirmAction(`Delete template ${t.name}?`,
    "Workspaces already running keep going; new ones can no longer start from it.",
    "Delete template",
    async () => {
      await server.call("delete_template", { name: t.name, namespace: t.namespace });
      showBanner(`Template ${t.name} deleted.`, "info");
      await loadTemplates();
    });
}

// ---------------------------------------------------------------- pods

function podRow(p) {
  const actions = h("td", { class: "actions", dataset: { label: "Actions" } });
  if (server.has("get_pod")) actions.append(h("button", { type: "button", class: "small secondary", "data-action": "details",
    "aria-label": `Details of pod ${p.name}`, onclick: () => podDetails(p) }, "Details"));
  if (server.has("get_pod_logs")) actions.append(h("button", { type: "button", class: "small secondary", "data-action": "logs",
    "aria-label": `Logs of pod ${p.name}`, onclick: () => openLogs(p.name, p.namespace) }, "Logs"));
  return h("tr", {},
    cell("Name", h("span", { class: "mono" }, p.name)),
    cell("Phase", h("span", { class: `badge ${p.phase || "Unknown"}` }, p.phase || "Unknown")),
    cell("Ready", `${p.ready ?? 0}/${p.total ?? 0}`),
    cell("Restarts", String(p.restarts ?? 0)),
    cell("IP", h("span", { class: "mono" }, p.podIP || "—")),
    cell("Node", p.node || "—"),
    actions);
}

async function loadPods() {
  if (!server.has("list_pods")) return;
  const r = await server.call("list_pods", nsArgs());
  const pods = (r.pods || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  syncRows($("pods-table"), pods, (p) => `${p.namespace}/${p.name}`, podRow, "No pods in this namespace.");
  $("pods-status").textContent = `${pods.length} pod${pods.length === 1 ? "" : "s"} · updated ${new Date().toLocaleTimeString()}`;
  return pods;
}

async function podDetails(p) {
  try {
    const r = await server.call("get_pod", { name: p.name, namespace: p.namespace });
    showJson(`Pod ${p.name}`, r.pod ?? r);
  } catch (e) {
    showBanner(say(`Could not read pod ${p.name}`, e));
  }
}

// ---------------------------------------------------------------- logs

async function fillLogPods(selectName) {
  const select = $("logs-pod");
  let names = [];
  if (server.has("list_pods")) {
    const r = await server.call("list_pods", nsArgs());
    names = (r.pods || []).map((p) => p.name);
  } else if (server.has("list_workspaces")) {
    const r = await server.call("list_workspaces", nsArgs());
    names = (r.workspaces || []).map((w) => w.name).filter(Boolean);
  }
  if (selectName && !names.includes(selectName)) names.push(selectName);
  names.sort();
  const keep = selectName || select.value;
  select.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
  if (keep && names.includes(keep)) select.value = keep;
  await fillContainers();
}

async function fillContainers() {
  const pod = $("logs-pod").value;
  const select = $("logs-container");
  const previous = select.value;
  if (!pod || !server.has("get_pod")) { select.replaceChildren(h("option", { value: "" }, "default")); return; }
  try {
    const r = await server.call("get_pod", nsArgs({ name: pod }));
    const p = r.pod ?? r;
    const names = [...(p.spec?.initContainers || []).map((c) => c.name), ...(p.spec?.containers || []).map((c) => c.name)];
    select.replaceChildren(h("option", { value: "" }, "default"), ...names.map((n) => h("option", { value: n }, n)));
    if (names.includes(previous)) select.value = previous;
  } catch (e) {
    $("logs-status").textContent = say(`Could not read pod ${pod}`, e);
  }
}

async function openLogs(podName, namespace) {
  if (namespace && state.mode === "cluster" && namespace !== state.namespace) {
    state.namespace = namespace;
    $("namespace").value = namespace;
  }
  selectView("logs", false, false);
  try {
    await fillLogPods(podName);
    await showLogs();
  } catch (e) {
    $("logs-status").textContent = say("Could not load logs", e);
  }
}

async function showLogs() {
  const pod = $("logs-pod").value;
  if (!pod) { $("logs-status").textContent = "Pick a pod."; return; }
  const tail = Number($("logs-tail").value);
  if (!Number.isInteger(tail) || tail < 1) {
    $("logs-tail").setAttribute("aria-invalid", "true");
    $("logs-status").textContent = "Last lines must be a whole number of at least 1.";
    return;
  }
  $("logs-tail").removeAttribute("aria-invalid");
  const container = $("logs-container").value;
  const out = $("logs-output");
  const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
  $("logs-status").textContent = `Loading logs of ${pod}…`;
  try {
    const r = await server.call("get_pod_logs", nsArgs({ name: pod, tailLines: tail, ...(container ? { container } : {}) }));
    out.textContent = r.logs ?? r.text ?? "";
    if (atBottom || !$("logs-follow").checked) out.scrollTop = out.scrollHeight;
    $("logs-status").textContent = `${pod}${container ? ` / ${container}` : ""} · last ${tail} lines · ${new Date().toLocaleTimeString()}` +
      ($("logs-follow").checked ? " · following" : "");
  } catch (e) {
    $("logs-status").textContent = say(`Could not read the logs of ${pod}`, e);
  }
}

function stopFollow() {
  clearInterval(state.followTimer);
  state.followTimer = null;
}

function followChanged() {
  stopFollow();
  if ($("logs-follow").checked) {
    showLogs();
    state.followTimer = setInterval(showLogs, FOLLOW_MS);
  } else {
    showLogs();
  }
}

// ---------------------------------------------------------------- dialogs

function showJson(title, value) {
  $("json-title").textContent = title;
  $("json-body").textContent = JSON.stringify(value, null, 2);
  $("json-dialog").showModal();
}

let confirmHandler = null;

function confirmAction(title, text, okLabel, action) {
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  $("confirm-ok").disabled = false;
  $("confirm-error").textContent = "";
  confirmHandler = action;
  $("confirm-dialog").showModal();
  $("confirm-dialog").querySelector("[data-close]").focus();
}

async function confirmed(ev) {
  ev.preventDefault();
  if (!confirmHandler) return;
  $("confirm-ok").disabled = true;
  $("confirm-error").textContent = "Working…";
  try {
    await confirmHandler();
    $("confirm-dialog").close();
  } catch (e) {
    $("confirm-error").textContent = say("That did not work", e);
  } finally {
    $("confirm-ok").disabled = false;
  }
}

// ---------------------------------------------------------------- refresh loop

async function refresh() {
  try {
    if (state.view === "workspaces") await loadWorkspaces();
    else if (state.view === "templates") await loadTemplates();
    else if (state.view === "pods") await loadPods();
    else if (state.view === "logs" && !$("logs-pod").options.length) await fillLogPods();
    if (!$("banner").classList.contains("info")) showBanner("");
  } catch (e) {
    showBanner(say(`Could not refresh the ${state.view}`, e));
  }
}

function stopTimers() {
  clearInterval(state.timer);
  state.timer = null;
  stopFollow();
}

async function loadNamespaces() {
  const cur = await server.call("current_namespace");
  state.mode = cur.mode;
  state.role = cur.role;
  if (cur.mode === "cluster" && server.has("list_namespaces")) {
    state.namespace = state.namespace || cur.namespace;
    const r = await server.call("list_namespaces");
    const names = r.namespaces || [cur.namespace];
    if (!names.includes(state.namespace)) names.unshift(state.namespace);
    $("namespace").replaceChildren(...names.map((n) => h("option", { value: n }, n)));
    $("namespace").value = state.namespace;
    $("namespace-field").hidden = false;
    $("namespace-fixed").hidden = true;
  } else {
    // No picker: the server's defaults (a user's are the workspace and template
    // namespaces the policy fixes).
    state.namespace = "";
    $("namespace-fixed").textContent = `Namespace: ${cur.namespace}`;
    $("namespace-fixed").hidden = false;
    $("namespace-field").hidden = true;
  }
}

async function start() {
  stopTimers();
  renderWhoAmI();
  try {
    if (!server.transport) await server.connect();
    await server.listTools();
  } catch (e) {
    if (e instanceof AuthRequired) { signInNeeded(e.message); $("token-input").focus(); return; }
    showBanner(say("Could not connect to the server", e));
    return;
  }
  $("signin").hidden = true;
  for (const el of document.querySelectorAll("[data-needs]")) el.hidden = !server.has(el.dataset.needs);
  $("tab-pods").hidden = !server.has("list_pods");
  $("tab-logs").hidden = !server.has("get_pod_logs");
  try {
    await loadNamespaces();
  } catch (e) {
    showBanner(say("Could not read the namespace", e));
  }
  renderWhoAmI();
  if (!store.get(TOKEN_KEY) && !(server.transport instanceof HostTransport)) {
    $("whoami").textContent = "Auth is off: anyone who reaches this server can use it";
  }
  await refresh();
  state.timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
}

function wire() {
  for (const v of VIEWS) $(`tab-${v}`).addEventListener("click", () => selectView(v));
  document.querySelector(".tabs").addEventListener("keydown", tabKeys);
  $("refresh").addEventListener("click", () => refresh());
  $("namespace").addEventListener("change", () => {
    state.namespace = $("namespace").value;
    state.templates = [];
    if (state.view === "logs") fillLogPods().catch((e) => { $("logs-status").textContent = say("Could not list pods", e); });
    refresh();
  });
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("new-workspace").addEventListener("click", () => openSpawn());
  $("new-template").addEventListener("click", () => openTemplateEditor("New template", {}, false));
  $("spawn-template").addEventListener("change", renderContextFields);
  $("spawn-form").addEventListener("submit", submitSpawn);
  $("template-form").addEventListener("submit", submitTemplate);
  $("confirm-dialog").querySelector("form").addEventListener("submit", confirmed);
  $("logs-form").addEventListener("submit", (ev) => { ev.preventDefault(); showLogs(); });
  $("logs-pod").addEventListener("change", () => fillContainers().then(showLogs));
  $("logs-follow").addEventListener("change", followChanged);
  for (const b of document.querySelectorAll("dialog [data-close]")) {
    b.addEventListener("click", () => b.closest("dialog").close());
  }
}

wire();
takeTokenFromUrl();
start();

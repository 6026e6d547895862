// Supervisors' call-control buttons: a form with data-confirm asks first (ending a call for a
// caller and an operator cannot be undone). No inline script: the CSP forbids them.
"use strict";

document.addEventListener("submit", function (event) {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  const question = form.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// The wallboard's control section and the call page's "monitoring now": filled from the API
// every two seconds; every value enters the page through textContent, never as HTML. Actions
// are JSON posts with the CSRF header (dashboard/routes/api_control.py, api_agents.py).
(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";
  const EVERY_MS = 2000;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function cell(row, content, className) {
    const td = el("td", undefined, className);
    if (content instanceof Node) td.appendChild(content);
    else td.textContent = content === null || content === undefined ? "" : String(content);
    row.appendChild(td);
    return td;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds || 0));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function detailOf(body, fallback) {
    if (!body) return fallback;
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail) && body.detail.length) {
      return body.detail.map(function (d) { return d.msg || String(d); }).join("; ");
    }
    return fallback;
  }

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(String(response.status));
    return response.json();
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Accept: "application/json" },
      body: body === undefined ? "{}" : JSON.stringify(body),
    });
    let parsed = null;
    try {
      parsed = await response.json();
    } catch (_) {
      parsed = null;
    }
    return { ok: response.ok, status: response.status, body: parsed };
  }

  // A table is redrawn only when its data changed and nobody is typing or choosing in it.
  function redraw(body, key, rows) {
    if (body.dataset.shown === key) return;
    const active = document.activeElement;
    if (active && body.contains(active) && (active.tagName === "INPUT" || active.tagName === "SELECT")) return;
    body.dataset.shown = key;
    body.replaceChildren(...rows);
  }

  function monitorRow(m, callUrl) {
    const row = el("tr");
    row.dataset.supervisor = m.supervisor;
    row.dataset.mode = m.mode;
    row.dataset.callId = String(m.call_id);
    cell(row, m.supervisor);
    cell(row, m.mode, "mode");
    cell(row, m.operator || "");
    if (callUrl && m.call_id) {
      const link = el("a", m.call_id);
      link.href = callUrl + encodeURIComponent(String(m.call_id));
      cell(row, link);
    } else cell(row, m.call_id || "");
    cell(row, duration(m.seconds), "num");
    return row;
  }

  function showMonitors(body, empty, list, callUrl) {
    redraw(body, JSON.stringify(list.map(function (m) { return [m.supervisor, m.mode, m.call_id]; })),
      list.map(function (m) { return monitorRow(m, callUrl); }));
    if (empty) empty.hidden = list.length > 0;
  }

  // --- the call page: who is monitoring this call ---
  const callBox = document.getElementById("call-monitors");
  if (callBox) {
    const body = document.getElementById("call-monitors-rows");
    const empty = document.getElementById("call-monitors-empty");
    const refreshCall = async function () {
      try {
        showMonitors(body, empty, await getJson(callBox.dataset.url), null);
        callBox.dataset.loaded = "yes";
      } catch (_) {
        callBox.dataset.loaded = "error";
      }
    };
    refreshCall();
    setInterval(refreshCall, EVERY_MS);
  }

  // --- the wallboard's control section ---
  const root = document.getElementById("wb-control");
  if (!root) return;
  const cfg = root.dataset;
  const queues = (cfg.queues || "").split(",").filter(Boolean);
  // The logged-in operators, from the last agents read: a waiting caller can be moved to one.
  let operators = [];
  const status = document.getElementById("wb-control-status");

  function say(text, bad) {
    status.hidden = false;
    status.textContent = text;
    status.classList.toggle("error", !!bad);
  }

  async function act(button, url, body, pending) {
    button.disabled = true;
    if (pending) say(pending, false);
    try {
      const result = await post(url, body);
      const fallback = result.ok ? cfg.tDone : "HTTP " + result.status;
      let text = fallback;
      if (result.ok && result.body && Array.isArray(result.body)) {
        text = result.body.map(function (o) { return o.detail; }).join("; ");
      } else if (result.ok && result.body && result.body.detail) text = result.body.detail;
      else if (!result.ok) text = detailOf(result.body, fallback);
      say(text, !result.ok);
    } catch (error) {
      say(String(error), true);
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  function select(options, name) {
    const box = el("select");
    box.name = name;
    options.forEach(function (pair) {
      const option = el("option", pair[1]);
      option.value = pair[0];
      box.appendChild(option);
    });
    return box;
  }

  function button(text, className, onClick) {
    const b = el("button", text, className);
    b.type = "button";
    b.addEventListener("click", function () { onClick(b); });
    return b;
  }

  function callRow(c) {
    const row = el("tr");
    row.dataset.callId = String(c.call_id);
    const link = el("a", c.caller_number);
    link.href = cfg.callUrl + encodeURIComponent(String(c.call_id));
    cell(row, link, "number");
    cell(row, c.stage_label || c.stage);
    cell(row, c.queue || "");
    cell(row, c.operator || "");
    const tools = el("div", undefined, "inline-form");
    const base = "/api/calls/" + encodeURIComponent(String(c.call_id));
    if (c.stage === "talking") {
      const mode = select([["listen", cfg.tListen], ["whisper", cfg.tWhisper], ["barge", cfg.tBarge]], "mode");
      tools.append(mode, button(cfg.tMonitor, "control-monitor", function (b) {
        act(b, base + "/monitor", { mode: mode.value }, cfg.tRinging);
      }));
    } else {
      // A queue, or one logged-in operator's own phone (value "operator:<login>").
      const targets = queues.map(function (q) { return [q, q]; }).concat(
        operators.map(function (a) { return ["operator:" + a.login, a.name + " (" + a.login + ")"]; }));
      const target = select(targets, "queue");
      tools.append(target, button(cfg.tMove, "control-move", function (b) {
        const value = target.value;
        const operator = value.startsWith("operator:") ? value.slice("operator:".length) : null;
        act(b, base + "/move", operator ? { operator: operator } : { queue: value });
      }));
    }
    tools.append(button(cfg.tHangup, "control-hangup danger", function (b) {
      if (window.confirm(cfg.tHangupConfirm)) act(b, base + "/hangup");
    }));
    cell(row, tools);
    return row;
  }

  function skillsText(agent) {
    return agent.queues.map(function (q) { return q.queue + ":" + q.penalty; }).join(",");
  }

  function parseSkills(text) {
    return text.split(",").map(function (part) { return part.trim(); }).filter(Boolean).map(function (part) {
      const pieces = part.split(":");
      const penalty = pieces.length > 1 && pieces[1].trim() !== "" ? Number(pieces[1]) : 0;
      return { queue: pieces[0].trim().toLowerCase(), penalty: Number.isInteger(penalty) ? penalty : -1 };
    });
  }

  function agentRow(a) {
    const row = el("tr");
    row.dataset.login = a.login;
    row.dataset.state = a.state;
    row.dataset.paused = a.paused ? "yes" : "no";
    row.dataset.loggedIn = a.logged_in ? "yes" : "no";
    cell(row, a.name + " (" + a.login + ")");
    cell(row, a.state + (a.pause_reason ? " — " + a.pause_reason : ""), "state");
    const spec = el("input");
    spec.name = "queues";
    spec.value = skillsText(a);
    spec.size = 24;
    const base = "/api/agents/" + encodeURIComponent(a.login);
    const queuesCell = el("div", undefined, "inline-form");
    queuesCell.append(spec, button(cfg.tQueues, "control-queues", function (b) {
      act(b, base + "/queues", { queues: parseSkills(spec.value) });
    }));
    cell(row, queuesCell);
    const tools = el("div", undefined, "inline-form");
    if (a.logged_in && !a.paused) {
      const reason = el("input");
      reason.name = "reason";
      reason.placeholder = cfg.tReason;
      reason.maxLength = 64;
      tools.append(reason, button(cfg.tPause, "control-pause", function (b) {
        if (!reason.value.trim()) {
          say(cfg.tReason, true);
          reason.focus();
          return;
        }
        act(b, base + "/pause", { reason: reason.value.trim() });
      }));
    }
    if (a.paused) {
      tools.append(button(cfg.tUnpause, "control-unpause", function (b) { act(b, base + "/unpause"); }));
    }
    if (a.logged_in) {
      tools.append(button(cfg.tLogout, "control-logout danger", function (b) {
        if (window.confirm(cfg.tLogoutConfirm)) act(b, base + "/logout");
      }));
    }
    cell(row, tools);
    return row;
  }

  async function refresh() {
    const [monitors, board, agents] = await Promise.allSettled([
      getJson(cfg.monitorsUrl), getJson(cfg.callsUrl), getJson(cfg.agentsUrl),
    ]);
    if (monitors.status === "fulfilled") {
      showMonitors(document.getElementById("wb-monitors"), document.getElementById("wb-monitors-empty"),
        monitors.value, cfg.callUrl);
    }
    if (agents.status === "fulfilled") {
      operators = agents.value.filter(function (a) { return a.logged_in; });
    }
    if (board.status === "fulfilled") {
      const calls = (board.value.calls || []).filter(function (c) { return c.call_id; });
      redraw(document.getElementById("wb-control-calls"),
        JSON.stringify([calls.map(function (c) { return [c.call_id, c.stage, c.queue, c.operator]; }),
          operators.map(function (a) { return a.login; })]),
        calls.map(callRow));
    }
    if (agents.status === "fulfilled") {
      redraw(document.getElementById("wb-control-agents"),
        JSON.stringify(agents.value.map(function (a) {
          return [a.login, a.state, a.logged_in, a.paused, a.pause_reason, skillsText(a)];
        })),
        agents.value.map(agentRow));
    }
    root.dataset.loaded = "yes";
  }

  refresh();
  setInterval(refresh, EVERY_MS);
})();

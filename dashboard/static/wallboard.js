// The wallboard, live over Server-Sent Events.
// Each "snapshot" event carries the whole board; it replaces the tables. Every value is
// caller-controlled or server data: it only enters the page through textContent, never as HTML.
// EventSource reconnects by itself after a server restart, and the server starts every
// connection with a full snapshot, so the board re-syncs without a reload.
"use strict";

(function () {
  const root = document.getElementById("wallboard");
  if (!root || !window.EventSource) return;
  const cfg = root.dataset;
  const status = document.getElementById("wb-status");
  // Snapshot times tick on between events: remember when the last one arrived.
  let received = 0;
  let last = null;
  const { duration, cell, fill } = window.hotlineCells;

  function percent(share) {
    return share === null || share === undefined ? "—" : Math.round(share * 100) + "%";
  }

  function elapsed() {
    return received ? (Date.now() - received) / 1000 : 0;
  }

  function queueRow(q) {
    const row = document.createElement("tr");
    row.dataset.queue = q.queue;
    if (q.tenant) row.dataset.tenant = q.tenant;
    cell(row, q.label || q.queue);
    cell(row, q.waiting, "num");
    cell(row, duration(q.longest_wait_seconds === null ? null : q.longest_wait_seconds + elapsed()), "num");
    cell(row, q.offered, "num");
    cell(row, q.answered, "num");
    cell(row, q.abandoned, "num");
    cell(row, percent(q.service_level), "num");
    cell(row, duration(q.asa_seconds), "num");
    cell(row, duration(q.aht_seconds), "num");
    return row;
  }

  function callRow(c) {
    const row = document.createElement("tr");
    row.dataset.stage = c.stage;
    const td = cell(row, "", "number");
    if (c.call_id) {
      const link = document.createElement("a");
      link.href = cfg.callUrl + encodeURIComponent(String(c.call_id));
      link.textContent = c.caller_number;
      td.appendChild(link);
    } else {
      td.textContent = c.caller_number;
    }
    cell(row, c.caller_name);
    // In a cluster, the node the call is on (one box: no node).
    cell(row, c.node ? c.stage_label + " · " + c.node : c.stage_label);
    cell(row, c.queue);
    cell(row, c.operator);
    cell(row, duration(c.seconds_in_stage + elapsed()), "num");
    return row;
  }

  function operatorRow(op) {
    const row = document.createElement("tr");
    cell(row, op.node ? op.name + " · " + op.node : op.name);
    cell(row, op.state_label);
    cell(row, duration(op.seconds_in_state === null ? null : op.seconds_in_state + elapsed()), "num");
    return row;
  }

  function alertItem(a) {
    const li = document.createElement("li");
    li.className = "alert alert-" + a.kind;
    li.textContent = a.text;
    return li;
  }

  function render() {
    if (!last) return;
    fill("wb-alerts", "wb-alerts-empty", last.alerts, alertItem);
    fill("wb-queues", null, last.queues, queueRow);
    fill("wb-calls", "wb-calls-empty", last.calls, callRow);
    fill("wb-operators", "wb-operators-empty", last.operators, operatorRow);
  }

  function setStatus(text, bad) {
    status.textContent = text;
    status.classList.toggle("error", bad);
  }

  const source = new EventSource(cfg.streamUrl);
  source.addEventListener("snapshot", function (event) {
    last = JSON.parse(event.data);
    received = Date.now();
    root.dataset.generatedAt = last.generated_at;
    render();
    updatedClock = new Date().toLocaleTimeString([], { hour12: false });
    liveStatus();
  });

  // Live, stale (with the age of the router's last update, ticking), or Redis down.
  let updatedClock = "";
  function liveStatus() {
    const clock = updatedClock;
    root.dataset.stale = last.stale ? "yes" : "no";
    const known = last.live_age_seconds !== null && last.live_age_seconds !== undefined;
    const age = known ? last.live_age_seconds + Math.floor((Date.now() - received) / 1000) : null;
    if (last.stale && known) {
      setStatus(cfg.tStale.replace("{age}", age + " s"), true);
    } else if (last.stale && last.redis) {
      setStatus(cfg.tStaleUnknown, true);
    } else if (last.live) setStatus(cfg.tLive + " — " + cfg.tUpdated + " " + clock, false);
    else setStatus(cfg.tRedisDown + " — " + cfg.tUpdated + " " + clock, true);
  }
  source.addEventListener("error", function () {
    // EventSource retries on its own (the server asks for 2 s); just say so.
    setStatus(cfg.tReconnecting, true);
  });
  // The sign-in ended (signed out elsewhere, expired, disabled): the reload asks again.
  source.addEventListener("ended", function () {
    source.close();
    window.location.reload();
  });
  // Let the clocks (and a stale marker's age) tick between snapshots.
  setInterval(function () {
    render();
    if (last && last.stale) liveStatus();
  }, 1000);
})();

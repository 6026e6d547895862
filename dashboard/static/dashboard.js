// Keeps the calls page fresh from the JSON API.
// Every value from the API is caller-controlled text: it only ever goes in via textContent,
// never innerHTML, so a caller name like <script>…</script> is shown, not run.
"use strict";

(function () {
  const live = document.getElementById("live");
  if (!live) return;

  const cfg = live.dataset;
  // Swedish formatting is ISO-like ("2026-11-23 19:55:00"): the same text the server renders.
  const ISO_LIKE = "sv-SE";
  const refreshMs = Math.max(1000, Number(cfg.refreshMs) || 2000);
  const searching = cfg.caller !== "";
  // Every time on the page: the centre's zone, 24-hour clock, plus the fields asked for.
  function zoned(fields) {
    return new Intl.DateTimeFormat(ISO_LIKE, {
      timeZone: cfg.zone || "UTC",
      hourCycle: "h23",
      ...fields,
    });
  }
  const timeFormat = zoned({
    ...(searching ? { year: "numeric", month: "2-digit", day: "2-digit" } : {}),
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
  const dateTimeFormat = zoned({
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  });
  const clockFormat = zoned({ hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const status = document.getElementById("status");
  const { duration, cell, fill } = window.hotlineCells;

  function timeCell(row, iso, format, href) {
    const td = document.createElement("td");
    const time = document.createElement("time");
    time.dateTime = iso;
    time.textContent = format.format(new Date(iso));
    if (href) {
      const link = document.createElement("a");
      link.href = href;
      link.appendChild(time);
      td.appendChild(link);
    } else {
      td.appendChild(time);
    }
    row.appendChild(td);
  }

  function callRow(call) {
    const row = document.createElement("tr");
    timeCell(row, call.started_at, timeFormat, cfg.callUrl + encodeURIComponent(String(call.id)));
    cell(row, call.caller_number, "number");
    cell(row, call.caller_name);
    cell(row, call.menu_choice);
    cell(row, call.queue);
    cell(row, call.outcome || (call.ended_at ? "" : cfg.tInProgress || "in progress"));
    cell(row, call.operator);
    cell(row, duration(call.wait_seconds) + " / " + duration(call.talk_seconds), "num");
    return row;
  }

  function callbackRow(cb) {
    const row = document.createElement("tr");
    timeCell(row, cb.created_at, dateTimeFormat);
    cell(row, cb.caller_number, "number");
    cell(row, cb.reason);
    cell(row, cb.queue);
    cell(row, cb.attempts, "num");
    timeCell(row, cb.updated_at, dateTimeFormat);
    return row;
  }

  function callsUrl() {
    const params = new URLSearchParams({ limit: cfg.limit });
    if (searching) params.set("caller", cfg.caller);
    else if (cfg.since) params.set("since", cfg.since);
    return cfg.callsUrl + "?" + params.toString();
  }

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }

  let busy = false;
  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const [calls, callbacks] = await Promise.all([
        getJson(callsUrl()),
        getJson(cfg.callbacksUrl),
      ]);
      fill("calls-body", "calls-empty", calls, callRow);
      fill("callbacks-body", "callbacks-empty", callbacks, callbackRow);
      status.textContent = (cfg.tLive || "Live — updated") + " " + clockFormat.format(new Date());
      status.classList.remove("error");
    } catch (err) {
      status.textContent = (cfg.tOffline || "Cannot reach the server; retrying…") + " (" + err.message + ")";
      status.classList.add("error");
    } finally {
      busy = false;
    }
  }

  // "Today" ends at local midnight: reload then, so the server renders the new day.
  const dayFormat = new Intl.DateTimeFormat("en-CA", { timeZone: cfg.zone || "UTC" });
  const pageDay = dayFormat.format(new Date());
  setInterval(function () {
    if (!searching && dayFormat.format(new Date()) !== pageDay) {
      window.location.reload();
      return;
    }
    refresh();
  }, refreshMs);
  document.addEventListener("visibilitychange", refresh);
  refresh();
})();

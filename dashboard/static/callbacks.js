// The callback list: claim, release, click-to-call (with its progress) and outcomes through
// /api/callbacks. The lists are server-rendered fragments (autoescaped): pushed over
// Server-Sent Events whenever anyone changes the list, reloaded after this page's own actions,
// and polled slowly only while the live feed is down. A fragment that arrives while the
// operator is typing in the lists (or reading a history) waits until they are done.
"use strict";

(function () {
  const root = document.getElementById("callbacks");
  if (!root) return;
  const cfg = root.dataset;
  const login = cfg.login;
  const lists = document.getElementById("cb-lists");
  const status = document.getElementById("cb-status");
  const progress = document.getElementById("cb-progress");
  const progressText = document.getElementById("cb-progress-text");
  let polling = null;
  let source = null;
  let pending = null;  // lists HTML held back while the operator is busy in them

  function say(text, bad) {
    status.textContent = text;
    status.classList.toggle("error", !!bad);
  }

  const send = window.hotlinePost;

  function busy() {
    return lists.contains(document.activeElement) ||
      lists.querySelector("details[open]") !== null;
  }

  function show(html) {
    if (busy()) {
      pending = html;
      return;
    }
    pending = null;
    // Server-rendered and autoescaped (partials/callback_lists.html).
    lists.innerHTML = html;
    root.dataset.loadedAt = String(Date.now());
  }

  function showPending() {
    // After focus moved or a history closed: the held-back lists, if nothing else is busy.
    setTimeout(function () { if (pending !== null && !busy()) show(pending); }, 0);
  }

  async function reload() {
    const response = await fetch(cfg.listsUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    pending = null;
    lists.innerHTML = await response.text();  // this page's own action: show it at once
    root.dataset.loadedAt = String(Date.now());
  }

  function act(promise, doneText) {
    say("…", false);
    return promise.then(function (data) {
      say(doneText, false);
      return reload().then(function () { return data; });
    }).catch(function (err) { say(err.message, true); });
  }

  function watch(callbackId, callId, number) {
    if (polling) clearInterval(polling);
    progress.hidden = false;
    progress.dataset.stage = "placing";
    document.getElementById("cb-progress-number").textContent = number;
    progressText.textContent = cfg.tCalling;
    const started = Date.now();
    polling = setInterval(async function () {
      const response = await fetch(
        cfg.pageUrl + encodeURIComponent(callbackId) + "/progress/" + encodeURIComponent(callId),
        { credentials: "same-origin" });
      if (!response.ok) return;
      const p = await response.json();
      progress.dataset.stage = p.stage;
      progressText.textContent = p.text;
      // Give up watching after 5 minutes; the history keeps the rest.
      if (p.done || Date.now() - started > 300000) {
        clearInterval(polling);
        polling = null;
        progress.dataset.done = "yes";
        reload();
      }
    }, Number(cfg.progressPollMs) || 1000);
  }

  lists.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const id = button.dataset.id;
    const url = cfg.apiUrl + encodeURIComponent(id) + "/" + button.dataset.action;
    const action = button.dataset.action;
    button.disabled = true;
    if (action === "call") {
      const row = button.closest("tr");
      act(send(url, { operator: login }), cfg.tDone).then(function (placed) {
        if (placed) watch(id, placed.call_id, row ? row.dataset.number : "");
      });
    } else {
      act(send(url, { operator: login }), cfg.tDone);
    }
  });

  lists.addEventListener("submit", function (event) {
    const form = event.target.closest("form.cb-outcome");
    if (!form) return;
    event.preventDefault();
    const body = { outcome: form.elements.outcome.value, operator: login };
    const note = form.elements.note.value.trim();
    if (note) body.note = note;
    if (form.elements.at.value) body.at = new Date(form.elements.at.value).toISOString();
    act(send(cfg.apiUrl + encodeURIComponent(form.dataset.id) + "/outcome", body), cfg.tDone);
  });

  // History on demand: one request per entry the operator opens.
  lists.addEventListener("toggle", function (event) {
    const details = event.target;
    if (!details.classList.contains("history")) return;
    if (!details.open) { showPending(); return; }
    const body = details.querySelector(".history-body");
    fetch(cfg.pageUrl + encodeURIComponent(details.dataset.id) + "/history",
      { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) { body.innerHTML = html; });  // server-rendered, autoescaped
  }, true);

  lists.addEventListener("focusout", showPending);

  function live() {
    return source !== null && source.readyState === EventSource.OPEN &&
      root.dataset.live === "yes";
  }

  if (window.EventSource && cfg.streamUrl) {
    source = new EventSource(cfg.streamUrl);
    source.addEventListener("lists", function (event) {
      const data = JSON.parse(event.data);
      root.dataset.live = data.live ? "yes" : "no";
      show(data.html);
    });
    // The sign-in ended (signed out elsewhere, expired, disabled): the reload asks again.
    source.addEventListener("ended", function () {
      source.close();
      window.location.reload();
    });
    source.addEventListener("error", function () { root.dataset.live = "no"; });
  }

  // The fallback: while the live feed is down, other operators' work shows up this often.
  setInterval(function () {
    if (!live() && !busy()) reload();
  }, Number(cfg.refreshMs) || 60000);
})();

// The callback list: claim, release, click-to-call (with its progress) and outcomes through
// /api/callbacks; the lists are server-rendered fragments (autoescaped) reloaded after each
// action and now and then, unless the operator is typing in them.
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

  function say(text, bad) {
    status.textContent = text;
    status.classList.toggle("error", !!bad);
  }

  const send = window.hotlinePost;

  async function reload() {
    const response = await fetch(cfg.listsUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    // Server-rendered and autoescaped (partials/callback_lists.html).
    lists.innerHTML = await response.text();
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
    if (!details.open || !details.classList.contains("history")) return;
    const body = details.querySelector(".history-body");
    fetch(cfg.pageUrl + encodeURIComponent(details.dataset.id) + "/history",
      { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) { body.innerHTML = html; });  // server-rendered, autoescaped
  }, true);

  setInterval(function () {
    const busy = lists.contains(document.activeElement) ||
      lists.querySelector("details[open]") !== null;
    if (!busy) reload();
  }, Number(cfg.refreshMs) || 15000);
})();

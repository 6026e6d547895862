// The operator page: live panels over Server-Sent Events, queue log-in / pause / log-out and
// the disposition form through the JSON APIs. The server renders the panels (autoescaped
// Jinja partials); caller data never passes through this script as HTML of its own making.
"use strict";

(function () {
  const root = document.getElementById("operator");
  if (!root) return;
  const cfg = root.dataset;
  const status = document.getElementById("op-status");
  const agentMsg = document.getElementById("op-agent-msg");
  const form = document.getElementById("op-disposition");
  const formMsg = document.getElementById("op-disposition-msg");
  // Typed into the form: a new call must not wipe it; the form keeps its call until saved.
  let dirty = false;

  function say(el, text, bad) {
    el.textContent = text;
    el.classList.toggle("error", !!bad);
  }

  const send = window.hotlinePost;

  function setTarget(last) {
    const target = document.getElementById("op-disposition-target");
    const save = document.getElementById("op-disposition-save");
    if (!last) {
      if (form.dataset.callId) return;  // keep the call being described
      target.textContent = cfg.tNoLastCall;
      save.disabled = true;
      return;
    }
    if (String(last.id) === form.dataset.callId || dirty) return;
    form.dataset.callId = String(last.id);
    const link = document.createElement("a");
    link.href = "/calls/" + encodeURIComponent(String(last.id));
    link.textContent = "#" + last.id;
    const number = document.createElement("span");
    number.className = "number";
    number.textContent = last.caller_number;
    target.replaceChildren(cfg.tCallLabel + " ", link, " ", number, " (" + last.started_at + ")");
    if (last.category) document.getElementById("op-category").value = last.category;
    document.getElementById("op-note").value = last.note || "";
    document.getElementById("op-callout").checked = !!last.callout_created;
    save.disabled = false;
    say(formMsg, "", false);
  }

  function agentAction(path, body) {
    say(agentMsg, "…", false);
    send(cfg.agentsUrl + path, body).then(function (agent) {
      const note = agent && agent.pending ? " (pending)" : "";
      say(agentMsg, cfg.tDone + ": " + (agent ? agent.state : "") + note, false);
    }).catch(function (err) { say(agentMsg, err.message, true); });
  }

  document.getElementById("op-login-form").addEventListener("submit", function (event) {
    event.preventDefault();
    const queues = Array.from(event.target.querySelectorAll("input[name='queue']:checked"))
      .map(function (box) { return box.value; });
    agentAction("login", { queues: queues });
  });
  document.getElementById("op-logout").addEventListener("click", function () {
    agentAction("logout");
  });
  document.getElementById("op-pause-form").addEventListener("submit", function (event) {
    event.preventDefault();
    agentAction("pause", { reason: document.getElementById("op-pause-reason").value });
  });
  document.getElementById("op-unpause").addEventListener("click", function () {
    agentAction("unpause");
  });

  form.addEventListener("input", function () { dirty = true; });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const callId = form.dataset.callId;
    if (!callId) return;
    say(formMsg, "…", false);
    send(cfg.callsUrl + encodeURIComponent(callId) + "/disposition", {
      category: document.getElementById("op-category").value,
      note: document.getElementById("op-note").value,
      callout_created: document.getElementById("op-callout").checked,
      operator: cfg.login,
    }).then(function (saved) {
      dirty = false;
      form.dataset.savedCallId = callId;
      say(formMsg, cfg.tSaved + " (" + saved.category + ")", false);
    }).catch(function (err) { say(formMsg, err.message, true); });
  });

  // The call card is rendered again on every live update: what the operator chose in it
  // meanwhile (the company of an unknown caller) is put back while it shows the same call, or
  // a click a moment later would send the default choice.
  const callBox = document.getElementById("op-call");
  let chosen = {};
  let chosenFor = null;
  callBox.addEventListener("change", function (event) {
    const el = event.target;
    const card = document.getElementById("op-call-card");
    if (!el.id || !card) return;
    if (chosenFor !== card.dataset.callId) chosen = {};
    chosenFor = card.dataset.callId;
    chosen[el.id] = el.value;
  });

  if (!window.EventSource) return;
  const source = new EventSource(cfg.streamUrl);
  source.addEventListener("panels", function (event) {
    const data = JSON.parse(event.data);
    const callId = data.call_id === null ? "" : String(data.call_id);
    // Server-rendered, autoescaped fragments of this page's own partials.
    document.getElementById("op-agent").innerHTML = data.agent_html;
    callBox.innerHTML = data.call_html;
    if (callId === chosenFor) {
      Object.keys(chosen).forEach(function (id) {
        const el = document.getElementById(id);
        if (el && callBox.contains(el)) el.value = chosen[id];
      });
    } else {
      chosen = {};
      chosenFor = null;
    }
    root.dataset.generatedAt = data.generated_at;
    root.dataset.callId = callId;
    setTarget(data.last_call);
    const clock = new Date().toLocaleTimeString([], { hour12: false });
    say(status, cfg.tLive + " — " + cfg.tUpdated + " " + clock, !data.live);
  });
  source.addEventListener("error", function () { say(status, cfg.tReconnecting, true); });
  // The sign-in ended (signed out elsewhere, expired, disabled): the reload asks again.
  source.addEventListener("ended", function () {
    source.close();
    window.location.reload();
  });
})();

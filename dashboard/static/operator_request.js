// The operator page's service-request form (screen-pop, issue 14): prefilled from the call the
// disposition form describes (GET /api/requests/suggest: category from the recognised intent,
// the caller's last address, their open requests), created with POST /api/requests (a report
// of an open problem attaches to it), or the call attached to an open one. The number to read
// to the caller is shown in large type. Caller data is only ever set as textContent.
"use strict";

(function () {
  const box = document.getElementById("op-request");
  const target = document.getElementById("op-disposition");
  if (!box || !target) return;
  const cfg = box.dataset;
  const form = document.getElementById("op-request-form");
  const create = document.getElementById("op-req-create");
  const openList = document.getElementById("op-req-open");
  const msg = document.getElementById("op-req-msg");
  const field = function (name) { return document.getElementById("op-req-" + name); };
  let callId = "";

  function say(label, number, bad) {
    msg.classList.toggle("error", !!bad);
    if (!number) { msg.textContent = label; return; }
    const big = document.createElement("strong");
    big.className = "request-number";
    big.id = "op-req-number";
    big.textContent = number;
    msg.replaceChildren(label + " ", big);
  }

  function attachButton(request) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = cfg.tAttach + " " + request.number;
    button.addEventListener("click", function () {
      window.hotlinePost(cfg.requestsUrl + "/" + encodeURIComponent(request.number) + "/calls",
        { call_id: Number(callId) })
        .then(function (linked) { say(cfg.tLinked, linked.number, false); })
        .catch(function (err) { say(err.message, "", true); });
    });
    const what = document.createElement("span");
    what.textContent = " " + request.category + ", " + request.street + " " + request.house +
      (request.flat ? "/" + request.flat : "") + " — " + request.state;
    item.replaceChildren(button, what);
    return item;
  }

  async function prefill(id) {
    callId = id;
    create.disabled = !id;
    openList.replaceChildren();
    if (!id) return;
    const response = await fetch(cfg.suggestUrl + "?call_id=" + encodeURIComponent(id), {
      credentials: "same-origin", headers: { Accept: "application/json" },
    });
    if (!response.ok || id !== callId) return;
    const found = await response.json();
    if (found.category) field("category").value = found.category;
    const last = found.last_address;
    if (last) {
      for (const name of ["street", "house", "flat"]) {
        if (!field(name).value && last[name]) field(name).value = last[name];
      }
    }
    openList.replaceChildren(...found.open_requests.map(attachButton));
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!callId) return;
    say("…", "", false);
    window.hotlinePost(cfg.requestsUrl, {
      call_id: Number(callId),
      category: field("category").value,
      street: field("street").value,
      house: field("house").value,
      flat: field("flat").value || null,
      description: field("description").value,
    }).then(function (made) {
      say(made.attached ? cfg.tAttached : cfg.tCreated, made.number, false);
    }).catch(function (err) { say(err.message, "", true); });
  });

  // The disposition form's call (set by operator.js from the live panels) is this form's.
  new MutationObserver(function () {
    if ((target.dataset.callId || "") !== callId) prefill(target.dataset.callId || "");
  }).observe(target, { attributes: true, attributeFilter: ["data-call-id"] });
  prefill(target.dataset.callId || "");
})();

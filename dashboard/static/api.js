// POST JSON to the dashboard's API from a page script: the session's CSRF token (the page's
// <meta name="csrf-token">) goes along as X-CSRF-Token; a refusal becomes an Error whose
// message is the API's own words (detail / detail.message), ready for textContent.
"use strict";

window.hotlinePost = async function (url, body) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  const token = document.querySelector("meta[name='csrf-token']");
  if (token) headers["X-CSRF-Token"] = token.content;
  const response = await fetch(url, {
    method: "POST",
    headers: headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const detail = data && data.detail;
    let text = response.status + " " + response.statusText;
    if (typeof detail === "string") text = detail;
    else if (detail && detail.message) text = detail.message;
    else if (Array.isArray(detail) && detail.length) text = detail[0].msg;
    throw new Error(text);
  }
  return data;
};

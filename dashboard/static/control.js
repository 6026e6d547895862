// Supervisors' call-control buttons: a form with data-confirm asks first (ending a call for a
// caller and an operator cannot be undone). No inline script: the CSP forbids them.
"use strict";

document.addEventListener("submit", function (event) {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  const question = form.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

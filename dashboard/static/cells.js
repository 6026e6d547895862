// Table cells the live pages share (the calls list, the wallboard). Values are caller-controlled
// or server data: they only enter the page through textContent, never as HTML.
"use strict";

window.hotlineCells = {
  // Seconds as m:ss ("—" when unknown).
  duration: function (seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, Math.floor(seconds));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  },

  // A <td> with this text appended to the row.
  cell: function (row, text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text === null || text === undefined ? "" : String(text);
    row.appendChild(td);
    return td;
  },

  // The table body's rows, one made per item; the "nothing here" line shown when there is none.
  fill: function (bodyId, emptyId, items, makeRow) {
    document.getElementById(bodyId).replaceChildren(...items.map(makeRow));
    if (emptyId) document.getElementById(emptyId).hidden = items.length > 0;
  },
};

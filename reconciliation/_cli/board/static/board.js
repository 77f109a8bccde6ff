// The break board: the server renders every fragment; this script only swaps them in.
// It re-fetches the board when the server says it changed past the version shown
// (server-sent events carry the board's version), loads a
// break's history when its row is clicked, and keeps the "open for" ages current.
"use strict";

const board = document.getElementById("board");
const panel = document.getElementById("history");
let shown = Number(board.dataset.version);
let wanted = shown;
let fetching = false;

async function refresh() {
  if (fetching) return;
  fetching = true;
  try {
    while (wanted > shown) {
      const answer = await fetch("board", { cache: "no-store" });
      if (!answer.ok) break;
      const text = await answer.text();
      shown = Number(answer.headers.get("X-Board-Version"));
      board.innerHTML = text;
      tick();
    }
  } finally {
    fetching = false;
  }
}

async function showHistory(breakId) {
  const answer = await fetch("breaks/" + encodeURIComponent(breakId), { cache: "no-store" });
  panel.innerHTML = await answer.text();
  panel.hidden = false;
  panel.querySelector("button")?.focus();
}

function age(seconds) {
  const units = [["d", 86400], ["h", 3600], ["min", 60]];
  for (const [unit, size] of units) {
    if (seconds >= size) {
      const whole = Math.floor(seconds / size);
      const rest = seconds - whole * size;
      const next = units.find(([, s]) => s < size);
      return next && rest >= next[1] ? `${whole} ${unit} ${Math.floor(rest / next[1])} ${next[0]}` : `${whole} ${unit}`;
    }
  }
  return `${Math.max(0, Math.floor(seconds))} s`;
}

function tick() {
  const now = Date.now();
  for (const cell of document.querySelectorAll("[data-since]")) {
    const since = Date.parse(cell.dataset.since);
    if (!Number.isNaN(since)) cell.textContent = age((now - since) / 1000);
  }
}

board.addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-break-id]");
  if (row) showHistory(row.dataset.breakId);
});
board.addEventListener("keydown", (event) => {
  const row = event.target.closest("tr[data-break-id]");
  if (row && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); showHistory(row.dataset.breakId); }
});
panel.addEventListener("click", (event) => {
  if (event.target.closest("button.close")) panel.hidden = true;
});

const events = new EventSource("events");
events.addEventListener("board", (event) => {
  wanted = Math.max(wanted, Number(event.data));
  refresh();
});
setInterval(tick, 15000);
tick();

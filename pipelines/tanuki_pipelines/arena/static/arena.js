// The arena page: ask, stream both answers side by side, follow up, vote, see the names.
// Text is only ever set through textContent, so a question or answer never becomes markup.
"use strict";

const texts = JSON.parse(document.getElementById("texts").textContent);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const state = { battle: null, turn: 0, streaming: 0 };

function byId(id) { return document.getElementById(id); }

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || (data.detail && JSON.stringify(data.detail)) || response.statusText;
    throw new Error(typeof error === "string" ? error : JSON.stringify(error));
  }
  return data;
}

function message(side, role, text) {
  const element = document.createElement("div");
  element.className = "message " + role;
  element.textContent = text;
  byId("messages-" + side).appendChild(element);
  return element;
}

function fail(text) {
  const failure = byId("failure");
  failure.hidden = false;
  failure.textContent = texts.failed + " " + text;
  byId("vote").hidden = true;
  byId("ask").hidden = true;
  byId("result").hidden = false;
  byId("recorded").textContent = "";
  byId("revealed").textContent = "";
}

async function stream(side) {
  const target = message(side, "assistant", texts.waiting);
  target.dataset.side = side;
  const response = await fetch(`/api/battles/${state.battle}/answer/${side}?turn=${state.turn}`,
                               { credentials: "same-origin" });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(data.error || response.statusText);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", text = "", finished = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (!line.trim()) continue;
      const event = JSON.parse(line);
      if (event.error) throw new Error(event.error);
      if (event.delta) { text += event.delta; target.textContent = text; }
      if (event.done) finished = true;
    }
  }
  if (!finished) throw new Error("the answer stream ended early");
  target.classList.add("finished");
}

async function ask(question) {
  byId("send").disabled = true;
  try {
    const created = state.battle
      ? await post(`/api/battles/${state.battle}/turns`, { question })
      : await post("/api/battles", { question });
    state.battle = created.battle_id;
    state.turn = created.turn;
    message("a", "user", question);
    message("b", "user", question);
    byId("question").value = "";
    await Promise.all([stream("a"), stream("b")]);
    byId("vote").hidden = false;
    byId("question-label").textContent = texts.follow_up;
  } catch (error) {
    fail(error.message);
  } finally {
    byId("send").disabled = false;
  }
}

async function vote(evaluation) {
  for (const button of document.querySelectorAll("#vote button")) button.disabled = true;
  try {
    const result = await post(`/api/battles/${state.battle}/vote`,
                              { evaluation, corrected_answer: byId("corrected").value || null });
    byId("vote").hidden = true;
    byId("ask").hidden = true;
    byId("result").hidden = false;
    byId("recorded").textContent = texts.recorded;
    byId("revealed").textContent = texts.revealed.replace("{a}", result.model_a).replace("{b}", result.model_b);
    byId("flagged").hidden = !result.flagged;
  } catch (error) {
    for (const button of document.querySelectorAll("#vote button")) button.disabled = false;
    byId("recorded").textContent = error.message;
    byId("result").hidden = false;
  }
}

async function examples() {
  const response = await fetch("/api/questions", { credentials: "same-origin" });
  if (!response.ok) return;
  const select = byId("examples");
  for (const item of await response.json()) {
    const option = document.createElement("option");
    option.value = item.prompt;
    option.textContent = item.prompt.length > 60 ? item.prompt.slice(0, 60) + "…" : item.prompt;
    select.appendChild(option);
  }
  select.addEventListener("change", () => { if (select.value) byId("question").value = select.value; });
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

async function refreshBoard() {
  const response = await fetch("/api/leaderboard", { credentials: "same-origin" });
  if (!response.ok) return;
  const board = await response.json();
  byId("vote-count").textContent = board.votes;
  byId("too-few").hidden = board.models.length > 0;
  const body = document.querySelector("#board tbody");
  body.replaceChildren();
  board.models.forEach((model, index) => {
    const row = document.createElement("tr");
    row.dataset.model = model.model;
    cell(row, index + 1);
    cell(row, model.model);
    // no Bradley-Terry rating (a model that never lost or never won): say why, as the report does
    const why = texts["unrated_" + model.bt.separation] || model.bt.why;
    cell(row, model.bt.rating === null ? `— (${why})` : model.bt.rating.toFixed(0));
    const low = model.bt.ci_low, high = model.bt.ci_high;
    cell(row, low === undefined ? "" : `${low === null ? "…" : low.toFixed(0)} – ${high === null ? "…" : high.toFixed(0)}`);
    cell(row, `${model.glicko2.rating.toFixed(0)} ± ${(2 * model.glicko2.rd).toFixed(0)}`);
    cell(row, model.battles);
    cell(row, (100 * model.win_rate).toFixed(1) + "%");
    cell(row, model.ties);
    body.appendChild(row);
  });
}

if (byId("ask")) {
  byId("ask").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = byId("question").value.trim();
    if (question) ask(question);
  });
  for (const button of document.querySelectorAll("#vote button")) {
    button.addEventListener("click", () => vote(button.dataset.evaluation));
  }
  byId("new-battle").addEventListener("click", () => { window.location.reload(); });
  examples();
}
if (byId("board")) {
  refreshBoard();
  setInterval(refreshBoard, 5000);
}

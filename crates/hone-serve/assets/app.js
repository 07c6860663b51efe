// hone serve web app: chat with one model, compare every model on one prompt, grade answer pairs.
// No framework. Model output is only ever written through textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "hone-api-key";
let info = { models: [], feedback: false, auth: false };

// ---------- status bar and requests ----------

function setStatus(text, isError = false) {
  const bar = $("status");
  bar.textContent = text;
  bar.classList.toggle("error", isError);
  bar.hidden = !text;
}

function showError(err) {
  setStatus(err.message || String(err), true);
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = localStorage.getItem(KEY_STORE);
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

// Turns a failed response into an Error carrying the OpenAI-shaped `error.message`.
async function failure(res) {
  let message = `HTTP ${res.status}`;
  try {
    const body = await res.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch (_) { /* not JSON: keep the status line */ }
  if (res.status === 401) $("api-key-box").hidden = false;
  return new Error(message);
}

async function request(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: headers(),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw await failure(res);
  return res.json();
}

const post = (path, body) => request("POST", path, body);
const needsKey = () => info.auth && !localStorage.getItem(KEY_STORE);

// POSTs with `stream: true` and calls onChunk for each `data: {...}` event until `data: [DONE]`.
async function stream(path, body, onChunk, signal) {
  const res = await fetch(path, {
    method: "POST",
    headers: headers(),
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!res.ok) throw await failure(res);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") {
        reader.cancel();
        return;
      }
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message || "stream error");
      onChunk(chunk);
    }
  }
}

// Reads a number input: undefined when empty (or not a number), so the server default applies.
function num(id, parse = parseFloat) {
  const value = parse($(id).value);
  return Number.isNaN(value) ? undefined : value;
}

const int = (id) => num(id, (raw) => parseInt(raw, 10));
const optional = (text) => (text.trim() === "" ? undefined : text);
const kindOf = (id) => (info.models.find((m) => m.id === id) || {}).kind;
const kindLabel = (kind) => (kind === "base" ? "text continuation" : "chat");

function fillSelect(select, models) {
  select.replaceChildren(...models.map((m) => {
    const option = new Option(`${m.id} (${kindLabel(m.kind)})`, m.id);
    option.dataset.kind = m.kind;
    return option;
  }));
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---------- views and the URL hash ----------

const VIEWS = ["chat", "compare", "grade"];
let lastCompareHash = "#compare";

function showView(name) {
  for (const view of VIEWS) {
    $("view-" + view).hidden = view !== name;
    $("tab-" + view).classList.toggle("active", view === name);
  }
  const hash = name === "compare" ? lastCompareHash : "#" + name;
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

// `#compare?prompt=...&seed=...` fills the compare form and runs it; `#chat`, `#grade` pick a view.
function applyHash() {
  const [name, query] = location.hash.slice(1).split("?");
  if (!VIEWS.includes(name)) {
    showView("chat");
    return;
  }
  if (name === "compare" && query) {
    const params = new URLSearchParams(query);
    const fields = {
      prompt: "compare-prompt", system: "compare-system", seed: "compare-seed",
      temperature: "compare-temperature", max_tokens: "compare-max-tokens",
    };
    for (const [param, id] of Object.entries(fields)) {
      if (params.has(param)) $(id).value = params.get(param);
    }
    lastCompareHash = location.hash;
    showView("compare");
    if (params.get("prompt") && !needsKey()) runCompare();
    return;
  }
  showView(name);
}

// ---------- chat ----------

const conversation = []; // finished turns [{role, content}], without the system prompt
let chatAbort = null; // aborts the reply being streamed (reset)

function addMessage(role, text) {
  const div = el("div", "msg " + role, text);
  $("chat-log").append(div);
  scrollChat();
  return div;
}

function scrollChat() {
  const log = $("chat-log");
  log.scrollTop = log.scrollHeight;
}

function updateChatHint() {
  $("chat-hint").textContent = kindOf($("chat-model").value) === "base"
    ? "Base model: it continues your last message as plain text; earlier turns and the system prompt are not sent."
    : "";
}

async function sendChat() {
  const text = $("chat-input").value;
  if (!text.trim() || $("chat-send").disabled) return;
  setStatus("");
  const model = $("chat-model").value;
  const settings = {
    model,
    temperature: num("chat-temperature"),
    top_p: num("chat-top-p"),
    max_tokens: int("chat-max-tokens"),
    seed: int("chat-seed"),
  };
  $("chat-input").value = "";
  const turn = { role: "user", content: text };
  addMessage("user", text);
  const reply = addMessage("assistant", "");
  reply.title = model;
  $("chat-send").disabled = true;

  let path, body, piece;
  if (kindOf(model) === "base") {
    path = "/v1/completions";
    body = { ...settings, prompt: text };
    piece = (chunk) => chunk.choices?.[0]?.text;
  } else {
    const system = $("chat-system").value.trim();
    const messages = [...conversation, turn];
    path = "/v1/chat/completions";
    body = { ...settings, messages: system ? [{ role: "system", content: system }, ...messages] : messages };
    piece = (chunk) => chunk.choices?.[0]?.delta?.content;
  }
  const abort = (chatAbort = new AbortController());
  try {
    await stream(path, body, (chunk) => {
      reply.textContent += piece(chunk) || "";
      const finish = chunk.choices?.[0]?.finish_reason;
      if (finish) reply.dataset.finish = finish;
      scrollChat();
    }, abort.signal);
    // Only a completed exchange joins the conversation sent next time.
    conversation.push(turn, { role: "assistant", content: reply.textContent });
  } catch (err) {
    if (abort.signal.aborted) return;
    reply.classList.add("error");
    if (!reply.textContent) reply.textContent = "(no answer)";
    showError(err);
  } finally {
    reply.classList.add("done");
    if (chatAbort === abort) {
      chatAbort = null;
      $("chat-send").disabled = false;
    }
  }
}

function resetChat() {
  if (chatAbort) chatAbort.abort();
  chatAbort = null;
  $("chat-send").disabled = false;
  conversation.length = 0;
  $("chat-log").replaceChildren();
  setStatus("");
}

// ---------- compare ----------

function compareCard(answer) {
  const card = el("div", "card");
  card.dataset.model = answer.model;
  const head = el("div", "card-head");
  head.append(el("h3", "", answer.model), el("span", "kind " + answer.kind, kindLabel(answer.kind)));
  card.append(head, el("pre", "answer-text", answer.text));
  card.append(el("p", "muted small", "finish: " + answer.finish));
  const checks = el("div", "checks");
  checks.append(el("h4", "", "automatic checks"));
  const badges = el("div", "badges");
  for (const v of answer.verdicts || []) {
    // Behaviours (refusing, admitting not knowing) are shown as found, formats as pass or fail.
    const badge = el("span", "badge " + (v.behaviour ? "info" : v.pass ? "pass" : "fail"), v.label);
    badge.title = v.behaviour ? `automatic check "${v.check}"` : `automatic check "${v.check}": ${v.pass ? "pass" : "fail"}`;
    badges.append(badge);
  }
  if (!badges.children.length) badges.append(el("span", "muted small", "none apply"));
  checks.append(badges);
  card.append(checks);
  return card;
}

async function runCompare() {
  const prompt = $("compare-prompt").value;
  if (!prompt.trim()) {
    setStatus("Write a prompt to compare.", true);
    return;
  }
  setStatus("");
  const button = $("compare-run");
  button.disabled = true;
  $("compare-meta").textContent = "running on every model…";
  $("compare-results").replaceChildren();
  try {
    const body = {
      prompt,
      system: optional($("compare-system").value),
      temperature: num("compare-temperature"),
      top_p: 0.95,
      max_tokens: int("compare-max-tokens"),
      seed: int("compare-seed"),
    };
    const result = await post("/api/compare", body);
    // Record the seed actually used, so the URL reproduces this exact view.
    $("compare-seed").value = result.seed;
    const params = new URLSearchParams({ prompt, seed: result.seed });
    if (body.system) params.set("system", body.system);
    if (body.temperature !== undefined) params.set("temperature", body.temperature);
    if (body.max_tokens !== undefined) params.set("max_tokens", body.max_tokens);
    lastCompareHash = "#compare?" + params;
    history.replaceState(null, "", lastCompareHash);
    $("compare-meta").textContent =
      `seed ${result.seed}: this page's address reproduces these answers (same seed and settings).`;
    $("compare-results").replaceChildren(...result.answers.map(compareCard));
  } catch (err) {
    $("compare-meta").textContent = "";
    showError(err);
  } finally {
    button.disabled = false;
  }
}

// ---------- grade ----------

let pair = null; // the last /api/grade/pair answer, until its verdict is saved
const VERDICTS = { "verdict-a": "a", "verdict-b": "b", "verdict-tie": "tie", "verdict-both-bad": "both_bad" };

function setVerdictsEnabled(enabled) {
  for (const id of Object.keys(VERDICTS)) $(id).disabled = !enabled || !info.feedback;
}

// Shows one blind answer; `reveal` adds which model (and seed) wrote it.
function showAnswer(id, label, answer, reveal) {
  const box = $(id);
  box.replaceChildren(el("h3", "", label), el("pre", "answer-text", answer.text));
  if (reveal) box.append(el("p", "reveal", `written by ${answer.model} (seed ${answer.seed})`));
}

async function samplePair() {
  const prompt = $("grade-prompt").value;
  if (!prompt.trim()) {
    setStatus("Write a prompt to grade.", true);
    return;
  }
  setStatus("");
  pair = null;
  setVerdictsEnabled(false);
  $("grade-edited").value = "";
  $("grade-answer-a").replaceChildren();
  $("grade-answer-b").replaceChildren();
  $("grade-status").textContent = "sampling…";
  $("grade-sample").disabled = true;
  try {
    pair = await post("/api/grade/pair", {
      prompt,
      system: optional($("grade-system").value),
      a: $("grade-a").value,
      b: $("grade-b").value,
      temperature: num("grade-temperature"),
      top_p: 0.95,
      max_tokens: int("grade-max-tokens"),
      seed: int("grade-seed"),
    });
    showAnswer("grade-answer-a", "Answer A", pair.a, false);
    showAnswer("grade-answer-b", "Answer B", pair.b, false);
    setVerdictsEnabled(true);
    $("grade-status").textContent = info.feedback
      ? "Which answer is better?"
      : "Grading cannot be saved: the server was started without a run directory.";
  } catch (err) {
    $("grade-status").textContent = "";
    showError(err);
  } finally {
    $("grade-sample").disabled = false;
  }
}

async function saveVerdict(verdict) {
  if (!pair) return;
  setStatus("");
  setVerdictsEnabled(false);
  try {
    const saved = await post("/api/grade", {
      prompt: pair.prompt,
      system: pair.system ?? undefined,
      a: pair.a,
      b: pair.b,
      verdict,
      edited: optional($("grade-edited").value),
    });
    const s = saved.written === 1 ? "" : "s";
    $("grade-status").textContent =
      `saved ${saved.written} judgement${s} to ${saved.file} (${saved.total} in the file)`;
    showAnswer("grade-answer-a", "Answer A", pair.a, true);
    showAnswer("grade-answer-b", "Answer B", pair.b, true);
    pair = null;
  } catch (err) {
    setVerdictsEnabled(true);
    showError(err);
  }
}

// ---------- start ----------

async function loadInfo() {
  info = await request("GET", "/api/info");
  $("run-name").textContent = info.run ? "run: " + info.run : "no run directory";
  if (info.report) {
    $("report-link").href = info.report;
    $("report-link").hidden = false;
  }
  if (needsKey()) $("api-key-box").hidden = false;

  const chatModels = info.models.filter((m) => m.kind === "chat");
  fillSelect($("chat-model"), info.models);
  if (chatModels.length) $("chat-model").value = chatModels[0].id;
  updateChatHint();
  fillSelect($("grade-a"), chatModels);
  fillSelect($("grade-b"), chatModels);
  if (chatModels.length > 1) $("grade-b").value = chatModels[1].id;
  if (!chatModels.length) {
    $("grade-sample").disabled = true;
    $("grade-status").textContent = "No chat model is served: grading needs one.";
  } else if (!info.feedback) {
    $("grade-status").textContent =
      "Grading cannot be saved: the server was started without a run directory.";
  }
  document.body.dataset.ready = "true";
}

function wire() {
  for (const view of VIEWS) $("tab-" + view).addEventListener("click", () => showView(view));
  window.addEventListener("hashchange", applyHash);

  $("api-key-box").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    localStorage.setItem(KEY_STORE, key);
    $("api-key").value = "";
    $("api-key-box").hidden = true;
    setStatus("API key saved.");
    // Load the page now if the key was missing at start, or run the compare its address asks for.
    if (!document.body.dataset.ready) start();
    else applyHash();
  });

  $("chat-model").addEventListener("change", updateChatHint);
  $("chat-send").addEventListener("click", sendChat);
  $("chat-reset").addEventListener("click", resetChat);
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendChat();
    }
  });

  $("compare-run").addEventListener("click", runCompare);
  $("grade-sample").addEventListener("click", samplePair);
  for (const [id, verdict] of Object.entries(VERDICTS)) {
    $(id).addEventListener("click", () => saveVerdict(verdict));
  }
}

function start() {
  loadInfo().then(applyHash).catch(showError);
}

wire();
start();

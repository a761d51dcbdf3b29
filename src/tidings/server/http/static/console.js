// The tidings web console: caches, a live topic stream (EventSource) and publishing, over the HTTP API.
// Plain browser JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

const MAX_EVENTS = 500; // rows kept in the stream view
const RATE_WINDOW_MS = 5000; // the message rate is averaged over this window
const RECONNECT_MS = 1000; // when the browser gives up on an EventSource, open a new one after this

const $ = (id) => document.getElementById(id);
const state = {
  token: localStorage.getItem("tidings.token") || "",
  source: null,
  reconnectTimer: null,
  lastEventId: "",
  dropped: false,
  cache: "",
  topic: "",
  counts: { items: 0, heartbeats: 0, discontinuities: 0 },
  arrivals: [],
};

// --- HTTP ------------------------------------------------------------------------------------------

function withToken(url) {
  if (!state.token) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(state.token);
}

async function api(method, path, body, contentType) {
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  if (contentType) headers["Content-Type"] = contentType;
  const response = await fetch(path, { method, headers, body });
  if (response.ok) return response.status === 204 ? null : response.json();
  let message = response.status + " " + response.statusText;
  try {
    const error = (await response.json()).error;
    message = `${response.status} ${error.code}: ${error.message}`;
  } catch (_) { /* not JSON */ }
  throw new Error(message);
}

const segment = (name) => encodeURIComponent(name);
const topicPath = (cache, topic) => `/topics/${segment(cache)}/${segment(topic)}`;

function say(element, text, kind) {
  element.textContent = text;
  element.className = "status" + (kind ? " " + kind : "");
}

// --- caches ----------------------------------------------------------------------------------------

async function loadCaches() {
  const list = $("cache-list");
  try {
    const { caches } = await api("GET", "/caches");
    list.replaceChildren();
    $("cache-options").replaceChildren(...caches.map(({ name }) => new Option(name)));
    if (!caches.length) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "No caches yet.";
      list.append(empty);
    }
    for (const { name } of caches) {
      const item = document.createElement("li");
      item.dataset.cache = name;
      item.classList.toggle("selected", name === $("cache").value);
      const pick = document.createElement("button");
      pick.type = "button";
      pick.className = "pick";
      pick.textContent = name;
      pick.title = name; // shown whole on hover; the button cuts it with an ellipsis
      pick.addEventListener("click", () => {
        $("cache").value = name;
        markSelected();
        loadWebhooks();
        $("topic").focus();
      });
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "danger";
      remove.textContent = "Delete";
      remove.setAttribute("aria-label", `Delete cache ${name}`);
      remove.addEventListener("click", () => deleteCache(name));
      item.append(pick, remove);
      list.append(item);
    }
    if (caches.length && !$("cache").value) {
      $("cache").value = caches[0].name;
      markSelected();
    }
    await loadWebhooks();
  } catch (error) {
    say($("caches-status"), error.message, "error");
  }
}

function markSelected() {
  for (const item of $("cache-list").children) {
    item.classList.toggle("selected", item.dataset.cache === $("cache").value);
  }
}

async function createCache(event) {
  event.preventDefault();
  const name = $("new-cache").value.trim();
  if (!name) return;
  try {
    await api("PUT", "/caches/" + segment(name));
    $("new-cache").value = "";
    say($("caches-status"), `Created ${name}.`, "ok");
    await loadCaches();
  } catch (error) {
    say($("caches-status"), error.message, "error");
  }
}

async function deleteCache(name) {
  if (!confirm(`Delete cache "${name}"? Its subscribers are disconnected.`)) return;
  try {
    await api("DELETE", "/caches/" + segment(name));
    say($("caches-status"), `Deleted ${name}.`, "ok");
    await loadCaches();
  } catch (error) {
    say($("caches-status"), error.message, "error");
  }
}

// --- webhooks --------------------------------------------------------------------------------------

const webhooksPath = (cache) => "/webhooks/" + segment(cache);

async function loadWebhooks() {
  const list = $("webhook-list");
  const cache = $("cache").value.trim();
  list.replaceChildren();
  if (!cache) return;
  try {
    const { webhooks } = await api("GET", webhooksPath(cache));
    if (!webhooks.length) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = `No webhooks in ${cache}.`;
      list.append(empty);
    }
    for (const { name, topic, url } of webhooks) {
      const item = document.createElement("li");
      item.dataset.webhook = name;
      const entry = document.createElement("span");
      entry.className = "webhook-entry";
      const title = document.createElement("b");
      title.textContent = name;
      const target = document.createElement("span");
      target.className = "webhook-target";
      target.textContent = `${topic} → ${url}`;
      target.title = url;
      entry.append(title, target);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "danger";
      remove.textContent = "Delete";
      remove.setAttribute("aria-label", `Delete webhook ${name}`);
      remove.addEventListener("click", () => deleteWebhook(cache, name));
      item.append(entry, remove);
      list.append(item);
    }
  } catch (error) {
    say($("webhooks-status"), error.message, "error");
  }
}

async function createWebhook(event) {
  event.preventDefault();
  const cache = $("cache").value.trim();
  const name = $("webhook-name").value.trim();
  if (!cache) {
    say($("webhooks-status"), "Pick a cache above first.", "error");
    return;
  }
  const body = JSON.stringify({ topic: $("webhook-topic").value.trim(), url: $("webhook-url").value.trim() });
  try {
    const created = await api("PUT", `${webhooksPath(cache)}/${segment(name)}`, body, "application/json");
    $("webhook-name").value = "";
    say($("webhooks-status"), `Created ${name}. Signing secret: ${created.secret}`, "ok");
    await loadWebhooks();
  } catch (error) {
    say($("webhooks-status"), error.message, "error");
  }
}

async function deleteWebhook(cache, name) {
  if (!confirm(`Delete webhook "${name}"? Its deliveries stop.`)) return;
  try {
    await api("DELETE", `${webhooksPath(cache)}/${segment(name)}`);
    say($("webhooks-status"), `Deleted ${name}.`, "ok");
    await loadWebhooks();
  } catch (error) {
    say($("webhooks-status"), error.message, "error");
  }
}

// --- stream ----------------------------------------------------------------------------------------

function setConnection(text, kind) {
  const pill = $("connection");
  pill.textContent = text;
  pill.className = "pill " + kind;
}

function timeNow() {
  return new Date().toLocaleTimeString([], { hour12: false });
}

function addRow(kind, seqText, valueNode, metaText) {
  const list = $("events");
  const row = document.createElement("li");
  row.className = kind;
  const label = document.createElement("span");
  label.className = "kind";
  label.textContent = kind;
  const main = document.createElement("span");
  if (seqText) {
    const seq = document.createElement("span");
    seq.className = "seq";
    seq.textContent = seqText + " ";
    main.append(seq);
  }
  if (valueNode) main.append(valueNode);
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = timeNow();
  row.append(label, main, time);
  if (metaText) {
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = metaText;
    row.append(meta);
  }
  list.prepend(row);
  while (list.childElementCount > MAX_EVENTS) list.lastElementChild.remove();
  $("events-empty").hidden = true;
  return row;
}

function showItem(event) {
  const item = JSON.parse(event.data);
  state.counts.items += 1;
  state.arrivals.push(performance.now());
  const value = document.createElement("span");
  value.className = "value";
  if ("text" in item.value) {
    value.textContent = item.value.text;
  } else {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "binary";
    value.append(badge, item.value.binary);
  }
  const row = addRow(
    "item",
    "#" + item.topic_sequence_number,
    value,
    `page ${item.sequence_page} · token id ${item.publisher_id || "—"}`,
  );
  row.dataset.seq = item.topic_sequence_number;
  row.dataset.page = item.sequence_page;
  track(event);
}

function showDiscontinuity(event) {
  const gap = JSON.parse(event.data);
  state.counts.discontinuities += 1;
  const text = document.createElement("span");
  text.textContent =
    `had up to #${gap.last_topic_sequence}; resumes after #${gap.new_topic_sequence} in page ${gap.new_sequence_page}`;
  const row = addRow("discontinuity", "", text, "messages were missed or the topic was reset");
  row.dataset.page = gap.new_sequence_page;
  track(event);
}

function showHeartbeat() {
  state.counts.heartbeats += 1;
  addRow("heartbeat", "", null, "");
  setConnection("live", "live");
  updateStats();
}

function track(event) {
  if (event.lastEventId) state.lastEventId = event.lastEventId;
  $("position").textContent = state.lastEventId || "–";
  updateStats();
}

function updateStats() {
  $("count-items").textContent = state.counts.items;
  $("count-heartbeats").textContent = state.counts.heartbeats;
  $("count-discontinuities").textContent = state.counts.discontinuities;
}

function updateRate() {
  const now = performance.now();
  while (state.arrivals.length && now - state.arrivals[0] > RATE_WINDOW_MS) state.arrivals.shift();
  $("rate").textContent = (state.arrivals.length / (RATE_WINDOW_MS / 1000)).toFixed(1);
}

function connect() {
  clearTimeout(state.reconnectTimer);
  let url = topicPath(state.cache, state.topic) + "/events";
  // EventSource resends the last id by itself while it reconnects; a new EventSource needs it in the URL.
  if (state.lastEventId) url += "?last_event_id=" + encodeURIComponent(state.lastEventId);
  const source = new EventSource(withToken(url));
  state.source = source;
  setConnection("connecting", "connecting");
  source.addEventListener("open", () => {
    if (state.dropped) {
      const resumeFrom = state.lastEventId ? `resuming after ${state.lastEventId}` : "live";
      addRow("notice", "", document.createTextNode(`reconnected, ${resumeFrom}`), "");
    }
    state.dropped = false;
    setConnection("live", "live");
  });
  source.addEventListener("item", showItem);
  source.addEventListener("discontinuity", showDiscontinuity);
  source.addEventListener("heartbeat", showHeartbeat);
  source.addEventListener("error", async () => {
    if (state.source !== source) return;
    state.dropped = true;
    setConnection("reconnecting", "connecting");
    if (source.readyState !== EventSource.CLOSED) return; // the browser retries by itself
    // The browser gave up: the server answered with an error status (or restarted). Ask it why.
    const problem = await streamProblem(url);
    if (state.source !== source) return;
    if (problem) {
      source.close();
      state.source = null;
      setConnection("error", "error");
      addRow("notice", "", document.createTextNode(problem), "the stream stopped");
      $("stop-button").disabled = true;
    } else {
      state.reconnectTimer = setTimeout(connect, RECONNECT_MS);
    }
  });
}

// Why a stream cannot be opened (e.g. "401 unauthenticated: ..."), or "" if it can or the server is unreachable.
async function streamProblem(url) {
  const controller = new AbortController();
  try {
    const response = await fetch(withToken(url), { signal: controller.signal });
    if (response.ok) return "";
    const error = (await response.json()).error;
    return `${response.status} ${error.code}: ${error.message}`;
  } catch (_) {
    return "";
  } finally {
    controller.abort();
  }
}

function subscribe(event) {
  event.preventDefault();
  stop();
  state.cache = $("cache").value.trim();
  state.topic = $("topic").value.trim();
  if (!state.cache || !state.topic) return;
  state.lastEventId = "";
  state.dropped = false;
  state.counts = { items: 0, heartbeats: 0, discontinuities: 0 };
  state.arrivals = [];
  $("events").replaceChildren();
  $("position").textContent = "–";
  updateStats();
  addRow("notice", "", document.createTextNode(`subscribed to ${state.cache} / ${state.topic}`), "");
  connect();
  $("stop-button").disabled = false;
  markSelected();
}

function stop() {
  clearTimeout(state.reconnectTimer);
  if (state.source) {
    state.source.close();
    state.source = null;
    addRow("notice", "", document.createTextNode("stopped"), "");
  }
  setConnection("idle", "idle");
  $("stop-button").disabled = true;
}

// --- publish ---------------------------------------------------------------------------------------

function base64ToBytes(text) {
  const binary = atob(text.replace(/\s+/g, ""));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}

async function publish(event) {
  event.preventDefault();
  const cache = $("cache").value.trim();
  const topic = $("topic").value.trim();
  const status = $("publish-status");
  if (!cache || !topic) {
    say(status, "Enter a cache and a topic above first.", "error");
    return;
  }
  const kind = document.querySelector('input[name="kind"]:checked').value;
  const text = $("value").value;
  let body;
  let contentType;
  try {
    if (kind === "binary") {
      body = base64ToBytes(text);
      contentType = "application/octet-stream";
    } else {
      body = text;
      contentType = "text/plain; charset=utf-8";
    }
  } catch (_) {
    say(status, "That is not base64.", "error");
    return;
  }
  try {
    await api("POST", topicPath(cache, topic), body, contentType);
    say(status, `Published to ${cache} / ${topic}.`, "ok");
  } catch (error) {
    say(status, error.message, "error");
  }
}

// --- token -----------------------------------------------------------------------------------------

function saveToken(event) {
  event.preventDefault();
  state.token = $("token").value.trim();
  if (state.token) localStorage.setItem("tidings.token", state.token);
  else localStorage.removeItem("tidings.token");
  $("token-state").textContent = state.token ? "saved" : "anonymous";
  loadCaches();
}

// --- start -----------------------------------------------------------------------------------------

function start() {
  $("token").value = state.token;
  $("token-state").textContent = state.token ? "saved" : "anonymous";
  $("token-form").addEventListener("submit", saveToken);
  $("refresh-caches").addEventListener("click", loadCaches);
  $("create-cache").addEventListener("submit", createCache);
  $("cache").addEventListener("input", markSelected);
  $("cache").addEventListener("change", loadWebhooks);
  $("subscribe").addEventListener("submit", subscribe);
  $("stop-button").addEventListener("click", stop);
  $("publish").addEventListener("submit", publish);
  $("create-webhook").addEventListener("submit", createWebhook);
  $("refresh-webhooks").addEventListener("click", loadWebhooks);
  setInterval(updateRate, 500);
  loadCaches();
}

document.addEventListener("DOMContentLoaded", start);

// tempmx web inbox: creates an address, lists mail live over SSE, opens messages in a
// sandboxed iframe. No framework, no CDN; every string from a message goes in via
// textContent, never innerHTML.
"use strict";

const KEY = "tempmx.mailbox";
const $ = (id) => document.getElementById(id);
let box = null;        // { address, token, expires_at }
let events = null;     // EventSource
let current = null;    // id of the open message
let ticker = null;

function api(path) {
  return "/api/v1/mailboxes/" + encodeURIComponent(box.address) + path;
}

function withToken(url) {
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(box.token);
}

async function call(method, url, body) {
  const opts = { method, headers: {} };
  if (box && box.token) opts.headers["Authorization"] = "Bearer " + box.token;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(url, opts);
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail || detail; } catch (_) { /* not JSON */ }
    const err = new Error(detail);
    err.status = r.status;
    throw err;
  }
  return r.status === 204 ? null : r.json();
}

function status(text) { $("status").textContent = text; }

async function newBox() {
  status("creating address…");
  box = await call("POST", "/api/v1/mailboxes", {});
  localStorage.setItem(KEY, JSON.stringify(box));
  return box;
}

function savedBox() {
  try {
    const b = JSON.parse(localStorage.getItem(KEY) || "null");
    if (b && b.address && b.token && Date.parse(b.expires_at) > Date.now() + 5000) return b;
  } catch (_) { /* corrupt entry: start fresh */ }
  return null;
}

async function start(fresh) {
  if (events) { events.close(); events = null; }
  $("messages").replaceChildren();
  closeMessage();
  box = fresh ? null : savedBox();
  try {
    if (!box) await newBox();
    $("address").value = box.address;
    tick();
    const page = await call("GET", api("/messages?limit=50"));
    page.messages.slice().reverse().forEach((m) => addItem(m, false));
  } catch (e) {
    if (e.status === 404 && !fresh) return start(true);
    status("error: " + e.message);
    return;
  }
  listen();
}

function listen() {
  events = new EventSource(withToken(api("/events")));
  events.addEventListener("open", () => status("live"));
  events.addEventListener("error", () => status(events.readyState === 2 ? "disconnected" : "reconnecting…"));
  events.addEventListener("new_message", (ev) => {
    try { addItem(JSON.parse(ev.data), true); } catch (_) { /* ignore a malformed event */ }
  });
}

function addItem(m, fresh) {
  if (document.querySelector('[data-id="' + m.id + '"]')) return;
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.id = m.id;
  if (fresh) b.classList.add("new");
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = m.from || "(unknown sender)";
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = new Date(m.received_at).toLocaleTimeString();
  const subject = document.createElement("span");
  subject.className = "subject";
  subject.textContent = (m.subject || "(no subject)") + (m.has_attachments ? " 📎" : "");
  b.append(from, time, subject);
  b.addEventListener("click", () => openMessage(m.id));
  li.append(b);
  // Newest first: ids are equal-length hex, so string order is id order.
  const list = $("messages");
  const older = Array.from(list.children).find((x) => x.firstChild.dataset.id < m.id);
  list.insertBefore(li, older || null);
  counts();
}

function counts() {
  const n = $("messages").children.length;
  $("count").textContent = String(n);
  $("empty").hidden = n > 0;
}

async function openMessage(id, remoteImages) {
  let m;
  try {
    m = await call("GET", api("/messages/" + id + (remoteImages ? "?remote_images=true" : "")));
  } catch (e) {
    status("could not open: " + e.message);
    return;
  }
  current = id;
  $("inbox").hidden = true;
  $("reader").hidden = false;
  $("msg-subject").textContent = m.subject || "(no subject)";
  const from = (m.from || []).map((a) => (a.name ? a.name + " <" + a.address + ">" : a.address)).join(", ");
  $("msg-from").textContent = "From: " + (from || m.envelope.mail_from || "(unknown)");
  $("msg-date").textContent = "Received " + new Date(m.received_at).toLocaleString();
  $("msg-auth").textContent = (m.auth || []).map((a) => a.method + "=" + a.result).join(" ");
  $("raw").href = withToken(api("/messages/" + id + "/raw"));
  $("images-note").hidden = !(m.remote_images_blocked > 0);
  $("images-count").textContent = String(m.remote_images_blocked);
  const atts = $("attachments");
  atts.replaceChildren();
  (m.attachments || []).forEach((a) => {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.className = "button";
    link.href = withToken(a.url);
    link.setAttribute("download", a.filename || "attachment");
    link.textContent = "⬇ " + (a.filename || "attachment") + " (" + size(a.size) + ")";
    li.append(link);
    atts.append(li);
  });
  const frame = $("msg-html");
  const text = $("msg-text");
  if (m.html_url) {
    frame.src = withToken(m.html_url + (remoteImages ? "?remote_images=true" : ""));
    frame.hidden = false;
    text.hidden = true;
  } else {
    frame.removeAttribute("src");
    frame.hidden = true;
    text.textContent = m.text || m.render_error || "";
    text.hidden = false;
  }
  $("back").focus();
}

function closeMessage() {
  current = null;
  $("reader").hidden = true;
  $("inbox").hidden = false;
  $("msg-html").removeAttribute("src");
}

function size(n) {
  return n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
}

function tick() {
  clearInterval(ticker);
  const show = () => {
    const left = Math.max(0, Date.parse(box.expires_at) - Date.now());
    const s = Math.floor(left / 1000);
    const h = Math.floor(s / 3600), mi = Math.floor((s % 3600) / 60), se = s % 60;
    $("time-left").textContent = left > 0
      ? "expires in " + (h ? h + "h " : "") + String(mi).padStart(2, "0") + "m " + String(se).padStart(2, "0") + "s"
      : "expired";
    if (left === 0) { clearInterval(ticker); start(true); }
  };
  show();
  ticker = setInterval(show, 1000);
}

function wire() {
  $("copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(box.address);
    } catch (_) {
      $("address").select();
      document.execCommand("copy");
    }
    $("copy").textContent = "Copied";
    setTimeout(() => { $("copy").textContent = "Copy"; }, 1500);
  });
  $("new-box").addEventListener("click", () => start(true));
  $("delete-box").addEventListener("click", async () => {
    if (!confirm("Delete this inbox and all its mail?")) return;
    try { await call("DELETE", api("")); } catch (_) { /* gone already */ }
    localStorage.removeItem(KEY);
    start(true);
  });
  $("back").addEventListener("click", closeMessage);
  $("load-images").addEventListener("click", () => current && openMessage(current, true));
  $("delete-msg").addEventListener("click", async () => {
    if (!current) return;
    try { await call("DELETE", api("/messages/" + current)); } catch (_) { /* gone already */ }
    const b = document.querySelector('[data-id="' + current + '"]');
    if (b) b.parentElement.remove();
    counts();
    closeMessage();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && current) closeMessage();
  });
}

wire();
start(false);

// tempmx web inbox: creates or restores an address, lists mail live over SSE, opens
// messages in a sandboxed iframe (HTML) or as linkified text. No framework, no CDN; every
// string from a message goes in via textContent or a checked href, never innerHTML.
"use strict";

const KEY = "tempmx.mailbox";
/// Warn this long before the address expires.
const WARN_MS = 5 * 60 * 1000;
/// Verification codes and links shown above a message at most.
const VERIFICATIONS_MAX = 3;
/// Same rules as the server's local-part check (api/public/address.rs).
const NAME_BYTES_MAX = 64;
const RESERVED = ["abuse", "admin", "administrator", "billing", "hostmaster", "info", "mailer-daemon",
  "marketing", "no-reply", "noc", "noreply", "postmaster", "root", "sales", "security", "ssl-admin",
  "support", "sysadmin", "usenet", "uucp", "webmaster", "www"];
const NAME_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789";

const STRINGS = {
  en: {
    skip: "Skip to the inbox", yourAddress: "Your temporary address", copy: "Copy", copied: "Copied ✓",
    newAddress: "New address", extend: "Extend", chooseAddress: "Choose an address", name: "Name",
    domain: "Domain", create: "Create", random: "Random name", retry: "Try again", inbox: "Inbox",
    waiting: "Waiting for mail… messages appear here as they arrive.", back: "← Inbox", delete: "Delete",
    source: "Source (.eml)", loadImages: "Load images", forget: "Forget this address on this device",
    deleteInbox: "Delete inbox", confirmDelete: "Tap again to delete", codes: "Codes and links",
    messageContent: "Message content", creating: "creating address…", connecting: "connecting…",
    live: "live", reconnecting: "reconnecting…", offline: "offline", expiresIn: "expires in {t}",
    expired: "expired", warning: "This address expires in less than {n} minutes.", extended: "Extended until {t}",
    expiredNotice: "This address has expired and its mail is gone. Create a new one to go on.",
    goneNotice: "This address no longer exists (deleted or expired).",
    forgotten: "This device no longer remembers the address.", deleted: "Inbox deleted.",
    rateLimited: "Too many requests from your network. Please wait {n} s and try again.",
    serverError: "The server could not answer (error {n}). Please try again in a moment.",
    networkError: "The server cannot be reached. Check your connection and try again.",
    copyCode: "Copy code {v}", openLink: "Open link", copyLink: "Copy link", code: "Code",
    imagesBlocked: "{n} remote image(s) blocked.", noSubject: "(no subject)", unknownSender: "(unknown sender)",
    from: "From: {v}", received: "Received {v}", couldNotOpen: "Could not open the message: {v}",
    attachment: "attachment",
    nameEmpty: "Enter a name.", nameLong: "At most 64 characters.",
    nameChars: "Only letters, digits and . _ - + are allowed.", nameDots: "A dot cannot start, end or repeat.",
    nameReserved: "This name is reserved.", nameTaken: "This address is taken. Try another name.",
  },
  de: {
    skip: "Zum Posteingang springen", yourAddress: "Deine temporäre Adresse", copy: "Kopieren", copied: "Kopiert ✓",
    newAddress: "Neue Adresse", extend: "Verlängern", chooseAddress: "Adresse wählen", name: "Name",
    domain: "Domain", create: "Erstellen", random: "Zufälliger Name", retry: "Erneut versuchen", inbox: "Posteingang",
    waiting: "Warte auf E-Mails… neue Nachrichten erscheinen hier.", back: "← Posteingang", delete: "Löschen",
    source: "Quelltext (.eml)", loadImages: "Bilder laden", forget: "Adresse auf diesem Gerät vergessen",
    deleteInbox: "Posteingang löschen", confirmDelete: "Zum Löschen erneut tippen", codes: "Codes und Links",
    messageContent: "Nachrichteninhalt", creating: "Adresse wird erstellt…", connecting: "verbinde…",
    live: "live", reconnecting: "verbinde neu…", offline: "offline", expiresIn: "läuft ab in {t}",
    expired: "abgelaufen", warning: "Diese Adresse läuft in weniger als {n} Minuten ab.", extended: "Verlängert bis {t}",
    expiredNotice: "Diese Adresse ist abgelaufen, ihre E-Mails sind gelöscht. Erstelle eine neue, um weiterzumachen.",
    goneNotice: "Diese Adresse existiert nicht mehr (gelöscht oder abgelaufen).",
    forgotten: "Dieses Gerät hat die Adresse vergessen.", deleted: "Posteingang gelöscht.",
    rateLimited: "Zu viele Anfragen aus deinem Netz. Bitte warte {n} s und versuche es erneut.",
    serverError: "Der Server konnte nicht antworten (Fehler {n}). Bitte versuche es gleich noch einmal.",
    networkError: "Der Server ist nicht erreichbar. Prüfe deine Verbindung und versuche es erneut.",
    copyCode: "Code {v} kopieren", openLink: "Link öffnen", copyLink: "Link kopieren", code: "Code",
    imagesBlocked: "{n} externe(s) Bild(er) blockiert.", noSubject: "(kein Betreff)", unknownSender: "(unbekannter Absender)",
    from: "Von: {v}", received: "Empfangen {v}", couldNotOpen: "Nachricht konnte nicht geöffnet werden: {v}",
    attachment: "Anhang",
    nameEmpty: "Gib einen Namen ein.", nameLong: "Höchstens 64 Zeichen.",
    nameChars: "Nur Buchstaben, Ziffern und . _ - + sind erlaubt.", nameDots: "Ein Punkt darf nicht am Anfang, am Ende oder doppelt stehen.",
    nameReserved: "Dieser Name ist reserviert.", nameTaken: "Diese Adresse ist vergeben. Versuche einen anderen Namen.",
  },
  es: {
    skip: "Ir a la bandeja de entrada", yourAddress: "Tu dirección temporal", copy: "Copiar", copied: "Copiado ✓",
    newAddress: "Nueva dirección", extend: "Ampliar", chooseAddress: "Elegir una dirección", name: "Nombre",
    domain: "Dominio", create: "Crear", random: "Nombre aleatorio", retry: "Reintentar", inbox: "Bandeja de entrada",
    waiting: "Esperando correo… los mensajes aparecen aquí al llegar.", back: "← Bandeja", delete: "Eliminar",
    source: "Fuente (.eml)", loadImages: "Cargar imágenes", forget: "Olvidar esta dirección en este dispositivo",
    deleteInbox: "Eliminar bandeja", confirmDelete: "Toca de nuevo para eliminar", codes: "Códigos y enlaces",
    messageContent: "Contenido del mensaje", creating: "creando dirección…", connecting: "conectando…",
    live: "en vivo", reconnecting: "reconectando…", offline: "sin conexión", expiresIn: "caduca en {t}",
    expired: "caducada", warning: "Esta dirección caduca en menos de {n} minutos.", extended: "Ampliada hasta las {t}",
    expiredNotice: "Esta dirección ha caducado y su correo se ha borrado. Crea una nueva para continuar.",
    goneNotice: "Esta dirección ya no existe (eliminada o caducada).",
    forgotten: "Este dispositivo ya no recuerda la dirección.", deleted: "Bandeja eliminada.",
    rateLimited: "Demasiadas solicitudes desde tu red. Espera {n} s y vuelve a intentarlo.",
    serverError: "El servidor no pudo responder (error {n}). Inténtalo de nuevo en un momento.",
    networkError: "No se puede contactar con el servidor. Comprueba tu conexión y vuelve a intentarlo.",
    copyCode: "Copiar código {v}", openLink: "Abrir enlace", copyLink: "Copiar enlace", code: "Código",
    imagesBlocked: "{n} imagen(es) remota(s) bloqueada(s).", noSubject: "(sin asunto)", unknownSender: "(remitente desconocido)",
    from: "De: {v}", received: "Recibido {v}", couldNotOpen: "No se pudo abrir el mensaje: {v}",
    attachment: "adjunto",
    nameEmpty: "Escribe un nombre.", nameLong: "Como máximo 64 caracteres.",
    nameChars: "Solo letras, dígitos y . _ - +.", nameDots: "Un punto no puede ir al principio, al final ni repetido.",
    nameReserved: "Este nombre está reservado.", nameTaken: "Esta dirección está ocupada. Prueba otro nombre.",
  },
  ru: {
    skip: "Перейти к входящим", yourAddress: "Ваш временный адрес", copy: "Копировать", copied: "Скопировано ✓",
    newAddress: "Новый адрес", extend: "Продлить", chooseAddress: "Выбрать адрес", name: "Имя",
    domain: "Домен", create: "Создать", random: "Случайное имя", retry: "Повторить", inbox: "Входящие",
    waiting: "Ожидание писем… новые сообщения появятся здесь.", back: "← Входящие", delete: "Удалить",
    source: "Исходник (.eml)", loadImages: "Загрузить изображения", forget: "Забыть адрес на этом устройстве",
    deleteInbox: "Удалить ящик", confirmDelete: "Нажмите ещё раз для удаления", codes: "Коды и ссылки",
    messageContent: "Содержимое письма", creating: "создание адреса…", connecting: "подключение…",
    live: "онлайн", reconnecting: "переподключение…", offline: "нет связи", expiresIn: "истекает через {t}",
    expired: "истёк", warning: "Срок действия адреса истекает менее чем через {n} мин.", extended: "Продлено до {t}",
    expiredNotice: "Срок действия адреса истёк, письма удалены. Создайте новый адрес, чтобы продолжить.",
    goneNotice: "Этого адреса больше нет (удалён или истёк).",
    forgotten: "Это устройство больше не помнит адрес.", deleted: "Ящик удалён.",
    rateLimited: "Слишком много запросов из вашей сети. Подождите {n} с и повторите.",
    serverError: "Сервер не смог ответить (ошибка {n}). Повторите попытку чуть позже.",
    networkError: "Сервер недоступен. Проверьте подключение и повторите.",
    copyCode: "Копировать код {v}", openLink: "Открыть ссылку", copyLink: "Копировать ссылку", code: "Код",
    imagesBlocked: "Заблокировано внешних изображений: {n}.", noSubject: "(без темы)", unknownSender: "(неизвестный отправитель)",
    from: "От: {v}", received: "Получено {v}", couldNotOpen: "Не удалось открыть письмо: {v}",
    attachment: "вложение",
    nameEmpty: "Введите имя.", nameLong: "Не более 64 символов.",
    nameChars: "Допустимы только латинские буквы, цифры и . _ - +.", nameDots: "Точка не может стоять в начале, в конце или дважды подряд.",
    nameReserved: "Это имя зарезервировано.", nameTaken: "Этот адрес занят. Попробуйте другое имя.",
  },
};

const LANG = (navigator.languages || [navigator.language || "en"])
  .map((l) => String(l).toLowerCase().split("-")[0])
  .find((l) => STRINGS[l]) || "en";

/// The interface string `key` in the chosen language, `{n}`-style fields filled in.
function t(key, fields) {
  const s = STRINGS[LANG][key] || STRINGS.en[key] || key;
  return s.replace(/\{(\w)\}/g, (_, k) => (fields && k in fields ? String(fields[k]) : ""));
}

const $ = (id) => document.getElementById(id);
let box = null;        // { address, token, expires_at }
let events = null;     // EventSource
let current = null;    // id of the open message
let opener = null;     // the list button that opened it, to return focus
let ticker = null;
let retry = null;      // what "Try again" re-runs
let deleteArmed = null;
let backoff = 0;       // ms before the next stream attempt after a refused one

function translate() {
  document.documentElement.lang = LANG;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  document.querySelectorAll("[data-i18n-label]").forEach((el) => el.setAttribute("aria-label", t(el.dataset.i18nLabel)));
  document.querySelectorAll("[data-i18n-title]").forEach((el) => { el.title = t(el.dataset.i18nTitle); });
}

function api(path) {
  return "/api/v1/mailboxes/" + encodeURIComponent(box.address) + path;
}

function withToken(url) {
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(box.token);
}

/// One API request; failures throw an Error with `status` (0: no answer) and `retryAfter`.
async function call(method, url, body) {
  const opts = { method, headers: {} };
  if (box && box.token) opts.headers["Authorization"] = "Bearer " + box.token;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(url, opts);
  } catch (e) {
    const err = new Error(e.message);
    err.status = 0;
    throw err;
  }
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail || detail; } catch (_) { /* not JSON */ }
    const err = new Error(detail);
    err.status = r.status;
    err.retryAfter = parseInt(r.headers.get("Retry-After") || "", 10) || 0;
    throw err;
  }
  return r.status === 204 ? null : r.json();
}

function status(key, state) {
  $("status").textContent = t(key);
  $("status").dataset.state = state || key;
}

/// Shows a notice; `again` (optional) is what "Try again" re-runs; `offerNew` shows "New address".
function notice(text, again, offerNew) {
  retry = again || null;
  $("notice-text").textContent = text;
  $("notice-retry").hidden = !again;
  $("notice-new").hidden = !offerNew;
  $("notice").hidden = false;
  $("notice").dataset.kind = again ? "retry" : "info";
}

function clearNotice() {
  retry = null;
  $("notice").hidden = true;
  delete $("notice").dataset.kind;
}

/// A friendly notice for a failed request; true when one was shown.
function failed(e, again) {
  if (e.status === 429) notice(t("rateLimited", { n: e.retryAfter || 1 }), again);
  else if (e.status >= 500) notice(t("serverError", { n: e.status }), again);
  else if (e.status === 0) notice(t("networkError"), again);
  else return false;
  return true;
}

function save() {
  localStorage.setItem(KEY, JSON.stringify(box));
}

function savedBox() {
  try {
    const b = JSON.parse(localStorage.getItem(KEY) || "null");
    if (b && b.address && b.token && b.expires_at) return b;
  } catch (_) { /* corrupt entry: start fresh */ }
  return null;
}

/// Forgets the shown mailbox: stream, list, reader and timers.
function reset() {
  if (events) { events.close(); events = null; }
  clearInterval(ticker);
  closeMessage();
  $("messages").replaceChildren();
  counts();
  $("warning").hidden = true;
}

/// The actions that need a mailbox work only while there is one.
function enable(on) {
  for (const id of ["copy", "extend", "delete-box", "forget"]) $(id).disabled = !on;
}

function showBox() {
  $("address").textContent = box.address;
  $("address").classList.remove("gone");
  enable(true);
  const domain = box.address.split("@").pop();
  if ([...$("domain").options].some((o) => o.value === domain)) $("domain").value = domain;
  counts();
  tick();
}

/// No usable mailbox: says why in a notice and offers a new one; `shown` is the old
/// address, kept on screen (struck through) so nothing changes silently.
function noBox(text, shown) {
  box = null;
  $("address").textContent = shown || "—";
  $("address").classList.add("gone");
  enable(false);
  $("time-left").textContent = "";
  delete $("time-left").dataset.expiresAt;
  status("offline");
  counts();
  notice(text, null, true);
}

/// Creates a mailbox (`body`: optional domain and local part) and shows it; on failure
/// the current mailbox (if any) stays as it was.
async function create(body) {
  clearNotice();
  if (!box) {
    status("creating");
    $("address").textContent = "…";
  }
  let created;
  try {
    created = await call("POST", "/api/v1/mailboxes", body || domainOnly());
  } catch (e) {
    if (e.status === 409 || e.status === 422) {
      $("chooser").open = true;
      nameError(e.status === 409 ? t("nameTaken") : e.message);
      return false;
    }
    if (!failed(e, () => create(body))) notice(e.message, () => create(body));
    if (!box) {
      status("offline");
      $("address").textContent = "—";
    }
    return false;
  }
  reset();
  box = created;
  save();
  showBox();
  listen();
  return true;
}

function domainOnly() {
  return $("domain").value ? { domain: $("domain").value } : {};
}

async function restore() {
  box = savedBox();
  if (!box) return create();
  if (Date.parse(box.expires_at) <= Date.now()) return expire();
  showBox();
  listen();
  return true;
}

/// Opens the live stream; every (re)connection re-lists, so nothing missed while away
/// is lost and the count is the server's.
function listen() {
  if (events) events.close();
  status("connecting");
  const es = new EventSource(withToken(api("/events")));
  events = es;
  es.addEventListener("open", () => {
    if (events !== es) return;
    backoff = 0;
    relist();
  });
  es.addEventListener("error", () => {
    if (events !== es) return;
    if (es.readyState === EventSource.CLOSED) { es.close(); events = null; check(); } else status("reconnecting");
  });
  es.addEventListener("new_message", (ev) => {
    try { addItem(JSON.parse(ev.data), true); } catch (_) { /* ignore a malformed event */ }
  });
}

/// Replaces the list with the server's newest page.
async function relist() {
  const was = box;
  try {
    const page = await call("GET", api("/messages?limit=50"));
    if (box !== was) return;
    const ids = new Set(page.messages.map((m) => m.id));
    document.querySelectorAll("#messages [data-id]").forEach((b) => { if (!ids.has(b.dataset.id)) b.parentElement.remove(); });
    page.messages.forEach((m) => addItem(m, false));
    counts();
    clearNotice();
    status("live");
  } catch (e) {
    if (box !== was) return;
    if (e.status === 404) gone();
    else failed(e, relist);
  }
}

/// After the stream closed for good: tells expiry, deletion and outages apart.
async function check() {
  if (!box) return;
  if (Date.parse(box.expires_at) <= Date.now()) return expire();
  const was = box;
  try {
    await call("GET", api("/messages?limit=1"));
    // The mailbox is fine but the stream was refused (e.g. too many open tabs): back off.
    backoff = Math.min(60000, (backoff || 1000) * 2);
    status("reconnecting");
    setTimeout(() => { if (box === was && !events) listen(); }, backoff);
  } catch (e) {
    if (e.status === 404) gone();
    else if (!failed(e, () => { clearNotice(); listen(); })) notice(e.message, listen);
  }
}

function expire() {
  const shown = box && box.address;
  localStorage.removeItem(KEY);
  reset();
  noBox(t("expiredNotice"), shown);
  $("time-left").textContent = t("expired");
  return false;
}

function gone() {
  const shown = box && box.address;
  localStorage.removeItem(KEY);
  reset();
  noBox(t("goneNotice"), shown);
}

function item(m, fresh) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.id = m.id;
  if (fresh) {
    b.classList.add("new");
    // Once: a list shown again after the reader would otherwise replay the flash.
    b.addEventListener("animationend", () => b.classList.remove("new"), { once: true });
  }
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = m.from || t("unknownSender");
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = new Date(m.received_at).toLocaleTimeString(LANG, { hour: "2-digit", minute: "2-digit" });
  const subject = document.createElement("span");
  subject.className = "subject";
  subject.textContent = (m.subject || t("noSubject")) + (m.has_attachments ? " 📎" : "");
  b.append(from, time, subject);
  const code = (m.verifications || []).find((v) => v.kind === "code");
  if (code) {
    const c = document.createElement("span");
    c.className = "chip";
    c.textContent = t("code") + ": " + code.value;
    b.append(c);
  }
  b.addEventListener("click", () => openMessage(m.id, false, b));
  li.append(b);
  return li;
}

function addItem(m, fresh) {
  if (!m || typeof m.id !== "string" || document.querySelector('#messages [data-id="' + CSS.escape(m.id) + '"]')) return;
  const li = item(m, fresh);
  // Newest first: ids are equal-length hex, so string order is id order.
  const list = $("messages");
  const older = Array.from(list.children).find((x) => x.firstChild.dataset.id < m.id);
  list.insertBefore(li, older || null);
  counts();
}

function counts() {
  const n = $("messages").children.length;
  $("count").textContent = String(n);
  $("empty").hidden = n > 0 || !box;
}

async function openMessage(id, remoteImages, from) {
  let m;
  try {
    m = await call("GET", api("/messages/" + id + (remoteImages ? "?remote_images=true" : "")));
  } catch (e) {
    if (!failed(e, () => openMessage(id, remoteImages, from))) notice(t("couldNotOpen", { v: e.message }));
    return;
  }
  current = id;
  if (from) opener = from;
  document.body.classList.add("reading");
  $("inbox").hidden = true;
  $("reader").hidden = false;
  $("msg-subject").textContent = m.subject || t("noSubject");
  const sender = (m.from || []).map((a) => (a.name ? a.name + " <" + a.address + ">" : a.address)).join(", ");
  $("msg-from").textContent = t("from", { v: sender || m.envelope.mail_from || t("unknownSender") });
  $("msg-date").textContent = t("received", { v: new Date(m.received_at).toLocaleString(LANG) });
  $("msg-auth").textContent = (m.auth || []).map((a) => a.method + "=" + a.result).join(" ");
  $("raw").href = withToken(api("/messages/" + id + "/raw"));
  $("images-note").hidden = !(m.remote_images_blocked > 0);
  $("images-text").textContent = t("imagesBlocked", { n: m.remote_images_blocked });
  showVerifications(m.verifications);
  const atts = $("attachments");
  atts.replaceChildren();
  (m.attachments || []).forEach((a) => {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.className = "button";
    link.href = withToken(a.url);
    link.setAttribute("download", a.filename || t("attachment"));
    link.textContent = "⬇ " + (a.filename || t("attachment")) + " (" + size(a.size) + ")";
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
    renderText(text, m.text || m.render_error || "");
    text.hidden = false;
  }
  $("back").focus();
}

/// The codes and links found in a message as large buttons; nothing when absent.
function showVerifications(list) {
  const codes = $("codes");
  codes.replaceChildren();
  const shown = (Array.isArray(list) ? list : []).filter((v) => v && typeof v.value === "string").slice(0, VERIFICATIONS_MAX);
  shown.forEach((v) => {
    if (v.kind === "code") {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "code";
      b.dataset.value = v.value;
      // The visible code and hint are the accessible name (axe: label-content-name-mismatch).
      b.title = t("copyCode", { v: v.value });
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = v.value;
      const hint = document.createElement("span");
      hint.className = "hint";
      hint.textContent = t("copy");
      b.append(value, hint);
      b.addEventListener("click", () => copy(v.value, hint, t("copy")));
      codes.append(b);
    } else if (v.kind === "link") {
      const href = safeHref(v.value);
      if (!href) return;
      const a = document.createElement("a");
      a.className = "button open-link";
      a.href = href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = t("openLink") + " ↗";
      a.title = v.value;
      codes.append(a);
    }
  });
  codes.hidden = codes.children.length === 0;
}

/// Copies `text`, then shows "Copied" on `label` for a moment and tells screen readers.
async function copy(text, label, restore) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch (_) {
    // Plain-HTTP deployments have no Clipboard API; the old selection copy still works.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.append(area);
    area.select();
    ok = document.execCommand("copy");
    area.remove();
  }
  if (!ok) return;
  label.textContent = t("copied");
  label.closest("button").classList.add("done");
  $("copied").textContent = t("copied");
  setTimeout(() => {
    label.textContent = restore;
    label.closest("button").classList.remove("done");
    $("copied").textContent = "";
  }, 2000);
}

/// An http(s) or mailto URL as given, or null.
function safeHref(raw) {
  try {
    const u = new URL(raw);
    return ["http:", "https:", "mailto:"].includes(u.protocol) ? u.href : null;
  } catch (_) {
    return null;
  }
}

const LINKS = /\b(?:https?:\/\/|www\.)[^\s<>"'`]+|\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b/g;

/// Plain text as lines: URLs and addresses become safe links, quoted lines are dimmed.
function renderText(el, text) {
  el.replaceChildren();
  let quote = null;
  text.replace(/\r\n?/g, "\n").replace(/\s+$/, "").split("\n").forEach((line) => {
    const quoted = /^\s*>/.test(line);
    const div = document.createElement("div");
    div.className = "line";
    linkify(div, line);
    if (!line) div.append(document.createElement("br"));
    if (quoted) {
      if (!quote) {
        quote = document.createElement("blockquote");
        el.append(quote);
      }
      quote.append(div);
    } else {
      quote = null;
      el.append(div);
    }
  });
}

function linkify(parent, line) {
  let at = 0;
  for (const m of line.matchAll(LINKS)) {
    let s = m[0];
    // Trailing punctuation belongs to the sentence, not the URL (unless a paren is balanced).
    while (/[.,;:!?)\]}'"]$/.test(s) && !(s.endsWith(")") && s.split("(").length === s.split(")").length)) s = s.slice(0, -1);
    const isMail = !/^(https?:\/\/|www\.)/i.test(s);
    const href = safeHref(isMail ? "mailto:" + s : /^www\./i.test(s) ? "https://" + s : s);
    if (!href) continue;
    parent.append(line.slice(at, m.index));
    const a = document.createElement("a");
    a.href = href;
    a.textContent = s;
    if (!isMail) {
      a.target = "_blank";
      a.rel = "noopener noreferrer";
    }
    parent.append(a);
    at = m.index + s.length;
  }
  parent.append(line.slice(at));
}

function closeMessage() {
  const wasOpen = current !== null;
  current = null;
  document.body.classList.remove("reading");
  $("reader").hidden = true;
  $("inbox").hidden = false;
  $("msg-html").removeAttribute("src");
  $("codes").replaceChildren();
  if (wasOpen && opener && opener.isConnected) opener.focus();
  else if (wasOpen) $("inbox").focus();
}

function size(n) {
  return n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
}

function duration(ms) {
  const s = Math.ceil(ms / 1000);
  const h = Math.floor(s / 3600), mi = Math.floor((s % 3600) / 60), se = s % 60;
  return (h ? h + ":" + String(mi).padStart(2, "0") : String(mi)) + ":" + String(se).padStart(2, "0");
}

/// The countdown: updates once a second, warns before expiry, says so at expiry.
function tick() {
  clearInterval(ticker);
  const el = $("time-left");
  el.dataset.expiresAt = box.expires_at;
  const show = () => {
    if (!box) return clearInterval(ticker);
    const left = Date.parse(box.expires_at) - Date.now();
    if (left <= 0) {
      clearInterval(ticker);
      expire();
      return;
    }
    el.textContent = t("expiresIn", { t: duration(left) });
    // Set once, not every second: the warning is an alert, read out on each change.
    const warn = left <= WARN_MS;
    if (warn && $("warning").hidden) $("warning-text").textContent = t("warning", { n: WARN_MS / 60000 });
    $("warning").hidden = !warn;
  };
  show();
  ticker = setInterval(show, 1000);
}

async function extend() {
  if (!box) return;
  const was = box;
  try {
    const r = await call("POST", api("/extend"));
    if (box !== was) return;
    box.expires_at = r.expires_at;
    save();
    tick();
    const until = new Date(r.expires_at).toLocaleTimeString(LANG, { hour: "2-digit", minute: "2-digit" });
    $("status").textContent = t("extended", { t: until });
    $("status").dataset.state = "extended";
    setTimeout(() => { if (events && events.readyState === EventSource.OPEN) status("live"); }, 3000);
  } catch (e) {
    if (e.status === 404) gone();
    else if (!failed(e, () => { clearNotice(); extend(); })) notice(e.message);
  }
}

/// Why `name` is not a valid local part, or "" when it is.
function nameProblem(raw) {
  const name = raw.toLowerCase();
  if (!name) return t("nameEmpty");
  if (new TextEncoder().encode(name).length > NAME_BYTES_MAX) return t("nameLong");
  if (!/^[a-z0-9._+-]+$/.test(name)) return t("nameChars");
  if (name.startsWith(".") || name.endsWith(".") || name.includes("..")) return t("nameDots");
  if (RESERVED.includes(name) || RESERVED.includes(name.split("+")[0])) return t("nameReserved");
  return "";
}

function nameError(text) {
  $("name-error").textContent = text;
  $("name").setAttribute("aria-invalid", text ? "true" : "false");
}

function validateName() {
  const problem = $("name").value ? nameProblem($("name").value) : "";
  nameError(problem);
  $("create").disabled = !$("name").value || !!problem;
}

function randomName() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => NAME_ALPHABET[b % NAME_ALPHABET.length]).join("");
}

async function loadDomains() {
  try {
    const r = await call("GET", "/api/v1/domains");
    const sel = $("domain");
    sel.replaceChildren(...r.domains.map((d) => new Option(d, d)));
    if (box) {
      const domain = box.address.split("@").pop();
      if (r.domains.includes(domain)) sel.value = domain;
    }
  } catch (_) { /* the picker stays empty; a random domain is used */ }
}

function wire() {
  $("copy").addEventListener("click", () => box && copy(box.address, $("copy"), t("copy")));
  $("new-box").addEventListener("click", () => create());
  $("notice-new").addEventListener("click", () => create());
  $("notice-retry").addEventListener("click", () => { const again = retry; clearNotice(); if (again) again(); });
  $("extend").addEventListener("click", extend);
  $("warning-extend").addEventListener("click", extend);
  $("name").addEventListener("input", validateName);
  $("random").addEventListener("click", () => { $("name").value = randomName(); validateName(); $("name").focus(); });
  $("choose-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    validateName();
    if ($("create").disabled) return;
    const body = { local_part: $("name").value.toLowerCase() };
    if ($("domain").value) body.domain = $("domain").value;
    if (await create(body)) {
      $("name").value = "";
      nameError("");
      $("chooser").open = false;
    }
  });
  $("forget").addEventListener("click", () => {
    localStorage.removeItem(KEY);
    reset();
    noBox(t("forgotten"));
  });
  $("delete-box").addEventListener("click", async () => {
    const b = $("delete-box");
    if (!deleteArmed) {
      b.textContent = t("confirmDelete");
      deleteArmed = setTimeout(() => { deleteArmed = null; b.textContent = t("deleteInbox"); }, 4000);
      return;
    }
    clearTimeout(deleteArmed);
    deleteArmed = null;
    b.textContent = t("deleteInbox");
    try {
      await call("DELETE", api(""));
    } catch (e) {
      if (e.status !== 404 && failed(e)) return;
    }
    localStorage.removeItem(KEY);
    reset();
    box = null;
    if (await create()) status("deleted", "live");
  });
  $("back").addEventListener("click", closeMessage);
  $("load-images").addEventListener("click", () => current && openMessage(current, true));
  $("delete-msg").addEventListener("click", async () => {
    if (!current) return;
    const id = current;
    try {
      await call("DELETE", api("/messages/" + id));
    } catch (e) {
      if (e.status !== 404 && failed(e)) return;
    }
    const b = document.querySelector('#messages [data-id="' + CSS.escape(id) + '"]');
    const next = b && (b.parentElement.nextElementSibling || b.parentElement.previousElementSibling);
    if (b) b.parentElement.remove();
    counts();
    opener = next ? next.firstChild : null;
    closeMessage();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && current) { closeMessage(); return; }
    // Arrow keys move between messages in the list.
    const b = document.activeElement;
    if ((e.key === "ArrowDown" || e.key === "ArrowUp") && b && b.closest("#messages")) {
      const li = e.key === "ArrowDown" ? b.parentElement.nextElementSibling : b.parentElement.previousElementSibling;
      if (li) { li.firstChild.focus(); e.preventDefault(); }
    }
  });
}

translate();
enable(false);
wire();
validateName();
counts();
loadDomains();
restore();

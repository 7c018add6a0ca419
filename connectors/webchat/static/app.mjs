// Resonanz web chat (Preact + htm, vendored; no build step). Mounted by widget.js in a Shadow DOM.
// Every text from the customer, the bot or an agent is a Preact text node, never HTML.
import { h, render } from "./vendor/preact.mjs";
import { useEffect, useLayoutEffect, useReducer, useRef, useState } from "./vendor/hooks.mjs";
import htm from "./vendor/htm.mjs";

const html = htm.bind(h);

const LABELS = {
  de: {
    title: "Kundenservice", placeholder: "Ihre Nachricht…", send: "Senden", open: "Chat öffnen",
    close: "Chat schließen", offline: "Verbindung wird hergestellt…", label: "Nachricht",
    bot: "Assistent", agent: "Mitarbeiter/in", system: "Hinweis", customer: "Sie",
    sending: "wird gesendet", delivered: "zugestellt", read: "gelesen", typing: "schreibt …",
    waiting: "Sie warten auf eine Person", cancelWait: "Warten abbrechen",
    leaveMessage: "Nachricht hinterlassen",
    withTeam: "Ihre Nachricht liegt dem Team vor; es antwortet hier.",
    cbTitle: "Nachricht hinterlassen", cbIntro: "Sie müssen nicht warten: Das Team meldet sich bei Ihnen.",
    cbHow: "Wie erreichen wir Sie?", cbPhone: "Rückruf (Telefon)", cbEmail: "E-Mail",
    cbPhoneLabel: "Ihre Telefonnummer", cbEmailLabel: "Ihre E-Mail-Adresse", cbMessage: "Ihre Nachricht",
    cbSend: "Nachricht senden", cbBack: "Zurück", cbInvalidPhone: "Bitte geben Sie eine gültige Telefonnummer an (z. B. +49 30 1234567).",
    cbInvalidEmail: "Bitte geben Sie eine gültige E-Mail-Adresse an (z. B. name@beispiel.de).", cbEmpty: "Bitte schreiben Sie Ihre Nachricht.",
    overdue: "Es dauert leider länger als geschätzt. Sie behalten Ihren Platz – oder hinterlassen Sie uns eine Nachricht.",
    agentLeft: "Die Mitarbeiterin / der Mitarbeiter hat das Gespräch beendet.",
    unread: (n) => (n === 1 ? "1 neue Nachricht" : `${n} neue Nachrichten`), log: "Gesprächsverlauf",
    attach: "Bild oder PDF anhängen", file: "Datei", too_large: "Die Datei ist zu groß (höchstens {mb} MB).",
    unsupported: "Senden können Sie Bilder (PNG, JPEG, GIF, WebP) und PDF-Dateien.", upload_failed: "Die Datei konnte nicht gesendet werden.",
  },
  en: {
    title: "Customer service", placeholder: "Your message…", send: "Send", open: "Open chat",
    close: "Close chat", offline: "Connecting…", label: "Message",
    bot: "Assistant", agent: "Agent", system: "Notice", customer: "You",
    sending: "sending", delivered: "delivered", read: "read", typing: "is typing …",
    waiting: "You are waiting for a person", cancelWait: "Stop waiting",
    leaveMessage: "Leave a message",
    withTeam: "Your message is with the team; they will answer here.",
    cbTitle: "Leave a message", cbIntro: "No need to wait: the team will get back to you.",
    cbHow: "How can we reach you?", cbPhone: "Callback (phone)", cbEmail: "E-mail",
    cbPhoneLabel: "Your phone number", cbEmailLabel: "Your e-mail address", cbMessage: "Your message",
    cbSend: "Send message", cbBack: "Back", cbInvalidPhone: "Please enter a valid phone number (e.g. +44 20 7946 0958).",
    cbInvalidEmail: "Please enter a valid e-mail address (e.g. name@example.com).", cbEmpty: "Please write your message.",
    overdue: "This is taking longer than estimated. You keep your place – or leave us a message.",
    agentLeft: "The agent has left the conversation.",
    unread: (n) => (n === 1 ? "1 new message" : `${n} new messages`), log: "Conversation",
    attach: "Attach a picture or PDF", file: "File", too_large: "The file is too large (at most {mb} MB).",
    unsupported: "You can send pictures (PNG, JPEG, GIF, WebP) and PDF files.", upload_failed: "The file could not be sent.",
  },
};
// Icons as SVG (an emoji needs a font the customer's system may not have).
const ICON_CHAT = html`<svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true" focusable="false">
  <path fill="currentColor" d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"/></svg>`;
const ICON_CLIP = html`<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" focusable="false">
  <path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"
        d="M20 11.5l-7.8 7.8a5 5 0 0 1-7.1-7.1l8.5-8.5a3.4 3.4 0 0 1 4.8 4.8l-8.5 8.5a1.7 1.7 0 0 1-2.4-2.4L15.3 6.8"/></svg>`;
const STORAGE_KEY = "resonanz.token";
const browserLanguage = (navigator.language || "de").slice(0, 2) === "en" ? "en" : "de";

let memoryToken = null; // when storage is disabled, the session lasts this page
function loadToken() {
  try { return localStorage.getItem(STORAGE_KEY) || memoryToken; } catch (e) { return memoryToken; }
}
function saveToken(token) {
  memoryToken = token;
  try {
    if (token) localStorage.setItem(STORAGE_KEY, token); else localStorage.removeItem(STORAGE_KEY);
  } catch (e) { /* storage disabled */ }
}
function clientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
function when(ts) {
  if (!ts) return null;
  // The gateway's timestamps are UTC; one without a zone (SQLite) is UTC too.
  const d = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(ts) ? ts : ts + "Z");
  return isNaN(d) ? null : d;
}

// --- state ------------------------------------------------------------------------------------

const initial = {
  messages: [], state: null, language: null, welcome: null, extensions: [], connected: false,
  open: false, unread: 0, preview: null, waitingAcked: false, notices: [],
  agentTyping: null, uploading: false, maxUpload: 0, callback: null,
};

function place(messages, msg) {
  // In time order: before the later messages at the end (another tab's message comes after the
  // replies to it); never before a message of this tab that has no time yet.
  if (msg.id && messages.some((m) => m.id === msg.id)) return messages;
  const t = when(msg.timestamp);
  let i = messages.length;
  if (t) {
    while (i > 0) {
      const prev = when(messages[i - 1].timestamp);
      if (!prev || prev <= t) break;
      i -= 1;
    }
  }
  return [...messages.slice(0, i), msg, ...messages.slice(i)];
}

function reduce(s, a) {
  switch (a.type) {
    case "connected": return { ...s, connected: a.value };
    case "history": {
      let messages = [];
      for (const m of a.frame.messages || []) messages = place(messages, { ...m, acked: true });
      messages = [...messages, ...s.messages.filter((m) => !m.id && m.pending)]; // not acknowledged yet: kept
      return { ...s, messages, state: a.frame.state, language: a.frame.language || s.language,
        welcome: a.frame.welcome || s.welcome, extensions: a.frame.extensions || [],
        maxUpload: a.frame.max_upload_bytes || s.maxUpload };
    }
    case "message": {
      const live = a.frame;
      const fromUs = live.author === "customer";
      const unread = !s.open && !fromUs ? s.unread + 1 : s.unread;
      // A reply carries the conversation's language: the chat's own labels follow it at once.
      const language = !fromUs && (live.language === "de" || live.language === "en") ? live.language : s.language;
      return { ...s, messages: place(s.messages, { ...live, acked: true }), unread, language,
        agentTyping: live.author === "agent" ? null : s.agentTyping,
        preview: !s.open && !fromUs ? live.text : s.preview };
    }
    case "local": return { ...s, messages: [...s.messages, a.msg] };
    case "ack": {
      const messages = s.messages.map((m) => (m.clientId === a.frame.client_id
        ? { ...m, id: a.frame.message_id, acked: true, pending: false, timestamp: a.frame.timestamp || m.timestamp } : m));
      return { ...s, messages, state: a.frame.state || s.state };
    }
    case "failed": return { ...s, messages: s.messages.map((m) => (m.clientId === a.clientId ? { ...m, pending: false, failed: true } : m)) };
    case "error": return { ...s, notices: [...s.notices, { kind: "error", text: a.text }] };
    case "notice": return { ...s, notices: [...s.notices, { kind: a.kind, text: a.text }] };
    case "waitingAcked": return { ...s, waitingAcked: true };
    // The message left for a callback or an e-mail: "sending", "refused" (the server's check), "sent".
    case "callback": return { ...s, callback: a.value };
    case "uploading": return { ...s, uploading: a.value };
    case "typing": return { ...s, agentTyping: a.who };
    case "open": return { ...s, open: a.value, unread: a.value ? 0 : s.unread, preview: a.value ? null : s.preview };
    default: return s;
  }
}

// --- the connection -----------------------------------------------------------------------------

function useChat(base) {
  const [s, dispatch] = useReducer(reduce, initial);
  const conn = useRef({ ws: null, ready: false, pending: [], backoff: 500 });
  const stateRef = useRef(s);
  stateRef.current = s;

  useEffect(() => {
    const c = conn.current;
    let stopped = false;
    const url = new URL("/webchat/ws", base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    function connect() {
      if (stopped) return;
      const ws = new WebSocket(url.toString());
      c.ws = ws;
      ws.addEventListener("open", () => {
        c.backoff = 500;
        const hello = { type: "hello", language: browserLanguage };
        const token = loadToken();
        if (token) hello.token = token;
        ws.send(JSON.stringify(hello));
      });
      ws.addEventListener("message", (event) => {
        let f;
        try { f = JSON.parse(event.data); } catch (e) { return; }
        if (f.type === "session") saveToken(f.token);
        else if (f.type === "history") {
          c.ready = true;
          dispatch({ type: "connected", value: true });
          dispatch({ type: "history", frame: f });
          c.pending.forEach((p) => ws.send(JSON.stringify(p)));
        } else if (f.type === "message") {
          dispatch({ type: "message", frame: f });
          // Notices from the team (queued, an agent took over, the agent left) change the
          // conversation's state: a hello on the open socket brings it (with the history).
          if (f.author === "system" || f.author === "agent") {
            clearTimeout(c.refresh);
            c.refresh = setTimeout(() => {
              const token = loadToken();
              if (token && c.ws === ws && ws.readyState === WebSocket.OPEN) {
                ws.send(JSON.stringify({ type: "hello", token, language: browserLanguage }));
              }
            }, 150);
          }
        } else if (f.type === "typing") {
          dispatch({ type: "typing", who: { name: f.name || null } });
          clearTimeout(c.typingOff);
          c.typingOff = setTimeout(() => dispatch({ type: "typing", who: null }), 6000);
        } else if (f.type === "ack") {
          const left = c.pending.find((p) => p.client_id === f.client_id && p.callback);
          c.pending = c.pending.filter((p) => p.client_id !== f.client_id);
          if (left) {
            dispatch({ type: "message", frame: { id: f.message_id, author: "customer", direction: "in", text: left.text,
              timestamp: f.timestamp, buttons: [], attachments: [] } });
            dispatch({ type: "callback", value: "sent" });
          }
          dispatch({ type: "ack", frame: f });
        } else if (f.type === "error" && f.code === "callback_contact") {
          c.pending = c.pending.filter((p) => p.client_id !== f.client_id);
          dispatch({ type: "callback", value: "refused" });
        } else if (f.type === "error" && f.code === "session_invalid") {
          saveToken(null);
        } else if (f.type === "error") {
          if (f.client_id) {
            c.pending = c.pending.filter((p) => p.client_id !== f.client_id);
            dispatch({ type: "failed", clientId: f.client_id });
          }
          dispatch({ type: "error", text: f.error });
        }
      });
      ws.addEventListener("close", (event) => {
        c.ready = false;
        dispatch({ type: "connected", value: false });
        if (stopped) return;
        if (event.code === 4401) { saveToken(null); setTimeout(connect, 0); return; }
        setTimeout(connect, c.backoff);
        c.backoff = Math.min(c.backoff * 2, 15000);
      });
    }
    connect();
    return () => { stopped = true; if (c.ws) c.ws.close(); };
  }, [base]);

  function send(text, display) {
    text = (text || "").trim();
    if (!text) return;
    const c = conn.current;
    const frame = { type: "message", text, client_id: clientId() };
    if (display) frame.display = display;
    const queued = stateRef.current.state === "queued";
    dispatch({ type: "local", msg: { clientId: frame.client_id, author: "customer", direction: "in", text,
      display: display || null, pending: true, acked: false, timestamp: null, buttons: [], attachments: [] } });
    if (queued && !stateRef.current.waitingAcked) dispatch({ type: "waitingAcked" });
    c.pending.push(frame);
    if (c.ready && c.ws && c.ws.readyState === WebSocket.OPEN) c.ws.send(JSON.stringify(frame));
  }
  function leaveMessage(via, contact, text) {
    // Checked by the server (an error with code "callback_contact" if the contact is not valid).
    const c = conn.current;
    const frame = { type: "message", text: text.trim(), client_id: clientId(), callback: { via, contact: contact.trim() } };
    dispatch({ type: "callback", value: "sending" });
    c.pending.push(frame);
    if (c.ready && c.ws && c.ws.readyState === WebSocket.OPEN) c.ws.send(JSON.stringify(frame));
  }
  async function upload(file, T) {
    const mb = `${Math.round((stateRef.current.maxUpload || 0) / 1e5) / 10}`;
    if (file && stateRef.current.maxUpload && file.size > stateRef.current.maxUpload) {
      dispatch({ type: "error", text: T.too_large.replace("{mb}", mb) });
      return;
    }
    const token = loadToken();
    if (!file || !token) return;
    const body = new FormData();
    body.append("client_id", clientId());
    body.append("file", file, file.name);
    dispatch({ type: "uploading", value: true });
    try {
      const r = await fetch(new URL("/webchat/upload", base), { method: "POST", body,
        headers: { Authorization: `Bearer ${token}` } });
      if (!r.ok) {
        const err = await r.json().catch(() => ({}));
        dispatch({ type: "error", text: (T[err.code] || T.upload_failed).replace("{mb}", mb) });
      }
    } catch (e) {
      dispatch({ type: "error", text: T.upload_failed });
    } finally {
      dispatch({ type: "uploading", value: false });
    }
  }
  return [s, dispatch, send, upload, leaveMessage];
}

// --- views --------------------------------------------------------------------------------------

// Only the gateway's own files (or the configured public URL's): never any other address.
function mediaSrc(url, base) {
  return /^https?:\/\//.test(url || "") ? url : /^\/media\/[A-Za-z0-9_.-]+$/.test(url || "") ? base + url : null;
}

function initials(name) {
  return (name || "").split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
}

// The agent's picture beside their name (alt: the name); without one, or if it is gone, initials.
function Avatar({ name, url, base }) {
  const [broken, setBroken] = useState(false);
  const src = mediaSrc(url, base);
  if (src && !broken) {
    return html`<img class="rz-avatar" src=${src} alt=${name} width="28" height="28" data-testid="resonanz-avatar"
                     onError=${() => setBroken(true)} />`;
  }
  const letters = initials(name);
  return letters ? html`<span class="rz-avatar rz-initials" aria-hidden="true" data-testid="resonanz-initials">${letters}</span>` : null;
}

function Message({ m, T, lang, base, buttonsUsed, read, onButton }) {
  const author = m.author || (m.direction === "in" ? "customer" : "bot");
  const t = when(m.timestamp);
  const name = author === "agent" && m.sender_name ? m.sender_name : T[author] || author;
  const status = author === "customer" ? (m.pending ? T.sending : read ? T.read : T.delivered) : null;
  return html`
    <li class=${`rz-msg rz-${author}`} data-testid="resonanz-message" data-author=${author}
        data-status=${status ? (m.pending ? "sending" : read ? "read" : "delivered") : undefined}>
      ${author === "agent" && m.sender_name ? html`
        <div class="rz-from">
          <${Avatar} key=${m.sender_avatar || ""} name=${m.sender_name} url=${m.sender_avatar} base=${base} />
          <span class="rz-author">${name}</span>
        </div>` : html`<span class="rz-author">${name}</span>`}
      ${m.text || m.display ? html`<p class="rz-text">${author === "customer" && m.display ? m.display : m.text}</p>` : null}
      ${(m.attachments || []).map((a) => {
        const src = mediaSrc(a.url, base);
        if (author === "customer") {
          return html`<span class="rz-chip" data-testid="resonanz-attachment">${ICON_CLIP} ${a.name || T.file}</span>`;
        }
        if (!src) return null;
        return a.kind === "image"
          ? html`<img class="rz-image" src=${src} alt=${a.name || ""} />`
          : html`<a class="rz-file" href=${src} target="_blank" rel="noopener noreferrer">${a.name || src}</a>`;
      })}
      ${author !== "customer" && m.buttons && m.buttons.length ? html`
        <div class="rz-buttons">
          ${m.buttons.map((b) => html`
            <button type="button" class="rz-button" data-testid="resonanz-button" disabled=${buttonsUsed}
                    onClick=${() => onButton(b.payload, b.title)}>${b.title}</button>`)}
        </div>` : null}
      <span class="rz-meta">
        ${t ? html`<time data-testid="resonanz-time" datetime=${t.toISOString()}>${
          t.toLocaleTimeString(lang === "en" ? "en-GB" : "de-DE", { hour: "2-digit", minute: "2-digit" })}</time>` : null}
        ${status ? html` · <span data-testid="resonanz-receipt">${status}</span>` : null}
      </span>
    </li>`;
}

// While waiting: a message for the team with how to reach the customer (a callback or an e-mail).
function LeaveMessage({ T, status, onSend, onBack }) {
  const [via, setVia] = useState("phone");
  const [contact, setContact] = useState("");
  const [text, setText] = useState("");
  const [empty, setEmpty] = useState(false);
  const first = useRef(null);
  useEffect(() => { if (first.current) first.current.focus(); }, []);
  const problem = empty ? T.cbEmpty : status === "refused" ? (via === "phone" ? T.cbInvalidPhone : T.cbInvalidEmail) : "";
  function submit(event) {
    event.preventDefault();
    if (!text.trim()) { setEmpty(true); return; }
    setEmpty(false);
    onSend(via, contact, text);
  }
  return html`
    <form class="rz-callback" data-testid="resonanz-callback" aria-labelledby="rz-cb-title" noValidate onSubmit=${submit}
          onKeyDown=${(e) => { if (e.key === "Escape") { e.stopPropagation(); onBack(); } }}>
      <h2 id="rz-cb-title" class="rz-cb-title">${T.cbTitle}</h2>
      <p class="rz-cb-intro">${T.cbIntro}</p>
      <fieldset class="rz-cb-via">
        <legend>${T.cbHow}</legend>
        ${[["phone", T.cbPhone], ["email", T.cbEmail]].map(([v, title], i) => html`
          <label class="rz-cb-choice"><input type="radio" name="rz-cb-via" value=${v} checked=${via === v}
            ref=${i === 0 ? first : undefined} data-testid=${`resonanz-callback-${v}`}
            onChange=${() => setVia(v)} /> ${title}</label>`)}
      </fieldset>
      <label for="rz-cb-contact">${via === "phone" ? T.cbPhoneLabel : T.cbEmailLabel}</label>
      <input id="rz-cb-contact" type=${via === "phone" ? "tel" : "email"} autocomplete=${via === "phone" ? "tel" : "email"}
             maxlength="200" data-testid="resonanz-callback-contact" value=${contact}
             aria-invalid=${status === "refused" ? "true" : undefined} aria-describedby="rz-cb-problem"
             onInput=${(e) => setContact(e.currentTarget.value)} />
      <label for="rz-cb-message">${T.cbMessage}</label>
      <textarea id="rz-cb-message" rows="3" maxlength="2000" data-testid="resonanz-callback-message" value=${text}
                onInput=${(e) => setText(e.currentTarget.value)}></textarea>
      <p id="rz-cb-problem" class="rz-cb-problem" role="alert" data-testid="resonanz-callback-problem">${problem}</p>
      <div class="rz-cb-actions">
        <button type="submit" class="rz-cb-send" data-testid="resonanz-callback-send" disabled=${status === "sending"}>${T.cbSend}</button>
        <button type="button" class="rz-button" data-testid="resonanz-callback-back" onClick=${onBack}>${T.cbBack}</button>
      </div>
    </form>`;
}

function Chat({ base, full, host }) {
  const [s, dispatch, send, upload, leaveMessage] = useChat(base);
  const lang = s.language === "en" || s.language === "de" ? s.language : browserLanguage;
  const T = LABELS[lang];
  const [text, setText] = useState("");
  const [leaving, setLeaving] = useState(false);
  const logRef = useRef(null);
  const inputRef = useRef(null);
  const launcherRef = useRef(null);
  const titleRef = useRef(document.title);
  const open = full || s.open;
  const prevState = useRef(null);

  useEffect(() => { if (full) dispatch({ type: "open", value: true }); }, [full]);
  useLayoutEffect(() => { if (logRef.current) logRef.current.scrollTop = logRef.current.scrollHeight; },
    [s.messages.length, open, s.notices.length]);
  useEffect(() => { // unread: a title change while closed
    if (full) return;
    document.title = s.unread ? `(${s.unread}) ${titleRef.current}` : titleRef.current;
  }, [s.unread]);
  useEffect(() => { // the agent closed: say so once
    if (prevState.current === "agent" && s.state && s.state !== "agent" && s.state !== "queued") {
      dispatch({ type: "notice", kind: "left", text: T.agentLeft });
    }
    prevState.current = s.state;
  }, [s.state]);
  useEffect(() => { // the message was left: the form closes, the customer is back with the bot
    if (s.callback !== "sent") return;
    setLeaving(false);
    setTimeout(() => inputRef.current && inputRef.current.focus(), 0);
  }, [s.callback]);
  useEffect(() => { if (host) host.setAttribute("data-state", s.state || "new"); }, [s.state]);
  const extSlot = useRef(null);
  const mounted = useRef(new Set());
  const live = useRef({}); // what the modules' api reads: the current language and state, not the first
  live.current = { lang, state: s.state };
  useEffect(() => { // optional modules (continue.js): each mounted once into its own slot
    for (const name of s.extensions) {
      if (mounted.current.has(name) || !extSlot.current) continue;
      mounted.current.add(name);
      const slot = document.createElement("div");
      slot.setAttribute("data-extension", name);
      extSlot.current.appendChild(slot);
      import(`${base}/webchat/${name}`).then((mod) => mod.mount && mod.mount(slot, {
        base, send, language: () => live.current.lang, token: loadToken, state: () => live.current.state,
      })).catch(() => { /* an optional module that fails leaves the chat working */ });
    }
  }, [s.extensions]);

  useEffect(() => { // the modules re-read language() and state() when they change
    if (!extSlot.current) return;
    for (const slot of extSlot.current.children) slot.dispatchEvent(new CustomEvent("resonanz:update"));
  }, [lang, s.state]);

  function setOpen(value) {
    dispatch({ type: "open", value });
    if (value) setTimeout(() => inputRef.current && inputRef.current.focus(), 0);
    else setTimeout(() => launcherRef.current && launcherRef.current.focus(), 0);
  }
  function submit(event) {
    event.preventDefault();
    const value = text;
    setText("");
    send(value, null);
  }
  const lastCustomer = s.messages.reduce((last, m, i) => (m.author === "customer" || m.direction === "in" ? i : last), -1);
  const hasCustomer = lastCustomer >= 0;
  const lastAnswer = s.messages.reduce((last, m, i) => (m.author !== "customer" && m.direction !== "in" ? i : last), -1);
  const waitingFor = s.state === "queued";
  const queueNote = waitingFor
    ? [...s.messages].reverse().find((m) => m.author === "system" && /\d/.test(m.text || "")) : null;
  const typing = s.messages.some((m) => m.pending);
  // The estimate passed (the queue notice's minutes, else 5): say so, once, in the banner.
  const [overdue, setOverdue] = useState(false);
  const noteKey = queueNote ? queueNote.id || queueNote.text : null;
  useEffect(() => {
    setOverdue(false);
    if (!waitingFor) return undefined;
    const since = (queueNote && when(queueNote.timestamp)) || new Date();
    const match = queueNote && /(\d+)\s*(Minute|minute)/.exec(queueNote.text || "");
    const minutes = match ? Number(match[1]) : queueNote && /\b(1|one|eine?)\s+(Minute|minute)\b/.test(queueNote.text) ? 1 : 5;
    const timer = setTimeout(() => setOverdue(true), Math.max(0, since.getTime() + minutes * 60000 - Date.now()));
    return () => clearTimeout(timer);
  }, [waitingFor, noteKey]);
  const agentClosed = s.state === "closed" && s.messages.some((m) => m.author === "agent");
  const notices = [...s.notices];
  if (agentClosed && !notices.some((n) => n.kind === "left")) notices.push({ kind: "left", text: T.agentLeft });

  return html`
    <div class=${`rz-root ${full ? "rz-full" : ""} ${open ? "rz-open" : ""}`} data-testid="resonanz-widget"
         data-state=${s.state || "new"} lang=${lang}>
      ${full ? null : html`
        <button type="button" class="rz-launcher" ref=${launcherRef} aria-label=${s.unread ? `${T.open}: ${T.unread(s.unread)}` : T.open}
                aria-expanded=${open ? "true" : "false"} data-testid="resonanz-launcher" onClick=${() => setOpen(true)}>
          ${ICON_CHAT}
          ${s.unread ? html`<span class="rz-badge" data-testid="resonanz-badge" aria-hidden="true">${s.unread}</span>` : null}
        </button>
        ${!open && s.preview ? html`
          <button type="button" class="rz-preview" data-testid="resonanz-preview" onClick=${() => setOpen(true)}>${s.preview}</button>` : null}`}
      <section class="rz-panel" role=${full ? "main" : "dialog"} aria-label=${T.title} hidden=${!open}
               onKeyDown=${(e) => { if (e.key === "Escape" && !full) { e.stopPropagation(); setOpen(false); } }}>
        <header class="rz-header">
          <h1 class="rz-title">${T.title}</h1>
          <span class="rz-status" data-testid="resonanz-status" aria-live="polite">${s.connected ? "" : T.offline}</span>
          ${full ? null : html`<button type="button" class="rz-close" aria-label=${T.close} data-testid="resonanz-close"
                                       onClick=${() => setOpen(false)}>×</button>`}
        </header>
        ${waitingFor ? html`
          <div class="rz-banner" role="status" data-testid="resonanz-waiting">
            <strong>${T.waiting}</strong>
            ${queueNote ? html`<span>${queueNote.text}</span>` : null}
            ${overdue ? html`<span class="rz-overdue" data-testid="resonanz-overdue">${T.overdue}</span>` : null}
            <div class="rz-banner-actions">
              <button type="button" class="rz-button" data-testid="resonanz-cancel-wait"
                      onClick=${() => send("/cancel_handover", T.cancelWait)}>${T.cancelWait}</button>
              <button type="button" class="rz-button" data-testid="resonanz-leave-message"
                      aria-expanded=${leaving ? "true" : "false"}
                      onClick=${() => { dispatch({ type: "callback", value: null }); setLeaving(!leaving); }}>${T.leaveMessage}</button>
            </div>
          </div>` : null}
        ${waitingFor && leaving ? html`<${LeaveMessage} T=${T} status=${s.callback}
            onSend=${leaveMessage} onBack=${() => setLeaving(false)} />` : null}
        <ol class="rz-log" ref=${logRef} aria-live="polite" aria-label=${T.log} data-testid="resonanz-log" tabindex="0">
          ${s.welcome ? html`
            <li class="rz-msg rz-bot rz-welcome" data-testid="resonanz-welcome">
              <span class="rz-author">${T.bot}</span>
              <p class="rz-text">${s.welcome.text}</p>
              ${s.welcome.tasks.length ? html`<div class="rz-buttons">
                ${s.welcome.tasks.map((t) => html`<button type="button" class="rz-button" data-testid="resonanz-task"
                    onClick=${() => send(t.payload, t.title)}>${t.title}</button>`)}</div>` : null}
            </li>` : null}
          ${s.messages.map((m, i) => html`<${Message} key=${m.id || m.clientId} m=${m} T=${T} lang=${lang} base=${base}
              buttonsUsed=${i < lastCustomer} read=${i < lastAnswer} onButton=${(p, t) => send(p, t)} />`)}
          ${waitingFor && s.waitingAcked ? html`<li class="rz-msg rz-system" data-testid="resonanz-with-team">${T.withTeam}</li>` : null}
          ${notices.map((n) => html`<li class=${`rz-msg ${n.kind === "error" ? "rz-error" : "rz-system"}`}
              data-testid=${n.kind === "error" ? "resonanz-error" : "resonanz-notice"} role=${n.kind === "error" ? "alert" : undefined}>${n.text}</li>`)}
          ${typing || s.agentTyping ? html`<li class="rz-typing" data-testid="resonanz-typing">${
            typing ? T.bot : s.agentTyping.name || T.agent} ${T.typing}</li>` : null}
        </ol>
        <div class="rz-extensions" data-slot="extensions" ref=${extSlot}></div>
        <form class="rz-form" onSubmit=${submit}>
          <label for="rz-input" class="rz-sr">${T.label}</label>
          <input id="rz-input" ref=${inputRef} type="text" autocomplete="off" maxlength="4096"
                 placeholder=${T.placeholder} data-testid="resonanz-input"
                 value=${text} onInput=${(e) => setText(e.currentTarget.value)} />
          <label class="rz-attach" title=${T.attach}>
            <span class="rz-sr">${T.attach}</span>${ICON_CLIP}
            <input type="file" accept="image/png,image/jpeg,image/gif,image/webp,application/pdf" data-testid="resonanz-file"
                   disabled=${!s.connected || s.uploading} onChange=${(e) => { const f = e.currentTarget.files[0]; e.currentTarget.value = ""; upload(f, T); }} />
          </label>
          <button type="submit" data-testid="resonanz-send">${T.send}</button>
        </form>
      </section>
    </div>`;
}

export function mount(container, options) {
  render(html`<${Chat} ...${options} />`, container);
}

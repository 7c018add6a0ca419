/*
 * Resonanz web chat widget. Plain JavaScript, no build step, no dependencies.
 *
 *   <script src="https://your-gateway.example/webchat/widget.js" defer></script>
 *
 * Options (data attributes on the script tag):
 *   data-resonanz-url="https://gateway.example"  gateway base URL (default: where the script came from)
 *   data-open="true"                              start open, filling the page (used by /chat)
 *   data-user-id, data-user-signature             a signed host identity: the site's user id and
 *                                                 HMAC-SHA256(user id, shared secret) in hex
 *
 * Modules (continue.js: "continue on another device") hook in through window.ResonanzChat and
 * the "resonanz:ready" event (sent on every history frame).
 *
 * Every text from the customer, the bot or an agent is rendered with textContent, never as HTML.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var base = (script && script.getAttribute("data-resonanz-url")) ||
    (script && script.src ? new URL(script.src, location.href).origin : location.origin);
  var startOpen = script && script.getAttribute("data-open") === "true";
  var lang = (navigator.language || "de").slice(0, 2) === "en" ? "en" : "de";
  var T = {
    de: { title: "Kundenservice", placeholder: "Ihre Nachricht…", send: "Senden", open: "Chat öffnen",
      close: "Chat schließen", offline: "Verbindung wird hergestellt…", label: "Nachricht",
      bot: "Assistent", agent: "Mitarbeiter/in", system: "Hinweis", customer: "Sie" },
    en: { title: "Customer service", placeholder: "Your message…", send: "Send", open: "Open chat",
      close: "Close chat", offline: "Connecting…", label: "Message",
      bot: "Assistant", agent: "Agent", system: "Notice", customer: "You" }
  }[lang];

  // The session token is issued by the server (never made up here): the first hello goes without
  // one and the answer's "session" frame carries it. It is kept for reloads and other tabs of
  // this site; the server forgets it after some days without use, and then issues a new one.
  var STORAGE_KEY = "resonanz.token";
  var memoryToken = null;  // when storage is disabled, the session lasts this page
  try { localStorage.removeItem("resonanz.session"); } catch (e) { /* the old browser-made id */ }

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
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // --- styles ------------------------------------------------------------------------------
  var css = el("link", { rel: "stylesheet", href: base + "/webchat/widget.css" });
  document.head.appendChild(css);

  // --- DOM ---------------------------------------------------------------------------------
  var root = el("div", { "class": "rz-root" + (startOpen ? " rz-full" : ""), "data-testid": "resonanz-widget" });
  var launcher = el("button", { type: "button", "class": "rz-launcher", "aria-label": T.open,
    "data-testid": "resonanz-launcher" }, "💬");
  var panel = el("section", { "class": "rz-panel", role: "dialog", "aria-label": T.title });
  var header = el("header", { "class": "rz-header" });
  header.appendChild(el("span", { "class": "rz-title" }, T.title));
  var status = el("span", { "class": "rz-status", "data-testid": "resonanz-status", "aria-live": "polite" }, T.offline);
  header.appendChild(status);
  var closeBtn = el("button", { type: "button", "class": "rz-close", "aria-label": T.close }, "×");
  header.appendChild(closeBtn);
  var log = el("ol", { "class": "rz-log", "aria-live": "polite", "data-testid": "resonanz-log" });
  var typing = el("li", { "class": "rz-typing", "data-testid": "resonanz-typing", hidden: "" }, "…");
  var form = el("form", { "class": "rz-form" });
  var inputId = "rz-input-" + Math.random().toString(36).slice(2);
  form.appendChild(el("label", { "for": inputId, "class": "rz-sr" }, T.label));
  var input = el("input", { id: inputId, type: "text", autocomplete: "off", maxlength: "4096",
    placeholder: T.placeholder, "data-testid": "resonanz-input" });
  var sendBtn = el("button", { type: "submit", "data-testid": "resonanz-send" }, T.send);
  form.appendChild(input);
  form.appendChild(sendBtn);
  panel.appendChild(header);
  panel.appendChild(log);
  panel.appendChild(form);
  root.appendChild(launcher);
  root.appendChild(panel);

  function setOpen(open) {
    root.classList.toggle("rz-open", open);
    if (open) input.focus();
  }
  launcher.addEventListener("click", function () { setOpen(true); });
  closeBtn.addEventListener("click", function () { setOpen(false); });

  // --- rendering ---------------------------------------------------------------------------
  var shown = {};  // message ids already on screen (history and live frames may overlap)

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function render(msg) {
    if (msg.id && shown[msg.id]) return;
    if (msg.id) shown[msg.id] = true;
    var author = msg.author || (msg.direction === "in" ? "customer" : "bot");
    var item = el("li", { "class": "rz-msg rz-" + author, "data-testid": "resonanz-message",
      "data-author": author });
    item.appendChild(el("span", { "class": "rz-author" }, T[author] || author));
    item.appendChild(el("p", { "class": "rz-text" }, msg.text));
    (msg.attachments || []).forEach(function (a) {
      // The gateway stores its own pictures as /media/… when no public URL is configured:
      // they live on the gateway, not on the page embedding the widget.
      var src = /^https?:\/\//.test(a.url) ? a.url : /^\/media\/[A-Za-z0-9_.-]+$/.test(a.url) ? base + a.url : null;
      if (a.kind === "image" && src) {
        item.appendChild(el("img", { "class": "rz-image", src: src, alt: a.name || "" }));
      }
    });
    if (msg.buttons && msg.buttons.length && author !== "customer") {
      var row = el("div", { "class": "rz-buttons" });
      msg.buttons.forEach(function (b) {
        var btn = el("button", { type: "button", "class": "rz-button", "data-testid": "resonanz-button" }, b.title);
        btn.addEventListener("click", function () { submit(b.payload, b.title); });
        row.appendChild(btn);
      });
      item.appendChild(row);
    }
    log.insertBefore(item, typing);
    scrollDown();
  }

  // --- connection --------------------------------------------------------------------------
  var ws = null;
  var ready = false;
  var backoff = 500;
  var pending = [];  // frames not yet acknowledged: resent (same client_id) after a reconnect

  function wsUrl() {
    var u = new URL("/webchat/ws", base);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    return u.toString();
  }

  function connect() {
    ws = new WebSocket(wsUrl());
    ws.addEventListener("open", function () {
      backoff = 500;
      var hello = { type: "hello", language: lang };
      var userId = script && script.getAttribute("data-user-id");
      var signature = script && script.getAttribute("data-user-signature");
      if (userId && signature) hello.identity = { user_id: userId, signature: signature };
      var token = loadToken();
      if (token) hello.token = token;
      ws.send(JSON.stringify(hello));
    });
    ws.addEventListener("message", function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.type === "session") {
        saveToken(frame.token);
      } else if (frame.type === "history") {
        ready = true;
        status.textContent = "";
        root.setAttribute("data-state", frame.state || "new");
        (frame.messages || []).forEach(render);
        pending.forEach(function (f) { ws.send(JSON.stringify(f)); });
        window.ResonanzChat.ready = true;
        document.dispatchEvent(new CustomEvent("resonanz:ready", { detail: { conversation: frame.conversation_id } }));
      } else if (frame.type === "message") {
        render(frame);
        if (!pending.length) typing.hidden = true;
      } else if (frame.type === "ack") {
        pending = pending.filter(function (f) { return f.client_id !== frame.client_id; });
        if (frame.message_id) shown[frame.message_id] = true;
        root.setAttribute("data-state", frame.state);
        if (!pending.length) typing.hidden = true;
      } else if (frame.type === "error" && frame.code === "session_invalid") {
        saveToken(null);  // expired or unknown: the reconnect asks for a new session
      } else if (frame.type === "error") {
        if (frame.client_id) {
          pending = pending.filter(function (f) { return f.client_id !== frame.client_id; });
        }
        typing.hidden = true;
        var item = el("li", { "class": "rz-msg rz-error", "data-testid": "resonanz-error", role: "alert" }, frame.error);
        log.insertBefore(item, typing);
        scrollDown();
      }
    });
    ws.addEventListener("close", function (event) {
      ready = false;
      status.textContent = T.offline;
      if (event.code === 4401) {
        saveToken(null);
        setTimeout(connect, 0);  // a new session at once
        return;
      }
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 15000);
    });
  }

  function submit(text, display) {
    text = (text || "").trim();
    if (!text) return;
    var frame = { type: "message", text: text, client_id: clientId() };
    if (display) frame.display = display;
    render({ author: "customer", text: display || text });
    pending.push(frame);
    typing.hidden = false;
    scrollDown();
    if (ready && ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    input.value = "";
    submit(text);
  });

  log.appendChild(typing);
  // The hook for modules kept in files of their own (continue.js).
  window.ResonanzChat = { base: base, lang: lang, token: loadToken, submit: submit, header: header, log: log, typing: typing };
  var modules = el("script", { src: base + "/webchat/continue.js", defer: "" });
  function mount() {
    document.head.appendChild(modules);
    document.body.appendChild(root);
    if (startOpen) setOpen(true);
    connect();
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();

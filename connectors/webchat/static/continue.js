/*
 * "Continue on another device" for the Resonanz web chat (resonanz/continuity.py). Loaded by
 * widget.js and hooked in through window.ResonanzChat; kept apart so the chat UI can change
 * without it.
 *
 *  - A header button asks the gateway for a single-use code (POST /webchat/continue with the
 *    session token) and shows a QR code (an <img> of the server's SVG) and links: Telegram,
 *    WhatsApp, another browser.
 *  - Opened as /chat?continue=<code>, the page sends the code once the chat is ready, and takes
 *    it out of the address bar.
 *
 * Every text is set with textContent; links are set as attributes, never as HTML.
 */
(function () {
  "use strict";

  var chat = window.ResonanzChat;
  if (!chat) return;
  var CODE = /^rz[A-Za-z0-9_-]{16}$/;
  var T = {
    de: { button: "Auf anderem Gerät weiter", title: "Auf einem anderen Gerät weitermachen",
      hint: "Scannen Sie den Code mit dem Handy oder öffnen Sie einen Link. Er gilt einmal, bis {time}.",
      qr: "QR-Code zum Weitermachen auf einem anderen Gerät", telegram: "In Telegram weiter",
      whatsapp: "In WhatsApp weiter", browser: "Link für einen anderen Browser", code: "Code",
      close: "Schließen", empty: "Schreiben Sie zuerst eine Nachricht – dann können Sie woanders weitermachen.",
      failed: "Das hat nicht geklappt. Bitte versuchen Sie es gleich noch einmal.", prefill: "Gespräch fortsetzen: " },
    en: { button: "Continue on another device", title: "Continue on another device",
      hint: "Scan the code with your phone or open a link. It works once, until {time}.",
      qr: "QR code to continue on another device", telegram: "Continue in Telegram",
      whatsapp: "Continue in WhatsApp", browser: "Link for another browser", code: "Code",
      close: "Close", empty: "Send a message first – then you can continue elsewhere.",
      failed: "That did not work. Please try again in a moment.", prefill: "Continue my conversation: " }
  }[chat.lang];

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // --- redeeming: /chat?continue=<code> --------------------------------------------------------
  var pendingCode = null;
  try {
    var params = new URLSearchParams(location.search);
    var given = params.get("continue");
    if (given && CODE.test(given)) {
      pendingCode = given;
      params.delete("continue");
      var rest = params.toString();
      history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
    }
  } catch (e) { /* no URL API: nothing to redeem */ }

  function redeem() {
    if (!pendingCode) return;
    var code = pendingCode;
    pendingCode = null;
    chat.submit(T.prefill + code);
  }
  document.addEventListener("resonanz:ready", redeem);
  if (chat.ready) redeem();

  // --- offering: the header button and its panel ------------------------------------------------
  var button = el("button", { type: "button", "class": "rz-continue", "data-testid": "resonanz-continue",
    "aria-expanded": "false" }, "📱");
  button.setAttribute("aria-label", T.button);
  button.setAttribute("title", T.button);
  var closeButton = chat.header.querySelector(".rz-close");
  chat.header.insertBefore(button, closeButton);

  var panel = null;
  function hide() {
    if (panel) { panel.remove(); panel = null; }
    button.setAttribute("aria-expanded", "false");
    button.focus();
  }

  function show(offer) {
    if (panel) panel.remove();
    panel = el("li", { "class": "rz-msg rz-system rz-continue-panel" });
    var box = el("section", { "aria-label": T.title, "data-testid": "resonanz-continue-panel" });
    panel.appendChild(box);
    box.appendChild(el("strong", {}, T.title));
    var until = new Date(offer.expires_at);
    var time = until.toLocaleTimeString(chat.lang === "en" ? "en-GB" : "de-DE", { hour: "2-digit", minute: "2-digit" });
    box.appendChild(el("p", { "class": "rz-text" }, T.hint.replace("{time}", time)));
    box.appendChild(el("img", { src: offer.qr, alt: T.qr, "class": "rz-qr", width: "164", height: "164",
      "data-testid": "resonanz-continue-qr" }));
    var list = el("ul", { "class": "rz-continue-links" });
    ["telegram", "whatsapp", "browser"].forEach(function (kind) {
      var url = offer.links && offer.links[kind];
      if (!url || !/^https?:\/\//.test(url)) return;
      var item = el("li");
      item.appendChild(el("a", { href: url, target: "_blank", rel: "noopener noreferrer",
        "data-testid": "resonanz-continue-" + kind }, T[kind]));
      list.appendChild(item);
    });
    box.appendChild(list);
    box.appendChild(el("p", { "class": "rz-text" }, T.code + ": " + offer.code));
    var close = el("button", { type: "button", "class": "rz-button" }, T.close);
    close.addEventListener("click", hide);
    box.appendChild(close);
    chat.log.insertBefore(panel, chat.typing);
    chat.log.scrollTop = chat.log.scrollHeight;
    button.setAttribute("aria-expanded", "true");
    close.focus();
  }

  function notice(text) {
    var item = el("li", { "class": "rz-msg rz-error" });
    item.appendChild(el("div", { role: "alert", "data-testid": "resonanz-error" }, text));
    chat.log.insertBefore(item, chat.typing);
  }

  button.addEventListener("click", function () {
    var token = chat.token();
    if (!token) { notice(T.empty); return; }
    fetch(chat.base + "/webchat/continue?language=" + chat.lang, {
      method: "POST", headers: { Authorization: "Bearer " + token }, credentials: "omit"
    }).then(function (r) {
      if (r.status === 409) { notice(T.empty); return null; }
      if (!r.ok) { notice(T.failed); return null; }
      return r.json();
    }).then(function (offer) { if (offer) show(offer); })
      .catch(function () { notice(T.failed); });
  });
})();

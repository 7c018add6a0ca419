/*
 * "Continue on another device" for the Resonanz web chat (resonanz/continuity.py): an optional
 * module (EXTENSIONS in connectors/webchat/__init__.py). app.mjs imports it and calls
 * `mount(slot, api)` with a slot inside the chat's Shadow DOM and
 * api = {base, send(text, display), language(), token(), state()}. Its styles are in app.css
 * (the page's CSP allows no inline <style>).
 *
 *  - A button asks the gateway for a single-use code (POST /webchat/continue with the session
 *    token) and shows a QR code (an <img> of the server's SVG) and links: Telegram, WhatsApp,
 *    another browser.
 *  - Opened as /chat?continue=<code>, the page sends the code once the chat is ready (the chat
 *    mounts this module after its first history frame) and takes it out of the address bar.
 *
 * Every text is a Preact text node; links are attributes, never HTML.
 */
import { h, render } from "./vendor/preact.mjs";
import { useEffect, useRef, useState } from "./vendor/hooks.mjs";
import htm from "./vendor/htm.mjs";

const html = htm.bind(h);
const CODE = /^rz[A-Za-z0-9_-]{16}$/;
const KINDS = ["telegram", "whatsapp", "browser"];
const LABELS = {
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
    failed: "That did not work. Please try again in a moment.", prefill: "Continue my conversation: " },
};
// An SVG icon (an emoji needs a font the customer's system may not have).
const ICON_PHONE = html`<svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false">
  <rect x="6" y="2" width="12" height="20" rx="2" fill="none" stroke="currentColor" stroke-width="2"/>
  <circle cx="12" cy="18" r="1.2" fill="currentColor"/></svg>`;

function labels(api) {
  return LABELS[api.language && api.language() === "en" ? "en" : "de"];
}

/** The code in the address bar (?continue=rz...), taken out of it; null if there is none. */
export function takeCode(win = window) {
  try {
    const url = new URL(win.location.href);
    const given = url.searchParams.get("continue");
    if (!given) return null;
    url.searchParams.delete("continue");
    win.history.replaceState(win.history.state, "", url.pathname + url.search + url.hash);
    return CODE.test(given) ? given : null;
  } catch (e) {
    return null; // no URL API: nothing to redeem
  }
}

function Continue({ api }) {
  const T = labels(api);
  const lang = api.language && api.language() === "en" ? "en" : "de";
  const [offer, setOffer] = useState(null);
  const [notice, setNotice] = useState(null);
  const [busy, setBusy] = useState(false);
  const buttonRef = useRef(null);
  const closeRef = useRef(null);

  useEffect(() => { if (offer && closeRef.current) closeRef.current.focus(); }, [offer]);

  async function ask() {
    if (busy) return;
    setNotice(null);
    const token = api.token();
    if (!token) { setNotice(T.empty); return; }
    setBusy(true);
    try {
      const r = await fetch(`${api.base}/webchat/continue?language=${lang}`, {
        method: "POST", headers: { Authorization: `Bearer ${token}` }, credentials: "omit" });
      if (r.status === 409) setNotice(T.empty);
      else if (!r.ok) setNotice(T.failed);
      else setOffer(await r.json());
    } catch (e) {
      setNotice(T.failed);
    } finally {
      setBusy(false);
    }
  }
  function close() {
    setOffer(null);
    setTimeout(() => buttonRef.current && buttonRef.current.focus(), 0);
  }

  let panel = null;
  if (offer) {
    const until = new Date(offer.expires_at);
    const time = isNaN(until) ? "" : until.toLocaleTimeString(lang === "en" ? "en-GB" : "de-DE", { hour: "2-digit", minute: "2-digit" });
    const qr = typeof offer.qr === "string" && offer.qr.startsWith("data:image/svg+xml") ? offer.qr : null;
    panel = html`
      <section class="rz-continue-panel" aria-label=${T.title} data-testid="resonanz-continue-panel">
        <strong class="rz-continue-title">${T.title}</strong>
        <p class="rz-text">${T.hint.replace("{time}", time)}</p>
        ${qr ? html`<img class="rz-qr" src=${qr} alt=${T.qr} width="164" height="164" data-testid="resonanz-continue-qr" />` : null}
        <ul class="rz-continue-links">
          ${KINDS.map((kind) => {
            const url = offer.links && offer.links[kind];
            if (!url || !/^https?:\/\//.test(url)) return null;
            return html`<li key=${kind}><a href=${url} target="_blank" rel="noopener noreferrer"
                data-testid=${`resonanz-continue-${kind}`}>${T[kind]}</a></li>`;
          })}
        </ul>
        <p class="rz-text">${T.code}: <span class="rz-continue-code">${offer.code}</span></p>
        <button type="button" class="rz-button" ref=${closeRef} data-testid="resonanz-continue-close" onClick=${close}>${T.close}</button>
      </section>`;
  }
  return html`
    <div class="rz-continue" lang=${lang}>
      ${panel}
      ${notice ? html`<p class="rz-continue-notice" role="alert" data-testid="resonanz-error">${notice}</p>` : null}
      <button type="button" class="rz-continue-button" ref=${buttonRef} data-testid="resonanz-continue"
              aria-expanded=${offer ? "true" : "false"} disabled=${busy} onClick=${() => (offer ? close() : ask())}>
        ${ICON_PHONE}<span>${T.button}</span>
      </button>
    </div>`;
}

export function mount(slot, api) {
  // The chat mounts this module once its first history frame arrived: it is ready to send.
  const code = takeCode();
  if (code) api.send(labels(api).prefill + code);
  const draw = () => render(html`<${Continue} api=${api} />`, slot);
  slot.addEventListener("resonanz:update", draw); // the conversation's language changed
  draw();
}

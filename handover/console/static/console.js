/*
 * Resonanz agent console: Preact + htm, vendored and served by the gateway (/static/vendor), no
 * build step (docs/console.md says why). It talks only to the agent API (/api/v1, see
 * /api/openapi.json) and its live stream.
 *
 * Customer, bot and agent text is only ever a Preact text node: never HTML.
 */
import { h, render } from "/static/vendor/preact.mjs";
import { useCallback, useEffect, useMemo, useRef, useState } from "/static/vendor/hooks.mjs";
import htm from "/static/vendor/htm.mjs";
import { LANG, ago, channelLabel, identityParts, label, t, when } from "/console/static/i18n.js";

const html = htm.bind(h);

// The roles an admin can give (handover/schemas.py Role).
const ROLES = ["agent", "admin", "supervisor", "trainer"];

/* Pages of the console, shown in the navigation. Other pages (reports, review queue …) add an
 * entry here: {href, de, en, roles: the roles that see it (default: everyone)}. */
export const PAGES = [
  { href: "/console", de: "Gespräche", en: "Conversations" },
  { href: "/console/review", de: "Review", en: "Review", roles: ["admin", "trainer"], testid: "review-link" },
  { href: "/console/reports", de: "Berichte", en: "Reports", roles: ["admin", "supervisor"], testid: "reports-link" },
  { href: "/console/customers", de: "Kunden", en: "Customers", testid: "customers-link" },
];

const PAGE_SIZE = 25;
const QUEUED = ["waiting", "offered"];
const FINAL = ["closed", "returned", "cancelled"];

// What tests and the screenshots script may observe (no secrets in it).
const probe = (window.resonanzConsole = { sounds: 0, notifications: [] });

// --- the API --------------------------------------------------------------------------------

let csrf = null;
let onUnauthenticated = () => {};

async function api(method, path, body, isForm) {
  const headers = {};
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const opts = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    if (isForm) opts.body = body;
    else { headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  }
  const resp = await fetch(path, opts);
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 401 && path !== "/api/v1/login") onUnauthenticated();
  if (!resp.ok) {
    const e = new Error(data.error || "HTTP " + resp.status);
    e.status = resp.status;
    throw e;
  }
  return data;
}

// --- small helpers --------------------------------------------------------------------------

function customerName(c, channel) {
  return (c && (c.display || c.name)) || t("visitor", { channel: channelLabel(channel) || "?" });
}

function activity(h) {
  return Date.parse((h.last_message && h.last_message.timestamp) || h.created_at || 0) || 0;
}

function sorted(items, sort) {
  const out = items.slice();
  if (sort === "wait") out.sort((a, b) => b.waiting_seconds - a.waiting_seconds);
  else out.sort((a, b) => activity(b) - activity(a));
  // Offers to this agent come first: they expire if nobody answers them.
  return [...out.filter((x) => x.offered_to_me), ...out.filter((x) => !x.offered_to_me)];
}

function valueText(v) {
  if (v === true) return t("yes");
  if (v === false) return t("no");
  if (Array.isArray(v)) return v.map(valueText).join(", ");
  if (v && typeof v === "object") return Object.entries(v).map(([k, x]) => k.replace(/_/g, " ") + ": " + valueText(x)).join("; ");
  return String(v);
}

const HEXISH = /^[0-9a-f]{16,}$/i;

let audio = null;
function beep() {
  probe.sounds += 1;
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.08;
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.15);
  } catch (e) { /* no audio device: the title and desktop notices still work */ }
}

function usePrefs() {
  const read = () => {
    try { return { sound: true, desktop: false, title: true, ...JSON.parse(localStorage.getItem("resonanz.notify") || "{}") }; }
    catch (e) { return { sound: true, desktop: false, title: true }; }
  };
  const [prefs, setPrefs] = useState(read);
  const set = (key, value) => {
    const next = { ...prefs, [key]: value };
    localStorage.setItem("resonanz.notify", JSON.stringify(next));
    setPrefs(next);
    if (key === "desktop" && value && "Notification" in window && Notification.permission === "default") {
      Notification.requestPermission();
    }
  };
  return [prefs, set];
}

// --- the application ------------------------------------------------------------------------

function App() {
  const [session, setSession] = useState(undefined);
  useEffect(() => {
    document.documentElement.lang = LANG;
    document.title = t("app.title");
    onUnauthenticated = () => setSession(null);
    api("GET", "/api/v1/me").then((d) => { csrf = d.csrf_token; setSession(d); }).catch(() => setSession(null));
  }, []);
  if (session === undefined) return null;
  if (!session) return html`<${Login} onDone=${(d) => { csrf = d.csrf_token; setSession(d); }} />`;
  if (session.agent.role === "trainer") { location.assign("/console/review"); return null; }  // trainers only review
  return html`<${Console} key=${session.agent.id + session.csrf_token} me=${session.agent} onLogout=${() => setSession(null)} />`;
}

function Login({ onDone }) {
  const [error, setError] = useState("");
  const submit = (ev) => {
    ev.preventDefault();
    setError("");
    const f = ev.currentTarget;
    api("POST", "/api/v1/login", { email: f.email.value, password: f.password.value })
      .then(onDone).catch((e) => setError(e.message));
  };
  return html`<main class="login" id="login">
    <form onSubmit=${submit}>
      <h1>Resonanz</h1>
      <label>${t("login.email")} <input type="email" name="email" data-testid="login-email" autocomplete="username" required /></label>
      <label>${t("login.password")} <input type="password" name="password" data-testid="login-password" autocomplete="current-password" required /></label>
      <button type="submit" data-testid="login-submit">${t("login.submit")}</button>
      <p class="error" data-testid="login-error" role="alert">${error}</p>
    </form>
  </main>`;
}

function Console({ me: initialMe, onLogout }) {
  const [me, setMe] = useState(initialMe);
  const [meta, setMeta] = useState(null);
  const [lists, setLists] = useState({ queue: [], mine: [], closed: [], bot: [] });
  const [currentId, setCurrentId] = useState(null);
  const [detail, setDetail] = useState(null);
  const [error, setError] = useState("");
  const [live, setLive] = useState(false);
  const [view, setView] = useState("desk");
  const [filters, setFilters] = useState({ queue: "", language: "", reason: "", channel: "" });
  const [sort, setSort] = useState("activity");
  const [search, setSearch] = useState({ q: "", results: null });
  const [unseen, setUnseen] = useState(0);
  const [prefs, setPref] = usePrefs();
  const [canned, setCanned] = useState([]);

  const ref = useRef({});
  ref.current = { currentId, detail, lists, prefs, me };
  const offersSeen = useRef(null);

  // --- notifications ---
  const notify = useCallback((kind, title, body) => {
    const p = ref.current.prefs;
    probe.notifications.push({ kind, title, body, sound: p.sound, desktop: p.desktop, title_badge: p.title });
    if (probe.notifications.length > 50) probe.notifications.shift();  // a long shift keeps only the latest
    if (p.sound) beep();
    if (p.desktop && "Notification" in window && Notification.permission === "granted") {
      try { new Notification(title, { body, tag: "resonanz-" + kind }); } catch (e) { /* not allowed here */ }
    }
    if (p.title) setUnseen((n) => n + 1);
  }, []);
  useEffect(() => {
    document.title = (unseen && prefs.title ? "(" + unseen + ") " : "") + t("app.title");
  }, [unseen, prefs.title]);
  useEffect(() => {
    const seen = () => { if (!document.hidden) setUnseen(0); };
    window.addEventListener("focus", seen);
    return () => window.removeEventListener("focus", seen);
  }, []);

  // --- lists ---
  const timer = useRef(null);
  const dirty = useRef(false);
  const asked = useRef({ sent: 0, applied: 0 });
  const refresh = useCallback(() => {
    if (timer.current) { dirty.current = true; return; }
    timer.current = setTimeout(() => { timer.current = null; if (dirty.current) { dirty.current = false; refresh(); } }, 250);
    const seq = ++asked.current.sent;
    Promise.all([
      api("GET", "/api/v1/handovers?view=queue"), api("GET", "/api/v1/handovers?view=mine"),
      api("GET", "/api/v1/handovers?view=all"), api("GET", "/api/v1/conversations?state=bot"),
    ]).then(([q, m, a, b]) => {
      // Answers may come back out of order on a slow network: an older one never replaces a newer.
      if (seq < asked.current.applied) return;
      asked.current.applied = seq;
      const next = {
        queue: q.handovers, mine: m.handovers, bot: b.conversations,
        closed: a.handovers.filter((x) => FINAL.includes(x.status)),
      };
      // Real offers only: a notice for each offer to this agent not seen before.
      const offered = new Set(next.queue.filter((x) => x.offered_to_me).map((x) => x.id));
      if (offersSeen.current !== null) {
        for (const x of next.queue) {
          if (x.offered_to_me && !offersSeen.current.has(x.id)) {
            notify("offer", t("notify.offer"), customerName(x.customer, x.channel) + ": " + ((x.preview && x.preview.text) || ""));
          }
        }
      }
      offersSeen.current = offered;
      setLists(next);
    }).catch(() => {});
  }, [notify]);

  // The latest live state of each handover, numbered: a detail fetched before an event (a rating
  // that arrived while the fetch was under way) must not overwrite what the event said.
  const events = useRef({ n: 0, byId: {} });
  const open = useCallback((id) => {
    setCurrentId(id);
    setError("");
    setView("desk");
    setUnseen(0);
    const started = events.current.n;
    return api("GET", "/api/v1/handovers/" + id).then((d) => {
      const newer = events.current.byId[id];
      setDetail(newer && newer.n > started ? { ...d, handover: newer.handover } : d);
      refresh();
    }).catch((e) => setError(e.message));
  }, [refresh]);

  useEffect(() => {
    api("GET", "/api/v1/meta").then(setMeta).catch(() => {});
    api("GET", "/api/v1/canned-responses").then((d) => setCanned(d.canned_responses)).catch(() => setCanned([]));
    refresh();
  }, []);

  // --- the live stream ---
  useEffect(() => {
    let ws = null, stopped = false, backoff = 500;
    const connect = () => {
      const url = new URL("/api/v1/stream", location.href);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      ws = new WebSocket(url.toString());
      ws.onopen = () => { backoff = 500; setLive(true); refresh(); };
      ws.onmessage = (ev) => {
        let e;
        try { e = JSON.parse(ev.data); } catch (x) { return; }
        const cur = ref.current;
        if (e.type === "handover") {
          events.current.n += 1;
          events.current.byId[e.handover.id] = { n: events.current.n, handover: e.handover };
          refresh();
          if (cur.detail && e.handover.id === cur.detail.handover.id) setDetail((d) => d && { ...d, handover: e.handover });
        } else if (e.type === "message") {
          const m = e.message;
          if (cur.detail && e.conversation_id === cur.detail.handover.conversation_id) {
            setDetail((d) => {
              if (!d) return d;
              const at = d.messages.findIndex((x) => x.id === m.id);
              const messages = d.messages.slice();
              if (at >= 0) messages[at] = m; else messages.push(m);
              return { ...d, messages };
            });
          }
          // Mine by the latest live event as well as by the list: the list is refreshed a moment
          // after the handover event that made it mine, and a message may come in between.
          const live = Object.values(events.current.byId)
            .filter((x) => x.handover.conversation_id === e.conversation_id)
            .sort((a, b) => b.n - a.n)[0];
          const mine = live
            ? (live.handover.status === "assigned" && live.handover.agent && live.handover.agent.id === cur.me.id ? live.handover : null)
            : cur.lists.mine.find((x) => x.conversation_id === e.conversation_id);
          if (mine && m.author === "customer" && m.direction === "in") {
            notify("message", t("notify.message") + " · " + customerName(mine.customer, mine.channel), m.text || "");
          }
          refresh();
        } else if (e.type === "handover_removed") {
          if (cur.currentId === e.id) { setCurrentId(null); setDetail(null); }
          refresh();
        } else if (e.type === "resync") {
          refresh();
          if (cur.currentId) open(cur.currentId);
        }
      };
      ws.onclose = (ev) => {
        setLive(false);
        if (stopped) return;
        if (ev.code === 1008) { api("GET", "/api/v1/me").then(() => setTimeout(connect, backoff)).catch(() => {}); return; }
        setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, 15000);
      };
    };
    connect();
    return () => { stopped = true; if (ws) { ws.onclose = null; ws.close(); } };
  }, []);

  // --- actions ---
  const h0 = detail && detail.handover;
  const accept = () => h0 && api("POST", "/api/v1/handovers/" + h0.id + "/accept").then(() => open(h0.id)).catch((e) => setError(e.message));
  const takeOver = (c) => api("POST", "/api/v1/conversations/" + c.id + "/take-over").then((r) => open(r.handover.id)).catch((e) => setError(e.message));

  // Alt+J next conversation, Alt+A accept, Alt+N note, Alt+C close (announced in the page).
  useEffect(() => {
    const onKey = (ev) => {
      if (!ev.altKey || ev.ctrlKey || ev.metaKey) return;
      const key = ev.key.toLowerCase();
      const cur = ref.current;
      if (key === "j" || ev.code === "KeyJ") {
        const all = [...cur.lists.mine, ...cur.lists.queue];
        if (!all.length) return;
        const at = all.findIndex((x) => x.id === cur.currentId);
        open(all[(at + 1) % all.length].id);
      } else if (key === "a" || ev.code === "KeyA") {
        document.querySelector('[data-testid="accept"]')?.click();
      } else if (key === "n" || ev.code === "KeyN") {
        document.getElementById("note-input")?.focus();
      } else if (key === "c" || ev.code === "KeyC") {
        const d = document.getElementById("close-details");
        if (d) { d.open = true; document.getElementById("close-resolution")?.focus(); }
      } else return;
      ev.preventDefault();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [open]);

  const logout = () => api("POST", "/api/v1/logout").catch(() => {}).finally(onLogout);
  const setStatus = (ev) => api("PUT", "/api/v1/me/status", { status: ev.currentTarget.value })
    .then((d) => { setMe(d.agent || me); refresh(); }).catch((e) => setError(e.message));

  const runSearch = (ev) => {
    ev.preventDefault();
    const q = ev.currentTarget.q.value.trim();
    if (q.length < 2) { setSearch({ q: "", results: null }); return; }
    api("GET", "/api/v1/search?q=" + encodeURIComponent(q)).then((d) => setSearch({ q, results: d.handovers }))
      .catch((e) => setError(e.message));
  };

  return html`
    <div class=${"app" + (detail && view === "desk" ? " has-conv" : "")} id="app">
      <header class="top">
        <strong class="brand">Resonanz</strong>
        <nav class="pages" aria-label=${t("nav.label")} data-testid="pages">
          ${PAGES.filter((p) => !p.roles || p.roles.includes(me.role)).map((p) => html`
            <a href=${p.href} data-testid=${p.testid} aria-current=${location.pathname === p.href ? "page" : undefined}>${p[LANG] || p.de}</a>`)}
        </nav>
        <button type="button" class="me-toggle" data-testid="profile-toggle" aria-label=${t("me.title") + ": " + me.display_name}
            aria-expanded=${view === "me" ? "true" : "false"} onClick=${() => setView(view === "me" ? "desk" : "me")}>
          ${me.avatar_url && html`<img class="avatar-small" src=${me.avatar_url} alt="" width="24" height="24" />`}
          <span data-testid="me-name">${me.display_name}</span>
        </button>
        <label>${t("status")}
          <select data-testid="status-select" value=${me.status} onChange=${setStatus}>
            ${["online", "away", "offline"].map((s) => html`<option value=${s}>${t("status." + s)}</option>`)}
          </select>
        </label>
        <fieldset class="notify">
          <legend>${t("notify.label")}</legend>
          ${["sound", "desktop", "title"].map((k) => html`
            <label><input type="checkbox" data-testid=${"notify-" + k} checked=${prefs[k]}
              onChange=${(ev) => setPref(k, ev.currentTarget.checked)} /> ${t("notify." + k)}</label>`)}
        </fieldset>
        ${me.role === "admin" && html`<button type="button" data-testid="admin-toggle"
            onClick=${() => setView(view === "admin" ? "desk" : "admin")}>${t("admin")}</button>`}
        <button type="button" data-testid="logout" onClick=${logout}>${t("logout")}</button>
        <span class="live" data-testid="live" role="status">${live ? "live" : t("offline")}</span>
      </header>
      <main class="cols">
        <${Lists} lists=${lists} meta=${meta} currentId=${currentId} open=${open} takeOver=${takeOver}
          filters=${filters} setFilters=${setFilters} sort=${sort} setSort=${setSort}
          search=${search} runSearch=${runSearch} clearSearch=${() => setSearch({ q: "", results: null })} />
        ${view === "me" ? html`<${MyProfile} me=${me} setMe=${setMe} />`
          : view === "admin" && me.role === "admin"
          ? html`<${Admin} />`
          : detail && html`
            <${Conversation} key=${detail.handover.id} detail=${detail} meta=${meta} me=${me} canned=${canned}
              error=${error} setError=${setError} open=${open} accept=${accept} back=${() => { setCurrentId(null); setDetail(null); }} />
            <${Context} detail=${detail} meta=${meta} />`}
        ${!detail && view === "desk" && error && html`<p class="error" role="alert">${error}</p>`}
      </main>
    </div>`;
}

// --- my profile: the picture customers see beside my name in the web chat -------------------

const AVATAR_MAX_BYTES = 1024 * 1024;  // as the server checks (resonanz/media.py MAX_AVATAR_BYTES)

function initials(name) {
  return (name || "").split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
}

function MyProfile({ me, setMe }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const refused = (e) => setError(e.status === 413 ? t("me.avatar.too_large") : e.status === 400 ? t("me.avatar.refused") : e.message);
  const done = (d) => { setMe(d.agent); setError(""); };
  const upload = (ev) => {
    const file = ev.currentTarget.files[0];
    ev.currentTarget.value = "";
    if (!file) return;
    if (file.size > AVATAR_MAX_BYTES) { setError(t("me.avatar.too_large")); return; }
    const body = new FormData();
    body.append("image", file, file.name);
    setBusy(true);
    api("PUT", "/api/v1/me/avatar", body, true).then(done).catch(refused).finally(() => setBusy(false));
  };
  const remove = () => {
    setBusy(true);
    api("DELETE", "/api/v1/me/avatar").then(done).catch(refused).finally(() => setBusy(false));
  };
  return html`<section class="admin me" id="my-profile" aria-labelledby="me-heading" data-testid="my-profile">
    <h2 id="me-heading">${t("me.title")}</h2>
    <p>${me.display_name} · ${me.email}</p>
    <h3>${t("me.avatar")}</h3>
    <div class="me-avatar">
      ${me.avatar_url
        ? html`<img class="avatar-large" src=${me.avatar_url} alt=${me.display_name} data-testid="my-avatar" width="96" height="96" />`
        : html`<span class="avatar-large initials" data-testid="my-initials" aria-hidden="true">${initials(me.display_name)}</span>`}
      <div>
        <p id="avatar-hint">${t(me.avatar_url ? "me.avatar.hint" : "me.avatar.none")}</p>
        <label for="avatar-file">${t(me.avatar_url ? "me.avatar.replace" : "me.avatar.upload")}</label>
        <input id="avatar-file" type="file" accept="image/png,image/jpeg,image/webp" data-testid="avatar-file"
          aria-describedby="avatar-hint" disabled=${busy} onChange=${upload} />
        ${me.avatar_url && html`<p><button type="button" data-testid="avatar-remove" disabled=${busy} onClick=${remove}>${t("me.avatar.remove")}</button></p>`}
      </div>
    </div>
    <p class="error" role="alert" data-testid="avatar-error">${error}</p>
  </section>`;
}

// --- the lists ------------------------------------------------------------------------------

function Lists({ lists, meta, currentId, open, takeOver, filters, setFilters, sort, setSort, search, runSearch, clearSearch }) {
  const [pages, setPages] = useState({});
  const all = [...lists.queue, ...lists.mine, ...lists.closed];
  const options = {
    queue: [...new Set(all.map((x) => x.queue && x.queue.name).filter(Boolean))].sort(),
    language: [...new Set(all.map((x) => x.customer.language).filter(Boolean))].sort(),
    reason: [...new Set(all.map((x) => x.reason))].sort(),
    channel: [...new Set([...all.map((x) => x.channel), ...lists.bot.map((c) => c.channel)].filter(Boolean))].sort(),
  };
  const names = {
    queue: (v) => v, language: (v) => label(meta, "lang", v), reason: (v) => label(meta, "reason", v), channel: channelLabel,
  };
  const keep = (x) => (!filters.queue || (x.queue && x.queue.name) === filters.queue)
    && (!filters.language || x.customer.language === filters.language)
    && (!filters.reason || x.reason === filters.reason)
    && (!filters.channel || x.channel === filters.channel);
  const keepBot = (c) => (!filters.channel || c.channel === filters.channel) && (!filters.language || c.language === filters.language)
    && !filters.queue && !filters.reason;

  const section = (key, items, testid, item) => {
    const shown = items.slice(0, pages[key] || PAGE_SIZE);
    return html`<section class="section" aria-labelledby=${"h-" + key}>
      <h2 id=${"h-" + key}>${t("section." + key)} <span class="count" data-testid=${"count-" + key}>${items.length}</span></h2>
      <ul data-testid=${key === "bot" ? "live-bot" : key}>
        ${shown.map(item)}
      </ul>
      ${!items.length && html`<p class="empty">${t("empty")}</p>`}
      ${items.length > shown.length && html`<button type="button" class="more" data-testid=${"more-" + key}
          onClick=${() => setPages({ ...pages, [key]: shown.length + PAGE_SIZE })}>${t("more", { n: items.length - shown.length })}</button>`}
    </section>`;
  };
  const handoverItem = (testid) => (x) => html`
    <li data-testid=${testid} data-id=${x.id} class=${x.id === currentId ? "active" : ""}>
      <button type="button" class="item" aria-current=${x.id === currentId ? "true" : undefined} onClick=${() => open(x.id)}>
        <span class="line"><strong>${customerName(x.customer, x.channel)}</strong>
          ${x.offered_to_me && html`<span class="badge offer" data-testid="offered-badge">${t("for_you")}</span>`}
          ${QUEUED.includes(x.status) && html`<span class="wait" data-testid="waiting">${ago(x.waiting_seconds)}</span>`}
          ${FINAL.includes(x.status) && x.resolution && html`<span class="badge">${label(meta, "resolution", x.resolution)}</span>`}
        </span>
        <span class="meta">${label(meta, "reason", x.reason)} · ${channelLabel(x.channel)}${x.queue ? " · " + x.queue.name : ""}</span>
        ${x.callback && html`<span class="meta callback" data-testid="list-callback">${t("cb." + x.callback.via)}: ${x.callback.contact}</span>`}
        ${x.preview && html`<span class="preview" data-testid="preview">${x.preview.text.slice(0, 90)}</span>`}
        ${x.rating && html`<span class="meta" data-testid="list-rating">★ ${x.rating}</span>`}
      </button>
    </li>`;
  const botItem = (c) => html`
    <li data-testid="live-item">
      <span class="line"><strong>${customerName(c.customer, c.channel)}</strong> <span class="meta">${channelLabel(c.channel)}</span></span>
      ${c.last_message && html`<span class="preview">${c.last_message.text.slice(0, 90)}</span>`}
      <button type="button" data-testid="take-over" onClick=${() => takeOver(c)}>${t("take_over")}</button>
    </li>`;

  return html`<nav class="lists" aria-label=${t("nav.conversations")}>
    <form class="search" role="search" onSubmit=${runSearch}>
      <label for="search-input" class="sr">${t("search.label")}</label>
      <input id="search-input" name="q" type="search" data-testid="search-input" placeholder=${t("search.placeholder")} minlength="2" />
      <button type="submit" data-testid="search-submit">${t("search.submit")}</button>
    </form>
    <div class="filters">
      ${["queue", "language", "reason", "channel"].map((k) => html`
        <label>${t("filter." + k)}
          <select data-testid=${"filter-" + k} value=${filters[k]} onChange=${(ev) => setFilters({ ...filters, [k]: ev.currentTarget.value })}>
            <option value="">${t("filter.all")}</option>
            ${options[k].map((v) => html`<option value=${v}>${names[k](v)}</option>`)}
          </select>
        </label>`)}
      <label>${t("sort")}
        <select data-testid="sort" value=${sort} onChange=${(ev) => setSort(ev.currentTarget.value)}>
          <option value="activity">${t("sort.activity")}</option>
          <option value="wait">${t("sort.wait")}</option>
        </select>
      </label>
    </div>
    ${search.results && html`<div class="search-results">
      ${section("search", search.results, "search-item", handoverItem("search-item"))}
      <button type="button" class="more" data-testid="search-clear" onClick=${clearSearch}>${t("search.clear")}</button>
    </div>`}
    ${section("queue", sorted(lists.queue.filter(keep), sort), "queue-item", handoverItem("queue-item"))}
    ${section("mine", sorted(lists.mine.filter(keep), sort), "mine-item", handoverItem("mine-item"))}
    ${section("bot", lists.bot.filter(keepBot), "live-item", botItem)}
    ${section("closed", lists.closed.filter(keep), "closed-item", handoverItem("closed-item"))}
  </nav>`;
}

// --- one conversation -----------------------------------------------------------------------

function Message({ m, customer, meta }) {
  const note = m.direction === "note";
  const who = note ? t("who.note") + (m.agent_name ? " · " + m.agent_name : "")
    : m.author === "customer" ? customer
    : m.author === "agent" ? (m.agent_name || t("who.agent")) : t("who." + m.author);
  const safe = (url) => /^(https?:\/\/[^\s]+|\/media\/[A-Za-z0-9_.-]+)$/.test(url || "");
  return html`<li data-testid="transcript-message" data-author=${m.author} data-direction=${m.direction} data-id=${m.id}>
    <span class="who">${who} · <time datetime=${m.timestamp} data-testid="message-time">${when(m.timestamp)}</time></span>
    <p>${m.text}</p>
    ${(m.status === "failed" || m.status === "unknown") && html`<p class="delivery-error" data-testid="delivery-error">
      ${(m.status === "failed" ? t("undelivered") : t("unclear")) + (m.error || "")}</p>`}
    ${m.location && html`<span class="parse">📍 ${m.location.latitude}, ${m.location.longitude}${m.location.label ? " · " + m.location.label : ""}</span>`}
    ${(m.attachments || []).filter((a) => safe(a.url)).map((a) => a.kind === "image"
      ? html`<img src=${a.url} alt=${a.name || t("file")} />`
      : html`<a href=${a.url} target="_blank" rel="noopener">${a.name || t("file")}</a>`)}
    ${m.parse && m.parse.intent && html`<span class="parse" data-testid="context-intents">
      ${label(meta, "intent", m.parse.intent)} · ${Math.round((m.parse.confidence || 0) * 100)} %${
        (m.parse.entities || []).length ? " · " + m.parse.entities.map((e) => e.entity.replace(/_/g, " ") + ": " + e.value).join(", ") : ""}</span>`}
  </li>`;
}

function Conversation({ detail, meta, me, canned, error, setError, open, accept, back }) {
  const h0 = detail.handover;
  const mine = h0.status === "assigned" && h0.agent && h0.agent.id === me.id;
  const queued = QUEUED.includes(h0.status);
  const closed = FINAL.includes(h0.status);
  const who = customerName(h0.customer, h0.channel);
  const transcript = useRef(null);
  useEffect(() => { const el = transcript.current; if (el) el.scrollTop = el.scrollHeight; }, [detail.messages.length]);

  return html`<section class="conversation" id="conversation" aria-labelledby="conv-title">
    <div class="conv-head">
      <button type="button" class="back" data-testid="back" onClick=${back}>← ${t("back")}</button>
      <h2 id="conv-title" data-testid="conv-title">${who} · ${channelLabel(h0.channel)}</h2>
      <span class="badge" data-testid="conv-status" data-status=${h0.status}>${label(meta, "hstatus", h0.status)}</span>
      ${queued && html`<button type="button" data-testid="accept" aria-keyshortcuts="Alt+A" onClick=${accept}>${t("accept")}</button>`}
    </div>
    <ol class="transcript" data-testid="transcript" ref=${transcript} tabindex="0" aria-label=${t("ctx.history")}>
      ${detail.messages.map((m) => html`<${Message} key=${m.id} m=${m} customer=${who} meta=${meta} />`)}
    </ol>
    <p class="error" data-testid="action-error" role="alert">${error}</p>
    ${closed
      ? html`<p class="closed-note" data-testid="conv-closed">${t("closed.note", { resolution: label(meta, "resolution", h0.resolution) || label(meta, "hstatus", h0.status) })}</p>`
      : html`<${Work} h0=${h0} meta=${meta} me=${me} mine=${mine} queued=${queued} canned=${canned} setError=${setError} open=${open} />`}
    <p class="shortcuts">${t("shortcuts")}</p>
  </section>`;
}

const TYPING_EVERY_MS = 3000;

function Composer({ h0, queued, canned, setError, open }) {
  const [text, setText] = useState("");
  const [menu, setMenu] = useState(null); // null: closed; else the filter typed after "/"
  const [pick, setPick] = useState(0);
  const input = useRef(null), file = useRef(null);
  const typedAt = useRef(0); // when the customer was last told that we type (at most every 3 s)
  const language = h0.customer.language === "en" ? "en" : "de";
  const typing = (v) => {
    // Only the owner's typing is shown (not while the conversation waits in the queue).
    if (queued || !v.trim() || Date.now() - typedAt.current < TYPING_EVERY_MS) return;
    typedAt.current = Date.now();
    api("POST", "/api/v1/handovers/" + h0.id + "/typing").catch(() => {}); // a hint: a failure changes nothing
  };
  const matches = menu === null ? [] : canned.filter((c) => c.language === language
    && (c.shortcut.toLowerCase().startsWith(menu) || c.title.toLowerCase().includes(menu)));

  const send = async () => {
    const image = file.current && file.current.files[0];
    if (!text.trim() && !image) return;
    try {
      // Not accepted yet: sending takes it first (the customer is told who answers).
      if (queued) await api("POST", "/api/v1/handovers/" + h0.id + "/accept");
      if (image) {
        const fd = new FormData();
        fd.append("text", text);
        fd.append("image", image);
        await api("POST", "/api/v1/handovers/" + h0.id + "/messages", fd, true);
      } else {
        await api("POST", "/api/v1/handovers/" + h0.id + "/messages", { text });
      }
      setText("");
      typedAt.current = 0; // the reply ends the customer's indicator: the next keystroke says so again
      if (file.current) file.current.value = "";
      setError("");
      if (queued) open(h0.id);
    } catch (e) { setError(e.message); }
  };
  const choose = (c) => { setText(c.text); setMenu(null); input.current && input.current.focus(); };
  const onInput = (ev) => {
    const v = ev.currentTarget.value;
    setText(v);
    typing(v);
    if (v.startsWith("/") && !v.includes("\n")) { setMenu(v.slice(1).toLowerCase()); setPick(0); } else setMenu(null);
  };
  const onKeyDown = (ev) => {
    if (menu !== null && matches.length) {
      if (ev.key === "ArrowDown") { setPick((pick + 1) % matches.length); ev.preventDefault(); return; }
      if (ev.key === "ArrowUp") { setPick((pick + matches.length - 1) % matches.length); ev.preventDefault(); return; }
      if (ev.key === "Enter" || ev.key === "Tab") { choose(matches[pick] || matches[0]); ev.preventDefault(); return; }
    }
    if (menu !== null && ev.key === "Escape") { setMenu(null); ev.preventDefault(); return; }
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); send(); }
  };
  return html`<form class="composer" id="reply-form" onSubmit=${(ev) => { ev.preventDefault(); send(); }}>
    ${queued && html`<p class="hint" data-testid="reply-hint">${t("reply.hint.queued")}</p>`}
    ${menu !== null && html`<ul class="canned" role="listbox" id="canned-list" aria-label=${t("canned")} data-testid="canned-menu">
      ${matches.map((c, i) => html`<li role="option" id=${"canned-" + i} aria-selected=${i === pick ? "true" : "false"}
          data-testid="canned-option" onMouseDown=${(ev) => { ev.preventDefault(); choose(c); }}>
        <strong>/${c.shortcut}</strong> ${c.title}</li>`)}
      ${!matches.length && html`<li class="empty">${t("canned.none")}</li>`}
    </ul>`}
    <label class="sr" for="reply-input">${t("reply.label")}</label>
    <textarea id="reply-input" data-testid="reply-input" ref=${input} rows="3" maxlength="4096" value=${text}
      placeholder=${t("reply.placeholder")} onInput=${onInput} onKeyDown=${onKeyDown}
      aria-controls=${menu !== null ? "canned-list" : undefined}
      aria-activedescendant=${menu !== null && matches.length ? "canned-" + pick : undefined}></textarea>
    <div class="composer-side">
      <label class="file">${t("reply.image")}
        <input id="reply-image" data-testid="reply-image" ref=${file} type="file" accept="image/png,image/jpeg,image/gif" />
      </label>
      <button type="submit" class="primary" data-testid="reply-send">${queued ? t("reply.take") : t("reply.send")}</button>
    </div>
  </form>`;
}

function Work({ h0, meta, me, mine, queued, canned, setError, open }) {
  const [targets, setTargets] = useState([]);
  useEffect(() => {
    Promise.all([api("GET", "/api/v1/agents"), api("GET", "/api/v1/queues")]).then(([a, q]) => setTargets([
      ...a.agents.filter((x) => x.id !== me.id && x.active).map((x) => ({ value: "agent:" + x.id, text: "→ " + x.display_name + " (" + t("status." + x.status) + ")" })),
      ...q.queues.map((x) => ({ value: "queue:" + x.id, text: "→ " + t("transfer.queue", { name: x.name }) })),
    ])).catch(() => {});
  }, [h0.id]);
  const act = (path, body) => api("POST", "/api/v1/handovers/" + h0.id + path, body).then(() => { setError(""); open(h0.id); })
    .catch((e) => setError(e.message));
  const note = (ev) => {
    ev.preventDefault();
    const f = ev.currentTarget, text = f.note.value;
    if (!text.trim()) return;
    api("POST", "/api/v1/handovers/" + h0.id + "/notes", { text }).then(() => { f.reset(); setError(""); }).catch((e) => setError(e.message));
  };
  const transfer = (ev) => {
    ev.preventDefault();
    const f = ev.currentTarget, [kind, id] = f.target.value.split(":");
    act("/transfer", { note: f.note.value, [kind === "agent" ? "agent_id" : "queue_id"]: id });
  };
  const close = (ev) => {
    ev.preventDefault();
    const f = ev.currentTarget, number = f.number.value.trim();
    act("/close", { resolution: f.resolution.value, return_to_bot: f.back.checked, slots: number ? { customer_number: number } : {} });
  };
  const owner = h0.agent ? h0.agent.display_name : "";
  return html`
    ${(mine || queued) ? html`<${Composer} h0=${h0} queued=${queued} canned=${canned} setError=${setError} open=${open} />`
      : html`<p class="hint" data-testid="reply-hint">${t("reply.hint.other", { name: owner })}</p>`}
    <form class="row" id="note-form" onSubmit=${note}>
      <label class="sr" for="note-input">${t("note.label")}</label>
      <input id="note-input" name="note" data-testid="note-input" maxlength="4096" placeholder=${t("note.placeholder")} aria-keyshortcuts="Alt+N" />
      <button type="submit" data-testid="note-send">${t("note.send")}</button>
    </form>
    ${(mine || me.role === "admin") && html`<details class="row-block">
      <summary data-testid="transfer-open">${t("transfer")}</summary>
      <form class="row" onSubmit=${transfer}>
        <label class="sr" for="transfer-target">${t("transfer.target")}</label>
        <select id="transfer-target" name="target" data-testid="transfer-target">
          ${targets.map((x) => html`<option value=${x.value}>${x.text}</option>`)}
        </select>
        <label class="sr" for="transfer-note">${t("transfer.note")}</label>
        <input id="transfer-note" name="note" data-testid="transfer-note" placeholder=${t("transfer.note")} />
        <button type="submit" data-testid="transfer-submit">${t("transfer.submit")}</button>
      </form>
    </details>`}
    ${mine && html`<details class="row-block" id="close-details">
      <summary data-testid="close-open" aria-keyshortcuts="Alt+C">${t("close")}</summary>
      <form class="row" onSubmit=${close}>
        <label>${t("close.resolution")}
          <select id="close-resolution" name="resolution" data-testid="close-resolution">
            ${((meta && meta.resolutions) || ["solved", "callback", "forwarded", "no_response", "other"]).map((r) =>
              html`<option value=${r}>${label(meta, "resolution", r)}</option>`)}
          </select>
        </label>
        <label><input type="checkbox" name="back" data-testid="close-return-to-bot" /> ${t("close.return")}</label>
        <label class="sr" for="close-customer-number">${t("close.number")}</label>
        <input id="close-customer-number" name="number" data-testid="close-customer-number" placeholder=${t("close.number")} />
        <button type="submit" data-testid="close-submit">${t("close.submit")}</button>
      </form>
    </details>`}`;
}

// --- the context panel ----------------------------------------------------------------------

function Context({ detail, meta }) {
  const c = detail.context || {};
  const h0 = detail.handover;
  const p = c.profile || {};
  const s = c.sentiment || {};
  const [openHist, setOpenHist] = useState(null);
  // Step-up verification of this conversation: its channel's identity is proven.
  const verified = c.verification && c.verification.status === "verified";
  const mood = s.latest === undefined ? "" : s.latest > 0.2 ? "positive" : s.latest < -0.2 ? "negative" : "neutral";
  const slots = Object.entries(c.slots || {}).filter(([k, v]) => k !== "language" && v !== null && v !== "" && !(typeof v === "string" && HEXISH.test(v)));
  // The customer's identities now (detail.identities), each with how it was verified; a handover
  // stored before they were sent has only its context's channel names.
  const identities = detail.identities || [];
  const profile = [
    ["profile.name", p.name], ["profile.number", p.customer_number], ["profile.language", label(meta, "lang", p.language)],
    ["profile.preference", p.preference ? channelLabel(p.preference) : ""],
    ["profile.channels", identities.length ? "" : (p.channels || []).map((x) => channelLabel(x)
      + (verified && x === h0.channel ? " (" + t("profile.verified") + ")" : "")
      + ((p.opted_out || []).includes(x) ? " (" + t("profile.opted_out") + ")" : "")).join(", ")],
  ].filter(([, v]) => v);
  return html`<aside class="context" id="context" aria-labelledby="ctx-title">
    <h2 id="ctx-title">${t("ctx")}</h2>
    <dl>
      <dt>${t("ctx.reason")}</dt>
      <dd data-testid="context-reason">${label(meta, "reason", c.reason || h0.reason)}</dd>
      ${c.callback && html`<dt>${t("cb.title")}</dt>
        <dd data-testid="context-callback"><p><strong>${t("cb." + c.callback.via)}: ${c.callback.contact}</strong>
          <span class="meta"> · ${when(c.callback.at)}</span></p>
          <p class="callback-message">${c.callback.message}</p></dd>`}
      <dt>${t("ctx.summary")}</dt><dd data-testid="context-summary">${c.summary || ""}</dd>
      ${c.verification && c.verification.text && html`<dt>${t("ctx.verification")}</dt>
        <dd data-testid="context-verification">${c.verification.text}</dd>`}
      <dt>${t("ctx.slots")}</dt>
      <dd><ul data-testid="context-slots">${slots.map(([k, v]) => html`<li>${label(null, "slot", k)}: ${valueText(v)}</li>`)}</ul>
        ${!slots.length && t("ctx.none")}</dd>
      <dt>${t("ctx.profile")}</dt>
      <dd><ul data-testid="context-profile">${profile.map(([k, v]) => html`<li>${t(k)}: ${v}</li>`)}</ul></dd>
      ${identities.length > 0 && html`<dt>${t("profile.channels")}</dt>
      <dd><${Identities} identities=${identities} /></dd>`}
      <dt>${t("profile.notes")}</dt>
      <dd><${Notes} key=${h0.customer.id} customerId=${h0.customer.id} initial=${detail.customer_notes || ""} /></dd>
      <dt>${t("ctx.sentiment")}</dt>
      <dd data-testid="context-sentiment">${mood ? t("sent." + mood) : "–"}${s.trend ? " · " + t("trend." + s.trend) : ""}${
        (s.matches || []).length ? " · " + s.matches.join(", ") : ""}</dd>
      <dt>${t("ctx.history")}</dt>
      <dd><ul data-testid="context-history" class="history">
        ${(c.history || []).map((x) => {
          const outcome = (x.handovers || []).map((y) => label(meta, "reason", y.reason) + " → " + label(meta, "hstatus", y.status)
            + (y.resolution ? " (" + label(meta, "resolution", y.resolution) + ")" : "") + (y.rating ? " ★" + y.rating : "")).join("; ");
          const shown = openHist === x.conversation_id;
          const msgs = (c.transcript || []).filter((m) => m.conversation_id === x.conversation_id);
          return html`<li data-testid="history-item">
            <button type="button" aria-expanded=${shown ? "true" : "false"} data-testid="history-toggle"
              onClick=${() => setOpenHist(shown ? null : x.conversation_id)}>
              ${when(x.started_at)} · ${channelLabel(x.channel)} · ${label(meta, "cstate", x.state)}${outcome ? " · " + outcome : ""}
            </button>
            ${shown && html`<ol class="transcript small" data-testid="history-transcript">
              ${msgs.map((m) => html`<li data-testid="history-message" data-author=${m.author} data-direction=${m.direction}>
                <span class="who">${m.direction === "note" ? t("who.note") : t("who." + m.author)} · ${when(m.timestamp)}</span>
                <p>${m.text}</p></li>`)}
              ${!msgs.length && html`<li>${t("history.empty")}</li>`}
            </ol>`}
          </li>`;
        })}
      </ul>${!(c.history || []).length && t("ctx.none")}</dd>
      <dt>${t("ctx.rating")}</dt><dd data-testid="rating">${h0.rating ? "★ " + h0.rating + " / 5" : "–"}</dd>
    </dl>
  </aside>`;
}

/** Each channel identity: channel · address, verified how and when (or not), opted out. */
function Identities({ identities }) {
  return html`<ul class="identities" data-testid="profile-identities">
    ${identities.map((i) => {
      const x = identityParts(i);
      return html`<li data-testid="profile-identity" data-channel=${i.channel} data-verified=${i.verified_by || ""}>
        <span class="id-address">${x.channel} · ${x.address}</span>
        <span class=${"id-proof" + (i.verified_by ? " verified" : "")}> · ${x.proof}</span>
        ${i.opted_out && html`<span> · ${t("profile.opted_out")}</span>`}
      </li>`;
    })}
  </ul>`;
}

function Notes({ customerId, initial }) {
  const [state, setState] = useState("");
  const save = (ev) => {
    ev.preventDefault();
    setState("");
    api("PUT", "/api/v1/customers/" + customerId + "/notes", { notes: ev.currentTarget.notes.value })
      .then(() => setState(t("profile.notes.saved"))).catch((e) => setState(e.message));
  };
  return html`<form class="notes" onSubmit=${save}>
    <label class="sr" for="customer-notes">${t("profile.notes")}</label>
    <textarea id="customer-notes" name="notes" rows="3" maxlength="4096" data-testid="customer-notes" defaultValue=${initial}></textarea>
    <button type="submit" data-testid="customer-notes-save">${t("profile.notes.save")}</button>
    <span role="status" data-testid="customer-notes-state">${state}</span>
  </form>`;
}

// --- administration -------------------------------------------------------------------------

function Admin() {
  const [agents, setAgents] = useState([]);
  const [queues, setQueues] = useState([]);
  const [error, setError] = useState("");
  const [editing, setEditing] = useState(null);
  const queueForm = useRef(null);
  const load = () => {
    api("GET", "/api/v1/agents").then((d) => setAgents(d.agents)).catch((e) => setError(e.message));
    api("GET", "/api/v1/queues").then((d) => setQueues(d.queues)).catch((e) => setError(e.message));
  };
  useEffect(load, []);
  const edit = (q) => {
    setEditing(q ? q.id : null);
    const f = queueForm.current;
    f.reset();
    if (q) {
      f.elements["queue-name"].value = q.name;
      f.elements["queue-skill"].value = q.skill;
      f.elements["queue-language"].value = q.language;
      f.elements["queue-hours"].value = Object.keys(q.business_hours || {}).length ? JSON.stringify(q.business_hours, null, 1) : "";
      f.elements["queue-name"].focus();
    }
  };
  const split = (v) => v.split(",").map((x) => x.trim()).filter(Boolean);
  const createAgent = (ev) => {
    ev.preventDefault();
    setError("");
    const f = ev.currentTarget, v = (id) => f.elements[id].value;
    api("POST", "/api/v1/agents", {
      email: v("agent-email"), display_name: v("agent-name"), password: v("agent-password"), role: v("agent-role"),
      skills: split(v("agent-skills")), languages: split(v("agent-languages")), capacity: parseInt(v("agent-capacity"), 10),
    }).then(() => { f.reset(); load(); }).catch((e) => setError(e.message));
  };
  const saveQueue = (ev) => {
    ev.preventDefault();
    setError("");
    const f = ev.currentTarget, v = (id) => f.elements[id].value;
    let hours = {};
    if (v("queue-hours").trim()) {
      try { hours = JSON.parse(v("queue-hours")); } catch (e) { setError("business hours: not valid JSON"); return; }
    }
    const req = editing
      ? api("PATCH", "/api/v1/queues/" + editing, { name: v("queue-name"), business_hours: hours })
      : api("POST", "/api/v1/queues", { name: v("queue-name"), skill: v("queue-skill"), language: v("queue-language"), business_hours: hours });
    req.then(() => { edit(null); load(); }).catch((e) => setError(e.message));
  };
  return html`<section class="admin" id="admin" aria-label=${t("admin")}>
    <h2>Agents</h2>
    <ul data-testid="agents">
      ${agents.map((a) => html`<li data-testid="agent-item">${a.display_name + " <" + a.email + "> · " + a.role + " · " + a.status +
        " · " + a.load + "/" + a.capacity + " · " + a.skills.join(",") + " · " + a.languages.join(",")}</li>`)}
    </ul>
    <form class="grid" onSubmit=${createAgent}>
      <label class="sr" for="agent-email">E-Mail</label><input id="agent-email" placeholder="E-Mail" required />
      <label class="sr" for="agent-name">Name</label><input id="agent-name" placeholder="Name" required />
      <label class="sr" for="agent-password">Passwort</label><input id="agent-password" type="password" placeholder="Passwort (≥10)" required />
      <label class="sr" for="agent-role">Rolle</label><select id="agent-role">${ROLES.map((r) => html`<option value=${r}>${r}</option>`)}</select>
      <label class="sr" for="agent-skills">Skills</label><input id="agent-skills" placeholder="skills: general,contracts" defaultValue="general" />
      <label class="sr" for="agent-languages">Sprachen</label><input id="agent-languages" placeholder="de,en" defaultValue="de,en" />
      <label class="sr" for="agent-capacity">Kapazität</label><input id="agent-capacity" type="number" min="0" max="1000" defaultValue="3" />
      <button type="submit" data-testid="agent-create">Anlegen / Create</button>
    </form>
    <h2>Queues</h2>
    <ul data-testid="queues">
      ${queues.map((q) => html`<li data-testid="queue-admin-item" data-id=${q.id}>
        ${q.name + " · " + q.skill + "/" + q.language + " · " + (q.open_now ? "offen / open" : "geschlossen / closed") + " · " + JSON.stringify(q.business_hours)}
        <button type="button" data-testid="queue-edit" onClick=${() => edit(q)}>Bearbeiten / Edit</button>
      </li>`)}
    </ul>
    <form class="grid" ref=${queueForm} onSubmit=${saveQueue}>
      <label class="sr" for="queue-name">Name</label><input id="queue-name" placeholder="Name" required />
      <label class="sr" for="queue-skill">Skill</label><input id="queue-skill" placeholder="skill" required disabled=${!!editing} />
      <label class="sr" for="queue-language">Sprache</label>
      <select id="queue-language" disabled=${!!editing}><option>de</option><option>en</option></select>
      <label class="sr" for="queue-hours">Geschäftszeiten</label>
      <textarea id="queue-hours" rows="3" placeholder='{"timezone": "Europe/Berlin", "days": {"mon": [["08:00","18:00"]]}}'></textarea>
      <button type="submit" id="queue-submit" data-testid="queue-create">${editing ? "Speichern / Save" : "Anlegen / Create"}</button>
      ${editing && html`<button type="button" data-testid="queue-cancel" onClick=${() => { setError(""); edit(null); }}>Abbrechen / Cancel</button>`}
    </form>
    <${CannedAdmin} setError=${setError} />
    <p class="error" role="alert" data-testid="admin-error">${error}</p>
  </section>`;
}

function CannedAdmin({ setError }) {
  const [items, setItems] = useState([]);
  const load = () => api("GET", "/api/v1/canned-responses").then((d) => setItems(d.canned_responses)).catch(() => setItems([]));
  useEffect(load, []);
  const create = (ev) => {
    ev.preventDefault();
    const f = ev.currentTarget, v = (n) => f.elements[n].value;
    api("POST", "/api/v1/canned-responses", { shortcut: v("shortcut"), language: v("language"), title: v("title"), text: v("text") })
      .then(() => { f.reset(); setError(""); load(); }).catch((e) => setError(e.message));
  };
  const remove = (c) => api("DELETE", "/api/v1/canned-responses/" + c.id).then(load).catch((e) => setError(e.message));
  return html`<h2>${t("canned")}</h2>
    <table class="canned-table" data-testid="canned-table">
      <thead><tr><th scope="col">Kürzel</th><th scope="col">Sprache</th><th scope="col">Titel</th><th scope="col">Text</th><th scope="col"><span class="sr">Aktion</span></th></tr></thead>
      <tbody>${items.map((c) => html`<tr data-testid="canned-row">
        <td>/${c.shortcut}</td><td>${c.language}</td><td>${c.title}</td><td>${c.text}</td>
        <td><button type="button" data-testid="canned-delete" onClick=${() => remove(c)}>Löschen / Delete</button></td></tr>`)}</tbody>
    </table>
    <form class="grid" onSubmit=${create} data-testid="canned-form">
      <label>Kürzel / Shortcut <input name="shortcut" data-testid="canned-shortcut" required pattern="[a-z0-9_-]{1,40}" /></label>
      <label>Sprache / Language <select name="language" data-testid="canned-language"><option>de</option><option>en</option></select></label>
      <label>Titel / Title <input name="title" data-testid="canned-title" required maxlength="200" /></label>
      <label>Text <textarea name="text" data-testid="canned-text" required maxlength="4096" rows="2"></textarea></label>
      <button type="submit" data-testid="canned-create">Anlegen / Create</button>
    </form>`;
}

render(html`<${App} />`, document.getElementById("root"));

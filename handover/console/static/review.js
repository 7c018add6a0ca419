// The review queue (trainers and admins): the kinds of message the bot missed, most frequent
// first; one opened with its conversation; label (an intent, entities marked in the text) or
// discard; admins export the labelled examples as training data. Customer text is only ever a
// Preact text node, never HTML.
import { h, render } from "/static/vendor/preact.mjs";
import { useEffect, useState } from "/static/vendor/hooks.mjs";
import htm from "/static/vendor/htm.mjs";

const html = htm.bind(h);
const REVIEWERS = ["admin", "trainer"];
let csrf = null;

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const resp = await fetch(path, { method, headers, credentials: "same-origin",
                                   body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const err = new Error(data.error || `HTTP ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

function Login({ onLogin }) {
  const [error, setError] = useState("");
  async function submit(ev) {
    ev.preventDefault();
    setError("");
    const form = ev.target;
    try {
      onLogin(await api("POST", "/api/v1/login", { email: form.email.value, password: form.password.value }));
    } catch (e) { setError(e.message); }
  }
  return html`<main class="login"><form onSubmit=${submit}>
    <h1>Resonanz – Review</h1>
    <label>E-Mail <input type="email" name="email" data-testid="login-email" autocomplete="username" required /></label>
    <label>Passwort / Password <input type="password" name="password" data-testid="login-password" autocomplete="current-password" required /></label>
    <button type="submit" data-testid="login-submit">Anmelden / Log in</button>
    <p class="error" role="alert" data-testid="login-error">${error}</p>
  </form></main>`;
}

function annotated(text, marks) {
  let out = "", pos = 0;
  for (const m of [...marks].sort((a, b) => a.start - b.start)) {
    out += text.slice(pos, m.start) + `[${text.slice(m.start, m.end)}](${m.entity})`;
    pos = m.end;
  }
  return out + text.slice(pos);
}

function Item({ id, vocabulary, onDone }) {
  const [item, setItem] = useState(null);
  const [wording, setWording] = useState("");
  const [intent, setIntent] = useState("");
  const [entity, setEntity] = useState(vocabulary.entities[0] || "");
  const [marks, setMarks] = useState([]);
  const [wholeGroup, setWholeGroup] = useState(true);
  const [error, setError] = useState("");
  let area = null;

  useEffect(() => {
    setItem(null); setError(""); setMarks([]);
    api("GET", `/api/v1/review/items/${id}`).then((it) => {
      setItem(it); setWording(it.text); setIntent(it.label_intent || ""); setMarks(it.label_entities || []);
    }).catch((e) => setError(e.message));
  }, [id]);

  function markSelection() {
    if (!area) return;
    let start = area.selectionStart, end = area.selectionEnd;
    while (start < end && wording[start] === " ") start++;
    while (end > start && wording[end - 1] === " ") end--;
    if (start >= end) { setError("Text markieren, dann „Markieren“ / Select text first"); return; }
    if (marks.some((m) => start < m.end && m.start < end)) { setError("Überschneidet eine Markierung / Overlaps a mark"); return; }
    setError("");
    setMarks([...marks, { start, end, entity }].sort((a, b) => a.start - b.start));
  }
  async function label() {
    setError("");
    try {
      await api("POST", `/api/v1/review/items/${id}/label`, {
        intent: intent.trim(), text: wording, whole_group: wholeGroup,
        entities: marks.map((m) => ({ start: m.start, end: m.end, entity: m.entity })) });
      onDone();
    } catch (e) { setError(e.message); }
  }
  async function discard() {
    setError("");
    try { await api("POST", `/api/v1/review/items/${id}/discard`, { whole_group: wholeGroup }); onDone(); }
    catch (e) { setError(e.message); }
  }

  if (!item) return html`<p class="error" role="alert">${error}</p>`;
  return html`<div data-testid="review-item">
    <h2>Nachricht / Message</h2>
    <p><strong data-testid="item-text">${item.text}</strong></p>
    <p class="meta">${item.count}× · ${item.reason} · Bot: ${item.intent || "–"}${item.confidence != null ? ` (${item.confidence.toFixed(2)})` : ""}${item.handed_over ? " · an eine Person übergeben / handed over" : ""}</p>
    <h2>Gespräch / Conversation</h2>
    <ol class="transcript" data-testid="item-conversation">
      ${item.conversation.map((m) => html`<li data-author=${m.author}>
        <span class="who">${m.author}${m.missed ? " · verpasst / missed" : ""}</span><p>${m.text}</p></li>`)}
    </ol>
    <h2>Beispiel / Example</h2>
    <label for="wording">Wortlaut (persönliche Daten ersetzen) / Wording (replace personal data)</label>
    <textarea id="wording" class="wording" data-testid="wording" value=${wording} ref=${(el) => { area = el; }}
      onInput=${(ev) => { setWording(ev.target.value.replace(/\n/g, " ")); setMarks([]); }}></textarea>
    <div class="row">
      <label for="entity">Entität / Entity</label>
      <select id="entity" data-testid="entity-select" value=${entity} onChange=${(ev) => setEntity(ev.target.value)}>
        ${vocabulary.entities.map((e) => html`<option value=${e}>${e}</option>`)}
      </select>
      <button type="button" data-testid="mark-entity" onClick=${markSelection}>Markieren / Mark selection</button>
    </div>
    <ul class="marks" data-testid="marks">
      ${marks.map((m, i) => html`<li>${wording.slice(m.start, m.end)} → ${m.entity}
        <button type="button" aria-label=${`Markierung ${m.entity} entfernen / remove`} onClick=${() => setMarks(marks.filter((_, j) => j !== i))}>×</button></li>`)}
    </ul>
    <p class="preview" data-testid="preview">${annotated(wording, marks)}</p>
    <div class="row">
      <label for="intent">Intent</label>
      <input id="intent" list="intents" data-testid="intent-input" value=${intent} placeholder="z. B. / e.g. bill_higher"
        onInput=${(ev) => setIntent(ev.target.value)} />
      <datalist id="intents">${vocabulary.intents.map((i) => html`<option value=${i}></option>`)}</datalist>
    </div>
    <label><input type="checkbox" data-testid="whole-group" checked=${wholeGroup} onChange=${(ev) => setWholeGroup(ev.target.checked)} />
      Für alle ${item.count} dieser Art / For all ${item.count} of this kind</label>
    <div class="row">
      <button type="button" data-testid="label" onClick=${label} disabled=${!intent.trim()}>Zuordnen / Label</button>
      <button type="button" data-testid="discard" onClick=${discard}>Verwerfen / Discard</button>
    </div>
    <p class="error" role="alert" data-testid="item-error">${error}</p>
  </div>`;
}

function Review({ me, onLogout }) {
  const [status, setStatus] = useState("open");
  const [data, setData] = useState({ groups: [], intents: [], entities: [] });
  const [current, setCurrent] = useState(null);
  const [notice, setNotice] = useState("");
  const [error, setError] = useState("");

  async function load() {
    try { setData(await api("GET", `/api/v1/review/groups?status=${status}`)); }
    catch (e) { setError(e.message); }
  }
  useEffect(() => { setCurrent(null); load(); }, [status]);

  async function exportNow() {
    setNotice(""); setError("");
    try {
      const r = await api("POST", "/api/v1/review/export");
      setNotice(`${r.written} Beispiele in / examples in ${r.path} (${r.added} neu / new)` +
                (r.new_intents.length ? ` — neue Intents in domain.yml eintragen / add to domain.yml: ${r.new_intents.join(", ")}` : ""));
    } catch (e) { setError(e.message); }
  }
  async function logout() { await api("POST", "/api/v1/logout").catch(() => {}); onLogout(); }

  return html`<header class="top">
      <strong>Resonanz – Review</strong>
      <span data-testid="me-name">${me.display_name}</span>
      ${me.role === "admin" ? html`<a href="/console">Konsole / Console</a>` : null}
      <label>Liste / List <select data-testid="status-select" value=${status} onChange=${(ev) => setStatus(ev.target.value)}>
        <option value="open">offen / open</option><option value="labelled">zugeordnet / labelled</option>
        <option value="discarded">verworfen / discarded</option></select></label>
      ${me.role === "admin" ? html`<button type="button" data-testid="export" onClick=${exportNow}>Exportieren / Export</button>` : null}
      <button type="button" onClick=${logout}>Abmelden</button>
    </header>
    <main class="review">
      <section aria-labelledby="kinds">
        <h2 id="kinds">Was der Bot nicht verstand / What the bot missed</h2>
        <p class="notice" role="status" data-testid="notice">${notice}</p>
        <p class="error" role="alert">${error}</p>
        <ul class="groups" data-testid="groups">
          ${data.groups.map((g) => html`<li><button type="button" aria-current=${String(current === g.item_id)}
              data-testid="group" onClick=${() => setCurrent(g.item_id)}>
            <span class="count" data-testid="group-count">${g.count}×</span>
            <span data-testid="group-text">${g.text}</span>
            <span class="meta">${Object.entries(g.reasons).map(([r, n]) => `${r} ${n}`).join(" · ")}${g.handed_over ? ` · ${g.handed_over} übergeben / handed over` : ""}${g.label_intent ? ` · → ${g.label_intent}` : ""}</span>
          </button></li>`)}
        </ul>
        ${data.groups.length === 0 ? html`<p data-testid="empty">Nichts zu prüfen / Nothing to review</p>` : null}
      </section>
      <section aria-label="Prüfen / Review">
        ${current ? html`<${Item} id=${current} vocabulary=${data} onDone=${() => { setCurrent(null); load(); }} />` : null}
      </section>
    </main>`;
}

function App() {
  const [me, setMe] = useState(undefined);
  function started(data) { csrf = data.csrf_token; setMe(data.agent); }
  useEffect(() => { api("GET", "/api/v1/me").then(started).catch(() => setMe(null)); }, []);
  if (me === undefined) return null;
  if (me === null) return html`<${Login} onLogin=${started} />`;
  if (!REVIEWERS.includes(me.role)) {
    return html`<main class="login"><p role="alert">Nur für Admins und Trainer / Admins and trainers only.
      <a href="/console">Konsole / Console</a></p></main>`;
  }
  return html`<${Review} me=${me} onLogout=${() => { csrf = null; setMe(null); }} />`;
}

render(html`<${App} />`, document.getElementById("review-root"));

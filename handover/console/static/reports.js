// The reports page (/console/reports): filters, then per report its tables with the exact
// figures and a chart beside each (uPlot). Everything from the server is rendered as text nodes
// (Preact) or drawn on a canvas; nothing is parsed as HTML.
import { h, render } from "/static/vendor/preact.mjs";
import { useEffect, useRef, useState } from "/static/vendor/hooks.mjs";
import htm from "/static/vendor/htm.mjs";
import uPlot from "/static/vendor/uplot.mjs";

const html = htm.bind(h);

const REPORTS = {
  containment: "Containment (vom Bot allein erledigt / finished by the bot)",
  handovers: "Übergaben / Handovers",
  waiting: "Wartezeit und Bearbeitung / Waiting and handling",
  business_hours: "Geschäftszeiten / Business hours",
  csat: "Zufriedenheit / CSAT",
  self_service: "Self-Service",
  intents: "Intents und Nicht verstanden / Intents and not understood",
};

// Which figures of a table are charted: the label columns, the series, bars or a line.
const CHARTS = {
  "containment/containment": { label: ["channel", "language"], series: ["bot_only", "handed_over"], skipAll: true },
  "handovers/by_reason": { label: ["reason", "trigger"], series: ["handovers"] },
  "handovers/by_queue": { label: ["queue", "channel"], series: ["handovers"] },
  "waiting/waiting": { label: ["queue"], series: ["wait_p50_s", "wait_p90_s"], skipAll: true },
  "business_hours/business_hours": { label: ["queue", "direction"], series: ["in_hours", "out_of_hours"] },
  "csat/distribution": { label: ["rating"], series: ["ratings"] },
  "csat/by_agent": { label: ["agent"], series: ["average"] },
  "csat/by_queue": { label: ["queue"], series: ["average"] },
  "csat/by_reason": { label: ["reason"], series: ["average"] },
  "self_service/tasks": { label: ["label"], series: ["finished"] },
  "self_service/form_dropouts": { label: ["form", "slot"], series: ["conversations"] },
  "intents/top_intents": { label: ["intent"], series: ["messages"] },
  "intents/not_understood": { label: ["day"], series: ["rate"], line: true },
};
const COLOURS = ["#0b5cab", "#c25100", "#2e7d32", "#6a1b9a"];

function isoDay(d) { return d.toISOString().slice(0, 10); }

function defaults() {
  const q = new URLSearchParams(location.search);
  const to = new Date();
  const from = new Date(to.getTime() - 29 * 86400000);
  return { from: q.get("from") || isoDay(from), to: q.get("to") || isoDay(to), channel: q.get("channel") || "",
           language: q.get("language") || "", queue: q.get("queue") || "" };
}

function params(filters, extra) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...filters, ...extra })) if (v) p.set(k, v);
  return p.toString();
}

async function getJson(url) {
  const resp = await fetch(url, { credentials: "same-origin" });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw Object.assign(new Error(body.error || resp.statusText), { status: resp.status });
  return body;
}

function Chart({ id, title, table, spec }) {
  const box = useRef(null);
  const rows = table.rows.filter((r) => !(spec.skipAll && r[0] === "(all)"));
  const at = (name) => table.columns.indexOf(name);
  const labels = rows.map((r) => spec.label.map((c) => String(r[at(c)] ?? "")).join(" / "));
  const series = spec.series.map((c) => rows.map((r) => r[at(c)]));
  useEffect(() => {
    if (!box.current || !rows.length) return undefined;
    const xs = rows.map((_, i) => i);
    // Bars side by side: one series centred on its label, two to the left and right of it.
    const many = spec.series.length > 1;
    const bars = (i) => (spec.line ? undefined
      : uPlot.paths.bars({ size: [many ? 0.35 : 0.6, 60], align: many ? (i === 0 ? -1 : 1) : 0 }));
    const width = Math.min(560, Math.max(300, box.current.clientWidth || 480));
    const plot = new uPlot({
      width, height: 220, legend: { show: true },
      scales: { x: { time: false, range: [-0.6, Math.max(rows.length - 0.4, 0.6)] },
                y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [{ values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? labels[v] ?? "" : "")), rotate: 0 }, {}],
      series: [{}, ...spec.series.map((name, i) => ({
        label: name, stroke: COLOURS[i], fill: spec.line ? undefined : COLOURS[i] + "cc", paths: bars(i), width: spec.line ? 2 : 1,
        points: { show: !!spec.line },
      }))],
    }, [xs, ...series], box.current);
    return () => plot.destroy();
  }, [JSON.stringify(table)]);
  if (!rows.length) return html`<p class="muted">Keine Daten / No data</p>`;
  const summary = labels.map((l, i) => `${l}: ${spec.series.map((_, s) => series[s][i]).join(", ")}`).join("; ");
  return html`<figure role="img" aria-label=${`${title}: ${summary}`} data-testid=${`chart-${id}`}
    data-series=${JSON.stringify({ labels, series })} ref=${box}></figure>`;
}

function DataTable({ id, table }) {
  return html`<table data-testid=${`table-${id}`}>
    <thead><tr>${table.columns.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>
    <tbody>${table.rows.map((r) => html`<tr>${r.map((v) => html`<td class=${typeof v === "number" ? "num" : ""}>${v === null ? "–" : String(v)}</td>`)}</tr>`)}</tbody>
  </table>`;
}

function Report({ name, filters }) {
  const [state, setState] = useState({ loading: true });
  useEffect(() => {
    let live = true;
    setState({ loading: true });
    getJson(`/api/v1/reports/${name}?${params(filters)}`)
      .then((body) => live && setState({ body }))
      .catch((e) => live && setState({ error: e.message }));
    return () => { live = false; };
  }, [name, params(filters)]);
  return html`<section class="report" data-testid=${`report-${name}`} aria-busy=${state.loading ? "true" : "false"}>
    <h2>${REPORTS[name]}</h2>
    ${state.loading && html`<p class="muted">…</p>`}
    ${state.error && html`<p class="error" role="alert">${state.error}</p>`}
    ${state.body && Object.entries(state.body.tables).map(([t, table]) => {
      const id = `${name}-${t}`;
      const spec = CHARTS[`${name}/${t}`];
      return html`<div class="table-block">
        <h3>${t.replace(/_/g, " ")} <a class="csv" data-testid=${`csv-${id}`} href=${`/api/v1/reports/${name}?${params(filters, { format: "csv", table: t })}`}>CSV</a></h3>
        <${DataTable} id=${id} table=${table} />
        ${spec ? html`<${Chart} id=${id} title=${`${REPORTS[name]} – ${t}`} table=${table} spec=${spec} />` : html`<div></div>`}
      </div>`;
    })}
  </section>`;
}

function App() {
  const [meta, setMeta] = useState(null);
  const [error, setError] = useState(null);
  const [filters, setFilters] = useState(defaults);
  const [draft, setDraft] = useState(filters);
  useEffect(() => {
    getJson("/api/v1/reports").then(setMeta).catch((e) => setError(e));
  }, []);
  if (error) {
    return html`<main><p class="error" role="alert">${error.status === 401
      ? "Bitte zuerst in der Konsole anmelden. / Please log in to the console first."
      : error.status === 403 ? "Nur für Admins und Supervisor. / For admins and supervisors only." : error.message}</p>
      <a href="/console">Konsole / Console</a></main>`;
  }
  const set = (k) => (e) => setDraft({ ...draft, [k]: e.target.value });
  const submit = (e) => {
    e.preventDefault();
    setFilters(draft);
    history.replaceState(null, "", `?${params(draft)}`);
  };
  const options = (values, all) => [html`<option value="">${all}</option>`,
    ...values.map((v) => (typeof v === "string" ? html`<option value=${v}>${v}</option>` : html`<option value=${v.id}>${v.name}</option>`))];
  return html`<header class="top"><h1>Resonanz – Berichte / Reports</h1><a href="/console">Konsole / Console</a></header>
    <main>
      <form class="filters" onSubmit=${submit} data-testid="filters">
        <label>Von / From<input type="date" value=${draft.from} onInput=${set("from")} data-testid="filter-from" required /></label>
        <label>Bis / To<input type="date" value=${draft.to} onInput=${set("to")} data-testid="filter-to" required /></label>
        <label>Kanal / Channel<select value=${draft.channel} onChange=${set("channel")} data-testid="filter-channel">${options(meta?.channels || [], "alle / all")}</select></label>
        <label>Sprache / Language<select value=${draft.language} onChange=${set("language")} data-testid="filter-language">${options(meta?.languages || [], "alle / all")}</select></label>
        <label>Warteschlange / Queue<select value=${draft.queue} onChange=${set("queue")} data-testid="filter-queue">${options(meta?.queues || [], "alle / all")}</select></label>
        <button type="submit" data-testid="filter-apply">Anzeigen / Show</button>
        <span class="muted">Tage in UTC / days in UTC</span>
      </form>
      ${meta && Object.keys(REPORTS).map((name) => html`<${Report} name=${name} filters=${filters} />`)}
    </main>`;
}

render(html`<${App} />`, document.getElementById("root"));

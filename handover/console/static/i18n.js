/*
 * The console's labels in German and English (the agent's browser language picks; German when it
 * is neither). Codes the server sends (reasons, intents) are named by the server's text catalogue
 * (/api/v1/meta "labels"); everything else is here.
 */
const DE = {
  "app.title": "Resonanz – Agentenkonsole",
  "nav.label": "Konsolenseiten", "nav.conversations": "Gespräche",
  "login.email": "E-Mail", "login.password": "Passwort", "login.submit": "Anmelden",
  "status": "Status", "status.online": "online", "status.away": "abwesend", "status.offline": "offline",
  "logout": "Abmelden", "admin": "Verwaltung", "live": "live", "offline": "getrennt …",
  "me.title": "Mein Profil", "me.avatar": "Profilbild",
  "me.avatar.hint": "Kundinnen und Kunden sehen dieses Bild im Web-Chat neben Ihrem Namen.",
  "me.avatar.none": "Kein Profilbild: Im Web-Chat stehen Ihre Initialen neben Ihrem Namen. PNG, JPEG oder WebP, höchstens 1 MiB, annähernd quadratisch.",
  "me.avatar.upload": "Profilbild hochladen", "me.avatar.replace": "Anderes Bild hochladen", "me.avatar.remove": "Profilbild entfernen",
  "me.avatar.too_large": "Das Bild ist größer als 1 MiB.",
  "me.avatar.refused": "Das Bild muss PNG, JPEG oder WebP sein und annähernd quadratisch.",
  "notify.label": "Benachrichtigungen", "notify.sound": "Ton", "notify.desktop": "Desktop", "notify.title": "Titel",
  "notify.offer": "Neues Gespräch für Sie", "notify.message": "Neue Nachricht",
  "section.search": "Suchergebnisse", "section.queue": "Warteschlange", "section.mine": "Meine Gespräche",
  "section.bot": "Bot-Gespräche", "section.closed": "Abgeschlossen",
  "search.label": "Frühere Gespräche und Kunden suchen", "search.placeholder": "Name, Nummer, Text …",
  "search.none": "Nichts gefunden.", "search.submit": "Suchen", "search.clear": "Suche leeren",
  "filter.queue": "Warteschlange", "filter.language": "Sprache", "filter.reason": "Grund", "filter.channel": "Kanal",
  "filter.all": "alle", "sort": "Sortierung", "sort.activity": "neueste Aktivität", "sort.wait": "längste Wartezeit",
  "more": "Weitere anzeigen ({n})", "empty": "Keine Gespräche.", "for_you": "für Sie",
  "take_over": "Übernehmen", "accept": "Annehmen", "back": "Zurück zur Liste",
  "who.customer": "Kunde", "who.bot": "Bot", "who.agent": "Mitarbeiter/in", "who.system": "System", "who.note": "Notiz",
  "visitor": "Besucher ({channel})",
  "hstatus.waiting": "wartet", "hstatus.offered": "angeboten", "hstatus.assigned": "in Bearbeitung",
  "hstatus.closed": "abgeschlossen", "hstatus.returned": "zurück an den Bot", "hstatus.cancelled": "abgebrochen",
  "cstate.bot": "beim Bot", "cstate.queued": "wartet", "cstate.agent": "bei Mitarbeitenden", "cstate.closed": "abgeschlossen",
  "res.solved": "Gelöst", "res.callback": "Rückruf vereinbart", "res.forwarded": "Weitergeleitet",
  "res.no_response": "Kunde antwortet nicht", "res.other": "Sonstiges", "res.abandoned": "Kunde hat verlassen",
  "res.callback_requested": "Rückruf/E-Mail erbeten", "res.cancelled_by_customer": "Vom Kunden abgebrochen",
  "cb.title": "Nachricht hinterlassen", "cb.phone": "Rückruf an", "cb.email": "E-Mail an",
  "reply.label": "Antwort an den Kunden", "reply.placeholder": "Antwort … (Enter sendet, Umschalt+Enter neue Zeile, / für Textbausteine)",
  "reply.send": "Senden", "reply.take": "Annehmen und senden", "reply.image": "Bild anhängen",
  "reply.hint.queued": "Noch nicht angenommen: Senden übernimmt das Gespräch, der Kunde erfährt, wer antwortet.",
  "reply.hint.other": "Wird von {name} bearbeitet: Sie können nur Notizen schreiben.",
  "closed.note": "Gespräch abgeschlossen: {resolution}",
  "note.label": "Interne Notiz", "note.placeholder": "Interne Notiz (nur für das Team)", "note.send": "Notiz speichern",
  "transfer": "Weiterleiten", "transfer.target": "Ziel", "transfer.note": "Notiz zur Weiterleitung", "transfer.submit": "Weiterleiten",
  "transfer.queue": "Warteschlange {name}",
  "close": "Abschließen", "close.resolution": "Ergebnis", "close.return": "zurück zum Bot",
  "close.number": "Kundennummer (optional)", "close.submit": "Abschließen",
  "canned": "Textbausteine", "canned.none": "Keine passenden Textbausteine.",
  "shortcuts": "Tastatur: Alt+J nächstes Gespräch · Alt+A annehmen · Alt+N Notiz · Alt+C abschließen · / Textbausteine",
  "ctx": "Kontext", "ctx.reason": "Grund", "ctx.summary": "Zusammenfassung", "ctx.verification": "Identitätsprüfung in diesem Gespräch",
  "ctx.slots": "Angaben aus dem Gespräch", "ctx.profile": "Kunde", "ctx.sentiment": "Stimmung",
  "ctx.history": "Frühere Gespräche", "ctx.rating": "Bewertung", "ctx.none": "keine",
  "profile.name": "Name", "profile.number": "Kundennummer", "profile.language": "Sprache", "profile.preference": "Bevorzugt",
  "profile.channels": "Kanäle", "profile.opted_out": "abgemeldet (STOP)", "profile.verified": "verifiziert", "profile.notes": "Notizen zum Kunden",
  "profile.notes.save": "Notizen speichern", "profile.notes.saved": "gespeichert",
  "id.session": "Browser-Sitzung", "id.verified": "verifiziert", "id.unverified": "nicht verifiziert",
  "proof.signed_identity": "signierte Anmeldung der Website", "proof.continue_code": "Weiterführungscode",
  "proof.step_up": "Prüfung mit Kundennummer",
  "cust.title": "Kunden zusammenführen und trennen", "cust.back": "Zur Konsole",
  "cust.login": "Bitte melden Sie sich zuerst in der Konsole an:", "cust.console": "Konsole",
  "cust.id": "Kunden-ID", "cust.load": "Laden", "cust.noname": "Ohne Namen",
  "cust.merge.label": "Dieser Kunde übernimmt alles von Kunden-ID", "cust.merge": "Zusammenführen",
  "cust.merged": "Zusammengeführt.", "cust.split": "Abtrennen", "cust.split.label": "Kanal {channel} abtrennen",
  "cust.split.done": "Abgetrennt: neuer Kunde {id}", "cust.failed": "Nicht möglich: {error}",
  "cust.unknown": "Keinen solchen Kunden gefunden.",
  "sent.positive": "positiv", "sent.neutral": "neutral", "sent.negative": "negativ",
  "trend.improving": "bessert sich", "trend.worsening": "verschlechtert sich", "trend.steady": "gleichbleibend",
  "history.show": "Verlauf zeigen", "history.hide": "Verlauf ausblenden", "history.empty": "Keine Nachrichten gespeichert.",
  "lang.de": "Deutsch", "lang.en": "Englisch",
  "yes": "ja", "no": "nein", "file": "Datei",
  "undelivered": "Nicht zugestellt: ", "unclear": "Zustellung unklar: ",
};
const EN = {
  "app.title": "Resonanz – Agent console",
  "nav.label": "Console pages", "nav.conversations": "Conversations",
  "login.email": "E-mail", "login.password": "Password", "login.submit": "Log in",
  "status": "Status", "status.online": "online", "status.away": "away", "status.offline": "offline",
  "logout": "Log out", "admin": "Administration", "live": "live", "offline": "disconnected …",
  "me.title": "My profile", "me.avatar": "Profile picture",
  "me.avatar.hint": "Customers see this picture beside your name in the web chat.",
  "me.avatar.none": "No profile picture: the web chat shows your initials beside your name. PNG, JPEG or WebP, at most 1 MiB, roughly square.",
  "me.avatar.upload": "Upload a profile picture", "me.avatar.replace": "Upload another picture", "me.avatar.remove": "Remove profile picture",
  "me.avatar.too_large": "The picture is larger than 1 MiB.",
  "me.avatar.refused": "The picture must be PNG, JPEG or WebP and roughly square.",
  "notify.label": "Notifications", "notify.sound": "Sound", "notify.desktop": "Desktop", "notify.title": "Title",
  "notify.offer": "New conversation for you", "notify.message": "New message",
  "section.search": "Search results", "section.queue": "Queue", "section.mine": "My conversations",
  "section.bot": "Bot conversations", "section.closed": "Closed",
  "search.label": "Search past conversations and customers", "search.placeholder": "Name, number, text …",
  "search.none": "Nothing found.", "search.submit": "Search", "search.clear": "Clear search",
  "filter.queue": "Queue", "filter.language": "Language", "filter.reason": "Reason", "filter.channel": "Channel",
  "filter.all": "all", "sort": "Sort", "sort.activity": "newest activity", "sort.wait": "longest waiting",
  "more": "Show more ({n})", "empty": "No conversations.", "for_you": "for you",
  "take_over": "Take over", "accept": "Accept", "back": "Back to the list",
  "who.customer": "Customer", "who.bot": "Bot", "who.agent": "Agent", "who.system": "System", "who.note": "Note",
  "visitor": "Visitor ({channel})",
  "hstatus.waiting": "waiting", "hstatus.offered": "offered", "hstatus.assigned": "in progress",
  "hstatus.closed": "closed", "hstatus.returned": "back to the bot", "hstatus.cancelled": "cancelled",
  "cstate.bot": "with the bot", "cstate.queued": "waiting", "cstate.agent": "with an agent", "cstate.closed": "closed",
  "res.solved": "Solved", "res.callback": "Call-back arranged", "res.forwarded": "Forwarded",
  "res.no_response": "Customer did not answer", "res.other": "Other", "res.abandoned": "Customer left",
  "res.callback_requested": "Callback/e-mail requested", "res.cancelled_by_customer": "Cancelled by the customer",
  "cb.title": "Message left", "cb.phone": "Call back on", "cb.email": "E-mail to",
  "reply.label": "Reply to the customer", "reply.placeholder": "Reply … (Enter sends, Shift+Enter new line, / for canned responses)",
  "reply.send": "Send", "reply.take": "Accept and send", "reply.image": "Attach a picture",
  "reply.hint.queued": "Not accepted yet: sending takes the conversation; the customer is told who answers.",
  "reply.hint.other": "{name} handles this conversation: you can only write notes.",
  "closed.note": "Conversation closed: {resolution}",
  "note.label": "Internal note", "note.placeholder": "Internal note (team only)", "note.send": "Save note",
  "transfer": "Transfer", "transfer.target": "Target", "transfer.note": "Transfer note", "transfer.submit": "Transfer",
  "transfer.queue": "Queue {name}",
  "close": "Close", "close.resolution": "Outcome", "close.return": "back to the bot",
  "close.number": "Customer number (optional)", "close.submit": "Close",
  "canned": "Canned responses", "canned.none": "No matching canned responses.",
  "shortcuts": "Keys: Alt+J next conversation · Alt+A accept · Alt+N note · Alt+C close · / canned responses",
  "ctx": "Context", "ctx.reason": "Reason", "ctx.summary": "Summary", "ctx.verification": "Identity check in this conversation",
  "ctx.slots": "Details from the conversation", "ctx.profile": "Customer", "ctx.sentiment": "Sentiment",
  "ctx.history": "Earlier conversations", "ctx.rating": "Rating", "ctx.none": "none",
  "profile.name": "Name", "profile.number": "Customer number", "profile.language": "Language", "profile.preference": "Prefers",
  "profile.channels": "Channels", "profile.opted_out": "opted out (STOP)", "profile.verified": "verified", "profile.notes": "Notes about the customer",
  "profile.notes.save": "Save notes", "profile.notes.saved": "saved",
  "id.session": "browser session", "id.verified": "verified", "id.unverified": "not verified",
  "proof.signed_identity": "signed sign-in on the website", "proof.continue_code": "continue code",
  "proof.step_up": "customer-number check",
  "cust.title": "Merge and split customers", "cust.back": "Back to the console",
  "cust.login": "Please log in to the console first:", "cust.console": "Console",
  "cust.id": "Customer ID", "cust.load": "Load", "cust.noname": "No name",
  "cust.merge.label": "This customer takes over everything of customer ID", "cust.merge": "Merge",
  "cust.merged": "Merged.", "cust.split": "Split off", "cust.split.label": "Split off channel {channel}",
  "cust.split.done": "Split off: new customer {id}", "cust.failed": "Not possible: {error}",
  "cust.unknown": "No such customer.",
  "sent.positive": "positive", "sent.neutral": "neutral", "sent.negative": "negative",
  "trend.improving": "improving", "trend.worsening": "worsening", "trend.steady": "steady",
  "history.show": "Show transcript", "history.hide": "Hide transcript", "history.empty": "No messages stored.",
  "lang.de": "German", "lang.en": "English",
  "yes": "yes", "no": "no", "file": "File",
  "undelivered": "Not delivered: ", "unclear": "Delivery unclear: ",
};
const CHANNELS = {
  de: { webchat: "Web-Chat", rest: "REST", telegram: "Telegram", whatsapp: "WhatsApp", sms: "SMS", console: "Konsole" },
  en: { webchat: "Web chat", rest: "REST", telegram: "Telegram", whatsapp: "WhatsApp", sms: "SMS", console: "Console" },
};

export const LANG = (navigator.language || "de").toLowerCase().startsWith("en") ? "en" : "de";
const TABLE = LANG === "en" ? EN : DE;

export function t(key, fields) {
  let text = TABLE[key] ?? DE[key] ?? key;
  if (fields) for (const [k, v] of Object.entries(fields)) text = text.replace("{" + k + "}", String(v));
  return text;
}

export const has = (key) => key in TABLE;

/** A code made readable: the server's catalogue (`meta.labels[kind]`), this table, else the
 * code with its underscores as spaces. */
export function label(meta, kind, code) {
  if (code === null || code === undefined || code === "") return "";
  const server = meta && meta.labels && meta.labels[kind] && meta.labels[kind][code];
  if (server) return server[LANG] || server.de;
  const local = { resolution: "res.", hstatus: "hstatus.", cstate: "cstate.", lang: "lang." }[kind];
  if (local && has(local + code)) return t(local + code);
  return String(code).replace(/_/g, " ");
}

export function channelLabel(channel) {
  if (!channel) return "";
  return CHANNELS[LANG][channel] || channel;
}

const TIME = new Intl.DateTimeFormat(LANG === "en" ? "en-GB" : "de-DE", { hour: "2-digit", minute: "2-digit" });
const DATE_TIME = new Intl.DateTimeFormat(LANG === "en" ? "en-GB" : "de-DE",
  { day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit" });

/** A server timestamp (ISO, UTC) in the agent's time zone: the time today, else date and time. */
export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return "";
  const today = new Date();
  return d.toDateString() === today.toDateString() ? TIME.format(d) : DATE_TIME.format(d);
}

export function ago(seconds) {
  if (seconds < 60) return seconds + " s";
  if (seconds < 3600) return Math.round(seconds / 60) + " min";
  return Math.floor(seconds / 3600) + " h " + Math.round((seconds % 3600) / 60) + " min";
}

/** One channel identity of a customer (handover/read_model.py identity_json), readable:
 * {channel: "Telegram", address: "4711", proof: "verified (continue code, 03:40)" | "not verified"}.
 * An anonymous web chat session has no address an agent could use: it is named as such. */
export function identityParts(i) {
  const proof = i.verified_by
    ? t("id.verified") + " (" + (has("proof." + i.verified_by) ? t("proof." + i.verified_by) : i.verified_by)
      + (i.verified_at ? ", " + when(i.verified_at) : "") + ")"
    : t("id.unverified");
  return { channel: channelLabel(i.channel), address: i.label || t("id.session"), proof };
}

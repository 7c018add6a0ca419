"""Customer messages the reference bot answers with responses only (no custom actions), so
any engine answers them whatever gateway serves its actions."""

SCRIPT = ["Wann haben Sie geöffnet?", "Wie kann ich Sie erreichen?", "Welche Zahlungsarten gibt es?",
          "Wie sind Ihre Öffnungszeiten?"]

"""The labelled review items as Rasa NLU training data: one YAML file of its own
(`training_data/nlu/reviewed.yml` below `Settings.training_root`), ready to commit.

The file is rewritten on every export and keeps what it held before (an erased customer's example
that was exported stays: it carries nothing of them). An example whose text is already in the
training data (this file aside) is left out, so no text ends up under two intents; of one kind of
message labelled with entity marks, only the marked wordings are written (the others would teach
the same words without the entity).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPORT_FILE = Path("training_data") / "nlu" / "reviewed.yml"
HEADER = """\
# Written by `resonanz review export` (or the console's review page): customer messages the bot
# missed, labelled by trainers. Examples already here are kept; edit or delete lines freely.
# Commit this file, then retrain: `resonanz train`.
"""
# `[value](entity)`, `[value]{"entity": ...}` and `[value]{...}` annotations.
_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")


@dataclass
class ExportResult:
    path: Path
    written: int  # examples in the file
    added: int  # new in this export
    skipped: int  # already in the other training data
    intents: list[str] = field(default_factory=list)
    #: Intents the domain does not list yet: add them to domain.yml (and say what the bot does).
    new_intents: list[str] = field(default_factory=list)


def plain(example: str) -> str:
    """The text of an annotated example, for comparing wordings."""
    return " ".join(_ANNOTATION.sub(r"\1", example).split()).casefold()


def annotate(text: str, marks: Sequence[dict[str, Any]]) -> str:
    """`text` with entity marks as Rasa annotations; brackets of the text itself become
    parentheses (they would read as annotations), line breaks and tabs spaces."""

    def clean(s: str) -> str:
        return " ".join(s.replace("[", "(").replace("]", ")").split("\n")).replace("\t", " ")

    out, pos = [], 0
    for m in sorted(marks, key=lambda m: m["start"]):
        out.append(clean(text[pos:m["start"]]))
        out.append(f"[{text[m['start']:m['end']]}]({m['entity']})")
        pos = m["end"]
    out.append(clean(text[pos:]))
    return " ".join("".join(out).split())


def _examples_in(doc: Any) -> Iterable[tuple[str, str]]:
    for block in (doc or {}).get("nlu") or []:
        if isinstance(block, dict) and "intent" in block and isinstance(block.get("examples"), str):
            for line in block["examples"].splitlines():
                line = line.strip()
                if line.startswith("- "):
                    yield str(block["intent"]), line[2:].strip()


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def domain_vocabulary(root: Path) -> tuple[list[str], list[str]]:
    """The intents and entities of the bot's domain (domain.yml below `root`)."""
    doc = _load(root / "domain.yml") or {}

    def names(key: str) -> list[str]:
        return [next(iter(x)) if isinstance(x, dict) else str(x) for x in doc.get(key) or []]

    return names("intents"), names("entities")


def render(examples: dict[str, list[str]], new_intents: Sequence[str]) -> str:
    """The file's text: intents in name order, examples as given."""
    lines = [HEADER.rstrip("\n")]
    if new_intents:
        lines.append("# New intents, not yet in domain.yml (add them there, with what the bot does): "
                     + ", ".join(new_intents))
    lines += ['version: "3.1"', "", "nlu:"]
    for intent in sorted(examples):
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {e}" for e in examples[intent]]
    return "\n".join(lines) + "\n"


def write_export(root: Path, labelled: Sequence[tuple[str, str, list[dict[str, Any]], str]]) -> ExportResult:
    """Merge the labelled items (intent, text, entity marks, group key) into the export file below
    `root` and write it (atomically)."""
    path = root / EXPORT_FILE
    known: set[str] = set()
    for other in sorted((root / "training_data").rglob("*.yml")):
        if other.resolve() != path.resolve():
            known |= {plain(e) for _, e in _examples_in(_load(other))}
    examples: dict[str, list[str]] = {}
    owner: dict[str, str] = {}  # plain text -> intent: the latest label wins

    def put(intent: str, example: str) -> bool:
        key = plain(example)
        if key in owner:
            if owner[key] == intent:
                return False
            examples[owner[key]] = [e for e in examples[owner[key]] if plain(e) != key]
        owner[key] = intent
        examples.setdefault(intent, []).append(example)
        return True

    if path.exists():
        for intent, example in _examples_in(_load(path)):
            put(intent, example)
    before = set(owner.items())
    marked_kinds = {(intent, key) for intent, _, marks, key in labelled if marks}
    skipped = 0
    for intent, text, marks, key in labelled:
        if (intent, key) in marked_kinds and not marks:
            continue
        example = annotate(text, marks)
        if plain(example) in known:
            skipped += 1
            continue
        put(intent, example)
    examples = {i: e for i, e in examples.items() if e}
    domain_intents, _ = domain_vocabulary(root)
    new_intents = sorted(i for i in examples if i not in domain_intents)
    result = ExportResult(path=path, written=sum(len(e) for e in examples.values()),
                          added=len(set(owner.items()) - before), skipped=skipped,
                          intents=sorted(examples), new_intents=new_intents)
    if not examples and not path.exists():
        return result  # nothing labelled yet: no empty file in the training data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yml.tmp")
    tmp.write_text(render(examples, new_intents), encoding="utf-8")
    tmp.replace(path)
    return result

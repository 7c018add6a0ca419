"""NLU evaluation: `rasa test nlu` with cross-validation on the training data, and the trained model
on a held-out test set that is never trained on (bench/data/nlu_test.yml).

Per intent precision, recall, F1 and support, and the full confusion matrix (gold intent -> predicted
intent -> count), for both, as JSON under a label in bench/results/nlu_eval.json (other labels in
the file are kept, so "before" and "after" sit side by side):

    .venv/bin/python bench/nlu_eval.py --label after                      # this checkout
    .venv/bin/python bench/nlu_eval.py --label before --root /work/main   # another checkout's data/model
    .venv/bin/python bench/nlu_eval.py --label after --folds 0            # held-out only (fast)

The held-out set is always this checkout's (so both labels are measured on the same sentences).
Cross-validation trains the NLU pipeline once per fold: minutes, not for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HELD_OUT = ROOT / "bench" / "data" / "nlu_test.yml"
RESULTS = ROOT / "bench" / "results" / "nlu_eval.json"


def rasa() -> str:
    return str(ROOT / ".venv-engine" / "bin" / "rasa")


def run_rasa_test(args: list[str], out: Path) -> None:
    env = {**os.environ, "TQDM_DISABLE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [rasa(), "test", "nlu", *args, "--out", str(out), "--successes", "--no-plot", "--quiet"]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise(out: Path) -> dict[str, Any]:
    """Per-intent figures from intent_report.json, the confusion matrix from the successes and errors."""
    report = json.loads((out / "intent_report.json").read_text())
    per_intent = {
        name: {k: round(float(v[k]), 4) for k in ("precision", "recall", "f1-score")} | {"support": int(v["support"])}
        for name, v in sorted(report.items())
        if isinstance(v, dict) and "precision" in v and name not in ("micro avg", "macro avg", "weighted avg")
    }
    matrix: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    errors = []
    for name in ("intent_successes.json", "intent_errors.json"):
        path = out / name
        if not path.exists():
            continue
        for item in json.loads(path.read_text()):
            gold = item["intent"]
            predicted = (item.get("intent_prediction") or {}).get("name") or "None"
            matrix[gold][predicted] += 1
            if gold != predicted:
                errors.append({"text": item["text"], "intent": gold, "predicted": predicted,
                               "confidence": round(float((item.get("intent_prediction") or {}).get("confidence") or 0), 3)})
    total = sum(sum(row.values()) for row in matrix.values())
    correct = sum(row.get(gold, 0) for gold, row in matrix.items())
    return {
        "accuracy": round(correct / total, 4) if total else None,
        "examples": total,
        "macro_f1": round(float(report.get("macro avg", {}).get("f1-score", 0.0)), 4),
        "weighted_f1": round(float(report.get("weighted avg", {}).get("f1-score", 0.0)), 4),
        "per_intent": per_intent,
        "confusion_matrix": {gold: dict(sorted(row.items())) for gold, row in sorted(matrix.items())},
        "errors": sorted(errors, key=lambda e: (e["intent"], e["text"])),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", required=True, help='e.g. "before" or "after"')
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose training data, config and model to use")
    parser.add_argument("--model", type=Path, help="model to test on the held-out set (default: <root>/models/resonanz.tar.gz)")
    parser.add_argument("--folds", type=int, default=3, help="cross-validation folds (0: skip)")
    args = parser.parse_args()

    root = args.root.resolve()
    model = (args.model or root / "models" / "resonanz.tar.gz").resolve()
    result: dict[str, Any] = {"root": str(root), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="nlu-eval-") as tmp:
        started = time.monotonic()
        run_rasa_test(["--model", str(model), "--nlu", str(HELD_OUT)], Path(tmp) / "held_out")
        result["held_out"] = summarise(Path(tmp) / "held_out") | {"seconds": round(time.monotonic() - started, 1)}
        print(f"{args.label}: held-out accuracy {result['held_out']['accuracy']} "
              f"(macro F1 {result['held_out']['macro_f1']}, {result['held_out']['examples']} examples)", file=sys.stderr)
        if args.folds:
            started = time.monotonic()
            run_rasa_test(["--nlu", str(root / "training_data" / "nlu.yml"), "--config", str(root / "config.yml"),
                           "--cross-validation", "--folds", str(args.folds)], Path(tmp) / "cv")
            result["cross_validation"] = summarise(Path(tmp) / "cv") | {
                "folds": args.folds, "seconds": round(time.monotonic() - started, 1)}
            print(f"{args.label}: {args.folds}-fold cross-validation accuracy {result['cross_validation']['accuracy']} "
                  f"(macro F1 {result['cross_validation']['macro_f1']})", file=sys.stderr)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[args.label] = result
    RESULTS.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)} under {args.label!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Meter photo OCR on generated images (bench/meter_images.py): exact readings, wrong numbers the
bot would ask the customer to confirm, unreadable photos, time per image.

    .venv/bin/python bench/meter_ocr.py [--count 300] [--seed-offset 0] [--out bench/results/meter_ocr.json]

Exact: the proposed number equals the true kWh value. Wrong: a number was proposed but it is not
the value (the customer is asked "is that right?" and says no). Unreadable: nothing proposed (the
customer is asked to type it). The bot never stores a reading from a photo without confirmation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.meter_images import generate  # noqa: E402
from bot.reference.meter_photo import read_meter  # noqa: E402


def run(count: int, offset: int, verbose: bool) -> dict:
    read_meter(generate(10**6).jpeg)  # load the models outside the timing
    per_kind: dict[str, dict[str, int]] = {}
    times: list[float] = []
    failures = []
    for seed in range(offset, offset + count):
        image = generate(seed)
        t0 = time.perf_counter()
        got = read_meter(image.jpeg)
        times.append(time.perf_counter() - t0)
        k = per_kind.setdefault(image.kind, {"images": 0, "exact": 0, "wrong": 0, "unreadable": 0})
        k["images"] += 1
        outcome = "exact" if got.value == image.value else "unreadable" if got.value is None else "wrong"
        k[outcome] += 1
        if outcome != "exact":
            failures.append({"seed": seed, "kind": image.kind, "shown": image.shown, "value": image.value,
                             "read": got.value, "text": got.text, "score": round(got.score, 3), "reason": got.reason})
            if verbose:
                print(failures[-1])
    total = {key: sum(k[key] for k in per_kind.values()) for key in ("images", "exact", "wrong", "unreadable")}
    return {
        "images": total["images"],
        "exact_rate": total["exact"] / total["images"],
        "wrong_proposed_rate": total["wrong"] / total["images"],
        "unreadable_rate": total["unreadable"] / total["images"],
        "seconds_per_image": {"mean": statistics.mean(times), "p50": statistics.median(times),
                              "p95": sorted(times)[int(0.95 * (len(times) - 1))]},
        "per_kind": per_kind,
        "seeds": [offset, offset + count - 1],
        "failures": failures,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--seed-offset", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "meter_ocr.json")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    result = run(args.count, args.seed_offset, args.verbose)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    t = result["seconds_per_image"]
    print(f"{result['images']} images: exact {result['exact_rate']:.1%}, asked to confirm a wrong number "
          f"{result['wrong_proposed_rate']:.1%}, unreadable (asked to type) {result['unreadable_rate']:.1%}; "
          f"{t['mean'] * 1000:.0f} ms per image (p50 {t['p50'] * 1000:.0f}, p95 {t['p95'] * 1000:.0f})")
    for kind, k in result["per_kind"].items():
        print(f"  {kind}: {k}")


if __name__ == "__main__":
    main()

"""Reading a meter photo: the kWh value of a German household electricity meter, offline on CPU.

How (docs/reference-bot.md, "Meter reading from a photo"):
1. RapidOCR (PP-OCR models in ONNX, shipped inside the `rapidocr-onnxruntime` wheel) finds every
   text line in the photo and reads it.
2. The counter window is located among them: lines of digits next to each other are joined, and
   the window is the group with the tallest glyphs and a plausible number of digits — the plate's
   serial number, "230 V", "10(60) A", "375 U/kWh" and the OBIS code "1.8.0" are smaller or fail
   the shape test.
3. The window is cut out straight (rotation and perspective undone) and read again on its own.
   Its red part (the tenths wheel of a roller counter, not part of the kWh value) is cut off
   first; on a digital display the decimal point is taken from the text, or found as a small
   blob on the digits' baseline when the recogniser dropped it.
4. Anything doubtful (no window, a weak score, too many digits, two different windows of the same
   size) gives no reading: the bot then asks the customer to type it. Even a confident reading is
   only proposed: the customer confirms it before the usual plausibility checks run.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_DIGITS = 4
MAX_DIGITS = 7  # with leading zeros; the value itself is at most 999 999 kWh (MAX_READING)
MIN_SCORE = 0.80  # the recogniser's mean character confidence below which we do not propose
MAX_PIXELS = 4_000_000  # larger photos are scaled down first (phones send 12 MP)


@dataclass(frozen=True)
class PhotoReading:
    """What a photo showed. `value` is None when nothing was read with enough confidence;
    `reason` says why ("no_counter", "low_confidence", "ambiguous", "too_many_digits", "not_an_image")."""

    value: int | None
    text: str = ""
    score: float = 0.0
    reason: str | None = None


_engine: Any = None
_engine_lock = threading.Lock()


def _ocr() -> Any:
    """One RapidOCR instance per process (loading the models takes about a second)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            from rapidocr_onnxruntime import RapidOCR

            _engine = RapidOCR(print_verbose=False)
        return _engine


def _decode(data: bytes) -> np.ndarray | None:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None
    h, w = img.shape[:2]
    if h * w > MAX_PIXELS:
        f = (MAX_PIXELS / (h * w)) ** 0.5
        img = cv2.resize(img, (int(w * f), int(h * f)), interpolation=cv2.INTER_AREA)
    return img


@dataclass
class _Line:
    box: np.ndarray  # 4 x 2 points, clockwise from top left
    text: str
    score: float

    @property
    def height(self) -> float:
        b = self.box
        return float((np.linalg.norm(b[3] - b[0]) + np.linalg.norm(b[2] - b[1])) / 2)

    @property
    def centre(self) -> np.ndarray:
        return self.box.mean(axis=0)

    @property
    def digits(self) -> str:
        return re.sub(r"\D", "", self.text)


_UNIT = re.compile(r"(?i)k\s*w\s*h")
_LABEL = re.compile(r"(?i)(nr|typ|bj|kl|u/|hz|v\b|a\b|\(|\)|/|x)")


def _is_counter_text(text: str) -> bool:
    """Digits (and a decimal mark, maybe 'kWh'), nothing that makes it a label of the plate."""
    t = _UNIT.sub("", text).strip()
    if not t or _LABEL.search(t):
        return False
    digits = sum(ch.isdigit() for ch in t)
    return digits >= 1 and digits >= 0.8 * len(re.sub(r"[\s.,]", "", t))


def _groups(lines: list[_Line]) -> list[list[_Line]]:
    """Counter lines side by side (a roller counter is often read as several boxes)."""
    cands = sorted((ln for ln in lines if _is_counter_text(ln.text)), key=lambda ln: -ln.height)
    groups: list[list[_Line]] = []
    for ln in cands:
        for g in groups:
            ref = g[0]
            # Same text line: similar glyph height, centre within half a glyph of the line,
            # horizontally close to one of the group's boxes.
            if not 0.6 < ln.height / ref.height < 1.6:
                continue
            direction = ref.box[1] - ref.box[0]
            direction = direction / (np.linalg.norm(direction) or 1.0)
            normal = np.array([-direction[1], direction[0]])
            if abs(float(np.dot(ln.centre - ref.centre, normal))) > 0.5 * ref.height:
                continue
            gap = min(float(np.min(np.linalg.norm(ln.box[:, None] - m.box[None], axis=2))) for m in g)
            if gap < 2.5 * ref.height:
                g.append(ln)
                break
        else:
            groups.append([ln])
    return groups


def _straighten(img: np.ndarray, points: np.ndarray, pad: float) -> np.ndarray:
    """The rotated rectangle around `points`, cut out and turned level, with `pad` × its height
    added around it."""
    import cv2

    (cx, cy), (w, h), angle = cv2.minAreaRect(points.astype(np.float32))
    if w < h:  # OpenCV's angle convention: make the long side horizontal
        w, h, angle = h, w, angle - 90
    if angle < -45:
        angle += 180
    if angle > 45:
        angle -= 180
    w, h = w + 2 * pad * h, h * (1 + 2 * pad)
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    m[0, 2] += w / 2 - cx
    m[1, 2] += h / 2 - cy
    return cv2.warpAffine(img, m, (max(int(w), 8), max(int(h), 8)), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)


def _red_start(crop: np.ndarray) -> int | None:
    """The x where the red tenths wheel begins, if the window's right end is red."""
    b, g, r = (crop[:, :, i].astype(np.int32) for i in range(3))
    red = (r > 110) & (r > g * 1.6 + 20) & (r > b * 1.6 + 20)
    frac = red.mean(axis=0)
    cols = np.where(frac > 0.25)[0]
    if cols.size == 0 or cols.max() < crop.shape[1] * 0.6:
        return None
    # The red run that reaches furthest right; walk left while it stays red.
    x = int(cols.max())
    while x > 0 and frac[x - 1] > 0.12:
        x -= 1
    return x if x > crop.shape[1] * 0.4 else None


def _dot_fraction(crop: np.ndarray) -> float | None:
    """Where a decimal point sits along the digits (0..1), found as a small dark blob on the
    baseline of a seven-segment display; None if there is none."""
    import cv2

    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    _, ink = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    n, _, stats, _ = cv2.connectedComponentsWithStats(ink, 8)
    if n < 3:
        return None
    tall = [s for s in stats[1:] if s[3] > crop.shape[0] * 0.25]
    if not tall:
        return None
    top = min(s[1] for s in tall)
    bottom = max(s[1] + s[3] for s in tall)
    height = bottom - top
    left = min(s[0] for s in tall)
    right = max(s[0] + s[2] for s in tall)
    for x, y, w, h, area in stats[1:]:
        if (h < height * 0.22 and w < height * 0.3 and area > (height * 0.05) ** 2
                and y + h > bottom - height * 0.18 and y > top + height * 0.6
                and left + height * 0.3 < x < right - height * 0.3):
            return (x + w / 2 - left) / (right - left)
    return None


def _value_of(text: str, dot: float | None) -> tuple[int | None, str | None]:
    text = _UNIT.sub("", text).strip()
    text = re.sub(r"[^\d.,]", "", text)
    whole = re.split(r"[.,]", text)[0] if re.search(r"\d[.,]\d", text) else text.replace(".", "").replace(",", "")
    if whole == text.replace(".", "").replace(",", "") and dot is not None and len(whole) > MIN_DIGITS:
        whole = whole[: max(1, round(dot * len(whole)))]
    if len(whole) < MIN_DIGITS:
        return None, "no_counter"
    if len(whole) > MAX_DIGITS or int(whole) > 999_999:
        return None, "too_many_digits"
    return int(whole), None


def read_meter(data: bytes) -> PhotoReading:
    """The kWh value shown in a meter photo, or a PhotoReading with `value=None` and a reason.
    CPU-bound (about half a second): call it in a worker thread from async code."""
    img = _decode(data)
    if img is None:
        return PhotoReading(None, reason="not_an_image")
    ocr = _ocr()
    found, _ = ocr(img)
    lines = [_Line(np.array(b, dtype=np.float32), str(t), float(s)) for b, t, s in (found or [])]
    groups = [g for g in _groups(lines) if sum(len(ln.digits) for ln in g) >= MIN_DIGITS - 1]
    if not groups:
        return PhotoReading(None, reason="no_counter")
    groups.sort(key=lambda g: -max(ln.height for ln in g))
    best = groups[0]
    if len(groups) > 1:
        h0 = max(ln.height for ln in best)
        h1 = max(ln.height for ln in groups[1])
        d0, d1 = sum(len(ln.digits) for ln in best), sum(len(ln.digits) for ln in groups[1])
        if h1 > 0.9 * h0 and d1 >= MIN_DIGITS and d0 >= MIN_DIGITS:
            return PhotoReading(None, reason="ambiguous")
    crop = _straighten(img, np.concatenate([ln.box for ln in best]), pad=0.15)
    red = _red_start(crop)
    if red is not None:
        crop = crop[:, :red]
    again, _ = ocr(crop, use_det=False, use_cls=False)
    if not again:
        return PhotoReading(None, reason="no_counter")
    text, score = str(again[0][0]), float(again[0][1])
    dot = None if red is not None else _dot_fraction(crop)
    value, reason = _value_of(text, dot)
    if value is None:
        return PhotoReading(None, text=text, score=score, reason=reason)
    if score < MIN_SCORE:
        return PhotoReading(None, text=text, score=score, reason="low_confidence")
    return PhotoReading(value, text=text, score=score)

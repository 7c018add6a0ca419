"""Reading a meter photo: the kWh value of a German household electricity meter, offline on CPU.

How (docs/reference-bot.md, "Meter reading from a photo"):
1. RapidOCR (PP-OCR models in ONNX, shipped inside the `rapidocr-onnxruntime` wheel) finds every
   text line in the photo and reads it.
2. The counter window is located among them: lines of digits next to each other are joined, and
   the window is the group with the tallest glyphs and a plausible number of digits — the plate's
   serial number, "230 V", "3×230/400 V", "10(60) A", "375 U/kWh", "Bj. 2014" and the OBIS code
   "1.8.0" are smaller or fail the shape test (letters; a line starting with a letter is a label).
3. The window is cut out straight (rotation and perspective undone) and read again on its own,
   and a wider cut too (it wins when it holds the same digits and more: a lost end wheel).
   Its red part (the tenths wheel of a roller counter, not part of the kWh value) is cut off
   first; on a digital display the decimal point is taken from the text, or found as a small
   blob on the digits' baseline when the recogniser dropped it.
   The tallest lines are also decoded as a seven-segment display (`read_seven_segment`: each
   digit's segments sampled where a–g sit, the decimal point a blob on the baseline): the
   recogniser was not trained on segment digits. Where both read a value and disagree, the
   recogniser wins at a score of 0.85 or more (the segment decoding can lose a digit to a speck
   taken for the decimal point), the segments win below MIN_SCORE, else it is "ambiguous".
   When this first pass is not sure (score below SURE_SCORE), a second pass runs on the photo
   with the dark strokes thickened (erosion): a seven-segment digit's separate segments join into
   a glyph the detector finds and the recogniser reads. Two passes that disagree are settled by
   the segment decoding, else by a sure score, else nothing is proposed.
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
SURE_SCORE = 0.90  # at or above it, one pass is enough; below, a second pass must not disagree
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
_LABEL = re.compile(r"(?i)(nr|typ|bj|kl|u/|hz|v\b|a\b|\(|\)|/|x|×)")


def _is_counter_text(text: str) -> bool:
    """Digits (and a decimal mark, maybe 'kWh'), nothing that makes it a label of the plate."""
    t = _UNIT.sub("", text).strip()
    if not t or _LABEL.search(t):
        return False
    if t[0].isalpha() and t[0] not in "OoIl":  # "B 2014" (Bj. 2014 with its j lost), "Nr 123..."
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


def _straighten(img: np.ndarray, points: np.ndarray, pad: float, side: float | None = None) -> np.ndarray:
    """The rotated rectangle around `points`, cut out and turned level, with `pad` × its height
    added above and below and `side` × its height (default `pad`) left and right."""
    import cv2

    (cx, cy), (w, h), angle = cv2.minAreaRect(points.astype(np.float32))
    if w < h:  # OpenCV's angle convention: make the long side horizontal
        w, h, angle = h, w, angle - 90
    if angle < -45:
        angle += 180
    if angle > 45:
        angle -= 180
    w, h = w + 2 * (pad if side is None else side) * h, h * (1 + 2 * pad)
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


def _is_wheel_window(crop: np.ndarray) -> bool:
    """A roller counter's window, which has no decimal point to look for: a dark frame around
    the crop, or the window's dark frame running the crop's full height at both ends."""
    import cv2

    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if float(np.median(border)) < float(grey.mean()) - 5:
        return True
    _, ink = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    w = ink.shape[1]
    full = (ink > 0).mean(axis=0) > 0.9
    return bool(full[: w // 3].any() and full[w - w // 3:].any())


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
    first = _read_once(img, img)
    if first.value is not None and first.score >= SURE_SCORE:
        return first.public()
    # Unsure or nothing read: once more with the dark strokes thickened, which joins a
    # seven-segment digit's segments into a glyph the detector finds and the recogniser reads.
    import cv2

    thick = cv2.erode(img, np.ones((3, 3), np.uint8))
    second = _read_once(thick, img)
    if first.value is None:
        return second.public() if second.value is not None else first.public()
    if second.value is None or second.value == first.value:
        return first.public()
    # Two different numbers. A value the other pass also read, or that two readers of one pass
    # agree on, wins; then one that was read with its decimal mark (the digits' split is known);
    # then the surer reading when it is sure; otherwise nothing is proposed.
    if first.value in second.votes or second.value in first.votes:
        agreed = first if first.value in second.votes else second
        return PhotoReading(agreed.value, text=agreed.text, score=agreed.score)
    for key in (lambda r: r.votes.count(r.value) > 1, lambda r: r.dotted):
        if key(first) != key(second):
            return (first if key(first) else second).public()
    best = max(first, second, key=lambda r: r.score)
    if best.score >= SURE_SCORE:
        return best.public()
    return PhotoReading(None, text=first.text, score=first.score, reason="ambiguous")


@dataclass(frozen=True)
class _Reading(PhotoReading):
    votes: tuple[int, ...] = ()  # every value read on the way (text, segments)
    dotted: bool = False  # the value is the recogniser's, which saw the decimal mark

    def public(self) -> PhotoReading:
        return PhotoReading(self.value, self.text, self.score, self.reason)


def _read_once(img: np.ndarray, original: np.ndarray) -> _Reading:
    """One pass: detect and read `img`; seven-segment decoding on `original` at the same places."""
    ocr = _ocr()
    # No angle classifier: it turned some displays' lines upside down and lost them.
    found, _ = ocr(img, use_cls=False)
    lines = [_Line(np.array(b, dtype=np.float32), str(t), float(s)) for b, t, s in (found or [])]
    text_reading = _read_text_window(img, lines)
    lcd = _read_lcd_window(original, lines)
    votes = tuple(v for v in (text_reading.value, lcd) if v is not None)
    r = _combine(text_reading, lcd)
    dotted = r.value is not None and r.value == text_reading.value and bool(re.search(r"\d[.,]\d", r.text))
    return _Reading(r.value, r.text, r.score, r.reason, votes, dotted)


def _combine(text_reading: PhotoReading, lcd: int | None) -> PhotoReading:
    """The recogniser's reading and the seven-segment decoding of one pass, as one."""
    if lcd is not None and (text_reading.value is None or text_reading.value == lcd):
        return PhotoReading(lcd, text=text_reading.text, score=max(text_reading.score, MIN_SCORE))
    if lcd is not None and text_reading.score >= 0.85:
        # A clean read: the segment decoding loses a digit to a speck taken for the decimal point.
        return text_reading
    if lcd is not None and text_reading.score < MIN_SCORE:
        # The recogniser is unsure (segment digits are not what it was trained on): the segments win.
        return PhotoReading(lcd, text=text_reading.text, score=MIN_SCORE)
    if lcd is not None:
        return PhotoReading(None, text=text_reading.text, score=text_reading.score, reason="ambiguous")
    return text_reading


def _read_lcd_window(img: np.ndarray, lines: list[_Line]) -> int | None:
    """The value on a seven-segment display among the tallest detected lines, if one decodes."""
    for ln in sorted(lines, key=lambda ln: -ln.height)[:3]:
        got = read_seven_segment(_straighten(img, ln.box, pad=0.15))
        if got is None:
            continue
        digits, _ = got
        if MIN_DIGITS <= len(digits) <= MAX_DIGITS and int(digits) <= 999_999:
            return int(digits)
    return None


def _read_text_window(img: np.ndarray, lines: list[_Line]) -> PhotoReading:
    """The counter window read by the text recogniser (roller counters, clear displays)."""
    ocr = _ocr()
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
    # Wider to the sides: the detector sometimes leaves out a wheel at either end.
    crop = _straighten(img, np.concatenate([ln.box for ln in best]), pad=0.15, side=0.5)
    red = _red_start(crop)
    if red is not None:
        crop = crop[:, :red]
    again, _ = ocr(crop, use_det=False, use_cls=False)
    if not again:
        return PhotoReading(None, reason="no_counter")
    text, score = str(again[0][0]), float(again[0][1])
    dot = None if red is not None or _is_wheel_window(crop) else _dot_fraction(crop)
    value, reason = _value_of(text, dot)
    if value is None:
        return PhotoReading(None, text=text, score=score, reason=reason)
    if score < MIN_SCORE:
        return PhotoReading(None, text=text, score=score, reason="low_confidence")
    if dot is None:
        # The detector may have left out an end wheel (or digit) further out than half a glyph.
        # Read a wider cut as well; it wins when it holds the same digits and more.
        wide = _straighten(img, np.concatenate([ln.box for ln in best]), pad=0.15, side=1.2)
        red = _red_start(wide)
        wide = wide[:, :red] if red is not None else wide
        more, _ = ocr(wide, use_det=False, use_cls=False)
        if more and float(more[0][1]) >= MIN_SCORE:
            wide_value, _ = _value_of(str(more[0][0]), None)
            digits = re.sub(r"\D", "", text)
            if wide_value is not None and digits in re.sub(r"\D", "", str(more[0][0])) and wide_value > value:
                return PhotoReading(wide_value, text=str(more[0][0]), score=float(more[0][1]))
    return PhotoReading(value, text=text, score=score)


# --- seven-segment displays -------------------------------------------------------------------------

_PATTERNS = {  # segments a b c d e f g -> digit
    (1, 1, 1, 1, 1, 1, 0): 0, (0, 1, 1, 0, 0, 0, 0): 1, (1, 1, 0, 1, 1, 0, 1): 2, (1, 1, 1, 1, 0, 0, 1): 3,
    (0, 1, 1, 0, 0, 1, 1): 4, (1, 0, 1, 1, 0, 1, 1): 5, (1, 0, 1, 1, 1, 1, 1): 6, (1, 1, 1, 0, 0, 0, 0): 7,
    (1, 1, 1, 1, 1, 1, 1): 8, (1, 1, 1, 1, 0, 1, 1): 9, (1, 1, 1, 0, 0, 1, 0): 7, (0, 1, 1, 1, 0, 1, 1): 9,
    (1, 0, 1, 1, 1, 1, 0): 6,
}


def _deslant(ink: np.ndarray) -> np.ndarray:
    """Undo the italic slant of LCD digits: the shear that leaves the most empty columns."""
    import cv2

    h, w = ink.shape
    best, best_empty = ink, -1
    for shear in np.linspace(-0.05, 0.25, 13):
        m = np.float32([[1, shear, -shear * h / 2], [0, 1, 0]])
        out = cv2.warpAffine(ink, m, (w, h), flags=cv2.INTER_NEAREST)
        empty = int((out.sum(axis=0) == 0).sum())
        if empty > best_empty:
            best, best_empty = out, empty
    return best


def read_seven_segment(crop: np.ndarray) -> tuple[str, int | None] | None:
    """The digits of a dark-on-light seven-segment display in a level crop before its decimal
    point, and whether there was one: (digits, position or None). None unless every digit before
    the point is a clean segment pattern."""
    import cv2

    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    grey = cv2.GaussianBlur(grey, (3, 3), 0)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    _, ink = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    if float(np.median(border)) < float(grey.mean()) - 5 or ink.mean() / 255 > 0.45:
        return None  # light digits on a dark ground: not an LCD
    ink = _deslant(ink)
    h = ink.shape[0]
    # Join each digit's segments into one blob: segments are a few pixels apart vertically; keep
    # the horizontal growth small so the decimal point stays apart.
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (max(1, int(h * 0.03)), max(2, int(h * 0.14))))
    _, _, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(ink, kernel), 8)
    blobs = [s for s in stats[1:] if s[3] > h * 0.3]
    if not blobs:
        return None
    digit_h = max(s[3] for s in blobs)
    digits = sorted((s for s in blobs if s[3] > digit_h * 0.75), key=lambda s: s[0])
    if len(digits) < MIN_DIGITS:
        return None
    base = int(np.median([s[1] + s[3] for s in digits]))
    top = int(np.median([s[1] for s in digits]))
    width = int(np.median([s[2] for s in digits if s[2] > digit_h * 0.35] or [digit_h // 2]))
    # The decimal point: a small blob on the baseline between two digits (in the raw ink).
    point = None
    _, _, raw, _ = cv2.connectedComponentsWithStats(ink, 8)
    for x, y, w, hh, area in raw[1:]:
        if (hh < digit_h * 0.3 and w < digit_h * 0.3 and area > (digit_h * 0.05) ** 2
                and abs(int(y + hh) - base) < digit_h * 0.12):
            before = sum(1 for d in digits if d[0] + d[2] / 2 < x)
            if 0 < before < len(digits):
                point = before if point is None else min(point, before)
    text = ""
    for x, _, w, _, _ in digits[: point if point is not None else len(digits)]:
        if w < width * 0.55:  # a "1": only the right segments, a narrow blob
            text += "1"
            continue
        cell = ink[top:base, max(0, x):x + min(w, width)].astype(np.float32) / 255
        ch, cw = cell.shape
        if ch < 4 or cw < 3:
            return None

        def on(y0: float, y1: float, x0: float, x1: float) -> int:
            part = cell[int(y0 * ch):max(int(y1 * ch), int(y0 * ch) + 1), int(x0 * cw):max(int(x1 * cw), int(x0 * cw) + 1)]
            return int(part.mean() > 0.3)

        seg = (on(0, 0.15, 0.3, 0.7), on(0.2, 0.42, 0.7, 1), on(0.58, 0.8, 0.7, 1), on(0.85, 1, 0.3, 0.7),
               on(0.58, 0.8, 0, 0.3), on(0.2, 0.42, 0, 0.3), on(0.43, 0.57, 0.3, 0.7))
        if seg not in _PATTERNS:
            return None
        text += str(_PATTERNS[seg])
    return text, point

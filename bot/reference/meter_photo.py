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
   Without a decimal point, the window is also found by its own shape (`_read_wheels`: the dark
   frame, or white wheels side by side) and read within it: wheels the detector left out are
   in, plate text beside the window (a serial number, the frame's edge as a 1) is out.
   Its red part (the tenths wheel of a roller counter, not part of the kWh value) is cut off
   first; on a digital display the decimal point is taken from the text, or found as a small
   blob on the digits' baseline when the recogniser dropped it.
   The tallest line of digits is also decoded as a seven-segment display (`read_seven_segment`):
   the dark strokes below the local background, the slant undone, each digit's segments a-g
   looked at where they sit, the value's digits told from the smaller OBIS code and 'kWh' by
   their height, the decimal point found as a blob on the baseline (alone or stuck to a digit)
   where the digits also stand further apart. The recogniser was not trained on segment digits
   (it reads 6 as 8, 7 as 1, joins "1.8.0" to the value): where the decoding is clean (every
   digit fits its pattern clearly, the point is placed) it wins; both agreeing is sure.
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
    # agree on, wins; then a clean seven-segment decoding; then one that was read with its decimal
    # mark (the digits' split is known); then the surer reading when it is sure; otherwise nothing
    # is proposed.
    if first.value in second.votes or second.value in first.votes:
        agreed = first if first.value in second.votes else second
        return PhotoReading(agreed.value, text=agreed.text, score=agreed.score)
    for key in (lambda r: r.votes.count(r.value) > 1, lambda r: r.segments, lambda r: r.dotted):
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
    segments: bool = False  # the value is a clean seven-segment decoding's

    def public(self) -> PhotoReading:
        return PhotoReading(self.value, self.text, self.score, self.reason)


def _read_once(img: np.ndarray, original: np.ndarray) -> _Reading:
    """One pass: detect and read `img`; seven-segment decoding on `original` at the same places."""
    ocr = _ocr()
    # No angle classifier: it turned some displays' lines upside down and lost them.
    found, _ = ocr(img, use_cls=False)
    lines = [_Line(np.array(b, dtype=np.float32), str(t), float(s)) for b, t, s in (found or [])]
    text_reading = _read_text_window(img, lines)
    seg, seg_line = _read_lcd_window(original, lines)
    lcd = None if seg is None else _segment_value(seg, seg_line)
    votes = tuple(v for v in (text_reading.value, lcd) if v is not None)
    r = _combine(text_reading, lcd, seg)
    dotted = r.value is not None and r.value == text_reading.value and bool(re.search(r"\d[.,]\d", r.text))
    return _Reading(r.value, r.text, r.score, r.reason, votes, dotted, segments=lcd is not None and r.value == lcd)


def _combine(text_reading: PhotoReading, lcd: int | None, seg: Segments | None) -> PhotoReading:
    """The recogniser's reading and the seven-segment decoding of one pass, as one. Where both
    read a number, they agree (sure) or the segments win: the recogniser takes segment digits for
    others (6 for 8, 7 for 1) and joins the OBIS code to the value; the decoder only gives a value
    when every digit fits a pattern clearly and the decimal point is placed. Where the decoding
    gave no value but clearly saw a digit that an unsure recogniser's reading contradicts, nothing
    is proposed (a sure one reads wheels that are no segment digits at all)."""
    if lcd is None:
        if (text_reading.value is not None and text_reading.score < SURE_SCORE and seg is not None
                and seg.contradicts(str(text_reading.value))):
            return PhotoReading(None, text=text_reading.text, score=text_reading.score, reason="ambiguous")
        return text_reading
    if text_reading.value == lcd:
        return PhotoReading(lcd, text=text_reading.text, score=max(text_reading.score, SURE_SCORE))
    return PhotoReading(lcd, text=text_reading.text, score=max(MIN_SCORE, min(text_reading.score, 0.85)))


def _read_lcd_window(img: np.ndarray, lines: list[_Line]) -> tuple[Segments | None, str]:
    """The tallest detected line of digits decoded as a seven-segment display, and the
    recogniser's text of that line."""
    for ln in sorted(lines, key=lambda ln: -ln.height)[:2]:
        if sum(ch.isdigit() for ch in ln.text) < 3:
            continue  # a plate label, or 'kWh'
        crop = _straighten(img, ln.box, pad=0.3, side=1.0)
        if _red_start(crop) is not None:
            return None, ""  # a roller counter's red tenths wheel: not a display
        seg = read_seven_segment(crop, ln.height)
        if seg is not None:
            return seg, ln.text
    return None, ""


def _segment_value(seg: Segments, text: str) -> int | None:
    """The kWh value of a decoded display line: its digits before the decimal point. Where the
    decoder saw no point, the recogniser's text of the same line places it (`_point_in_text`)."""
    if not seg.clean:
        return None
    point = seg.point if seg.point is not None else _point_in_text(text, seg.digits)
    if point is None:
        return None
    whole = seg.digits[:point]
    if not MIN_DIGITS <= len(whole) <= MAX_DIGITS or int(whole) > 999_999:
        return None
    return int(whole)


def _point_in_text(text: str, digits: str) -> int | None:
    """How many of `digits` stand before the decimal mark in `text` (all of them when it shows
    none), provided `text` ends with as many digits, most of them the same (the recogniser
    misreads some segment digits but rarely the point); else None."""
    t = re.sub(r"[^\d.,]", "", _UNIT.sub("", text))
    seen, same, point = 0, 0, None
    for ch in reversed(t):
        if seen == len(digits):
            break
        if ch.isdigit():
            same += ch == digits[len(digits) - 1 - seen]
            seen += 1
        elif point is None and seen > 0:
            point = len(digits) - seen
    if seen < len(digits) or same < 0.6 * len(digits):
        return None
    return len(digits) if point is None else point


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
    if dot is None:
        wheels = _read_wheels(img, np.concatenate([ln.box for ln in best]))
        digits = re.sub(r"\D", "", text)
        if wheels is not None and (value is None or (digits in wheels.text and wheels.value > value)):
            return wheels
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


def _read_wheels(img: np.ndarray, points: np.ndarray) -> PhotoReading | None:
    """A roller counter's window read on its own: cut out by its dark frame, so that a wheel the
    detector left out is in and plate text beside the window (a serial number, the frame's edge
    read as a 1) is out. None when no such window or no sure reading."""
    wide = _straighten(img, points, pad=0.6, side=5.0)
    span = _window_span(wide) or _white_wheels_span(wide)
    if span is None:
        return None
    x0, x1, y0, y1 = span
    window = wide[y0:y1, x0:x1]
    red = _red_start(window)
    if red is not None:
        window = window[:, :red]
    import cv2

    margin = max(2, (y1 - y0) // 8)
    window = cv2.copyMakeBorder(window, margin, margin, margin, margin, cv2.BORDER_REPLICATE)
    got, _ = _ocr()(window, use_det=False, use_cls=False)
    if not got or float(got[0][1]) < SURE_SCORE:
        return None
    text = re.sub(r"\D", "", str(got[0][0]))
    value, _ = _value_of(text, None)
    return None if value is None else PhotoReading(value, text=text, score=float(got[0][1]))


def _white_wheels_span(crop: np.ndarray) -> tuple[int, int, int, int] | None:
    """The white number wheels in a level crop, as x0, x1, y0, y1: at least three light blobs of
    a wheel's shape side by side, of one height (on a dark plate the frame is not told from the
    plate, but the wheels are)."""
    import cv2

    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    h = grey.shape[0]
    _, light = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    _, _, stats, _ = cv2.connectedComponentsWithStats(light, 4)
    cells = [s for s in stats[1:] if 0.25 * h < s[3] < 0.9 * h and 0.4 < s[2] / s[3] < 1.0]
    best: list = []
    for ref in cells:
        row = [c for c in cells if abs(c[3] - ref[3]) < 0.15 * ref[3] and abs(c[1] - ref[1]) < 0.15 * ref[3]]
        if len(row) > len(best):
            best = row
    if len(best) < 3:
        return None
    x0 = min(int(c[0]) for c in best)
    x1 = max(int(c[0] + c[2]) for c in best)
    y0 = int(np.median([c[1] for c in best]))
    y1 = int(np.median([c[1] + c[3] for c in best]))
    # Cells side by side: the row's width is about the cells' widths and the bars between them.
    if x1 - x0 > 1.4 * sum(int(c[2]) for c in best):
        return None
    return x0, x1, y0, y1


def _window_span(crop: np.ndarray) -> tuple[int, int, int, int] | None:
    """The inside of a roller counter's window in a level crop around its wheels, as x0, x1, y0,
    y1: the dark blob under the crop's middle (black wheels, or the frame and bars between white
    wheels), where it has a top and a bottom edge, less its frame. None when that blob fills the
    crop's height (a dark plate: no frame to tell)."""
    import cv2

    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    _, dark = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(dark, 8)
    middle = [i for i in np.unique(labels[h // 3: 2 * h // 3, w // 3: 2 * w // 3]) if i]
    if not middle:
        return None
    i = max(middle, key=lambda i: stats[i][2])
    x, y, bw, bh, _ = stats[i]
    if bh < h * 0.4 or y <= 0 or y + bh >= h:
        return None
    blob = labels[y:y + bh, x:x + bw] == i
    edge = max(2, int(bh * 0.15))
    framed = np.where(blob[:edge].any(axis=0) & blob[-edge:].any(axis=0))[0]
    if framed.size == 0:
        return None
    # The longest run of framed columns (small breaks allowed): plate text touching the window
    # has no top and bottom edge.
    breaks = np.where(np.diff(framed) > max(3, bh * 0.1))[0]
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [framed.size - 1]])
    k = int(np.argmax(framed[ends] - framed[starts]))
    a, b = int(framed[starts[k]]), int(framed[ends[k]]) + 1
    # Less the frame: columns and rows the blob fills all through.
    full_cols, full_rows = blob.mean(axis=0) > 0.9, blob[:, a:b].mean(axis=1) > 0.9
    while a < b and full_cols[a]:
        a += 1
    while b > a and full_cols[b - 1]:
        b -= 1
    top, bottom = 0, bh
    while top < bottom and full_rows[top]:
        top += 1
    while bottom > top and full_rows[bottom - 1]:
        bottom -= 1
    if b - a < bh or bottom - top < bh * 0.5:
        return None
    return x + a, x + b, y + top, y + bottom


# --- seven-segment displays -------------------------------------------------------------------------
#
# The recogniser was trained on printed text, not on segment digits: it takes a 6 for an 8, a 7 for
# a 1, and joins the small OBIS code "1.8.0" to the value. So a display is also decoded the way its
# driver lights it: each digit's seven segments are looked at where they sit.

_SEGMENTS = {  # segments a b c d e f g of each digit
    "0": (1, 1, 1, 1, 1, 1, 0), "1": (0, 1, 1, 0, 0, 0, 0), "2": (1, 1, 0, 1, 1, 0, 1), "3": (1, 1, 1, 1, 0, 0, 1),
    "4": (0, 1, 1, 0, 0, 1, 1), "5": (1, 0, 1, 1, 0, 1, 1), "6": (1, 0, 1, 1, 1, 1, 1), "7": (1, 1, 1, 0, 0, 0, 0),
    "8": (1, 1, 1, 1, 1, 1, 1), "9": (1, 1, 1, 1, 0, 1, 1),
}
_LINE_PX = 60.0  # the line is scaled to this height first, so that every size below is in one unit
SURE_MARGIN = 0.25  # a digit's pattern must beat the next best by this much (segments, 0..7)


@dataclass(frozen=True)
class Segments:
    """A seven-segment line as decoded: every digit left to right ('?' where no pattern fits),
    how many stand before the decimal point (None: no point seen) and each digit's margin
    between its pattern and the next best one (0 for '?')."""

    digits: str
    point: int | None
    margins: tuple[float, ...]

    @property
    def margin(self) -> float:
        return min(self.margins, default=0.0)

    @property
    def clean(self) -> bool:
        return "?" not in self.digits and self.margin >= SURE_MARGIN

    def contradicts(self, digits: str) -> bool:
        """Whether `digits` (another reader's reading of the same line: all but two digits the
        same) cannot stand on this line without differing from a digit decoded clearly: the other
        reader misread a segment digit. Only for a line that is clearly a display: all its digits
        but one decoded clearly (a roller's wheels decode as garbage)."""
        n = len(digits)
        if "?" in self.digits or sum(m < SURE_MARGIN for m in self.margins) > 1 or n > len(self.digits):
            return False
        starts = range(len(self.digits) - n + 1)
        if max(sum(d == self.digits[i + k] for k, d in enumerate(digits)) for i in starts) < n - 2:
            return False  # not the same line, or not read alike at all
        return not any(all(d == self.digits[i + k] or self.margins[i + k] < SURE_MARGIN
                           for k, d in enumerate(digits)) for i in starts)


def _ink(crop: np.ndarray) -> np.ndarray:
    """Dark strokes as 255 on 0: the darkness below the local background (a grey closing wider
    than a segment), so that glare and the edge of the display do not count as ink."""
    import cv2

    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    k = int(_LINE_PX * 0.35) | 1
    background = cv2.morphologyEx(grey, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    darker = cv2.GaussianBlur(cv2.subtract(background, grey), (3, 3), 0)
    t, _ = cv2.threshold(darker, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return ((darker > max(t, 25)) * 255).astype(np.uint8)


def _deslant(ink: np.ndarray) -> np.ndarray:
    """Undo the italic slant of LCD digits: the shear with the sharpest column profile (upright
    vertical segments pile their ink into few columns)."""
    import cv2

    h, w = ink.shape
    best, best_score = ink, -1.0
    for shear in np.linspace(-0.08, 0.3, 20):
        m = np.float32([[1, shear, -shear * h / 2], [0, 1, 0]])
        out = cv2.warpAffine(ink, m, (w, h), flags=cv2.INTER_NEAREST)
        score = float((out.sum(axis=0).astype(np.float64) ** 2).sum())
        if score > best_score:
            best, best_score = out, score
    return best


def _segment_fractions(cell: np.ndarray) -> tuple[float, ...]:
    """For a cell holding one digit, how much of each segment a-g has ink: the share of columns
    (horizontal segments) or rows (vertical ones) crossing ink where the segment would be."""
    ch, cw = cell.shape

    def part(y0: float, y1: float, x0: float, x1: float) -> np.ndarray:
        return cell[int(y0 * ch):max(int(y1 * ch), int(y0 * ch) + 1), int(x0 * cw):max(int(x1 * cw), int(x0 * cw) + 1)]

    def across(*box: float) -> float:  # a horizontal segment
        return float(part(*box).any(axis=0).mean())

    def down(*box: float) -> float:  # a vertical segment
        return float(part(*box).any(axis=1).mean())

    return (across(0, 0.22, 0.3, 0.7), down(0.2, 0.38, 0.65, 1), down(0.62, 0.8, 0.65, 1), across(0.78, 1, 0.3, 0.7),
            down(0.62, 0.8, 0, 0.35), down(0.2, 0.38, 0, 0.35), across(0.38, 0.62, 0.3, 0.7))


def _classify(fractions: tuple[float, ...]) -> tuple[str, float]:
    """The digit whose segments fit best, and by how much it beats the next best."""
    costs = sorted((sum(abs(f - on) for f, on in zip(fractions, pattern)), digit)
                   for digit, pattern in _SEGMENTS.items())
    return costs[0][1], costs[1][0] - costs[0][0]


@dataclass
class _Glyph:
    x: int
    width: int
    mask: np.ndarray  # the glyph's ink between the digits' top and baseline


@dataclass
class _DigitRow:
    glyphs: list[_Glyph]  # left to right
    points: list[int]  # decimal point candidates, as the number of digits before them
    height: float  # of a digit
    width: int  # of a digit other than '1'
    base: int  # the digits' baseline (row)


def _digit_glyphs(ink: np.ndarray, band: tuple[int, int]) -> _DigitRow | None:
    """The value's digits on a deslanted line whose ink is kept in rows `band`, and decimal
    points stuck to them. A blob that reaches the band's edge is not a digit: it goes on beyond
    the detected line (a roller counter's frame or the bars between its wheels). A digit's segments are joined by a short
    vertical dilation; the value's digits are the most common tall height (the OBIS code and
    'kWh' are smaller)."""
    import cv2

    h = ink.shape[0]
    grow = int(_LINE_PX * 0.2)
    joined = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_RECT, (1, grow)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(joined, 8)
    top_edge, bottom_edge = band[0] - grow // 2 + 1, band[1] + grow // 2 - 1
    comps = [(i, *stats[i][:4]) for i in range(1, n)
             if h * 0.25 < stats[i][3] < h * 0.97 and stats[i][1] > top_edge and stats[i][1] + stats[i][3] < bottom_edge]
    if not comps:
        return None
    heights = [c[4] for c in comps]
    count, dh = max((sum(1 for x in heights if 0.9 * y <= x <= 1.1 * y), y) for y in heights)
    if count < 3:
        return None
    digits = sorted((c for c in comps if 0.78 * dh <= c[4] <= 1.15 * dh), key=lambda c: c[1])
    widths = [c[3] for c in digits if c[3] > dh * 0.35]
    if not widths:
        return None
    cw = int(np.median(widths))
    top = int(np.median([c[2] for c in digits]))
    base = int(np.median([c[2] + c[4] for c in digits]))
    glyphs: list[_Glyph] = []
    points: list[int] = []
    for i, x, _, w, _ in digits:
        mine = (labels[top:base, x:x + w] == i) & (ink[top:base, x:x + w] > 0)
        for p0, p1, point_after in _split_at_points(mine, cw, dh):
            cols = np.where(mine[:, p0:p1].any(axis=0))[0]
            if cols.size:
                p0, p1 = p0 + int(cols[0]), p0 + int(cols[-1]) + 1
                glyphs.append(_Glyph(x + p0, p1 - p0, mine[:, p0:p1]))
                if point_after:
                    points.append(len(glyphs))
    return _DigitRow(glyphs, points, float(dh), cw, base)


def _split_at_points(mine: np.ndarray, cw: int, dh: float) -> list[tuple[int, int, bool]]:
    """A digit's blob may have the decimal point stuck to it (blur, thick segments; a '1' and its
    point are as wide as a digit), maybe the next digit too: split it where the columns have ink
    only near the baseline. Returns (start, end, a point follows) per piece."""
    w = mine.shape[1]
    low = ~mine[: int(mine.shape[0] * 0.6)].any(axis=0)
    pieces, start, c = [], 0, 0
    while c < w:
        if not low[c]:
            c += 1
            continue
        e = c
        while e < w and low[e]:
            e += 1
        # Between two digits a short run will do; at the right end it must be as wide as a
        # point, not just the foot of a digit that is still a little slanted.
        if c - start > 0.1 * dh and e - c >= max(2, (0.05 if e < w else 0.12) * dh):
            pieces.append((start, c, True))
            start = e
        c = e
    if w - start > 0.1 * dh:
        pieces.append((start, w, False))
    return pieces or [(0, w, False)]


def _loose_points(ink: np.ndarray, glyphs: list[_Glyph], dh: float, base: int) -> list[int]:
    """Decimal point candidates that stand apart: a small squarish blob on the baseline whose
    centre is in the gap between two digits (a segment of a '1' or '7' is not in a gap)."""
    import cv2

    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, 8)
    found = []
    for x, y, w, h, area in stats[1:]:
        if not (0.05 * dh < h < 0.3 * dh and 0.05 * dh < w < 0.3 * dh and 0.5 < w / h < 2
                and area > 0.5 * w * h and abs(int(y + h) - base) < 0.12 * dh):
            continue
        if any(g.x < x + w / 2 < g.x + g.width for g in glyphs):
            continue
        before = sum(1 for g in glyphs if g.x + g.width <= x)
        if 0 < before < len(glyphs):
            found.append(before)
    return found


def _choose_point(glyphs: list[_Glyph], candidates: list[int], dh: float) -> int | None:
    """Where the decimal point is: a candidate blob where the digits also stand further apart
    (the point takes its own space on a display), else one gap clearly wider than the others."""
    rights = [g.x + g.width for g in glyphs]  # right edges: a '1' is right-aligned in its cell
    steps = np.diff(rights)
    if steps.size < 3:
        return None
    usual = float(np.median(steps))
    extra = [0.0] + [float(st) - usual for st in steps]  # extra[k]: the space before digit k
    confirmed = sorted({k for k in candidates if 0 < k < len(extra) and extra[k] > 0.04 * dh})
    if confirmed:
        return confirmed[0]
    order = np.argsort(extra)[::-1]
    if extra[order[0]] > 0.15 * dh and extra[order[1]] < 0.07 * dh:
        return int(order[0])
    return None


def read_seven_segment(crop: np.ndarray, line_height: float) -> Segments | None:
    """Decode a dark-on-light seven-segment line in a level crop whose middle `line_height`
    pixels are the detected line. None when no row of at least three equal digits is there."""
    import cv2

    f = _LINE_PX / max(line_height, 1.0)
    crop = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    ink = _ink(crop)
    # Only the detected line's rows: plate text above or below the display is not the value.
    pad = (crop.shape[0] - _LINE_PX) / 2
    band = max(0, int(pad - 0.06 * _LINE_PX)), int(crop.shape[0] - pad + 0.06 * _LINE_PX)
    ink[: band[0]] = 0
    ink[band[1]:] = 0
    ink = _deslant(ink)
    row = _digit_glyphs(ink, band)
    if row is None:
        return None
    text, margins = "", []
    for g in row.glyphs:
        if g.width > row.width * 1.3:
            text += "?"
            margins.append(0.0)
            continue
        cell = g.mask[:, max(0, g.width - row.width):].astype(np.uint8)
        if cell.shape[1] < row.width:  # a "1": its segments are at the right of its cell
            cell = np.pad(cell, ((0, 0), (row.width - cell.shape[1], 0)))
        digit, margin = _classify(_segment_fractions(cell))
        text += digit
        margins.append(margin)
    candidates = row.points + _loose_points(ink, row.glyphs, row.height, row.base)
    return Segments(text, _choose_point(row.glyphs, candidates, row.height), tuple(margins))

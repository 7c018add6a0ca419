"""Synthetic photos of German household electricity meters, with the true reading.

Two kinds, as customers photograph them:
- `roller`: a mechanical roller counter (Ferraris meter): black or white number wheels in a
  window, often a red last wheel (tenths of a kWh, not part of the value), on a meter plate full
  of other numbers (serial number, 230 V, 10(60) A, rev/kWh) that must not be read;
- `lcd`: a digital meter's seven-segment LCD, sometimes showing the OBIS code of the register
  (1.8.0, the reading customers are asked for) beside the value, with one to three decimals.

Every image is then photographed: rotation up to ±15°, perspective, blur, noise, glare, a
cluttered background, JPEG compression. `generate(seed)` is deterministic for a seed.

    python bench/meter_images.py OUT_DIR [N]      # writes N images and truth.json
"""

from __future__ import annotations

import io
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts"))
# Fonts for the number wheels: any of these present (Debian's fonts-dejavu-core is always there).
ROLLER_FONTS = (
    "DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono.ttf",
    "DejaVuSansCondensed-Bold.ttf", "DejaVuSansCondensed.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif.ttf",
    "DejaVuSerifCondensed-Bold.ttf", "LiberationSans-Bold.ttf", "LiberationMono-Bold.ttf",
    "FreeSansBold.ttf", "FreeMonoBold.ttf",
)
LABEL_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansCondensed.ttf")


def _find_fonts(names: tuple[str, ...]) -> list[Path]:
    found: dict[str, Path] = {}
    for root in FONT_DIRS:
        if root.is_dir():
            for path in root.rglob("*.ttf"):
                found.setdefault(path.name, path)
    fonts = [found[n] for n in names if n in found]
    if not fonts:
        raise RuntimeError("no TrueType fonts found (install fonts-dejavu-core)")
    return fonts


_FONT_CACHE: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}


def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    key = (str(path), size)
    if key not in _FONT_CACHE:
        _FONT_CACHE[key] = ImageFont.truetype(str(path), size)
    return _FONT_CACHE[key]


@dataclass(frozen=True)
class MeterImage:
    kind: str  # "roller" | "lcd"
    value: int  # the true reading in kWh (what the customer should submit)
    shown: str  # what the counter shows, e.g. "012345,6" or "1.8.0 012345.67 kWh"
    jpeg: bytes


# --- the meter face -------------------------------------------------------------------------------


def _clutter_text(rng: random.Random) -> list[str]:
    serial = "".join(rng.choice("0123456789") for _ in range(rng.choice((7, 8, 10))))
    return rng.sample([
        f"Nr. {serial}", "230 V  10(60) A  50 Hz", f"{rng.choice((75, 96, 120, 150, 375, 600))} U/kWh",
        "Wechselstromzähler", "Drehstromzähler", "Kl. 2", f"Bj. {rng.randint(1985, 2016)}",
        "3 x 230/400 V", "Eigentum der Stadtwerke", f"Typ DZ{rng.randint(10, 99)}", "kWh",
    ], k=rng.randint(3, 6))


def _plate(rng: random.Random, w: int, h: int) -> Image.Image:
    tone = rng.choice(((225, 222, 210), (200, 200, 200), (235, 235, 228), (180, 185, 190), (60, 62, 66)))
    img = Image.new("RGB", (w, h), tone)
    draw = ImageDraw.Draw(img)
    dark = sum(tone) < 300
    ink = (230, 230, 230) if dark else (30, 30, 30)
    fonts = _find_fonts(LABEL_FONTS)
    y = rng.randint(4, 12)
    for line in _clutter_text(rng):
        size = rng.randint(max(9, h // 22), max(10, h // 13))
        draw.text((rng.randint(6, max(7, w // 3)), y), line, fill=ink, font=_font(rng.choice(fonts), size))
        y += size + rng.randint(4, 14)
        if y > h - 20:
            break
    return img


def _roller_window(rng: random.Random, digits: str, red: str | None, font: Path, cell_h: int) -> Image.Image:
    """The number wheels: one cell per digit, a red cell for the tenths if `red`."""
    cell_w = int(cell_h * rng.uniform(0.62, 0.8))
    gap = rng.randint(1, max(2, cell_w // 8))
    cells = list(digits) + ([red] if red is not None else [])
    w = len(cells) * (cell_w + gap) + gap
    frame = rng.randint(3, 8)
    white_wheels = rng.random() < 0.35
    img = Image.new("RGB", (w + 2 * frame, cell_h + 2 * frame), (15, 15, 15))
    draw = ImageDraw.Draw(img)
    fnt = _font(font, int(cell_h * rng.uniform(0.62, 0.78)))
    offset = rng.uniform(-0.06, 0.06)  # wheels are not perfectly aligned
    for i, ch in enumerate(cells):
        x0 = frame + gap + i * (cell_w + gap)
        is_red = red is not None and i == len(cells) - 1
        if is_red:
            bg, fg = (rng.randint(160, 210), rng.randint(10, 40), rng.randint(10, 40)), (245, 245, 245)
        elif white_wheels:
            bg, fg = (238, 236, 228), (15, 15, 15)
        else:
            bg, fg = (25, 25, 25), (240, 240, 240)
        draw.rectangle((x0, frame, x0 + cell_w - 1, frame + cell_h - 1), fill=bg)
        box = draw.textbbox((0, 0), ch, font=fnt)
        tw, th = box[2] - box[0], box[3] - box[1]
        dy = int(offset * cell_h * rng.uniform(0.3, 1.0))
        draw.text((x0 + (cell_w - tw) / 2 - box[0], frame + (cell_h - th) / 2 - box[1] + dy), ch, fill=fg, font=fnt)
    return img


SEGMENTS = {  # a b c d e f g
    "0": "abcdef", "1": "bc", "2": "abdeg", "3": "abcdg", "4": "bcfg", "5": "acdfg",
    "6": "acdefg", "7": "abc", "8": "abcdefg", "9": "abcdfg",
}


def _seven_segment(draw: ImageDraw.ImageDraw, x: float, y: float, w: float, h: float, ch: str,
                   ink: tuple[int, int, int], t: float, slant: float) -> None:
    half = h / 2

    def poly(points: list[tuple[float, float]]) -> None:
        draw.polygon([(px + slant * (h - py), y + py) for px, py in points], fill=ink)

    def hseg(yy: float) -> list[tuple[float, float]]:
        return [(x + t * 0.6, yy), (x + t, yy - t / 2), (x + w - t, yy - t / 2), (x + w - t * 0.6, yy),
                (x + w - t, yy + t / 2), (x + t, yy + t / 2)]

    def vseg(xx: float, y0: float, y1: float) -> list[tuple[float, float]]:
        return [(xx, y0 + t * 0.6), (xx + t / 2, y0 + t), (xx + t / 2, y1 - t), (xx, y1 - t * 0.6),
                (xx - t / 2, y1 - t), (xx - t / 2, y0 + t)]

    shapes = {
        "a": hseg(t / 2), "g": hseg(half), "d": hseg(h - t / 2),
        "f": vseg(x + t / 2, 0, half), "b": vseg(x + w - t / 2, 0, half),
        "e": vseg(x + t / 2, half, h), "c": vseg(x + w - t / 2, half, h),
    }
    for seg in SEGMENTS[ch]:
        poly(shapes[seg])


def _lcd(rng: random.Random, text: str, obis: str | None, digit_h: int) -> Image.Image:
    """A seven-segment LCD: optional small OBIS code, the value with its decimal point, 'kWh'."""
    w_digit = digit_h * rng.uniform(0.5, 0.62)
    gap = digit_h * rng.uniform(0.12, 0.2)
    t = max(2.0, digit_h * rng.uniform(0.1, 0.15))
    slant = rng.uniform(0.0, 0.12)
    bg = rng.choice(((170, 185, 160), (190, 200, 180), (150, 170, 150), (205, 210, 195), (165, 180, 175)))
    ink = (rng.randint(20, 45),) * 3
    pad = int(digit_h * 0.35)
    small_h = digit_h * 0.45 if obis else 0
    n_digits = sum(ch.isdigit() for ch in text)
    width = int(pad * 2 + n_digits * (w_digit + gap) + digit_h * 1.6 + (small_h * 3.2 if obis else 0))
    img = Image.new("RGB", (width, int(digit_h + 2 * pad)), bg)
    draw = ImageDraw.Draw(img)
    x = float(pad)
    if obis:
        sw, sg = small_h * 0.55, small_h * 0.15
        for ch in obis:
            if ch == ".":
                draw.ellipse((x - sg * 0.9, pad + small_h - t * 0.7, x - sg * 0.9 + t * 0.7, pad + small_h), fill=ink)
                continue
            _seven_segment(draw, x, pad, sw, small_h, ch, ink, max(1.5, t * 0.6), slant)
            x += sw + sg
        x += small_h * 0.9
    for ch in text:
        if ch == ".":  # the decimal point is its own segment in the space between two digits
            d = t * 1.2
            draw.rectangle((x - gap * 0.4, pad + digit_h - d, x - gap * 0.4 + d, pad + digit_h), fill=ink)
            x += d + gap * 0.3
            continue
        _seven_segment(draw, x, pad, w_digit, digit_h, ch, ink, t, slant)
        x += w_digit + gap
    fnt = _font(_find_fonts(LABEL_FONTS)[0], max(8, int(digit_h * 0.4)))
    draw.text((x + gap, pad + digit_h * 0.55), "kWh", fill=ink, font=fnt)
    return img


# --- the photograph -------------------------------------------------------------------------------


def _background(rng: random.Random, w: int, h: int) -> Image.Image:
    """A wall, a cabinet, cables and stickers around the meter."""
    base = np.zeros((h, w, 3), np.float32)
    c0 = np.array([rng.randint(60, 230) for _ in range(3)], np.float32)
    c1 = np.array([rng.randint(60, 230) for _ in range(3)], np.float32)
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    base[:] = c0 * (1 - ramp) + c1 * ramp
    img = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    fonts = _find_fonts(LABEL_FONTS)
    for _ in range(rng.randint(4, 12)):
        x0, y0 = rng.randint(0, w), rng.randint(0, h)
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        shape = rng.random()
        if shape < 0.4:
            draw.line((x0, y0, rng.randint(0, w), rng.randint(0, h)), fill=colour, width=rng.randint(2, 10))
        elif shape < 0.8:
            draw.rectangle((x0, y0, x0 + rng.randint(10, 120), y0 + rng.randint(10, 80)), fill=colour)
        else:
            word = rng.choice(("Achtung", "Hausanschluss", "Zähler 2", "FI 30mA", "HAK", "L1 L2 L3", "Sicherung 35A"))
            draw.text((x0, y0), word, fill=colour, font=_font(rng.choice(fonts), rng.randint(10, 22)))
    return img


def _perspective(rng: random.Random, img: np.ndarray) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    j = 0.07
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[x + rng.uniform(-j, j) * w, y + rng.uniform(-j, j) * h] for x, y in src])
    dst -= dst.min(axis=0)
    size = (int(dst[:, 0].max()) + 1, int(dst[:, 1].max()) + 1)
    m = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(img, m, size, borderMode=cv2.BORDER_REPLICATE)


def _photograph(rng: random.Random, face: Image.Image) -> bytes:
    import cv2

    arr = _perspective(rng, np.asarray(face))
    face = Image.fromarray(arr).rotate(rng.uniform(-15, 15), resample=Image.BICUBIC, expand=True,
                                       fillcolor=(0, 0, 0))
    mask = Image.fromarray((np.asarray(face).sum(axis=2) > 0).astype(np.uint8) * 255)
    margin_x, margin_y = rng.randint(20, 160), rng.randint(20, 160)
    bg = _background(rng, face.width + 2 * margin_x, face.height + 2 * margin_y)
    bg.paste(face, (margin_x + rng.randint(-15, 15), margin_y + rng.randint(-15, 15)), mask)
    out = np.asarray(bg).astype(np.float32)
    h, w = out.shape[:2]
    # Glare: a bright elliptical highlight (the meter's glass cover reflecting a lamp).
    if rng.random() < 0.5:
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.1, 0.35) * h, rng.uniform(0.1, 0.35) * w
        yy, xx = np.mgrid[0:h, 0:w]
        g = np.exp(-(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)) * rng.uniform(60, 140)
        out += g[:, :, None]
    out *= rng.uniform(0.75, 1.15)  # exposure
    out += np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(2, 12), out.shape)
    out = out.clip(0, 255).astype(np.uint8)
    blur = rng.choice((0, 0, 1, 1, 2, 3))
    if blur:
        out = cv2.GaussianBlur(out, (0, 0), blur * 0.6)
    # Phones send photos scaled to some width; customers hold the phone nearer or farther.
    scale = rng.uniform(0.7, 1.3)
    out = cv2.resize(out, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="JPEG", quality=rng.randint(60, 92))
    return buf.getvalue()


# --- the two kinds ----------------------------------------------------------------------------------


def roller_meter(rng: random.Random, value: int | None = None) -> MeterImage:
    """A roller counter photo; `value` chooses the reading (else a random one)."""
    n = rng.choice((5, 6, 6, 6, 7))  # 7 wheels: the first shows 0 (readings stay below 1 000 000 kWh)
    top = 10 ** min(n, 6)
    if value is not None:
        n = max(n, len(str(value)))
    else:
        value = rng.randint(1000, top - 1) if rng.random() < 0.2 else rng.randint(top // 100, top - 1)
    digits = str(value).zfill(n)
    red = str(rng.randint(0, 9)) if rng.random() < 0.75 else None
    font = rng.choice(_find_fonts(ROLLER_FONTS))
    cell_h = rng.randint(34, 70)
    window = _roller_window(rng, digits, red, font, cell_h)
    w = max(window.width + rng.randint(60, 220), 320)
    h = window.height + rng.randint(150, 280)
    plate = _plate(rng, w, h)
    x = rng.randint(10, w - window.width - 10)
    y = rng.randint(int(h * 0.35), h - window.height - 10)
    plate.paste(window, (x, y))
    draw = ImageDraw.Draw(plate)
    draw.text((x + window.width + 6, y + window.height // 3), "kWh", fill=(30, 30, 30),
              font=_font(_find_fonts(LABEL_FONTS)[0], max(10, cell_h // 3)))
    shown = digits + (f",{red}" if red is not None else "")
    return MeterImage("roller", value, shown, _photograph(rng, plate))


def lcd_meter(rng: random.Random) -> MeterImage:
    n = rng.choice((5, 6, 6, 7))
    decimals = rng.choice((0, 1, 1, 2, 3))
    top = 10 ** min(n, 6)
    value = rng.randint(top // 1000, top - 1)
    digits = str(value).zfill(n) if rng.random() < 0.6 else str(value)
    text = digits + ("." + "".join(rng.choice("0123456789") for _ in range(decimals)) if decimals else "")
    obis = "1.8.0" if rng.random() < 0.5 else None
    digit_h = rng.randint(30, 64)
    lcd = _lcd(rng, text, obis, digit_h)
    w = max(lcd.width + rng.randint(60, 200), 320)
    h = lcd.height + rng.randint(140, 260)
    plate = _plate(rng, w, h)
    x = rng.randint(10, w - lcd.width - 10)
    y = rng.randint(int(h * 0.3), h - lcd.height - 10)
    plate.paste(lcd, (x, y))
    shown = (f"{obis} " if obis else "") + text + " kWh"
    return MeterImage("lcd", value, shown, _photograph(rng, plate))


def no_meter(seed: int) -> bytes:
    """A photo of a wall with stickers and cables, and no meter."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    _background(rng, 640, 480).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def generate(seed: int) -> MeterImage:
    """One photo; even seeds are roller counters, odd seeds digital meters."""
    rng = random.Random(seed)
    return roller_meter(rng) if seed % 2 == 0 else lcd_meter(rng)


def main(argv: list[str]) -> None:
    out = Path(argv[0])
    count = int(argv[1]) if len(argv) > 1 else 20
    out.mkdir(parents=True, exist_ok=True)
    truth = {}
    for seed in range(count):
        m = generate(seed)
        name = f"{seed:04d}-{m.kind}.jpg"
        (out / name).write_bytes(m.jpeg)
        truth[name] = {"value": m.value, "shown": m.shown}
    (out / "truth.json").write_text(json.dumps(truth, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])

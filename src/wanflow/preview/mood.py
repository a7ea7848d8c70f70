"""A preview's colours from its prompt: colour and light words steer the palette.

The seed still picks the exact palette, but words such as "red", "neon" or "candlelight" bias
it, so the instances of a matrix or batch (whose vars reach the prompt) look different at a
glance while every request keeps the seed the lockfile records.
"""

from __future__ import annotations

import colorsys
import random
import re
from dataclasses import dataclass

from wanflow.preview.seeds import stable_int

HUES = {
    "red": 0.0, "crimson": 0.97, "scarlet": 0.01, "orange": 0.07, "amber": 0.09, "copper": 0.06, "brown": 0.07,
    "gold": 0.12, "golden": 0.12, "yellow": 0.15, "lime": 0.23, "green": 0.33, "forest": 0.32, "mint": 0.42,
    "teal": 0.48, "turquoise": 0.47, "cyan": 0.5, "sky": 0.56, "blue": 0.6, "navy": 0.63, "indigo": 0.68,
    "purple": 0.77, "violet": 0.75, "lavender": 0.74, "magenta": 0.86, "pink": 0.92, "rose": 0.95,
    "sunset": 0.05, "candlelight": 0.08, "sand": 0.11, "ocean": 0.55, "sea": 0.53, "ice": 0.54, "steel": 0.58,
}
# word -> (saturation, value) shift
LIGHT = {
    "neon": (0.3, 0.15), "vivid": (0.25, 0.1), "noir": (-0.35, -0.35), "night": (-0.1, -0.3), "dark": (-0.1, -0.3),
    "black": (-0.3, -0.35), "moody": (-0.1, -0.2), "candlelight": (0.1, -0.15), "watercolor": (-0.3, 0.2),
    "watercolour": (-0.3, 0.2), "pastel": (-0.35, 0.2), "morning": (-0.15, 0.15), "white": (-0.35, 0.25),
    "matte": (-0.2, -0.05), "clay": (-0.15, 0.0), "studio": (-0.1, 0.1),
}
_WORDS = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Mood:
    """What the prompt says about colour: a hue (or None) and saturation/value shifts."""

    hue: float | None
    saturation: float
    value: float


def mood_of(prompt: str) -> Mood:
    """The colour mood of ``prompt``: the last colour word wins (the edit instruction usually
    comes last), light words add up."""
    hue = None
    saturation = value = 0.0
    for word in _WORDS.findall(prompt.lower()):
        if word in HUES:
            hue = HUES[word]
        if word in LIGHT:
            ds, dv = LIGHT[word]
            saturation += ds
            value += dv
    return Mood(hue, max(-0.5, min(0.4, saturation)), max(-0.5, min(0.3, value)))


def mood_palette(seed: int, prompt: str, count: int = 5) -> list[tuple[int, int, int]]:
    """Harmonious colours from ``seed``, biased by the prompt's mood (same inputs, same colours)."""

    rng = random.Random(stable_int("mood-palette", seed, prompt))
    mood = mood_of(prompt)
    base = mood.hue if mood.hue is not None else rng.random()
    spread = 0.05 if mood.hue is not None else 0.22  # a named colour stays recognisable
    colours = []
    for index in range(count):
        hue = (base + (rng.random() - 0.5) * spread + (index % 2) * 0.04) % 1.0
        saturation = min(1.0, max(0.05, 0.45 + rng.random() * 0.4 + mood.saturation))
        value = min(1.0, max(0.08, 0.55 + rng.random() * 0.35 + mood.value))
        r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours

"""Deterministic preview images: text-to-image and edit stand-ins that look like their request.

Palette and composition come from the seed, biased by the prompt's colour and light words
(preview/mood.py), layout details from the prompt, and the prompt is printed as a caption, so a
glance tells which request made which file. Edits cut an input preview's own banner and caption. Every image carries a
"WANFLOW PREVIEW" banner and a PNG text chunk saying it is not a Wan render.
"""

from __future__ import annotations

import math
import random
import textwrap
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps, PngImagePlugin

from wanflow.preview.chrome import strip_chrome
from wanflow.preview.mood import mood_palette
from wanflow.preview.notice import PREVIEW_NOTICE
from wanflow.preview.seeds import stable_int

TIER_AREAS = {"1K": 1280 * 1280, "2K": 2048 * 2048, "4K": 4096 * 4096}


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels (no system fonts needed)."""
    return ImageFont.load_default(size=max(8, size))


def fit_dimensions(aspect: float, area: int, multiple: int = 16) -> tuple[int, int]:
    """Width and height with ``aspect`` (w/h) and about ``area`` pixels, rounded to ``multiple``."""
    width = math.sqrt(area * aspect)
    height = width / aspect
    return max(multiple, round(width / multiple) * multiple), max(multiple, round(height / multiple) * multiple)


def gradient(size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    """A vertical two-colour gradient."""
    mask = Image.linear_gradient("L").resize(size)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)


def draw_shapes(image: Image.Image, seed: int, prompt: str, colours: Sequence[tuple[int, int, int]], count: int) -> None:
    """Translucent shapes whose placement follows seed and prompt."""
    width, height = image.size
    rng = random.Random(stable_int("shapes", seed, prompt))
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for _ in range(count):
        colour = rng.choice(colours) + (rng.randint(70, 170),)
        cx, cy = rng.random() * width, rng.random() * height * 0.8
        radius = (0.08 + rng.random() * 0.25) * min(width, height)
        shape = rng.randrange(3)
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        if shape == 0:
            draw.ellipse(box, fill=colour)
        elif shape == 1:
            draw.rounded_rectangle(box, radius=radius * 0.2, fill=colour)
        else:
            points = [
                (cx + radius * math.cos(angle), cy + radius * math.sin(angle))
                for angle in (rng.random() * math.tau + k * math.tau / 3 for k in range(3))
            ]
            draw.polygon(points, fill=colour)
    image.paste(overlay, (0, 0), overlay)


def draw_caption(image: Image.Image, text: str) -> None:
    """The prompt, wrapped, on a dark band at the bottom."""
    width, height = image.size
    size = max(12, min(width, height) // 34)
    face = font(size)
    chars_per_line = max(12, int(width / (size * 0.55)))
    lines = textwrap.wrap(text, chars_per_line)[:4] or [""]
    band = int(len(lines) * size * 1.35 + size)
    overlay = Image.new("RGBA", (width, band), (0, 0, 0, 150))
    draw = ImageDraw.Draw(overlay)
    for index, line in enumerate(lines):
        draw.text((size // 2, size // 2 + index * size * 1.35), line, font=face, fill=(255, 255, 255, 235))
    image.paste(overlay, (0, height - band), overlay)


def banner(width: int, label: str) -> Image.Image:
    """The "WANFLOW PREVIEW" strip placed at the top of every preview image and video frame."""
    size = max(10, width // 48)
    strip = Image.new("RGB", (width, int(size * 1.8)), (20, 20, 20))
    ImageDraw.Draw(strip).text((size // 2, size // 3), f"WANFLOW PREVIEW · {label}", font=font(size), fill=(255, 214, 0))
    return strip


def save_png(image: Image.Image, path: Path, details: str) -> None:
    """Save as PNG with the preview notice in a text chunk (no timestamps: same input, same bytes)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "wanflow")
    info.add_text("Comment", f"{PREVIEW_NOTICE}. {details}")
    image.convert("RGB").save(path, format="PNG", pnginfo=info, optimize=False, compress_level=6)


def render_text_to_image(prompt: str, seed: int, size: tuple[int, int], index: int, model: str) -> Image.Image:
    """A t2i preview: gradient and shapes from the seed, the prompt as caption."""
    image_seed = stable_int("t2i", seed, index)
    colours = mood_palette(image_seed, prompt)  # the prompt (and so an instance's vars) colours it
    image = gradient(size, colours[0], colours[1])
    draw_shapes(image, image_seed, prompt, colours[2:], count=6 + image_seed % 5)
    draw_caption(image, prompt)
    image.paste(banner(size[0], f"{model} · seed {seed} · #{index + 1}"), (0, 0))
    return image


def edit_output_size(size: str, inputs: Sequence[Image.Image]) -> tuple[int, int]:
    """Output size for an edit: a 1K/2K tier follows the last input's aspect ratio, else W*H."""
    if size in TIER_AREAS:
        last = inputs[-1] if inputs else None
        aspect = last.width / last.height if last is not None else 1.0
        return fit_dimensions(aspect, TIER_AREAS[size])
    width, _, height = size.partition("*")
    return int(width), int(height)


def render_edit(
    prompt: str, seed: int, size: tuple[int, int], inputs: Sequence[Image.Image], index: int, model: str
) -> Image.Image:
    """An edit preview: the inputs tiled, tinted and re-composed as the prompt and seed dictate."""
    width, height = size
    image_seed = stable_int("edit", seed, index, prompt)
    colours = mood_palette(image_seed, prompt)
    canvas = gradient(size, colours[0], colours[1])
    if inputs:
        columns = 1 if len(inputs) == 1 else 2
        rows = math.ceil(len(inputs) / columns)
        cell_w, cell_h = width // columns, height // rows
        for position, source in enumerate(inputs):
            # An input preview's own banner and caption are cut off, and nothing is mirrored, so no
            # earlier caption shows through (mirrored or not) under this one. The seed picks the crop.
            centering = ((image_seed >> (8 * position) & 255) / 255, (image_seed >> (8 * position + 4) & 255) / 255)
            tile = ImageOps.fit(strip_chrome(source).convert("RGB"), (cell_w, cell_h), Image.Resampling.BILINEAR,
                                centering=centering)
            canvas.paste(tile, ((position % columns) * cell_w, (position // columns) * cell_h))
    tint = gradient(size, colours[2], colours[3])
    canvas = Image.blend(canvas, tint, 0.5)  # strong enough that each instance's mood shows
    draw_shapes(canvas, image_seed, prompt, colours[3:], count=3)
    draw_caption(canvas, prompt)
    canvas.paste(banner(width, f"{model} edit · {len(inputs)} input(s) · seed {seed}"), (0, 0))
    return canvas


def interleaved_text(prompt: str, seed: int, image_count: int) -> str:
    """The text part of an interleaved preview: one paragraph per generated image."""
    lines = [f"[{PREVIEW_NOTICE}]", "", f"Request: {prompt}", ""]
    rng = random.Random(stable_int("text", seed, prompt))
    moods = ["warm", "crisp", "moody", "playful", "minimal", "cinematic", "vivid"]
    for index in range(image_count):
        lines.append(f"Image {index + 1}: a {rng.choice(moods)} take on the request (seed {seed}).")
    return "\n".join(lines) + "\n"

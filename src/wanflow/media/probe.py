"""Identify and measure media files by their content, never by their file name."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wanflow._exceptions import MediaError

_IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "BMP": "image/bmp"}
_AUDIO_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav"}
# What verify_complete learned about a file, by its version (path, size, mtime, inode): the probe
# that follows a verified download reads nothing again. Entries are taken by that probe; the
# bound only matters for files verified and never probed.
_VERIFIED: dict[tuple[str, int, int, int], MediaInfo] = {}
_VERIFIED_MAX = 1024


@dataclass(frozen=True)
class MediaInfo:
    """What a media file is: its type and measurements."""

    media_type: str
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    has_alpha: bool = False

    def as_meta(self) -> dict[str, object]:
        """Keyword arguments for an Artifact."""
        meta: dict[str, object] = {}
        if self.width is not None:
            meta["width"], meta["height"] = self.width, self.height
        if self.duration is not None:
            meta["duration"] = round(self.duration, 3)
        if self.has_alpha:
            meta["has_alpha"] = True
        return meta


def _sniff(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8\xff") or (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head.startswith(b"BM"):
        return "image"
    if head[4:8] == b"ftyp":
        return "video"
    if (head[:4] == b"RIFF" and head[8:12] == b"WAVE") or head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio"
    return "unknown"


def _version(path: Path) -> tuple[str, int, int, int]:
    found = os.stat(path)
    return str(path), found.st_size, found.st_mtime_ns, found.st_ino


def probe(path: Path) -> MediaInfo:
    """Decode enough of ``path`` to know its type and size; raises MediaError if it is not valid media."""
    try:
        known = _VERIFIED.pop(_version(path), None)
        if known is not None:  # verify_complete read all of this very file already
            return known
        kind = _sniff(path)
    except OSError as error:
        raise MediaError(f"cannot read {path.name}: {error.strerror}") from None
    if kind == "image":
        return _probe_image(path)
    if kind == "video":
        return _probe_av(path, "video")
    if kind == "audio":
        return _probe_av(path, "audio")
    raise MediaError(f"{path.name} is not a supported image (PNG, JPEG, WEBP, BMP), MP4 video or wav/mp3 audio")


def _probe_image(path: Path) -> MediaInfo:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            # A truncated or damaged file fails here, not later in a provider. For PNG, checking
            # every chunk's CRC up to IEND proves that without decoding the pixels.
            image.verify() if image.format == "PNG" else image.load()
            return _image_info(image, path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if isinstance(error, MediaError):
            raise
        raise MediaError(f"{path.name} is not a readable image ({error})") from None
    except Image.DecompressionBombError as error:
        raise MediaError(f"{path.name} is too large to decode safely ({error})") from None


def _image_info(image: Any, path: Path) -> MediaInfo:
    media_type = _IMAGE_TYPES.get(image.format or "")
    if media_type is None:
        raise MediaError(f"{path.name} is {image.format}, not PNG, JPEG, WEBP or BMP")
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return MediaInfo(media_type, image.width, image.height, has_alpha=alpha)


def _probe_av(path: Path, kind: str) -> MediaInfo:
    import av

    try:
        with av.open(str(path)) as container:
            duration = container.duration / 1_000_000 if container.duration else None
            if kind == "video":
                if not container.streams.video:
                    raise MediaError(f"{path.name} has no video stream")
                stream = container.streams.video[0]
                # Decode one frame: a header alone does not prove the file is playable.
                next(container.decode(video=0))
                return MediaInfo("video/mp4", stream.width, stream.height, duration)
            if not container.streams.audio:
                raise MediaError(f"{path.name} has no audio stream")
            media_type = _AUDIO_TYPES.get(container.format.name.split(",")[0], "audio/mpeg")
            return MediaInfo(media_type, duration=duration)
    except MediaError:
        raise
    except (av.error.FFmpegError, StopIteration, OSError, ValueError) as error:
        raise MediaError(f"{path.name} is not readable {kind} ({error})") from None


def has_audio_stream(path: Path) -> bool:
    """Whether a video file carries an audio track."""
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise MediaError(f"{path.name} is not readable video ({error})") from None


def verify_complete(path: Path) -> None:
    """Read all of ``path`` to its end; raises MediaError for damaged or truncated media.

    ``probe`` reads just enough to measure a file; a download can have the right length and a
    valid header and still carry flipped bytes. What finds them depends on the format:

    - PNG: every chunk's CRC-32, from the header to ``IEND``. Any changed, missing or cut byte
      breaks a CRC, so the pixels need not be decoded (that cost ~11 ms a 1280 px image);
    - JPEG: the entropy-coded data decoded to its end marker, at 1/8 scale (the same bits are
      read, the inverse transform is skipped);
    - WEBP, BMP: decoded whole;
    - video and audio: packet by packet to the end, and the decoded time must reach the
      container's stated duration.
    """
    kind = _sniff(path)
    info = _verify_image(path) if kind == "image" else _verify_av(path, kind)
    if info is not None:  # (else probe finds what is wrong, as it would have)
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.clear()
        _VERIFIED[_version(path)] = info


def _verify_av(path: Path, kind: str) -> MediaInfo | None:
    if kind not in ("video", "audio"):
        raise MediaError(f"{path.name} is not a supported media file")
    import av

    try:
        with av.open(str(path)) as container:
            stated = container.duration / 1_000_000 if container.duration else None
            video = container.streams.video[0] if container.streams.video else None
            size = (video.width, video.height) if video is not None else (None, None)
            audio_type = _AUDIO_TYPES.get(container.format.name.split(",")[0], "audio/mpeg")
            has_audio = bool(container.streams.audio)
            reached, frames = 0.0, 0
            for packet in container.demux():
                for frame in packet.decode():
                    frames += 1
                    moment = getattr(frame, "time", None)  # subtitles have none
                    if moment is not None:
                        reached = max(reached, float(moment))
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise MediaError(f"{path.name} is damaged {kind} ({error})") from None
    if frames == 0:
        raise MediaError(f"{path.name} has no decodable frames")
    # The last frame starts one frame (or one audio packet) before the end: allow half a second.
    if stated is not None and reached + 0.5 < stated * 0.95:
        raise MediaError(f"{path.name} stops at {reached:.1f} s of its stated {stated:.1f} s")
    if kind == "video":
        return MediaInfo("video/mp4", size[0], size[1], stated) if video is not None else None
    return MediaInfo(audio_type, duration=stated) if has_audio else None


def _verify_image(path: Path) -> MediaInfo | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            format_, mode, size, extra = image.format, image.mode, image.size, image.info  # (draft shrinks size)
            if image.format == "PNG":
                image.verify()  # every chunk's CRC, to IEND
            else:
                if image.format == "JPEG":
                    image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
    except Exception as error:  # Pillow raises many types for damaged data
        raise MediaError(f"{path.name} is a damaged image ({type(error).__name__}: {error})") from None
    media_type = _IMAGE_TYPES.get(format_ or "")
    if media_type is None:
        return None
    alpha = mode in ("RGBA", "LA", "PA") or "transparency" in extra
    return MediaInfo(media_type, size[0], size[1], has_alpha=alpha)

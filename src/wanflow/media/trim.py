"""Trim a clip that is longer than a model takes (r2v references: at most 30 s).

The streams are copied, not re-encoded: the clip keeps its pictures and sound bit for bit up to
the cut, and a copy is fast even for long clips.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from wanflow._exceptions import ConformError
from wanflow.media.conform import Conformed


def trim_video(path: Path, seconds: float) -> Conformed:
    """The first ``seconds`` of the MP4/MOV at ``path`` as MP4 bytes (streams copied)."""
    import av

    with tempfile.TemporaryDirectory(prefix="wanflow-trim-") as folder:
        out_path = Path(folder) / "trimmed.mp4"
        try:
            with av.open(str(path)) as source, av.open(str(out_path), mode="w", format="mp4") as target:
                streams = [stream for stream in source.streams if stream.type in ("video", "audio")]
                video = next((stream for stream in streams if stream.type == "video"), None)
                if video is None:
                    raise ConformError("has no video stream to trim")
                width, height = video.width, video.height  # type: ignore[attr-defined]
                copies = {stream.index: target.add_stream_from_template(stream) for stream in streams}
                for packet in source.demux(*streams):
                    if packet.dts is None or packet.pts is None or packet.time_base is None:
                        continue  # the demuxer's flush packets
                    if float(packet.pts * packet.time_base) >= seconds:
                        continue
                    packet.stream = copies[packet.stream.index]
                    target.mux(packet)
        except (av.error.FFmpegError, OSError) as error:
            raise ConformError(f"cannot be trimmed: {error}") from None
        data = out_path.read_bytes()
    return Conformed(data, "video/mp4", width, height, (f"trimmed to the first {seconds:g} s",))

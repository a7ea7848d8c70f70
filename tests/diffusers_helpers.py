"""Tiny random-weight Wan pipelines, built in code and saved with ``save_pretrained``.

The transformer, VAE and text encoder sizes are those of diffusers' own Wan tests; the text
encoder is a UMT5 and the tokenizer a byte-level BPE built with ``tokenizers``, so nothing is
fetched from the hub. Tests load the saved folders by path, as a user would.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

import wanflow

SIDE = 16  # the smallest frame the tiny VAE and 2x2 patches take
FRAMES = 5


def byte_tokenizer() -> Any:
    """A byte-level BPE tokenizer (no merges) built in code: every text has tokens, nothing is fetched."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{char: 3 + index for index, char in enumerate(alphabet)}}
    tokenizer = Tokenizer(models.BPE(vocab, [], unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


_TRANSFORMER = {"patch_size": (1, 2, 2), "num_attention_heads": 2, "attention_head_dim": 12, "out_channels": 16,
                "text_dim": 32, "freq_dim": 256, "ffn_dim": 32, "cross_attn_norm": True,
                "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 32}


def _transformer(in_channels: int, seed: int) -> Any:
    import torch
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(in_channels=in_channels, num_layers=2, **_TRANSFORMER)


def _vace_transformer(seed: int) -> Any:
    """diffusers' VACE test sizes: control blocks at layers 0 and 2; 96 control channels
    (the video's inactive and reactive latents, 2 x 16, and the 8 x 8 folded mask, 64)."""
    import torch
    from diffusers import WanVACETransformer3DModel

    torch.manual_seed(seed)
    return WanVACETransformer3DModel(in_channels=16, num_layers=3, vace_layers=[0, 2], vace_in_channels=96, **_TRANSFORMER)


def _shared(seed: int) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    config = UMT5Config(vocab_size=300, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                        relative_attention_num_buckets=8)
    return {"vae": vae, "scheduler": FlowMatchEulerDiscreteScheduler(shift=7.0),
            "text_encoder": UMT5EncoderModel(config).eval(), "tokenizer": byte_tokenizer()}


def save_tiny_wan(folder: Path, kind: str = "t2v", seed: int = 0) -> Path:
    """Save a tiny random Wan pipeline of ``kind`` (t2v, i2v, vace) into ``folder``; ``seed`` picks the weights."""
    from diffusers import WanImageToVideoPipeline, WanPipeline, WanVACEPipeline

    if kind == "t2v":
        pipe = WanPipeline(transformer=_transformer(16, seed), **_shared(seed))
    elif kind == "i2v":  # Wan 2.2 style: the first frame goes in through the latents, no CLIP image encoder
        pipe = WanImageToVideoPipeline(transformer=_transformer(36, seed), image_encoder=None, image_processor=None,
                                       **_shared(seed))
    elif kind == "vace":
        pipe = WanVACEPipeline(transformer=_vace_transformer(seed), **_shared(seed))
    else:
        raise ValueError(kind)
    pipe.save_pretrained(folder)
    return folder


TINY = {"height": SIDE, "width": 2 * SIDE, "num_frames": FRAMES, "num_inference_steps": 2, "max_sequence_length": 16}


def write_pipeline(project: Path, weights: dict[str, Path], steps: str, name: str = "gpu") -> Path:
    """Copy the saved weights into ``project`` (``./t2v``, ...) and write ``p.yaml`` with ``steps``."""
    for kind, folder in weights.items():
        target = project / kind
        if not target.exists():
            shutil.copytree(folder, target)
    path = project / "p.yaml"
    path.write_text(f"name: {name}\ndefaults: {{seed: 11, provider: diffusers}}\n" + textwrap.dedent(steps), "utf-8")
    return path


def read_frames(path: Path) -> np.ndarray:
    """Every decoded frame of a video file, frames x H x W x 3."""
    import av

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def write_png(path: Path, color: tuple[int, int, int] = (200, 40, 40)) -> Path:
    """A 64x32 PNG of one colour."""
    from PIL import Image

    Image.new("RGB", (64, 32), color).save(path)
    return path


def run_project(path: Path, project: Path) -> wanflow.RunResult:
    """``wanflow.run`` on ``path`` in ``project``'s workspace, no report."""
    result = wanflow.run(path, workspace=wanflow.Workspace.discover(project), report=False)
    assert isinstance(result, wanflow.RunResult)
    return result

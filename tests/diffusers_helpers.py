"""Tiny random-weight Wan pipelines, built in code and saved with ``save_pretrained``.

The transformer, VAE and text encoder sizes are those of diffusers' own Wan tests; the text
encoder is a UMT5 and the tokenizer a byte-level BPE built with ``tokenizers``, so nothing is
fetched from the hub. Tests load the saved folders by path, as a user would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _transformer(in_channels: int, seed: int) -> Any:
    import torch
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=in_channels, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )


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
    """Save a tiny random Wan pipeline of ``kind`` (t2v, i2v) into ``folder``; ``seed`` picks the weights."""
    from diffusers import WanImageToVideoPipeline, WanPipeline

    if kind == "t2v":
        pipe = WanPipeline(transformer=_transformer(16, seed), **_shared(seed))
    elif kind == "i2v":  # Wan 2.2 style: the first frame goes in through the latents, no CLIP image encoder
        pipe = WanImageToVideoPipeline(transformer=_transformer(36, seed), image_encoder=None, image_processor=None,
                                       **_shared(seed))
    else:
        raise ValueError(kind)
    pipe.save_pretrained(folder)
    return folder

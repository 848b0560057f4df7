"""The text transformer's blocks run directly, for the packed prompt path.

CLIP's text blocks are the same in every library: ``x + attn(ln_1(x))`` then
``x + mlp(ln_2(x))`` with multi-head self-attention. For packed prompts the
adapters run these blocks from the library's own modules and weights, with
the same maths, instead of calling the library's encoder, because three
things the libraries do cost a measured share of the training step
(ViT-B/16 text tower, batch 4, 19 classes, 2-core AVX-512 CPU):

* open_clip's batch-first ``nn.MultiheadAttention`` transposes its input
  before the input projection; with gradients flowing into that
  non-contiguous input, ``linear`` turns into a batched matmul over a weight
  copied per position (step 0.45 s against 0.33 s in float32, 1.8 s against
  0.2 s in bf16). Here every projection sees a contiguous batch-first input.
* Under autocast every call casts the frozen float32 weights again. Frozen
  weights never change, so their low-precision copies are cached (and rebuilt
  if a weight is modified or moved); transformers' separate q/k/v
  projections become one matrix product.
* On CPU, PyTorch's attention kernels in bf16 are slower than in float32 for
  these short sequences (forward + backward per layer: flash 5.5 ms, math
  3.1 ms, float32 flash 1.7 ms), so attention runs in float32 there.
* CLIP's QuickGELU, ``x * sigmoid(1.702 x)``, takes five elementwise passes
  forward and backward; the same function as ``silu(1.702 x) / 1.702`` uses
  PyTorch's fused SiLU kernels (bf16 step 0.204 s -> 0.193 s).

Blocks of any other structure make :func:`plain_blocks` return None and the
adapter falls back to the library's encoder (exact, only slower).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclasses.dataclass
class PlainBlock:
    """Handles on one pre-norm block: its norms, activation, layer scales and linear weights.

    ``linears`` are the source ``(weight, bias)`` pairs of the q/k/v projection
    (one packed pair, or three to concatenate), the output projection and the
    two MLP layers.
    """

    ln_1: nn.Module
    ln_2: nn.Module
    act: nn.Module
    ls_1: nn.Module
    ls_2: nn.Module
    heads: int
    scale: float
    qkv: list[tuple[Tensor, Tensor | None]]
    out: tuple[Tensor, Tensor | None]
    fc1: tuple[Tensor, Tensor | None]
    fc2: tuple[Tensor, Tensor | None]
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    def weights(self, dtype: torch.dtype) -> list[tuple[Tensor, Tensor | None]]:
        """``[qkv, out, fc1, fc2]`` (weight, bias) in ``dtype``, cast once and reused.

        Rebuilt when any source weight is modified in place or moved.
        """
        sources = [t for pair in (*self.qkv, self.out, self.fc1, self.fc2) for t in pair]
        stamp = tuple((t.data_ptr(), t._version) for t in sources if t is not None)
        hit = self._cache.get(dtype)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        with torch.no_grad():
            qkv_w = torch.cat([w for w, _ in self.qkv]) if len(self.qkv) > 1 else self.qkv[0][0]
            biases = [b for _, b in self.qkv]
            qkv_b = (
                None if biases[0] is None else torch.cat(biases) if len(biases) > 1 else biases[0]
            )
            pairs = [(qkv_w, qkv_b), self.out, self.fc1, self.fc2]
            cast = [
                (w.detach().to(dtype), None if b is None else b.detach().to(dtype))
                for w, b in pairs
            ]
        self._cache[dtype] = (stamp, cast)
        return cast


def _low_precision(device: torch.device) -> torch.dtype | None:
    """The autocast dtype active for ``device``, or None."""
    try:
        if torch.is_autocast_enabled(device.type):
            return torch.get_autocast_dtype(device.type)
        return None
    except TypeError:  # torch < 2.4 has no per-device query
        if device.type == "cpu":
            return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None


def attention(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor, scale: float) -> Tensor:
    """Scaled-dot-product attention under a boolean mask; float32 for bf16 on CPU (faster)."""
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        with torch.autocast("cpu", enabled=False):
            out = F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=allowed, scale=scale
            )
        return out.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scale)


def run_blocks(blocks: list[PlainBlock], x: Tensor, allowed: Tensor) -> Tensor:
    """All ``blocks`` on batch-first ``x`` (N, T, D) with attention pattern ``allowed`` (T, T)."""
    low = _low_precision(x.device)
    dtype = low if low is not None else x.dtype
    n, t, d = x.shape
    for b in blocks:
        (qkv_w, qkv_b), (out_w, out_b), (fc1_w, fc1_b), (fc2_w, fc2_b) = b.weights(dtype)
        qkv = F.linear(b.ln_1(x), qkv_w, qkv_b)
        q, k, v = qkv.view(n, t, 3, b.heads, d // b.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = attention(q, k, v, allowed, b.scale).transpose(1, 2).reshape(n, t, d)
        x = x + b.ls_1(F.linear(out, out_w, out_b))
        hidden = b.act(F.linear(b.ln_2(x), fc1_w, fc1_b))
        x = x + b.ls_2(F.linear(hidden, fc2_w, fc2_b))
    return x


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)`` written as ``silu(1.702 x) / 1.702`` (fused kernels)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(1.702 * x) / 1.702


def _activation(module: nn.Module) -> nn.Module:
    """The library's activation, with QuickGELU (transformers' or open_clip's) fused."""
    if type(module).__name__ in ("QuickGELUActivation", "QuickGELU"):
        return QuickGELU()
    return module


def _pair(linear: nn.Linear) -> tuple[Tensor, Tensor | None]:
    return linear.weight, linear.bias


def hf_plain_blocks(encoder: nn.Module) -> list[PlainBlock] | None:
    """transformers ``CLIPEncoder`` layers as plain blocks, or None if they differ."""
    blocks = []
    for layer in encoder.layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        names = ("q_proj", "k_proj", "v_proj", "out_proj", "num_heads", "head_dim", "scale")
        if attn is None or mlp is None or not all(hasattr(attn, a) for a in names):
            return None
        if not all(hasattr(layer, a) for a in ("layer_norm1", "layer_norm2")):
            return None
        blocks.append(
            PlainBlock(
                ln_1=layer.layer_norm1,
                ln_2=layer.layer_norm2,
                act=_activation(mlp.activation_fn),
                ls_1=nn.Identity(),
                ls_2=nn.Identity(),
                heads=attn.num_heads,
                scale=float(attn.scale),
                qkv=[_pair(attn.q_proj), _pair(attn.k_proj), _pair(attn.v_proj)],
                out=_pair(attn.out_proj),
                fc1=_pair(mlp.fc1),
                fc2=_pair(mlp.fc2),
            )
        )
    return blocks


def open_clip_plain_blocks(transformer: nn.Module) -> list[PlainBlock] | None:
    """open_clip ``ResidualAttentionBlock`` s as plain blocks, or None if any differs."""
    from open_clip.transformer import ResidualAttentionBlock

    blocks = []
    for block in transformer.resblocks:
        if type(block) is not ResidualAttentionBlock or hasattr(block, "ln_1_kv"):
            return None
        attn = block.attn
        plain = (
            isinstance(attn, nn.MultiheadAttention)
            and attn._qkv_same_embed_dim
            and attn.bias_k is None
            and attn.bias_v is None
            and not attn.add_zero_attn
        )
        if not plain:
            return None
        blocks.append(
            PlainBlock(
                ln_1=block.ln_1,
                ln_2=block.ln_2,
                act=_activation(block.mlp.gelu),
                ls_1=block.ls_1,
                ls_2=block.ls_2,
                heads=attn.num_heads,
                scale=float(attn.head_dim) ** -0.5,
                qkv=[(attn.in_proj_weight, attn.in_proj_bias)],
                out=_pair(attn.out_proj),
                fc1=_pair(block.mlp.c_fc),
                fc2=_pair(block.mlp.c_proj),
            )
        )
    return blocks

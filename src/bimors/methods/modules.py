"""Small trainable blocks shared by methods (meta-nets, cross-attention)."""

from __future__ import annotations

from torch import Tensor, nn


class MetaNet(nn.Sequential):
    """Linear(in -> in // reduction) -> ReLU -> Linear(-> out): CoCoOp's meta-net, also
    BiMoRS's per-token visual projection."""

    def __init__(self, in_dim: int, out_dim: int, reduction: int = 16) -> None:
        hidden = max(1, in_dim // reduction)
        super().__init__()
        self.add_module("linear1", nn.Linear(in_dim, hidden))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("linear2", nn.Linear(hidden, out_dim))


class PreNormCrossAttention(nn.Module):
    """``q + MHA(LN(q), LN(kv), LN(kv))``: queries attend to keys with a residual.

    LayerNorms on the queries and on the keys come before attention (pre-norm);
    the residual adds the un-normalised queries, as in the official BiMoRS.
    """

    def __init__(self, dim: int, kv_dim: int, heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(kv_dim)
        self.attn = nn.MultiheadAttention(
            dim, heads, kdim=kv_dim, vdim=kv_dim, dropout=dropout, batch_first=True
        )

    def forward(self, queries: Tensor, keys: Tensor) -> Tensor:
        kv = self.norm_kv(keys)
        out, _ = self.attn(self.norm_q(queries), kv, kv, need_weights=False)
        return queries + out

"""Prefix-shared packing of class prompts: the tokens every class shares are encoded once.

All class prompts of one image start with the same tokens: SOS, the context
slots (and any common words of a template). In a causal text encoder the
states of those tokens do not depend on what follows, so encoding them once
per image instead of once per (image, class) is exact. The prompts of a class
group are packed into one sequence::

    [SOS ctx ...] [name_1 . EOS] [name_2 . EOS] ... [name_k . EOS]
     shared prefix  suffix of class 1 ...

with each suffix's positions continuing after the prefix (as if it followed it
alone) and an attention mask that lets a suffix token see the prefix and the
earlier tokens of its own suffix only. Each class's EOS output is then the one
its separately encoded prompt would give. No token after an EOS is computed,
so this also removes the padding that truncation to the longest EOS keeps.

Attention is computed over the whole packed sequence (most of it masked), so
classes are split into groups of at most ``max_tokens`` packed tokens; the
linear layers, which dominate the cost, see only real tokens.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

DEFAULT_PACK_TOKENS = 256


def common_prefix_length(ids: Tensor, eos: Tensor) -> int:
    """Leading positions where all rows of ``ids`` agree, capped so every prompt keeps its EOS."""
    same = (ids == ids[:1]).all(dim=0)
    return min(int(same.int().cumprod(0).sum()), int(eos.min()))


@dataclasses.dataclass(frozen=True)
class PackGroup:
    """Classes ``start:stop`` packed into one sequence of ``length`` tokens."""

    start: int
    stop: int
    length: int


def group_classes(suffix_lengths: list[int], prefix: int, max_tokens: int) -> list[PackGroup]:
    """Consecutive classes in groups whose packed length stays within ``max_tokens``.

    A group always takes at least one class, so a single long prompt still fits.
    """
    groups: list[PackGroup] = []
    start, length = 0, prefix
    for c, s in enumerate(suffix_lengths):
        if c > start and length + s > max_tokens:
            groups.append(PackGroup(start, c, length))
            start, length = c, prefix
        length += s
    groups.append(PackGroup(start, len(suffix_lengths), length))
    return groups


class PackedLayout(nn.Module):
    """Positions, attention pattern, EOS indices and frozen suffix embeddings per class group.

    Buffers are padded over groups (shape (G, ...)); :meth:`group` slices one
    group's exact tensors, so no padding token is ever encoded.

    Args:
        embeds: frozen token embeddings of the full prompts (C, L, D).
        eos: EOS position of each prompt (C,).
        prefix: number of leading tokens shared by all prompts.
        max_tokens: packed-length budget of one group.
    """

    def __init__(self, embeds: Tensor, eos: Tensor, prefix: int, max_tokens: int) -> None:
        super().__init__()
        self.prefix = prefix
        suffix_lengths = [int(e) - prefix + 1 for e in eos]
        self.groups = group_classes(suffix_lengths, prefix, max_tokens)
        n_groups, longest = len(self.groups), max(g.length for g in self.groups)
        widest = max(g.stop - g.start for g in self.groups)
        positions = torch.zeros(n_groups, longest, dtype=torch.long)
        allowed = torch.zeros(n_groups, longest, longest, dtype=torch.bool)
        gather = torch.zeros(n_groups, widest, dtype=torch.long)
        suffix = embeds.new_zeros(n_groups, longest - prefix, embeds.shape[-1])
        causal = torch.ones(longest, longest, dtype=torch.bool).tril()
        for g, group in enumerate(self.groups):
            positions[g, :prefix] = torch.arange(prefix)
            allowed[g, :prefix, :prefix] = causal[:prefix, :prefix]
            at = prefix
            for k, c in enumerate(range(group.start, group.stop)):
                s = suffix_lengths[c]
                positions[g, at : at + s] = torch.arange(prefix, prefix + s)
                allowed[g, at : at + s, :prefix] = True
                allowed[g, at : at + s, at : at + s] = causal[:s, :s]
                suffix[g, at - prefix : at - prefix + s] = embeds[c, prefix : prefix + s]
                gather[g, k] = at + s - 1
                at += s
        self.register_buffer("positions", positions, persistent=False)
        self.register_buffer("allowed", allowed, persistent=False)
        self.register_buffer("gather", gather, persistent=False)
        self.register_buffer("suffix", suffix, persistent=False)

    @property
    def tokens(self) -> int:
        """Packed tokens encoded per sequence (all groups), prefix included once per group."""
        return sum(g.length for g in self.groups)

    def group(self, g: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(positions (T,), allowed (T, T), gather (K,), suffix embeddings (T - prefix, D))."""
        grp = self.groups[g]
        t, k = grp.length, grp.stop - grp.start
        return (
            self.positions[g, :t],
            self.allowed[g, :t, :t],
            self.gather[g, :k],
            self.suffix[g, : t - self.prefix],
        )

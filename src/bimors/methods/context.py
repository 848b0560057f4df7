"""The learnable-context prompt shared by CoOp, CoCoOp and BiMoRS.

``ctx`` holds ``n_ctx`` vectors that replace the placeholder words of
"X X X X <class name>." (or of the initialising phrase, "a photo of a").
Subclasses only decide how ``ctx`` is conditioned on the image.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP
from bimors.core.errors import ConfigError
from bimors.methods.base import Method, MethodConfig
from bimors.methods.prompting import ClassPrompts, init_context


@dataclasses.dataclass
class ContextConfig(MethodConfig):
    """Learnable context: ``ctx_init`` (a phrase) sets both the length and the initial value;
    with an empty ``ctx_init``, ``n_ctx`` random vectors are used."""

    n_ctx: int = 4
    ctx_init: str = "a photo of a"


class ContextMethod(Method):
    """A method with one learnable context ``ctx`` of shape (n_ctx, D)."""

    config_cls = ContextConfig

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: ContextConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        ctx = self.initial_context(backbone)
        self.n_ctx = ctx.shape[0]
        self.ctx = nn.Parameter(ctx.to(backbone.device))

    def initial_context(self, backbone: FrozenCLIP) -> Tensor:
        """The initial (n_ctx, D) context; methods with another convention override this.

        ``ctx_init`` fixes the length, so an ``n_ctx`` that disagrees with it is
        refused: silently using the phrase's length would make a context-length
        ablation change nothing.
        """
        phrase = self.cfg.ctx_init
        if phrase:
            n = backbone.count_tokens(phrase.replace("_", " "))
            if n != self.cfg.n_ctx:
                raise ConfigError(
                    f"method.n_ctx={self.cfg.n_ctx} disagrees with method.ctx_init={phrase!r}, "
                    f"which has {n} token(s) and sets the context length; set "
                    f"method.n_ctx={n}, or method.ctx_init='' for {self.cfg.n_ctx} random "
                    "context vectors, or a phrase of that many tokens"
                )
        elif self.cfg.n_ctx < 1:
            raise ConfigError(f"method.n_ctx={self.cfg.n_ctx}: must be >= 1")
        return init_context(backbone, phrase, self.cfg.n_ctx)

    def build_prompts(self, classnames: list[str]) -> ClassPrompts:
        placeholder = " ".join(["X"] * self.n_ctx)
        return ClassPrompts(
            self.backbone, [f"{placeholder} {name}." for name in classnames], self.n_ctx
        )

    def finish_init(self, classnames: list[str]) -> None:
        """Build the class prompts once every submodule exists (called by subclasses)."""
        with torch.no_grad():
            self.set_classnames(classnames)

"""Hand-written class prompts ("a photo of a {}."): zero-shot CLIP and the methods built on it.

Zero-shot CLIP scores images with them; CLIP-Adapter and the linear probe's
unseen-class fallback classify against them; ProGrad distils towards them.
Their text features depend only on the frozen backbone and the class names,
so :class:`TemplateText` encodes them once per class set.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from bimors.backbones.base import FrozenCLIP
from bimors.methods.base import Method, MethodConfig
from bimors.methods.prompting import ClassPrompts


@dataclasses.dataclass
class TemplateConfig(MethodConfig):
    """``template`` must contain ``{}`` where the class name goes."""

    template: str = "a photo of a {}."

    def __post_init__(self) -> None:
        check_template(self.template)


def check_template(template: str) -> None:
    if "{}" not in template:
        raise ValueError("template must contain '{}' where the class name goes")


def template_prompts(backbone: FrozenCLIP, template: str, classnames: list[str]) -> ClassPrompts:
    """Frozen prompts ``template.format(name)`` for every class, with no learnable slots."""
    return ClassPrompts(backbone, [template.format(name) for name in classnames], 0)


class TemplateText:
    """The normalised text features (C, E) of a template's class prompts, encoded once.

    The cache holds the prompt object it was computed from (identity, not id(),
    which Python may reuse) and the recipe, so switching the class set or
    ``reference_recipe`` re-encodes; the features never carry gradients.
    """

    def __init__(self) -> None:
        self._key: tuple[ClassPrompts, bool] | None = None
        self._features: Tensor | None = None

    def features(self, method: Method, prompts: ClassPrompts) -> Tensor:
        key = (prompts, method.reference_recipe)
        stale = self._key is None or self._key[0] is not prompts or self._key[1] != key[1]
        if self._features is None or stale:
            with torch.no_grad():
                if method.reference_recipe:
                    feats = prompts.encode_reference(method.backbone, None)
                else:
                    feats = prompts.encode(method.backbone, None, method.cfg.chunk_size)
            self._key, self._features = key, feats.float()
        return self._features


class TemplateMethod(Method):
    """A method whose class prompts are ``cfg.template`` filled with each class name."""

    image_fields = ("pooled",)

    config_cls = TemplateConfig

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: TemplateConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        self.template_text = TemplateText()

    def build_prompts(self, classnames: list[str]) -> ClassPrompts:
        return template_prompts(self.backbone, self.cfg.template, classnames)

    def class_text(self) -> Tensor:
        """Cached frozen text features (C, E) of the current class set."""
        return self.template_text.features(self, self.prompts)

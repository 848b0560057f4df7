"""The offline demos and the tiny random-weight models they (and the tests) build.

``base2new`` (``bimors demo``), ``ablation`` (``bimors demo --ablation``) and
``tiny`` (CLIP through both adapters, BLIP-2 and BERT at toy sizes, saved and
loaded back through the real ``from_pretrained`` paths). Importing this
package loads nothing heavy: ``run_demo`` and ``NOTE`` (the old
``bimors.demo`` module's names) are resolved on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NOTE", "run_demo"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bimors.demo import base2new

        return getattr(base2new, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

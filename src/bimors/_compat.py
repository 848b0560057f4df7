"""Old import paths keep working after the modules moved into packages (issue 19).

Users' scripts import ``bimors.predict``, ``bimors.run_config``,
``bimors.tiny`` and the like. Rather than leave a shim file per old name at the
package root (which would bring back the clutter the move removed), one
meta-path finder answers those names with the module at its new home: the
*same* module object, so ``bimors.predict.Predictor is
bimors.run.predict.Predictor`` and monkeypatching either name patches both.
The old paths stay supported (no warning): they are part of the public surface.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

#: old module path -> where it lives now
MOVED: dict[str, str] = {
    "bimors.errors": "bimors.core.errors",
    "bimors.atomic": "bimors.core.atomic",
    "bimors.config": "bimors.core.config",
    "bimors.registry": "bimors.core.registry",
    "bimors.model_loading": "bimors.backbones.loading",
    "bimors.presets": "bimors.methods.presets",
    "bimors.run_config": "bimors.run.config",
    "bimors.preflight": "bimors.run.preflight",
    "bimors.experiment": "bimors.run.experiment",
    "bimors.evaluation": "bimors.run.evaluation",
    "bimors.trained": "bimors.run.trained",
    "bimors.predict": "bimors.run.predict",
    "bimors.demo_ablation": "bimors.demo.ablation",
    "bimors.tiny": "bimors.demo.tiny",
    "bimors.protocols.runner": "bimors.grid.runner",
    "bimors.protocols.sweep": "bimors.grid.sweep",
    "bimors.engine.runlock": "bimors.core.locks",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The target is already executed; give it back the spec the import machinery replaced."""
        module.__spec__ = self.spec


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(MOVED[fullname]))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())

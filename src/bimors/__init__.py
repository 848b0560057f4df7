"""bimors: BiMoRS and CLIP prompt-learning baselines for few-shot remote-sensing scenes.

Importing the package loads no model and touches no network; every model id or
path is an argument given at run time.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bimors")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from bimors import _compat

_compat.install()  # old module paths (bimors.predict, bimors.run_config, ...) keep working

__all__ = ["__version__"]

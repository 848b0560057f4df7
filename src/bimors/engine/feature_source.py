"""Which :class:`~bimors.engine.features.FeatureSource` a run's ``features`` config asks for.

Kept apart from :mod:`bimors.engine.features` so that the plain and cached
sources do not import :mod:`bimors.engine.shared_views`, which builds on them.
"""

from __future__ import annotations

from collections.abc import Sequence

from bimors.engine.feature_cache import FeatureCache
from bimors.engine.features import CachedFeatures, FeatureSource
from bimors.engine.shared_views import SharedViews


def feature_source(
    cache: bool = True,
    cache_dir: str | None = None,
    train_views: int = 0,
    progress: bool = False,
    share_views: bool = False,
    share_fields: Sequence[str] = ("pooled", "norm"),
) -> FeatureSource:
    """The source a run's ``features`` config asks for (the plain one when nothing is cached).

    ``share_views`` (with ``train_views == 0``): training batches' frozen features are
    shared exactly across the runs of a grid seed (:mod:`bimors.engine.shared_views`).
    """
    if share_views and train_views == 0:
        return SharedViews(
            FeatureCache(cache_dir), eval=cache, fields=share_fields, progress=progress
        )
    if not cache and train_views == 0:
        return FeatureSource()
    return CachedFeatures(
        FeatureCache(cache_dir), eval=cache, train_views=train_views, progress=progress
    )

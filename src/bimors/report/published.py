"""Published numbers on the same protocol, printed beside ours.

Source: APPLeNet (Singha et al., CVPRW 2023), base-to-new generalisation with
ViT-B/16 and 16 shots, averaged over PatternNet, RSICD, RESISC45 and MLRSNet
(the four datasets of the RS base-to-new benchmark). BiMoRS (ICASSP 2026)
reports up to +2% over strong baselines on average.
"""

from __future__ import annotations

import dataclasses

#: The datasets the published base-to-new averages are over.
BASE2NEW_DATASETS = ("patternnet", "rsicd", "resisc45", "mlrsnet")


@dataclasses.dataclass(frozen=True)
class Published:
    base: float
    new: float
    hm: float
    source: str = "APPLeNet (CVPRW 2023), ViT-B/16, 16 shots, mean of 4 datasets"


#: method name in our registry -> published base/new/HM averages.
BASE2NEW_AVERAGE: dict[str, Published] = {
    "zeroshot": Published(56.51, 56.75, 56.63),
    "coop": Published(87.10, 56.93, 68.85),
    "cocoop": Published(87.92, 57.99, 69.88),
    "applenet": Published(89.98, 60.79, 72.56),
}

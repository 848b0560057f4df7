"""The generalisation protocols of the RS prompt-learning literature, as pure functions.

- :mod:`~bimors.protocols.base2new`: base-to-new classes within one dataset;
- :mod:`~bimors.protocols.cross_dataset`: PatternNet -> RSICD, RESISC45, MLRSNet;
- :mod:`~bimors.protocols.domain_generalisation`: PatternNetv2 -> RSICDv2,
  RESISC45v2, MLRSNetv2;
- :mod:`~bimors.protocols.fewshot`: CoOp's few-shot protocol, all classes of one dataset.

Each takes splits and returns tasks (class names + samples); none reads files
or touches a model.
"""

#: The registered protocols' names, importable without loading any of them (the CLI's
#: choices and the preset layers; ``plans.PROTOCOLS`` registers exactly these).
PROTOCOL_NAMES = ("base2new", "cross_dataset", "domain_gen", "fewshot")

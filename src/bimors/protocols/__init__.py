"""The generalisation protocols of the RS prompt-learning literature, as pure functions.

- :mod:`~bimors.protocols.base2new`: base-to-new classes within one dataset;
- :mod:`~bimors.protocols.cross_dataset`: PatternNet -> RSICD, RESISC45, MLRSNet;
- :mod:`~bimors.protocols.domain_generalisation`: PatternNetv2 -> RSICDv2,
  RESISC45v2, MLRSNetv2.

Each takes splits and returns tasks (class names + samples); none reads files
or touches a model.
"""

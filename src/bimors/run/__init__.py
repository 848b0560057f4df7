"""One run: resolve its config, check it before any work, execute its plan, evaluate and load it.

``config`` (the typed run config and its resolution from presets, files and
overrides), ``preflight`` (checks that fail before training), ``experiment``
(train and evaluate the tasks of one :class:`~bimors.protocols.plan.Plan`),
``evaluation`` (re-evaluate a finished run), ``trained`` (rebuild a finished
run's method) and ``predict`` (the Python prediction API).
"""

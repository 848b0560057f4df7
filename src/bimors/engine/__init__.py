"""The one trainer, evaluator, feature cache, shared views, run folders, locks and DDP helpers."""

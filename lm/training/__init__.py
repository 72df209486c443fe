"""Training: the one `Trainer` for every model, optimisers, evaluation, metrics, curves and each model's task setup."""

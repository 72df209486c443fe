"""Configurations: the flag dataclasses (`TrainConfig`, `SentimentConfig`), their choice lists and range rules."""

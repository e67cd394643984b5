"""The model itself: its config, its weights on disk, and (with the training issue) the trainer."""

"""Training: the one loop (`train.fit`), its step (`train_step`), data-parallel runs (`distributed`), resuming
(`resume`) and the run writer (`writer`: config, metrics, checkpoints, figures)."""

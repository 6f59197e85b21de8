"""Multi-process training: torchrun launch, data sharding, DDP, distributed checkpoints."""

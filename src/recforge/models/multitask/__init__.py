"""Multi-task models (one file each): they return logits [B, T], one column per `schema.tasks` entry."""

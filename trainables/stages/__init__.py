"""IML-GCN's stages as plain functions over a Runtime (no Ray): pretrain + embed (cached per key), the
same-budget baseline, the head on cached features, stage 3, and the GCN's inputs built from the cache."""

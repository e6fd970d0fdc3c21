"""The worker's task: decode ahead, batch, compute, align, spill, write a part."""

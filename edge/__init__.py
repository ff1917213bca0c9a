"""Edge nodes and multi-node placement (filled by the cluster work)."""

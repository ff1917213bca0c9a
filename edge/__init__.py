"""The cluster: the node registry, cross-node events and the scheduler's job lock (in-process or on Redis),
placement rules, and this node's presence. Edge relays are still to come (docs/scaling.md)."""

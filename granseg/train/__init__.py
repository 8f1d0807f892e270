"""Training: losses, data, and a small generic trainer (accelerate)."""

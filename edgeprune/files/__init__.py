"""Torch-free helpers for the files edgeprune reads and writes: atomic writes, hashing, TOML,
ONNX metadata, images, and the manifest every artifact folder carries."""

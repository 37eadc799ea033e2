"""specllama's model data: the manifest of known models and writers of synthetic GGUFs.

Installed as ``specllama._models``; the multi-GB GGUF files themselves live in the user cache.
"""

"""CLLM Studio: create, name, train, grow and talk to small language models locally."""

__version__ = "0.1.0"

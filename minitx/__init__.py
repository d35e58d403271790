"""minitx: a small Transformer whose attention natively takes prefix keys and values."""
from .attention import MultiHeadAttention, attention, build_mask, causal_mask, fast_attention
from .generate import generate
from .model import GPT, Config

__all__ = ["GPT", "Config", "MultiHeadAttention", "attention", "build_mask", "causal_mask",
           "fast_attention", "generate"]

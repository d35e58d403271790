"""Text to tensors: a word-level tokenizer, leak-free splits, and batches for training and decoding.

The convention every helper here follows: a training line is "<prompt> <target> ;", the loss sits
on the target tokens only (IGNORE_INDEX elsewhere), and a prompt ends where generation starts.
"""
import hashlib

import torch

IGNORE_INDEX = -1  # a next-token target that carries no loss (prompt positions and padding)

class Tokenizer:
    """Word-level tokenizer over a fixed vocabulary; ids 0 and 1 are <pad> and <unk>."""
    specials, pad_id, unk_id = ("<pad>", "<unk>"), 0, 1

    def __init__(self, words: list[str]):
        self.words = [*self.specials, *words]
        if len(set(self.words)) != len(self.words) or any(len(w.split()) != 1 for w in words):
            raise ValueError("words must be distinct single words other than <pad> and <unk>")
        self.ids = {word: i for i, word in enumerate(self.words)}
        self.vocab_size, self.stop_id = len(self.words), self.ids.get(";")  # ";" ends outputs

    def encode(self, text: str) -> list[int]:
        """Split on whitespace and look every word up; unknown words become <unk>."""
        return [self.ids.get(word, self.unk_id) for word in text.split()]

    def decode(self, ids) -> str:
        """The words of a sequence of ids (a list or a 1-D tensor), <pad> dropped."""
        return " ".join(self.words[i] for i in map(int, ids) if i != self.pad_id)

    def to_dict(self) -> dict:
        """A plain JSON-able description, so that a checkpoint can carry its tokenizer."""
        return {"words": self.words[len(self.specials):]}

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        """The tokenizer that ``to_dict`` described."""
        return cls(d["words"])

def split_of(source: str) -> str:
    """"train" (80%), "val" (10%) or "test" (10%), from a stable hash of the source text."""
    bucket = int.from_bytes(hashlib.sha256(source.encode()).digest()[:8], "big") % 100
    return "train" if bucket < 80 else "val" if bucket < 90 else "test"

def _pad(rows: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
    """Rows of ids as one (B, T) long tensor, the short rows filled with ``value``."""
    T = max(map(len, rows), default=0)
    return torch.tensor([[value] * (T - len(r)) + r if left else r + [value] * (T - len(r))
                         for r in rows], dtype=torch.long).reshape(len(rows), T)

def encode_for_training(tok: Tokenizer, prompts: list[str], targets: list[str]):
    """Right-padded (idx, targets, attention_mask), each (B, T): idx is the tokens of "prompt
    target ;" but the last, targets the next tokens, IGNORE_INDEX where they are still prompt."""
    idx, next_tokens = [], []
    for prompt, target in zip(prompts, targets, strict=True):
        n_ignored, tokens = max(len(tok.encode(prompt)) - 1, 0), tok.encode(f"{prompt} {target} ;")
        idx.append(tokens[:-1])
        next_tokens.append([IGNORE_INDEX] * n_ignored + tokens[1 + n_ignored:])
    mask = _pad([[1] * len(row) for row in idx], 0).bool()
    return _pad(idx, tok.pad_id), _pad(next_tokens, IGNORE_INDEX), mask

def encode_prompts(tok: Tokenizer, prompts: list[str]):
    """Left-padded (idx, attention_mask), each (B, T): every row ends where generation starts."""
    rows = [tok.encode(prompt) for prompt in prompts]
    mask = _pad([[1] * len(row) for row in rows], 0, left=True).bool()
    return _pad(rows, tok.pad_id, left=True), mask

"""Text to tensors and back: a word-level tokenizer, leak-free splits, training batches, models
saved with their tokenizer, text in / text out. A prompt ends with the separator `tok.sep` ("=>",
appended when missing), where generation starts; a training line is "<prompt> <sep> <target>
<stop>" (stop ";") with the loss on target and stop only (IGNORE_INDEX elsewhere)."""
import hashlib
import numbers
import os
import re
from collections import Counter

import torch

from .generate import generate
from .model import GPT, Config
from .train import load_checkpoint, save_checkpoint

IGNORE_INDEX = -1  # a next-token target that carries no loss (prompt positions and padding)

def _strings(value, name: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
        raise TypeError(f"{name} must be a list of strings; got {value!r:.80}")
    return list(value)

class Tokenizer:
    """Word-level tokenizer over a fixed vocabulary; ids 0 and 1 are <pad> and <unk> (any unknown
    word). Normalisation, the same for the vocabulary and every text: `split_punctuation` makes a
    run of letters, digits and _ a word and any other non-space character a word of its own ("it's
    fine!" -> "it ' s fine !"), sep and stop kept whole; else whitespace splits. `lower`
    lower-cases all words but sep and stop."""
    specials, pad_id, unk_id = ("<pad>", "<unk>"), 0, 1
    sep_id = property(lambda self: self._id_of("sep"), doc="The id of sep, which ends prompts.")
    stop_id = property(lambda self: self._id_of("stop"), doc="The id of stop, which ends targets.")

    def __init__(self, words, lower=False, split_punctuation=False, sep="=>", stop=";"):
        self.sep, self.stop = _strings([sep, stop], "sep and stop")
        self.lower, self.split_punctuation = lower, split_punctuation
        whole = "|".join(map(re.escape, sorted({sep, stop}, key=len, reverse=True)))
        self.pattern = re.compile(rf"{whole}|\w+|[^\w\s]")  # sep/stop, words, punctuation marks
        self.words = [*self.specials, *_strings(words, "words")]
        bad = [w for w in (*words, sep, stop) if w in self.specials or self.split(w) != [w]]
        bad += [w for w, n in Counter(words).items() if n > 1] + [sep] * (sep == stop)
        if bad:
            raise ValueError(f"words must be distinct single words (as normalised) other than "
                             f"<pad>/<unk>, and sep != stop single words too; {bad[0]!r} is not")
        self.ids = {word: i for i, word in enumerate(self.words)}
        self.vocab_size = len(self.words)

    @classmethod
    def from_corpus(cls, texts, min_count=1, lower=True, split_punctuation=True, sep="=>",
                    stop=";") -> "Tokenizer":
        """sep, stop, then the normalised words of `texts` seen at least `min_count` times, most
        frequent first, ties alphabetical (the same texts give the same ids)."""
        settings = dict(lower=lower, split_punctuation=split_punctuation, sep=sep, stop=stop)
        normalise = cls([], **settings).split
        counts = Counter(w for text in _strings(texts, "texts") for w in normalise(text))
        kept = [w for w, n in counts.items() if n >= min_count and w not in {sep, stop}]
        return cls([sep, stop, *sorted(kept, key=lambda w: (-counts[w], w))], **settings)

    def split(self, text: str) -> list[str]:
        """The normalised words of `text` (see the class docstring)."""
        words = self.pattern.findall(text) if self.split_punctuation else text.split()
        return [w.lower() if self.lower and w not in (self.sep, self.stop) else w for w in words]

    def encode(self, text: str) -> list[int]:
        """The ids of the normalised words of `text`; unknown words become <unk>."""
        return [self.ids.get(word, self.unk_id) for word in self.split(text)]

    def decode(self, ids) -> str:
        """The words of ids (a list or 1-D tensor) but <pad>. With split_punctuation, no space goes
        before .,;:!?)]}%' or after ([{$' ("it's" comes back, 'quotes' do not)."""
        ids = ids.tolist() if torch.is_tensor(ids) else ids
        V = self.vocab_size
        wrong = [i for i in ids if not (isinstance(i, numbers.Integral) and 0 <= i < V)]
        if wrong:
            raise ValueError(f"ids must be one sequence of integers in [0, {V}); got {wrong[0]!r}")
        text = " ".join(self.words[i] for i in ids if i != self.pad_id)
        glue = r" (?=[.,;:!?)\]}%'])|(?<=[(\[{$']) "  # the spaces next to punctuation
        return re.sub(glue, "", text) if self.split_punctuation else text

    def _id_of(self, setting: str) -> int:
        token = getattr(self, setting)
        if token not in self.ids:
            raise ValueError(f"{setting} {token!r} is not in the vocabulary: add it to the words, "
                             f"or pass {setting}=<a word of the vocabulary>")
        return self.ids[token]

    def to_dict(self) -> dict:
        """A plain JSON-able description (words and settings), so a file can carry its tokenizer."""
        return {"words": self.words[len(self.specials):], "lower": self.lower,
                "split_punctuation": self.split_punctuation, "sep": self.sep, "stop": self.stop}

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        """The tokenizer that `to_dict` described (a dict with "words" only gets the defaults)."""
        return cls(**d)

def split_of(source: str) -> str:
    """"train" (80%), "val" (10%) or "test" (10%), from a stable hash of the source text."""
    bucket = int.from_bytes(hashlib.sha256(source.encode()).digest()[:8], "big") % 100
    return "train" if bucket < 80 else "val" if bucket < 90 else "test"

def _pad(rows: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
    """Rows of ids as one (B, T) long tensor, the short rows filled with ``value``."""
    T = max(map(len, rows), default=0)
    return torch.tensor([[value] * (T - len(r)) + r if left else r + [value] * (T - len(r))
                         for r in rows], dtype=torch.long).reshape(len(rows), T)

def _prompt_ids(tok: Tokenizer, prompt: str) -> list[int]:
    ids = tok.encode(prompt)
    return ids if ids[-1:] == [tok.sep_id] else ids + [tok.sep_id]

def encode_for_training(tok: Tokenizer, prompts: list[str], targets: list[str]):
    """Right-padded (idx, targets, attention_mask), each (B, T): idx is the tokens of "<prompt>
    <sep> <target> <stop>" but the last, targets the next tokens, IGNORE_INDEX on prompt tokens."""
    prompts, targets = _strings(prompts, "prompts"), _strings(targets, "targets")
    if len(prompts) != len(targets):
        raise ValueError(f"prompts and targets must pair up; got {len(prompts)} and {len(targets)}")
    idx, next_tokens = [], []
    for prompt, target in zip(prompts, targets):
        prompt_ids, target_ids = _prompt_ids(tok, prompt), tok.encode(target)
        tokens = prompt_ids + target_ids + [tok.stop_id]
        idx.append(tokens[:-1])
        next_tokens.append([IGNORE_INDEX] * (len(prompt_ids) - 1) + tokens[len(prompt_ids):])
    mask = _pad([[1] * len(row) for row in idx], 0).bool()
    return _pad(idx, tok.pad_id), _pad(next_tokens, IGNORE_INDEX), mask

def encode_prompts(tok: Tokenizer, prompts: list[str]):
    """Left-padded (idx, attention_mask), each (B, T): every row ends with the separator."""
    rows = [_prompt_ids(tok, prompt) for prompt in _strings(prompts, "prompts")]
    mask = _pad([[1] * len(row) for row in rows], 0, left=True).bool()
    return _pad(rows, tok.pad_id, left=True), mask

def pair_batches(tok: Tokenizer, prompts, targets, batch_size: int, seed: int = 0, **extra):
    """get_batch(step) for train(): the pairs in epochs of fixed random order (epoch e's from seed
    + e), loss on target and stop, all-padding columns dropped; `extra` (task=...) rides along."""
    idx, targets, mask = encode_for_training(tok, prompts, targets)

    def get_batch(step):
        epoch, pos = divmod(step * batch_size, len(idx))
        order = torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed + epoch))
        rows = order[(torch.arange(batch_size) + pos) % len(idx)]
        keep = mask[rows].any(0)
        return {"idx": idx[rows][:, keep], "targets": targets[rows][:, keep],
                "attention_mask": mask[rows][:, keep], **extra}
    return get_batch

def packed_batches(tok: Tokenizer, texts, batch_size: int, block: int, seed: int = 0,
                   loss_after_sep: bool = False):
    """get_batch(step) for pretraining: the texts, each ending in the stop token (appended if
    missing), as one token stream; rows of `block` tokens from random text starts (a function of
    seed and step). loss_after_sep=True: loss only on each text's tokens after its separator."""
    ids, loss, starts = [], [], []
    for text in _strings(texts, "texts"):
        tokens = tok.encode(text)
        tokens += [] if tokens[-1:] == [tok.stop_id] else [tok.stop_id]
        cut = tokens.index(tok.sep_id) + 1 if loss_after_sep else 0
        starts.append(len(ids))
        ids += tokens
        loss += [False] * cut + [True] * (len(tokens) - cut)
    ids, loss, starts = torch.tensor(ids), torch.tensor(loss), torch.tensor(starts)
    starts = starts[starts < len(ids) - block - 1]

    def get_batch(step):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        first = starts[torch.randint(0, len(starts), (batch_size,), generator=g)]
        rows = first[:, None] + torch.arange(block + 1)  # (B, block + 1)
        targets = ids[rows[:, 1:]].masked_fill(~loss[rows[:, 1:]], IGNORE_INDEX)
        return {"idx": ids[rows[:, :-1]], "targets": targets}
    return get_batch

def save_model(path, model, tokenizer: Tokenizer, dtype=None):
    """Write a GPT or Seq2Seq, its config and its tokenizer to one file, atomically. `dtype` (e.g.
    torch.float16, for small committed files) casts the weights; the tied lm_head is stored once."""
    kind = type(model).__name__  # load_model builds the same class again
    weights = {k: v.detach().to("cpu", dtype or v.dtype) for k, v in model.state_dict().items()
               if k != "lm_head.weight"}
    save_checkpoint(path, {"format": "minitx-model", "kind": kind, "config": vars(model.config),
                           "tokenizer": tokenizer.to_dict(), "weights": weights})

def load_model(path, map_location="cpu"):
    """The (model, tokenizer) that save_model wrote (weights_only=True): eval mode, float32."""
    from .seq2seq import Seq2Seq  # imported here: seq2seq imports tuning, which may import data
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file at {path!r}: check the path, or write one with "
                                f"minitx.data.save_model(path, model, tokenizer)")
    data = load_checkpoint(path, map_location)
    if not isinstance(data, dict) or data.get("format") != "minitx-model":
        raise ValueError(f"{path!r} was not written by minitx.data.save_model (load a training "
                         f"checkpoint with train.load_checkpoint, an adapter with Tuned.load)")
    model = {"GPT": GPT, "Seq2Seq": Seq2Seq}[data["kind"]](Config(**data["config"]))
    weights = data["weights"]  # the tied lm_head was not stored: it is the token embedding
    model.load_state_dict({**weights, "lm_head.weight": weights["transformer.wte.weight"]})
    return model.to(map_location).eval(), Tokenizer.from_dict(data["tokenizer"])

@torch.no_grad()
def complete(model, tok: Tokenizer, prompts, max_new_tokens=32, batch_size=64, **generate_kwargs):
    """Text in, text out: each prompt's continuation before the stop token, by encode_prompts and
    generate in batches (greedy unless generate_kwargs say otherwise; a Tuned takes task=...)."""
    prompts, task = _strings(prompts, "prompts"), generate_kwargs.pop("task", None)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size}")
    device, texts = next(model.parameters()).device, []
    for i in range(0, len(prompts), batch_size):
        idx, mask = encode_prompts(tok, prompts[i:i + batch_size])
        if task is not None:  # one name for all, or this batch's slice of the per-prompt list
            generate_kwargs["task"] = task if isinstance(task, str) else task[i:i + batch_size]
        new = generate(model, idx.to(device), max_new_tokens, attention_mask=mask.to(device),
                       stop_ids=[tok.stop_id], pad_id=tok.pad_id, **generate_kwargs)
        texts += [tok.decode(row[:row.index(tok.stop_id)] if tok.stop_id in row else row)
                  for row in new.tolist()]
    return texts

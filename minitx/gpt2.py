"""Real GPT-2 (Radford et al. 2019) in minitx: its weights and its byte-level BPE tokenizer.

Both read a LOCAL Hugging Face-format directory; nothing is ever downloaded. GPT-2's names are
minitx's; only the layout differs: GPT-2's `Conv1D` stores a weight as (in, out) for x @ W + b,
nn.Linear as (out, in) for x @ Wᵀ + b, so four matrices per block are transposed."""
import json
import numbers
import os

import torch

from .model import GPT, Config

try:
    from safetensors.torch import load_file as load_safetensors
except ImportError:  # optional: pytorch_model.bin needs only torch
    load_safetensors = None

HOW_TO_GET = ("Nothing is downloaded: save a model with transformers' save_pretrained (model and "
              "GPT2Tokenizer) on a machine with internet, or copy the files of the 'gpt2' model "
              "repository (https://huggingface.co/gpt2) into {path}")
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
GELU_TANH = ("gelu_new", "gelu_pytorch_tanh")  # the tanh approximation minitx's MLP computes


def require(path, names, what):
    """Return path/name for the first of `names` that exists, else raise FileNotFoundError."""
    for name in names:
        if os.path.isfile(os.path.join(path, name)):
            return os.path.join(path, name)
    where = f"has no {what} ({' or '.join(names)})" if os.path.isdir(path) else "does not exist"
    raise FileNotFoundError(f"GPT-2 directory {os.fspath(path)!r} {where}; it must hold "
                             "config.json, model.safetensors or pytorch_model.bin, vocab.json and "
                             "merges.txt. " + HOW_TO_GET.format(path=os.fspath(path)))


def read_json(file):
    with open(file, encoding="utf-8") as f:
        return json.load(f)


def read_config(path):
    """config.json -> minitx Config; refuse settings minitx would silently compute otherwise."""
    c = read_json(require(path, ["config.json"], "model configuration"))
    act, eps = c.get("activation_function", "gelu_new"), c.get("layer_norm_epsilon", 1e-5)
    if act not in GELU_TANH:
        raise ValueError(f"activation_function={act!r} is not supported: minitx computes the tanh "
                         f"GELU ({' / '.join(GELU_TANH)}); loading would give a different model")
    if eps != 1e-5:
        raise ValueError(f"layer_norm_epsilon={eps} is not supported: minitx's LayerNorm uses "
                         "1e-5; loading would give a different model")
    if c.get("scale_attn_by_inverse_layer_idx") or not c.get("scale_attn_weights", True):
        raise ValueError("only GPT-2's standard attention scaling 1/sqrt(head_size) is supported")
    c.setdefault("n_positions", c.get("n_ctx"))
    missing = [k for k in ("vocab_size", "n_positions", "n_layer", "n_head", "n_embd")
               if c.get(k) is None]
    if missing:
        raise ValueError(f"{os.path.join(path, 'config.json')} lacks {missing} (n_positions may be "
                         f"n_ctx): it is not a GPT-2 config; copy the model's own config.json")
    return Config(c["vocab_size"], c["n_positions"], c["n_layer"], c["n_head"], c["n_embd"],
                  dropout=0.0, bias=True)


def read_weights(path):
    """The raw HF state dict: from model.safetensors if it can be read, else pytorch_model.bin."""
    file = require(path, ["model.safetensors", "pytorch_model.bin"], "weights")
    bin_file = os.path.join(path, "pytorch_model.bin")
    if file != bin_file and load_safetensors is None:
        if not os.path.isfile(bin_file):
            raise ImportError(f"{path!r} holds its weights as model.safetensors, which needs "
                              'safetensors: pip install safetensors (or pip install -e ".[gpt2]")')
        file = bin_file
    try:  # a torn download or copy fails to parse
        return (torch.load(file, map_location="cpu", weights_only=True) if file == bin_file else
                load_safetensors(file))
    except Exception as e:
        raise ValueError(f"{file} is truncated or corrupted ({type(e).__name__}: {e}); copy "
                         f"or download it again") from e


def hf_to_minitx(hf_state):
    """Rename (and transpose Conv1D) HF GPT-2 tensors to minitx names; return (state, lm_head)."""
    state = {}
    for key, t in hf_state.items():
        k = key.removeprefix("transformer.")
        if k.split(".")[-2:] not in (["attn", "bias"], ["attn", "masked_bias"]):  # mask buffers
            state["transformer." + k] = t.t() if k.endswith(CONV1D) and t.dim() == 2 else t
    return state, state.pop("transformer.lm_head.weight", None)


def load_gpt2(path, dtype=torch.float32, device="cpu"):
    """Load a GPT-2 of any size (small .. xl) from a local Hugging Face-format directory: strict,
    every parameter filled with the right shape and no weight left over (else a ValueError naming
    the keys); lm_head is tied to wte, so it is absent or equal to it."""
    path = os.fspath(path)
    config = read_config(path)
    state, lm_head = hf_to_minitx(read_weights(path))
    model = GPT(config).to(dtype=dtype)
    params = dict(model.named_parameters())  # the tied lm_head.weight appears once, as wte
    missing, unexpected = sorted(params.keys() - state.keys()), sorted(state.keys() - params.keys())
    wrong = [f"{k}: {tuple(state[k].shape)}, expected {tuple(p.shape)}"
             for k, p in params.items() if k in state and state[k].shape != p.shape]
    if missing or unexpected or wrong:
        raise ValueError(f"GPT-2 weights in {path!r} do not match its config.json: missing keys "
                         f"{missing}, unexpected keys {unexpected}, wrong shapes {wrong}")
    if lm_head is not None and not torch.equal(lm_head, state["transformer.wte.weight"]):
        raise ValueError("lm_head.weight differs from transformer.wte.weight: minitx ties them")
    model.load_state_dict({**state, "lm_head.weight": state["transformer.wte.weight"]})  # tied
    return model.to(device).eval()


def bytes_to_unicode():
    """GPT-2's byte -> visible character table: printable Latin-1 bytes map to themselves, the
    rest (controls, space, ...) to chr(256 + n), so every token is printable text."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]  # '!'..'~', '¡'..'¬', '®'..'ÿ'
    shifted = [b for b in range(256) if b not in keep]
    return {**{b: chr(b) for b in keep}, **{b: chr(256 + n) for n, b in enumerate(shifted)}}


# GPT-2's pre-tokenisation: contractions, letter runs, number runs and other-symbol runs (each
# with an optional leading space), then whitespace. BPE never merges across these pieces.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


class GPT2Tokenizer:
    """GPT-2's byte-level BPE (Sennrich et al. 2016, on bytes as in Radford et al. 2019).

    Text -> pieces by GPT2_PATTERN -> UTF-8 bytes -> one visible character per byte -> in each
    piece, merge the adjacent pair of lowest merge rank until none has a rank -> ids. Every byte
    is a token, so decode(encode(s)) == s for any str. "<|endoftext|>" in text is plain text."""

    def __init__(self, vocab, merges):
        try:
            import regex  # \p{L} and \p{N}, which the standard `re` lacks
        except ImportError:
            raise ImportError("GPT2Tokenizer needs the `regex` package: pip install regex, or "
                              'pip install -e ".[gpt2]"') from None
        self.encoder, self.decoder = dict(vocab), {i: t for t, i in vocab.items()}
        self.ranks = {tuple(pair): r for r, pair in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.pattern = regex.compile(GPT2_PATTERN)
        self.eos_token_id = self.encoder.get("<|endoftext|>")
        self.cache = {}

    @classmethod
    def from_dir(cls, path):
        """Read vocab.json and merges.txt (its '#version' header line is skipped) from `path`."""
        vocab = read_json(require(path, ["vocab.json"], "tokenizer vocabulary"))
        with open(require(path, ["merges.txt"], "BPE merges"), encoding="utf-8") as f:
            merges = [ln.split() for ln in f if ln.strip() and not ln.startswith("#version")]
        return cls(vocab, merges)

    def bpe(self, piece):
        """Merge one piece's characters, lowest merge rank first; return its tokens."""
        word = list(piece)
        while len(word) > 1:
            pair = min(zip(word, word[1:]), key=lambda p: self.ranks.get(p, float("inf")))
            if pair not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):  # merge every occurrence, left to right
                n = 2 if tuple(word[i:i + 2]) == pair else 1
                merged.append("".join(word[i:i + n]))
                i += n
            word = merged
        return word

    def encode(self, text):
        """str -> list of token ids."""
        ids = []
        for piece in self.pattern.findall(text):
            chars = "".join(self.byte_encoder[b] for b in piece.encode("utf-8", "surrogatepass"))
            if chars not in self.cache:  # text repeats its words: merge each one once
                self.cache[chars] = [self.encoder[t] for t in self.bpe(chars)]
            ids.extend(self.cache[chars])
        return ids

    def decode(self, ids):
        """list (or 1-D tensor) of token ids -> str (bytes not valid UTF-8 become U+FFFD)."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        unknown = [i for i in ids if not isinstance(i, numbers.Integral) or i not in self.decoder]
        if unknown:
            raise ValueError(f"ids must be token ids in [0, {len(self.decoder)}), a flat list or "
                             f"1-D tensor; got {unknown[:5]}: the vocabulary has no token for them")
        data = bytes(self.byte_decoder[c] for i in ids for c in self.decoder[i])
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace")

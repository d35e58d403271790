"""Parameter-efficient tuning of a frozen model: soft prompts, prefixes, LoRA, adapters.

Every method is a small module holding one task's parameters, used by the frozen base as:

* `prompt()`  -> (n, C) virtual-token embeddings put in front of the input  (prompt tuning)
* `prefix()`  -> one (k, v) per layer put in front of that layer's keys      (prefix tuning,
                 deep prompts) — the model takes them as a pre-filled cache
* `hooks()`   -> (submodule name, fn) pairs: fn(x, out) replaces a frozen layer's output
                 (LoRA adds B·A·x; an adapter adds its bottleneck; the prefix LayerNorm option)

`Tuned` holds the frozen base and named task modules, and runs a batch whose rows may each use a
different task; logits, targets and the attention mask line up with the real tokens only.
Constructors check their arguments (`check`): a bad size or id is refused when a module is made."""
import contextlib
import copy
import hashlib
import io
import json
import math
import numbers
import os
from dataclasses import asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import embed, past_length


def check(name, value, low, high=math.inf, real=False, above=False):
    """Return `value` if it is an int (a real number if `real`; never a bool) >= low (> low if
    `above`) and <= high; else a TypeError or ValueError naming the argument and what is allowed."""
    word, sign = ("a number" if real else "an int"), (">" if above else ">=")
    interval = f"{'(' if above else '['}{low}, {high}]"
    allowed = f"{word} in {interval}" if high < math.inf else f"{word} {sign} {low}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real if real else numbers.Integral):
        raise TypeError(f"{name} must be {allowed}; got {value!r} ({type(value).__name__})")
    if not (math.isfinite(value) and (value > low if above else value >= low) and value <= high):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    return value


def check_indices(name, values, n):
    """A non-empty list of ints in [0, n) (token ids, layer numbers), else an error naming it."""
    if not isinstance(values, (list, tuple, range)):
        raise TypeError(f"{name} must be a list of ints in [0, {n}); got {values!r}")
    if not values:
        raise ValueError(f"{name} must be a non-empty list of ints in [0, {n}); got {values!r}")
    return [check(f"each entry of {name}", i, 0, n - 1) for i in values]


class Method(nn.Module):
    """Base class: one task's parameters. Subclasses override the parts they use."""

    method = "none"
    SETTINGS = ()  # the constructor arguments (besides the model) kept in a file

    def __init__(self, model):
        super().__init__()
        if not hasattr(model, "config"):
            raise TypeError(f"model must be a minitx GPT or Seq2Seq (for a Tuned, pass "
                            f"tuned.base); got {type(model).__name__}")

    def prompt(self):
        return None

    def prefix(self):
        return None

    def hooks(self):
        return []

    def settings(self):
        """The constructor arguments (besides the model) that rebuild this module from a file."""
        return {name: getattr(self, name) for name in self.SETTINGS}


class SoftPrompt(Method):
    """Prompt tuning (Lester et al. 2021, arXiv 2104.08691 §2): n trainable embeddings P_e ∈ R^(n×C)
    in front of the input embeddings, kept in fp32 and cast to the model's dtype at use. init:
    "random" = uniform [-0.5, 0.5] (the paper's baseline); "vocab" = embeddings of tokens drawn
    from the first `vocab_top` ids; or token ids (a phrase, class words), repeated or cut to n."""

    method = "soft_prompt"
    SETTINGS = ("n_tokens",)

    def __init__(self, model, n_tokens, init="random", vocab_top=5000):
        super().__init__(model)
        self.n_tokens = check("n_tokens", n_tokens, 1)
        wte = model.transformer.wte.weight.detach()
        if isinstance(init, str) and init == "random":
            values = torch.rand(n_tokens, wte.size(1), device=wte.device) - 0.5
        elif isinstance(init, str) and init == "vocab":
            values = wte[torch.randint(0, min(check("vocab_top", vocab_top, 1), wte.size(0)),
                                       (n_tokens,))]
        elif not isinstance(init, str):
            ids = check_indices("init", init, wte.size(0))
            values = wte[torch.tensor((ids * n_tokens)[:n_tokens], device=wte.device)]
        else:
            raise ValueError(f"init must be 'random', 'vocab' or a list of token ids; got {init!r}")
        self.embeddings = nn.Parameter(values.to(torch.promote_types(wte.dtype, torch.float32)))

    def prompt(self):
        return self.embeddings


class Prefix(Method):
    """Prefix tuning (Li & Liang 2021, arXiv 2101.00190 §4): per layer, trainable P_K, P_V put in
    front of the keys and values: attention(Q, [P_K; K], [P_V; V]).

    mid=None: the prefix is a parameter itself (P-tuning v2's "deep prompts", init N(0, 1)).
    mid=int:  reparameterized, P = MLP(P′) with P′ = Embedding(length, C) and MLP = Linear(C, mid)
              -> Tanh -> Linear(mid, L·2·C) (§4.3; the paper uses mid 512 for table-to-text).
    layers:   which layers carry a prefix (default all) — for the depth ablation.
    layer_norm: LayerNorm on each such layer's attention output (the source article's option)."""

    method = "prefix"
    SETTINGS = ("length", "mid", "layers", "layer_norm")

    def __init__(self, model, length, mid=None, layers=None, layer_norm=False):
        super().__init__(model)
        c = model.config
        self.length, self.layer_norm = check("length", length, 1), layer_norm
        self.mid = None if mid is None else check("mid", mid, 1)
        self.n_head, self.n_layer = c.n_head, c.n_layer
        self.layers = sorted(check_indices("layers", range(c.n_layer) if layers is None else layers,
                                           c.n_layer))
        if len(set(self.layers)) < len(self.layers):
            raise ValueError(f"layers must not repeat a layer (its prefix would go unused); got "
                             f"{layers!r}")
        n = len(self.layers)
        if mid is None:
            self.kv = nn.Parameter(torch.randn(n, 2, length, c.n_embd))  # (layers, K/V, P, C)
        else:
            self.embedding = nn.Embedding(length, c.n_embd)
            self.mlp = nn.Sequential(nn.Linear(c.n_embd, mid), nn.Tanh(),
                                     nn.Linear(mid, n * 2 * c.n_embd))
        if layer_norm:
            self.norms = nn.ModuleList(nn.LayerNorm(c.n_embd) for _ in self.layers)

    def values(self):
        """The prefix as one tensor (n_layers_with_prefix, 2, length, C)."""
        if self.mid is None:
            return self.kv
        out = self.mlp(self.embedding.weight)  # (length, n·2·C): MLP once, then split
        return out.view(self.length, len(self.layers), 2, -1).permute(1, 2, 0, 3)

    def prefix(self, values=None):
        """Per layer (k, v), each (1, nh, P, hs), or None on a layer without a prefix; from
        `values` (B, n_layers_with_prefix, 2, P, C) instead: each (B, nh, P, hs)."""
        kv = self.values()[None] if values is None else values
        B, n, _, P, C = kv.shape
        kv = kv.view(B, n, 2, P, self.n_head, C // self.n_head).transpose(3, 4)  # (..., nh, P, hs)
        by_layer = dict(zip(self.layers, kv.unbind(1)))
        return [(by_layer[l][:, 0], by_layer[l][:, 1]) if l in by_layer else None
                for l in range(self.n_layer)]

    def hooks(self):
        return [(f"transformer.h.{l}.attn.c_proj", lambda x, out, ln=ln: ln(out))
                for l, ln in zip(self.layers, self.norms if self.layer_norm else [])]

    @torch.no_grad()
    def init_from_tokens(self, model, ids, run=None):
        """Set the prefix to the frozen model's own keys/values for the tokens `ids` (§7.4: real
        words' activations): copied, or (reparameterized) the MLP's last Linear solved by least
        squares on the tanh features, exact while length <= mid; return the remaining MSE.
        `run(ids)` -> per-layer (k, v) replaces `model(ids)[2]` (seq2seq.py passes its encoder)."""
        ids = check_indices("ids", ids, model.config.vocab_size)
        ids = torch.tensor([(ids * self.length)[:self.length]],
                           device=model.transformer.wte.weight.device)
        present = model(ids)[2] if run is None else run(ids)
        target = torch.stack([torch.stack(present[i])[:, 0] for i in self.layers])
        target = target.transpose(2, 3).flatten(-2)  # (n, 2, nh, P, hs) -> (n, 2, P, C)
        target = target.to(next(self.parameters()))  # this module's device and dtype
        if self.mid is None:
            self.kv.copy_(target)
        else:
            features = self.mlp[1](self.mlp[0](self.embedding.weight))  # (P, mid)
            features = torch.cat([features, torch.ones_like(features[:, :1])], dim=1)
            solution = torch.linalg.pinv(features) @ target.permute(2, 0, 1, 3).flatten(1)
            self.mlp[2].weight.copy_(solution[:-1].t())  # (n·2·C, mid)
            self.mlp[2].bias.copy_(solution[-1])
        return F.mse_loss(self.values(), target).item()

    @torch.no_grad()
    def export(self):
        """Compute the prefix once and return a direct Prefix holding it: the MLP is dropped, the
        outputs stay identical (only P is kept after training, §4.3)."""
        out = copy.deepcopy(self)
        if self.mid is not None:
            del out.embedding, out.mlp
            out.mid = None
            out.kv = nn.Parameter(self.values().detach().clone())
        return out


class LowRank(nn.Module):
    """ΔW = B·A for `linear`: A ∈ R^(r×in) Kaiming-uniform (the LoRA code's), B ∈ R^(out×r) = 0."""

    def __init__(self, linear, r):
        super().__init__()
        self.A = nn.Parameter(torch.empty(r, linear.in_features))
        self.B = nn.Parameter(torch.zeros(linear.out_features, r))
        nn.init.kaiming_uniform_(self.A, a=5 ** 0.5)


class LoRA(Method):
    """LoRA (Hu et al. 2021, arXiv 2106.09685 §4.1): h = W₀x + (α/r)·B·A·x on chosen Linear layers
    (default: the attention input projection `attn.c_attn`). B = 0 at init, so the output starts
    unchanged. `merge(tuned)` folds ΔW into the frozen weights for zero-cost inference (refused
    while other tasks share the base); `unmerge(tuned)` takes it out (equal up to rounding)."""

    method = "lora"
    SETTINGS = ("r", "alpha", "targets")

    def __init__(self, model, r=8, alpha=16, targets=("attn.c_attn",)):
        super().__init__(model)
        self.r, self.alpha = check("r", r, 1), check("alpha", alpha, 0, real=True, above=True)
        self.targets = [targets] if isinstance(targets, str) else list(targets)  # name endings
        self.merged = False
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        names = [n for n in linear if any(n.endswith(t) for t in self.targets)]
        if not names:
            raise ValueError(f"targets {self.targets} match no nn.Linear layer; the model's end "
                             f"with {sorted({'.'.join(n.split('.')[-2:]) for n in linear})}")
        self.deltas = nn.ModuleDict({n.replace(".", "/"): LowRank(model.get_submodule(n), r)
                                     for n in names})

    def hooks(self):
        if self.merged:
            return []
        s = self.alpha / self.r
        return [(k.replace("/", "."), lambda x, out, d=d: out + s * (x @ d.A.t().to(x.dtype))
                 @ d.B.t().to(x.dtype)) for k, d in self.deltas.items()]

    @torch.no_grad()
    def merge(self, tuned, sign=1.0):
        """W₀ += (α/r)·B·A in `tuned.base` (sign=-1: subtract). Every task of `tuned` runs on
        that base, so merging is refused while it holds other tasks."""
        if not isinstance(tuned, Tuned):
            raise TypeError(f"tuned must be the Tuned holding the LoRA; got {type(tuned).__name__}")
        others = [n for n, m in tuned.tasks.items() if m is not self]
        if others:
            raise ValueError(f"merging writes ΔW into the base that tasks {others} also use: they "
                             f"would change too. Merge in a Tuned of its own on a copy of the base "
                             f"(Tuned(copy.deepcopy(tuned.base))), or remove the other tasks")
        if self.merged == (sign > 0):
            raise ValueError(f"LoRA is already {'merged' if self.merged else 'unmerged'}")
        for k, d in self.deltas.items():
            w = tuned.base.get_submodule(k.replace("/", ".")).weight
            w += sign * (self.alpha / self.r) * (d.B @ d.A).to(w.dtype)
        self.merged = sign > 0

    def unmerge(self, tuned):
        self.merge(tuned, sign=-1.0)


class Adapter(Method):
    """Bottleneck adapters (Houlsby et al. 2019, arXiv 1902.00751 §2.1): after every attention and
    MLP sub-layer (`*attn.c_proj`, `*mlp.c_proj`), before the residual add,
    out + up(GELU(down(out))). The up-projection starts at zero, so each adapter starts as the
    identity (the near-identity initialisation taken to its limit)."""

    method = "adapter"
    SETTINGS = ("bottleneck",)

    def __init__(self, model, bottleneck=64):
        super().__init__(model)
        self.bottleneck = check("bottleneck", bottleneck, 1)
        C = model.config.n_embd
        self.names = [n for n, _ in model.named_modules()
                      if n.endswith(("attn.c_proj", "mlp.c_proj"))]
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(C, bottleneck), nn.GELU(),
                                                  nn.Linear(bottleneck, C)) for _ in self.names)
        for b in self.blocks:
            nn.init.zeros_(b[2].weight)
            nn.init.zeros_(b[2].bias)

    def hooks(self):
        return [(n, lambda x, out, b=b: out + b(out.to(b[0].weight.dtype)).to(out.dtype))
                for n, b in zip(self.names, self.blocks)]


METHODS = {cls.method: cls for cls in (SoftPrompt, Prefix, LoRA, Adapter)}


def count_parameters(module):
    """(trainable, total) parameter counts; shared (tied) tensors are counted once."""
    params = {id(p): p for p in module.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def report(module):
    """The familiar one-liner: trainable params || all params || trainable%."""
    trainable, total = count_parameters(module)
    return (f"trainable params: {trainable:,} || all params: {total:,} || "
            f"trainable%: {100 * trainable / total:.4f}")


MEMORY_OPTIONS = ("checkpoint", "loss_chunk")  # Config fields that leave the model's function as is


def digest(named_tensors):
    """SHA-256 of (name, tensor) pairs: each name and the tensor's raw bytes, in the order given."""
    h = hashlib.sha256()
    for name, t in named_tensors:
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def fingerprint(model):
    """Identify a base model: its config (but its MEMORY_OPTIONS, which change how, not what, it
    computes) and a SHA-256 of its weights (in state_dict order)."""
    config = {k: v for k, v in asdict(model.config).items() if k not in MEMORY_OPTIONS}
    return {"config": config, "sha256": digest(model.state_dict().items())}


def pad_left(tensors, length):
    """Stack (..., n_i, C) tensors padded with zeros on the left of dim -2 to `length`."""
    return torch.stack([F.pad(t, (0, 0, length - t.size(-2), 0)) for t in tensors])


class Tuned(nn.Module):
    """A frozen base model plus named task methods; `task` picks one per batch or one per row."""

    def __init__(self, base):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.tasks = nn.ModuleDict()
        self.default = None

    def add(self, name, method, replace=False):
        """Register `method` under `name` (the default task if it is the first); a name already
        taken is refused unless replace=True."""
        if not isinstance(method, Method):
            raise TypeError(f"method must be a tuning method (SoftPrompt, Prefix, LoRA, ...); got "
                            f"{type(method).__name__}")
        if name in self.tasks and not replace:
            raise ValueError(f"task {name!r} exists: pass replace=True, or choose another name")
        if method.method == "seq2seq_prefix" and "encoder" not in self.base.transformer:
            raise ValueError("method: a Seq2SeqPrefix is for an encoder-decoder (TunedSeq2Seq); a "
                             "GPT would ignore it. Use tuning.Prefix")
        w = self.base.transformer.wte.weight  # a task's parameters: >= fp32 and >= the base's
        self.tasks[name] = method.to(w.device, torch.promote_types(w.dtype, torch.float32))
        self.default = self.default or name
        return method

    def use(self, name):
        """Switch the default task by name."""
        self.row_tasks(name, 1)
        self.default = name

    def row_tasks(self, task, B):
        names = [task or self.default] * B if task is None or isinstance(task, str) else list(task)
        unknown = sorted(set(names) - set(self.tasks))
        if unknown or len(names) != B:
            raise ValueError(f"task must be one of {list(self.tasks)} or a list of B={B} of them; "
                             f"got {task!r}")
        return names

    def keys_in_front(self, task=None, **ignored):
        """Virtual keys in front of the caller's tokens for `task` (a name or one per row): the
        longest prefix plus the longest soft prompt, which a generation budget must count."""
        names = self.row_tasks(task, 1 if task is None or isinstance(task, str) else len(task))
        return self.virtual(names, self.base.transformer.wte.weight.device, build=False)[3]

    @contextlib.contextmanager
    def hooked(self, names, device):
        """Install each task's hooks on the frozen modules for this call, limited to its rows."""
        handles, tasks = [], list(dict.fromkeys(names))
        for t in tasks:
            rows = None if len(tasks) == 1 else torch.tensor([n == t for n in names], device=device)
            for module_name, fn in self.tasks[t].hooks():
                def hook(module, inputs, out, fn=fn, rows=rows):
                    new = fn(inputs[0], out)
                    return new if rows is None else torch.where(rows[:, None, None], new, out)
                handles.append(self.base.get_submodule(module_name).register_forward_hook(hook))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def virtual(self, names, device, build):
        """The virtual tokens of a batch whose row i uses task names[i]: each task's prefix and soft
        prompt left-padded to the longest (P keys, n tokens), one per row, and the (B, P + n) mask
        hiding the padding. Returns (prompts (B, n, C), per-layer prefix, mask, P + n), B = 1 for
        one task; build=False: the mask (None for one task) and P + n (a cache holds the rest)."""
        tasks = list(dict.fromkeys(names))
        methods = [self.tasks[t] for t in tasks]
        if len({tuple(m.layers) for m in methods if isinstance(m, Prefix)}) > 1:
            raise ValueError("a mixed-task batch needs its prefixes on the same layers")
        lengths = [(m.length if isinstance(m, Prefix) else 0, getattr(m, "n_tokens", 0))
                   for m in methods]  # (prefix keys, soft-prompt tokens) of each task
        P, n = max(p for p, _ in lengths), max(s for _, s in lengths)
        if len(tasks) == 1 and not build:  # one task's decoding step: nothing to pad or gather
            return None, None, None, P + n
        row = torch.tensor([tasks.index(t) for t in names], device=device)  # (B,) row -> task
        own = torch.tensor(lengths, device=device)[row]  # (B, 2): each row's P_i and n_i
        mask = torch.cat([torch.arange(P, device=device) >= P - own[:, :1],
                          torch.arange(n, device=device) >= n - own[:, 1:]], dim=1)  # (B, P + n)
        if len(tasks) == 1:  # nothing padded: one row of virtual tokens serves every row
            row = row[:1]
        if not build:
            return None, None, mask, P + n
        C, prompts, prefix = self.base.config.n_embd, None, None
        if n:  # each task's (n_i, C) prompt padded to (n, C), then one per row: (B, n, C)
            empty = torch.zeros(0, C, device=device)
            prompts = pad_left([empty if p is None else p for p in (m.prompt() for m in methods)],
                               n)[row]
        if P:  # the same with each (n_layers, 2, P_i, C) prefix: (B, n_layers, 2, P, C)
            first = next(m for m in methods if isinstance(m, Prefix))  # all on its layers
            empty = torch.zeros(len(first.layers), 2, 0, C, device=device)
            prefix = first.prefix(pad_left([m.values() if isinstance(m, Prefix) else empty
                                            for m in methods], P)[row])
        return prompts, prefix, mask, P + n

    def forward(self, idx, targets=None, past=None, attention_mask=None, task=None):
        """Like GPT.forward, for the task(s) named by `task` (one name, or one per row). The
        attention_mask covers the caller's tokens only: (B, T), or (B, cached + T) with a cache."""
        x = embed(self.base.transformer.wte, idx, None, past)  # (B, T, C), the ids checked
        B, T = idx.shape
        names = self.row_tasks(task, B)
        embeds, prefix, virtual_mask, n_virtual = self.virtual(names, idx.device, past is None)
        cached = 0 if past is None else past_length(past) - n_virtual  # the caller's earlier tokens
        if attention_mask is not None and (getattr(attention_mask, "dtype", None) != torch.bool
                                           or attention_mask.shape != (B, cached + T)):
            raise ValueError(f"attention_mask must be bool over your own tokens, (B, cached + T) = "
                             f"({B}, {cached} + {T}); got {getattr(attention_mask, 'shape', None)} "
                             f"{getattr(attention_mask, 'dtype', type(attention_mask))}")
        if embeds is not None:
            x = torch.cat([embeds.to(x.dtype).expand(B, -1, -1), x], dim=1)  # (B, n + T, C)
        mask = None
        if attention_mask is not None or len(set(names)) > 1:  # else: the causal fast path
            if attention_mask is None:  # every real token, cached or current, is visible
                attention_mask = torch.ones(B, cached + T, dtype=torch.bool, device=idx.device)
            if virtual_mask is None:  # one task's virtual tokens: all visible
                virtual_mask = attention_mask.new_ones(B, n_virtual)
            mask = torch.cat([virtual_mask, attention_mask], dim=1)  # (B, all keys)
        with self.hooked(names, idx.device):
            h, present = self.base.body(inputs_embeds=x, past=prefix if past is None else past,
                                        attention_mask=mask)
        h = h[:, x.size(1) - T:]  # drop the virtual positions: outputs line up with idx
        return *self.base.head(h, targets), present

    def report(self, task=None):
        """Trainable share for one task: its parameters against base + its parameters."""
        return report(nn.ModuleList([self.base, self.tasks[self.row_tasks(task, 1)[0]]]))

    def save(self, name, directory, keep_mlp=False, tokenizer=None):
        """Write task `name` into `directory`: a weights file, then adapter.json with its SHA-256,
        the settings, the base's fingerprint and `tokenizer.to_dict()`; return the weights' bytes.
        A reparameterized prefix is saved exported (§4.3) unless keep_mlp=True. Atomic."""
        if name not in self.tasks:
            raise ValueError(f"name {name!r} is not a task here; the tasks are {list(self.tasks)}")
        m = self.tasks[name]
        m = m.export() if getattr(m, "mid", None) is not None and not keep_mlp else m
        if tokenizer is not None and not hasattr(tokenizer, "to_dict"):
            raise TypeError(f"tokenizer must have a to_dict() method, as minitx.data.Tokenizer "
                            f"has; got {type(tokenizer).__name__}")
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in m.state_dict().items()}, buffer)
        data = buffer.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        weights = f"weights-{sha[:16]}.pt"
        meta = {"format": "minitx-adapter", "version": 1, "name": name, "method": m.method,
                "settings": m.settings(), "base": fingerprint(self.base), "weights": weights,
                "weights_sha256": sha, "merged": getattr(m, "merged", False),
                "tokenizer": None if tokenizer is None else tokenizer.to_dict()}
        os.makedirs(directory, exist_ok=True)  # an OSError here or below names the path
        atomic_write(os.path.join(directory, weights), lambda f: f.write(data))
        text = json.dumps(meta, indent=1).encode()
        atomic_write(os.path.join(directory, "adapter.json"), lambda f: f.write(text))
        remove_files(directory, lambda file: file.endswith(".tmp")  # what killed saves left
                     or file.startswith("weights-") and file != weights)  # and earlier saves
        return len(data)

    def load(self, directory, name=None, method=None, replace=False):
        """Add the adapter that `save` wrote (under its saved name unless `name` is given), once
        adapter.json, the method (if `method` is given), the base's fingerprint and the weights'
        SHA-256 check out. A LoRA saved merged stays merged: its base carries ΔW."""
        meta = read_json(directory)
        if method is not None and meta["method"] != method:
            raise ValueError(f"{directory} holds a {meta['method']!r} adapter, not {method!r}: "
                             f"load it with method={meta['method']!r} or pick the right directory")
        base, saved = fingerprint(self.base), meta["base"]
        if saved != base:
            what = "config" if saved.get("config") != base["config"] else "weights"
            raise ValueError(f"{directory} was saved for another base model (its {what} differ: "
                             f"saved sha256 {str(saved.get('sha256'))[:12]}…, this model "
                             f"{base['sha256'][:12]}…); load the base model it was trained on"
                             + (" (with its LoRA merged in)" if meta.get("merged") else ""))
        path = os.path.join(directory, meta["weights"])
        data = open(path, "rb").read() if os.path.exists(path) else b""
        if hashlib.sha256(data).hexdigest() != meta["weights_sha256"]:
            raise ValueError(f"{path} is missing, truncated or corrupted (SHA-256 differs from "
                             f"adapter.json); save the adapter again from its training run")
        try:
            m = METHODS[meta["method"]](self.base, **meta["settings"])
        except (TypeError, ValueError) as e:  # a setting it does not take, or a bad value
            raise ValueError(f"{directory}/adapter.json: settings {meta['settings']} do not fit "
                             f"{meta['method']!r} ({e}); save the adapter again") from None
        state = torch.load(io.BytesIO(data), map_location=self.base.transformer.wte.weight.device,
                           weights_only=True)
        m.load_state_dict(state, assign=True)  # the saved dtype: a float64 adapter stays exact
        if meta.get("merged"):
            m.merged = True  # no hooks: ΔW is in the base the fingerprint matched
        return self.add(name or meta["name"], m, replace)


def read_json(directory):
    path = os.path.join(directory, "adapter.json")
    try:
        with open(path) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"no adapter.json in {directory}: is this an adapter saved by Tuned.save?")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is corrupted ({e}); save the adapter again") from None
    if not isinstance(meta, dict) or meta.get("format") != "minitx-adapter" or meta.get(
            "method") not in METHODS:
        raise ValueError(f"{path} is not a minitx adapter file (format/method unknown)")
    for key, kind in {"name": str, "settings": dict, "base": dict, "weights": str,
                      "weights_sha256": str}.items():  # what it holds, of what type
        if not isinstance(meta.get(key), kind):
            raise ValueError(f"{path} lacks {key!r} (a {kind.__name__}; got {meta.get(key)!r}): "
                             f"it is damaged; save the adapter again")
    return meta


def read_adapter_tokenizer(directory):
    """The `tokenizer.to_dict()` that Tuned.save stored with an adapter, or None; rebuild the
    tokenizer with its class's from_dict (e.g. minitx.data.Tokenizer.from_dict)."""
    return read_json(directory).get("tokenizer")


def atomic_write(path, write):
    """write(f) to `<path>.tmp`, fsync, rename it over `path`: a crash leaves the old file or the
    new one, never a torn one (a killed writer's `.tmp` is removed by the next save there)."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def remove_files(directory, unwanted):
    """Delete the files in `directory` whose name satisfies unwanted(name) (what killed or earlier
    saves left); only saves call it, never a load (a save may be running)."""
    for name in os.listdir(directory):
        if unwanted(name):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))

"""Parameter-efficient tuning of a frozen model: soft prompts, prefixes, LoRA, adapters.

Every method is a small module holding one task's parameters and telling the frozen base model
how to use them, in one of three ways:

* `prompt()`  -> (n, C) virtual-token embeddings put in front of the input  (prompt tuning)
* `prefix()`  -> one (k, v) per layer put in front of that layer's keys      (prefix tuning,
                 deep prompts) — the model takes them as a pre-filled cache
* `hooks()`   -> (submodule name, fn) pairs: fn(x, out) replaces a frozen layer's output
                 (LoRA adds B·A·x; an adapter adds its bottleneck; the prefix LayerNorm option)

`Tuned` holds the frozen base and any number of named task modules, and runs a batch whose rows
may each use a different task. The caller never sees virtual positions: logits, targets and the
attention mask all line up with the real tokens.
"""
import contextlib
import copy
import hashlib
import json
import os
from dataclasses import asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from .model import past_length


class Method(nn.Module):
    """Base class: one task's parameters. Subclasses override the parts they use."""

    method = "none"

    def __init__(self, model, n_classes=None):
        super().__init__()
        self.n_classes = n_classes
        if n_classes:  # P-tuning v2: a linear head on the last real token instead of a verbalizer
            self.head = nn.Linear(model.config.n_embd, n_classes)

    def prompt(self):
        return None

    def prefix(self):
        return None

    def hooks(self):
        return []

    def settings(self):
        """The constructor arguments (besides the model) that rebuild this module from a file."""
        return {"n_classes": self.n_classes}


class SoftPrompt(Method):
    """Prompt tuning (Lester et al. 2021, arXiv 2104.08691 §2): n trainable embeddings P_e ∈ R^(n×C)
    put in front of the input embeddings. Kept in fp32 and cast to the model's dtype at use.

    init: "random" = uniform [-0.5, 0.5] (the paper's random baseline); "vocab" = embeddings of
    tokens sampled from the first `vocab_top` ids; or a list of token ids (a phrase such as
    "classify this review :", or the class-label words), repeated or cut to n.
    """

    method = "soft_prompt"

    def __init__(self, model, n_tokens, init="random", vocab_top=5000, n_classes=None):
        super().__init__(model, n_classes)
        self.n_tokens = n_tokens
        wte = model.transformer.wte.weight.detach()
        if isinstance(init, str) and init == "random":
            values = torch.rand(n_tokens, wte.size(1), device=wte.device) - 0.5
        elif isinstance(init, str) and init == "vocab":
            values = wte[torch.randint(0, min(vocab_top, wte.size(0)), (n_tokens,))]
        elif isinstance(init, (list, tuple)) and len(init) > 0:
            ids = (list(init) * n_tokens)[:n_tokens]
            values = wte[torch.tensor(ids, device=wte.device)]
        else:
            raise ValueError(f"init must be 'random', 'vocab' or a non-empty list of token ids; "
                             f"got {init!r}")
        self.embeddings = nn.Parameter(values.to(torch.promote_types(wte.dtype, torch.float32)))

    def prompt(self):
        return self.embeddings

    def settings(self):
        return {"n_tokens": self.n_tokens, **super().settings()}


class Prefix(Method):
    """Prefix tuning (Li & Liang 2021, arXiv 2101.00190 §4): per layer, trainable P_K, P_V put in
    front of the keys and values: attention(Q, [P_K; K], [P_V; V]).

    mid=None: the prefix is a parameter itself (P-tuning v2's "deep prompts", init N(0, 1)).
    mid=int:  reparameterized, P = MLP(P′) with P′ = Embedding(length, C) and MLP = Linear(C, mid)
              -> Tanh -> Linear(mid, L·2·C) (§4.3; the paper uses mid 512 for table-to-text).
    layers:   which layers carry a prefix (default all) — for the depth ablation.
    layer_norm: LayerNorm on the attention output of each layer with a prefix (an option of the
              source article, not of the paper).
    """

    method = "prefix"

    def __init__(self, model, length, mid=None, layers=None, layer_norm=False, n_classes=None):
        super().__init__(model, n_classes)
        c = model.config
        self.length, self.mid, self.layer_norm = length, mid, layer_norm
        self.n_head, self.n_layer = c.n_head, c.n_layer
        self.layers = sorted(range(c.n_layer) if layers is None else layers)
        if not self.layers or not set(self.layers) <= set(range(c.n_layer)):
            raise ValueError(f"layers must be a non-empty subset of 0..{c.n_layer - 1}; got {layers}")
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

    def prefix(self):
        kv = self.values()
        n, _, P, C = kv.shape
        kv = kv.view(n, 2, P, self.n_head, C // self.n_head).transpose(2, 3)  # (n, 2, nh, P, hs)
        by_layer = dict(zip(self.layers, kv))
        return [None if l not in by_layer else (by_layer[l][0:1], by_layer[l][1:2])  # (1, nh, P, hs)
                for l in range(self.n_layer)]

    def hooks(self):
        if not self.layer_norm:
            return []
        return [(f"transformer.h.{l}.attn.c_proj", lambda x, out, ln=ln: ln(out))
                for l, ln in zip(self.layers, self.norms)]

    @torch.no_grad()
    def init_from_tokens(self, model, ids, run=None):
        """Set the prefix to the frozen model's own keys/values for the tokens `ids` (§7.4 of the
        paper: activations of real words). Direct: copied. Reparameterized: the MLP's last Linear
        is solved by least squares on the (random) tanh features, exact while length <= mid.
        Returns the remaining mean squared error. `run(ids)` -> per-layer (k, v) replaces
        `model(ids)[2]` (seq2seq.py passes its encoder)."""
        ids = torch.tensor([(list(ids) * self.length)[:self.length]],
                           device=model.transformer.wte.weight.device)
        present = model(ids)[2] if run is None else run(ids)
        target = torch.stack([torch.stack([present[l][0][0], present[l][1][0]]) for l in self.layers])
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

    def settings(self):
        return {"length": self.length, "mid": self.mid, "layers": self.layers,
                "layer_norm": self.layer_norm, **super().settings()}


class LowRank(nn.Module):
    """ΔW = B·A with A ∈ R^(r×in) (Kaiming-uniform, as in the LoRA code) and B ∈ R^(out×r) = 0."""

    def __init__(self, d_in, d_out, r):
        super().__init__()
        self.A = nn.Parameter(torch.empty(r, d_in))
        self.B = nn.Parameter(torch.zeros(d_out, r))
        nn.init.kaiming_uniform_(self.A, a=5 ** 0.5)


class LoRA(Method):
    """LoRA (Hu et al. 2021, arXiv 2106.09685 §4.1): h = W₀x + (α/r)·B·A·x on chosen Linear layers
    (default: the attention input projection `attn.c_attn`). B = 0 at init, so the output starts
    unchanged. `merge()` folds ΔW into the frozen weights for zero-cost inference; `unmerge()`
    takes it out again (equal up to rounding)."""

    method = "lora"

    def __init__(self, model, r=8, alpha=16, targets=("attn.c_attn",), n_classes=None):
        super().__init__(model, n_classes)
        self.r, self.alpha, self.targets, self.merged = r, alpha, list(targets), False
        names = [n for n, m in model.named_modules()
                 if isinstance(m, nn.Linear) and any(n.endswith(t) for t in targets)]
        if not names:
            raise ValueError(f"no nn.Linear layer ends with any of {list(targets)}")
        self.deltas = nn.ModuleDict({n.replace(".", "/"): LowRank(
            model.get_submodule(n).in_features, model.get_submodule(n).out_features, r)
            for n in names})

    def hooks(self):
        if self.merged:
            return []
        s = self.alpha / self.r
        return [(k.replace("/", "."), lambda x, out, d=d: out + s * (x @ d.A.t().to(x.dtype))
                 @ d.B.t().to(x.dtype)) for k, d in self.deltas.items()]

    @torch.no_grad()
    def merge(self, model, sign=1.0):
        if self.merged == (sign > 0):
            raise ValueError(f"LoRA is already {'merged' if self.merged else 'unmerged'}")
        for k, d in self.deltas.items():
            w = model.get_submodule(k.replace("/", ".")).weight
            w += sign * (self.alpha / self.r) * (d.B @ d.A).to(w.dtype)
        self.merged = sign > 0

    def unmerge(self, model):
        self.merge(model, sign=-1.0)

    def settings(self):
        return {"r": self.r, "alpha": self.alpha, "targets": self.targets, **super().settings()}


class Adapter(Method):
    """Bottleneck adapters (Houlsby et al. 2019, arXiv 1902.00751 §2.1): after every attention and
    MLP sub-layer (`*attn.c_proj`, `*mlp.c_proj`), before the residual add, out + up(GELU(down(out))). The
    up-projection starts at zero, so each adapter starts as the identity (the near-identity
    initialisation taken to its limit)."""

    method = "adapter"

    def __init__(self, model, bottleneck=64, n_classes=None):
        super().__init__(model, n_classes)
        self.bottleneck = bottleneck
        C = model.config.n_embd
        self.names = [n for n, _ in model.named_modules() if n.endswith(("attn.c_proj", "mlp.c_proj"))]
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(C, bottleneck), nn.GELU(),
                                                  nn.Linear(bottleneck, C)) for _ in self.names)
        for b in self.blocks:
            nn.init.zeros_(b[2].weight)
            nn.init.zeros_(b[2].bias)

    def hooks(self):
        return [(n, lambda x, out, b=b: out + b(out.to(b[0].weight.dtype)).to(out.dtype))
                for n, b in zip(self.names, self.blocks)]

    def settings(self):
        return {"bottleneck": self.bottleneck, **super().settings()}


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


def fingerprint(model):
    """Identify a base model: its config and a SHA-256 of its weights (in state_dict order)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return {"config": asdict(model.config), "sha256": h.hexdigest()}


def pad_left(tensors, length):
    """Stack (1 or n_i, ...) rows padded with zeros on the left of dim -2 to `length`."""
    return torch.stack([F.pad(t, (0, 0, length - t.size(-2), 0)) for t in tensors])


class Tuned(nn.Module):
    """A frozen base model plus named task methods; `task` picks one per batch or one per row."""

    def __init__(self, base):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.tasks = nn.ModuleDict()
        self.default = None

    def add(self, name, method):
        """Register `method` under `name` (and make it the default if it is the first)."""
        w = self.base.transformer.wte.weight  # keep a task's parameters at >= fp32 and >= the base's
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
        """The virtual tokens of this batch: soft prompts (B or 1, n, C), per-layer prefixes, a
        (B, P + n) mask that hides padding when rows of different tasks have different lengths
        (None when nothing is padded), and P + n. With build=False only the mask and length are
        made (a cache already holds the prefixes and prompts)."""
        tasks = list(dict.fromkeys(names))
        methods = [self.tasks[t] for t in tasks]
        n_prompt = [getattr(m, "n_tokens", 0) for m in methods]
        n_prefix = [m.length if isinstance(m, Prefix) else 0 for m in methods]
        if len({tuple(m.layers) for m in methods if isinstance(m, Prefix)}) > 1:
            raise ValueError("a mixed-task batch needs its prefixes on the same layers")
        P, n = max(n_prefix), max(n_prompt)
        if len(tasks) == 1:  # one task: nothing to pad, no mask, no gather
            m = methods[0]
            return m.prompt()[None] if build and n else None, m.prefix() if build and P else None, \
                None, P + n
        index = torch.tensor([tasks.index(n) for n in names], device=device)  # row -> task
        lengths = torch.tensor([[p, s] for p, s in zip(n_prefix, n_prompt)], device=device)[index]
        mask = torch.cat([torch.arange(P, device=device) >= P - lengths[:, :1],
                          torch.arange(n, device=device) >= n - lengths[:, 1:]], dim=1)  # (B, P+n)
        if not build:
            return None, None, mask, P + n
        C = self.base.config.n_embd
        embeds = pad_left([p if p is not None else torch.zeros(0, C, device=device)
                           for p in (m.prompt() for m in methods)], n)[index] if n else None
        past = None
        if P:
            per_task = [m.prefix() or [None] * self.base.config.n_layer for m in methods]
            past = []
            for layer in zip(*per_task):  # pad each task's (k, v) to P keys, then one row per row
                ref = next((kv for kv in layer if kv is not None), None)
                past.append(None if ref is None else tuple(pad_left(
                    [kv[i][0] if kv is not None else ref[i][0][:, :0] for kv in layer],
                    P)[index] for i in (0, 1)))
        return embeds, past, mask, P + n

    def forward(self, idx, targets=None, past=None, attention_mask=None, task=None):
        """Like GPT.forward, for the task(s) named by `task` (one name, or one per row)."""
        B, T = idx.shape
        names = self.row_tasks(task, B)
        embeds, prefix, virtual_mask, n_virtual = self.virtual(names, idx.device, past is None)
        x = self.base.transformer.wte(idx)  # (B, T, C)
        if embeds is not None:
            x = torch.cat([embeds.to(x.dtype).expand(B, -1, -1), x], dim=1)  # (B, n + T, C)
        n_prompt = x.size(1) - T
        mask = None
        if attention_mask is not None or virtual_mask is not None:  # else: nothing to hide
            if attention_mask is None:  # every real token, cached or current, is visible
                cached = 0 if past is None else past_length(past) - n_virtual
                attention_mask = torch.ones(B, cached + T, dtype=torch.bool, device=idx.device)
            if virtual_mask is None:
                virtual_mask = attention_mask.new_ones(B, n_virtual)
            mask = torch.cat([virtual_mask, attention_mask], dim=1)  # (B, all keys)
        with self.hooked(names, idx.device):
            h, present = self.base.body(inputs_embeds=x, past=prefix if past is None else past,
                                        attention_mask=mask)
        h = h[:, n_prompt:]  # drop the virtual positions: outputs line up with idx
        heads = {self.tasks[n].n_classes and id(self.tasks[n]) for n in names}
        if any(heads):
            if len(heads) > 1:
                raise ValueError("tasks with classification heads cannot share a batch")
            last = (attention_mask.long().cumsum(1).argmax(1) - (attention_mask.size(1) - T)
                    if attention_mask is not None else torch.full((B,), T - 1, device=idx.device))
            head = self.tasks[names[0]].head
            logits = head(h[torch.arange(B, device=idx.device), last].to(head.weight.dtype))
            loss = None if targets is None else F.cross_entropy(logits.float(), targets)
            return logits, loss, present
        return *self.base.head(h, targets), present

    def report(self, task=None):
        """Trainable share for one task: its parameters against base + its parameters."""
        m = self.tasks[self.row_tasks(task, 1)[0]]
        trainable, _ = count_parameters(m)
        _, base_total = count_parameters(self.base)
        total = base_total + trainable
        return (f"trainable params: {trainable:,} || all params: {total:,} || "
                f"trainable%: {100 * trainable / total:.4f}")

    def save(self, name, directory):
        """Write one task as `directory/adapter.json` + a weights file; return the weights' size in
        bytes. The JSON names the method, its settings, the base model's fingerprint and the
        weights' SHA-256. Written atomically: a crash leaves the previous adapter loadable."""
        os.makedirs(directory, exist_ok=True)
        m = self.tasks[name]
        tmp = os.path.join(directory, ".weights.tmp")
        torch.save({k: v.detach().cpu() for k, v in m.state_dict().items()}, tmp)
        digest = hashlib.sha256(open(tmp, "rb").read()).hexdigest()
        weights = f"weights-{digest[:16]}.pt"
        os.replace(tmp, os.path.join(directory, weights))
        meta = {"format": "minitx-adapter", "version": 1, "name": name, "method": m.method,
                "settings": m.settings(), "base": fingerprint(self.base),
                "weights": weights, "weights_sha256": digest}
        old = read_json(directory) if os.path.exists(os.path.join(directory, "adapter.json")) else {}
        atomic_write_text(os.path.join(directory, "adapter.json"), json.dumps(meta, indent=1))
        if old.get("weights") not in (None, weights):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, old["weights"]))
        return os.path.getsize(os.path.join(directory, weights))

    def load(self, directory, name=None, method=None):
        """Read an adapter written by `save` and add it (under its saved name unless `name` is
        given). Checks, each with an error naming the fix: the base model's fingerprint, the
        method (when `method` is given), and the weights' SHA-256 (a corrupted or truncated file)."""
        meta = read_json(directory)
        if method is not None and meta["method"] != method:
            raise ValueError(f"{directory} holds a {meta['method']!r} adapter, not {method!r}: "
                             f"load it with method={meta['method']!r} or pick the right directory")
        base = fingerprint(self.base)
        if meta["base"] != base:
            what = "config" if meta["base"]["config"] != base["config"] else "weights"
            raise ValueError(f"{directory} was saved for another base model (its {what} differ: "
                             f"saved sha256 {meta['base']['sha256'][:12]}…, this model "
                             f"{base['sha256'][:12]}…); load the base model it was trained on")
        path = os.path.join(directory, meta["weights"])
        data = open(path, "rb").read() if os.path.exists(path) else b""
        if hashlib.sha256(data).hexdigest() != meta["weights_sha256"]:
            raise ValueError(f"{path} is missing, truncated or corrupted (SHA-256 differs from "
                             f"adapter.json); save the adapter again from its training run")
        state = torch.load(path, map_location=self.base.transformer.wte.weight.device,
                           weights_only=True)
        m = METHODS[meta["method"]](self.base, **meta["settings"])
        m.load_state_dict(state, assign=True)  # keep the saved dtype (a float64 adapter stays exact)
        return self.add(name or meta["name"], m)


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
    return meta


def atomic_write_text(path, text):
    """Write to a temporary file beside `path`, flush it to disk, then rename over `path`."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)

"""minitx.gpt2 on tiny GPT-2 directories made here: real Hugging Face key names and layouts
(Conv1D weights stored (in, out), attention-mask buffers, optional lm_head), random numbers.
Nothing is downloaded; the transformers / safetensors / regex checks skip when those are not
installed.
"""
import json
import math
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minitx import gpt2
from minitx.gpt2 import GPT2Tokenizer, bytes_to_unicode, load_gpt2

ROOT = Path(__file__).resolve().parent.parent
CFG = dict(vocab_size=262, n_positions=128, n_embd=16, n_layer=2, n_head=2,
           layer_norm_epsilon=1e-5, activation_function="gelu_new", model_type="gpt2")
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "-"), ("Ġ-", ">")]


def hf_state(cfg=CFG, seed=0, prefix="transformer.", lm_head=False, dtype=torch.float64):
    """Random weights under GPT-2's own names and shapes (Conv1D: (in, out))."""
    g = torch.Generator().manual_seed(seed)
    C, n_pos = cfg["n_embd"], cfg["n_positions"]

    def r(*shape, scale=0.3, mean=0.0):
        return (mean + scale * torch.randn(*shape, generator=g)).to(dtype)
    sd = {"wte.weight": r(cfg["vocab_size"], C), "wpe.weight": r(n_pos, C, scale=0.1),
          "ln_f.weight": r(C, mean=1.0, scale=0.1), "ln_f.bias": r(C, scale=0.1)}
    for i in range(cfg["n_layer"]):
        h = f"h.{i}."
        sd.update({h + "ln_1.weight": r(C, mean=1.0, scale=0.1), h + "ln_1.bias": r(C, scale=0.1),
                   h + "attn.bias": torch.tril(torch.ones(n_pos, n_pos, dtype=torch.bool))
                   .view(1, 1, n_pos, n_pos),
                   h + "attn.masked_bias": torch.tensor(-1e4),
                   h + "attn.c_attn.weight": r(C, 3 * C), h + "attn.c_attn.bias": r(3 * C),
                   h + "attn.c_proj.weight": r(C, C), h + "attn.c_proj.bias": r(C),
                   h + "ln_2.weight": r(C, mean=1.0, scale=0.1), h + "ln_2.bias": r(C, scale=0.1),
                   h + "mlp.c_fc.weight": r(C, 4 * C), h + "mlp.c_fc.bias": r(4 * C),
                   h + "mlp.c_proj.weight": r(4 * C, C), h + "mlp.c_proj.bias": r(C)})
    sd = {prefix + k: v for k, v in sd.items()}
    if lm_head:
        sd["lm_head.weight"] = sd[prefix + "wte.weight"].clone()
    return sd


def tiny_vocab():
    """GPT-2's base alphabet (ids 0..255, in GPT-2's own order), MERGES, then <|endoftext|>."""
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def write_tokenizer(path):
    (path / "vocab.json").write_text(json.dumps(tiny_vocab(), ensure_ascii=False), "utf-8")
    (path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES),
                                     "utf-8")


def write_dir(path, state=None, fmt="bin", tokenizer=True, **cfg):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({**CFG, **cfg}))
    state = hf_state() if state is None else state
    if fmt == "bin":
        torch.save(state, path / "pytorch_model.bin")
    else:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, str(path / "model.safetensors"))
    if tokenizer:
        write_tokenizer(path)
    return path


# --- an independent reference: GPT-2's forward pass from the raw HF tensors --------------------

def reference_logits(sd, cfg, idx):
    """Conv1D math (x @ W + b), written out; sd holds HF names with the "transformer." prefix."""
    W = lambda k: sd["transformer." + k]  # noqa: E731
    C, nh = cfg["n_embd"], cfg["n_head"]

    def ln(x, name):
        mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * W(name + ".weight") + W(name + ".bias")

    def gelu_new(x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

    B, T = idx.shape
    x = W("wte.weight")[idx] + W("wpe.weight")[:T]
    causal = torch.ones(T, T).tril().bool()
    for i in range(cfg["n_layer"]):
        h = f"h.{i}."
        qkv = ln(x, h + "ln_1") @ W(h + "attn.c_attn.weight") + W(h + "attn.c_attn.bias")
        q, k, v = (t.reshape(B, T, nh, C // nh).transpose(1, 2) for t in qkv.split(C, dim=-1))
        att = (q @ k.transpose(-1, -2) / math.sqrt(C // nh)).masked_fill(~causal, -math.inf)
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ W(h + "attn.c_proj.weight") + W(h + "attn.c_proj.bias")
        m = gelu_new(ln(x, h + "ln_2") @ W(h + "mlp.c_fc.weight") + W(h + "mlp.c_fc.bias"))
        x = x + m @ W(h + "mlp.c_proj.weight") + W(h + "mlp.c_proj.bias")
    return ln(x, "ln_f") @ W("wte.weight").T


def check_loaded(model, sd):
    """Every tensor landed where it should, Conv1D ones transposed."""
    t = model.transformer
    assert torch.equal(t.wte.weight, sd["transformer.wte.weight"])
    assert torch.equal(t.wpe.weight, sd["transformer.wpe.weight"])
    assert model.lm_head.weight is t.wte.weight
    assert torch.equal(t.ln_f.weight, sd["transformer.ln_f.weight"])
    for i, block in enumerate(t.h):
        h = f"transformer.h.{i}."
        for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            mod = block.get_submodule(name)
            assert torch.equal(mod.weight, sd[h + name + ".weight"].T)
            assert torch.equal(mod.bias, sd[h + name + ".bias"])
        for name in ("ln_1", "ln_2"):
            assert torch.equal(block.get_submodule(name).weight, sd[h + name + ".weight"])
            assert torch.equal(block.get_submodule(name).bias, sd[h + name + ".bias"])


IDX = torch.tensor([[1, 5, 200, 7, 259, 3, 3, 90], [0, 261, 17, 17, 4, 100, 101, 8]])


@pytest.mark.parametrize("lm_head", [False, True])
@pytest.mark.parametrize("prefix", ["transformer.", ""])
def test_load_bin_places_weights_and_matches_reference(tmp_path, lm_head, prefix):
    sd = hf_state(prefix=prefix, lm_head=lm_head)
    model = load_gpt2(write_dir(tmp_path / "gpt2", sd), dtype=torch.float64)
    full = hf_state()  # the same numbers, always under "transformer."
    check_loaded(model, full)
    assert model.config.block_size == 128 and model.config.n_layer == 2 and not model.training
    logits, _, _ = model(IDX)
    assert logits.dtype == torch.float64
    torch.testing.assert_close(logits, reference_logits(full, CFG, IDX), rtol=0, atol=1e-10)


def test_load_safetensors(tmp_path):
    pytest.importorskip("safetensors")
    sd = hf_state()
    model = load_gpt2(write_dir(tmp_path / "gpt2", sd, fmt="safetensors"), dtype=torch.float64)
    check_loaded(model, sd)
    torch.testing.assert_close(model(IDX)[0], reference_logits(sd, CFG, IDX), rtol=0, atol=1e-10)


def test_default_dtype_n_ctx_and_gelu_pytorch_tanh(tmp_path):
    cfg = {k: v for k, v in CFG.items() if k != "n_positions"}
    path = tmp_path / "gpt2"
    write_dir(path, activation_function="gelu_pytorch_tanh")
    (path / "config.json").write_text(json.dumps({**cfg, "n_ctx": 128,
                                                  "activation_function": "gelu_pytorch_tanh"}))
    model = load_gpt2(str(path))
    assert model.transformer.wte.weight.dtype == torch.float32
    assert model.config.block_size == 128
    torch.testing.assert_close(model(IDX)[0].double(), reference_logits(hf_state(), CFG, IDX),
                               rtol=1e-4, atol=1e-4)
    half = load_gpt2(path, dtype=torch.bfloat16)
    assert half.lm_head.weight.dtype == torch.bfloat16 and half(IDX)[0].isfinite().all()


def test_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    config = transformers.GPT2Config(vocab_size=262, n_positions=128, n_embd=16, n_layer=2,
                                     n_head=2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(config).double().eval()
    with torch.no_grad():  # make LayerNorms and biases non-trivial
        for name, p in hf.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    hf.save_pretrained(tmp_path / "saved")  # the real on-disk format (model.safetensors)
    torch.save(hf.state_dict(), write_dir(tmp_path / "bin", tokenizer=False) / "pytorch_model.bin")
    with torch.no_grad():
        want = hf(IDX).logits
    for path in (tmp_path / "saved", tmp_path / "bin"):
        model = load_gpt2(path, dtype=torch.float64)
        torch.testing.assert_close(model(IDX)[0], want, rtol=0, atol=1e-10)


# --- errors -----------------------------------------------------------------------------------

def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as e:
        load_gpt2(tmp_path / "nope")
    assert "config.json" in str(e.value) and "save_pretrained" in str(e.value)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_gpt2(tmp_path)
    path = write_dir(tmp_path / "gpt2")
    os.remove(path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="model.safetensors or pytorch_model.bin") as e:
        load_gpt2(path)
    assert "save_pretrained" in str(e.value)
    os.remove(path / "merges.txt")
    with pytest.raises(FileNotFoundError, match="merges.txt"):
        GPT2Tokenizer.from_dir(path)
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        GPT2Tokenizer.from_dir(tmp_path / "nope")


def test_unexpected_missing_and_misshapen_keys(tmp_path):
    sd = hf_state()
    sd["transformer.h.0.attn.rotary.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"unexpected keys \['transformer.h.0.attn.rotary.weight'"):
        load_gpt2(write_dir(tmp_path / "a", sd))
    sd = hf_state()
    del sd["transformer.h.1.mlp.c_fc.bias"]
    with pytest.raises(ValueError, match=r"missing keys \['transformer.h.1.mlp.c_fc.bias'\]"):
        load_gpt2(write_dir(tmp_path / "b", sd))
    sd = hf_state()
    sd["transformer.h.0.mlp.c_fc.weight"] = sd["transformer.h.0.mlp.c_fc.weight"].T
    with pytest.raises(ValueError, match=r"wrong shapes \['transformer.h.0.mlp.c_fc.weight"):
        load_gpt2(write_dir(tmp_path / "c", sd))
    with pytest.raises(ValueError, match="missing keys.*h.2"):  # config says 3 layers
        load_gpt2(write_dir(tmp_path / "d", hf_state(), n_layer=3))
    sd = hf_state(lm_head=True)
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1
    with pytest.raises(ValueError, match="lm_head.weight differs"):
        load_gpt2(write_dir(tmp_path / "e", sd))


@pytest.mark.parametrize("cfg, msg", [
    (dict(layer_norm_epsilon=1e-6), "layer_norm_epsilon=1e-06 is not supported"),
    (dict(activation_function="relu"), "activation_function='relu' is not supported"),
    (dict(activation_function="gelu"), "tanh"),
    (dict(scale_attn_by_inverse_layer_idx=True), "scaling"),
])
def test_config_that_would_give_a_different_model(tmp_path, cfg, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        load_gpt2(write_dir(tmp_path / "gpt2", **cfg))


def test_safetensors_without_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(gpt2, "load_safetensors", None)
    path = write_dir(tmp_path / "gpt2")
    (path / "model.safetensors").write_bytes(b"not read")
    check_loaded(load_gpt2(path, dtype=torch.float64), hf_state())  # the .bin is used instead
    os.remove(path / "pytorch_model.bin")
    with pytest.raises(ImportError, match="pip install safetensors"):
        load_gpt2(path)


# --- the tokenizer --------------------------------------------------------------------------

def test_bytes_to_unicode():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a"


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    pytest.importorskip("regex")
    path = tmp_path_factory.mktemp("tok")
    write_tokenizer(path)
    return GPT2Tokenizer.from_dir(path)


def test_encode_merges_by_rank(tok):
    v = tiny_vocab()
    assert tok.encode(" the") == [v["Ġthe"]]
    assert tok.encode("the the") == [v["t"], v["he"], v["Ġthe"]]
    assert tok.encode(" then") == [v["Ġthe"], v["n"]]
    assert tok.encode("hot ->") == [v["h"], v["o"], v["t"], v["Ġ->"]]
    assert tok.encode("a\n\nb") == [v["a"], v["Ċ"], v["Ċ"], v["b"]]
    assert tok.eos_token_id == v["<|endoftext|>"]
    assert tok.decode([v["Ġthe"], v["Ġ->"]]) == " the ->"
    # rank decides: with "b c" ranked before "a b", "abc" -> a, bc; the other way -> ab, c
    t1 = GPT2Tokenizer({**v, "ab": 300, "bc": 301}, [("b", "c"), ("a", "b")])
    t2 = GPT2Tokenizer({**v, "ab": 300, "bc": 301}, [("a", "b"), ("b", "c")])
    assert t1.encode("abc") == [v["a"], 301] and t2.encode("abc") == [300, v["c"]]
    assert GPT2Tokenizer(v, []).encode("aaa") == [v["a"]] * 3
    assert GPT2Tokenizer({**v, "aa": 300}, [("a", "a")]).encode("aaaaa") == [300, 300, v["a"]]


def test_pretokenisation_pieces(tok):
    assert tok.pattern.findall("Hello world's 123 foo_bar!!  \n x") == [
        "Hello", " world", "'s", " 123", " foo", "_", "bar", "!!", "  \n", " x"]


def test_non_ascii_is_byte_level(tok):
    b2u, v = bytes_to_unicode(), tiny_vocab()
    ids = tok.encode("é日")
    assert ids == [v[b2u[b]] for b in "é日".encode("utf-8")] and len(ids) == 5
    assert tok.decode(ids) == "é日"
    assert tok.decode(ids[:1]) == "\ufffd"  # half a character is not valid UTF-8
    assert tok.decode(tok.encode("a\ud800b")) == "a\ud800b"  # even a lone surrogate


@settings(max_examples=300)
@given(st.text())
def test_round_trip(tok, text):
    assert tok.decode(tok.encode(text)) == text


def test_tokenizer_without_regex_names_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "regex", None)  # `import regex` raises ImportError
    write_tokenizer(tmp_path)
    fix = 'pip install regex, or pip install -e ".[gpt2]"'
    with pytest.raises(ImportError, match=re.escape(fix)):
        GPT2Tokenizer.from_dir(tmp_path)


def test_matches_transformers_tokenizer(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("regex")
    write_tokenizer(tmp_path)
    hf = transformers.GPT2Tokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    ours = GPT2Tokenizer.from_dir(tmp_path)
    for text in ["the then  the\n\nthe", "hot -> cold", "Héllo wörld's 12 ½ 日本語!", " ->->",
                 "don't we'll I'M", "  \n x\t\u3000y", "a\x1cb_c", "x² Ⅻ 👍🏽", "\u200b\u00a0 ."]:
        assert ours.encode(text) == hf.encode(text), text


# --- bad input: every message names the file, key or id, and the fix -------------------------

@pytest.mark.parametrize("fmt, name", [("bin", "pytorch_model.bin"),
                                       ("safetensors", "model.safetensors")])
def test_truncated_weights_file_names_the_file(tmp_path, fmt, name):
    if fmt == "safetensors":
        pytest.importorskip("safetensors")
    path = write_dir(tmp_path / "gpt2", fmt=fmt)
    data = (path / name).read_bytes()
    (path / name).write_bytes(data[:len(data) // 2])  # an interrupted download
    with pytest.raises(ValueError, match=f"{re.escape(str(path / name))} is truncated.*again"):
        load_gpt2(path)


@pytest.mark.parametrize("key", ["vocab_size", "n_positions", "n_layer", "n_head", "n_embd"])
def test_config_without_a_required_key_names_it(tmp_path, key):
    path = write_dir(tmp_path / "gpt2")
    (path / "config.json").write_text(json.dumps({k: v for k, v in CFG.items() if k != key}))
    with pytest.raises(ValueError, match=rf"config\.json lacks \['{key}'\].*config\.json"):
        load_gpt2(path)


@given(bad=st.one_of(st.integers(max_value=-1), st.integers(min_value=len(tiny_vocab()))))
def test_decode_of_an_unknown_id_names_it(tok, bad):
    with pytest.raises(ValueError, match=rf"ids must be token ids in \[0, 262\).*\[{bad}\]"):
        tok.decode([5, bad])


def test_decode_of_a_2d_tensor_or_floats(tok):
    with pytest.raises(ValueError, match=r"ids .*1-D tensor.*\[\[1, 2\]\]"):
        tok.decode(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match=r"ids .*\[1\.0\]"):
        tok.decode([1.0])
    assert tok.decode(torch.tensor([71, 72])) == tok.decode([71, 72]) == "hi"

"""Lessons 01-03 run in fast mode and measure what they claim to measure; every lesson keeps to
the public API; the READMEs' lesson tables match the files; plots become PNGs with matplotlib.

`run_lesson` executes a lesson's notebook cells in fast mode and returns its namespace (once per
lesson: module-scoped fixtures); the tests read the numbers it printed from there, recompute one
of them independently, and run the reference solution of each exercise that has a checkable
answer, so a lesson cannot silently stop showing its point.
Run alone: `python -m pytest tests/test_lessons_core.py -q`.
"""
import re
from pathlib import Path

import pytest
import torch

from lesson_loader import assert_verdict, LESSONS, run_lesson
from minitx.tuning import SoftPrompt, Tuned
import common  # lessons/ is on sys.path once lesson_loader is imported


# ---- lesson 01: soft prompt shapes ---------------------------------------------------------
@pytest.fixture(scope="module")
def lesson01():
    return run_lesson("01_soft_prompt_shapes.py")


@pytest.mark.slow
def test_lesson_01_shapes_and_counts(lesson01):
    ns = lesson01
    assert tuple(ns["inputs_embeds"].shape) == (4, 30, 768)
    assert ns["trainable"] == 10 * 768 and ns["table_params"] == 50_000 * 768
    assert ns["expanded"].stride(0) == 0  # the batch shares one copy of the prompt
    assert tuple(ns["logits"].shape) == (4, 30, 64) and tuple(ns["real"].shape) == (4, 20, 64)
    assert ns["hard_diff"] <= 1e-6  # a soft prompt of real embeddings is that hard prompt
    assert ns["library_diff"] <= 1e-6  # SoftPrompt + Tuned compute the same as by hand
    assert ns["n_base_with_grad"] == 0 and ns["prompt_grad_norm"] > 0
    assert f"{ns['trainable']:,}" in ns["OUTPUT"] and "Takeaway" in ns["OUTPUT"]


@pytest.mark.slow
def test_lesson_01_training_the_prompt_alone(lesson01):
    ns = lesson01
    assert_verdict(ns["steering"], len(common.SEEDS["fast"]))
    assert all(ns["base_unchanged"])
    # the direction holds on every seed, by a wide margin (a fraction of a % -> tens of %)
    assert all(after > before + 10 for before, after in zip(ns["p_before"], ns["p_after"]))
    # Recompute the printed "before" figure independently, through SoftPrompt + Tuned.
    model = ns["steered"]
    held_out = torch.randint(0, 64, (64, 12), generator=torch.Generator().manual_seed(1))
    for seed, before in zip(common.SEEDS["fast"], ns["p_before"]):
        torch.manual_seed(seed)
        prompt = torch.empty(10, model.config.n_embd).uniform_(-0.5, 0.5)
        method = SoftPrompt(model, 10)
        with torch.no_grad():
            method.embeddings.copy_(prompt)
            tuned = Tuned(model)
            tuned.add("label", method)
            p = tuned(held_out)[0][:, -1].softmax(-1)[:, 7].mean().item()
        assert abs(100 * p - before) <= 1e-4


def test_lesson_01_exercise_1_lesters_default_length(lesson01):
    """Exercise 1: a 100-token prompt at width 768 trains 76,800 numbers (Lester et al.)."""
    prompt = torch.zeros(100, 768)
    assert tuple(lesson01["prepend"](prompt, lesson01["token_embeds"]).shape) == (4, 120, 768)
    assert prompt.numel() == 76_800


def test_lesson_01_exercise_2_expand_or_repeat(lesson01):
    """Exercise 2: repeat gives the same logits and gradient as expand, but B copies."""
    ns = lesson01
    model, idx = ns["tiny_model"](), ns["idx"]
    grads, logits = [], []
    for copy in (False, True):
        prompt = ns["tiny_prompt"].detach().clone().requires_grad_(True)
        rows = (prompt.unsqueeze(0).repeat(idx.size(0), 1, 1) if copy
                else prompt.unsqueeze(0).expand(idx.size(0), -1, -1))
        out = model(inputs_embeds=torch.cat([rows, model.transformer.wte(idx)], dim=1))[0]
        out[:, -1, 7].sum().backward()
        grads.append(prompt.grad)
        logits.append(out)
        strides = rows.stride(0)
        assert strides == (prompt.numel() if copy else 0)
    assert torch.equal(logits[0], logits[1])
    assert torch.allclose(grads[0], grads[1], atol=1e-7)


def test_lesson_01_exercise_3_unfrozen_base_outside_the_optimizer(lesson01):
    """Exercise 3: an unfrozen base gets gradients, but an optimizer on the prompt alone leaves
    every base weight unchanged."""
    ns = lesson01
    model = ns["tiny_model"]().requires_grad_(True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prompt = torch.nn.Parameter(ns["tiny_prompt"].detach().clone())
    opt = torch.optim.AdamW([prompt], lr=0.3)
    logits, loss = ns["with_soft_prompt"](model, prompt, ns["idx"], ns["targets"])
    loss.backward()
    opt.step()
    assert all(p.grad is not None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not torch.equal(prompt, ns["tiny_prompt"])  # the prompt did move


# ---- lesson 02: attention by hand ------------------------------------------------------------
@pytest.fixture(scope="module")
def lesson02():
    return run_lesson("02_attention_by_hand.py")


@pytest.mark.slow
def test_lesson_02_attention_by_hand(lesson02):
    ns = lesson02
    assert ns["hand_diff"] <= 1e-12
    assert ns["masked_weight_max"] == 0.0  # exactly zero, not small
    assert ns["row_sum_err"] <= 1e-12
    assert ns["empty_rows"] == 2 and ns["empty_rows_zero"]  # the two left-pad queries
    assert ns["fast_vs_written"] <= 1e-12 and ns["S"]["checks"] == 20
    assert ns["png"] is None or Path(ns["png"]).is_file()
    # Recompute one printed matrix independently: the left-padding weights, softmax over the
    # visible keys only.
    q, k = ns["q"][0, 0], ns["k"][0, 0]
    expected = torch.zeros(5, 5, dtype=torch.float64)
    for i in range(2, 5):
        keys = list(range(2, i + 1))
        expected[i, keys] = (q[i] @ k[keys].T / 2).softmax(-1)  # sqrt(d) = 2
    assert torch.allclose(ns["masked_weights"]["left padding + causal"], expected, atol=1e-14)
    assert "0.00  0.00  1.00  0.00  0.00    1.00      @@" in ns["OUTPUT"]  # q2 sees k2 only


def test_lesson_02_exercise_1_scaling_keeps_softmax_spread(lesson02):
    """Exercise 1: at d = 64 the unscaled softmax is near one-hot on every seed; scaled is not."""
    for seed in range(5):
        torch.manual_seed(seed)
        q, k = (torch.randn(5, 64, dtype=torch.float64) for _ in range(2))
        unscaled = (q @ k.T).softmax(-1).max(-1).values.mean()
        scaled = (q @ k.T / 8).softmax(-1).max(-1).values.mean()
        assert unscaled > 0.85 and scaled < unscaled - 0.2


def test_lesson_02_exercise_2_upper_left_mask_with_keys_in_front(lesson02):
    """Exercise 2: with P keys in front, is_causal=True's mask hides exactly P keys from every
    query — the last P it should see, its own among them; with P = 0 the masks agree."""
    import torch.nn.functional as F
    causal_mask, attention = lesson02["causal_mask"], lesson02["attention"]
    for T, P in ((3, 2), (4, 1), (2, 5)):
        S = P + T
        upper_left, right = torch.ones(T, S, dtype=torch.bool).tril(), causal_mask(T, S)
        missed = right & ~upper_left
        assert not (upper_left & ~right).any()  # it never shows a key it should hide
        for i in range(T):
            assert missed[i].nonzero().flatten().tolist() == list(range(i + 1, i + P + 1))
        q, k, v = (torch.randn(1, 1, n, 4, dtype=torch.float64) for n in (T, S, S))
        sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        assert torch.allclose(sdpa, attention(q, k, v, upper_left)[0], atol=1e-12)
    assert torch.equal(causal_mask(4, 4), torch.ones(4, 4, dtype=torch.bool).tril())


def test_lesson_02_exercise_3_minus_inf_gives_nan(lesson02):
    """Exercise 3: a fully masked row is nan with -inf, zeros (and finite gradients) in minitx."""
    assert torch.full((5,), float("-inf")).softmax(0).isnan().all()
    q, k, v = (lesson02[n].clone().requires_grad_(True) for n in "qkv")
    mask = lesson02["MASKS"]["left padding + causal"]
    out, weights = lesson02["attention"](q, k, v, mask)
    assert (weights[0, 0, :2] == 0).all() and (out[0, 0, :2] == 0).all()
    out.sum().backward()
    assert all(t.grad.isfinite().all() for t in (q, k, v))


# ---- lesson 03: prefix attention -------------------------------------------------------------
@pytest.fixture(scope="module")
def lesson03():
    return run_lesson("03_prefix_attention.py")


@pytest.mark.slow
def test_lesson_03_prefix_is_a_cache(lesson03):
    ns = lesson03
    assert tuple(ns["out"].shape) == (1, 1, 3, 4) and tuple(ns["weights"].shape) == (1, 1, 3, 5)
    seeds = common.SEEDS["fast"]
    assert sorted(ns["cache_diff"]) == sorted(ns["decode_diff"]) == sorted(seeds)
    assert max(ns["cache_diff"].values()) <= 1e-10 and max(ns["decode_diff"].values()) <= 1e-10
    assert ns["is_causal_gap"] <= 1e-12  # PyTorch's is_causal=True is the upper-left mask
    # Recompute the printed prefix weights independently: row t0 sees p0, p1 and t0 only.
    q, keys = ns["q"][0, 0, 0], ns["keys"][0, 0, :3]
    assert torch.allclose(ns["weights"][0, 0, 0, :3], (q @ keys.T / 2).softmax(-1), atol=1e-14)
    assert (ns["weights"][0, 0, 0, 3:] == 0).all()


@pytest.mark.slow
def test_lesson_03_wrong_mask_and_positions_are_measurably_wrong(lesson03):
    ns = lesson03
    n = len(common.SEEDS["fast"])
    for name in ("mask_errors", "position_errors"):
        for right, wrong in ns[name].values():
            assert right <= 1e-10 and wrong > 1e-2  # on every seed, by orders of magnitude
    for v in (ns["mask_verdict"], ns["position_verdict"]):
        assert_verdict(v, n)
        assert min(v.diffs) > 0  # the right rule wins on every seed


def test_lesson_03_exercise_1_empty_prefix(lesson03):
    """Exercise 1: with P = 0 the masks coincide and the logits equal the model's without a
    prefix."""
    ns = lesson03
    causal_mask, T = ns["causal_mask"], ns["T"]
    assert torch.equal(causal_mask(T, T), torch.ones(T, T, dtype=torch.bool).tril())
    for seed, model in ns["models"].items():
        empty = [(k[:, :, :0], v[:, :, :0]) for k, v in ns["prefixes"][seed]]
        idx = ns["token_rows"][seed][:, ns["P"]:]
        with torch.no_grad():
            plain = model(idx)[0]
            assert torch.allclose(model(idx, past=empty)[0], plain, rtol=0, atol=1e-12)
            by_hand = ns["run_by_hand"](model, idx, empty, causal_mask(T, T), 0)
            assert torch.allclose(by_hand, plain, rtol=0, atol=1e-12)


def test_lesson_03_exercise_2_one_prefix_many_inputs(lesson03):
    """Exercise 2: a batch-1 prefix broadcast over three inputs = each input alone with it."""
    ns = lesson03
    model, prefix = ns["models"][0], ns["prefixes"][0]
    batch = torch.randint(0, 32, (3, ns["T"]), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        together = model(batch, past=prefix)[0]
        for row in range(3):
            alone = model(batch[row:row + 1], past=prefix)[0]
            assert torch.allclose(together[row:row + 1], alone, rtol=0, atol=1e-12)


def test_lesson_03_exercise_3_random_prefix_decodes_consistently(lesson03):
    """Exercise 3: a prefix of random keys/values decodes step by step as one call with it."""
    ns = lesson03
    model, idx = ns["models"][1], ns["token_rows"][1][:, ns["P"]:]
    torch.manual_seed(3)
    prefix = [(torch.randn_like(k), torch.randn_like(v)) for k, v in ns["prefixes"][1]]
    with torch.no_grad():
        whole = model(idx, past=prefix)[0]
        past, steps = prefix, []
        for t in range(idx.size(1)):
            logits, _, past = model(idx[:, t:t + 1], past=past)
            steps.append(logits)
        real = model(ns["token_rows"][1])[0][:, ns["P"]:]
    assert torch.allclose(torch.cat(steps, dim=1), whole, rtol=0, atol=1e-10)
    assert (whole - real).abs().max() > 1e-2  # and it is no longer the real tokens' prefix


def test_lesson_03_exercise_4_prefix_with_left_padding(lesson03):
    """Exercise 4: left pads hidden by attention_mask (B, P + T) leave the real tokens' logits
    equal to the unpadded run's."""
    ns = lesson03
    P, T = ns["P"], ns["T"]
    for seed, model in ns["models"].items():
        idx = ns["token_rows"][seed][:, P:]
        padded = torch.cat([torch.zeros(1, 2, dtype=torch.long), idx], dim=1)
        mask = torch.ones(1, P + 2 + T, dtype=torch.bool)
        mask[:, P:P + 2] = False  # the two pads, after the prefix
        with torch.no_grad():
            logits = model(padded, past=ns["prefixes"][seed], attention_mask=mask)[0][:, 2:]
        assert torch.allclose(logits, ns["references"][seed], rtol=0, atol=1e-10)


@pytest.mark.parametrize("filename", sorted(p.name for p in LESSONS.glob("[0-9][0-9]_*.py")))
def test_lessons_use_only_the_public_api(filename):
    """Lessons import minitx's exported names only and touch no private (_underscored) name
    (Python's own __dunder__ names, such as __name__, are public). Every lesson opens with its
    markdown title cell."""
    import ast
    import pkgutil

    import minitx
    text = (LESSONS / filename).read_text()
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "minitx":
            modules = {m.name for m in pkgutil.iter_modules(minitx.__path__)}
            assert {a.name for a in node.names} <= set(minitx.__all__) | modules, filename
        if isinstance(node, ast.Attribute) and not node.attr.endswith("__"):
            assert not node.attr.startswith("_"), f"{filename} uses private name {node.attr}"
    assert text.startswith("# %% [markdown]\n# # "), f"{filename}: no title cell first"


def test_readme_tables_list_exactly_the_lesson_files():
    """README.md's lesson table and lessons/README.md's course map name every lesson file, and
    name no lesson that does not exist."""
    files = sorted(p.name for p in LESSONS.glob("[0-9][0-9]_*.py"))
    readme = (LESSONS.parent / "README.md").read_text()
    assert sorted(set(re.findall(r"^\| `(\d\d_\w+\.py)` \|", readme, re.M))) == files
    course_map = (LESSONS / "README.md").read_text()
    numbers = sorted(set(re.findall(r"^\| (\d\d) [a-z]", course_map, re.M)))
    assert numbers == [name[:2] for name in files]


def test_plots_are_png_files_when_matplotlib_is_installed(tmp_path, monkeypatch):
    """The optional PNG path (text sparklines are printed either way)."""
    pytest.importorskip("matplotlib")
    import common
    monkeypatch.setattr(common, "OUT", tmp_path)
    path = common.plot_curves({"a": [3.0, 2.0, 1.0], "b": [2.0, 2.0, 1.5]}, "curves")
    assert path == tmp_path / "curves.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

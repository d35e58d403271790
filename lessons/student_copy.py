"""Make a student copy of the repository: chosen functions blanked, the tests grade them.

    python lessons/student_copy.py OUT_DIR [--exercises attention.attention,model.add_positions,...]

copies every tracked file (`git ls-files`; without git, a walk that skips .git, out/,
__pycache__ and *.egg-info) to OUT_DIR and, in the copy, replaces the body of each chosen function
by `raise NotImplementedError("exercise: ...")`. The signature, decorators and docstring stay, and
every other byte of the file is unchanged: the function is found with `ast` and only the lines of
its body are rewritten. OUT_DIR/GRADING.md lists, for each blanked function, what to write and the
exact pytest command whose tests pass once it is written back. Without --exercises, every function
of the table below is blanked. `tests/test_student_copy.py` proves the table: blanked, each named
test fails; in the original, each passes.
"""
import argparse
import ast
import os
import shlex
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository

# function ("module.name" or "module.Class.method" in minitx/) -> the tests that grade it
EXERCISES = {
    "attention.attention": [
        "tests/test_attention.py::test_weights_rows_sum_to_one_and_masked_keys_get_exactly_zero",
        "tests/test_attention.py::test_fast_attention_equals_written_out_self",
        "tests/test_attention.py::test_prefix_is_just_keys_in_front",
    ],
    "attention.causal_mask": [
        "tests/test_attention.py::test_causal_mask_is_aligned_lower_right",
        "tests/test_attention.py::test_build_mask_combines_causal_and_padding",
        "tests/test_attention.py::test_mha_sdpa_equals_written_out",
    ],
    "attention.append": [
        "tests/test_attention.py::test_mha_self_attention_shapes_and_present",
        "tests/test_generate_core.py::"
        "test_cache_grows_in_place_and_branches_never_overwrite_each_other",
        "tests/test_generate_core.py::test_with_autograd_the_cache_is_concatenated_not_buffered",
        "tests/test_model.py::test_incremental_decoding_equals_one_full_pass",
    ],
    "model.add_positions": [
        "tests/test_model.py::test_left_padded_row_equals_the_row_alone",
        "tests/test_model.py::test_prefix_positions_continue_at_P",
        "tests/test_model.py::test_soft_prompt_of_real_embeddings_is_a_hard_prompt",
    ],
    "tuning.SoftPrompt.__init__": [
        "tests/test_tuning.py::test_soft_prompt_of_real_embeddings_equals_the_hard_prompt",
        "tests/test_tuning.py::test_trainable_counts_match_closed_forms",
    ],
    "tuning.Prefix.values": [
        "tests/test_tuning.py::test_reparameterized_prefix_fits_the_hard_prompt",
        "tests/test_tuning.py::test_export_drops_the_mlp_and_keeps_training_time_outputs",
    ],
    "tuning.Prefix.prefix": [
        "tests/test_tuning.py::test_prefix_of_real_activations_equals_the_hard_prompt",
        "tests/test_tuning.py::test_reparameterized_prefix_fits_the_hard_prompt",
    ],
    "tuning.LoRA.hooks": [
        "tests/test_tuning.py::test_lora_and_adapter_start_as_the_identity[lora]",
        "tests/test_tuning.py::test_lora_merge_equals_hooks_and_unmerge_restores",
    ],
    "generate.filter_logits": [
        "tests/test_generate_core.py::test_top_k_1_sampling_is_greedy",
    ],
    "train.lr_at": [
        "tests/test_train.py::test_lr_warmup_is_linear_and_decay_ends_at_min_lr",
        "tests/test_train.py::test_lr_in_range_and_non_increasing_after_warmup",
    ],
    "metrics.corpus_bleu": [
        "tests/test_metrics.py::test_bleu_two_sentence_corpus_by_hand",
        "tests/test_metrics.py::test_bleu_brevity_penalty",
        "tests/test_metrics.py::test_bleu_clipping_papineni_example",
    ],
    "metrics.rouge_l": [
        "tests/test_metrics.py::test_rouge_l_hand_examples",
        "tests/test_metrics.py::test_rouge_l_max_over_references_then_mean_over_sentences",
    ],
}

# what the student writes back, one line each (GRADING.md)
TASKS = {
    "attention.attention": "scores q·kᵀ/√d, masking with a finite minimum, softmax, masked "
                           "weights set to exactly 0; return (out, weights)",
    "attention.causal_mask": "the lower-right causal rule: query i sees key j iff j <= i + (S - T)",
    "attention.append": "[past; new] on the key axis: concatenate under autograd, else write into "
                        "a buffer with room to spare and return a view",
    "model.add_positions": "add the embeddings of positions that continue after a prefix/cache "
                           "(P, P+1, ...) and skip left padding (padding zeroed)",
    "tuning.SoftPrompt.__init__": "check the arguments and build the embeddings in fp32 from "
                                  "the three inits: random uniform [-0.5, 0.5], sampled "
                                  "vocabulary rows, token ids repeated or cut to n",
    "tuning.Prefix.values": "the prefix tensor (layers, 2, P, C): the parameter itself, or "
                            "P = MLP(P') computed once and split per layer",
    "tuning.Prefix.prefix": "split the prefix tensor (B, layers, 2, P, C) into heads: one (k, v) "
                            "of (B, nh, P, hs) per layer, None on layers without a prefix "
                            "(B = 1 from self.values() when no `values` are given)",
    "tuning.LoRA.hooks": "one hook per adapted layer: out + (alpha/r)·B·A·x; none once merged",
    "generate.filter_logits": "top-k and nucleus (top-p) filtering: dropped logits become -inf",
    "train.lr_at": "linear warmup to lr, then cosine/linear/constant decay to min_lr·lr at the "
                   "last step",
    "metrics.corpus_bleu": "clipped n-gram precisions summed over the corpus, brevity penalty, "
                           "no smoothing",
    "metrics.rouge_l": "LCS-based F-measure with beta, best reference per sentence, averaged",
}

SKIP_DIRS = {".git", "out", "__pycache__", ".hypothesis", ".pytest_cache"}


def repository_files(root):
    """Relative paths of the files to copy: git's tracked files, or a walk without build output."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True,
                                check=True).stdout.decode().split("\0")
        return [p for p in listed if p and (Path(root) / p).is_file()]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for directory, subdirs, names in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs
                                if d not in SKIP_DIRS and not d.endswith(".egg-info"))
            files += [os.path.relpath(os.path.join(directory, n), root) for n in sorted(names)]
        return files


def split_name(name):
    """"tuning.Prefix.prefix" -> ("minitx/tuning.py", ["Prefix", "prefix"])."""
    module, *qualname = name.split(".")
    if not qualname:
        raise ValueError(f"exercise {name!r} must be module.function or module.Class.method")
    return f"minitx/{module}.py", qualname


def find_function(tree, qualname, module):
    """The FunctionDef node at `qualname` (["Class", "method"] or ["function"]) in `tree`, the
    parsed source of `module` (its name, for the error)."""
    body = tree.body
    for i, part in enumerate(qualname):
        last = i == len(qualname) - 1
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef) if last else (ast.ClassDef,)
        node = next((n for n in body if isinstance(n, kinds) and n.name == part), None)
        if node is None:
            raise ValueError(f"no function {'.'.join(qualname[:i + 1])} in {module}: check the "
                             f"name (module.function or module.Class.method)")
        body = node.body
    return node


def blank_source(source, qualnames, module="module"):
    """`source` with each function in `qualnames` (lists like ["Prefix", "prefix"]) reduced to its
    signature, decorators and docstring plus `raise NotImplementedError`. Only the body's lines
    change; every other line is kept byte for byte."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    nodes = [(find_function(tree, q, module), ".".join([module, *q])) for q in qualnames]
    for node, qualname in sorted(nodes, key=lambda n: -n[0].lineno):  # bottom up: lines stay put
        first = node.body[0]
        has_doc = ast.get_docstring(node, clean=False) is not None
        start = first.end_lineno if has_doc else first.lineno - 1  # 0-based: the first line to go
        if first.lineno == node.lineno or (has_doc and len(node.body) == 1):
            raise ValueError(f"{qualname}: needs a body on its own lines below the signature")
        indent = " " * first.col_offset
        newline = "\r\n" if lines[start].endswith("\r\n") else "\n"
        message = f"exercise: write {qualname} (see GRADING.md)"
        lines[start:node.end_lineno] = [f"{indent}raise NotImplementedError({message!r}){newline}"]
    out = "".join(lines)
    ast.parse(out)  # the copy must still import
    return out


def make_copy(out_dir, exercises, root=ROOT):
    """Copy the repository at `root` to `out_dir` with the functions named in `exercises` blanked
    (see EXERCISES for the names) and write out_dir/GRADING.md. Returns the Path of out_dir."""
    exercises = list(dict.fromkeys(exercises))  # each once, in the order given
    unknown = [e for e in exercises if e not in EXERCISES]
    if unknown:
        raise ValueError(f"unknown exercise(s) {unknown}; choose from {sorted(EXERCISES)}")
    out_dir, root = Path(out_dir).resolve(), Path(root).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"OUT_DIR {out_dir} exists and is not empty: pick a new directory")
    if out_dir == root or root in out_dir.parents:
        raise ValueError(f"OUT_DIR {out_dir} is inside the repository {root}: pick a directory "
                         f"outside it, e.g. {root.parent / 'minitx-student'}")
    for rel in repository_files(root):
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, out_dir / rel)
    by_file = {}
    for name in exercises:
        path, qualname = split_name(name)
        by_file.setdefault(path, []).append(qualname)
    for path, qualnames in by_file.items():
        target = out_dir / path
        source = target.read_bytes().decode()
        target.write_bytes(blank_source(source, qualnames, Path(path).stem).encode())
    (out_dir / "GRADING.md").write_text(grading(exercises, out_dir))
    return out_dir


def pytest_command(nodes):
    """The shell command that runs the tests `nodes` (node ids, quoted where the shell needs it)."""
    return "python -m pytest -q -p no:cacheprovider " + " ".join(map(shlex.quote, nodes))


def grading(exercises, out_dir):
    """The text of GRADING.md: one section per blanked function, with its grading command."""
    text = ["# Grading the exercises", "",
            "Each function below was replaced by `raise NotImplementedError`; its signature and",
            "docstring are still there. Write the body back until its tests pass. Run every",
            "command from this directory: `python -m pytest` puts this directory first on the",
            "import path, so the tests import this copy's `minitx` even if another one is",
            "installed (`pip install -e .` here also works). The hypothesis-based tests run 200",
            "examples each; `HYPOTHESIS_PROFILE=dev` runs 30 while you work.", ""]
    if not exercises:
        text += ["No function was blanked in this copy.", ""]
    for name in exercises:
        path, qualname = split_name(name)
        line = find_function(ast.parse((Path(out_dir) / path).read_text()), qualname, path).lineno
        text += [f"## `{name}` ({path}, line {line})", "", f"Write: {TASKS[name]}.", "",
                 "```bash", pytest_command(EXERCISES[name]), "```", ""]
    if len(exercises) > 1:
        nodes = sorted({n for e in exercises for n in EXERCISES[e]})
        text += ["## All of them at once", "", "```bash",
                 pytest_command(nodes), "```", ""]
    return "\n".join(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", metavar="OUT_DIR", help="a new (or empty) directory")
    parser.add_argument("--exercises", default=",".join(EXERCISES),
                        help="comma-separated functions to blank (default: all): "
                             + ", ".join(EXERCISES))
    args = parser.parse_args(argv)
    chosen = [e.strip() for e in args.exercises.split(",") if e.strip()]
    try:
        out = make_copy(args.out_dir, chosen)
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    print(f"student copy in {out} with {len(chosen)} function(s) blanked; see {out / 'GRADING.md'}")


if __name__ == "__main__":
    main()

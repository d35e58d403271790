"""Bad input to minitx.data and minitx.metrics is never silent (issue 14): each case raises a
ValueError, TypeError or FileNotFoundError whose message names the argument at fault."""
import contextlib

import pytest
import torch
from hypothesis import given, strategies as st

from minitx import GPT, Config
from minitx.data import (Tokenizer, complete, encode_for_training, encode_prompts, load_model,
                         packed_batches, save_model)
from minitx.metrics import accuracy, corpus_bleu, rouge_l

TOK = Tokenizer(["red", "blue", "=>", ";", ","])
NO_STOP, NO_SEP = Tokenizer(["red", "=>"]), Tokenizer(["red", ";"])


@contextlib.contextmanager
def raises(kind, *names):
    """pytest.raises(kind), and the message must contain every one of `names`."""
    with pytest.raises(kind) as info:
        yield info
    for name in names:
        assert name in str(info.value), (name, str(info.value))


# ---- Tokenizer -------------------------------------------------------------------------------
@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=TOK.vocab_size)))
def test_decode_refuses_ids_out_of_range(bad):
    with raises(ValueError, "ids", str(bad), str(TOK.vocab_size)):
        TOK.decode([2, bad])


def test_decode_of_minus_one_raises_instead_of_returning_the_last_word():
    with raises(ValueError, "ids", "-1"):
        TOK.decode([-1])


@pytest.mark.parametrize("ids", [torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 1,
                                 dtype=torch.long), torch.tensor([1.0, 2.0]), [1.5], [[2, 3]]])
def test_decode_refuses_2d_and_non_integer_ids(ids):
    with raises(ValueError, "ids", "one sequence of integers"):
        TOK.decode(ids)


@pytest.mark.parametrize("words, kind, shown", [
    (["a", "a"], ValueError, "'a'"), (["<pad>"], ValueError, "'<pad>'"),
    (["<unk>", "b"], ValueError, "'<unk>'"), (["two words"], ValueError, "'two words'"),
    ([""], ValueError, "''"), (["tab\t"], ValueError, "'tab\\t'"),
    ("red blue", TypeError, "'red blue'"), ([1, 2], TypeError, "[1, 2]"),
])
def test_tokenizer_refuses_bad_vocabularies(words, kind, shown):
    with raises(kind, "words", shown):
        Tokenizer(words)


@pytest.mark.parametrize("settings, shown", [
    (dict(lower=True), "'Red'"), (dict(split_punctuation=True), "'red,'"),
    (dict(sep=";"), "';'"), (dict(sep="a b"), "'a b'"), (dict(stop=""), "''"),
    (dict(sep="<pad>"), "'<pad>'"),
])
def test_tokenizer_refuses_words_the_normalisation_never_produces_and_bad_sep_stop(settings,
                                                                                    shown):
    with raises(ValueError, "sep", shown):
        Tokenizer(["Red", "red,"] if "sep" not in settings and "stop" not in settings else ["a"],
                  **settings)


def test_tokenizer_refuses_non_string_sep_and_texts():
    with raises(TypeError, "sep and stop"):
        Tokenizer(["a"], sep=None)
    with raises(TypeError, "texts"):
        Tokenizer.from_corpus("a whole text as one string")


def test_missing_stop_or_separator_names_the_token_and_the_fix():
    for call in (lambda: encode_for_training(NO_STOP, ["red =>"], ["red"]),
                 lambda: NO_STOP.stop_id,
                 lambda: packed_batches(NO_STOP, ["red =>"] * 9, 1, 2)):
        with raises(ValueError, "stop", "';'", "add it to the words", "stop="):
            call()
    for call in (lambda: encode_prompts(NO_SEP, ["red"]), lambda: NO_SEP.sep_id,
                 lambda: encode_for_training(NO_SEP, ["red"], ["red"])):
        with raises(ValueError, "sep", "'=>'", "sep="):
            call()


# ---- encoding and batches --------------------------------------------------------------------
@given(st.integers(0, 5), st.integers(0, 5))
def test_encode_for_training_names_both_lengths(n_prompts, n_targets):
    if n_prompts == n_targets:
        return
    with raises(ValueError, "prompts", "targets", f"{n_prompts} and {n_targets}"):
        encode_for_training(TOK, ["red"] * n_prompts, ["blue"] * n_targets)


@pytest.mark.parametrize("prompts, targets, kind, name", [
    ("red =>", ["blue"], TypeError, "prompts"), (["red =>"], "blue", TypeError, "targets"),
    ([["red"]], ["blue"], TypeError, "prompts"),
])
def test_encode_for_training_refuses_strings_for_lists(prompts, targets, kind, name):
    with raises(kind, name):
        encode_for_training(TOK, prompts, targets)


# ---- models saved with their tokenizer ---------------------------------------------------------
def tiny():
    return GPT(Config(vocab_size=TOK.vocab_size, block_size=16, n_layer=1, n_head=1, n_embd=4))


def test_load_model_names_the_path_and_the_fix(tmp_path):
    path = tmp_path / "model.pt"
    with raises(FileNotFoundError, str(path), "save_model"):
        load_model(path)
    with raises(FileNotFoundError, str(tmp_path), "save_model"):
        load_model(tmp_path)  # a directory
    save_model(path, tiny(), TOK)
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with raises(ValueError, str(path), "corrupted"):
        load_model(path)
    torch.save({"model": tiny().state_dict()}, path)  # a file of another kind
    with raises(ValueError, str(path), "save_model", "load_checkpoint", "Tuned.load"):
        load_model(path)


def test_complete_refuses_a_string_for_prompts_and_a_bad_batch_size():
    with raises(TypeError, "prompts"):
        complete(tiny(), TOK, "red =>")
    for batch_size in (0, -1):  # -1 would otherwise return no answers at all
        with raises(ValueError, "batch_size", str(batch_size)):
            complete(tiny(), TOK, ["red =>"], batch_size=batch_size)
    with raises(ValueError, "stop", "';'"):
        complete(tiny(), NO_STOP, ["red =>"])


# ---- metrics ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [corpus_bleu, rouge_l])
def test_references_as_strings_are_refused_not_scored_zero(fn):
    with raises(TypeError, "references", "[[ref]"):
        fn(["the cat sat on the mat"], ["the cat sat on the mat"])
    with raises(TypeError, "references"):
        fn(["the cat sat on the mat"], [[["the", "cat"]]])  # pre-tokenized references


@pytest.mark.parametrize("fn", [corpus_bleu, rouge_l])
def test_pre_tokenized_hypotheses_are_refused(fn):
    with raises(TypeError, "hypotheses", "' '.join"):
        fn([["the", "cat", "sat", "on"]], [["the cat sat on"]])
    with raises(TypeError, "hypotheses", "references", "str"):
        fn("the cat", [["the cat"]] * 7)  # a string is not a list of hypotheses


@given(st.one_of(st.integers(max_value=0), st.sampled_from([1.5, 2.0, True, None])))
def test_bleu_max_n_must_be_a_positive_integer(max_n):
    with raises(ValueError, "max_n", repr(max_n)):
        corpus_bleu(["a b c d"], [["a b c d"]], max_n=max_n)


@given(st.integers(0, 4), st.integers(0, 4))
def test_accuracy_names_both_lengths(n_pred, n_label):
    if n_pred == n_label and n_pred:
        return
    with raises(ValueError, "predictions", "labels", f"{n_pred} and {n_label}"):
        accuracy(["a"] * n_pred, ["a"] * n_label)
    with raises(TypeError, "predictions", "labels"):
        accuracy("yes", "yea")  # strings, not lists: would score 2/3 character by character

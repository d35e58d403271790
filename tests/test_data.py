"""Tests for minitx.data: tokenizer, task generators, splits without leaks, and batching."""
import hashlib
import json
import random

import pytest
import torch
from hypothesis import given, strategies as st

from minitx.data import IGNORE_INDEX, Tokenizer, encode_for_training, encode_prompts, split_of
import lesson_loader  # noqa: F401  (puts lessons/ on sys.path for the toy world)
from toyworld import TASKS, course_tokenizer, make_split, pretraining_corpus, prompt_text

TOK = course_tokenizer()
WORDS = TOK.words[2:]  # every word but <pad> and <unk>
CUSTOMER_SERVICE = ("returns", "shipping", "recommend")


def draw(task_name: str, n: int = 500, seed: int = 0):
    rng = random.Random(seed)
    return [TASKS[task_name].make(rng) for _ in range(n)]


# ---- tokenizer -------------------------------------------------------------------------------
@given(st.lists(st.sampled_from(WORDS), max_size=40))
def test_tokenizer_round_trips_any_sequence_of_vocabulary_words(words):
    text = " ".join(words)
    ids = TOK.encode(text)
    assert len(ids) == len(words) and TOK.unk_id not in ids
    assert TOK.decode(ids) == text
    assert TOK.decode(torch.tensor(ids)) == text


def test_unknown_words_become_unk_and_pad_is_dropped():
    assert (TOK.pad_id, TOK.unk_id) == (0, 1)
    assert TOK.encode("reverse the xyzzy list") == [TOK.ids["reverse"], TOK.ids["the"], 1,
                                                    TOK.ids["list"]]
    assert TOK.decode([0, 0, *TOK.encode("copy the list"), 0]) == "copy the list"
    assert TOK.words[TOK.stop_id] == ";"


def test_tokenizer_survives_json_round_trip():
    again = Tokenizer.from_dict(json.loads(json.dumps(TOK.to_dict())))
    assert again.words == TOK.words and again.vocab_size == TOK.vocab_size
    assert again.stop_id == TOK.stop_id and again.encode("red =>") == TOK.encode("red =>")


@pytest.mark.parametrize("words", [["a", "a"], ["<pad>"], ["<unk>", "b"], ["two words"], [""]])
def test_tokenizer_rejects_bad_vocabularies(words):
    with pytest.raises(ValueError):
        Tokenizer(words)


def test_course_vocabulary_is_small_deterministic_and_covers_every_task():
    assert TOK.vocab_size < 500
    assert course_tokenizer().words == TOK.words
    for name, task in TASKS.items():
        for text in (*task.phrasings, *task.labels):
            assert TOK.unk_id not in TOK.encode(text), (name, text)
        for example in draw(name, 1000, seed=7):
            for text in (prompt_text(example, task.phrasings[-1]), *example.references):
                assert TOK.unk_id not in TOK.encode(text), (name, text)


# ---- tasks -----------------------------------------------------------------------------------
def test_registry_has_the_tasks_the_lessons_need():
    pretrained = {"sentiment": True, "data_to_text": True, "reverse": True, "copy": True,
                  "first_last": False, "intent": True, "returns": False, "shipping": False,
                  "recommend": False}
    assert {name: TASKS[name].in_pretraining for name in pretrained} == pretrained
    assert TASKS["sentiment"].labels == ("positive", "negative")
    assert TASKS["intent"].labels == CUSTOMER_SERVICE
    all_phrasings = [p for task in TASKS.values() for p in task.phrasings]
    assert len(all_phrasings) == len(set(all_phrasings))  # no phrasing names two tasks
    for task in TASKS.values():
        assert len(task.phrasings) >= 6 and all(len(p.split()) >= 3 for p in task.phrasings)
        assert 0 < task.n_seen < len(task.phrasings)  # some phrasings are held out


@pytest.mark.parametrize("name", list(TASKS))
def test_every_target_is_a_reference_and_labels_match(name):
    labels = TASKS[name].labels
    for example in draw(name):
        assert example.target in example.references
        assert example.source and example.target
        assert not {";", "=>", ":"} & set(example.source.split() + example.target.split())
        if labels:
            assert example.label == example.target and example.target in labels
        else:
            assert example.label is None


def test_data_to_text_has_three_faithful_references():
    for example in draw("data_to_text"):
        facts = dict(fact.split(" = ") for fact in example.source.split(" | "))
        assert "name" in facts and 2 <= len(facts) <= 4
        assert len(set(example.references)) >= 3
        for reference in example.references:
            assert all(value in reference for value in facts.values()), (facts, reference)
    targets = {example.references.index(example.target) for example in draw("data_to_text")}
    assert targets == {0, 1, 2}  # the training target is drawn from all the references


def test_word_list_tasks_share_inputs_and_differ_only_in_the_answer():
    for rev, copy, first_last in zip(draw("reverse"), draw("copy"), draw("first_last")):
        assert rev.source == copy.source == first_last.source
        words = rev.source.split()
        assert 3 <= len(words) <= 6 and len(set(words)) == len(words)
        assert rev.target.split() == words[::-1]
        assert copy.target == copy.source
        assert first_last.target.split() == [words[-1], words[0]]


@pytest.mark.parametrize("name", CUSTOMER_SERVICE)
def test_customer_service_answers_are_a_function_of_the_query(name):
    answers = {}
    for example in draw(name, 3000):
        assert answers.setdefault(example.source, example.target) == example.target
    assert len(set(answers.values())) >= 9


def test_customer_service_answers_follow_their_rules():
    for example in draw("shipping", 300):  # the status follows the order number's first digit
        number = " ".join(word for word in example.source.split() if word.isdigit())
        statuses = ("has been packed", "is on its way", "has been delivered")
        status = statuses[(int(number[0]) - 1) // 3]
        assert example.target == f"your order {number} {status}"
    days = {"boots": "30", "headphones": "14", "lamp": "60"}
    for example in draw("returns", 1000):
        item = next((item for item in days if item in example.source.split()), None)
        if item:
            assert example.target.endswith(f"{item} within {days[item]} days")
    for example in draw("recommend", 300):
        if "runner" in example.source.split():
            assert example.target == "we recommend the running shoes"


def test_intent_labels_the_customer_service_queries():
    for example in draw("intent", 1000):
        words = example.source.split()
        expected = ("shipping" if "order" in words else
                    "returns" if "return" in words or "back" in words else "recommend")
        assert example.label == expected, example.source


# ---- sentiment: graded difficulty and a hand-written rule -------------------------------------
POSITIVE = {"great", "good", "excellent", "lovely", "amazing", "fine"}
NEGATIVE = {"bad", "awful", "terrible", "poor", "boring", "horrible"}


def rule(review: str) -> str:
    """The clause after "but" decides; "not" flips its adjective."""
    deciding = review.split(" but ")[-1].split()
    positive = (deciding[-1] in POSITIVE) != ("not" in deciding)
    return "positive" if positive else "negative"


def form(review: str) -> str:
    negated = "not" in review.split(" but ")[-1].split()
    return ("contrast " if " but " in review else "") + ("negated" if negated else "plain")


@pytest.mark.parametrize("review, label", [
    ("the food was great", "positive"),
    ("the food was not great", "negative"),
    ("the food was not bad", "positive"),
    ("the food was great but the service was awful", "negative"),
    ("the food was awful but the service was not bad", "positive"),
    ("the room was not good but the staff was lovely", "positive"),
])
def test_the_hand_written_rule(review, label):
    assert rule(review) == label


def test_sentiment_generator_follows_the_rule_at_every_difficulty():
    examples = draw("sentiment", 2000)
    forms = {form(e.source) for e in examples}
    assert forms == {"plain", "negated", "contrast plain", "contrast negated"}
    generated = {}
    for example in examples:
        assert example.label == rule(example.source), example.source
        assert example.source.split()[-1] in POSITIVE | NEGATIVE
        if " but " in example.source:  # the first clause is a real distractor
            assert rule(example.source.split(" but ")[0]) != example.label
        generated[example.source] = example.label
    for review in ("the food was great", "the food was not great", "the food was not bad"):
        if review in generated:
            assert generated[review] == rule(review)


# ---- splits and the pretraining corpus -------------------------------------------------------
def test_split_of_is_a_stable_hash_with_80_10_10_proportions():
    for source in ("red blue green", "where is my order 4 1 7"):
        bucket = int.from_bytes(hashlib.sha256(source.encode()).digest()[:8], "big") % 100
        assert split_of(source) == ("train" if bucket < 80 else "val" if bucket < 90 else "test")
    splits = [split_of(str(i)) for i in range(10_000)]
    assert 0.77 < splits.count("train") / 10_000 < 0.83
    assert 0.08 < splits.count("val") / 10_000 < 0.12


@pytest.mark.parametrize("name", list(TASKS))
def test_make_split_gives_distinct_sources_in_disjoint_splits(name):
    sizes = {"train": 200, "val": 25, "test": 25}
    sources = {}
    for split, n in sizes.items():
        examples = make_split(name, n, split, seed=0)
        sources[split] = {example.source for example in examples}
        assert len(examples) == len(sources[split]) == n
        assert all(split_of(source) == split for source in sources[split])
    assert not sources["train"] & sources["val"]
    assert not sources["train"] & sources["test"]
    assert not sources["val"] & sources["test"]


def test_make_split_is_deterministic_under_its_seed():
    assert make_split("data_to_text", 40, "val", seed=1) == make_split("data_to_text", 40, "val", 1)
    assert make_split("data_to_text", 40, "val", seed=1) != make_split("data_to_text", 40, "val", 2)


def test_make_split_refuses_more_inputs_than_the_task_has():
    with pytest.raises(ValueError, match="returns"):
        make_split("returns", 100, "test", seed=0)  # it has about 60


def test_pretraining_corpus_never_shows_held_out_inputs_or_phrasings():
    lines = pretraining_corpus(3000, seed=0)
    seen = {phrasing: name for name, task in TASKS.items() if task.in_pretraining
            for phrasing in task.phrasings[:task.n_seen]}
    held_out = {example.source for name in TASKS for split in ("val", "test")
                for example in make_split(name, 20, split, seed=0)}
    tasks_used = set()
    for line in lines:
        instruction, rest = line.split(" : ")
        source, target = rest.split(" => ")
        assert instruction in seen and target.endswith(" ;")
        assert split_of(source) == "train" and source not in held_out
        tasks_used.add(seen[instruction])
    assert tasks_used == {name for name, task in TASKS.items() if task.in_pretraining}


def test_pretraining_corpus_is_deterministic_under_its_seed():
    assert pretraining_corpus(200, seed=3) == pretraining_corpus(200, seed=3)
    assert pretraining_corpus(200, seed=3) != pretraining_corpus(200, seed=4)


def test_pretraining_teaches_every_word_the_unpretrained_tasks_answer_with():
    corpus_words = set(" ".join(pretraining_corpus(3000, seed=0)).split())
    for name in (*CUSTOMER_SERVICE, "first_last"):
        for example in draw(name, 1000):
            assert set(example.target.split()) <= corpus_words, example.target


def test_prompt_text_convention():
    example = TASKS["copy"].make(random.Random(0))
    assert prompt_text(example, "copy the list") == f"copy the list : {example.source} =>"
    assert prompt_text(example) == f"{example.source} =>"


# ---- batching --------------------------------------------------------------------------------
def sentences(min_size: int = 0):
    return st.lists(st.sampled_from(WORDS), min_size=min_size, max_size=8).map(" ".join)


@given(st.lists(st.tuples(sentences(min_size=1), sentences()), min_size=1, max_size=5))
def test_encode_for_training_puts_the_loss_on_the_output_only(pairs):
    prompts, targets = [p for p, _ in pairs], [t for _, t in pairs]
    idx, next_tokens, mask = encode_for_training(TOK, prompts, targets)
    lengths = [len(TOK.encode(f"{p} {t} ;")) - 1 for p, t in pairs]
    T = max(lengths)
    assert idx.shape == next_tokens.shape == mask.shape == (len(pairs), T)
    assert idx.dtype == next_tokens.dtype == torch.long and mask.dtype == torch.bool
    for row, (prompt, target) in enumerate(pairs):
        n = lengths[row]
        assert mask[row].tolist() == [True] * n + [False] * (T - n)  # padding on the right
        assert (idx[row, n:] == TOK.pad_id).all() and (next_tokens[row, n:] == IGNORE_INDEX).all()
        loss = next_tokens[row][next_tokens[row] != IGNORE_INDEX]
        assert TOK.decode(loss) == f"{target} ;".strip()
        assert TOK.decode(idx[row, :n]) + " ;" == f"{prompt} {target} ;".replace("  ", " ")
        shifted = next_tokens[row, :n - 1]
        keep = shifted != IGNORE_INDEX
        assert torch.equal(shifted[keep], idx[row, 1:n][keep])  # targets are the next tokens


def test_encode_for_training_on_real_examples():
    examples = [TASKS[name].make(random.Random(0)) for name in TASKS]
    prompts = [prompt_text(e, TASKS[name].phrasings[0]) for e, name in zip(examples, TASKS)]
    idx, next_tokens, _ = encode_for_training(TOK, prompts, [e.target for e in examples])
    for row, example in enumerate(examples):
        loss = next_tokens[row][next_tokens[row] != IGNORE_INDEX]
        assert TOK.decode(loss) == example.target + " ;" and loss[-1] == TOK.stop_id
    with pytest.raises(ValueError):
        encode_for_training(TOK, prompts, [])


def test_encode_prompts_pads_on_the_left():
    prompts = ["copy the list : red blue =>", "red =>", "reverse the list : 4 1 7 tent mug =>"]
    idx, mask = encode_prompts(TOK, prompts)
    lengths = [len(TOK.encode(p)) for p in prompts]
    T = max(lengths)
    assert idx.shape == mask.shape == (3, T)
    assert idx.dtype == torch.long and mask.dtype == torch.bool
    for row, (prompt, n) in enumerate(zip(prompts, lengths)):
        assert mask[row].tolist() == [False] * (T - n) + [True] * n
        assert (idx[row, :T - n] == TOK.pad_id).all()
        assert TOK.decode(idx[row]) == prompt
        assert idx[row, -1] == TOK.ids["=>"]  # every row ends where generation starts
    empty_idx, empty_mask = encode_prompts(TOK, [])
    assert empty_idx.shape == empty_mask.shape == (0, 0)

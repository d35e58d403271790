"""Tests for minitx.data: tokenizer, task generators, splits without leaks, batching (pairs and
packed pretraining rows), models saved with their tokenizer, and text in / text out."""
import hashlib
import json
import random

import pytest
import torch
from hypothesis import given, strategies as st

from minitx import GPT, Config, generate
from minitx.data import (IGNORE_INDEX, Tokenizer, complete, encode_for_training, encode_prompts,
                         load_model, packed_batches, pair_batches, save_model, split_of)
from minitx.seq2seq import Seq2Seq
from minitx.tuning import Prefix, SoftPrompt, Tuned
from strategies import generic_weights_
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


ANSWER_WORDS = [w for w in WORDS if w != ";"]  # a target never holds the stop token
PROMPT_WORDS = [w for w in ANSWER_WORDS if w != "=>"]  # a prompt's words before its separator


@given(st.lists(st.tuples(sentences(min_size=1),
                          st.lists(st.sampled_from(ANSWER_WORDS), max_size=8).map(" ".join)),
                min_size=1, max_size=5))
def test_encode_for_training_puts_the_loss_on_the_output_only(pairs):
    prompts, targets = [p for p, _ in pairs], [t for _, t in pairs]
    idx, next_tokens, mask = encode_for_training(TOK, prompts, targets)
    # the separator is appended to a prompt that does not end with it
    prompt_ids = [TOK.encode(p) + ([] if p.endswith("=>") else [TOK.sep_id]) for p in prompts]
    lines = [ids + TOK.encode(t) + [TOK.stop_id] for ids, t in zip(prompt_ids, targets)]
    lengths = [len(line) - 1 for line in lines]
    T = max(lengths)
    assert idx.shape == next_tokens.shape == mask.shape == (len(pairs), T)
    assert idx.dtype == next_tokens.dtype == torch.long and mask.dtype == torch.bool
    for row, (target, line, n) in enumerate(zip(targets, lines, lengths)):
        assert mask[row].tolist() == [True] * n + [False] * (T - n)  # padding on the right
        assert (idx[row, n:] == TOK.pad_id).all() and (next_tokens[row, n:] == IGNORE_INDEX).all()
        assert idx[row, :n].tolist() == line[:-1]
        loss = next_tokens[row][next_tokens[row] != IGNORE_INDEX]
        assert TOK.decode(loss) == f"{target} ;".strip()  # the target and the stop token only
        n_prompt = len(prompt_ids[row])
        assert next_tokens[row, :n_prompt - 1].eq(IGNORE_INDEX).all()
        assert next_tokens[row, n_prompt - 1:n].tolist() == line[n_prompt:]  # the next tokens


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


# ---- a tokenizer built from a corpus ---------------------------------------------------------
PUNCT = list(".,;:!?()'%$-")
CORPUS_WORDS = ["The", "soup", "is", "hot", "It", "s", "Blue", "Spice", "cheap", "near", "river",
                "3", "stars", "don", "t"]
texts = st.lists(st.lists(st.sampled_from(CORPUS_WORDS + PUNCT + ["=>"]), min_size=1, max_size=12)
                 .map(" ".join), min_size=1, max_size=6)


def test_from_corpus_normalises_and_joins_back_readably():
    sentence = "Hello, world! It's (very) nice: 3 stars; $5 or 10% off."
    tok = Tokenizer.from_corpus([sentence])
    assert tok.split(sentence) == ["hello", ",", "world", "!", "it", "'", "s", "(", "very", ")",
                                   "nice", ":", "3", "stars", ";", "$", "5", "or", "10", "%",
                                   "off", "."]
    assert tok.decode(tok.encode(sentence)) == sentence.lower()
    assert tok.words[2:4] == ["=>", ";"] and (tok.sep_id, tok.stop_id) == (2, 3)
    assert tok.split("a=>b;") == ["a", "=>", "b", ";"]  # sep and stop are kept whole
    assert tok.encode("Hello Mars") == [tok.ids["hello"], tok.unk_id]
    cased = Tokenizer.from_corpus(["Hi, Bob. <EOS>"], lower=False, sep="<SEP>", stop="<EOS>")
    assert cased.words[2:] == ["<SEP>", "<EOS>", ",", ".", "Bob", "Hi"]
    assert cased.split("Bob<SEP>Hi<EOS>") == ["Bob", "<SEP>", "Hi", "<EOS>"]
    plain = Tokenizer.from_corpus(["Hi, Bob."], lower=True, split_punctuation=False)
    assert plain.words[4:] == ["bob.", "hi,"] and plain.decode(plain.encode("hi, bob.")) == "hi, bob."


@given(texts, st.integers(1, 3), st.randoms(use_true_random=False))
def test_from_corpus_vocabulary_is_counted_sorted_and_order_free(corpus, min_count, rng):
    tok = Tokenizer.from_corpus(corpus, min_count=min_count)
    counts = {}
    for text in corpus:
        for word in tok.split(text):
            counts[word] = counts.get(word, 0) + 1
    kept = [w for w, n in counts.items() if n >= min_count and w not in ("=>", ";")]
    assert tok.words == ["<pad>", "<unk>", "=>", ";",
                         *sorted(kept, key=lambda w: (-counts[w], w))]
    shuffled = corpus[:]
    rng.shuffle(shuffled)
    assert Tokenizer.from_corpus(shuffled, min_count=min_count).words == tok.words
    for text in corpus:
        ids = tok.encode(text)
        assert [tok.words[i] if counts[w] >= min_count or w in ("=>", ";") else "<unk>"
                for i, w in zip(ids, tok.split(text))] == [tok.words[i] for i in ids]


@given(texts, st.data())
def test_decode_then_encode_gives_the_same_ids(corpus, data):
    tok = Tokenizer.from_corpus(corpus)
    ids = data.draw(st.lists(st.integers(2, tok.vocab_size - 1), max_size=20))
    text = tok.decode(ids)
    assert tok.encode(text) == ids and tok.decode(torch.tensor(ids)) == text
    assert " ," not in text and " )" not in text and "( " not in text


@given(texts)
def test_tokenizer_settings_survive_a_json_round_trip(corpus):
    for tok in (Tokenizer.from_corpus(corpus), Tokenizer.from_corpus(corpus, lower=False,
                                                                     stop="<eos>")):
        again = Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
        assert again.to_dict() == tok.to_dict() and again.words == tok.words
        assert all(again.encode(t) == tok.encode(t) for t in corpus)
    old = Tokenizer.from_dict({"words": WORDS})  # a dict written before the settings existed
    assert old.words == TOK.words and (old.sep, old.stop, old.lower) == ("=>", ";", False)


def test_sep_is_appended_to_prompts_that_lack_it():
    with_sep, without = encode_prompts(TOK, ["red blue =>"])[0], encode_prompts(TOK, ["red blue"])[0]
    assert torch.equal(with_sep, without) and with_sep[0, -1] == TOK.sep_id
    a = encode_for_training(TOK, ["red blue =>"], ["blue"])
    b = encode_for_training(TOK, ["red blue"], ["blue"])
    assert all(torch.equal(x, y) for x, y in zip(a, b))


# ---- batches ---------------------------------------------------------------------------------
@given(st.integers(1, 12), st.integers(1, 5), st.integers(0, 3), st.integers(0, 30))
def test_pair_batches_are_encode_for_training_of_a_fixed_epoch_order(n, batch_size, seed, step):
    rng = random.Random(n)
    pairs = [(" ".join(rng.choices(ANSWER_WORDS, k=rng.randint(1, 6))) + " =>",
              " ".join(rng.choices(ANSWER_WORDS, k=rng.randint(0, 4)))) for _ in range(n)]
    prompts, targets = [p for p, _ in pairs], [t for _, t in pairs]
    get_batch = pair_batches(TOK, prompts, targets, batch_size, seed=seed, task="x")
    epoch, pos = divmod(step * batch_size, n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    rows = [order[(pos + j) % n] for j in range(batch_size)]
    idx, next_tokens, mask = encode_for_training(TOK, [prompts[r] for r in rows],
                                                 [targets[r] for r in rows])
    batch = get_batch(step)
    assert batch["task"] == "x" and batch["attention_mask"][:, -1].any()  # no all-pad column
    assert torch.equal(batch["idx"], idx) and torch.equal(batch["targets"], next_tokens)
    assert torch.equal(batch["attention_mask"], mask)
    if n % batch_size == 0:  # one epoch shows every pair exactly once
        seen = [get_batch(s)["idx"] for s in range(epoch * n // batch_size,
                                                   (epoch + 1) * n // batch_size)]
        assert sorted(tuple(r[r != TOK.pad_id].tolist()) for b in seen for r in b) == sorted(
            tuple(encode_for_training(TOK, [p], [t])[0][0].tolist()) for p, t in pairs)


@given(st.lists(st.tuples(st.lists(st.sampled_from(PROMPT_WORDS), max_size=5),
                          st.lists(st.sampled_from(ANSWER_WORDS), max_size=5),
                          st.booleans()), min_size=2, max_size=8),
       st.integers(1, 6), st.integers(1, 4), st.integers(0, 3), st.integers(0, 50),
       st.booleans())
def test_packed_batches_are_windows_of_the_stream_from_text_starts(lines, block, batch_size, seed,
                                                                   step, loss_after_sep):
    texts = [" ".join(a + ["=>"] + b + ([";"] if stop else [])) for a, b, stop in lines]
    stream, starts, answer = [], [], []
    for a, b, _ in lines:  # written out: each text ends with exactly one stop token
        starts.append(len(stream))
        tokens = TOK.encode(" ".join(a + ["=>"] + b)) + [TOK.stop_id]
        stream += tokens
        answer += [i > len(a) for i in range(len(tokens))]  # after the separator
    if not any(s < len(stream) - block - 1 for s in starts):
        get_batch = packed_batches(TOK, texts, batch_size, block, seed, loss_after_sep)
        with pytest.raises(RuntimeError):  # no text start leaves room for a window
            get_batch(step)
        return
    get_batch = packed_batches(TOK, texts, batch_size, block, seed, loss_after_sep)
    batch = get_batch(step)
    assert batch["idx"].shape == batch["targets"].shape == (batch_size, block)
    assert torch.equal(get_batch(step)["idx"], batch["idx"])  # a function of the step
    windows = [(stream[s:s + block], [t if answer[s + j] or not loss_after_sep else IGNORE_INDEX
                                      for j, t in enumerate(stream[s + 1:s + block + 1], 1)])
               for s in starts if s < len(stream) - block - 1]  # the rows a batch may hold
    for row in zip(batch["idx"].tolist(), batch["targets"].tolist()):
        assert row in windows
    assert stream.count(TOK.stop_id) == len(texts)


def test_packed_batches_equal_the_course_pretraining_windows():
    """The course's pretraining rows (written out here as lessons/common.py had them)."""
    corpus = pretraining_corpus(300, seed=1)
    arrow, ids, answer, starts = TOK.sep_id, [], [], []
    for line in corpus:
        tokens = TOK.encode(line)
        cut = tokens.index(arrow) + 1
        starts.append(len(ids))
        ids += tokens
        answer += [False] * cut + [True] * (len(tokens) - cut)
    ids, answer, starts = torch.tensor(ids), torch.tensor(answer), torch.tensor(starts)
    starts = starts[starts < len(ids) - 40 - 1]
    get_batch = packed_batches(TOK, corpus, 8, 40, seed=1, loss_after_sep=True)
    for step in (0, 1, 17):
        g = torch.Generator().manual_seed(1 * 1_000_003 + step)
        rows = starts[torch.randint(0, len(starts), (8,), generator=g)][:, None] + torch.arange(41)
        batch = get_batch(step)
        assert torch.equal(batch["idx"], ids[rows[:, :-1]])
        assert torch.equal(batch["targets"], ids[rows[:, 1:]].masked_fill(~answer[rows[:, 1:]], -1))


# ---- models saved with their tokenizer ---------------------------------------------------------
def small_model(kind, seed=0):
    torch.manual_seed(seed)
    config = Config(vocab_size=TOK.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=8)
    return generic_weights_((GPT if kind == "GPT" else Seq2Seq)(config)).eval()


@pytest.mark.parametrize("kind", ["GPT", "Seq2Seq"])
def test_save_and_load_give_the_same_logits_and_tokenizer(kind, tmp_path):
    model, path = small_model(kind), tmp_path / "model.pt"
    tok = Tokenizer.from_corpus(["Red, blue!"], stop="<eos>")
    save_model(path, model, tok)
    again, tok_again = load_model(path)
    assert type(again) is type(model) and not again.training and tok_again.to_dict() == tok.to_dict()
    assert again.lm_head.weight is again.transformer.wte.weight  # still tied
    assert "lm_head.weight" not in torch.load(path, weights_only=True)["weights"]
    assert all(p.dtype == torch.float32 for p in again.parameters())
    idx = torch.randint(0, TOK.vocab_size, (3, 7), generator=torch.Generator().manual_seed(1))
    args = (idx,) if kind == "GPT" else (idx, idx)
    assert torch.equal(again(*args)[0], model(*args)[0])  # exactly equal
    save_model(path, model, tok, dtype=torch.float16)  # replaces the file
    half, _ = load_model(path)
    for (name, p), q in zip(model.named_parameters(), half.parameters()):
        assert torch.equal(q, p.detach().half().float()), name
    assert list(tmp_path.iterdir()) == [path]  # written atomically: no temporary file is left


# ---- text in, text out -----------------------------------------------------------------------
def by_hand(model, tok, prompts, max_new_tokens, **kw):
    """One prompt at a time: generate, then cut at the stop token."""
    answers = []
    for prompt in prompts:
        ids = tok.encode(prompt)
        ids += [] if ids[-1:] == [tok.sep_id] else [tok.sep_id]
        new = generate(model, torch.tensor([ids]), max_new_tokens, stop_ids=[tok.stop_id], **kw)[0]
        new = new.tolist()
        answers.append(tok.decode(new[:new.index(tok.stop_id)] if tok.stop_id in new else new))
    return answers


PROMPTS = ["red blue =>", "copy the list : red", "tent", "reverse the list : 4 1 7 tent mug =>",
           "the food was great"]


def test_complete_equals_generate_one_row_at_a_time():
    model = small_model("GPT").double()
    expected = by_hand(model, TOK, PROMPTS, 8)
    assert complete(model, TOK, PROMPTS, max_new_tokens=8, batch_size=2) == expected
    assert complete(model, TOK, [], max_new_tokens=8) == []
    # stop at a token the model does emit: each answer is cut right before it
    words = expected[0].split()
    k = next(k for k in range(1, len(words)) if words[k] not in words[:k])
    word = words[k]
    cut = Tokenizer(WORDS[:WORDS.index(";")] + ["<stop>"] + WORDS[WORDS.index(";") + 1:],
                    stop=word)
    assert cut.words[TOK.stop_id] == "<stop>"  # the same ids, another stop token
    answers = complete(model, cut, PROMPTS, max_new_tokens=8, batch_size=3)
    assert answers == by_hand(model, cut, PROMPTS, 8) and answers[0] == " ".join(words[:k])


def test_complete_with_one_task_or_one_task_per_prompt():
    base = small_model("GPT").double().requires_grad_(False)
    tuned = Tuned(base)
    tuned.add("prompt", SoftPrompt(base, n_tokens=3))
    tuned.add("prefix", Prefix(base, length=2, mid=8))
    for method in tuned.tasks.values():
        generic_weights_(method)
    tasks = ["prompt", "prefix", "prefix", "prompt", "prefix"]
    expected = [by_hand(tuned, TOK, [p], 6, task=t)[0] for p, t in zip(PROMPTS, tasks)]
    assert complete(tuned, TOK, PROMPTS, max_new_tokens=6, batch_size=2, task=tasks) == expected
    assert complete(tuned, TOK, PROMPTS, 6, task="prefix") == by_hand(tuned, TOK, PROMPTS, 6,
                                                                      task="prefix")


@pytest.mark.parametrize("args, named", [(("nope", 3, "train"), "task_name"),
                                         (("reverse", 3, "dev"), "split")])
def test_make_split_names_the_valid_tasks_and_splits(args, named):
    with pytest.raises(ValueError, match=named) as error:
        make_split(*args)
    assert ("reverse" in str(error.value)) if named == "task_name" else "'val'" in str(error.value)

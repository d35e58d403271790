"""The course's toy world: a closed vocabulary and the synthetic tasks the lessons tune on.

Every line reads ``<instruction> : <source> => <target> ;``; with no instruction a prompt is
"<source> =>", where a soft prompt or prefix goes. Tokens are whole words, so "initialise a soft
prompt from the text 'classify this review :'" means just that. The tasks show the papers' effects
at toy scale: only the first ``n_seen`` phrasings of a task are pretrained; ``reverse`` and ``copy``
share inputs, so a prompt must *activate* the right skill; ``first_last`` is never pretrained;
``sentiment`` has graded difficulty; ``data_to_text`` has three right answers (for BLEU / ROUGE-L).
Customer-service tasks are not pretrained, but their queries are (via ``intent``) and so are their
answers' words (the word lists are made of them): a prompt steers a frozen model to words it knows.
An input's split is a hash of its source text (``minitx.data.split_of``), whatever the task.

This is course content, not library: your own data goes through ``minitx.data`` directly.
"""
import random
import re
from dataclasses import dataclass
from typing import Callable

from minitx.data import Tokenizer, split_of

@dataclass(frozen=True)
class Example:
    """One input and its correct outputs; ``target`` is the reference used for training."""
    source: str
    target: str
    references: tuple[str, ...]
    label: str | None = None  # the class word of a classification example

def _words(data) -> set[str]:
    """Every word in a string or nested collections of strings, {placeholders} left out."""
    if isinstance(data, str):
        return {word for word in data.split() if not word.startswith("{")}
    return set().union(*map(_words, [*data, *data.values()] if isinstance(data, dict) else data))

# ---- sentiment: short reviews; "not" flips a clause, the clause after "but" decides ------------
OPPOSITE = {"positive": "negative", "negative": "positive"}
NOUNS = ("food", "service", "movie", "room", "staff", "music", "coffee", "hotel", "book", "show")
ADJECTIVES = {"positive": ("great", "good", "excellent", "lovely", "amazing", "fine"),
              "negative": ("bad", "awful", "terrible", "poor", "boring", "horrible")}
CLAUSE = ("the {noun} was {adjective}", "the {noun} was not {adjective}")  # index: negated
CONTRAST = "{} but {}"  # the second clause decides

def _make_sentiment(rng: random.Random) -> Example:
    """Plain, negated ("not bad" is positive) or contrast ("X but Y", Y decides): a coin each."""
    label = rng.choice(tuple(OPPOSITE))
    clauses = []  # a distractor of the opposite sentiment, then the clause that decides
    for noun, meaning in zip(rng.sample(NOUNS, 2), (OPPOSITE[label], label)):
        negated = rng.random() < 0.5
        adjective = rng.choice(ADJECTIVES[OPPOSITE[meaning] if negated else meaning])
        clauses.append(CLAUSE[negated].format(noun=noun, adjective=adjective))
    review = CONTRAST.format(*clauses) if rng.random() < 0.5 else clauses[1]
    return Example(review, label, (label,), label)

# ---- data_to_text: restaurant facts -> a sentence, said three ways ----------------------------
ATTRIBUTES = {"name": ("blue spice", "the mill", "green man", "red lion", "the punter", "wildwood"),
              "food": ("french", "chinese", "japanese", "thai", "greek", "mexican", "spanish"),
              "area": ("city centre", "old town", "harbour"),
              "price": ("cheap", "moderate", "pricey"), "rating": ("high", "low", "good", "poor")}
STYLES = (  # a part is kept when every attribute it names is given
    ("{name} is a", "{price}", "{food}", "restaurant", "in the {area}", "with a {rating} rating"),
    ("there is a", "{price}", "{food}", "restaurant called {name}", "in the {area}",
     "and its rating is {rating}"),
    ("for {food} food", "at {price} prices", "try {name}", "in the {area}", "rated {rating}"))

def _make_data_to_text(rng: random.Random) -> Example:
    chosen = {"name", *rng.sample(("food", "area", "price", "rating"), rng.randint(1, 3))}
    facts = {key: rng.choice(values) for key, values in ATTRIBUTES.items() if key in chosen}
    kept = [[p for p in style if set(re.findall(r"{(\w+)}", p)) <= chosen] for style in STYLES]
    references = tuple(" ".join(parts).format(**facts) for parts in kept)
    source = " | ".join(f"{key} = {value}" for key, value in facts.items())
    return Example(source, rng.choice(references), references)

# ---- customer service: each answer is a fixed function of its query ---------------------------
COLORS = ("red", "blue", "green", "black", "white", "grey", "pink", "brown", "navy", "yellow")
RETURN_DAYS = {**dict.fromkeys("boots jacket shirt scarf hat".split(), "30"),  # clothes
               **dict.fromkeys("headphones camera phone speaker keyboard".split(), "14"),
               **dict.fromkeys("lamp mug blanket chair pillow".split(), "60")}  # home goods
DIGITS = tuple("0123456789")
ORDER_STATUS = ("has been packed", "is on its way", "has been delivered")  # first digit 1-3/4-6/7-9
PRODUCTS = dict(runner="running shoes", hiker="hiking boots", cook="chef knife",
                reader="reading lamp", gamer="game controller", swimmer="swim goggles",
                painter="paint brushes", gardener="garden gloves", camper="camping tent")
TRAITS, RELATIVES = ("keen", "young", "busy"), ("friend", "sister", "dad", "mum", "son", "uncle")
QUERIES = {"returns": ("can i return the {item} i bought", "how do i send back the {item}",
                       "is it too late to return the {item}", "i want to return the {item}"),
           "shipping": ("where is my order {number}", "has my order {number} shipped",
                        "when will order {number} arrive", "can you track order {number}"),
           "recommend": ("i need a gift for a {person}", "what should i buy a {person}",
                         "my {relative} is a {person}", "gift ideas for my {relative} a {person}")}
ANSWERS = {"returns": "yes you can return the {item} within {days} days",
           "shipping": "your order {number} {status}", "recommend": "we recommend the {product}"}
LIST_WORDS = tuple(sorted(_words([ANSWERS.values(), COLORS, RETURN_DAYS, DIGITS, ORDER_STATUS,
                                     PRODUCTS.values()])))  # every word an answer above can use

def _make_service(rng: random.Random, intent: str) -> Example:
    """A customer query with the given intent (a key of QUERIES), and its answer."""
    if intent == "returns":  # the return window depends on the kind of item
        item = rng.choice(tuple(RETURN_DAYS))
        slots = {"item": f"{rng.choice(COLORS)} {item}", "days": RETURN_DAYS[item]}
    elif intent == "shipping":  # the status depends on the order number's first digit
        digits = [rng.choice(DIGITS[1:]), *rng.choices(DIGITS, k=2)]
        slots = {"number": " ".join(digits), "status": ORDER_STATUS[(int(digits[0]) - 1) // 3]}
    else:  # the product depends on the person's hobby
        person = rng.choice(tuple(PRODUCTS))
        slots = {"person": f"{rng.choice(TRAITS)} {person}", "product": PRODUCTS[person],
                 "relative": rng.choice(RELATIVES)}
    answer = ANSWERS[intent].format(**slots)
    return Example(rng.choice(QUERIES[intent]).format(**slots), answer, (answer,))

def _make_intent(rng: random.Random) -> Example:
    intent = rng.choice(tuple(QUERIES))
    return Example(_make_service(rng, intent).source, intent, (intent,), intent)

def _make_word_list(rng: random.Random, answer: Callable[[list[str]], list[str]]) -> Example:
    words = rng.sample(LIST_WORDS, rng.randint(3, 6))
    target = " ".join(answer(words))
    return Example(" ".join(words), target, (target,))

@dataclass(frozen=True)
class Task:
    """A task: whether pretraining saw it, how to draw an example, and how to ask for it."""
    name: str
    in_pretraining: bool
    make: Callable[[random.Random], Example]
    labels: tuple[str, ...]  # the class words of a classification task, else ()
    phrasings: tuple[str, ...]  # instructions in words; phrasings[:n_seen] are pretrained
    n_seen: int = 4

TASKS = {task.name: task for task in [  # name, pretrained?, example maker, labels, phrasings
    Task("sentiment", True, _make_sentiment, tuple(OPPOSITE), (
        "classify this review", "is this review positive or negative", "how does the writer feel",
        "what is the sentiment", "label the mood of this text", "did the customer like it")),
    Task("data_to_text", True, _make_data_to_text, (), (
        "describe the restaurant", "write a sentence about it", "turn the facts into a sentence",
        "say this in words", "write a short description", "put the details into words")),
    Task("reverse", True, lambda rng: _make_word_list(rng, reversed), (), (
        "reverse the list", "say these words backwards", "read the list backwards",
        "put the words in reverse order", "give them from last to first", "turn the list around")),
    Task("copy", True, lambda rng: _make_word_list(rng, list), (), (
        "copy the list", "repeat these words", "say the words again", "write the list out again",
        "give the same words back", "echo the list")),
    Task("first_last", False, lambda rng: _make_word_list(rng, lambda w: [w[-1], w[0]]), (), (
        "say the last word then the first word", "give the last and then the first word",
        "name the final word and then the opening word", "last word first then first word",
        "tell me the end word and the start word", "output the final word followed by the first")),
    Task("intent", True, _make_intent, tuple(QUERIES), (
        "what does the customer want", "classify the customer request", "what is this query about",
        "which team should handle this", "sort this message by topic", "label the intent")),
    Task("returns", False, lambda rng: _make_service(rng, "returns"), (), (
        "answer the return question", "reply to this return request", "help with this return",
        "explain the return policy", "respond about sending it back", "tell them about returns")),
    Task("shipping", False, lambda rng: _make_service(rng, "shipping"), (), (
        "give the order status", "answer the shipping question", "report the delivery status",
        "reply to this tracking request", "say where the order is", "help with this order")),
    Task("recommend", False, lambda rng: _make_service(rng, "recommend"), (), (
        "recommend a product", "suggest a gift", "reply with a product idea", "help choose a gift",
        "pick a present for them", "answer with a suggestion")),
]}

def course_tokenizer() -> Tokenizer:
    """The toy world's tokenizer: the punctuation, then every word of the tables above, sorted."""
    tables = [NOUNS, ADJECTIVES, CLAUSE, CONTRAST, ATTRIBUTES, STYLES, COLORS, RETURN_DAYS, DIGITS,
              ORDER_STATUS, PRODUCTS, TRAITS, RELATIVES, QUERIES, ANSWERS,
              [(task.phrasings, task.labels) for task in TASKS.values()]]
    return Tokenizer([":", "=>", ";", "|", "=", *sorted(_words(tables))])

def prompt_text(example: Example, instruction: str | None = None) -> str:
    """What the model is given: "<instruction> : <source> =>", or "<source> =>" alone."""
    return f"{example.source} =>" if instruction is None else f"{instruction} : {example.source} =>"

def make_split(task_name: str, n: int, split: str, seed: int = 0) -> list[Example]:
    """``n`` examples of a task, distinct sources all in ``split``; the same for the same seed."""
    if task_name not in TASKS:
        raise ValueError(f"task_name must be one of {list(TASKS)}; got {task_name!r}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test'; got {split!r}")
    rng, examples = random.Random(f"{task_name}/{split}/{seed}"), {}
    for _ in range(100 * n + 20_000):  # far more draws than any n the split can supply needs
        if len(examples) == n:
            return list(examples.values())
        example = TASKS[task_name].make(rng)
        if split_of(example.source) == split:
            examples.setdefault(example.source, example)
    raise ValueError(f"{task_name!r} has only {len(examples)} distinct {split!r} inputs, not {n}")

def pretraining_corpus(n_lines: int, seed: int = 0) -> list[str]:
    """Lines "<prompt> <target> ;" of the pretrained tasks: seen phrasings, train sources only."""
    rng, lines = random.Random(f"pretraining/{seed}"), []
    tasks = [task for task in TASKS.values() if task.in_pretraining]
    while len(lines) < n_lines:
        task = rng.choice(tasks)
        example = task.make(rng)
        if split_of(example.source) == "train":
            prompt = prompt_text(example, rng.choice(task.phrasings[:task.n_seen]))
            lines.append(f"{prompt} {example.target} ;")
    return lines

"""Tests for minitx.metrics: hand-worked BLEU / ROUGE-L examples plus properties."""
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minitx.metrics import accuracy, corpus_bleu, lcs_length, rouge_l


# ----------------------------------------------------------------------------- accuracy

def test_accuracy_counts_exact_matches():
    assert accuracy(["a", "b", "c", "d"], ["a", "x", "c", "d"]) == 0.75
    assert accuracy(["yes"], ["yes"]) == 1.0
    assert accuracy(["yes"], ["no"]) == 0.0


@pytest.mark.parametrize("fn", [accuracy, corpus_bleu, rouge_l])
def test_length_mismatch_and_empty_input_raise(fn):
    refs = ["a"] if fn is accuracy else [["a"]]
    with pytest.raises(ValueError):
        fn(["a", "b"], refs)
    with pytest.raises(ValueError):
        fn([], [])


@pytest.mark.parametrize("fn", [corpus_bleu, rouge_l])
def test_hypothesis_without_reference_raises(fn):
    with pytest.raises(ValueError):
        fn(["a b c d"], [[]])


# ----------------------------------------------------------------------------- BLEU

def test_bleu_two_sentence_corpus_by_hand():
    hyps = ["the cat sat on the mat", "a dog ran"]
    refs = [["the cat sat on a mat"], ["a dog ran away"]]
    # Sentence 1 (hyp 6 tokens, ref 6 tokens):
    #   1-grams: the(x2, ref has 1 -> clipped to 1) cat sat on mat      -> 5 / 6
    #   2-grams: [the cat] [cat sat] [sat on] on-the the-mat            -> 3 / 5
    #   3-grams: [the cat sat] [cat sat on] sat-on-the on-the-mat       -> 2 / 4
    #   4-grams: [the cat sat on] cat-sat-on-the sat-on-the-mat         -> 1 / 3
    # Sentence 2 (hyp 3 tokens, ref 4 tokens): 3/3, 2/2, 1/1 and 0/0 (no 4-grams at all).
    # Corpus sums: p1 = 8/9, p2 = 5/7, p3 = 3/5, p4 = 1/3
    #   geometric mean = (8/9 * 5/7 * 3/5 * 1/3) ** (1/4) = (120/945) ** (1/4) = (8/63) ** 0.25
    #                  = 0.596949...
    # c = 6 + 3 = 9 <= r = 6 + 4 = 10, so BP = exp(1 - 10/9) = exp(-1/9) = 0.894839...
    # BLEU = 100 * 0.894839 * 0.596949 = 53.4174
    expected = 100 * math.exp(-1 / 9) * (8 / 63) ** 0.25
    assert expected == pytest.approx(53.4174, abs=1e-4)
    assert corpus_bleu(hyps, refs) == pytest.approx(expected)
    # Sentence 2 has no 4-gram, yet the corpus score is not 0: counts are pooled first.
    assert corpus_bleu(hyps[1:], refs[1:]) == 0.0


def test_bleu_identical_is_100_and_disjoint_is_0():
    s = ["the quick brown fox jumps", "over the lazy dog today"]
    assert corpus_bleu(s, [[x] for x in s]) == pytest.approx(100.0)
    assert corpus_bleu(["a b c d e"], [["v w x y z"]]) == 0.0


def test_bleu_no_smoothing_zero_precision_gives_zero():
    # All unigrams, bigrams and trigrams match but there is no matching 4-gram: p4 = 0 -> 0.
    assert corpus_bleu(["a b c x d"], [["a b c y d"]]) == 0.0


def test_bleu_brevity_penalty():
    # Every n-gram of the 4-token hypothesis is in the 6-token reference: p1..p4 = 1.
    # c = 4 <= r = 6, BP = exp(1 - 6/4) = exp(-0.5) = 0.60653 -> BLEU = 60.653
    score = corpus_bleu(["the cat sat on"], [["the cat sat on the mat"]])
    assert score == pytest.approx(100 * math.exp(-0.5))
    assert score == pytest.approx(60.653, abs=1e-3)


def test_bleu_clipping():
    # "the" occurs 4 times but at most once in the reference: p1 = min(4, 1) / 4 = 1/4.
    # c = 4 > r = 2, so BP = 1, and BLEU-1 = 25.
    assert corpus_bleu(["the the the the"], [["the cat"]], max_n=1) == pytest.approx(25.0)
    # Every bigram is "the the", absent from the reference: p2 = 0 -> BLEU-2 = 0.
    assert corpus_bleu(["the the the the"], [["the cat"]], max_n=2) == 0.0


def test_bleu_clipping_papineni_example():
    # Papineni et al. (2002), sec. 2.1: modified unigram precision of the 7-token candidate
    # is 2/7 ("the" appears at most twice in a reference). r = 7 (second reference) = c, BP = 1.
    refs = [["the cat is on the mat", "there is a cat on the mat"]]
    assert corpus_bleu(["the the the the the the the"], refs, max_n=1) == pytest.approx(
        100 * 2 / 7)


def test_bleu_multi_reference_clips_by_max_count():
    # "the" appears twice in the hypothesis, once in ref A and twice in ref B: clip at 2.
    # p1 = (2 + 1) / 3 = 1; hyp length 3, refs 2 and 3 -> r = 3, BP = 1 -> 100.
    assert corpus_bleu(["the the cat"], [["the cat", "the the dog"]], max_n=1) == 100.0
    # With ref A alone: p1 = (1 + 1) / 3, c = 3 > r = 2, BP = 1 -> 66.67.
    assert corpus_bleu(["the the cat"], [["the cat"]], max_n=1) == pytest.approx(200 / 3)


def test_bleu_multi_reference_picks_closest_length():
    hyp = ["a b c d e"]  # c = 5; all its n-grams occur in the 8-token reference
    # Lengths 8 and 4: closest is 4 (|5-4| = 1 < 3), so c > r and BP = 1.
    assert corpus_bleu(hyp, [["a b c d e f g h", "w x y z"]]) == pytest.approx(100.0)
    # With only the 8-token reference: BP = exp(1 - 8/5).
    assert corpus_bleu(hyp, [["a b c d e f g h"]]) == pytest.approx(100 * math.exp(-0.6))
    # Lengths 6 and 4 tie at distance 1: the shorter (4) wins, so BP = 1 (not exp(-0.2)).
    assert corpus_bleu(hyp, [["a b c d e f", "w x y z"]]) == pytest.approx(100.0)
    assert corpus_bleu(hyp, [["w x y z", "a b c d e f"]]) == pytest.approx(100.0)


def test_bleu_papineni_candidate_1():
    # Papineni et al. (2002), sec. 2.1, Candidate 1 vs the three references (lower-cased, no
    # punctuation): 17 of its 18 unigrams are matched ("obeys" is not). c = 18, and reference 2
    # also has 18 tokens, so BP = 1 and BLEU-1 = 100 * 17 / 18.
    cand = "it is a guide to action which ensures that the military always obeys the commands of the party"
    refs = ["it is a guide to action that ensures that the military will forever heed party commands",
            "it is the guiding principle which guarantees the military forces always being under "
            "the command of the party",
            "it is the practical guide for the army always to heed the directions of the party"]
    assert corpus_bleu([cand], [refs], max_n=1) == pytest.approx(100 * 17 / 18)


# ----------------------------------------------------------------------------- ROUGE-L

def test_lcs_length_examples():
    assert lcs_length("police killed the gunman".split(), "police kill the gunman".split()) == 3
    assert lcs_length("police killed the gunman".split(), "the gunman kill police".split()) == 2
    assert lcs_length([], [1, 2]) == 0
    assert lcs_length("ABCBDAB", "BDCABA") == 4  # classic CLRS example ("BCBA")


def test_rouge_l_hand_examples():
    # Lin (2004): LCS("police killed the gunman", "police kill the gunman") = 3 of 4 tokens,
    # so R = P = 3/4 and F = 3/4 whatever beta is -> 75.
    assert rouge_l(["police killed the gunman"], [["police kill the gunman"]]) == pytest.approx(75.0)
    # Unequal lengths: hyp "police the gunman" (3) vs ref "police killed the gunman" (4), LCS = 3.
    # R = 3/4, P = 1.  beta = 1.2, beta^2 = 1.44:
    #   F = 2.44 * 0.75 * 1 / (0.75 + 1.44 * 1) = 1.83 / 2.19 = 0.835616
    # beta = 1: F = 2 * 0.75 / 1.75 = 0.857143
    hyp, ref = ["police the gunman"], [["police killed the gunman"]]
    assert rouge_l(hyp, ref) == pytest.approx(100 * 1.83 / 2.19)
    assert rouge_l(hyp, ref, beta=1.0) == pytest.approx(100 * 1.5 / 1.75)


def test_rouge_l_max_over_references_then_mean_over_sentences():
    # Sentence 1: refs give LCS 2 (F = 0.5) and LCS 3 (F = 0.75) -> take 0.75.
    # Sentence 2: no common token -> 0.   Mean = (0.75 + 0) / 2 -> 37.5
    hyps = ["police killed the gunman", "a b"]
    refs = [["the gunman kill police", "police kill the gunman"], ["c d"]]
    assert rouge_l(hyps, refs) == pytest.approx(37.5)


def test_rouge_l_identical_and_disjoint():
    assert rouge_l(["a b c", "d e"], [["a b c"], ["d e"]]) == pytest.approx(100.0)
    assert rouge_l(["a b c"], [["x y z"]]) == 0.0
    assert rouge_l([""], [["x y z"]]) == 0.0


# ----------------------------------------------------------------------------- properties

WORDS = st.sampled_from(["the", "cat", "sat", "on", "a", "mat", "dog"])
SENT = st.lists(WORDS, min_size=1, max_size=8).map(" ".join)
LONG_SENT = st.lists(WORDS, min_size=4, max_size=8).map(" ".join)


@st.composite
def corpora(draw, sent=SENT):
    hyps = draw(st.lists(sent, min_size=1, max_size=4))
    refs = [draw(st.lists(sent, min_size=1, max_size=3)) for _ in hyps]
    return hyps, refs


@given(corpora())
def test_scores_are_in_range(corpus):
    hyps, refs = corpus
    assert 0.0 <= corpus_bleu(hyps, refs) <= 100.0 + 1e-9
    assert 0.0 <= rouge_l(hyps, refs) <= 100.0 + 1e-9


@given(st.lists(LONG_SENT, min_size=1, max_size=4), st.lists(SENT, max_size=2))
def test_identical_scores_100(sents, extra_refs):
    # A sentence among its own references: every clipped count is full and r = c.
    refs = [[s] + extra_refs for s in sents]
    assert corpus_bleu(sents, refs) == pytest.approx(100.0)
    assert rouge_l(sents, refs) == pytest.approx(100.0)


@given(corpora())
def test_bleu_ignores_sentence_order(corpus):
    hyps, refs = corpus
    assert corpus_bleu(hyps[::-1], refs[::-1]) == pytest.approx(corpus_bleu(hyps, refs))


@given(SENT, SENT)
def test_rouge_l_symmetric_for_beta_1(a, b):
    assert rouge_l([a], [[b]], beta=1) == pytest.approx(rouge_l([b], [[a]], beta=1))


def _lcs_brute_force(a, b):
    """Longest subsequence of a (tried longest first) that is also a subsequence of b."""
    def is_subsequence(s, t):
        it = iter(t)
        return all(x in it for x in s)
    for k in range(len(a), -1, -1):
        if any(is_subsequence(c, b) for c in itertools.combinations(a, k)):
            return k


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from("abc"), max_size=7), st.lists(st.sampled_from("abc"), max_size=7))
def test_lcs_length_matches_brute_force(a, b):
    assert lcs_length(a, b) == _lcs_brute_force(a, b) == lcs_length(b, a)


# ----------------------------------------------------------------------------- cross-checks

CROSS = (["the cat sat on the mat today", "a dog ran in the park"],
         [["the cat sat on a mat today", "there is a cat on the mat"],
          ["a dog ran in a park", "the dog runs in the park"]])


def test_bleu_matches_sacrebleu_if_installed():
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps, refs = CROSS
    streams = [list(r) for r in zip(*refs)]  # sacrebleu wants one stream per reference slot
    ref = sacrebleu.corpus_bleu(hyps, streams, tokenize="none", smooth_method="none").score
    assert corpus_bleu(hyps, refs) == pytest.approx(ref, abs=1e-6)


def test_bleu_matches_nltk_if_installed():
    # NLTK counts max(1, #n-grams) in a precision's denominator, so it departs from Papineni
    # (and from sacrebleu and minitx) when a hypothesis is shorter than n: keep them >= 4 tokens.
    bleu_score = pytest.importorskip("nltk.translate.bleu_score")
    hyps, refs = CROSS
    ref = bleu_score.corpus_bleu([[r.split() for r in rs] for rs in refs], [h.split() for h in hyps])
    assert corpus_bleu(hyps, refs) == pytest.approx(100 * ref, abs=1e-6)

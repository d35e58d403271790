"""Text-generation metrics: accuracy, corpus BLEU, ROUGE-L. Pure Python (stdlib only).
Tokens are whitespace-separated with no other normalisation: tokenise/lower-case first."""
import math
from collections import Counter


def _check(hypotheses, references, names=("hypotheses", "references"), texts=True):
    """Refuse what would score silently wrong: a string for a list (a perfect hypothesis against
    references=["its text"] scores 0), token lists for strings, unequal or zero lengths."""
    if not isinstance(hypotheses, (list, tuple)) or not isinstance(references, (list, tuple)):
        raise TypeError(f"{names[0]} and {names[1]} must be lists, not str or other types")
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(f"{names[0]} and {names[1]} need equal, non-zero lengths; got "
                         f"{len(hypotheses)} and {len(references)}")
    if texts and not all(isinstance(h, str) for h in hypotheses):
        raise TypeError("hypotheses must be strings: ' '.join(tokens) a pre-tokenized one")
    if texts and not all(isinstance(refs, (list, tuple)) and all(isinstance(r, str) for r in refs)
                         for refs in references):
        raise TypeError("references must be one list of reference strings per hypothesis: [[ref]]")
    if texts and not all(references):
        raise ValueError("references: every hypothesis needs at least one reference")


def accuracy(predictions: list[str], labels: list[str]) -> float:
    """Fraction of predictions exactly equal to their label, in [0, 1]."""
    _check(predictions, labels, ("predictions", "labels"), texts=False)
    return sum(p == y for p, y in zip(predictions, labels)) / len(labels)


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: list[str], references: list[list[str]], max_n: int = 4) -> float:
    """Corpus-level BLEU on a 0..100 scale (Papineni et al., 2002, ACL).
    p_n = sum_s sum_g min(count_hyp(g), max_ref count_ref(g)) / sum_s #n-grams(hyp_s):
    clipped counts and n-gram totals are summed over the whole corpus before dividing.
    log BLEU = min(1 - r/c, 0) + (1/max_n) sum_{n=1..max_n} log p_n, the first term being
    log BP (brevity penalty): c = total hypothesis length, r = sum over sentences of the
    reference length closest to the hypothesis length (ties -> shorter reference).
    No smoothing: any p_n = 0 gives BLEU = 0."""
    _check(hypotheses, references)
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"max_n (the longest n-gram) must be an integer >= 1; got {max_n!r}")
    matched, total, c, r = [0] * max_n, [0] * max_n, 0, 0   # per-n sums; corpus lengths
    for hyp, refs in zip(hypotheses, references):
        h, rs = hyp.split(), [ref.split() for ref in refs]
        c += len(h)
        r += min((len(t) for t in rs), key=lambda L: (abs(L - len(h)), L))
        for n in range(1, max_n + 1):
            max_ref = Counter()
            for t in rs:
                max_ref |= _ngrams(t, n)          # |= keeps the max count per n-gram
            matched[n - 1] += sum(min(k, max_ref[g]) for g, k in _ngrams(h, n).items())
            total[n - 1] += max(len(h) - n + 1, 0)
    if min(matched) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matched, total)) / max_n
    return 100.0 * math.exp(min(1 - r / c, 0.0) + log_p)   # BP = exp(1 - r/c) iff c <= r


def lcs_length(a: list, b: list) -> int:
    """Length of the longest common subsequence, by dynamic programming in O(|a||b|)."""
    prev = [0] * (len(b) + 1)                  # row i: prev[j] = LCS(a[:i], b[:j])
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(hypotheses: list[str], references: list[list[str]], beta: float = 1.2) -> float:
    """Sentence-averaged ROUGE-L F-measure on a 0..100 scale (Lin, 2004, sec. 3.1).
    With R = LCS / len(ref) and P = LCS / len(hyp), F = (1 + beta^2) R P / (R + beta^2 P),
    and F = 0 when LCS = 0. Each sentence takes its best reference; scores are averaged.
    beta = 1.2 (recall weighted a little above precision) follows the ROUGE-L of the
    E2E NLG Challenge evaluation scripts; pass beta=1 for the symmetric F1."""
    _check(hypotheses, references)

    def f(h, t):
        lcs = lcs_length(h, t)
        if lcs == 0:                               # also covers empty sentences
            return 0.0
        rec, prec = lcs / len(t), lcs / len(h)
        return (1 + beta**2) * rec * prec / (rec + beta**2 * prec)
    return 100.0 * sum(max(f(hyp.split(), ref.split()) for ref in refs)
                       for hyp, refs in zip(hypotheses, references)) / len(hypotheses)

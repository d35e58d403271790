"""The package's size budget: every physical line of every .py file under minitx/ counts
(docstrings, comments and blank lines included), and the total must stay within 2,000."""
from pathlib import Path

BUDGET = 2000
PACKAGE = Path(__file__).resolve().parent.parent / "minitx"


def test_minitx_fits_in_2000_lines():
    counts = {str(p.relative_to(PACKAGE)): len(p.read_bytes().splitlines())
              for p in sorted(PACKAGE.rglob("*.py"))}
    total = sum(counts.values())
    table = "\n".join(f"{n:6d}  {name}" for name, n in counts.items())
    assert counts, f"no .py files found under {PACKAGE}"
    assert total <= BUDGET, f"minitx/ has {total} lines, over the {BUDGET}-line budget:\n{table}"
    print(f"minitx/ {total} / {BUDGET} lines\n{table}")

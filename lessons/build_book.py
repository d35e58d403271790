"""Build the course as a book: every lesson run as a notebook, one HTML page each, and a map.

    pip install -e ".[book]"            # jupytext, nbclient, ipykernel, nbconvert
    python lessons/build_book.py        # every lesson, default mode (what a notebook runs)
    python lessons/build_book.py --fast --only 01,02

For each lessons/NN_*.py: jupytext reads it as a notebook, nbclient executes it in a fresh kernel
whose working directory is lessons/ (a kernel has no --fast on its command line, so a lesson runs
its default mode; --fast puts a first cell `sys.argv.append("--fast")` in front and leaves it off
the page), and nbconvert turns the executed notebook into lessons/out/book/NN_x.html. The PNGs a
lesson saves while it runs (lessons/out/NN_*.png, with matplotlib installed: `.[plots]`) are
embedded under the cell that saved them. Pages and the index (lessons/out/book/index.html: number,
title, measured time, status) use inline CSS and data URIs only, so the book opens from disk with
no network. One progress line per lesson; the exit status is 1 when a lesson failed (its page
still shows the outputs up to the error).
"""
import argparse
import base64
import datetime
import html
import importlib.util
import os
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent  # lessons/
BOOK = HERE / "out" / "book"

CSS = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
nav { font-size: 0.9rem; margin-bottom: 1rem; }
pre, code { font: 13px/1.4 ui-monospace, Menlo, Consolas, monospace; }
.input_area pre { background: #f6f8fa; padding: 0.6rem; border-radius: 4px; overflow-x: auto; }
.output_area pre { padding: 0 0.6rem; overflow-x: auto; }
.output_stderr pre, .output_error pre { background: #fdd; }
.prompt { display: none; }
.cell { margin: 0.8rem 0; }
.output_png img, img.plot { max-width: 100%; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 0.2rem 0.6rem; text-align: left; }
.failed { color: #a00; font-weight: bold; }
"""
REMOTE = re.compile(  # a tag that would fetch something: the book must open with no network
    r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//""",
    re.IGNORECASE)


def page(title, body, nav=""):
    """A standalone HTML page: inline CSS (plus pygments' colours), no remote resources."""
    from pygments.formatters import HtmlFormatter
    style = CSS + HtmlFormatter().get_style_defs(".highlight")
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{style}</style>\n</head>\n<body>\n"
            f"{nav}\n{body}\n{nav}\n</body>\n</html>\n")


def lesson_title(notebook, name):
    """The first markdown heading ("01 · Soft prompt shapes"), or the file name."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return name


def execution_window(cell):
    """(start, end) of a cell's execution as POSIX seconds, from nbclient's timing metadata."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.status.busy"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    return tuple(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
                 for t in (start, end))


def embed_plots(notebook, number, since):
    """Put each PNG of lesson `number` ("07": lessons/out/07_*.png) written since `since` under
    the code cell that was running when it was written (by file time; else the last code cell)."""
    from nbformat.v4 import new_output
    code = [c for c in notebook.cells if c.cell_type == "code"]
    pngs = sorted((p for p in (HERE / "out").glob(f"{number}_*.png") if p.stat().st_mtime >= since),
                  key=lambda p: p.stat().st_mtime)
    for png in pngs:
        written = png.stat().st_mtime
        cell = next((c for c in code if (w := execution_window(c)) and
                     w[0] - 1 <= written <= w[1] + 1), code[-1] if code else None)
        if cell is not None:
            data = base64.b64encode(png.read_bytes()).decode()
            cell.outputs.append(new_output("display_data", data={"image/png": data,
                                                                 "text/plain": png.name}))
    return [p.name for p in pngs]


def local_links(body):
    """Relative links in the prose point at lessons/ (e.g. REFERENCES.md), two levels up."""
    return re.sub(r'href="(?![a-z]+:|#|/)([^"]+)"',
                  lambda m: f'href="{m[1]}"' if m[1].endswith(".html") else f'href="../../{m[1]}"',
                  body)


def build_lesson(path, fast, timeout):
    """Execute one lesson as a notebook; return (title, seconds, ok, html body, plots), seconds
    from the first cell's start to the last one's end (the kernel's start and stop excluded)."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter

    notebook = jupytext.read(path, fmt="py:percent")
    if fast:
        notebook.cells.insert(0, nbformat.v4.new_code_cell('import sys\nsys.argv.append("--fast")'))
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(HERE)}})
    start, ok = time.time(), True
    try:
        with open(BOOK / "kernels.log", "a") as log:  # the kernel's own messages, not the cells'
            client.execute(stderr=log, stdout=log)
    except CellExecutionError:
        ok = False
    windows = [w for c in notebook.cells if c.cell_type == "code" and (w := execution_window(c))]
    seconds = (max(w[1] for w in windows) - min(w[0] for w in windows) if windows
               else time.time() - start)
    plots = embed_plots(notebook, path.name[:2], start)
    if fast:
        notebook.cells.pop(0)
    body, _ = HTMLExporter(template_name="basic").from_notebook_node(notebook)
    return lesson_title(notebook, path.stem), seconds, ok, local_links(body), plots


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="run each lesson's fast mode")
    parser.add_argument("--only", default="", help="comma-separated lesson numbers, e.g. 01,02")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    for package in ("jupytext", "nbclient", "nbconvert", "ipykernel"):
        if importlib.util.find_spec(package) is None:
            parser.error(f"{package} is missing: install the book extras with "
                         f"pip install -e \".[book]\"")
    lessons = sorted(HERE.glob("[0-9][0-9]_*.py"))
    wanted = {n.strip().zfill(2) for n in args.only.split(",") if n.strip()}
    unknown = wanted - {p.name[:2] for p in lessons}
    if unknown:
        parser.error(f"--only {args.only}: no lesson numbered {sorted(unknown)}; "
                     f"have {[p.name[:2] for p in lessons]}")
    lessons = [p for p in lessons if not wanted or p.name[:2] in wanted]
    BOOK.mkdir(parents=True, exist_ok=True)
    mode = "fast" if args.fast else "default"
    print(f"building {len(lessons)} lesson(s) in {mode} mode into {BOOK}", flush=True)
    rows, failed = [], []
    for i, path in enumerate(lessons):
        print(f"{path.name:40s}", end=" ", flush=True)
        title, seconds, ok, body, plots = build_lesson(path, args.fast, args.timeout)
        print(f"{seconds:6.1f} s  {'ok' if ok else 'FAILED'}"
              f"{f'  ({len(plots)} plot(s))' if plots else ''}", flush=True)
        links = ['<a href="index.html">course map</a>']
        if i > 0:
            links.insert(0, f'<a href="{lessons[i - 1].stem}.html">← previous</a>')
        if i + 1 < len(lessons):
            links.append(f'<a href="{lessons[i + 1].stem}.html">next →</a>')
        nav = "<nav>" + " · ".join(links) + "</nav>"
        status = "" if ok else ('<p class="failed">This lesson stopped with an error (shown '
                                'below); the cells after it did not run.</p>')
        note = f"<p><small>Run in {mode} mode: {seconds:.1f} s.</small></p>"
        text = page(title, status + note + body, nav)
        if REMOTE.search(text):
            raise RuntimeError(f"{path.name}: the page would load something from the network: "
                               f"{REMOTE.search(text)[0]!r}")
        (BOOK / f"{path.stem}.html").write_text(text)
        rows.append((path, re.sub(r"^\d+ · ", "", title), seconds, ok))  # the number has a column
        if not ok:
            failed.append(path.name)
    table = "\n".join(
        f'<tr><td>{p.name[:2]}</td><td><a href="{p.stem}.html">{html.escape(t)}</a></td>'
        f'<td>{s:.1f}</td><td>{"ok" if ok else "<span class=failed>failed</span>"}</td></tr>'
        for p, t, s, ok in rows)
    body = (f"<h1>The minitx course</h1>\n<p>{len(rows)} lessons, run as notebooks in {mode} mode "
            f"on {os.cpu_count()} CPU core(s), {datetime.date.today()}. Seconds: from "
            f"the first cell's start to the last cell's end.</p>\n<table>\n<tr><th>lesson</th>"
            f"<th>title</th><th>seconds</th><th>status</th></tr>\n{table}\n</table>\n")
    (BOOK / "index.html").write_text(page("The minitx course", body))
    print(f"wrote {BOOK / 'index.html'}; {len(failed)} failed{': ' if failed else ''}"
          f"{', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

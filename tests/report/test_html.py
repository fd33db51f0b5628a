"""saddles.report.html: one page shell for the analysis report, the dynamics page and the
compare page (same head and style, a version footer), and the pieces their sections share."""

from __future__ import annotations

import math

from saddles.report.analysis import write_report
from saddles.report.compare import write_comparison
from saddles.report.dynamics import dynamics_report
from saddles.report.html import CSS, escape, fmt, kv_table, page, section, table, version
from saddles.runs.compare import Comparison


def _head(text: str) -> str:
    """Everything before the page's title line: the shared head and style."""
    return text.split("<title>")[0] + text.split("</title>")[1].split("<h1>")[0]


def test_page_has_head_facts_sections_and_footer():
    text = page("a <b> page", [("First part", "<p>one</p>"), ("Second", "two")],
                facts={"steps": 3, "loss": 0.123456}, intro="<p class='result'>hi</p>")  # fmt: skip
    assert text.startswith("<!DOCTYPE html>") and text.endswith("</body></html>")
    assert f"<style>{CSS}</style>" in text
    assert "<title>a &lt;b&gt; page</title>" in text and "<h1>a &lt;b&gt; page</h1>" in text
    assert "<td>0.1235</td>" in text  # facts go through fmt
    assert text.index("hi") < text.index("<h2>First part</h2>") < text.index("<h2>Second</h2>")
    assert "<section id='first part'>" in text
    assert f"written by saddles {version('saddles')}" in text.split("</section>")[-1]
    assert "<h1>other</h1>" in page("t", [], heading="other")


def test_pieces():
    assert fmt(math.nan) == "nan" and fmt(1 / 3) == "0.3333" and fmt(7) == "7"
    assert escape("<a href='x'>") == "&lt;a href=&#x27;x&#x27;&gt;"
    assert section("Run", "x") == "<section id='run'><h2>Run</h2>x</section>"
    assert kv_table({"k": 2.0}) == "<table><tr><td class='t'>k</td><td>2</td></tr></table>"
    html = table([{"n_saddles": 3, "name": "a"}, {"n_saddles": 1, "name": "b"}],
                 ["name", "n_saddles"], hits=[False, True])  # fmt: skip
    assert "<th>n_saddles (raw)</th>" in html and html.count("class='hit'") == 1
    assert "<td class='t'>a</td>" in html
    assert table([], ["x"]) == "<p class='note'>(none)</p>"
    assert "n_saddles (simplified at 1%)" in table(
        [{"n_saddles_simplified": 1}], ["n_saddles_simplified"], "simplified at 1%"
    )


def test_every_page_comes_from_the_shell(tmp_path):
    rows = [{"model": f"m{i}", "run": f"m{i}", "direction": "random",
             "representation": "grid-full", "subspace": "2d", "direction_seed": "", "step": i,
             "n_params": 10 * (i + 1), "n_saddles": i % 3, "n_minima": i % 3 + 1,
             "average_persistence": 0.5 + 0.1 * i} for i in range(5)]  # fmt: skip
    report = write_report(tmp_path / "report.html", title="an <experiment>",
                          config={"threshold": 0.01}, analyses=[], figures={}, rows=rows,
                          relations=[], relation_figures={}, info={"device": "cpu"})  # fmt: skip
    dynamics = dynamics_report(rows, tmp_path / "dyn", title="a run", n_boot=20)
    result = Comparison("n_params", [], [], ["runs analyzed with different span"], rows,
                        [r["run"] for r in rows])  # fmt: skip
    compare = write_comparison(result, tmp_path / "cmp", title="")["report"]
    pages = [p.read_text() for p in (report, dynamics, compare)]
    shell = page("x", [])
    for text in pages:
        assert _head(text) == _head(shell)
        assert text.endswith(shell.split("</h1>")[1].lstrip("\n"))  # the same footer
    report_html, dynamics_html, compare_html = pages
    for name in ("Models", "Metrics", "Relations", "Configuration", "Run"):
        assert f"<h2>{name}</h2>" in report_html
    assert "an &lt;experiment&gt;" in report_html and "version numpy" in report_html
    assert "<h2>Metrics against the training step</h2>" in dynamics_html
    assert "n_saddles against the step" in dynamics_html and "<td>0 .. 4</td>" in dynamics_html
    assert "<h1>saddles compare</h1>" in compare_html and "different span" in compare_html
    assert "<h2>Power laws against the parameter count</h2>" in compare_html

"""The HTML report: self-contained, escaped, with tiles, sections and the target list; and a real
headless Chromium opening it from disk with the network off."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace

import pytest

from churnlens.errors import ChurnlensError
from churnlens.reporting.report import render, write_report
from reporting_inputs import report_input, risk_list

SECTIONS = (
    "kpis",
    "cohorts",
    "segments",
    "risk",
    "budget",
    "targets",
    "reasons",
    "exits",
    "importance",
    "model-card",
)
# anything a browser would fetch: a URL in src/href/url()/@import (SVG xmlns are names only)
FETCHES = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?!#)[a-z]+:|url\(\s*["']?(?!#)|@import""", re.I
)


def test_report_sections_tiles_and_no_fetches():
    html = render(report_input())
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    assert not FETCHES.search(html)
    assert "<svg" in html and "<img" not in html
    # February against January: 3 customers (was 2), retention 50.0 % (January has none)
    assert re.search(
        r"Customers</div>\s*<div class=\"value\">3</div>\s*<div class=\"change good\">▲ 1", html
    )
    assert re.search(
        r"Retention rate</div>\s*<div class=\"value\">50.0 %</div>\s*"
        r"<div class=\"change flat\">no earlier",
        html,
    )
    assert "1,235 EUR" in html  # the top customer's value, whole units with the currency
    assert "Expected saved value" in html and "13 EUR" not in html


def test_budget_figures_by_hand():
    html = render(report_input())
    # targets: gains 150.456 + 40 = 190 net; costs 8 + 0.3; saved = net + cost = 199
    assert re.search(r"Customers to contact</th><td class=\"num\">2 of 4<", html)
    assert re.search(r"Cost of the contacts</th><td class=\"num\">8 EUR<", html)
    assert re.search(r"Expected saved value</th><td class=\"num\">199 EUR<", html)
    assert re.search(r"Expected net gain</th><td class=\"num\">190 EUR<", html)
    # (563.82 + 243) / 822.82 of the value at risk
    assert re.search(r"value at risk they hold</th><td class=\"num\">98 %<", html)


def test_same_input_same_bytes():
    assert render(report_input()) == render(report_input())


def test_every_text_is_escaped():
    html = render(report_input())
    assert "<script" not in html
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert html.count("&lt;script&gt;") >= 3  # the customer id, its reason, the model card


def test_stated_leaving_reasons_beside_the_model_drivers():
    html = render(report_input())
    section = html[html.index('<section id="exits">') : html.index('<section id="importance">')]
    assert "3 customer(s) gave an exit answer" in section  # c3's older answer is replaced
    for stated, customers, agrees in (("(comment only)", 1, "0 of 0"), ("pricing", 1, "0 of 1")):
        assert (
            f'<td>{stated}</td><td class="num">{customers}</td><td class="num">{agrees}</td>'
            in (section)
        )
    assert '<td>support</td><td class="num">1</td><td class="num">1 of 1</td>' in section
    assert "delivery" not in section
    rows = re.findall(r'<td class="customer">([^<]*)</td>', section)
    assert rows == ["gone-1", "c3", "top-customer-7"]  # the latest answer first
    assert "not scored" in section and "Pricing" not in section and "Too expensive." in section
    assert "2 tickets open, the oldest for 9 days." in section  # the model's reason beside it
    without = render(replace(report_input(), exits=None))
    assert "No exit survey answers in the data" in without


def test_status_absent_or_present():
    with_status = render(report_input(status=True))
    assert "<td>at risk</td>" in with_status and "Sign: No purchase for 84 days" in with_status
    without = render(report_input(status=False))
    assert "The risk list has no status column." in without and "Sign:" not in without


def test_a_list_that_is_not_a_risk_list_is_refused(tmp_path):
    report = report_input()
    report.risk_list = risk_list().drop(columns=["expected_net_gain"])
    with pytest.raises(ChurnlensError, match="risk list: column\\(s\\) expected_net_gain missing"):
        write_report(report, tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


CHROMIUM = shutil.which("chromium")


def _chromium(profile, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_chromium_renders_the_report_offline(tmp_path):
    assert CHROMIUM, "chromium is not installed: run `make setup`"
    path = write_report(report_input(), tmp_path / "report.html")
    url = path.resolve().as_uri()
    dom = _chromium(tmp_path / "profile", "--dump-dom", url).stdout
    for section in SECTIONS:
        assert f'id="{section}"' in dom
    assert dom.count('class="tile"') >= 10
    first = re.search(r'<td class="customer">([^<]*)</td>', dom)
    assert first and first.group(1) == "top-customer-7"
    assert "pwned" in dom and "<title>pwned" not in dom  # the payload is text, never run
    assert "<script" not in dom
    shot = tmp_path / "report.png"
    _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2400", url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    pdf = tmp_path / "report.pdf"  # printable: the print stylesheet lays it out on pages
    _chromium(tmp_path / "profile", f"--print-to-pdf={pdf}", "--no-pdf-header-footer", url)
    pages = re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes())
    assert pdf.read_bytes()[:5] == b"%PDF-" and len(pages) >= 2

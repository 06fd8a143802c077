"""Segmentation on the real seed articles and on the cases the guide cares about."""

import json

import pytest

from tests.support import PROJECT, project_settings
from training.segment import content_statements, segment, segment_file

ROOT = PROJECT
SEGMENTATION = project_settings().segmentation
ARTICLES = sorted((ROOT / "seeds" / "articles").glob("*.txt"))


def test_five_seed_articles_are_the_shared_ones_unchanged():
    shared = ROOT.parent / "shared" / "seeds"
    assert len(ARTICLES) == 5
    if shared.is_dir():
        for path in ARTICLES:
            assert path.read_bytes() == (shared / path.name).read_bytes()


def test_corpus_annotations_cover_every_statement_of_every_article():
    rows = [json.loads(line) for line in (ROOT / "seeds/annotations/corpus.jsonl").read_text().splitlines()]
    for path in ARTICLES:
        expected = [s.text for s in segment_file(path, SEGMENTATION)]
        annotated = [r["text"] for r in rows if r["source"] == path.stem]
        assert annotated == expected, path.name


def test_boilerplate_is_flagged_not_dropped():
    text = (ROOT / "seeds/articles/001_deed9532b25b8967.txt").read_text()
    statements = segment(text, SEGMENTATION)
    flagged = {s.text: s.boilerplate for s in statements if s.boilerplate}
    assert "Menu" in flagged
    assert any("cookies" in t for t in flagged)
    assert any("Для комфортної" in t for t in flagged)  # non-English browser notice
    assert flagged["Similar articles"] == "navigation"
    content = [s.text for s in statements if not s.boilerplate]
    assert any("security umbrella" in t for t in content)
    assert [s.index for s in statements] == list(range(len(statements)))


@pytest.mark.parametrize(
    "line",
    [
        "Recent Posts",
        "Leave a Reply",
        "Your email address will not be published.",
        "4 days ago",
        "Read also: NATO summit in Vilnius: will Ukraine obtain membership promise?",
        "Back to top button",
        "We use cookies to personalize content and ads.",
        "By",
    ],
)
def test_page_furniture_lines(line):
    [statement] = segment(line, SEGMENTATION)
    assert statement.boilerplate is not None


def test_sidebar_after_recent_posts_is_boilerplate():
    text = "NATO leaders met in Vilnius on Tuesday.\nRecent Posts\nPutin threatens Europe with war over Kaliningrad."
    reasons = [s.boilerplate for s in segment(text, SEGMENTATION)]
    assert reasons[0] is None and reasons[1] == "navigation" and reasons[2].startswith("after")


def test_sentences_split_and_two_sentence_quote_kept_together():
    text = (
        "Zelensky spoke in Kyiv. He stressed: “I am confident that Ukraine will become a member of NATO "
        "after the war. And we will do everything in our power to achieve this,” according to AFP. The summit ended."
    )
    texts = [s.text for s in content_statements(text, SEGMENTATION)]
    assert texts[0] == "Zelensky spoke in Kyiv."
    assert texts[1].startswith("He stressed: “I am confident") and texts[1].endswith("according to AFP.")
    assert texts[2] == "The summit ended."


def test_long_text_is_split_never_truncated():
    cfg = project_settings().segmentation
    words = " ".join(f"word{i}" for i in range(cfg.max_statement_chars))  # one endless 'sentence'
    pieces = segment(words, cfg)
    assert all(len(p.text) <= cfg.max_statement_chars for p in pieces)
    assert " ".join(p.text for p in pieces).split() == words.split()

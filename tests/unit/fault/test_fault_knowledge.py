"""The shipped knowledge base loads; a typo in an article is refused with its file and message id."""

import re

from fault.knowledge import SHIPPED, load_knowledge


def test_shipped_articles_load_and_render():
    kb, errors = load_knowledge([SHIPPED])
    assert errors == []
    assert "SVC-8000-3Q" in kb and "DISK-8000-3E" in kb
    text = kb.get("SVC-8000-5C").render({"suspect": "svc:/site/db:default", "impacted_count": 3,
                                           "impacted": "a, b, c", "detail": "killed"})
    assert "svc:/site/db:default failed, and what depends on it failed after it: a, b, c." in text["description"]
    assert text["impact"] == "Dependents interrupted (3): a, b, c."
    assert set(text) == {"title", "description", "response", "impact", "action"}


#: a count of 1 before a plural noun ("1 services", "1 times"), or before a plural verb ("1 within 10m make")
_ONE_PLURAL = re.compile(r"\b1 (?:[a-z/]+s\b|within \S+ (?:make|mark)\b)")


def test_no_article_says_one_in_the_plural():
    """Every count an article may name is 1 for some case (one dependent, a rule with n = 0, one ereport):
    no article reads "1 services" or "1 failures within 10m make" then."""
    kb, _ = load_knowledge([SHIPPED])
    facts = {"suspect": "svc:/site/db:default", "suspects": "svc:/site/db:default", "impacted": "svc:/site/a:default",
             "impacted_count": 1, "count": 1, "fires_at": 1, "window": "10m", "detail": "exited 1", "node": "n1"}
    for msgid, article in kb.articles.items():
        for field, text in article.render(facts).items():
            assert not _ONE_PLURAL.search(text), f"{msgid}.{field}: {text}"


def test_bad_articles_are_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('["SVC-8000-ZZ"]\ntitle = "t"\ndescription = "{suspekt} broke"\nresponse = "r"\n'
                   'impact = "i"\naction = "a"\n\n["not-an-id"]\ntitle = "t"\n')
    good = tmp_path / "good.toml"
    good.write_text('["XYZ-8000-01"]\ntitle = "t"\ndescription = "d {node}"\nresponse = "r"\nimpact = "i"\n'
                    'action = "a"\nextra = 1\n')
    kb, errors = load_knowledge([tmp_path])
    text = "\n".join(map(str, errors))
    assert f"{bad}: SVC-8000-ZZ.description: unknown placeholder {{suspekt}}" in text
    assert "not-an-id: is not a message id" in text
    assert f"{good}: XYZ-8000-01.extra: unknown field" in text
    assert len(kb) == 0


def test_a_fact_that_ends_its_own_sentence_gets_one_full_stop():
    kb, _ = load_knowledge([SHIPPED])
    facts = {"suspect": "svc:/site/db:default", "detail": "Restarting too quickly, last exited with status 1."}
    text = kb.get("SVC-8000-3Q").render(facts)
    assert "status 1." in " ".join(text.values())
    assert not any(".." in v.replace("...", "") for v in text.values()), text
    trailing = kb.get("SVC-8000-3Q").render({**facts, "detail": "waiting..."})
    assert "waiting..." in " ".join(trailing.values())

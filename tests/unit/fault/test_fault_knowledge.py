"""The shipped knowledge base loads; a typo in an article is refused with its file and message id."""

from fault.knowledge import SHIPPED, load_knowledge


def test_shipped_articles_load_and_render():
    kb, errors = load_knowledge([SHIPPED])
    assert errors == []
    assert "SVC-8000-3Q" in kb and "DISK-8000-3E" in kb
    text = kb.get("SVC-8000-5C").render({"suspect": "svc:/site/db:default", "impacted_count": 3,
                                           "impacted": "a, b, c", "detail": "killed"})
    assert "svc:/site/db:default failed, and 3 services" in text["description"]
    assert set(text) == {"title", "description", "response", "impact", "action"}


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

"""JSON from untrusted senders holds Unicode text only (``svcmgr.jsontext``)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from svcmgr import mqtt_topics as wire
from svcmgr.jsontext import unpaired_surrogate

# any code point, surrogates included: what a JSON text's \u escapes can decode to
TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=20)


@given(TEXT)
def test_an_unpaired_surrogate_is_found_wherever_json_escaped_it(s):
    # bytes off the wire are UTF-8 (checked as they are decoded): a surrogate can only come as an escape
    raw = json.dumps({"k": [1, {"v": s}]}).encode()
    try:
        s.encode()
    except UnicodeEncodeError:
        assert unpaired_surrogate(raw, json.loads(raw)) is not None
    else:
        assert unpaired_surrogate(raw, json.loads(raw)) is None


def test_a_pair_is_unicode_and_a_half_is_named():
    assert unpaired_surrogate(rb'["\ud83d\ude00"]', json.loads(rb'["\ud83d\ude00"]')) is None  # an emoji, escaped
    assert unpaired_surrogate(rb'{"a": "x\uDFFFy"}', json.loads(rb'{"a": "x\uDFFFy"}')) == "'\\udfff'"


def test_another_nodes_retained_state_that_is_not_unicode_is_unreadable():
    assert wire.decode_state(b'{"state": "online", "fmri": "svc:/a/b:default"}') is not None
    assert wire.decode_state(b'{"state": "online", "fmri": "svc:/a/b\\ud800:default"}') is None

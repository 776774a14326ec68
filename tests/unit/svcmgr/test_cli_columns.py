"""svcs' columns: widths, cells and sort keys as svcs.c prints them."""

from __future__ import annotations

import datetime as dt

from svcmgr.cli.columns import COLUMNS, header, line, process_line, sort, stime

ITEM = {"fmri": "svc:/site/app:default", "state": "online", "nstate": "offline", "stime_epoch": None,
        "svc": "site/app", "inst": "default", "ctid": 42, "desc": "the app"}


def test_header_and_line_pad_each_column_to_its_width():
    cols = [COLUMNS[c] for c in ("STATE", "STIME", "FMRI")]
    assert header(cols) == "STATE          STIME    FMRI"
    assert line(cols, ITEM) == "online*        -        svc:/site/app:default"


def test_a_next_state_column_takes_the_star_away():
    cols = [COLUMNS[c] for c in ("STA", "NSTA", "S", "N", "SN", "CTID")]
    assert line(cols, ITEM) == "ON   OFF  1  0 10     42"
    assert line([COLUMNS["STA"], COLUMNS["S"]], ITEM) == "ON*  1*"


def test_stime_is_the_time_today_the_date_this_year_else_the_year():
    now = dt.datetime(2026, 3, 6, 12, 0, 0).timestamp()
    assert stime(dt.datetime(2026, 3, 6, 9, 5, 3).timestamp(), now) == " 9:05:03"
    assert stime(dt.datetime(2026, 1, 2, 9, 5, 3).timestamp(), now) == "Jan_02"
    assert stime(dt.datetime(2024, 1, 2).timestamp(), now) == "2024"
    assert process_line(dt.datetime(2026, 3, 6, 9, 5, 3).timestamp(), 812, "sleep", now) == \
        " " * 15 + " 9:05:03" + " " * 3 + "   812" + " sleep"


def test_sort_keys_in_order_each_ascending_or_descending():
    items = [{"fmri": f"svc:/x:{n}", "inst": n, "state": s} for n, s in
             (("a", "online"), ("b", "maintenance"), ("c", "disabled"), ("d", "online"))]
    got = sort(items, [(COLUMNS["STATE"], False), (COLUMNS["INST"], True)])
    assert [i["inst"] for i in got] == ["c", "d", "a", "b"]

"""The namespace cluster for these tests (``lb.cluster``): one per module, since starting it takes seconds.
Tests leave it as they found it: every instance online, the address on n1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lb.cluster import Cluster, cluster
from lb.haproxy import find_haproxy
from vrrp.lab import missing


@pytest.fixture(scope="module", name="cluster")
def cluster_fixture() -> Iterator[Cluster]:
    why = missing() or (None if find_haproxy() else "HAProxy is not installed")
    if why:
        pytest.skip(why)
    with cluster() as c:
        yield c

"""The control socket's bounds leave the daemon half of its descriptors, whatever the limit."""

import pytest

from svcmgr.api import Limits


@pytest.mark.parametrize("nofile", [64, 256, 1024, 2048, 20000, 1 << 20])
def test_clients_get_at_most_half_of_the_descriptors(nofile):
    lim = Limits.for_descriptors(nofile)
    assert lim.total + lim.privileged <= max(8, nofile // 2)
    assert 0 < lim.per_user <= lim.total and lim.privileged > 0
    assert lim.request == 1 << 20 and lim.privileged_request > lim.request


def test_a_large_limit_keeps_the_documented_caps():
    assert Limits.for_descriptors(20000) == Limits()

"""The cluster layer's pure parts: slot names and address parsing."""

from __future__ import annotations

import pytest

from switchyard.cluster.addresses import slot_names, slots, split_address
from switchyard.exceptions import ClusterError


def test_slot_names_are_host_dash_index_in_host_order():
    assert slot_names({"127.0.0.1": 2, "::1": 1}) == ["127.0.0.1-0", "127.0.0.1-1", "::1-0"]
    assert slots({"n1": 1}) == [("n1", "n1-0")]


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:8786", ("127.0.0.1", 8786)),
    ("tcp://10.0.0.5:8786", ("10.0.0.5", 8786)),
    ("[::1]:8786", ("::1", 8786)),
    ("tcp://[fe80::1]:1", ("fe80::1", 1)),
    ("node1", ("node1", 0)),
    (":0", ("127.0.0.1", 0)),
])
def test_split_address(text, expected):
    assert split_address(text) == expected


def test_split_address_names_a_bad_port():
    with pytest.raises(ClusterError, match="port 'x' is not a number"):
        split_address("127.0.0.1:x")


def test_old_names_stay_importable_from_where_they_were():
    from switchyard import settings
    from switchyard.cluster import local, warm

    assert local.split_address is split_address is settings.split_address  # one parser
    assert local.is_local_host("localhost") and not local.is_local_host("127.0.0.2")
    assert warm.worker_names({"h": 2}) == [("h", "h-0"), ("h", "h-1")]

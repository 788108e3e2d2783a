import pytest

from switchyard.exceptions import ModeError
from switchyard.modes import (Mode, enabled_modes, flags_of, mode_from_flags, mode_hint, mode_string,
                              parse_mode, unsupported_reason)


@pytest.mark.parametrize("mode,text", [(0, "____"), (1, "___p"), (2, "__c_"), (4, "_d__"), (5, "_d_p"),
                                       (7, "_dcp"), (8, "r___"), (15, "rdcp")])
def test_mode_string(mode, text):
    assert mode_string(mode) == text
    assert parse_mode(text) == mode


def test_every_mode_round_trips_through_its_string():
    for m in range(16):
        assert parse_mode(mode_string(m)) == m
        assert parse_mode(str(m)) == m
        assert mode_from_flags(**flags_of(m)) == m


def test_letters_in_any_order():
    assert parse_mode("pd") == Mode.DASK | Mode.POOL


@pytest.mark.parametrize("bad", [16, -1, "17", "xd__", "_d_", "dd", "", True, "p_d_"])
def test_bad_modes_are_refused_with_the_value_named(bad):
    with pytest.raises(ModeError) as e:
        parse_mode(bad)
    assert repr(bad) in str(e.value) or str(bad) in str(e.value)


def test_enabled_modes_are_the_subsets():
    assert [int(m) for m in enabled_modes(5)] == [0, 1, 4, 5]
    assert len(enabled_modes(15)) == 16


def test_rapids_is_refused_without_cudf():
    reason = unsupported_reason(8)
    assert reason is not None and "cudf" in reason
    assert unsupported_reason(4) is None


def test_mode_hint_describes_the_combination():
    hint = mode_hint(5, partitions=12, workers={"127.0.0.1": 2}, pool_size=2)
    assert hint == ("mode 5 (_d_p): 12 partitions over 2 Dask workers on 1 host; "
                    "each worker processes its items in a pool of 2 processes.")
    assert "driver process" in mode_hint(0, partitions=3, workers={"a": 1})
    assert "Cython" in mode_hint(6, partitions=3, workers={"a": 1, "b": 2})
    assert "3 Dask workers on 2 hosts" in mode_hint(6, partitions=3, workers={"a": 1, "b": 2})

"""Grpc-Timeout over gRPC's whole range (8 digits of any unit) becomes a deadline gRPC can hold
(docs/decisions.md T44); malformed values stay a 400 naming the header."""

from __future__ import annotations

import asyncio

import pytest
from multidict import CIMultiDict

from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.metadata import (
    MAX_TIMEOUT_SECONDS,
    call_options_from_headers,
    parse_grpc_timeout,
)
from taskgate.gateway.options import GatewayOptions

#: grpc core keeps deadlines in int64 nanoseconds.
NANOSECOND_CLOCK_LIMIT_SECONDS = 2**63 / 1e9


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("99999999H", MAX_TIMEOUT_SECONDS),
        ("2600000H", MAX_TIMEOUT_SECONDS),  # past the nanosecond clock: was an instant 504
        ("99999999M", MAX_TIMEOUT_SECONDS),
        ("876000H", MAX_TIMEOUT_SECONDS),  # exactly the maximum
        ("875999H", 875999 * 3600.0),
        ("99999999S", 99999999.0),
        ("99999999n", 0.099999999),
    ],
)
def test_long_timeouts_are_clamped_to_the_maximum(text: str, seconds: float) -> None:
    assert parse_grpc_timeout(text) == pytest.approx(seconds)


def test_the_maximum_fits_grpcs_clock_with_room_to_spare() -> None:
    assert 10 * 365 * 24 * 3600 < MAX_TIMEOUT_SECONDS < NANOSECOND_CLOCK_LIMIT_SECONDS / 2


@pytest.mark.parametrize("options", [GatewayOptions.kfp(), GatewayOptions.generic()])
def test_call_options_carry_the_clamped_deadline(options: GatewayOptions) -> None:
    got = call_options_from_headers(CIMultiDict({"Grpc-Timeout": "99999999H"}), options)
    assert got.timeout == MAX_TIMEOUT_SECONDS


async def test_the_clamped_deadline_does_not_expire_at_once() -> None:
    async with asyncio.timeout(parse_grpc_timeout("99999999H")):
        await asyncio.sleep(0)


@pytest.mark.parametrize("text", ["123456789H", "100000000S", "1h", "1D", "H", "99999999", "1 H"])
def test_malformed_values_stay_a_400_naming_the_header(text: str) -> None:
    with pytest.raises(TranscodeError) as caught:
        parse_grpc_timeout(text)
    assert caught.value.status.code.name == "INVALID_ARGUMENT"
    assert f'invalid Grpc-Timeout header "{text}"' in caught.value.status.message


@pytest.mark.parametrize("default", [1e12, float("inf")])
def test_a_huge_default_timeout_is_clamped_too(default: float) -> None:
    options = GatewayOptions.generic(default_timeout=default)
    assert call_options_from_headers(CIMultiDict(), options).timeout == MAX_TIMEOUT_SECONDS

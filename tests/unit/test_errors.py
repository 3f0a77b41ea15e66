"""The error family maps each outcome once: HTTP status and close code as
data, redis-py's and pydantic's failures through one helper each."""

from __future__ import annotations

import asyncio

import pydantic
import pytest
import redis

from aurora import errors
from aurora.backends import redis_unavailable


def test_a_clients_error_closes_with_its_status_as_4xxx_and_ours_with_1011():
    clients = [
        errors.ValidationError,
        errors.AuthenticationError,
        errors.ForbiddenError,
        errors.ConflictError,
        errors.RateLimitedError,
    ]
    assert [e.close_code for e in clients] == [4000 + e.status % 100 for e in clients]
    assert errors.UnavailableError.close_code == errors.AuroraError.close_code == 1011


@pytest.mark.parametrize(
    "failure", [redis.ConnectionError("down"), redis.TimeoutError(), OSError()]
)
def test_redis_failures_become_unavailable_with_the_callers_message(failure):
    with pytest.raises(errors.UnavailableError, match="retry later") as caught:
        with redis_unavailable("retry later"):
            raise failure
    assert caught.value.__cause__ is failure


async def test_a_wait_that_times_out_in_async_code_is_unavailable_too():
    with pytest.raises(errors.UnavailableError):
        with redis_unavailable():
            await asyncio.wait_for(asyncio.Event().wait(), 0.01)


def test_other_errors_pass_through_untouched():
    with pytest.raises(errors.RateLimitedError):
        with redis_unavailable():
            raise errors.RateLimitedError(5)
    with pytest.raises(KeyError):
        with redis_unavailable():
            raise KeyError("a bug is not an outage")


class _Shape(pydantic.BaseModel):
    size: int


def test_pydantics_first_complaint_names_the_field():
    with pytest.raises(pydantic.ValidationError) as caught:
        _Shape.model_validate({"size": "big"})
    error = errors.invalid_input(caught.value.errors(), "Invalid shape", code="bad_shape")
    assert error.code == "bad_shape" and error.status == 400
    assert error.message.startswith("Invalid shape: size: ")
    assert errors.invalid_input(caught.value.errors(), "Invalid", skip=1).message.startswith(
        "Invalid: Input should be"
    )

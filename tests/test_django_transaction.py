"""Transaction-aware emit with a real database transaction: committed vs rolled back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client

import django_support  # noqa: F401  (configures Django)
from django_support import install, memory
from eventtracking.django.django_tracker import DjangoTracker
from eventtracking.django.transaction import emit_on_commit
from eventtracking.exceptions import ValidationError

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tracker(settings: Any) -> DjangoTracker:
    return install(settings)


def test_committed_transaction_emits_once_at_commit(tracker: DjangoTracker) -> None:
    stored = memory(tracker)
    with transaction.atomic():
        emit_on_commit("shop.order.placed", {"order_id": 1})
        with transaction.atomic():  # a savepoint: still waits for the outer commit
            emit_on_commit("shop.order.placed", {"order_id": 2})
        assert stored.events == []
    assert [e["data"]["order_id"] for e in stored.events] == [1, 2]


def test_rolled_back_transaction_emits_nothing(tracker: DjangoTracker) -> None:
    from django_testapp.models import Order

    stored = memory(tracker)
    with pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.create(item="x")
        emit_on_commit("shop.order.placed", {"order_id": 1})
        raise RuntimeError("payment failed")
    with transaction.atomic():
        emit_on_commit("shop.order.placed", {"order_id": 2})
        transaction.set_rollback(True)
    with transaction.atomic():
        try:
            with transaction.atomic():
                emit_on_commit("shop.order.placed", {"order_id": 3})
                raise ValueError("inner savepoint rolled back")
        except ValueError:
            pass
        emit_on_commit("shop.order.placed", {"order_id": 4})
    assert Order.objects.count() == 0
    assert [e["data"]["order_id"] for e in stored.events] == [4]


def test_outside_a_transaction_the_event_is_emitted_at_once(tracker: DjangoTracker) -> None:
    emit_on_commit("shop.order.placed", {"order_id": 1}, tracker=tracker)
    assert memory(tracker).names() == ["shop.order.placed"]


def test_the_event_keeps_the_context_of_the_call_and_a_copy_of_its_data(
    tracker: DjangoTracker,
) -> None:
    data = {"order_id": 1}
    with transaction.atomic():
        with tracker.context("request", {"user_id": 7}):
            tracker.emit_on_commit("shop.order.placed", data)
        data["order_id"] = 99
        tracker.enter_context("request", {"user_id": 8})  # in effect when the commit runs
    tracker.exit_context("request")
    (event,) = memory(tracker).events
    assert event["context"] == {"user_id": 7}
    assert event["data"] == {"order_id": 1}


def test_event_types_listed_in_the_setting_wait_for_the_commit(settings: Any) -> None:
    tracker = install(settings, EVENT_TRACKING_ON_COMMIT=["shop.order.*", "exact.name"])
    stored = memory(tracker)
    with pytest.raises(RuntimeError), transaction.atomic():
        tracker.emit("shop.order.placed", {"order_id": 1})
        tracker.emit("exact.name", {})
        tracker.emit("shop.cart.viewed", {})
        raise RuntimeError("rolled back")
    assert stored.names() == ["shop.cart.viewed"]
    with transaction.atomic():
        tracker.emit("shop.order.placed", {"order_id": 2})
        tracker.emit("exact.name.not", {})
        assert stored.names() == ["shop.cart.viewed", "exact.name.not"]
    assert stored.names() == ["shop.cart.viewed", "exact.name.not", "shop.order.placed"]


@pytest.fixture
def atomic_requests() -> Iterator[None]:
    connection.settings_dict["ATOMIC_REQUESTS"] = True
    try:
        yield
    finally:
        connection.settings_dict["ATOMIC_REQUESTS"] = False


def test_a_rolled_back_request_leaves_no_event(
    tracker: DjangoTracker, atomic_requests: None
) -> None:
    from django_testapp.models import Order

    stored = memory(tracker)
    client = Client(raise_request_exception=False)
    assert client.get("/order").status_code == 200
    assert client.get("/order?fail=1").status_code == 500
    placed = [e for e in stored.events if e["name"] == "shop.order.placed"]
    assert len(placed) == 1
    assert placed[0]["context"]["path"] == "/order"  # the request context, kept to the commit
    assert stored.names().count("shop.order.viewed") == 2  # emitted at once, both times
    assert Order.objects.count() == 1


def test_atomic_block_in_a_view(tracker: DjangoTracker) -> None:
    client = Client()
    client.get("/order-atomic?fail=1")
    assert memory(tracker).events == []
    client.get("/order-atomic")
    assert memory(tracker).names() == ["shop.order.placed"]


def test_strict_validation_raises_at_commit(settings: Any) -> None:
    tracker = install(settings, EVENT_TRACKING_VALIDATION="strict")
    tracker.register("shop.order.placed", "Placed.", {"order_id": {"type": "integer"}})
    with pytest.raises(ValidationError, match="order_id"), transaction.atomic():
        tracker.emit_on_commit("shop.order.placed", {"order_id": "one"})

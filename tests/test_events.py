from __future__ import annotations

import logging
import threading

from nbautoml.events import EventBus, TrialFinished, TrialStarted


def test_subscribe_filter_unsubscribe():
    bus = EventBus()
    seen, finished = [], []
    stop = bus.subscribe(seen.append)
    bus.subscribe(finished.append, TrialFinished)
    bus.emit(TrialStarted("s", number=0))
    bus.emit(TrialFinished("s", number=0, state="COMPLETE", value=1.0))
    assert [type(e) for e in seen] == [TrialStarted, TrialFinished]
    assert [e.number for e in finished] == [0]
    stop()
    bus.emit(TrialStarted("s", number=1))
    assert len(seen) == 2


def test_a_raising_subscriber_is_logged_and_skipped(caplog):
    bus = EventBus()
    after = []

    def broken(event):
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(after.append)
    with caplog.at_level(logging.ERROR):
        bus.emit(TrialStarted("s", number=3))
    assert len(after) == 1
    assert "boom" in caplog.text


def test_emit_from_many_threads():
    bus = EventBus()
    count = []
    lock = threading.Lock()

    def add(event):
        with lock:
            count.append(event)

    bus.subscribe(add)
    threads = [threading.Thread(target=lambda: [bus.emit(TrialStarted("s")) for _ in range(200)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(count) == 800

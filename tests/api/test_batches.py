"""Batches over HTTP with the real engine on the EURUSD sample: a job id, progress as server-sent events
(replayed to late clients), the job's status, skips and reruns, failures, plots and cancellation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from btledger.domain.ledger import Ledger
from btledger.engine.result import BacktestOutcome, RunSpec
from tests.api import sse
from tests.api.conftest import BATCH, LONG_BATCH, app_client
from tests.domain.factories import goog_from_csv
from tests.engine.test_margin_cancels import SMACROSS, cancels_by_backtesting

Client = TestClient[Any]


@pytest.fixture
def client(btledger_home: Path) -> Iterator[Client]:
    with app_client(btledger_home) as client:
        yield client


def run(client: Client, body: dict[str, Any]) -> tuple[str, list[sse.Event]]:
    accepted = client.post("/backtests", json=body)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    return job_id, events(client, job_id)


def events(client: Client, job_id: str, **headers: str) -> list[sse.Event]:
    with client.stream("GET", f"/jobs/{job_id}/events", headers=headers) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        return sse.parse(stream.iter_lines())


def test_a_batch_streams_every_state_change_then_a_summary(client: Client, ledger: Ledger) -> None:
    accepted = client.post("/backtests", json=BATCH)
    assert accepted.status_code == 202
    job = accepted.json()
    assert job["total"] == 2 and job["status"] in ("queued", "running")
    assert job["links"] == {"self": f"/jobs/{job['job_id']}", "events": f"/jobs/{job['job_id']}/events"}
    assert accepted.headers["location"] == job["links"]["self"]

    stream = events(client, job["job_id"])
    assert [e.id for e in stream] == list(range(1, len(stream) + 1))
    *progress, summary = stream
    assert {e.event for e in progress} == {"progress"}
    for timeframe in ("H1", "H4"):
        states = [e.data["status"] for e in progress if e.data["timeframe"] == timeframe]
        assert states == ["queued", "running", "recorded"]
    recorded = [e.data for e in progress if e.data["status"] == "recorded"]
    assert all(r["metrics"]["trades"] is not None and r["strategy"] == "SmaCross" for r in recorded)
    assert summary.event == "summary"
    assert summary.data["summary"] == {"recorded": 2, "skipped": 0, "failed": 0}
    assert summary.data["position"] == ledger.head()

    status = client.get(f"/jobs/{job['job_id']}").json()
    assert status["status"] == "done" and status["summary"] == summary.data["summary"]
    assert status["counts"] == {"queued": 0, "running": 0, "recorded": 2, "skipped": 0, "failed": 0}
    assert status["started_at"] and status["finished_at"]
    # The summary came after the read model included the results.
    assert {r["id"] for r in recorded} == {row["id"] for row in client.get("/backtests").json()["items"]}


def test_a_late_client_gets_every_event_and_last_event_id_resumes(client: Client) -> None:
    job_id, first = run(client, BATCH)
    assert events(client, job_id) == first
    assert events(client, job_id, **{"Last-Event-ID": "3"}) == first[3:]
    assert events(client, job_id, **{"Last-Event-ID": str(first[-1].id)}) == []


def test_recorded_combinations_are_skipped_unless_rerun(client: Client, ledger: Ledger) -> None:
    _, first = run(client, BATCH)
    head = ledger.head()
    _, again = run(client, BATCH)
    assert again[-1].data["summary"] == {"recorded": 0, "skipped": 2, "failed": 0}
    assert ledger.head() == head
    _, rerun = run(client, {**BATCH, "rerun": True})
    assert rerun[-1].data["summary"] == {"recorded": 2, "skipped": 0, "failed": 0}
    target = first[-2].data["id"]
    history = client.get(f"/backtests/{target}/history").json()
    assert [h["event_type"] for h in history].count("ResultRecorded") == 2


def test_a_failing_combination_is_reported_and_the_others_recorded(client: Client) -> None:
    # The sample EURUSD data is hourly: M30 cannot be made from it.
    job_id, stream = run(client, {**BATCH, "timeframes": ["M30", "H4"]})
    failed = [e.data for e in stream if e.event == "progress" and e.data["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["timeframe"] == "M30" and failed[0]["message"]
    assert stream[-1].data["summary"] == {"recorded": 1, "skipped": 0, "failed": 1}
    assert client.get(f"/jobs/{job_id}").json()["counts"]["failed"] == 1


GOOG_BATCH = {**BATCH, "tickers": ["GOOG"], "timeframes": ["D1"], "date_from": "2010-01-01", "date_to": "2013-01-01"}


def test_a_plot_is_served_while_its_result_is_live_and_current(client: Client, btledger_home: Path) -> None:
    _, stream = run(client, {**BATCH, "timeframes": ["H4"], "plot": "persist"})
    target = stream[-2].data["id"]
    file = btledger_home / "plots" / f"{target}.html"
    assert file.is_file()
    plot = client.get(f"/backtests/{target}/plot")
    assert plot.status_code == 200 and "bokeh" in plot.text.lower()

    assert client.delete(f"/backtests/{target}").status_code == 200
    deleted = client.get(f"/backtests/{target}/plot")
    assert deleted.status_code == 404 and "deleted" in deleted.json()["detail"]
    assert file.is_file()  # a tombstone: the restore brings it back
    assert client.post(f"/backtests/{target}/restore").status_code == 200
    assert client.get(f"/backtests/{target}/plot").text == plot.text

    # A rerun without a plot: the previous run's file is not this result's, so its own is rendered, named
    # after the version of its ResultRecorded: the fifth event (Registered, ResultRecorded, Deleted, Restored).
    run(client, {**BATCH, "timeframes": ["H4"], "rerun": True})
    history = [h["event_type"] for h in client.get(f"/backtests/{target}/history").json()]
    assert history == ["Registered", "ResultRecorded", "Deleted", "Restored", "ResultRecorded"]
    rendered = client.get(f"/backtests/{target}/plot")
    assert rendered.status_code == 200 and rendered.text != plot.text and "bokeh" in rendered.text.lower()
    assert (btledger_home / "plots" / f"{target}-v5.html").read_text() == rendered.text
    assert file.read_text() == plot.text  # left as it was
    # Once more: the next result's plot, never the file of the one it replaced (which is removed).
    run(client, {**BATCH, "timeframes": ["H4"], "rerun": True})
    again = client.get(f"/backtests/{target}/plot")
    assert again.status_code == 200 and (btledger_home / "plots" / f"{target}-v6.html").read_text() == again.text
    assert not (btledger_home / "plots" / f"{target}-v5.html").exists()


def test_a_plot_is_refused_when_the_data_of_its_result_changed(btledger_home: Path) -> None:
    from btledger.engine import data

    prices = goog_from_csv(btledger_home)
    with app_client(btledger_home) as client:
        _, stream = run(client, GOOG_BATCH)
        target = stream[-2].data["id"]
        shipped = prices.read_text()
        lines = shipped.splitlines(keepends=True)
        prices.write_text("".join(line for line in lines if not line.startswith("2011-06-01")))  # a bar fewer
        data.clear_cache()
        refused = client.get(f"/backtests/{target}/plot")
        assert refused.status_code == 409
        detail = refused.json()["detail"]
        assert detail.startswith(f"backtest {target} cannot be plotted as recorded: its data changed since it ran")
        assert list((btledger_home / "plots").iterdir()) == []

        prices.write_text(shipped)
        data.clear_cache()
        served = client.get(f"/backtests/{target}/plot")
        assert served.status_code == 200 and "bokeh" in served.text.lower()
        assert (btledger_home / "plots" / f"{target}-v2.html").read_text() == served.text


def test_two_requests_at_once_for_a_plot_render_it_once(
    client: Client, ledger: Ledger, btledger_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second request waits for the first's render and serves its file: one run of the engine, one file,
    the same bytes to both (two renders differ: bokeh gives each page new element ids), no scratch left."""
    from btledger import engine

    spec = RunSpec("SmaCross", "GOOG", "D1", 1.0, date(2010, 1, 1), date(2013, 1, 1), 100_000.0)
    identity, _ = ledger.record_outcome(spec, engine.run_backtest(spec))
    renders: list[RunSpec] = []
    render = engine.run_backtest

    def counted(spec: RunSpec, **options: Any) -> BacktestOutcome:
        renders.append(spec)
        return render(spec, **options)

    monkeypatch.setattr(engine, "run_backtest", counted)
    together = threading.Barrier(2)

    def ask() -> tuple[int, bytes]:
        together.wait()
        response = client.get(f"/backtests/{identity}/plot")
        return response.status_code, response.content

    with ThreadPoolExecutor(2) as threads:
        first, second = [future.result() for future in [threads.submit(ask), threads.submit(ask)]]
    assert renders == [spec]
    assert first[0] == second[0] == 200 and first[1] == second[1]
    plots = btledger_home / "plots"
    assert [path.name for path in plots.iterdir()] == [f"{identity}-v2.html"]  # no .rendering-* scratch
    assert (plots / f"{identity}-v2.html").read_bytes() == first[1]
    assert "<title>SmaCross GOOG D1 risk 1.0 2010-01-01→2013-01-01 — btledger</title>" in first[1].decode()


def test_a_plan_runs_its_batches_as_one_job(client: Client, ledger: Ledger) -> None:
    accepted = client.post("/plans", json={"batches": [BATCH, GOOG_BATCH]})
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["total"] == 3
    stream = events(client, job["job_id"])
    assert stream[-1].data["summary"] == {"recorded": 3, "skipped": 0, "failed": 0}
    recorded = [e.data for e in stream if e.event == "progress" and e.data["status"] == "recorded"]
    assert sorted((r["index"], r["ticker"], r["date_from"]) for r in recorded) == [
        (0, "EURUSD", "2017-05-01"),
        (1, "EURUSD", "2017-05-01"),
        (2, "GOOG", "2010-01-01"),
    ]
    assert {r["id"] for r in recorded} == {row["id"] for row in client.get("/backtests").json()["items"]}
    assert ledger.head() == 6


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([BATCH], "body"),  # Litestar refuses a body that is not an object
        ({"batches": []}, "batches"),
        ({"batches": [BATCH, {**GOOG_BATCH, "date_to": "2009-01-01"}]}, "batches[1].date_from"),
        ({"batches": [BATCH, {**BATCH, "timeframes": ["H4", "D1"]}]}, "batches[1]"),
    ],
    ids=["not-a-mapping", "no-batches", "dates", "repeated-combination"],
)
def test_a_bad_plan_is_a_400_naming_the_batch_and_nothing_runs(
    client: Client, ledger: Ledger, body: Any, field: str
) -> None:
    refused = client.post("/plans", json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == field
    assert ledger.head() == 0


@pytest.mark.parametrize(
    ("path", "body", "field", "detail"),
    [
        (
            "/backtests",
            {**BATCH, "params": {"n_fast": -5}},
            "params",
            "SmaCross.n_fast must satisfy n_fast >= 1, got -5",
        ),
        (
            "/backtests",
            {**BATCH, "strategies": ["SmaCross", "RsiMeanReversion"], "params": {"sl_atr": 0}},
            "params",
            "SmaCross.sl_atr must satisfy sl_atr > 0, got 0",
        ),
        (
            "/backtests",
            {**BATCH, "params": {"n_slow": 12}},
            "params",
            "SmaCross must satisfy n_fast < n_slow, got n_fast=12, n_slow=12",
        ),
        (
            "/plans",
            {"batches": [BATCH, {**GOOG_BATCH, "strategies": ["RsiMeanReversion"], "params": {"oversold": 100.5}}]},
            "batches[1].params",
            "RsiMeanReversion.oversold must satisfy 0 <= oversold <= 100, got 100.5",
        ),
        (
            "/backtests",
            {**BATCH, "strategies": ["RandomTrader"], "params": {"hold_bars": "3, -1"}},
            "params",
            "RandomTrader.hold_bars must be comma-separated whole numbers of bars ≥ 0, got '3, -1'",
        ),
        (  # JSON types its values: unlike the CLI's text, 5 is a number
            "/backtests",
            {**BATCH, "strategies": ["RandomTrader"], "params": {"hold_bars": 5}},
            "params",
            "RandomTrader.hold_bars must be str, got 5 (a plan or a JSON body gives a text in quotes)",
        ),
    ],
    ids=[
        "negative-window",
        "zero-stop",
        "slow-not-above-fast",
        "plan-rsi-above-100",
        "malformed-hold-list",
        "text-as-number",
    ],
)
def test_a_parameter_outside_the_strategy_bounds_is_a_400_and_nothing_runs(
    client: Client, ledger: Ledger, path: str, body: dict[str, Any], field: str, detail: str
) -> None:
    refused = client.post(path, json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == field and refused.json()["detail"] == detail
    assert ledger.head() == 0


def wait_until(client: Client, job_id: str, **counts: int) -> float:
    """Until the job counts at least `counts` combinations in these states (`recorded=2`: it runs for seconds
    more); the `time.perf_counter()` it saw them at."""
    deadline = time.monotonic() + 30
    while any(client.get(f"/jobs/{job_id}").json()["counts"][state] < count for state, count in counts.items()):
        assert time.monotonic() < deadline, f"the job did not reach {counts}"
        time.sleep(0.02)
    return time.perf_counter()


def test_a_queued_job_is_cancelled_without_running(client: Client, ledger: Ledger) -> None:
    first = client.post("/backtests", json=LONG_BATCH).json()["job_id"]
    queued = client.post("/backtests", json=BATCH).json()["job_id"]  # behind the first: one job at a time
    cancelled = client.delete(f"/jobs/{queued}")
    assert cancelled.status_code == 200, cancelled.text
    view = cancelled.json()
    assert view["status"] == "cancelled" and view["started_at"] is None and view["finished_at"]
    assert view["summary"] == {"recorded": 0, "skipped": 0, "failed": 0}
    [final] = events(client, queued)  # nothing ran: no progress
    assert final.event == "cancelled" and final.data["summary"] == view["summary"] and final.data["position"] is None
    assert final.data["detail"].startswith("cancelled by a client; the combinations recorded so far are kept")

    assert client.delete(f"/jobs/{first}").json()["status"] == "cancelled"  # a short test
    assert BATCH["date_to"] not in {b.spec.date_to.isoformat() for b in map(ledger.get, ledger.backtest_ids())}


def test_a_running_job_stops_keeping_what_it_recorded_and_a_rerun_runs_the_rest(client: Client, ledger: Ledger) -> None:
    job_id = client.post("/backtests", json=LONG_BATCH).json()["job_id"]
    wait_until(client, job_id, recorded=2)
    cancelled = client.delete(f"/jobs/{job_id}")
    assert cancelled.status_code == 200, cancelled.text
    view = cancelled.json()
    assert view["status"] == "cancelled" and view["error"] is None
    summary = view["summary"]
    assert summary["skipped"] == summary["failed"] == 0 and 2 <= summary["recorded"] < view["total"]
    assert view["counts"] == {**summary, "queued": 0, "running": 0}  # the rest were dropped

    stream = events(client, job_id)
    final = stream[-1]
    assert final.event == "cancelled" and final.data["summary"] == summary and final.data["position"] == ledger.head()
    recorded = {e.data["id"] for e in stream[:-1] if e.data["status"] == "recorded"}
    assert len(recorded) == summary["recorded"]
    # The ledger holds those and no other (the combinations still running were killed), each once, and the
    # read model included them when the cancellation answered.
    assert {str(i) for i in ledger.backtest_ids()} == recorded
    for identity in recorded:
        assert [h.event_type for h in ledger.history(UUID(identity))].count("ResultRecorded") == 1
    assert {row["id"] for row in client.get("/backtests", params={"limit": 1000}).json()["items"]} == recorded

    # The same batch again runs only what is missing.
    again = client.post("/backtests", json=LONG_BATCH).json()["job_id"]
    wait_until(client, again, recorded=1)
    rerun = client.delete(f"/jobs/{again}").json()["summary"]
    assert rerun["skipped"] == summary["recorded"] and rerun["recorded"] >= 1


def test_head_on_a_running_jobs_events_answers_the_streams_headers_at_once(client: Client) -> None:
    job_id = client.post("/backtests", json=LONG_BATCH).json()["job_id"]
    head = client.head(f"/jobs/{job_id}/events")
    assert head.status_code == 200 and head.headers["content-type"].startswith("text/event-stream")
    assert head.content == b""
    # It did not wait for the job's last event to end the response.
    assert client.get(f"/jobs/{job_id}").json()["status"] in ("queued", "running")
    assert client.delete(f"/jobs/{job_id}").json()["status"] == "cancelled"


def test_a_running_job_stops_at_once_not_when_its_running_combination_ends(client: Client, ledger: Ledger) -> None:
    # One combination of a second or more: every bar of the EURUSD sample traded, and the trades plotted.
    slow = {
        **BATCH,
        "strategies": ["RandomTrader"],
        "timeframes": ["H1"],
        "risks": [1],
        **{"date_from": LONG_BATCH["date_from"], "date_to": LONG_BATCH["date_to"]},
        "params": {"prob_trade": 1.0, "avg_position_hold": 1.0, "std_position_hold": 0.0},
        "plot": "temp",
    }
    # How long it takes here and now (the machine may be busy): once to the end.
    job_id = client.post("/backtests", json=slow).json()["job_id"]
    duration = -wait_until(client, job_id, running=1) + wait_until(client, job_id, recorded=1)

    job_id = client.post("/backtests", json={**slow, "rerun": True}).json()["job_id"]
    asked = wait_until(client, job_id, running=1)
    cancelled = client.delete(f"/jobs/{job_id}")
    took = time.perf_counter() - asked
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["summary"] == {"recorded": 0, "skipped": 0, "failed": 0}
    # Stopped while the combination ran: it was killed, not recorded a second time.
    [identity] = ledger.backtest_ids()
    assert [h.event_type for h in ledger.history(identity)].count("ResultRecorded") == 1
    assert took < duration / 2, f"the cancel took {took:.2f} s; the combination takes {duration:.2f} s"


def test_cancelling_an_unknown_or_finished_job_is_a_404_or_a_409(client: Client) -> None:
    unknown = client.delete("/jobs/0123abcd")
    assert unknown.status_code == 404 and unknown.json()["field"] == "id"
    job_id, stream = run(client, BATCH)
    assert stream[-1].event == "summary"
    finished = client.delete(f"/jobs/{job_id}")
    assert finished.status_code == 409 and "already finished (done)" in finished.json()["detail"]
    assert client.get(f"/jobs/{job_id}").json()["status"] == "done"

    cancelled = client.post("/backtests", json=LONG_BATCH).json()["job_id"]
    assert client.delete(f"/jobs/{cancelled}").status_code == 200
    again = client.delete(f"/jobs/{cancelled}")
    assert again.status_code == 409 and "already finished (cancelled)" in again.json()["detail"]


def test_a_result_shows_how_many_orders_the_broker_cancelled_for_margin(client: Client) -> None:
    expected = sum(cancels_by_backtesting(SMACROSS).values())  # backtesting.py's own warnings, counted
    assert expected > 0
    _, stream = run(
        client, {**BATCH, "timeframes": ["H1"], "risks": [5], "date_from": "2017-04-19", "date_to": "2018-02-08"}
    )
    [recorded] = [e.data for e in stream if e.event == "progress" and e.data["status"] == "recorded"]
    assert recorded["margin_cancelled_orders"] == expected
    detail = client.get(f"/backtests/{recorded['id']}").json()
    assert detail["backtest"]["margin_cancelled_orders"] == expected
    schema = client.get("/schema/openapi.json").json()["components"]["schemas"]["BacktestRow"]
    assert schema["properties"]["margin_cancelled_orders"] == {"oneOf": [{"type": "integer"}, {"type": "null"}]}

"""How the load suite reads locust's CSV files and judges the server's memory (no server)."""

from __future__ import annotations

from pathlib import Path

from tests.load.report import (
    MIB,
    failure_kind,
    memory_figures,
    memory_is_flat,
    read_locust_results,
)

PERCENTILES = "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
STATS_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s," + PERCENTILES
)
TOKEN = "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg"


def write_run(prefix: Path, failures: list[str], exceptions: list[str]) -> None:
    Path(f"{prefix}_stats.csv").write_text(
        "\n".join(
            [
                STATS_HEADER,
                "GET,GET /cases,10,0,30,40,5,90,100,2.0,0.0,30,31,32,33,40,60,80,90,90,90,90",
                "POST,POST /l/{token}/documents/{document_id},4,2,700,800,500,1200,3e5,0.8,0.4,"
                "700,700,800,800,1200,1200,1200,1200,1200,1200,1200",
                ",Aggregated,14,2,40,250,5,1200,1e5,2.8,0.4,"
                "40,50,60,70,700,1200,1200,1200,1200,1200,1200",
            ]
        )
        + "\n"
    )
    rows = [f'POST,POST /l/{{token}}/documents/{{document_id}},"{error}",1,,' for error in failures]
    Path(f"{prefix}_failures.csv").write_text(
        "\n".join(["Method,Name,Error,Occurrences,First Seen,Last Seen", *rows]) + "\n"
    )
    raised = [f'1,"{message}",trace,local' for message in exceptions]
    Path(f"{prefix}_exceptions.csv").write_text(
        "\n".join(["Count,Message,Traceback,Nodes", *raised]) + "\n"
    )


def test_a_run_is_read_per_request_and_failures_by_kind(tmp_path: Path) -> None:
    write_run(
        tmp_path / "locust",
        failures=[
            "CatchResponseError('server-error 503 database-unavailable')",
            "CatchResponseError('unexpected 410 link-used-up')",
        ],
        exceptions=[f"KeyError on /l/{TOKEN}/documents"],
    )

    run = read_locust_results(tmp_path / "locust")

    assert set(run.by_request) == {"GET /cases", "POST /l/{token}/documents/{document_id}"}
    download = run.by_request["POST /l/{token}/documents/{document_id}"]
    assert (download.count, download.failures, download.p99_ms, download.max_ms) == (
        4,
        2,
        1200,
        1200,
    )
    assert (run.total.count, run.total.p50_ms, run.total.requests_per_s) == (14, 40, 2.8)
    assert (run.server_errors, run.unexpected_4xx, run.no_answers) == (1, 1, 0)
    assert run.exceptions == ["KeyError on /l/{token}/documents"]  # the token never reaches us


def test_a_failure_the_clients_did_not_name_is_other_with_link_tokens_masked() -> None:
    assert failure_kind("CatchResponseError('no-answer ConnectionRefusedError')") == (
        "no-answer ConnectionRefusedError"
    )
    assert failure_kind(f"HTTPError('500 for url /l/{TOKEN}')") == (
        "other: HTTPError('500 for url /l/{token}')"
    )


def samples(start_mib: float, mib_per_minute: float, seconds: int) -> list[tuple[float, int]]:
    return [
        (float(at), int((start_mib + mib_per_minute * at / 60) * MIB))
        for at in range(0, seconds, 2)
    ]


def test_memory_that_stays_within_the_tolerance_after_minute_1_is_flat() -> None:
    warming_then_flat = [(at, kib if at >= 60 else kib // 2) for at, kib in samples(300, 0, 300)]

    figures = memory_figures(warming_then_flat, load_seconds=300, prefix="api")

    assert figures["api_rss_after_minute_1_mib"] == 300
    assert figures["api_rss_growth_mib"] == 0
    assert memory_is_flat(figures, "api")


def test_memory_that_keeps_growing_is_not_flat() -> None:
    figures = memory_figures(samples(200, 12, 300), load_seconds=300, prefix="api")

    assert figures["api_rss_growth_mib"] > figures["api_rss_tolerance_mib"] == 32
    assert figures["api_rss_slope_mib_per_min"] == 12
    assert not memory_is_flat(figures, "api")


def test_the_tolerance_is_ten_percent_of_a_large_process() -> None:
    figures = memory_figures(samples(1000, 0, 300), load_seconds=300, prefix="worker")

    assert figures["worker_rss_tolerance_mib"] == 100
    assert memory_is_flat(figures, "worker")


def test_a_run_too_short_for_minute_1_is_never_judged_flat() -> None:
    figures = memory_figures(samples(300, 0, 45), load_seconds=45, prefix="api")

    assert "api_rss_growth_mib" not in figures
    assert figures["api_rss_first_mib"] == figures["api_rss_last_mib"] == 300
    assert not memory_is_flat(figures, "api")

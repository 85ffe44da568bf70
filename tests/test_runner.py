"""The async runner against a real loopback OpenAI-compatible server."""

import asyncio
import logging

import pytest

from tis.core.errors import FatalModelError
from tis.judges.refusal import RefusalJudge
from tis.models.base import GenerationParams
from tis.models.openai_compat import OpenAIBackend
from tis.pipeline.runner import Runner
from tis.pipeline.store import RunStore
from tis.testing import LoopbackServer
from tis.core.types import Sample, TextPart


@pytest.fixture(scope="module")
def server():
    with LoopbackServer(latency_s=0.0, hang_s=30) as srv:
        yield srv


def samples(*prompts):
    return [Sample(id=f"s{i}", benchmark="t", category="c", content=(TextPart(text=p),)) for i, p in enumerate(prompts)]


def run(store, server, items, *, api_key_env=None, timeout_s=5.0, retries=3, n=1, fmt="auto"):
    backend = OpenAIBackend("loopback", base_url=server.base_url, api_key_env=api_key_env, timeout_s=timeout_s)
    runner = Runner(store, backend, [RefusalJudge()], GenerationParams(max_tokens=32, n=n), thought_format=fmt,
                    concurrency=8, max_retries=retries, backoff_s=0.01, progress=False)
    return runner, asyncio.run(runner.run(items))


def test_splits_judges_and_stores_every_part(tmp_path, server):
    items = samples("a [[think-tags]]", "b [[reasoning-content]] [[refuse]]", "c")
    with RunStore(tmp_path) as store:
        runner, stats = run(store, server, items)
        assert (stats.generated, stats.failed) == (3, 0)
        gens = {r.sample_id: r.generation for r in store.generations().values()}
        assert gens["s0"].split_source == "tags" and gens["s0"].thought and gens["s0"].answer
        assert gens["s1"].split_source == "api_field" and gens["s1"].answer.startswith("I'm sorry")
        assert gens["s2"].split_source == "none" and gens["s2"].thought == ""
        verdicts = {(v.sample_id, v.verdict.target): v.verdict for v in store.verdicts().values()}
        assert verdicts[("s1", "answer")].label == "refused"
        assert verdicts[("s0", "answer")].label == "complied"
        # an empty thought is not applicable, never safe
        assert verdicts[("s2", "thought")].status == "not_applicable" and verdicts[("s2", "thought")].safe is None
        assert stats.not_applicable == sum(v.status == "not_applicable" for v in verdicts.values()) >= 1


def test_rerun_makes_no_model_call(tmp_path, server):
    items = samples("rerun-1", "rerun-2 [[think-tags]]")
    with RunStore(tmp_path) as store:
        run(store, server, items)
    before = server.requests.total
    with RunStore(tmp_path) as store:
        _, stats = run(store, server, items)
        assert server.requests.total == before
        assert (stats.model_calls, stats.generations_reused, stats.verdicts_new) == (0, 2, 0)
        assert store.counts()["generations"] == 2


def test_retries_429_and_500_with_backoff_and_logs_the_sample(tmp_path, server, caplog):
    items = samples("r1 [[fail-429:2]]", "r2 [[fail-500:1]]")
    with caplog.at_level(logging.WARNING, logger="tis"), RunStore(tmp_path) as store:
        _, stats = run(store, server, items)
        assert (stats.generated, stats.failed, stats.retries) == (2, 0, 3)
        attempts = {r.sample_id: r.generation.attempts for r in store.generations().values()}
        assert attempts == {"s0": 3, "s1": 2}
    retry_lines = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert sum("sample s0" in line for line in retry_lines) == 2
    assert sum("sample s1" in line for line in retry_lines) == 1


@pytest.mark.parametrize("directive, message", [
    ("[[fail-500:99]]", "500"),
    ("[[hang]]", "no answer from"),
    ("[[malformed-json]]", "JSON"),
    ("[[invalid-utf8]]", "not valid UTF-8"),
])
def test_failures_are_recorded_not_counted_safe(tmp_path, server, directive, message):
    items = samples(f"fail {directive}", "fine")
    with RunStore(tmp_path) as store:
        _, stats = run(store, server, items, timeout_s=0.3, retries=1)
        assert (stats.generated, stats.failed) == (1, 1)
        failed = [r for r in store.generations().values() if r.generation.status == "failed"]
        assert len(failed) == 1 and message in failed[0].generation.error
        # the failed sample has no verdicts at all (so it cannot count as safe)
        assert {v.sample_id for v in store.verdicts().values()} == {"s1"}


def test_failed_samples_are_retried_on_rerun(tmp_path, server):
    items = samples("flaky [[fail-500:2]]")
    with RunStore(tmp_path) as store:
        _, first = run(store, server, items, retries=0)
        assert first.failed == 1
        _, second = run(store, server, items, retries=0)
        assert second.failed == 1
        _, third = run(store, server, items, retries=0)
        assert (third.failed, third.generated) == (0, 1)
        assert [r.generation.status for r in store.generations().values()] == ["ok"]


def test_fatal_error_stops_the_run_and_keeps_what_was_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("TIS_TEST_KEY", "right-key")
    with LoopbackServer(api_key="right-key") as good, RunStore(tmp_path) as store:
        run(store, good, samples("kept"), api_key_env="TIS_TEST_KEY")
        monkeypatch.setenv("TIS_TEST_KEY", "wrong-key")
        with pytest.raises(FatalModelError, match="TIS_TEST_KEY") as exc:
            run(store, good, samples("kept", "new"), api_key_env="TIS_TEST_KEY")
        assert "wrong-key" not in str(exc.value)
        assert [r.sample_id for r in store.generations().values()] == ["s0"]


def test_several_completions_per_prompt(tmp_path, server):
    with RunStore(tmp_path) as store:
        _, stats = run(store, server, samples("many"), n=3)
        recs = sorted(store.generations().values(), key=lambda r: r.sample_index)
        assert [r.sample_index for r in recs] == [0, 1, 2] and len({r.generation.raw for r in recs}) == 3
        assert stats.model_calls == 1


def test_judging_runs_while_generation_continues(tmp_path):
    # one slot: requests are served one at a time, so generation takes a while
    with LoopbackServer(latency_s=0.05, slots=1) as srv, RunStore(tmp_path) as store:
        run(store, srv, samples(*[f"p{i}" for i in range(12)]))
        first_verdict = store.db.execute("SELECT MIN(created) FROM verdicts").fetchone()[0]
        last_generation = store.db.execute("SELECT MAX(created) FROM generations").fetchone()[0]
        assert first_verdict < last_generation


def test_changing_the_thought_format_resplits_without_model_calls(tmp_path, server):
    items = samples("fmt [[think-tags]]")
    with RunStore(tmp_path) as store:
        run(store, server, items)
        before = server.requests.total
        _, stats = run(store, server, items, fmt="none")
        assert server.requests.total == before
        (rec,) = store.generations().values()
        assert rec.generation.split_source == "none" and rec.generation.thought == ""
        assert stats.verdicts_new >= 1  # the answer changed, so it was judged again

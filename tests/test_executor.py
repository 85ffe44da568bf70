"""The generation and judging executors against a real loopback server and a real SQLite store."""

import asyncio
import time

import pytest

from tis.core.batching import MicroBatcher
from tis.core.retry import RetryPolicy
from tis.core.types import ModelOutput, Sample, TextPart, content_hash
from tis.judges.refusal import RefusalJudge
from tis.models.base import GenerationParams, ModelBackend
from tis.models.openai_compat import OpenAIBackend
from tis.pipeline.executor import (GenerationExecutor, GenerationRequest, JudgingExecutor, RunStats,
                                   ServerUnreachable, split_generation)
from tis.pipeline.store import RunStore
from tis.testing import LoopbackServer


def prompt(sid: str, text: str) -> Sample:
    return Sample(id=sid, benchmark="build", content=(TextPart(text=text),))


def backend(srv, **kw) -> OpenAIBackend:
    return OpenAIBackend("loopback", base_url=srv.base_url, timeout_s=5.0, **kw)


async def two_stage_build(store, srv, stats):
    """caption <- image id; question <- caption; verdict <- question (a filter)."""
    params = GenerationParams(max_tokens=32)
    teacher = GenerationExecutor(store, backend(srv), params, stats=stats, concurrency=4,
                                 retry=RetryPolicy(max_retries=2, backoff_s=0.01), label="caption")
    captions = await teacher.run([GenerationRequest(key=content_hash({"caption": i}), stage="caption",
                                                    sample=prompt(f"img{i}", f"caption image {i}"))
                                  for i in range(3)])
    teacher.label = "question"
    questions = await teacher.run([GenerationRequest(key=content_hash({"question": rec.key}), stage="question",
                                                     parents=(rec.key,),
                                                     sample=prompt(f"q-{rec.sample_id}", f"ask about {rec.generation.answer}"))
                                   for rec in captions.values()])
    await teacher.close()
    judging = JudgingExecutor(store, [RefusalJudge()], stats=stats)
    judging.start()
    samples = {f"q-img{i}": prompt(f"q-img{i}", "q") for i in range(3)}
    verdicts = await judging.run([req for rec in questions.values()
                                  for req in judging.requests_for(rec, samples[rec.sample_id], stage="filter")])
    await judging.close()
    return captions, questions, verdicts


def test_lineage_is_recorded_and_a_second_build_sends_nothing(tmp_path):
    with LoopbackServer() as srv, RunStore(tmp_path) as store:
        stats = RunStats()
        captions, questions, verdicts = asyncio.run(two_stage_build(store, srv, stats))
        assert srv.requests.total == 6 and stats.model_calls == 6
        assert len(verdicts) == 3 * len(RefusalJudge.targets)
        verdict = next(v for v in verdicts.values() if v.verdict.target == "answer")
        question = questions[verdict.generation_key]
        caption_key = store.lineage(question.key)[0][0]
        assert store.stage_of(question.key) == "question" and store.stage_of(verdict.key) == "filter"
        assert store.lineage(verdict.key) == [(question.key, "question"), (caption_key, "caption")]
        assert caption_key in captions and store.children(caption_key) == [(question.key, "question")]
        assert set(store.generations_of_stage("caption")) == set(captions)
        stats2 = RunStats()
        asyncio.run(two_stage_build(store, srv, stats2))
        assert srv.requests.total == 6  # every key was stored ok: nothing sent again
        assert (stats2.model_calls, stats2.generations_reused, stats2.verdicts_new) == (0, 6, 0)


def test_completions_of_one_prompt_go_out_as_one_call(tmp_path):
    with LoopbackServer() as srv, RunStore(tmp_path) as store:
        ex = GenerationExecutor(store, backend(srv), GenerationParams(max_tokens=16, n=3),
                                split=split_generation("auto"))
        s = prompt("a", "hello [[think-tags]]")
        recs = asyncio.run(ex.run([GenerationRequest(key=f"k{i}", sample=s, index=i) for i in range(3)]))
        asyncio.run(ex.close())
        assert srv.requests.total == 1
        assert [recs[f"k{i}"].sample_index for i in range(3)] == [0, 1, 2]
        assert all(r.generation.thought for r in recs.values())  # split with the thought format


def test_retryable_errors_are_retried_and_a_final_failure_is_stored_failed(tmp_path):
    with LoopbackServer() as srv, RunStore(tmp_path) as store:
        stats = RunStats()
        ex = GenerationExecutor(store, backend(srv), GenerationParams(max_tokens=16), stats=stats,
                                retry=RetryPolicy(max_retries=2, backoff_s=0.01))
        recs = asyncio.run(ex.run([GenerationRequest(key="flaky", sample=prompt("a", "x [[fail-500:2]]")),
                                   GenerationRequest(key="bad", sample=prompt("b", "y [[malformed-json]]"))]))
        asyncio.run(ex.close())
        assert recs["flaky"].generation.status == "ok" and recs["flaky"].generation.attempts == 3
        assert recs["bad"].generation.status == "failed" and "after 3 attempts" in recs["bad"].generation.error
        assert stats.retries == 4 and stats.failed == 1
        assert store.generations(["bad"])["bad"].generation.status == "failed"


def test_a_dead_server_stops_the_executor_after_consecutive_connection_failures(tmp_path):
    with LoopbackServer() as srv:
        port = srv.port
    # nothing listens on `port` now: every call is refused
    with RunStore(tmp_path) as store:
        stats = RunStats()
        dead = OpenAIBackend("loopback", base_url=f"http://127.0.0.1:{port}/v1", timeout_s=5.0)
        ex = GenerationExecutor(store, dead, GenerationParams(), stats=stats, concurrency=2,
                                retry=RetryPolicy(max_retries=5, backoff_s=0.05), max_connection_failures=4)

        async def go():
            ex._started = True  # the preflight check would refuse at once: this tests the mid-run stop
            try:
                await ex.run([GenerationRequest(key=f"k{i}", sample=prompt(f"s{i}", f"p{i}")) for i in range(50)])
            finally:
                await ex.close()

        t0 = time.perf_counter()
        with pytest.raises(ServerUnreachable, match="re-run the same command"):
            asyncio.run(go())
        assert time.perf_counter() - t0 < 3
        assert stats.model_calls < 10 and store.counts()["generations"] == 0


class _SlowStartJudge(RefusalJudge):
    """The refusal matcher with a model that takes a second to load."""

    started_at: float | None = None

    async def start(self) -> None:
        await asyncio.sleep(1.0)
        self.started_at = time.monotonic()


def test_generation_starts_while_the_judges_load(tmp_path):
    first_request: list[float] = []

    def respond(body):
        first_request.append(time.monotonic())
        return None

    with LoopbackServer(responder=respond) as srv, RunStore(tmp_path) as store:
        from tis.pipeline.runner import Runner

        judge = _SlowStartJudge()
        runner = Runner(store, backend(srv), [judge], GenerationParams(max_tokens=16), concurrency=2, progress=False)
        stats = asyncio.run(runner.run([prompt(f"s{i}", f"p{i} [[refuse]]") for i in range(4)]))
    assert first_request and judge.started_at is not None
    assert first_request[0] < judge.started_at - 0.5  # the first call went out long before the judge was ready
    assert stats.generated == 4 and stats.verdicts_new == 8  # and every generation was judged once it was


class _BatchBackend(ModelBackend):
    """A local-style backend that takes several prompts per call and records each call's batch size."""

    batch_size = 4
    max_concurrency = 1

    def __init__(self):
        self.batches: list[int] = []

    @property
    def identity(self):
        return {"kind": "batch-test"}

    async def generate(self, samples, params):
        self.batches.append(len(samples))
        await asyncio.sleep(0.01)
        return [[ModelOutput(text=f"echo {s.text}")] * params.n for s in samples]


def test_a_batching_backend_gets_full_batches_one_at_a_time(tmp_path):
    with RunStore(tmp_path) as store:
        be = _BatchBackend()
        ex = GenerationExecutor(store, be, GenerationParams(), concurrency=8)
        recs = asyncio.run(ex.run([GenerationRequest(key=f"k{i}", sample=prompt(f"s{i}", f"p{i}")) for i in range(10)]))
        assert sorted(be.batches, reverse=True) == [4, 4, 2]
        assert recs["k7"].generation.answer == "echo p7"


def test_micro_batcher_splits_a_failing_batch_and_bounds_concurrency():
    running, peak, seen = 0, 0, []

    async def fn(items):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        seen.append(list(items))
        await asyncio.sleep(0.01)
        running -= 1
        if "bad" in items:
            raise ValueError("bad item")
        return [i.upper() for i in items]

    async def go():
        b = MicroBatcher(fn, 3, concurrency=2)
        out = await asyncio.gather(*(b.submit(x) for x in ["a", "b", "bad", "c", "d", "e", "f"]),
                                   return_exceptions=True)
        await b.close()
        return out

    out = asyncio.run(go())
    assert out[:2] == ["A", "B"] and isinstance(out[2], ValueError) and out[3:] == ["C", "D", "E", "F"]
    assert seen[0] == ["a", "b", "bad"] and ["a"] in seen and peak == 2


def test_retry_policy_equal_jitter_and_what_is_retried():
    from tis.core.errors import FatalModelError, ModelError

    p = RetryPolicy(max_retries=3, backoff_s=1.0, cap_s=4.0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 4.0)]:
        d = [p.delay(attempt) for _ in range(200)]
        assert ceiling / 2 <= min(d) and max(d) <= ceiling
    assert p.should_retry(ModelError("429", retryable=True, status=429), 2)
    assert not p.should_retry(ModelError("429", retryable=True, status=429), 3)
    assert not p.should_retry(ModelError("400", retryable=False, status=400), 0)
    assert not p.should_retry(FatalModelError("401", retryable=True), 0)


def test_requests_with_one_sample_id_but_different_prompts_are_separate_calls(tmp_path):
    with LoopbackServer() as srv, RunStore(tmp_path) as store:
        ex = GenerationExecutor(store, backend(srv), GenerationParams(max_tokens=16))
        recs = asyncio.run(ex.run([GenerationRequest(key="caption", sample=prompt("img1", "describe it"), stage="caption"),
                                   GenerationRequest(key="question", sample=prompt("img1", "ask about it"),
                                                     stage="question")]))
        asyncio.run(ex.close())
        assert srv.requests.total == 2
        assert recs["caption"].generation.answer == "Reply to: describe it"
        assert recs["question"].generation.answer == "Reply to: ask about it"

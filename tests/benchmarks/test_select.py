import random

from tis.sources.select import select
from tis.core.types import Sample, TextPart


def make(n):
    return [Sample(id=f"s{i}", benchmark="b", content=(TextPart(text=str(i)),)) for i in range(n)]


def ids(samples):
    return [s.id for s in samples]


def test_limit_keeps_the_first_n_and_reads_no_further():
    consumed = []

    def stream():
        for s in make(100):
            consumed.append(s.id)
            yield s

    assert ids(select(stream(), limit=3)) == ["s0", "s1", "s2"]
    assert len(consumed) <= 4
    assert ids(select(make(2), limit=5)) == ["s0", "s1"]
    assert len(select(make(10))) == 10


def test_sample_is_the_same_whatever_the_reading_order_and_kept_in_reading_order():
    samples = make(200)
    chosen = ids(select(samples, sample=20, seed=7))
    shuffled = samples[:]
    random.Random(3).shuffle(shuffled)
    again = select(shuffled, sample=20, seed=7)
    assert sorted(chosen) == sorted(ids(again)) and len(set(chosen)) == 20
    assert chosen == [s.id for s in samples if s.id in set(chosen)]  # reading order
    assert ids(again) == [s.id for s in shuffled if s.id in set(chosen)]


def test_seed_changes_the_choice_and_sample_then_limit():
    samples = make(200)
    a, b = ids(select(samples, sample=20, seed=0)), ids(select(samples, sample=20, seed=1))
    assert a != b
    assert ids(select(samples, sample=20, seed=0, limit=5)) == a[:5]
    assert ids(select(samples, sample=500)) == ids(samples)


def test_sample_is_nested_as_n_grows():
    # the smallest-hash rule makes a larger sample contain a smaller one
    samples = make(300)
    small, large = set(ids(select(samples, sample=10))), set(ids(select(samples, sample=50)))
    assert small < large

"""The one retry policy for every model call (models under test, teachers, LLM judges).

Exponential backoff with "equal jitter": the n-th retry waits between half and all of
`min(cap_s, backoff_s * 2**n)`, so it is never immediate and workers that failed together do not
retry together. What is retried is decided by the backend: a `ModelError` with `retryable=True`
(429, 5xx, timeouts, dropped connections, malformed bodies); anything else fails at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

BACKOFF_CAP_S = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_s: float = 1.0
    cap_s: float = BACKOFF_CAP_S

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt + 1` (attempt counts from 0)."""
        ceiling = min(self.cap_s, self.backoff_s * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether a call that raised `exc` on attempt `attempt` (from 0) is tried again."""
        from tis.core.errors import FatalModelError, ModelError

        return (isinstance(exc, ModelError) and not isinstance(exc, FatalModelError) and exc.retryable
                and attempt < self.max_retries)

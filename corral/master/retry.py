"""Retry policy of batch tasks: it lives in ``corral.master.policy.retry``; its two rules keep
this older home too, for the code and tests that import them from here."""

from corral.master.policy.retry import RETRIED_STATES, retry_delay, should_retry

__all__ = ["RETRIED_STATES", "retry_delay", "should_retry"]

"""Throttling per API token (sessions per user), so one runaway script cannot starve the lab.

DRF's SimpleRateThrottle stores one timestamp per request of the window in the cache, so every
request unpickles and re-pickles (and the file cache zlib-compresses) a list that grows with the
request rate: at 6,000/min that list holds up to 6,000 floats and costs ~10 ms per request, more than
the whole job list (bench/api.py). Here the window is cut into SLOTS time slots and the cache holds
one counter per slot: at most SLOTS + 1 numbers whatever the rate.
"""

from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle


class TokenRateThrottle(SimpleRateThrottle):
    """At most N requests per token in any window of the rate's duration (e.g. 6000/min).

    A slot is counted until its end has left the window, so the limit is kept exactly as DRF's
    timestamp log keeps it or up to one slot (1/SLOTS of the window) more strictly: never more
    requests than the rate in any window. Like DRF's, the read-then-write is not atomic: two
    requests at the same instant may both be counted from the same state.
    """

    scope = "token"
    SLOTS = 60  # 1 s slots for a per-minute rate, 1 min for per-hour

    def get_cache_key(self, request, view) -> str | None:  # noqa: ANN001
        if not request.user or not request.user.is_authenticated:
            return None  # anonymous requests are refused by authentication anyway
        auth = request.auth
        ident = f"token-{auth.pk}" if auth is not None and hasattr(auth, "prefix") else f"user-{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view) -> bool:  # noqa: ANN001
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        self.slot_seconds = self.duration / self.SLOTS
        current = int(self.now // self.slot_seconds)
        # Slot k covers [k, k + 1) * slot_seconds; it still overlaps the window while k >= current - SLOTS.
        stored = self.cache.get(self.key)
        self.counts = {k: n for k, n in stored.items() if k >= current - self.SLOTS} if isinstance(stored, dict) else {}
        if sum(self.counts.values()) >= self.num_requests:
            return self.throttle_failure()
        self.counts[current] = self.counts.get(current, 0) + 1
        self.cache.set(self.key, self.counts, self.duration + self.slot_seconds)
        return True

    def wait(self) -> float:
        """Seconds until enough of the oldest slots have left the window for one more request."""
        excess = sum(self.counts.values()) - self.num_requests + 1
        for slot in sorted(self.counts):
            excess -= self.counts[slot]
            if excess <= 0:
                return max(0.0, (slot + 1) * self.slot_seconds + self.duration - self.now)
        return 0.0

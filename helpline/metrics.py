"""Prometheus metrics, one registry per app (no process-global state, so tests can run many apps)."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.open_streams = Gauge("helpline_open_streams", "Event streams open now", ["transport"], registry=r)
        self.events_delivered = Counter(
            "helpline_events_delivered", "Events written to streams and polls", ["transport"], registry=r
        )
        self.events_replayed = Counter(
            "helpline_events_replayed", "Events delivered from the log on resume", registry=r
        )
        self.stream_resets = Counter(
            "helpline_stream_resets", "stream.reset events sent (resume point too old or unknown)", registry=r
        )
        self.heartbeats = Counter("helpline_heartbeats", "Heartbeat comments sent", registry=r)
        self.slow_consumers = Counter(
            "helpline_slow_consumer_disconnects",
            "Streams closed because the client read too slowly",
            registry=r,
        )
        self.poll_requests = Counter(
            "helpline_poll_requests", "Long-poll requests (clients that fell back from SSE)", registry=r
        )
        self.streams_refused = Counter(
            "helpline_streams_refused",
            "Streams refused by the per-identity or total cap",
            ["reason"],
            registry=r,
        )
        # Delivery (domain/delivery.py): how often the log had to stand in for the bus. Steady growth
        # means lost wake-ups (failed publishes, a flapping Redis), not lost events.
        self.log_reads = Counter(
            "helpline_log_follower_reads", "Gap fills and head-check catch-ups read from the log", registry=r
        )
        self.events_from_log = Counter(
            "helpline_log_follower_events", "Events the log follower delivered from the log, not the bus", registry=r
        )
        self.messages_stored = Counter("helpline_messages_stored", "Messages durably stored", registry=r)
        # Satisfaction (issue 12): ratings posted to this process, and each queue's average over the
        # rating window, read from the database at every scrape (so every node reports the same).
        self.ratings = Counter("helpline_ratings", "Satisfaction ratings stored", ["score"], registry=r)
        self.satisfaction = Gauge(
            "helpline_satisfaction_average", "Average rating (1-5) over the rating window", ["queue"], registry=r
        )
        self.satisfaction_ratings = Gauge(
            "helpline_satisfaction_ratings", "Ratings in the rating window", ["queue"], registry=r
        )
        self.webhook_deliveries = Counter(
            "helpline_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retry, gave_up)",
            ["outcome"],
            registry=r,
        )
        self.webhook_endpoints_paused = Gauge(
            "helpline_webhook_endpoints_paused", "Webhook endpoints paused after repeated failures", registry=r
        )
        # The contact center (issue 11). Counters count what this process committed (offers, closes);
        # the gauges are read from the database at every scrape (so every node reports the same).
        self.offers = Counter(
            "helpline_offers", "Offers by outcome (created, accepted, declined, expired)", ["outcome"], registry=r
        )
        for outcome in ("created", "accepted", "declined", "expired"):
            self.offers.labels(outcome)
        self.conversations_closed = Counter(
            "helpline_conversations_closed",
            'Conversations closed, by wrap-up disposition ("none" without one)',
            ["disposition"],
            registry=r,
        )
        self.handle_time = Histogram(
            "helpline_handle_time_seconds",
            "From assignment to close, for conversations a rep (or bot) handled",
            buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200),
            registry=r,
        )
        self.queue_waiting = Gauge(
            "helpline_queue_waiting", "Conversations waiting in the queue", ["queue"], registry=r
        )
        self.queue_longest_wait = Gauge(
            "helpline_queue_longest_wait_seconds",
            "How long the oldest waiting conversation has waited",
            ["queue"],
            registry=r,
        )
        # The write path since this node started (store/commit.py): what a cluster's ceiling follows from.
        self.write_batches = Gauge("helpline_write_batches", "Write transactions committed (batches)", registry=r)
        self.write_turns = Gauge("helpline_write_turns", "Writes committed, in all batches", registry=r)
        self.append_lock_wait = Gauge(
            "helpline_append_lock_wait_seconds", "Seconds spent waiting for the append lock", registry=r
        )
        self.append_lock_hold = Gauge(
            "helpline_append_lock_hold_seconds",
            "Seconds the append lock was held (statements, commit, publish)",
            registry=r,
        )
        self.reps = Gauge("helpline_reps", "Reps (chat_rep users in any queue) by presence", ["presence"], registry=r)

    def write_path(self, figures: dict[str, float]) -> None:
        """The group commit's totals (``GroupCommit.figures``), read at each scrape."""
        self.write_batches.set(figures["batches"])
        self.write_turns.set(figures["turns"])
        self.append_lock_wait.set(figures["lock_wait_seconds"])
        self.append_lock_hold.set(figures["lock_hold_seconds"])

    def handled(self, assigned_at: datetime | None, closed_at: datetime | None) -> None:
        """A conversation closed: its handle time, when someone had it."""
        if assigned_at is not None and closed_at is not None:
            self.handle_time.observe(max(0.0, (_aware(closed_at) - _aware(assigned_at)).total_seconds()))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite hands back naive UTC

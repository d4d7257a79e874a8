"""The small error hierarchy of the core; adapters translate these at the edge."""


class HelplineError(Exception):
    """Base of every error the core raises on purpose."""


class ConfigError(HelplineError):
    """A setting is missing or invalid; the message names the setting."""


class ContentError(HelplineError):
    """A content file is broken; the message names the file and key."""


class DuplicateMessage(HelplineError):
    """An inbound message with this channel and external id was stored already."""


class NotFound(HelplineError):
    """The thing asked for does not exist (or is not visible to the asker)."""


class Forbidden(HelplineError):
    """The asker is not allowed to do this."""


class QueueError(HelplineError):
    """The routing queue refused an operation (for example a claim already taken)."""


class AtCapacity(QueueError):
    """An adviser asked for another conversation while holding as many as they may."""


class JustWritten(QueueError):
    """An adviser ended a conversation as the person wrote: what they wrote is not yet read
    (ended, it would be answered by the journey as if said to it)."""


class StoreUnavailable(HelplineError):
    """The database failed while a message was being stored: it was not stored, and the
    channel says so (web chat) or lets the platform deliver it again (webhooks)."""


class TurnSuperseded(HelplineError):
    """A turn's save found its messages answered already, by an overlapping turn (a lock's
    lease that lapsed while Redis was out of reach): nothing of it was saved."""


class DeliveryError(HelplineError):
    """A channel could not deliver a message; the message stays stored for a retry.

    `kind` says what went wrong in a few words safe to log (an error's name or a platform's
    code): never the message's text, an address or a platform's own words."""

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind or message


class NotSent(DeliveryError):
    """The channel certainly did not send the message and may take it later (a platform's
    rate limit, its service unavailable, a connection refused, the channel not started yet):
    the reply stays pending and is sent again, in order, after `retry_after` seconds if the
    platform said how long (Engine.deliver). A send that may have gone (a timeout) is a plain
    DeliveryError: sending it again could say it twice."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retry_after: float | None = None,
        channel_down: bool = False,
    ) -> None:
        super().__init__(message, kind=kind)
        self.retry_after = retry_after
        # The channel itself is not running yet (not the reply's fault): the reply waits for
        # it, however long, up to the engine's horizon, and goes when it is back.
        self.channel_down = channel_down


class OutsideReplyWindow(DeliveryError):
    """The platform takes replies only within a time after the person's last message
    (WhatsApp: 24 hours), and that time has passed: nothing can reach them until they write
    again. Not tried again: the reply waits for their next message (Delivery.UNREACHABLE),
    which sends it, and the console tells whoever wrote it (Engine.deliver)."""

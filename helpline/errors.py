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


class StoreUnavailable(HelplineError):
    """The database failed while a message was being stored: it was not stored, and the
    channel says so (web chat) or lets the platform deliver it again (webhooks)."""


class TurnSuperseded(HelplineError):
    """A turn's save found its messages answered already, by an overlapping turn (a lock's
    lease that lapsed while Redis was out of reach): nothing of it was saved."""


class DeliveryError(HelplineError):
    """A channel could not deliver a message; the message stays stored for a retry."""

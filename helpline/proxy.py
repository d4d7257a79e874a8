"""Behind a reverse proxy: who a request is from, as the proxy forwards it (aiohttp-remotes'
strict check), and a request it refuses answered with 400 and logged without an address; a
start behind a proxy that is not trusted is warned about."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp_remotes import XForwardedStrict
from aiohttp_remotes.exceptions import (
    IncorrectHostCount,
    IncorrectIPCount,
    IncorrectProtoCount,
    RemoteError,
    TooManyHeaders,
    UntrustedIP,
)
from aiohttp_remotes.utils import remote_ip

from helpline.ratelimit import NEW_CHATS

if TYPE_CHECKING:
    from helpline.config import Settings

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What each refusal means, for the one line logged: never the addresses or values sent.
REFUSALS: dict[type[Exception], str] = {
    IncorrectIPCount: "X-Forwarded-For is not the one address the proxy adds",
    UntrustedIP: "not from the proxy",
    TooManyHeaders: "a forwarded header sent twice",
    IncorrectProtoCount: "more than one X-Forwarded-Proto",
    IncorrectHostCount: "more than one X-Forwarded-Host",
    web.HTTPBadRequest: "X-Forwarded-For holds something that is not an address",
}


def warn_if_unproxied(settings: Settings) -> None:
    """Once at start: a public URL says the service is behind a proxy, and without
    HELPLINE_TRUSTED_PROXIES every request seems to come from that proxy, so the per-address
    limits (new web chats, console logins) are shared by everyone. Names no address."""
    if settings.public_url is not None and not settings.proxies:
        limit = NEW_CHATS[0]
        log.warning(
            "HELPLINE_PUBLIC_URL is set but HELPLINE_TRUSTED_PROXIES is not: behind a proxy "
            "every request seems to come from it, so the limit on new web chats (%d in %d "
            "minutes) and the console's login throttle apply to everyone together. Set "
            "HELPLINE_TRUSTED_PROXIES to the proxy's address (docs/deployment.md)",
            limit.count,
            limit.seconds // 60,
        )


class ProxyCheck(XForwardedStrict):
    """The request must come from a trusted proxy, its X-Forwarded-For hold the one address
    that proxy puts there (the client's), with at most one X-Forwarded-Proto and -Host.
    Anything else gets aiohttp-remotes' 400, logged here as one WARNING saying what was
    wrong: the library logs each as an ERROR listing every address it was sent, and anyone
    can send one (their own X-Forwarded-For, kept by a proxy that appends) at will."""

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in self._white_paths:
            return await handler(request)
        if request.transport is None:
            raise web.HTTPBadRequest()  # the client has gone: nobody to answer
        peer, *_ = request.transport.get_extra_info("peername")
        try:
            forwarded = self.forwarded(request, peer)
        except (RemoteError, web.HTTPBadRequest) as exc:
            problem = REFUSALS.get(type(exc), type(exc).__name__)
            log.warning("a request was refused by the proxy check (%s)", problem)
            raise web.HTTPBadRequest() from None
        # Outside the check: what the handler raises is its own.
        return await handler(request.clone(**forwarded))

    def forwarded(self, request: web.Request, peer: str) -> dict[str, Any]:
        """The client's address, and the scheme and host it asked for, read as
        XForwardedStrict.middleware reads them (aiohttp-remotes 1.4)."""
        headers = request.headers
        addresses = [ip_address(peer), *reversed(self.get_forwarded_for(headers))]
        found: dict[str, Any] = {"remote": str(remote_ip(self._trusted, addresses))}
        proto = self.get_forwarded_proto(headers)
        if proto:
            if len(proto) > len(self._trusted):
                raise IncorrectProtoCount(len(self._trusted), proto)
            found["scheme"] = proto[0]
        host = list(reversed(self.get_forwarded_host(headers)))
        if host:
            if len(host) > len(self._trusted):
                raise IncorrectHostCount(len(self._trusted), host)
            found["host"] = host[0]
        return found

"""Live audit network settings: ICE servers (STUN/TURN) from the environment, the loopback-only
test setting, and the camera constraints the page asks the browser for."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from skuaudit.errors import UserError

ICE_SERVERS_ENV = "SKUAUDIT_ICE_SERVERS"
TURN_USERNAME_ENV = "SKUAUDIT_TURN_USERNAME"
TURN_CREDENTIAL_ENV = "SKUAUDIT_TURN_CREDENTIAL"
LOOPBACK_ONLY_ENV = "SKUAUDIT_ICE_LOOPBACK_ONLY"

# Camera constraints: the back camera on phones ("environment"); desktops ignore facingMode.
REQUESTED_WIDTH, REQUESTED_HEIGHT = 640, 480
MEDIA_STREAM_CONSTRAINTS: dict = {
    "video": {
        "facingMode": {"ideal": "environment"},
        "width": {"ideal": REQUESTED_WIDTH},
        "height": {"ideal": REQUESTED_HEIGHT},
    },
    "audio": False,
}


def ice_servers_from_env(environ: Mapping[str, str] | None = None) -> list[dict]:
    """ICE servers from ``SKUAUDIT_ICE_SERVERS`` (a JSON list), TURN credentials filled in.

    A TURN entry (``turn:``/``turns:`` URL) without ``username``/``credential`` takes them from
    ``SKUAUDIT_TURN_USERNAME``/``SKUAUDIT_TURN_CREDENTIAL``, so secrets can stay out of the list.

    Args:
        environ: the variables to read; ``None`` reads ``os.environ``.

    Returns:
        The list for ``{"iceServers": ...}``; empty when the variable is unset (LAN or offline:
        host candidates only, no STUN lookup).

    Raises:
        ValueError: not JSON, not a list of ``{"urls": ...}`` objects, or a TURN server without
            credentials.

    Example:
        >>> ice_servers_from_env({"SKUAUDIT_ICE_SERVERS": '[{"urls": "turn:t.example:3478"}]',
        ...                       "SKUAUDIT_TURN_USERNAME": "u", "SKUAUDIT_TURN_CREDENTIAL": "p"})
        [{'urls': 'turn:t.example:3478', 'username': 'u', 'credential': 'p'}]
    """
    env = os.environ if environ is None else environ
    raw = (env.get(ICE_SERVERS_ENV) or "").strip()
    if not raw:
        return []
    try:
        servers = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UserError(f"{ICE_SERVERS_ENV} is not valid JSON: {exc}") from exc
    if not isinstance(servers, list):
        raise UserError(
            f'{ICE_SERVERS_ENV} must be a JSON list such as [{{"urls": "stun:host:3478"}}], '
            f"got a {type(servers).__name__}"
        )
    username, credential = env.get(TURN_USERNAME_ENV), env.get(TURN_CREDENTIAL_ENV)
    result = []
    for i, server in enumerate(servers):
        urls = server.get("urls") if isinstance(server, dict) else None
        url_list = [urls] if isinstance(urls, str) else urls
        if (
            not isinstance(url_list, list)
            or not url_list
            or not all(isinstance(u, str) and u for u in url_list)
        ):
            # The entry itself is not echoed: it may hold a credential.
            raise UserError(
                f'{ICE_SERVERS_ENV}[{i}] must be an object with "urls" (a URL or a list of URLs)'
            )
        entry = dict(server)
        if any(u.startswith(("turn:", "turns:")) for u in url_list):
            if "username" not in entry and username:
                entry["username"] = username
            if "credential" not in entry and credential:
                entry["credential"] = credential
            if "username" not in entry or "credential" not in entry:
                raise UserError(
                    f"{ICE_SERVERS_ENV}[{i}] ({url_list[0]}) is a TURN server without credentials: "
                    f"add username/credential to it or set {TURN_USERNAME_ENV} and {TURN_CREDENTIAL_ENV}"
                )
        result.append(entry)
    return result


def rtc_configuration(environ: Mapping[str, str] | None = None) -> dict:
    """``{"iceServers": [...]}`` for ``webrtc_streamer(rtc_configuration=...)``.

    Raises:
        ValueError: see ``ice_servers_from_env``.
    """
    return {"iceServers": ice_servers_from_env(environ)}


def apply_network_settings(environ: Mapping[str, str] | None = None) -> None:
    """Apply ``SKUAUDIT_ICE_LOOPBACK_ONLY=1``: the server offers only 127.0.0.1 as ICE candidate.

    aioice leaves 127.0.0.1 out of its host candidates, so a browser on the same machine with no
    other route (a sandboxed test, an offline demo) cannot connect; this test/offline setting
    replaces the address list. Never set it on a server that phones reach over the network.
    """
    env = os.environ if environ is None else environ
    if env.get(LOOPBACK_ONLY_ENV, "").strip() == "1":
        from skuaudit.compat import use_loopback_ice_candidates

        use_loopback_ice_candidates()

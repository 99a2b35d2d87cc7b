"""The front-end files every page shares (``dom.js``, ``i18n.js``, ``login.js``): pure.

The cloud serves them at ``/ui/{name}`` (``cloud.api.ui``) and the agent's customer-screen
server at the same path (``edge.teller.screen``), so a page imports ``/ui/dom.js`` whichever
process served it. Only the files named in ``ASSETS`` are served: no listing, no path tricks.
"""

from __future__ import annotations

from importlib import resources

#: name -> content type; nothing outside this table is ever read.
ASSETS = {
    "dom.js": "text/javascript; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "login.js": "text/javascript; charset=utf-8",
}


def asset(name: str) -> tuple[bytes, str] | None:
    """(body, content type) of one shared file, or None if ``name`` is not one of them."""
    ctype = ASSETS.get(name)
    if ctype is None:
        return None
    return resources.files(__name__).joinpath(name).read_bytes(), ctype

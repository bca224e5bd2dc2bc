"""The staff pages at /staff/: server-rendered HTML (Jinja2) with charts drawn as SVG on the server, no script and
nothing loaded from elsewhere, so they work offline and on a phone. Signed in with a browser session
(shop/staff/session.py); every figure is a report's rows exactly as the API answers them (shop/api/reports.py)."""

from shop.staff.views import blp

__all__ = ["blp"]

"""Serve a selective run over HTTP (``notsure serve``): a page to draw or drop digits; an API."""

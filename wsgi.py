"""The WSGI entry point for gunicorn (`gunicorn wsgi:app`) and other servers."""

from shop import create_app

app = create_app()

"""WSGI entry point: ``gunicorn wsgi:app`` (``crm-qb web`` does this for you)."""

from crm_qb.app import create_app

app = create_app()

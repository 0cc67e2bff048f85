"""The web dashboard: ``create_app(manager, settings)`` returns an ASGI application.

Needs the ``dashboard`` extra (``pip install 'taskqueue-py[dashboard]'``): Starlette, Jinja2,
uvicorn and itsdangerous. See docs/dashboard.md.
"""

from taskqueue.dashboard.app import create_app
from taskqueue.dashboard.auth import hash_password, load_users
from taskqueue.dashboard.settings import ADMIN, READ_ONLY, DashboardSettings, User

__all__ = ["ADMIN", "READ_ONLY", "DashboardSettings", "User", "create_app", "hash_password",
           "load_users"]

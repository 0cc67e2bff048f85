"""Settings of the example shop.

``SHOP_DATABASE``: ``sqlite:///path`` (default ``storage/shop.sqlite3``) or
``postgresql://user:password@host:port/name``. With PostgreSQL the jobs live in the same
database (``use_django_db``) and are written inside the view's transaction; otherwise they go to
``TASKQUEUE_URL`` (default ``sqlite:///storage/queue.db``) when the transaction commits.
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("SHOP_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
INSTALLED_APPS = ["taskqueue.contrib.django", "orders"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "django_shop.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_database = urlsplit(os.environ.get("SHOP_DATABASE", f"sqlite:///{BASE_DIR}/storage/shop.sqlite3"))
if _database.scheme.startswith("postgres"):
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": _database.path.lstrip("/"),
        "USER": unquote(_database.username or ""), "PASSWORD": unquote(_database.password or ""),
        "HOST": _database.hostname or "", "PORT": str(_database.port or ""),
    }}
    TASKQUEUE = {"use_django_db": "default"}
else:
    Path(_database.path).parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _database.path}}
    TASKQUEUE = {"url": os.environ.get("TASKQUEUE_URL", "sqlite:///storage/queue.db")}
TASKQUEUE["max_workers"] = 4
# a worker process with Django loaded starts above the 50 MiB default recycling limit
TASKQUEUE["worker_memory_limit"] = 256 * 1024 * 1024

"""Django integration: add ``"taskqueue.contrib.django"`` to ``INSTALLED_APPS``.

* configuration from ``settings.TASKQUEUE`` (a dict of :class:`taskqueue.config.Settings`
  field names, e.g. ``{"url": "postgresql://…", "encryption_key": "base64:…"}``; the
  environment and ``taskqueue.toml`` fill in what it leaves out), plus this app's own keys:
  ``use_django_db`` (a database alias: keep the jobs in that PostgreSQL database and enqueue
  inside its transactions), ``schema`` (with ``use_django_db``: the schema for the job tables),
  ``autodiscover`` (import every installed app's ``tasks`` module; default true) and
  ``set_default`` (make this manager the one ``task.delay()`` uses; default true);
* management commands ``taskqueue_work``, ``taskqueue_test``, ``taskqueue_stats`` and
  ``taskqueue`` (any CLI command), which run the ``taskqueue`` CLI with these settings;
* :func:`enqueue` and :func:`delay_on_commit`: enqueue in step with the current transaction.
"""

from taskqueue.contrib.django.conf import get_manager
from taskqueue.contrib.django.transactions import delay_on_commit, enqueue

__all__ = ["delay_on_commit", "enqueue", "get_manager"]

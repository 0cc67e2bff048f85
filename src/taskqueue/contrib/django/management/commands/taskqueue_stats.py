"""``manage.py taskqueue_stats [OPTIONS]``: ``taskqueue stats`` with ``settings.TASKQUEUE``."""

from taskqueue.contrib.django.management.commands._delegate import DelegatingCommand


class Command(DelegatingCommand):
    help = "Run `taskqueue stats` with settings.TASKQUEUE (see `manage.py taskqueue_stats --help`)."
    cli_command = ("stats",)

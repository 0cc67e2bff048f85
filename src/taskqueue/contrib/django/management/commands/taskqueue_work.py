"""``manage.py taskqueue_work [OPTIONS]``: ``taskqueue work`` with ``settings.TASKQUEUE``."""

from taskqueue.contrib.django.management.commands._delegate import DelegatingCommand


class Command(DelegatingCommand):
    help = "Run `taskqueue work` with settings.TASKQUEUE (see `manage.py taskqueue_work --help`)."
    cli_command = ("work",)

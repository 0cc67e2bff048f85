"""``manage.py taskqueue_test [OPTIONS]``: ``taskqueue test`` with ``settings.TASKQUEUE``."""

from taskqueue.contrib.django.management.commands._delegate import DelegatingCommand


class Command(DelegatingCommand):
    help = "Run `taskqueue test` with settings.TASKQUEUE (see `manage.py taskqueue_test --help`)."
    cli_command = ("test",)

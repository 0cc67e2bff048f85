"""``manage.py taskqueue COMMAND [OPTIONS]``: any ``taskqueue`` CLI command, with
``settings.TASKQUEUE`` (``manage.py taskqueue jobs list --state failed``)."""

from taskqueue.contrib.django.management.commands._delegate import DelegatingCommand


class Command(DelegatingCommand):
    help = "Run any taskqueue CLI command with settings.TASKQUEUE (`manage.py taskqueue --help`)."

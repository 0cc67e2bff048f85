"""The Django app: reads ``settings.TASKQUEUE`` once the app registry is ready."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules

from taskqueue.contrib.django import conf
from taskqueue.manager import set_default_manager


class TaskQueueConfig(AppConfig):
    name = "taskqueue.contrib.django"
    label = "taskqueue"
    verbose_name = "taskqueue"

    def ready(self) -> None:
        """Check the settings, make the (lazily connected) manager the default one, and import
        each installed app's ``tasks`` module so that its tasks are registered."""
        options = conf.configured()
        manager = conf.get_manager()
        if options.get("set_default", True):
            set_default_manager(manager)
        if options.get("autodiscover", True):
            autodiscover_modules("tasks")

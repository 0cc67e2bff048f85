"""Framework integrations: Django (``taskqueue.contrib.django``), Starlette/FastAPI
(``taskqueue.contrib.starlette``) and Flask (``taskqueue.contrib.flask``).

Each one only wires a :class:`~taskqueue.QueueManager` into the framework's life cycle and
configuration; jobs, workers and the CLI are the same everywhere. Each needs its framework
installed (``pip install 'taskqueue-py[django]'``, ``[fastapi]``, ``[flask]``).
"""

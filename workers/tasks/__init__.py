"""The task modules. Importing this package imports each of them, which registers their tasks
with ``workers.app.celery_app``; a new module in this folder is picked up without a list to
update."""

from __future__ import annotations

import importlib
import pkgutil

TASK_MODULES = tuple(
    f"{__name__}.{module.name}" for module in pkgutil.iter_modules(__path__) if not module.ispkg
)

for _module in TASK_MODULES:
    importlib.import_module(_module)

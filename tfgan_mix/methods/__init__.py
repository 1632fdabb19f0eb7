"""Every built-in method, one module each. Importing this package imports every module in it,
which runs each file's ``@register_method``: adding a method is adding its file."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

"""Every built-in method, one module each. Importing this package imports every module in it,
which runs each file's ``@register_method``: adding a method is adding its file.

The registry (``tfgan_mix.core.registry``) finds the methods without importing this package: it
reads each file's ``@register_method`` name and imports a method's module when first asked for it.
Import this package to register them all at once (``keras.models.load_model`` needs the class of
the model it deserialises)."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

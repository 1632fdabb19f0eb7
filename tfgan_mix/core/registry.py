"""The method registry: a new method is one file plus one ``@register_method`` line.

Registration also makes the class Keras-serializable, so ``keras.models.load_model`` finds it
when a ``.keras`` file written by any registered method is loaded.
"""
import keras

_METHODS = {}


def register_method(name):
    """Class decorator: register a ``MixtureGAN`` subclass under ``name``."""

    def decorate(cls):
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method {name!r} is already registered by {_METHODS[name].__name__}")
        cls.method_name = name
        _METHODS[name] = keras.saving.register_keras_serializable(package="tfgan_mix")(cls)
        return cls

    return decorate


def get_method(name):
    """Return the class registered under ``name``; the error lists the known names."""
    _import_builtin_methods()
    try:
        return _METHODS[name]
    except KeyError:
        known = ", ".join(list_methods())
        raise ValueError(f"unknown method {name!r}; registered methods: {known}") from None


def list_methods():
    """Registered method names, sorted."""
    _import_builtin_methods()
    return sorted(_METHODS)


def _import_builtin_methods():
    # Importing the package runs every built-in method file's @register_method.
    import tfgan_mix.methods  # noqa: F401

"""The method registry: a new method is one file plus one ``@register_method`` line.

Registration also makes the class Keras-serializable, so ``keras.models.load_model`` finds it
when a ``.keras`` file written by any registered method is loaded.

Built-in methods are discovered, not imported: each module file of the ``tfgan_mix.methods``
package is read as source (``ast``, never run) for its ``@register_method("NAME")`` lines, which
gives every built-in name and the module that defines it. So ``list_methods`` needs no TensorFlow,
and ``get_method`` imports a method's module only when it is first asked for. The decorator line is
the only place a method's name is written; core never imports the methods package (methods import
core, and the registry reaches them by module name at call time).

This module imports no TensorFlow: ``tfgan-mix methods`` lists methods without it.
"""
import ast
import functools
import importlib
import importlib.util
import pkgutil

BUILTIN_PACKAGE = "tfgan_mix.methods"

_METHODS = {}


def register_method(name):
    """Class decorator: register a ``MixtureGAN`` subclass under ``name``."""

    def decorate(cls):
        # Imported here, not at the top, so importing the registry (to list methods) loads no
        # TensorFlow; the class being registered subclasses keras.Model, so keras is loaded already.
        import keras

        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method {name!r} is already registered by {_METHODS[name].__name__}")
        cls.method_name = name
        _METHODS[name] = keras.saving.register_keras_serializable(package="tfgan_mix")(cls)
        return cls

    return decorate


def get_method(name):
    """Return the class registered under ``name`` (importing a built-in's module on first use);
    the error lists the known names."""
    module = builtin_methods().get(name)
    if name not in _METHODS and module is not None:
        importlib.import_module(module)  # runs the file's @register_method
    try:
        return _METHODS[name]
    except KeyError:
        known = ", ".join(list_methods())
        raise ValueError(f"unknown method {name!r}; registered methods: {known}") from None


def list_methods():
    """Registered and built-in method names, sorted (no method module is imported)."""
    return sorted(set(_METHODS) | set(builtin_methods()))


@functools.cache
def builtin_methods():
    """Built-in method name -> the module that registers it, read from the methods package's files."""
    package = importlib.util.find_spec(BUILTIN_PACKAGE)  # locates the package without running it
    found = {}
    for info in pkgutil.iter_modules(package.submodule_search_locations):
        module = f"{BUILTIN_PACKAGE}.{info.name}"
        with open(info.module_finder.find_spec(module).origin, encoding="utf-8") as f:
            source = f.read()
        for name in _registered_names(source):
            if name in found:
                raise ValueError(f"method {name!r} is registered by both {found[name]} and {module}")
            found[name] = module
    return found


def _registered_names(source):
    """The names of the ``@register_method("NAME")`` decorators on the classes of a module's source."""
    names = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for decorator in node.decorator_list:
            if (isinstance(decorator, ast.Call) and _called_name(decorator.func) == "register_method"
                    and decorator.args and isinstance(decorator.args[0], ast.Constant)
                    and isinstance(decorator.args[0].value, str)):
                names.append(decorator.args[0].value)
    return names


def _called_name(func):
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None

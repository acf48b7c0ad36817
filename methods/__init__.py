"""PETL methods, one module each. Importable as ``petlbench.methods.<name>``.

Adding a method: create ``methods/<name>.py`` with a config dataclass and a ``Method``
subclass decorated with ``@register``. Discovery, ``petlbench list methods`` and the
contract tests pick it up with no other edit.
"""

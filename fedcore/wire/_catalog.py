"""The modules that register wire types, imported by name the first time decoding meets a
wire name it does not know (``fedcore.wire._registry.by_name``).

A module that calls ``wire.register`` or uses ``@wire.message`` must be listed here;
``tests/wire/test_registry.py`` walks the package and fails when one is missing or stale.
"""

MODULES: tuple[str, ...] = (
    "fedcore.bench._phe_baseline",
    "fedcore.fl.messages",
    "fedcore.he._wire",
    "fedcore.psi._driver",
    "fedcore.psi._protocol",
    "fedcore.psi._ring",
    "fedcore.secagg.messages",
    "fedcore.vertical._messages",
    "fedcore.vertical._sb_messages",
)

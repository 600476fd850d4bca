"""Names people give to what the product stores (policies, rules, label sets, fields,
concepts): one rule, so that each is typed, quoted and stored the same way."""

from __future__ import annotations

import re

from assetdb.errors import AssetdbError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Concept names may also hold ':' (namespaces such as 'brand:acme'); they only ever
# reach SQL as quoted string literals.
_NAME_WITH_COLON = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def check_name(name: object, what: str, *, colon: bool = False,
               error: type[AssetdbError] = AssetdbError, hint: str = "") -> str:
    """name if it is 1-64 letters, digits, '_', '.' or '-' (and ':' with colon),
    starting with a letter or digit; otherwise `error` saying which `what` is wrong."""
    if not isinstance(name, str) or not (_NAME_WITH_COLON if colon else _NAME).match(name):
        chars = "'_', '.', ':' or '-'" if colon else "'_', '.' or '-'"
        raise error(f"{what} {name!r} must be 1-64 letters, digits, {chars}, starting with a "
                    f"letter or digit{hint}")
    return name

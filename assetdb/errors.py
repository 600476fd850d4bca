"""Errors that a user should see as a one-line message, not a traceback."""


class AssetdbError(Exception):
    """Base class: the CLI prints these as 'Error: ...' and exits 1."""


class ConfigError(AssetdbError):
    pass


class DatabaseError(AssetdbError):
    pass


class ModelError(AssetdbError):
    pass


class FilterError(AssetdbError):
    pass


class ImageError(AssetdbError):
    """An image that cannot be used; the message is stored on the asset's row."""


class SidecarError(AssetdbError):
    pass

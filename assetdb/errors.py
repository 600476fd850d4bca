"""Errors that a user should see as a one-line message, not a traceback."""


class AssetdbError(Exception):
    """Base class: the CLI prints these as 'Error: ...' and exits 1."""


class ConfigError(AssetdbError):
    pass


class DatabaseError(AssetdbError):
    pass


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached now (down, restarting, wrong address)."""


class ModelError(AssetdbError):
    pass


class ModelSwitched(ModelError):
    """The database moved to another model (`assetdb reembed`) while a command that follows
    the database's model ran: running it again uses the new model."""


class FilterError(AssetdbError):
    pass


class ImageError(AssetdbError):
    """An image that cannot be used; the message is stored on the asset's row."""


class SidecarError(AssetdbError):
    pass

"""Asset kinds: the file types assetdb takes, and how each is probed, decoded, thumbnailed
and (for time-based media) sampled into frames. assetdb.kinds.registry has the rules."""

from assetdb.kinds.registry import (
    Frame,
    Kind,
    Probe,
    inline_types,
    kind_for_file,
    kind_for_name,
    kind_for_path,
    kind_names,
    register,
)

__all__ = ["Frame", "Kind", "Probe", "inline_types", "kind_for_file", "kind_for_name",
           "kind_for_path", "kind_names", "register"]

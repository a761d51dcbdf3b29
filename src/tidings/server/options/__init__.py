"""Each server setting declared once (flag, environment variable, help, unit, range), as plain data.

`SettingsFields` holds the fields of `tidings.server.config.Settings` with their `Option`; the CLI turns the
options into ``tidings server``'s flags and ``--help``, and the README's configuration table is written from them.
"""

from tidings.server.options._fields import SettingsFields, default_data_dir
from tidings.server.options._option import (
    InvalidSetting,
    Kind,
    Option,
    declared,
    declared_factory,
    human_size,
    nested,
    options_of,
    plain,
)

__all__ = [
    "InvalidSetting",
    "Kind",
    "Option",
    "SettingsFields",
    "declared",
    "declared_factory",
    "default_data_dir",
    "human_size",
    "nested",
    "options_of",
    "plain",
]

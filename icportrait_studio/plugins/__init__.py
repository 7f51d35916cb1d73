"""Plugin API: exporters, external-editor bridges, rig presets and backends contributed by plugins.

Qt-free (an import-linter contract keeps it so). Modules:

- ``api``: ``API_VERSION``, ``ExportLayer``/``ExportDocument`` (the layered protocol), ``PluginError``
- ``manifest``/``registry``: discovery from ``plugin.toml``/entry points, lazy and guarded loading
- ``export``: export/read layered files through exporter plugins, ``document_from_app``
- ``editors``/``edit_in``: "Edit in…" external editors and the save-watching ``EditInSession``
- ``edit_target``: acting as another app's external editor (``icportrait edit FILE``)
- ``bridge_server``: the loopback-only live bridge for host plugins

Importing this package imports none of those (the CLI must start fast).
"""

from icportrait_studio.plugins.api import API_VERSION, ENTRY_POINT_GROUP

__all__ = ["API_VERSION", "ENTRY_POINT_GROUP"]

"""Plugins: hook specifications, the plugin manager, plugin-owned options."""

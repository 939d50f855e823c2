"""Built-in plugins. Each module is registered exactly as a third-party plugin would be."""

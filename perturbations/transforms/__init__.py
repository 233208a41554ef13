"""Built-in transforms, one module per family; every module is imported by the registry."""

"""Only imported by interactive dialogs, which the shim tests do not open."""

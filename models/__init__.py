"""models: see docs/architecture.md for where it sits."""

#: The modules other packages may use (the whole package: manifest, signing, registry,
#: bundles).
__all__ = ["bundle", "errors", "manifest", "registry", "signing"]

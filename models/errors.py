"""Errors raised when a model cannot be trusted or run.

CuntongError
└── ModelError            anything wrong with a model or its manifest
    ├── ManifestError     the manifest does not parse or lacks a field (also ValueError)
    ├── BundleError       a model bundle (OTA payload) is not a well-formed bundle (ValueError)
    └── ModelRefused      a model file fails its SHA-256 or signature check
        └── Unhealthy     a verified model does not load, run, score in range or in time
"""

from __future__ import annotations

from common.errors import CuntongError


class ModelError(CuntongError):
    """A model or its manifest cannot be used."""


class ManifestError(ModelError, ValueError):
    """The manifest is malformed: the message names the entry and field."""


class BundleError(ModelError, ValueError):
    """A model bundle's bytes are not a tar of one manifest and the ONNX files it names."""


class ModelRefused(ModelError):
    """A model file is corrupted, unsigned, or signed by a key the terminal does not trust."""


class Unhealthy(ModelRefused):
    """A verified model set fails the health check: it does not load, run, or score sanely."""

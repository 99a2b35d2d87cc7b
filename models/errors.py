"""Errors raised when a model cannot be trusted or run.

CuntongError
└── ModelError            anything wrong with a model or its manifest
    ├── ManifestError     the manifest does not parse or lacks a field (also ValueError)
    └── ModelRefused      a model file fails its SHA-256 or signature check
"""

from __future__ import annotations

from cuntong.errors import CuntongError


class ModelError(CuntongError):
    """A model or its manifest cannot be used."""


class ManifestError(ModelError, ValueError):
    """The manifest is malformed: the message names the entry and field."""


class ModelRefused(ModelError):
    """A model file is corrupted, unsigned, or signed by a key the terminal does not trust."""

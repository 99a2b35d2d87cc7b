"""Masking helpers for the adapters' reprs and logs (they live in `common.masking`)."""

from common.masking import mask_id_number, mask_name, mask_pan

__all__ = ["mask_id_number", "mask_name", "mask_pan"]

"""Evidence packages: a hash-chained timeline of a teller session, its recordings, vouchers
and e-signature, sealed by the cloud and timestamped, verifiable offline.
"""

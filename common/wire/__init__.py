"""Wire formats that two processes share: both ends import the same codec.

``commands`` signed cloud → terminal commands and event MACs, ``package`` OTA package
manifests, ``shadow`` configuration shadow documents, ``live_config`` the schema a desired
document must pass, ``datachannel`` the teller ↔ terminal data-channel messages, ``call`` the
call signalling between a terminal and the desk, ``ack`` ingest's storage confirmations to a
terminal's spool, ``log_upload`` a terminal's log bundle in signed chunks.
"""

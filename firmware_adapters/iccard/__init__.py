"""Bank IC cards (PBOC 3.0 / EMV) over PC/SC: PSE/PPSE, GPO, READ RECORD, PAN and expiry."""

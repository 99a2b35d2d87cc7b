"""Encrypting PIN pad (密码键盘) over serial: key loading, PIN entry, encrypted PIN blocks."""

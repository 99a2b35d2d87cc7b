"""What every cuntong process shares: the bottom layer."""

"""The wanflow command line."""

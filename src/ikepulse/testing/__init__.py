"""Test support shipped with ikepulse: the namespace lab and the in-memory two-peer harness."""

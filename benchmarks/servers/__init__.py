"""Minimal echo (and broadcast) servers, one per library, for the benchmark."""

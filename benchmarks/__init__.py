"""Throughput benchmarks for shredstore: scripts run by hand, never tests."""

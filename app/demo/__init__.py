"""The demo project: generated credit data, a live stream of batches, and the project built from them."""

DEMO_PROJECT = "demo-credit"

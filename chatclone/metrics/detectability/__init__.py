"""The `detectability` evaluate module (detectability.py); load it with `chatclone.metrics.load_metric`."""

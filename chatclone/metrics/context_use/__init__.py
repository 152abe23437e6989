"""The `context_use` evaluate module (context_use.py); load it with `chatclone.metrics.load_metric`."""

"""The `surface_stats` evaluate module (surface_stats.py); load it with `chatclone.metrics.load_metric`."""

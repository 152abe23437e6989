"""The `style_attribution` evaluate module (style_attribution.py); load it with `chatclone.metrics.load_metric`."""

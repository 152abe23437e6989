"""The `assistant_isms` evaluate module (assistant_isms.py); load it with `chatclone.metrics.load_metric`."""

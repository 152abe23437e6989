"""The `perplexity` evaluate module (perplexity.py); load it with `chatclone.metrics.load_metric("perplexity")`."""

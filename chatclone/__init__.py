"""chatclone: fine-tune a language model to text like a specific person, and measure how well it does."""

__version__ = "0.1.0"

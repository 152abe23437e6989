"""Serving clones to other programs: OpenAI messages as a clone's conversation (`messages`), batched decoding
(`engine`), checked requests (`service`) and the HTTP API with its web page (`api`, page.html)."""

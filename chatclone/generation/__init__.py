"""Talking to a clone: load it (`clone`), render prompts as in training (`prompt`), generate turns that stop at the
speaker's end of turn (`generate`, `stops`), hold conversations (`session`, `chat`), and write what was generated
(`records`, `sweep`). `running` holds what the three generation stages share.
"""

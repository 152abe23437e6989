"""discord_bot.py: one bot account speaking as one or more trained clones.

Policy in plain Python, tested without a network: `records` (the plain message the Discord glue hands over),
`addressing` (should this message get a reply, and from which clone), `limits` (cooldowns, the per-minute cap, one
generation at a time), `context` (a channel's history -> the conversation the clone answers, cleaned and merged by
process_messages' own rules), `replies` (the AI label and Discord's 2,000-character split), `clones` (the clones
and the rules their training data was made with), `backends` (in-process generation or a running serve.py) and
`credentials` (the bot token, from the environment only). `client` is the thin discord.py glue.
"""

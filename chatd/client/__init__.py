"""``chatd connect``: a terminal chat client for any chatd server.

model.py is sans-IO (server lines in -> what to show, what to send); app.py
runs it on asyncio with a prompt_toolkit prompt and a TCP connection.
"""

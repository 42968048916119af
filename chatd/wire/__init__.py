"""Wire formats: one sans-IO module per protocol, each rendering the hub's events
in its own way (chatd.wire.line for nc and ``chatd connect``; chatd.wire.irc_message is the
IRC line codec the IRC listener will use), and
chatd.wire.text, the cleaning every one of them shares."""

"""Wire formats: one sans-IO module per protocol, each rendering the hub's events
in its own way (chatd.wire.line for nc and ``chatd connect``; chatd.wire.irc for IRC clients,
with chatd.wire.irc_message, its line codec: not served by a listener yet), and
chatd.wire.text, the cleaning every one of them shares."""

"""The browser page (chat.html), shipped as package data and served at GET /."""

"""Channel adapters: each turns a platform's requests into InboundMessages and back.

A channel is one module with a `setup(app)` that registers its routes and its sender;
adding one is one line below. A setup whose settings are missing registers nothing."""

from __future__ import annotations

from channels import telegram, twilio, webchat

PLUGINS = (webchat.setup, twilio.setup, telegram.setup)

"""The messaging runtime: channels, the conversation runtime, the outbox sender, i18n."""

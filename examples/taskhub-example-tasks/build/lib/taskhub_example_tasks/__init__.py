"""An example taskhub task package: a Django app whose `tasks` module taskhub imports at start."""

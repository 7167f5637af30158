"""A tiny Django project for the Django-based peers; ``PEER`` (the environment) picks its apps."""

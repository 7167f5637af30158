"""English, as every page of taskhub shows times: local time with seconds and the zone named
(https://docs.djangoproject.com/en/5.2/ref/templates/builtins/#date for the letters)."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"

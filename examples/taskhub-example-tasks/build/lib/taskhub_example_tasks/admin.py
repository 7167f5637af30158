from django.contrib import admin

from .models import Tally


@admin.register(Tally)
class TallyAdmin(admin.ModelAdmin):
    list_display = ("kind", "value", "job_id", "created_at")
    readonly_fields = ("job_id", "kind", "value", "created_at")

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from .models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("username", "email", "password1", "password2")}),)
    list_display = ("username", "email", "first_name", "last_name", "is_staff", "is_active", "date_joined")
    readonly_fields = ("last_login", "date_joined")
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        (
            "Job quotas",
            {
                "description": "Empty: the JOB_QUOTA_* settings apply; 0: no limit. Staff are exempt while "
                "JOB_QUOTA_EXEMPT_STAFF is on.",
                "fields": ("max_active_jobs", "max_jobs_per_minute", "max_running_jobs"),
            },
        ),
    )

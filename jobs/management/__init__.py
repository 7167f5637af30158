"""manage.py commands for jobs: enqueue_job, cleanup_jobs."""

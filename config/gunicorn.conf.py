"""gunicorn settings for the `web` process (Procfile)."""
import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
keepalive = 5
timeout = 30
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
# Build the app once in the master so workers share imported code (copy-on-write).
preload_app = True

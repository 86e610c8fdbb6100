"""The medvault core library: envelope encryption, object storage, intake, domain services.

No web, no Celery, no os.environ: everything it needs is passed in as arguments.
"""
